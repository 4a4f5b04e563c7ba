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
from prometheus_client.samples import Sample

from collector.exporter import BinanceCollector, Group
from collector.parted import Part, PartedFamily

Encoder = Callable[[Collector], bytes]

# content types are keyed by the Accept header's version and escaping: a client
# can make up any number of them, so only the last few are kept
FORMATS_KEPT = 4
# ``name[]`` filtered bodies, kept by (content type, gzip, names) while the families they
# were cut from stay the same objects: a client polling a few series at a high rate
# (e.g. every millisecond) costs a comparison, not a render, until they change
FILTERS_KEPT = 8
GZIP_LEVEL = 6
# a parted family's segments at the level of the rest: at zlib's fastest (1) a whole-market
# body was 52 % larger (110 against 73 KB, section 7), for compression that only matters
# when scrapes come faster than the market changes
PARTED_GZIP_LEVEL = GZIP_LEVEL
# parts (collector.parted: 16 series each) compressed together in a parted family's gzip
# body: what a change costs to compress again against what compressing apart loses
SEGMENT_PARTS = 8
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


class _PartedBytes:
    """A parted family's bytes as last rendered: per part its bytes and deflate segment,
    its samples' lines (by sample, shared by its successors), and the whole family's text
    and gzip segments."""

    __slots__ = ("parts", "texts", "lines", "segments", "text", "gzipped")

    def __init__(self, parts: tuple[Part, ...],
                 lines: dict[int, tuple[Sample, bytes]] | None = None) -> None:
        self.parts = parts
        self.texts: list[bytes] = [b""] * len(parts)
        self.lines = {} if lines is None else lines  # id(sample) → (the sample, held; line)
        self.segments: list[bytes | None] = [None] * len(parts)
        self.text = b""
        self.gzipped: bytes | None = None

    def successor(self, parts: tuple[Part, ...]) -> tuple["_PartedBytes", list[int]]:
        """A copy for ``parts``, and which of them differ from this one's."""
        lines = self.lines
        if len(lines) > 2 * sum(map(len, parts)) + 64:  # lines of samples gone: drop them
            lines = {id(s): lines[id(s)] for part in self.parts for s in part}
        new = _PartedBytes(parts, lines)
        if len(parts) != len(self.parts):
            return new, list(range(len(parts)))
        new.texts, new.segments = list(self.texts), list(self.segments)
        return new, [n for n, (a, b) in enumerate(zip(self.parts, parts)) if a is not b]


