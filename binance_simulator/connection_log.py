"""The streams' connection log: each upgrade request, when its connection opened and
ended, what it was subscribed to when, and when it sent the events of which market step,
for ``GET /_sim/connections``.

``StreamStats`` counts; this tells which and when, so that a harness can tell which
connection carried a value a client shows, and whether that connection was still open
then (``make soak`` checks that the exporter never serves a value from a connection that
had already gone). Times are the simulator's clock: Unix seconds, or the fake clock of
in-process tests. Entries, oldest first::

    {"id": 3, "outcome": "accepted", "status": 101, "at": 1767225601.0,
     "closed_at": 1767225605.0, "closed": "abrupt",
     "streams": {"btcusdt@bookTicker": [[1767225601.0, 1767225605.0]]},
     "sent": [[1767225602, 1767225602.003], [1767225603, 1767225603.002]]}
    {"id": 4, "outcome": "refused", "status": 503, "at": 1767225606.5,
     "closed_at": null, "closed": null, "streams": {}, "sent": []}

``outcome`` is as counted under ``connections`` in the stats (``accepted``, ``refused``,
``bad_request``); ``closed`` as counted under ``closed`` (``abrupt``, ``server_shutdown``,
``pong_timeout``, ``client``, ``gone``, ...), the time being when the server closed or
aborted it, or saw it end; ``streams`` maps each stream name to the intervals it was
subscribed, ``[since, until]``, ``until`` null while it still is. A stream subscribed at
``since`` starts from the market of that moment: the simulator sends only changes.
``sent`` lists ``[step, at]``: the connection sent events of market step ``step``, the
first of them at ``at`` (a stalled step sends none; a step's bookTicker and depth events
describe the market at that step).

Bounded: the last :data:`MAX_ENTRIES` attempts, the last :data:`MAX_INTERVALS` intervals
of a stream and the last :data:`MAX_STEPS` steps sent on one connection.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

MAX_ENTRIES = 1000
MAX_INTERVALS = 100
MAX_STEPS = 3600  # an hour of the default 1 s steps
ACCEPTED = "accepted"


@dataclass
class _Entry:  # pylint: disable=too-many-instance-attributes
    """One attempt, and the connection it opened, if any."""

    ident: int
    outcome: str
    status: int
    at: float
    closed_at: float | None = None
    closed: str | None = None
    streams: dict[str, deque[list[float | None]]] = field(default_factory=dict)
    sent: deque[tuple[int, float]] = field(default_factory=lambda: deque(maxlen=MAX_STEPS))

    def subscribe(self, names: Iterable[str], at: float) -> None:
        """Open an interval from ``at`` for each name not subscribed already."""
        for name in names:
            intervals = self.streams.setdefault(name, deque(maxlen=MAX_INTERVALS))
            if not intervals or intervals[-1][1] is not None:
                intervals.append([at, None])

    def unsubscribe(self, names: Iterable[str], at: float) -> None:
        """End at ``at`` the open interval of each name that has one."""
        for name in names:
            intervals = self.streams.get(name)
            if intervals and intervals[-1][1] is None:
                intervals[-1][1] = at

    def subscribed(self) -> set[str]:
        """The names subscribed now."""
        return {name for name, intervals in self.streams.items() if intervals[-1][1] is None}

    def to_json(self) -> dict[str, Any]:
        """The entry as ``GET /_sim/connections`` lists it."""
        return {"id": self.ident, "outcome": self.outcome, "status": self.status,
                "at": self.at, "closed_at": self.closed_at, "closed": self.closed,
                "streams": {name: [list(interval) for interval in intervals]
                            for name, intervals in self.streams.items()},
                "sent": [list(sent) for sent in self.sent]}


class ConnectionLog:
    """The log (thread-safe): written by the stream server, read by the control API."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._lock = threading.Lock()
        self._max = max_entries
        self._entries: dict[int, _Entry] = {}  # by id, oldest first
        self._last_id = 0

    def attempt(self, at: float, outcome: str, status: int) -> int:
        """An upgrade request answered with ``status`` and no connection; its id."""
        return self._add(_Entry(0, outcome, status, at))

    def opened(self, at: float, streams: Iterable[str]) -> int:
        """A connection opened at ``at``, subscribed to ``streams``; its id."""
        entry = _Entry(0, ACCEPTED, 101, at)
        entry.subscribe(streams, at)
        return self._add(entry)

    def subscriptions(self, ident: int, streams: Iterable[str], at: float) -> None:
        """Connection ``ident`` is subscribed to exactly ``streams`` from ``at`` on."""
        with self._lock:
            entry = self._entries.get(ident)
            if entry is None or entry.closed_at is not None:
                return
            now, before = set(streams), entry.subscribed()
            entry.subscribe(sorted(now - before), at)
            entry.unsubscribe(before - now, at)

    def sent(self, ident: int, step: int, at: float) -> None:
        """Connection ``ident`` sends an event of market step ``step`` at ``at`` (the
        first one of each step counts)."""
        with self._lock:
            entry = self._entries.get(ident)
            if entry is not None and (not entry.sent or entry.sent[-1][0] != step):
                entry.sent.append((step, at))

    def closed(self, ident: int, at: float, reason: str) -> None:
        """Connection ``ident`` ended at ``at`` (the first report counts)."""
        with self._lock:
            entry = self._entries.get(ident)
            if entry is None or entry.closed_at is not None:
                return
            entry.closed_at, entry.closed = at, reason
            entry.unsubscribe(list(entry.streams), at)

    def reset(self) -> None:
        """Forget every attempt but the connections still open."""
        with self._lock:
            self._entries = {ident: entry for ident, entry in self._entries.items()
                             if entry.outcome == ACCEPTED and entry.closed_at is None}

    def snapshot(self) -> list[dict[str, Any]]:
        """Every entry as JSON, oldest first."""
        with self._lock:
            return [entry.to_json() for entry in self._entries.values()]

    def _add(self, entry: _Entry) -> int:
        with self._lock:
            self._last_id += 1
            entry.ident = self._last_id
            self._entries[entry.ident] = entry
            while len(self._entries) > self._max:
                del self._entries[next(iter(self._entries))]
            return entry.ident
