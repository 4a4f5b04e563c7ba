"""Q4 from ``<symbol>@bookTicker``: each symbol's best bid/ask, its 10 s extremes, its count.

:class:`Tops` keeps, per symbol followed, the latest best bid/ask pushed (an older
update, from a connection being replaced, is ignored by its update id), the lowest and
highest spread of the last 10 s (:class:`SpreadWindow`) and how many updates were
applied. What a scrape publishes sits in :class:`~collector.tracked.TrackedMap` objects,
so a reader learns which symbols changed since it last looked. No I/O, no lock: the
stream state's lock guards it. A sample event::

    {"u": 400900217, "s": "BNBUSDT", "b": "25.35190000", "B": "31.21000000",
     "a": "25.36520000", "A": "40.66000000"}
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from decimal import Decimal
from typing import Any, Iterable, Sequence

from collector import answers
from collector.q5 import SAMPLE_SECONDS, SpreadMap
from collector.records import BookTop
from collector.tracked import TrackedMap


class SpreadWindow:
    """The lowest and highest spread over the last ``seconds``, the latest one included.

    A value counts while it was current: from its update to the next one. Two monotonic
    queues of ``[no longer current at, value]`` (the latest: never), so a bound costs
    O(1) amortised whatever the update rate, and memory holds at most one window's
    updates.
    """

    def __init__(self, seconds: float = SAMPLE_SECONDS) -> None:
        self._seconds = seconds
        self._low: deque[list[Any]] = deque()  # values increasing
        self._high: deque[list[Any]] = deque()  # values decreasing

    def add(self, at: float, value: Decimal) -> None:
        """A new current spread at ``at``: the one before stops being current."""
        self.end(at)
        entry = [math.inf, value]
        while self._low and self._low[-1][1] >= value:
            self._low.pop()
        while self._high and self._high[-1][1] <= value:
            self._high.pop()
        self._low.append(entry)
        self._high.append(entry)

    def end(self, at: float) -> None:
        """No spread from ``at`` on (an empty side, a crossed book): the latest value stops
        being current, and leaves the window ``seconds`` later."""
        for queue in (self._low, self._high):
            if queue and queue[-1][0] > at:  # unless an end() before said when it did
                queue[-1][0] = at
        self._expire(at)

    def bounds(self, now: float) -> tuple[Decimal, Decimal] | None:
        """(minimum, maximum) of the values current in (now - seconds, now]; None if none."""
        self._expire(now)
        if not self._low:
            return None
        return self._low[0][1], self._high[0][1]

    def changes_at(self) -> float:
        """When the bounds next change with time alone (no :meth:`add` or :meth:`end`):
        when the value holding either leaves the window; never while only the latest is held."""
        ends = [queue[0][0] for queue in (self._low, self._high) if queue]
        return min(ends, default=math.inf) + self._seconds

    def _expire(self, now: float) -> None:
        for queue in (self._low, self._high):
            while queue and queue[0][0] <= now - self._seconds:
                queue.popleft()


class Tops:  # pylint: disable=too-many-instance-attributes
    """Best bid/asks, 10 s extremes and update counts of the symbols followed."""

    def __init__(self, window: float = SAMPLE_SECONDS) -> None:
        self._window = window
        self.symbols: tuple[str, ...] = ()  # followed, in order
        self.tops: TrackedMap[str, tuple[int, BookTop]] = TrackedMap()  # (update id, top)
        self.extremes: TrackedMap[str, tuple[Decimal, Decimal]] = TrackedMap()  # (min, max)
        self.updates: TrackedMap[str, int] = TrackedMap()
        self.last_at = 0.0  # Unix time of the last best bid/ask applied
        self._windows: dict[str, SpreadWindow] = {}
        self._due: list[tuple[float, str]] = []  # (when its extremes change with time, symbol)
        self._scheduled: dict[str, float] = {}  # symbol → its earliest entry in _due

    def follow(self, symbols: Sequence[str]) -> None:
        """Follow ``symbols``: the others are dropped, their counts too; new ones start at 0."""
        self.drop([s for s in self.tops if s not in set(symbols)])
        self.symbols = tuple(symbols)
        self.updates.replace({s: self.updates.get(s) or 0 for s in symbols})

    def apply(self, update_id: int, top: BookTop, now: float, wall: float) -> None:
        """A best bid/ask pushed at ``now`` (monotonic; ``wall``: Unix time), unless already
        seen or older."""
        symbol = top.symbol
        previous = self.tops.get(symbol)
        if previous is not None and update_id <= previous[0]:
            return  # already seen, or older: from a connection being replaced
        self.tops[symbol] = (update_id, top)
        self.updates.add(symbol)
        self.last_at = wall
        window = self._windows.get(symbol)
        if window is None:
            window = self._windows[symbol] = SpreadWindow(self._window)
        spread = answers.spread(top)
        if spread is None:
            window.end(now)
        else:
            window.add(now, spread)
        self._bound(symbol, window, now)
        self.expire(now)

    def drop(self, symbols: Iterable[str]) -> None:
        """Forget the best bid/ask of ``symbols`` (they wait for their next update)."""
        for symbol in symbols:
            self.tops.pop(symbol, None)
            self.extremes.pop(symbol, None)
            self._windows.pop(symbol, None)
            self._scheduled.pop(symbol, None)

    def expire(self, now: float) -> None:
        """Extremes that left their window by ``now`` give way to the ones within it."""
        due = self._due
        while due and due[0][0] <= now:
            at, symbol = heapq.heappop(due)
            if self._scheduled.get(symbol) == at:
                del self._scheduled[symbol]
            window = self._windows.get(symbol)
            if window is not None:
                self._bound(symbol, window, now)

    def _bound(self, symbol: str, window: SpreadWindow, now: float) -> None:
        bounds = window.bounds(now)
        if bounds is None:
            self.extremes.pop(symbol, None)
        else:
            self.extremes[symbol] = bounds
        at = window.changes_at()  # one entry a symbol: the earliest (a later one is made
        if at < self._scheduled.get(symbol, math.inf):  # when that one is due)
            self._scheduled[symbol] = at
            heapq.heappush(self._due, (at, symbol))

    def spreads(self) -> SpreadMap:
        """Q4 of every symbol followed, now (None: no best bid/ask, or no spread)."""
        tops = self.tops
        return {s: None if (held := tops.get(s)) is None else answers.spread(held[1])
                for s in self.symbols}
