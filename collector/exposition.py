"""``/metrics`` bodies: content negotiation, gzip, and each metric family rendered once.

Rendering text is most of a scrape's CPU (~0.4 ms of ~0.55 ms for our ~90
samples). The collector hands back its families in groups, the *same* objects
while what a group shows is unchanged, so :class:`Exposition` keeps each
family's rendered bytes, keyed by the family object itself, and a scrape served
from cache only renders the per-scrape families and joins bytes. Format choice and gzip follow the
client library (``choose_encoder``, ``gzip_accepted``), so OpenMetrics and text
negotiation behave as with its own handlers, ``name[]`` filters included.

Gzip is kept the same way: beside the rendered bytes of each group of data
families (every family but the per-scrape ones) sits its deflate compression,
made once per change of that group and ending on a byte boundary (a sync
flush). A gzip body is a gzip header, those segments, the per-scrape families
as stored (uncompressed) deflate blocks, an empty final block, and the CRC-32
and length of the whole: one ordinary gzip member, which a scrape served from
cache builds without compressing anything, and a scrape after a best bid/ask
pushed by a stream builds by compressing the spread families alone.
"""

from __future__ import annotations

import struct
import threading
import zlib
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from cachetools import LRUCache
from prometheus_client.exposition import choose_encoder, gzip_accepted
from prometheus_client.registry import Collector
from prometheus_client.metrics_core import Metric

from collector.exporter import BinanceCollector, Group

Encoder = Callable[[Collector], bytes]

# content types are keyed by the Accept header's version and escaping: a client
# can make up any number of them, so only the last few are kept
FORMATS_KEPT = 4
# ``name[]`` filtered bodies, kept by (content type, gzip, names) while the families they
# were cut from stay the same objects: a client polling a few series at a high rate
# (e.g. every millisecond) costs a comparison, not a render, until they change
FILTERS_KEPT = 8
GZIP_LEVEL = 6
# the families BinanceCollector builds anew on every scrape (exporter._PerScrape, and in stream
# mode exporter._message_age): their bytes may change each time, so a gzip body carries them
# stored rather than compressing every scrape
PER_SCRAPE = frozenset({"binance_api_used_weight", "binance_api_cool_down_seconds",
                        "binance_scrape_duration_seconds",
                        "binance_stream_last_message_age_seconds"})
# a gzip member's header: deflate, no name, no time, unknown OS (as gzip.compress(mtime=0))
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
_FINAL_BLOCK = b"\x03\x00"  # an empty fixed-Huffman block marked final: the stream ends
_STORED_MAX = 0xFFFF  # bytes in one stored block

_Chunk = tuple[Metric, bytes]  # a family (held, so that its id() stays unique) and its bytes


@dataclass(frozen=True, slots=True)
class Body:
    """An encoded ``/metrics`` answer."""

    data: bytes
    content_type: str
    gzipped: bool = False


@dataclass(frozen=True, slots=True)
class Request:
    """What of a scrape request decides its body."""

    accept: str = ""
    accept_encoding: str = ""
    names: tuple[str, ...] = ()  # ``name[]`` query parameters: only these families


