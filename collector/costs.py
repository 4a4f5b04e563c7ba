"""What a configuration costs in Binance's request weight: the budget checks' one source.

Binance counts weight per IP and minute (6,000); :func:`peak_weight_per_minute` is the
most a healthy exporter or report can spend in any minute at given settings, which the
front ends check against ``--weight-budget`` before they start.
"""

from __future__ import annotations

import math

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


def peak_weight_per_minute(settings: Settings) -> int:
    """The most request weight a healthy source can spend in one minute.

    Binance counts weight per minute, so a refresh costs its whole weight in the
    minute it happens, however long its TTL. The worst minute is the first: every
    group is fetched, and each is refreshed again as often as its TTL allows in 60 s
    (the books at 0 and 30 s at the defaults). A group with an infinite TTL, as in
    the report, is fetched once. Defaults: 20 + 80 + 2 × 125 + 6 × 4 = 374.

    In stream mode the spreads cost nothing and the books a snapshot each when they
    (re)sync; the worst minute resyncs every book as often as allowed: 20 + 80 +
    6 × 5 × 25 = 850. A steady minute costs 80 / 5 = 16 (the rankings).
    """
    costs: tuple[tuple[int, float], ...] = (
        (EXCHANGE_INFO_WEIGHT, settings.ttl_exchange),
        (TICKER_24H_ALL_WEIGHT, settings.ttl_rankings),
    )
    if settings.source == STREAM:
        costs += ((settings.top * depth_weight(snapshot_limit(settings.depth_levels)),
                   RESYNC_INTERVAL),)
    else:
        costs += ((settings.top * depth_weight(settings.depth_levels), settings.ttl_books),
                  (BOOK_TICKERS_WEIGHT, settings.ttl_spreads))
    return sum(weight * max(1, math.ceil(60.0 / ttl)) for weight, ttl in costs)
