"""Read-only maps over a fixed key order, held in chunks that later versions share.

A whole-market map (1,400 symbols' best bid/ask, their extremes, their event counts)
changes a few keys at a time. :class:`ChunkedMap` stores its values in chunks of
:data:`CHUNK` consecutive keys of a :class:`Layout`; :meth:`ChunkedMap.updated` copies
only the chunks of the keys that changed and shares the others, so a version costs what
changed, and a reader that keeps what it made of a chunk (rendered lines, say) keyed by
the chunk object itself knows that an unchanged chunk is the *same* object::

    layout = Layout(("BTCUSDT", "ETHUSDT"))
    first = ChunkedMap.of(layout, {"BTCUSDT": 1})
    later = first.updated({"ETHUSDT": 2})       # {"BTCUSDT": 1, "ETHUSDT": 2}
    later.chunks[0] is first.chunks[0]          # False: that chunk changed

It is an ordinary :class:`~collections.abc.Mapping` otherwise (iteration in the
layout's order, equality with a dict). Pure: no I/O, no lock; immutable once built.
"""

from __future__ import annotations

import weakref
from typing import Any, Generic, Iterable, Iterator, Mapping, TypeVar

V = TypeVar("V")

CHUNK = 16  # keys a chunk: what one change costs to copy, render and compress again
LINEAGE = 8  # versions :meth:`ChunkedMap.changed_since` walks back before giving up


class _Absent:
    """The value of a key the map does not hold."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()


class Layout:
    """A key order, cut into chunks of :data:`CHUNK`: shared by every version of a map."""

    __slots__ = ("keys", "index", "chunk_keys", "__weakref__")

    def __init__(self, keys: Iterable[str]) -> None:
        self.keys = tuple(dict.fromkeys(keys))
        self.index = {key: place for place, key in enumerate(self.keys)}
        self.chunk_keys = tuple(self.keys[start:start + CHUNK]
                                for start in range(0, len(self.keys), CHUNK))


class ChunkedMap(Mapping[str, V], Generic[V]):
    """A read-only map of some of a layout's keys (see the module docstring)."""

    __slots__ = ("layout", "chunks", "_len", "_parent", "_changed", "__weakref__")

    def __init__(self, layout: Layout, chunks: tuple[tuple[Any, ...], ...], length: int) -> None:
        self.layout = layout
        self.chunks = chunks  # per chunk of the layout, its values (ABSENT: not held)
        self._len = length
        # the map this one was updated from (weakly: versions are not kept alive by their
        # successors), and the keys whose values differ from it
        self._parent: weakref.ref[ChunkedMap[V]] | None = None
        self._changed: tuple[str, ...] = ()

    @classmethod
    def of(cls, layout: Layout, values: Mapping[str, V]) -> "ChunkedMap[V]":
        """The map of ``values``' keys that ``layout`` has."""
        chunks = tuple(tuple(values.get(key, ABSENT) for key in keys)
                       for keys in layout.chunk_keys)
        return cls(layout, chunks, sum(1 for key in layout.keys if key in values))

    def updated(self, changes: Mapping[str, Any]) -> "ChunkedMap[V]":
        """This map with ``changes`` (a value, or :data:`ABSENT` to drop the key); chunks
        no change touches are shared, and a chunk left equal is kept."""
        touched: dict[int, list[Any]] = {}
        changed = []
        length = self._len
        index = self.layout.index
        for key, value in changes.items():
            place = index.get(key)
            if place is None:
                continue  # not of this layout
            number, offset = divmod(place, CHUNK)
            values = touched.get(number)
            if values is None:
                values = touched[number] = list(self.chunks[number])
            old = values[offset]
            if old is value or (old is not ABSENT and value is not ABSENT and old == value):
                continue
            length += (value is not ABSENT) - (old is not ABSENT)
            values[offset] = value
            changed.append(key)
        if not changed:
            return self  # nothing changed
        chunks = list(self.chunks)
        for number, values in touched.items():
            chunks[number] = tuple(values)
        successor: ChunkedMap[V] = ChunkedMap(self.layout, tuple(chunks), length)
        successor._parent, successor._changed = weakref.ref(self), tuple(changed)
        return successor

    def changed_since(self, older: "ChunkedMap[V]") -> set[str] | None:
        """The keys whose values differ from ``older``'s, when this map was updated from it
        (through versions still alive, at most :data:`LINEAGE` of them); else None."""
        keys: set[str] = set()
        node: ChunkedMap[V] | None = self
        for _ in range(LINEAGE):
            if node is older:
                return keys
            if node is None or node._parent is None:  # pylint: disable=protected-access
                return None
            keys.update(node._changed)  # pylint: disable=protected-access
            node = node._parent()  # pylint: disable=protected-access
        return None

    def __getitem__(self, key: str) -> V:
        place = self.layout.index.get(key)
        if place is None:
            raise KeyError(key)
        value = self.chunks[place // CHUNK][place % CHUNK]
        if value is ABSENT:
            raise KeyError(key)
        return value  # type: ignore[no-any-return]

    def __iter__(self) -> Iterator[str]:
        for keys, values in zip(self.layout.chunk_keys, self.chunks):
            for key, value in zip(keys, values):
                if value is not ABSENT:
                    yield key

    def __len__(self) -> int:
        return self._len

    def __repr__(self) -> str:
        return f"ChunkedMap({dict(self.items())!r})"

    def chunk_items(self, number: int) -> Iterator[tuple[str, V]]:
        """The keys and values held in chunk ``number``, in the layout's order."""
        for key, value in zip(self.layout.chunk_keys[number], self.chunks[number]):
            if value is not ABSENT:
                yield key, value


def chunked(values: Mapping[str, V], layout: Layout | None = None) -> ChunkedMap[V]:
    """``values`` as a :class:`ChunkedMap` (itself if it is one of ``layout``, or of any
    layout when none is given)."""
    if isinstance(values, ChunkedMap) and (layout is None or values.layout is layout):
        return values
    return ChunkedMap.of(layout or Layout(values), values)
