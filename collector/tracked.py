"""Maps that record which of their keys changed: state changes tracked by construction.

The stream state keeps what a scrape publishes in :class:`TrackedMap` objects. Every
write goes through the map, and the map's :class:`Journal` notes the key with a new
version, so a reader holding a version asks :meth:`TrackedMap.changes_since` for what
changed after it, at a cost of what changed, and no caller can forget to say that
something did. A write of the value already held is no change. Pure: no I/O, no lock
(the owner's lock guards the map).
"""

from __future__ import annotations

from typing import Any, Generic, Iterator, MutableMapping, TypeVar

from collector.chunked import ABSENT

K = TypeVar("K")
V = TypeVar("V")


class Journal(Generic[K]):
    """Keys in the order of their last change, each with the version of that change."""

    __slots__ = ("version", "_last", "_reset")

    def __init__(self) -> None:
        self.version = 0
        self._last: dict[K, int] = {}
        self._reset = 0  # every key changed at this version (a new key set)

    def touch(self, key: K) -> None:
        """``key`` changed now."""
        self.version += 1
        self._last.pop(key, None)
        self._last[key] = self.version

    def reset(self) -> None:
        """Every key changed now; what was noted before is forgotten."""
        self.version += 1
        self._last.clear()
        self._reset = self.version

    def since(self, version: int) -> list[K] | None:
        """The keys changed after ``version``, latest first; None: every key may have
        (a reset came after it)."""
        if version < self._reset:
            return None
        changed = []
        for key, at in reversed(self._last.items()):
            if at <= version:
                break
            changed.append(key)
        return changed


class TrackedMap(MutableMapping[K, V]):
    """A dict whose writes are noted in its :attr:`journal` (see the module docstring)."""

    __slots__ = ("_data", "journal")

    def __init__(self) -> None:
        self._data: dict[K, V] = {}
        self.journal: Journal[K] = Journal()

    @property
    def version(self) -> int:
        """The version of the last change."""
        return self.journal.version

    def __getitem__(self, key: K) -> V:
        return self._data[key]

    def __setitem__(self, key: K, value: V) -> None:
        data = self._data
        if key in data:
            old = data[key]
            if old is value or old == value:
                return
        data[key] = value
        self.journal.touch(key)

    def __delitem__(self, key: K) -> None:
        del self._data[key]
        self.journal.touch(key)

    def __iter__(self) -> Iterator[K]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def get(self, key: K, default: V | None = None) -> V | None:  # type: ignore[override]
        return self._data.get(key, default)

    def add(self, key: K, amount: int = 1) -> None:
        """A count up by ``amount``."""
        self[key] = self._data.get(key, 0) + amount  # type: ignore[assignment,operator]

    def replace(self, items: dict[K, V]) -> None:
        """Hold ``items`` alone from now on: every key changed."""
        self._data = dict(items)
        self.journal.reset()

    def changes_since(self, version: int) -> dict[K, Any] | None:
        """The keys changed after ``version`` with their values now (:data:`ABSENT`:
        dropped), as :meth:`~collector.chunked.ChunkedMap.updated` takes them; None when
        every key may have (see :meth:`Journal.since`)."""
        keys = self.journal.since(version)
        if keys is None:
            return None
        data = self._data
        return {key: data.get(key, ABSENT) for key in keys}

    def copy(self) -> dict[K, V]:
        """The items now, as a plain dict."""
        return dict(self._data)
