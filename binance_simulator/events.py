"""What the market's steps send on the streams: event payloads, computed once and shared.

* ``@bookTicker``: ``{"u", "s", "b", "B", "a", "A"}`` at a step, where ``u`` is the
  book's ``lastUpdateId`` at that step.
* ``@depth@100ms``: the difference between the book at one step and at a later one, at
  full depth (up to 5,000 levels a side): every level added or changed, every removed
  level with quantity zero; ``U`` is the old book's ``lastUpdateId`` + 1, ``u`` the new
  one's.

Events are computed once per (symbol, steps) and shared by every connection; which
connection gets which event is the session's business (``streams``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from .market import Level, SimulatedMarket, format_units
from .weights import MAX_DEPTH_LIMIT


def dumps(payload: Any) -> str:
    """Compact JSON with UTF-8 kept as is (Binance: events may carry non-ASCII)."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def _changes(old: Sequence[Level], new: Sequence[Level], descending: bool) -> list[Level]:
    """Levels of ``new`` that differ from ``old``, and ``old``'s vanished ones at 0."""
    before, after = dict(old), dict(new)
    changed = [(price, qty) for price, qty in new if before.get(price) != qty]
    changed += [(price, 0) for price in before if price not in after]
    return sorted(changed, reverse=descending)


class EventFeed:
    """Event payloads (encoded JSON) computed from the market, cached per step."""

    def __init__(self, market: SimulatedMarket) -> None:
        self.market = market
        self._full_book = lru_cache(maxsize=16)(
            lambda symbol, step: market.book(symbol, MAX_DEPTH_LIMIT, step))
        self.book_ticker: Callable[[str, int], tuple[str, tuple[str, ...]]] = \
            lru_cache(maxsize=4096)(self._book_ticker)
        self.depth_update: Callable[[str, int, int], str | None] = \
            lru_cache(maxsize=16)(self._depth_update)

    def _book_ticker(self, symbol: str, step: int) -> tuple[str, tuple[str, ...]]:
        """The bookTicker event at ``step`` and its (b, B, a, A), to tell a change."""
        book = self.market.book(symbol, 1, step)
        best = book.book_ticker_payload()
        key = (best["bidPrice"], best["bidQty"], best["askPrice"], best["askQty"])
        payload = {"u": book.last_update_id, "s": symbol, "b": key[0], "B": key[1],
                   "a": key[2], "A": key[3]}
        return dumps(payload), key

    def _depth_update(self, symbol: str, since: int, step: int) -> str | None:
        """The depthUpdate from the book at ``since`` to the book at ``step``; None if
        no level changed."""
        old, new = self._full_book(symbol, since), self._full_book(symbol, step)
        bids = _changes(old.bids, new.bids, descending=True)
        asks = _changes(old.asks, new.asks, descending=False)
        if not bids and not asks:
            return None

        def levels(changed: list[Level]) -> list[list[str]]:
            return [[format_units(price, new.price_decimals),
                     format_units(qty, new.qty_decimals)] for price, qty in changed]

        return dumps({"e": "depthUpdate", "E": math.floor(step * self.market.step_seconds * 1000),
                      "s": symbol, "U": old.last_update_id + 1, "u": new.last_update_id,
                      "b": levels(bids), "a": levels(asks)})
