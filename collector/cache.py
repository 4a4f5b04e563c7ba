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
  failure up to the group's TTL. It starts at 10 s for a group that never had
  data (a start during a blip) and at 60 s or the TTL, if shorter, for one that
  has: the books (30 s) and spreads (10 s) are never retried more often than a
  healthy market refreshes them, and a long outage settles at the healthy rate;
* **no stale data**: once a value expires it is never returned again, even if
  the refresh fails (``last_good`` stays available to decide *what* to fetch,
  never as a value to publish).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Generic, TypeVar

from cachetools import TTLCache

from collector.errors import BinanceError, NotAttempted

T = TypeVar("T")

MIN_RETRY_DELAY = 10.0
HELD_FAILURE = 60.0  # first retry delay of a group that has data, if its TTL is longer
_VALUE = "value"


@dataclass(frozen=True, slots=True)
class Outcome(Generic[T]):
    """What a caller gets: a current value, or the error of the last attempt."""

    value: T | None
    error: BinanceError | None = None
    refreshed: bool = False  # True only for the one call that did the refresh

    @property
    def ok(self) -> bool:
        """True when ``value`` is current."""
        return self.error is None and self.value is not None


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
        # bumped after every refresh has changed the state above (success or failure),
        # never before: a reader that sees the old number may be shown older state
        # only together with that old number
        self.generation = 0

    def get(self, load: Callable[[], T]) -> Outcome[T]:
        """The cached value if still fresh, else ``load()`` it once for everyone.

        ``load`` must raise :class:`BinanceError` on failure; anything else is
        a bug and propagates.
        """
        with self._lock:
            cached = self._values.get(_VALUE)
            if cached is not None:
                return Outcome(cached)
            if self._failure is not None and self._clock() < self._retry_at:
                return Outcome(None, self._failure)
            try:
                value = load()
            except BinanceError as exc:
                self._remember_failure(exc)
                self.generation += 1
                return Outcome(None, exc, refreshed=True)
            self._values[_VALUE] = value
            self._failure, self._consecutive_failures = None, 0
            self.last_good = value
            self.last_success = self._wall()
            self.generation += 1
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
        """Hold the failure for retry_delay × 2^n, up to the TTL (see the module docstring).

        n counts consecutive failures, and a group that has data starts at one
        minute (or its TTL, if shorter): a failing 30 s books group is retried
        every 30 s, never more often than a healthy one, while a blip on the
        hourly exchangeInfo clears within a minute instead of an hour. Nothing
        was sent for NotAttempted (budget spent, no ranking yet): retried soon.
        """
        if isinstance(exc, NotAttempted):
            delay = self.retry_delay
        else:
            ceiling = max(self.ttl, self.retry_delay)
            base = self.retry_delay
            if self.last_good is not None:
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

    def invalidate(self) -> None:
        """Forget the cached value (not a remembered failure): the next get() refreshes."""
        with self._lock:
            self._values.clear()
