"""TTL caching of one data group, with single flight and remembered failures.

A *group* is data refreshed together from one kind of upstream call (the 24 h
ticker, the order books, ...). :class:`TtlGroup` guarantees:

* **TTL**: a successful value is reused until ``ttl`` seconds have passed
  (``cachetools.TTLCache`` on an injectable clock, so tests never sleep).
  What to fetch (e.g. which symbols) is decided when the refresh happens, so a
  new ranking never forces a refresh inside the TTL;
* **single flight**: one lock per group, so concurrent scrapes that find the
  value expired cause ONE upstream refresh; the others wait and reuse it;
* **failure memory**: a failed refresh is remembered, and callers get the
  failure without a new attempt, for a delay that doubles with each consecutive
  failure. For a group that has data it starts at 60 s or the TTL, if shorter,
  and grows up to the TTL: the books (30 s) and spreads (10 s) are never
  retried more often than a healthy market refreshes them, and a long outage
  settles at the healthy rate. A group that never had data (a start during an
  outage) starts at 10 s and grows only to 60 s (or its TTL), so it recovers within a
  minute of Binance coming back, not within its TTL (an hour for
  exchangeInfo). A rate limit is held exactly until its cool-down ends, so the
  first call after it recovers every group; and a refresh that sent nothing
  (``NotAttempted``: no ranking yet, or no time left) is not held at all;
* **no stale data**: once a value expires it is never returned again, even if
  the refresh fails (``last_good`` stays available to decide *what* to fetch,
  never as a value to publish).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Callable, Generic, TypeVar

from cachetools import TTLCache

from collector.errors import BinanceError, NotAttempted, RateLimited
from collector.records import Outcome

T = TypeVar("T")

MIN_RETRY_DELAY = 10.0
HELD_FAILURE = 60.0  # first retry delay of a group that has data, if its TTL is longer
MAX_RETRY_WITHOUT_DATA = 60.0  # a group that never had data is retried at least this often
_VALUE = "value"


class TtlGroup(Generic[T]):  # pylint: disable=too-many-instance-attributes
    """A single-flight TTL cache for one data group (see module docstring)."""

    def __init__(
        self,
        name: str,
        ttl: float,
        *,
        retry_delay: float = MIN_RETRY_DELAY,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.ttl = ttl
        self.retry_delay = retry_delay
        self._values: TTLCache[str, T] = TTLCache(maxsize=1, ttl=ttl, timer=clock)
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()  # held during a refresh: the single flight
        self._stats_lock = threading.Lock()  # never held during I/O: for readers of counters
        self._failure: BinanceError | None = None
        self._retry_at = 0.0
        self._consecutive_failures = 0
        self._failures: Counter[str] = Counter()  # by error kind
        self.last_good: T | None = None
        self.last_success: float | None = None  # Unix time, for the freshness metric

    def get(self, load: Callable[[], T], *, now: bool = False) -> Outcome[T]:
        """The cached value if still fresh, else ``load()`` it once for everyone.

        ``now``: load whatever the TTL or a remembered failure (an explicit
        refresh, as the report's Q5 ticks ask for). ``load`` must raise
        :class:`BinanceError` on failure; anything else is a bug and propagates.
        """
        with self._lock:
            if not now:
                cached = self._values.get(_VALUE)
                if cached is not None:
                    return Outcome(cached)
                if self._failure is not None and self._clock() < self._retry_at:
                    return Outcome(None, self._failure)
            self._values.clear()  # the old value is never current again, whatever happens
            try:
                value = load()
            except BinanceError as exc:
                self._remember_failure(exc)
                return Outcome(None, exc, refreshed=True)
            self._values[_VALUE] = value
            self._failure, self._consecutive_failures = None, 0
            self.last_good = value
            self.last_success = self._wall()
            return Outcome(value, refreshed=True)

    def peek(self) -> Outcome[T] | None:
        """The answer get() would give without refreshing, or None when a refresh is due.

        For the common case of a scrape served from cache: no thread hand-off is
        needed when nothing has to be fetched. It never waits: while a refresh
        holds the lock it answers None, and the caller waits in get().
        """
        if not self._lock.acquire(blocking=False):  # pylint: disable=consider-using-with
            return None
        try:
            cached = self._values.get(_VALUE)
            if cached is not None:
                return Outcome(cached)
            if self._failure is not None and self._clock() < self._retry_at:
                return Outcome(None, self._failure)
            return None
        finally:
            self._lock.release()

    def _remember_failure(self, exc: BinanceError) -> None:
        """Hold the failure for a while (see the module docstring).

        n counts consecutive failures; the delay is retry_delay × 2^n, bounded
        by the TTL for a group that has data (starting at one minute, or the TTL
        if shorter), by the TTL or one minute, whichever is shorter, for a group
        that has none. A failing 30 s
        books group is retried every 30 s, never more often than a healthy one,
        while a blip on the hourly exchangeInfo clears within a minute.
        """
        if isinstance(exc, NotAttempted):
            delay = 0.0  # nothing was sent: nothing to spare Binance
        elif isinstance(exc, RateLimited):
            delay = exc.retry_after  # the cool-down's end, exactly: not one scrape later
        else:
            ceiling = max(self.retry_delay, min(self.ttl, MAX_RETRY_WITHOUT_DATA))
            base = self.retry_delay
            if self.last_good is not None:
                ceiling = max(self.ttl, self.retry_delay)
                base = min(ceiling, max(self.retry_delay, HELD_FAILURE))
            # the exponent is capped: 2.0 ** 1024 overflows a float after a long outage
            doublings = min(self._consecutive_failures, 20)
            delay = min(base * 2.0**doublings, ceiling)
            self._consecutive_failures += 1
        self._failure, self._retry_at = exc, self._clock() + delay
        with self._stats_lock:
            self._failures[exc.kind] += 1

    def failure_counts(self) -> dict[str, int]:
        """Failed refreshes by error kind (a copy, safe while a refresh runs)."""
        with self._stats_lock:
            return dict(self._failures)
