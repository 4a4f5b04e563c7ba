"""What a configuration costs in Binance's request weight: the budget checks' one source.

Binance counts weight per IP and minute (6,000); :func:`peak_weight_per_minute` is the
most a healthy exporter or report can spend in any minute at given settings, which the
front ends check against ``--weight-budget`` before they start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Sequence

from collector.binance import (
    BOOK_TICKERS_WEIGHT,
    EXCHANGE_INFO_WEIGHT,
    TICKER_24H_ALL_WEIGHT,
    depth_weight,
)
from collector.records import STREAM, Notional, Settings

RESYNC_INTERVAL = 10.0  # stream mode: least time between two snapshots of one book


DEPTH_LIMITS = (100, 500, 1000, 5000)  # the most levels of each of Binance's depth weights


def _bracket(levels: int) -> int:
    """The largest limit that costs what ``levels`` costs: as many levels for the weight."""
    return next((limit for limit in DEPTH_LIMITS if limit >= levels), DEPTH_LIMITS[-1])


class DepthLimits:
    """The ``limit`` to ask each book for.

    Without ``--depth-bands``: ``least`` (the levels summed, or stream mode's margin).
    With them: the smallest of :data:`DEPTH_LIMITS` (weights 5, 25, 50, 250) that holds
    ``least`` levels and reaches the widest band's edge on both sides, learned per book
    from its last answer: an answer that reached the edge tells how many levels it took
    (one more shows the edge is passed), one that did not asks for the next larger limit.
    """

    def __init__(self, least: int, bands: Sequence[str] = (), *, once: bool = False) -> None:
        """``once``: each book is asked for once (the report): the largest limit first."""
        self._least = least
        self._widest = max(bands, key=Decimal) if bands else None
        self._first = least if not bands else DEPTH_LIMITS[-1] if once else _bracket(least)
        self._limits: dict[str, int] = {}

    @property
    def most(self) -> int:
        """The largest limit ever asked for (what the weight budget must allow)."""
        return self._first if self._widest is None else DEPTH_LIMITS[-1]

    def limit(self, symbol: str) -> int:
        """The limit for ``symbol``'s next answer."""
        return self._limits.get(symbol, self._first)

    def learn(self, symbol: str, used: int, notional: Notional) -> int:
        """What an answer asked with ``used`` levels showed: the limit for the next one
        (larger when the band's edge was not reached). No mid (an empty side, a crossed
        book) teaches nothing."""
        band = None if self._widest is None else notional.bands.get(self._widest)
        if band is None:
            return self.limit(symbol)
        if band.bids_complete and band.asks_complete:
            wanted = _bracket(max(self._least, band.bid_levels + 1, band.ask_levels + 1))
        else:
            wanted = _bracket(used + 1) if used < DEPTH_LIMITS[-1] else used
        self._limits[symbol] = wanted
        return wanted


def snapshot_interval(limit: int) -> float:
    """Stream mode: the least time between two snapshots of one book asked with ``limit``:
    ``RESYNC_INTERVAL`` up to weight 25, longer in proportion above (a 5,000-level
    snapshot, weight 250, at most every 100 s): a book never costs more than 150 weight
    a minute at one limit."""
    return RESYNC_INTERVAL * max(1.0, depth_weight(limit) / depth_weight(500))


def snapshot_limit(levels: int) -> int:
    """Stream mode's depth snapshot limit: 500 for up to 200 levels (a margin for the
    book's drift, at weight 25), else the smallest of Binance's limits ≥ 2.5 × levels."""
    return next((limit for limit in (500, 1000, 5000) if limit >= 2.5 * levels), 5000)


@dataclass(frozen=True)
class Cost:
    """What one kind of request costs in the worst minute: ``times`` × ``weight``."""

    what: str
    weight: int  # one refresh's weight
    times: int  # refreshes in the worst minute
    detail: str = ""  # what makes up one refresh's weight

    @property
    def per_minute(self) -> int:
        """Weight in the worst minute."""
        return self.weight * self.times

    def __str__(self) -> str:
        text = f"{self.what} {self.weight}" if self.times == 1 else \
            f"{self.what} {self.times} × {self.weight}"
        return f"{text} ({self.detail})" if self.detail else text


def costs(settings: Settings) -> list[Cost]:
    """What each kind of request costs in the worst minute, dearest first.

    Binance counts weight per minute, so a refresh costs its whole weight in the
    minute it happens, however long its TTL. The worst minute is the first: every
    group is fetched, and each is refreshed again as often as its TTL allows in 60 s
    (the books at 0 and 30 s at the defaults). A group with an infinite TTL, as in
    the report, is fetched once. Defaults: 20 + 80 + 2 × 125 + 6 × 4 = 374.

    In stream mode the spreads cost nothing and the books a snapshot each when they
    (re)sync; the worst minute resyncs every book as often as allowed: 20 + 80 +
    6 × 5 × 25 = 850. A steady minute costs 80 / 5 = 16 (the rankings).

    ``--depth-bands`` may take a book up to 5,000 levels (weight 250): REST's worst
    minute asks every book at that limit (20 + 80 + 2 × 5 × 250 + 24 = 2,624); stream
    mode's resyncs each book at every limit from 500 up as often as
    :func:`snapshot_interval` allows (20 + 80 + 5 × (6 × 25 + 3 × 50 + 250) = 2,850).
    """
    books, bands = settings.books, settings.depth_bands
    found = [Cost("exchangeInfo", EXCHANGE_INFO_WEIGHT, _times(settings.ttl_exchange)),
             Cost("24 h ticker", TICKER_24H_ALL_WEIGHT, _times(settings.ttl_rankings))]
    if settings.source == STREAM:
        first = snapshot_limit(settings.depth_levels)
        limits = [limit for limit in DEPTH_LIMITS if limit >= first] if bands else [first]
        for limit in limits:  # with bands, a book may go through each larger limit
            weight = depth_weight(limit)
            found.append(Cost(f"book snapshots of {limit} levels", books * weight,
                              _times(snapshot_interval(limit)), f"{books} books × {weight}"))
    else:
        weight = depth_weight(DepthLimits(settings.depth_levels, bands).most)
        found += [Cost("books", books * weight, _times(settings.ttl_books),
                       f"{books} books × {weight}"),
                  Cost("spreads", BOOK_TICKERS_WEIGHT, _times(settings.ttl_spreads))]
    return sorted(found, key=lambda cost: -cost.per_minute)


def peak_weight_per_minute(settings: Settings) -> int:
    """The most request weight a healthy source can spend in one minute (:func:`costs`)."""
    return sum(cost.per_minute for cost in costs(settings))


def _times(ttl: float) -> int:
    """Refreshes in the worst minute of a group with this TTL."""
    return max(1, math.ceil(60.0 / ttl))
