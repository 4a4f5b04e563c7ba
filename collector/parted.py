"""Metric families of the whole market, built and kept in parts: one per chunk of symbols.

A family such as ``binance_price_spread`` has a series per symbol followed, 1,400 with
``--spreads all``, and a stream event changes one. :class:`PartedBuilder` builds a
family from :class:`~collector.chunked.ChunkedMap` objects that share a layout, one
part (a tuple of samples) per chunk: a part whose chunks are the same objects as last
time is the same part, and within a changed part a symbol whose values are the same
objects keeps the same sample objects. So :mod:`collector.exposition`, which keeps the
rendered bytes of each part and each sample by identity, renders only what changed.

The samples are the client library's own (made by its metric family classes), so a
:class:`PartedFamily` is an ordinary family to every reader: its ``samples`` are the
parts' in order.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Iterable, Sequence

from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

from collector.chunked import ABSENT, ChunkedMap

Part = tuple[Sample, ...]
Rows = Callable[[str, tuple[Any, ...], Any], Iterable[tuple[Sequence[str], float]]]


class PartedFamily(Metric):
    """A metric family whose samples come in parts (see the module docstring)."""

    def __init__(self, template: Metric, parts: tuple[Part, ...]) -> None:
        super().__init__(template.name, template.documentation, template.type, template.unit)
        self.template = template
        self.parts = parts

    @property
    def samples(self) -> list[Sample]:
        """Every part's samples, in order."""
        return [sample for part in self.parts for sample in part]

    @samples.setter
    def samples(self, value: list[Sample]) -> None:
        if value:  # Metric.__init__ sets [] only: the samples are the parts'
            raise AttributeError("a PartedFamily's samples are its parts'")


class PartedBuilder:
    """One family of the whole market, kept per chunk and per symbol between builds.

    ``template`` is an empty family of the client library (its class makes the samples);
    ``rows(symbol, values, meta)`` gives a symbol's (labels, value) rows from its values in
    the maps, in order (:data:`~collector.chunked.ABSENT` where a map lacks it), the first
    map's keys driving.
    """

    def __init__(self, template: Metric, rows: Rows) -> None:
        self._template = template
        self._rows = rows
        self._lock = threading.Lock()
        self._maps: Sequence[ChunkedMap[Any]] | None = None  # those of the last build
        self._meta: object = None
        self._parts: tuple[Part, ...] = ()
        self._series: dict[str, tuple[tuple[object, ...], Part]] = {}  # symbol → its samples

    def family(self, maps: Sequence[ChunkedMap[Any]], meta: object = None) -> PartedFamily:
        """The family of ``maps`` (one layout); ``meta``: what else the rows read (the
        symbols' quote assets), compared by identity."""
        with self._lock:
            layout, last = maps[0].layout, self._maps
            if last is None or last[0].layout is not layout or meta is not self._meta:
                self._meta, self._series = meta, {}
                dirty: Iterable[int] = range(len(layout.chunk_keys))
                parts: list[Part] = [()] * len(layout.chunk_keys)
            else:
                changed: set[int] = set()
                for old, new in zip(last, maps):
                    if old is not new:
                        changed.update(number for number, (a, b) in
                                       enumerate(zip(old.chunks, new.chunks)) if a is not b)
                dirty, parts = sorted(changed), list(self._parts)
            for number in dirty:
                parts[number] = self._part(number, maps)
            self._maps, self._parts = tuple(maps), tuple(parts)
            return PartedFamily(self._template, self._parts)

    def _part(self, number: int, maps: Sequence[ChunkedMap[Any]]) -> Part:
        """Chunk ``number``'s samples: a symbol's kept ones while its values are the same."""
        keys = maps[0].layout.chunk_keys[number]
        series, samples = self._series, list[Sample]()
        for symbol, values in zip(keys, zip(*(m.chunks[number] for m in maps))):
            if values[0] is ABSENT:
                series.pop(symbol, None)
                continue
            kept = series.get(symbol)
            if kept is not None and kept[0] == values:  # the same objects, or equal values
                made = kept[1]
            else:
                scratch = _empty(self._template)
                for labels, value in self._rows(symbol, values, self._meta):
                    scratch.add_metric(labels, value)  # type: ignore[attr-defined]
                made = tuple(scratch.samples)
                series[symbol] = (values, made)
            samples.extend(made)
        return tuple(samples)


def _empty(template: Metric) -> Metric:
    """A new empty family like ``template``, of its class and label names."""
    family = type(template).__new__(type(template))
    family.__dict__.update(template.__dict__)
    family.samples = []
    return family
