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
from itertools import chain
from typing import Any, Callable, Iterable, Sequence

from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

from collector.chunked import ABSENT, CHUNK, ChunkedMap

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
                symbols: Iterable[str] = layout.keys
                parts: list[Part] = [()] * len(layout.chunk_keys)
            else:
                symbols, parts = self._changed(last, maps), list(self._parts)
            index, dirty = layout.index, set()
            for symbol in symbols:
                number, offset = divmod(index[symbol], CHUNK)
                self._update(symbol, tuple(m.chunks[number][offset] for m in maps))
                dirty.add(number)
            get = self._series.get
            for number in dirty:
                parts[number] = tuple(chain.from_iterable(
                    [kept[1] for symbol in layout.chunk_keys[number]
                     if (kept := get(symbol)) is not None]))
            self._maps, self._parts = tuple(maps), tuple(parts)
            return PartedFamily(self._template, self._parts)

    @staticmethod
    def _changed(last: Sequence[ChunkedMap[Any]], maps: Sequence[ChunkedMap[Any]]) -> set[str]:
        """The symbols whose values in ``maps`` may differ from those in ``last``: as each
        map says (its lineage), else those of its chunks that are not the same objects."""
        symbols: set[str] = set()
        for old, new in zip(last, maps):
            if old is new:
                continue
            keys = new.changed_since(old)
            if keys is None:
                keys = {symbol for number, (a, b) in enumerate(zip(old.chunks, new.chunks))
                        if a is not b for symbol in new.layout.chunk_keys[number]}
            symbols |= keys
        return symbols

    def _update(self, symbol: str, values: tuple[Any, ...]) -> None:
        """A symbol's samples from its values now: those kept while the values are equal."""
        series = self._series
        if values[0] is ABSENT:
            series.pop(symbol, None)
            return
        kept = series.get(symbol)
        if kept is not None and kept[0] == values:
            return
        scratch = _empty(self._template)
        for labels, value in self._rows(symbol, values, self._meta):
            scratch.add_metric(labels, value)  # type: ignore[attr-defined]
        series[symbol] = (values, tuple(scratch.samples))


def _empty(template: Metric) -> Metric:
    """A new empty family like ``template``, of its class and label names."""
    family = type(template).__new__(type(template))
    family.__dict__.update(template.__dict__)
    family.samples = []
    return family