class _FamilySet(Collector):
    """Families already collected, as the ``Collector`` an encoder takes."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self._families


class _Format:
    """One content type: its encoder, its trailer and the bytes of the last families seen."""

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder
        self.trailer = encoder(_FamilySet([]))  # b"# EOF\n" for OpenMetrics, b"" for text
        self._lock = threading.Lock()
        self._chunks: dict[int, _Chunk] = {}
        self._segments: dict[bytes, bytes] = {}  # a data group's bytes → their deflate segment

    def _texts(self, groups: Sequence[Group]) -> tuple[dict[int, _Chunk],
                                                        list[tuple[bool, bytes]]]:
        """Each family's bytes (rendered now unless kept), and each group's: (whether it is
        a data group, its bytes)."""
        with self._lock:
            known = self._chunks
        chunks: dict[int, _Chunk] = {}
        texts = []
        for group in groups:
            for family in group:
                # keyed by id(): every family in the map is held by it, so no other
                # object can have the same id while its bytes are kept
                hit = known.get(id(family))
                if hit is None:
                    text = self.encoder(_FamilySet([family]))
                    hit = (family, text[: len(text) - len(self.trailer)])
                chunks[id(family)] = hit
            texts.append((bool(group) and group[0].name not in PER_SCRAPE,
                          b"".join(chunks[id(family)][1] for family in group)))
        return chunks, texts

    def render(self, groups: Sequence[Group], keep: bool = True,
               gzipped: bool = False) -> bytes:
        """The whole exposition, gzipped if asked; families seen last time are not rendered
        again, groups of the same bytes not compressed again.

        ``keep=False`` (a ``name[]`` subset) reads the kept bytes without
        replacing them, so a filtered scrape does not evict the full one's.
        """
        chunks, texts = self._texts(groups)
        data = b"".join(text for _, text in texts) + self.trailer
        if not gzipped:
            if keep:
                with self._lock:  # only the current families: memory stays bounded
                    self._chunks = chunks
            return data
        with self._lock:
            segments = self._segments
        parts, kept_segments = [_GZIP_HEADER], dict[bytes, bytes]()
        for data_group, text in texts:
            if data_group:
                segment = segments.get(text) or kept_segments.get(text) or _deflate(text)
                kept_segments[text] = segment
                parts.append(segment)
            else:
                parts.append(_stored(text))
        if keep:
            with self._lock:  # only the current groups: memory stays bounded
                self._chunks, self._segments = chunks, kept_segments
        return b"".join([*parts, _stored(self.trailer), _FINAL_BLOCK,
                         struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)])


def _deflate(text: bytes) -> bytes:
    """Raw deflate blocks of ``text``, none marked final, ending on a byte boundary: other
    blocks may follow it in the same stream."""
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(text) + compressor.flush(zlib.Z_SYNC_FLUSH)


def _stored(text: bytes) -> bytes:
    """``text`` as stored (uncompressed) deflate blocks, none final: framing, no compression."""
    return b"".join(b"\x00" + struct.pack("<HH", len(part), len(part) ^ 0xFFFF) + part
                    for part in (text[i:i + _STORED_MAX]
                                 for i in range(0, len(text), _STORED_MAX)))


class Exposition:
    """Bodies of ``/metrics`` for one collector (see the module docstring)."""

    def __init__(self, collector: BinanceCollector) -> None:
        self.collector = collector
        self._formats: LRUCache[str, _Format] = LRUCache(maxsize=FORMATS_KEPT)
        self._filtered: LRUCache[tuple[str, bool, tuple[str, ...]],
                                 tuple[tuple[Metric, ...], Body]] = LRUCache(maxsize=FILTERS_KEPT)
        self._lock = threading.Lock()

    def cached(self, request: Request) -> Body | None:
        """The body, if it can be had without waiting on a refresh; else None."""
        groups = self.collector.collect_cached()
        return None if groups is None else self._body(groups, request)

    def fresh(self, request: Request) -> Body:
        """The body, refreshing what is due first (may wait on Binance: run it off the loop)."""
        return self._body(self.collector.collect_groups(), request)

    def _body(self, groups: list[Group], request: Request) -> Body:
        try:
            encoder, content_type = choose_encoder(request.accept)
        except (TypeError, ValueError):  # e.g. "version=abc": the library cannot compare it
            encoder, content_type = choose_encoder("")  # the default, as for an unknown type
        with self._lock:
            form = self._formats.get(content_type)
            if form is None:
                form = self._formats[content_type] = _Format(encoder)
        zipped = gzip_accepted(request.accept_encoding)
        if request.names:
            return self._filtered_body(groups, request.names, form, content_type, zipped)
        return Body(form.render(groups, gzipped=zipped), content_type, gzipped=zipped)

    def _filtered_body(self, groups: list[Group], names: tuple[str, ...],  # pylint: disable=too-many-arguments
                       form: _Format, content_type: str, zipped: bool) -> Body:
        """The body of a ``name[]`` scrape: the one kept for these names, if it was cut from
        the same family objects, else rendered (leaving the full scrape's bytes as kept)."""
        wanted = set(names)
        sources = tuple(family for group in groups for family in group
                        if any(sample.name in wanted for sample in family.samples))
        key = (content_type, zipped, names)
        with self._lock:
            kept = self._filtered.get(key)
        if kept is not None and len(kept[0]) == len(sources) \
                and all(a is b for a, b in zip(kept[0], sources)):
            return kept[1]
        body = Body(form.render([tuple(_restricted(sources, wanted))], keep=False,
                                gzipped=zipped), content_type, gzipped=zipped)
        with self._lock:
            self._filtered[key] = (sources, body)  # held: their ids stay theirs
        return body


def _restricted(families: Iterable[Metric], names: set[str]) -> list[Metric]:
    """``name[]`` as the client library applies it: the samples of those names, and only
    the families left with any (a family name alone, e.g. a counter's, matches nothing)."""
    kept = []
    for family in families:
        samples = [s for s in family.samples if s.name in names]
        if samples:
            subset = Metric(family.name, family.documentation, family.type)
            subset.samples = samples
            kept.append(subset)
    return kept
