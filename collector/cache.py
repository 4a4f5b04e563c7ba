"""TTL caching of one data group, with single flight and remembered failures.

A *group* is data refreshed together from one kind of upstream call (the 24 h
ticker, the order books, ...). :class:`TtlGroup` guarantees:

* **TTL**: a successful value is reused until ``ttl`` seconds have passed
  (``cachetools.TTLCache`` on an injectable clock, so tests never sleep);
* **single flight**: one lock per group, so concurrent scrapes that find the
  value expired cause ONE upstream refresh; the others wait and reuse it;
* **failure memory**: a failed refresh is remembered for ``retry_delay``
  seconds, during which callers get the failure without a new attempt, so an
  outage never makes us call Binance more often than a healthy market does;
* **no stale data**: once a value expires it is never returned again, even if
  the refresh fails (``last_good`` stays available to compute *which*
  symbols to ask for, never as a value to publish).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Generic, Hashable, TypeVar

from cachetools import TTLCache

from collector.errors import BinanceError

T = TypeVar("T")

MIN_RETRY_DELAY = 10.0
_MISSING = object()


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
        self._values: TTLCache[Hashable, T] = TTLCache(maxsize=1, ttl=ttl, timer=clock)
        self._failures: TTLCache[str, BinanceError] = TTLCache(
            maxsize=1, ttl=retry_delay, timer=clock
        )
        self._lock = threading.Lock()
        self._wall = wall
        self.last_good: T | None = None
        self.last_success: float | None = None  # Unix time, for the freshness metric
        self.last_error: BinanceError | None = None
        self.refreshes = 0
        self.failures: Counter[str] = Counter()  # by error kind

    def get(self, load: Callable[[], T], key: Hashable = None) -> Outcome[T]:
        """The cached value for ``key`` if still fresh, else ``load()`` it once.

        ``key`` identifies what is cached (e.g. the tuple of symbols whose
        books these are): a different key is a miss even within the TTL.
        ``load`` must raise :class:`BinanceError` on failure; anything else is
        a bug and propagates.
        """
        with self._lock:
            cached = self._values.get(key, _MISSING)
            if cached is not _MISSING:
                return Outcome(cached)  # type: ignore[arg-type]
            failure = self._failures.get("last")
            if failure is not None:
                return Outcome(None, failure)
            try:
                value = load()
            except BinanceError as exc:
                self._failures["last"] = exc
                self.failures[exc.kind] += 1
                self.last_error = exc
                return Outcome(None, exc, refreshed=True)
            self._values.clear()
            self._values[key] = value
            self.refreshes += 1
            self.last_error = None
            self.last_good = value
            self.last_success = self._wall()
            return Outcome(value, refreshed=True)

    def invalidate(self) -> None:
        """Forget the cached value (not a remembered failure): the next get() refreshes."""
        with self._lock:
            self._values.clear()