class _Format:
    """One content type: its encoder, its trailer and the bytes of the last families seen.

    An ordinary family's bytes are kept by the family object. A
    :class:`~collector.parted.PartedFamily`'s are kept by part, with the lines of its
    samples: a changed part renders only the samples it did not have (a family's at
    once, with the client library's encoder), and is compressed alone.
    """

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder
        self.trailer = encoder(_FamilySet([]))  # b"# EOF\n" for OpenMetrics, b"" for text
        self._lock = threading.Lock()
        self._chunks: dict[int, _Chunk] = {}
        self._segments: dict[bytes, bytes] = {}  # a run of families' bytes → their deflate
        self._headers: dict[tuple[str, str, str, str], bytes] = {}
        self._parted: dict[str, _PartedBytes] = {}

    def _text(self, family: Metric, known: dict[int, _Chunk], chunks: dict[int, _Chunk]) -> bytes:
        hit = known.get(id(family))  # keyed by id(): every family in the map is held by it,
        if hit is None:  # so no other object can have the same id while its bytes are kept
            text = self.encoder(_FamilySet([family]))
            hit = (family, text[: len(text) - len(self.trailer)])
        chunks[id(family)] = hit
        return hit[1]

    def _header(self, family: Metric) -> bytes:
        key = (family.name, family.documentation, family.type, family.unit)
        header = self._headers.get(key)
        if header is None:
            text = self.encoder(_FamilySet([Metric(*key)]))
            header = self._headers[key] = text[: len(text) - len(self.trailer)]
        return header

    def _update_parted(self, families: list[PartedFamily]) -> None:
        """The bytes of each parted family, rendered where its parts changed: the samples
        none of them had, of all the families at once, by one call of the encoder (under
        the lock)."""
        pending: list[tuple[PartedFamily, bytes, _PartedBytes, list[int], list[Sample]]] = []
        for family in families:
            old = self._parted.get(family.name)
            if old is not None and old.parts is family.parts:
                continue
            new, dirty = (old or _PartedBytes(())).successor(family.parts)
            lines = new.lines
            missing = [sample for n in dirty for sample in family.parts[n]
                       if id(sample) not in lines]
            pending.append((family, self._header(family), new, dirty, missing))
        rendered = self._lines([(family, header, missing)
                                for family, header, _, _, missing in pending if missing])
        for family, header, new, dirty, missing in pending:
            lines = new.lines
            for sample, line in zip(missing, rendered.get(family.name, ())):
                lines[id(sample)] = (sample, line)
            for n in dirty:
                new.texts[n] = b"".join([lines[id(sample)][1] for sample in family.parts[n]])
                new.segments[n - n % SEGMENT_PARTS] = None
            new.text = b"".join([header, *new.texts])
            self._parted[family.name] = new

    def _lines(self, batches: list[tuple[PartedFamily, bytes, list[Sample]]]
               ) -> dict[str, list[bytes]]:
        """Per family, the lines of its samples (one each): every family's rendered by one
        call of the encoder, then cut at the headers known."""
        if not batches:
            return {}
        families = []
        for family, _, samples in batches:
            batch = Metric(family.name, family.documentation, family.type, family.unit)
            batch.samples = samples
            families.append(batch)
        text = self.encoder(_FamilySet(families))
        found, at = {}, 0
        for family, header, samples in batches:
            if not text.startswith(header, at):
                raise ValueError(f"{family.name}: not rendered where expected")
            at += len(header)
            lines = []
            for _ in samples:  # one line a sample is the format's rule
                end = text.index(b"\n", at) + 1
                lines.append(text[at:end])
                at = end
            found[family.name] = lines
        if len(text) - at != len(self.trailer):
            raise ValueError("the encoder rendered more lines than samples")
        return found

    def _gzipped(self, family: _PartedBytes, header: bytes) -> bytes:
        """A parted family's deflate segments: one each :data:`SEGMENT_PARTS` parts, the
        first with the header (compressed alone, a part of 16 series loses too much)."""
        if family.gzipped is None:
            segments = family.segments
            for n in range(0, len(segments), SEGMENT_PARTS):
                if segments[n] is None:
                    segments[n] = _deflate(b"".join([*([header] if n == 0 else []),
                                                     *family.texts[n:n + SEGMENT_PARTS]]),
                                           PARTED_GZIP_LEVEL)
            family.gzipped = b"".join(segment or b"" for segment in segments[::SEGMENT_PARTS]) \
                if segments else _deflate(header, PARTED_GZIP_LEVEL)
        return family.gzipped

    @staticmethod
    def _flush(run: list[bytes], data: bool, gzipped: bool, zipped: list[bytes],  # pylint: disable=too-many-arguments,too-many-positional-arguments
               segments: dict[bytes, bytes], kept: dict[bytes, bytes]) -> None:
        """A run of ordinary families' bytes into the gzip body: data compressed once per
        change (kept by their bytes), per-scrape families stored as they are."""
        if gzipped and run:
            text = b"".join(run)
            if not data:
                zipped.append(_stored(text))
            else:
                segment = segments.get(text) or kept.get(text) or _deflate(text)
                kept[text] = segment
                zipped.append(segment)
        run.clear()

    def render(self, groups: Sequence[Group], keep: bool = True,  # pylint: disable=too-many-locals
               gzipped: bool = False) -> bytes:
        """The whole exposition, gzipped if asked; families and parts seen last time are not
        rendered again, nor compressed again.

        ``keep=False`` (a ``name[]`` subset) reads the kept bytes without
        replacing them, so a filtered scrape does not evict the full one's.
        """
        texts, zipped = [], [_GZIP_HEADER]
        with self._lock:
            known, segments = self._chunks, self._segments
            chunks: dict[int, _Chunk] = {}
            kept_segments: dict[bytes, bytes] = {}
            self._update_parted([family for group in groups for family in group
                                 if isinstance(family, PartedFamily)])
            for group in groups:
                data = bool(group) and group[0].name not in PER_SCRAPE
                run: list[bytes] = []  # ordinary families in a row: compressed together
                for family in group:
                    if isinstance(family, PartedFamily):
                        self._flush(run, data, gzipped, zipped, segments, kept_segments)
                        parted = self._parted[family.name]
                        texts.append(parted.text)
                        if gzipped:
                            zipped.append(self._gzipped(parted, self._header(family)))
                    else:
                        run.append(self._text(family, known, chunks))
                        texts.append(run[-1])
                self._flush(run, data, gzipped, zipped, segments, kept_segments)
            if keep:  # only the current families: memory stays bounded
                self._chunks = chunks
                if gzipped:
                    self._segments = kept_segments
        texts.append(self.trailer)
        if not gzipped:
            return b"".join(texts)
        crc, length = 0, 0
        for text in texts:
            crc, length = zlib.crc32(text, crc), length + len(text)
        return b"".join([*zipped, _stored(self.trailer), _FINAL_BLOCK,
                         struct.pack("<II", crc, length & 0xFFFFFFFF)])


def _deflate(text: bytes, level: int = GZIP_LEVEL) -> bytes:
    """Raw deflate blocks of ``text``, none marked final, ending on a byte boundary: other
    blocks may follow it in the same stream. The window and memory fit the text (any
    inflater reads a smaller window): most pieces are a part of a few hundred bytes, for
    which zlib's default 256 KiB of state costs ten times the compression."""
    bits = min(15, max(10, len(text).bit_length()))
    compressor = zlib.compressobj(level, zlib.DEFLATED, -bits, max(2, bits - 7))
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
