"""What a configuration costs in Binance's request weight: the budget checks' one source.

Binance counts weight per IP and minute (6,000); :func:`peak_weight_per_minute` is the
most a healthy exporter or report can spend in any minute at given settings, which the
front ends check against ``--weight-budget`` before they start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from collector.binance import (
    BOOK_TICKERS_WEIGHT,
    EXCHANGE_INFO_WEIGHT,
    TICKER_24H_ALL_WEIGHT,
    depth_weight,
)
from collector.records import STREAM, Settings

RESYNC_INTERVAL = 10.0  # stream mode: least time between two snapshots of one book


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
    """
    books = settings.books
    found = [Cost("exchangeInfo", EXCHANGE_INFO_WEIGHT, _times(settings.ttl_exchange)),
             Cost("24 h ticker", TICKER_24H_ALL_WEIGHT, _times(settings.ttl_rankings))]
    if settings.source == STREAM:
        weight = depth_weight(snapshot_limit(settings.depth_levels))
        found.append(Cost("book snapshots", books * weight, _times(RESYNC_INTERVAL),
                          f"{books} books × {weight}"))
    else:
        weight = depth_weight(settings.depth_levels)
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
