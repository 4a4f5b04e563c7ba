"""Binance's request weights and the per-minute weight limiter.

Binance meters its REST API in *weight*, not requests: each endpoint costs a
documented amount that grows with how much data is asked for, every answer
reports the weight used in the current minute in ``X-MBX-USED-WEIGHT-1M``, and
going over the limit (6000 per minute by default) is answered 429 with
``Retry-After``.  A client that keeps sending during that back-off window is
banned with 418 for escalating periods (Binance: from 2 minutes to 3 days).
Reproducing this lets tests check that the exporter reads the header, honours
``Retry-After`` and never gets itself banned.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

PING = "/api/v3/ping"
TIME = "/api/v3/time"
EXCHANGE_INFO = "/api/v3/exchangeInfo"
TICKER_24HR = "/api/v3/ticker/24hr"
DEPTH = "/api/v3/depth"
BOOK_TICKER = "/api/v3/ticker/bookTicker"

ENDPOINTS = (PING, TIME, EXCHANGE_INFO, TICKER_24HR, DEPTH, BOOK_TICKER)

DEFAULT_DEPTH_LIMIT = 100
MAX_DEPTH_LIMIT = 5000

BAN_FIRST_SECONDS = 120
BAN_MAX_SECONDS = 3 * 24 * 3600

Params = Mapping[str, Sequence[str]]


def _first(params: Params, name: str) -> str | None:
    values = params.get(name)
    return values[0] if values else None


def _symbols_count(params: Params) -> int | None:
    """How many symbols ``symbols=`` names, or None when absent or unparsable."""
    raw = _first(params, "symbols")
    if raw is None:
        return None
    try:
        parsed = json.loads(raw)
    except ValueError:
        return None
    return len(parsed) if isinstance(parsed, list) else None


def ticker_24hr_weight(params: Params) -> int:
    """2 for one symbol or up to 20, 40 for up to 100, 80 beyond or for all."""
    if _first(params, "symbol") is not None:
        return 2
    count = _symbols_count(params)
    if count is None:
        # A malformed ``symbols`` is rejected anyway: charge the cheapest rate.
        return 80 if _first(params, "symbols") is None else 2
    if count <= 20:
        return 2
    return 40 if count <= 100 else 80


def depth_weight(params: Params) -> int:
    """5 up to 100 levels, 25 up to 500, 50 up to 1000, 250 beyond."""
    raw = _first(params, "limit")
    limit = int(raw) if raw is not None and raw.isdigit() else DEFAULT_DEPTH_LIMIT
    if limit <= 100:
        return 5
    if limit <= 500:
        return 25
    return 50 if limit <= 1000 else 250


def book_ticker_weight(params: Params) -> int:
    """2 for one symbol, 4 for a list or for all symbols."""
    return 2 if _first(params, "symbol") is not None else 4


_WEIGHTS: dict[str, Callable[[Params], int]] = {
    PING: lambda params: 1,
    TIME: lambda params: 1,
    EXCHANGE_INFO: lambda params: 20,
    TICKER_24HR: ticker_24hr_weight,
    DEPTH: depth_weight,
    BOOK_TICKER: book_ticker_weight,
}


def request_weight(path: str, params: Params) -> int:
    """The weight Binance charges for ``path`` with ``params`` (0 for unknown paths)."""
    weigh = _WEIGHTS.get(path)
    return weigh(params) if weigh is not None else 0


@dataclass(frozen=True)
class Admission:
    """The limiter's verdict: status 200 (admitted), 429 or 418, and the back-off."""

    status: int
    used: int
    retry_after: int = 0
    banned_until_ms: int = 0


class WeightLimiter:
    """Per clock-minute weight accounting with Binance's 429-then-418 escalation.

    Requests that would take the minute's weight over ``limit`` are refused
    with 429 and not charged; ``Retry-After`` runs to the end of the minute.
    Any request during that window (or during a ban) earns a 418 ban that
    doubles with each offence, capped at three days.
    """

    def __init__(self, limit: int, now: Callable[[], float]) -> None:
        self.limit = limit
        self._now = now
        self._lock = threading.Lock()
        self._minute = 0
        self._used = 0
        self._blocked_until = 0.0
        self._offences = 0

    def reset(self) -> None:
        """Forget all usage, back-off windows and bans."""
        with self._lock:
            self._minute, self._used = 0, 0
            self._blocked_until, self._offences = 0.0, 0

    def _roll(self, now: float) -> None:
        minute = math.floor(now / 60)
        if minute != self._minute:
            self._minute, self._used = minute, 0

    def used(self) -> int:
        """Weight used so far in the current clock minute."""
        with self._lock:
            self._roll(self._now())
            return self._used

    def charge(self, weight: int) -> Admission:
        """Admit and charge a request of ``weight``, or refuse it with 429/418."""
        with self._lock:
            now = self._now()
            self._roll(now)
            if now < self._blocked_until:
                self._offences += 1
                doublings = min(self._offences - 1, 16)  # 120 s * 2**16 is well past the cap
                ban = min(BAN_FIRST_SECONDS * 2**doublings, BAN_MAX_SECONDS)
                self._blocked_until = max(self._blocked_until, now + ban)
                return Admission(
                    418,
                    self._used,
                    math.ceil(self._blocked_until - now),
                    math.ceil(self._blocked_until * 1000),
                )
            if self._used + weight > self.limit:
                self._blocked_until = (self._minute + 1) * 60.0
                return Admission(429, self._used, max(1, math.ceil(self._blocked_until - now)))
            self._used += weight
            return Admission(200, self._used)
