"""The streams' figures for ``GET /_sim/stats``: connections, messages, closes, subscriptions.

Shared by every connection's session and the listener, so every method takes a lock.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable
from typing import Any

GROUPS = ("connections", "messages_sent", "closed", "frames")


class StreamStats:
    """Stream figures for ``GET /_sim/stats`` (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open = 0
        self._subscriptions: Counter[str] = Counter()
        self._counters: dict[str, Counter[str]] = {}
        self.reset()

    def reset(self) -> None:
        """Zero the counters (open connections and subscriptions are state: they stay)."""
        with self._lock:
            self._counters = {group: Counter() for group in GROUPS}

    def count(self, group: str, key: str) -> None:
        """One more ``key`` in ``group`` (connections, messages_sent, closed, frames)."""
        with self._lock:
            self._counters[group][key] += 1

    def opened(self, change: int) -> None:
        """A connection opened (+1) or ended (-1)."""
        with self._lock:
            self._open += change
            if change > 0:
                self._counters["connections"]["accepted"] += 1

    def subscribed(self, names: Iterable[str], change: int) -> None:
        """Subscriptions added (+1) or dropped (-1)."""
        with self._lock:
            for name in names:
                self._subscriptions[name] += change
            self._subscriptions = +self._subscriptions  # drop the zeros

    def snapshot(self) -> dict[str, Any]:
        """The ``streams`` part of the stats."""
        with self._lock:
            return {"connections_open": self._open,
                    "subscriptions": dict(sorted(self._subscriptions.items())),
                    **{group: dict(counts) for group, counts in self._counters.items()}}
