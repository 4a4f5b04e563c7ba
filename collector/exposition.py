"""``/metrics`` bodies: content negotiation, gzip, and each metric family rendered once.

Rendering text is most of a scrape's CPU (~0.4 ms of ~0.55 ms for our ~90
samples). The collector hands back the *same* family objects until a refresh
changes them, so :class:`Exposition` keeps each family's rendered bytes, keyed
by the family object itself, and a scrape served from cache only renders the
three per-scrape families and joins bytes. Format choice and gzip follow the
client library (``choose_encoder``, ``gzip_accepted``), so OpenMetrics and text
negotiation behave as with its own handlers, ``name[]`` filters included.
"""

from __future__ import annotations

import gzip
import threading
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from cachetools import LRUCache
from prometheus_client.exposition import choose_encoder, gzip_accepted
from prometheus_client.registry import Collector
from prometheus_client.metrics_core import Metric

from collector.exporter import BinanceCollector

Encoder = Callable[[Collector], bytes]

# content types are keyed by the Accept header's version and escaping: a client
# can make up any number of them, so only the last few are kept
FORMATS_KEPT = 4
GZIP_LEVEL = 6


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


class _Families(Collector):
    """Families already collected, as the ``Collector`` an encoder takes."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self._families


class _Format:
    """One content type: its encoder, its trailer and the bytes of the last families seen."""

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder
        self.trailer = encoder(_Families([]))  # b"# EOF\n" for OpenMetrics, b"" for text
        self._lock = threading.Lock()
        self._chunks: dict[int, tuple[Metric, bytes]] = {}

    def render(self, families: Sequence[Metric], keep: bool = True) -> bytes:
        """The whole exposition; families seen last time are not rendered again.

        ``keep=False`` (a ``name[]`` subset) reads the kept bytes without
        replacing them, so a filtered scrape does not evict the full one's.
        """
        with self._lock:
            known = self._chunks
        chunks: dict[int, tuple[Metric, bytes]] = {}
        for family in families:
            # keyed by id(): every family in the map is held by it, so no other
            # object can have the same id while its bytes are kept
            hit = known.get(id(family))
            if hit is None:
                text = self.encoder(_Families([family]))
                hit = (family, text[: len(text) - len(self.trailer)])
            chunks[id(family)] = hit
        if keep:
            with self._lock:
                self._chunks = chunks  # only the current families: memory stays bounded
        return b"".join(chunk for _, chunk in chunks.values()) + self.trailer


class Exposition:
    """Bodies of ``/metrics`` for one collector (see the module docstring)."""

    def __init__(self, collector: BinanceCollector) -> None:
        self.collector = collector
        self._formats: LRUCache[str, _Format] = LRUCache(maxsize=FORMATS_KEPT)
        self._lock = threading.Lock()

    def cached(self, request: Request) -> Body | None:
        """The body, if it can be had without waiting on a refresh; else None."""
        families = self.collector.collect_cached()
        return None if families is None else self._body(families, request)

    def fresh(self, request: Request) -> Body:
        """The body, refreshing what is due first (may wait on Binance: run it off the loop)."""
        return self._body(list(self.collector.collect()), request)

    def _body(self, families: list[Metric], request: Request) -> Body:
        try:
            encoder, content_type = choose_encoder(request.accept)
        except (TypeError, ValueError):  # e.g. "version=abc": the library cannot compare it
            encoder, content_type = choose_encoder("")  # the default, as for an unknown type
        with self._lock:
            form = self._formats.get(content_type)
            if form is None:
                form = self._formats[content_type] = _Format(encoder)
        if request.names:
            families = _restricted(families, set(request.names))
        data = form.render(families, keep=not request.names)
        if gzip_accepted(request.accept_encoding):
            return Body(gzip.compress(data, GZIP_LEVEL), content_type, gzipped=True)
        return Body(data, content_type)


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
