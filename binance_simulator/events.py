"""What the market's steps send on the streams: event payloads, computed once and shared.

* ``@bookTicker``, at a moment whose best bid or ask differs from the last one sent::

      {"u": 400900217, "s": "BNBUSDT", "b": "25.35190000", "B": "31.21000000",
       "a": "25.36520000", "A": "40.66000000"}

  where ``u`` is the book's ``lastUpdateId`` at that moment.
* ``@depth@100ms`` (and ``@depth``, every ten steps), once a step in which the book
  changed::

      {"e": "depthUpdate", "E": 1767225601000, "s": "BTCUSDT", "U": 157, "u": 160,
       "b": [["69010.02000000", "0.41200000"], ["69009.98000000", "0"]], "a": [...]}

  every level touched since the last event, with its quantity now (0: removed), bids
  best first, asks best first; ``U`` is the last event's ``u`` + 1, ``u`` the book's
  ``lastUpdateId`` now.  A client that follows Binance's "How to manage a local order
  book correctly" from a REST snapshot thus holds the REST book.  How many levels an
  event carries, and how often one comes, is the market's business (``books``): for
  the busiest symbols ten events a second of 10 to 20 levels, now and then a hundred.

Events are computed once per (symbol, moment or steps) and shared by every connection;
which connection gets which event is the session's business (``streams``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from .market import SimulatedMarket


def dumps(payload: Any) -> str:
    """Compact JSON with UTF-8 kept as is (Binance: events may carry non-ASCII)."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


class EventFeed:
    """Event payloads (encoded JSON) computed from the market, cached."""

    def __init__(self, market: SimulatedMarket) -> None:
        self.market = market
        self.book_ticker: Callable[[str, int], tuple[str, tuple[str, ...]]] = \
            lru_cache(maxsize=4096)(self._book_ticker)
        self.depth_update: Callable[[str, int, int], str | None] = \
            lru_cache(maxsize=1024)(self._depth_update)

    def _book_ticker(self, symbol: str, moment: int) -> tuple[str, tuple[str, ...]]:
        """The bookTicker event at ``moment`` and its (b, B, a, A), to tell a change."""
        book = self.market.book_at(symbol, 1, moment)
        best = book.book_ticker_payload()
        key = (best["bidPrice"], best["bidQty"], best["askPrice"], best["askQty"])
        payload = {"u": book.last_update_id, "s": symbol, "b": key[0], "B": key[1],
                   "a": key[2], "A": key[3]}
        return dumps(payload), key

    def _depth_update(self, symbol: str, since: int, step: int) -> str | None:
        """The depthUpdate from the first moment of step ``since`` to the first of
        ``step``; None if the book did not change."""
        diff = self.market.diff(symbol, since, step)
        if diff is None:
            return None
        event_time = round(self.market.moment_seconds(step * self.market.substeps) * 1000)
        return dumps({"e": "depthUpdate", "E": event_time, "s": symbol,
                      "U": diff.first_update_id, "u": diff.last_update_id,
                      "b": diff.levels(diff.bids), "a": diff.levels(diff.asks)})
