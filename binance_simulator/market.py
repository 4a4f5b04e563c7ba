"""The simulated market: the recordings, a clock, and the books and tickers it shows.

Every answer is a pure function of (seed, symbol, moment), so two simulators started
with the same ``--seed`` agree exactly, tests can predict answers without sleeping (the
clock is injectable), and nothing has to be stored or evolved in the background.  How
the books move is ``books``; what the recording tells about a symbol, ``symbols``.

The clock is cut into steps of ``step_seconds`` (``--step-seconds``, 0.1 s: Binance's
100 ms) and each step into ``substeps`` moments, one per bookTicker event of the
busiest symbols (``--ws-book-ticker-rate``: 50 a second, 5 a step).  ``book()`` shows
the clock's moment, or a given step's first; ``book_at()`` any moment.

* Each symbol starts from its recorded ``bidPrice``/``askPrice``.  Its tick is
  10^-d, where d is the number of decimals those two prices need.
* Books hold up to 4,900 levels per side, fewer for symbols that traded
  little (one level per recorded trade, at least 20) and for bids that would
  reach zero; deep and shallow books share their best levels, so ``depth``
  and ``bookTicker`` agree.
* Symbols recorded with zero prices (delisted, or halted with an empty book)
  have empty books, hence "0.00000000" prices in ``bookTicker``; a side
  recorded alone (BUSDNGN has bids only) stays one-sided.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from . import data
from .books import BookModel
from .symbols import BLOCK_STEPS, Level, SymbolSpec, format_units, symbol_specs

DAY_MS = 86_400_000
BOOK_TICKER_RATE = 50  # the busiest symbols' bookTicker events a second, at 10 steps a second
STEP_SECONDS = 0.1  # Binance's 100 ms


@dataclass(frozen=True)
class Book:
    """An order book snapshot: bids best (highest) first, asks best (lowest) first."""

    symbol: str
    last_update_id: int
    bids: Sequence[Level]
    asks: Sequence[Level]
    tick: int
    price_decimals: int
    qty_decimals: int

    def _level(self, level: Level) -> list[str]:
        price, qty = level
        return [format_units(price, self.price_decimals), format_units(qty, self.qty_decimals)]

    def depth_payload(self) -> dict[str, Any]:
        """The ``GET /api/v3/depth`` answer."""
        return {
            "lastUpdateId": self.last_update_id,
            "bids": [self._level(level) for level in self.bids],
            "asks": [self._level(level) for level in self.asks],
        }

    def book_ticker_payload(self) -> dict[str, Any]:
        """The ``GET /api/v3/ticker/bookTicker`` answer; "0.00000000" for an empty side."""
        bid_price, bid_qty = self._level(self.bids[0] if self.bids else (0, 0))
        ask_price, ask_qty = self._level(self.asks[0] if self.asks else (0, 0))
        return {
            "symbol": self.symbol,
            "bidPrice": bid_price,
            "bidQty": bid_qty,
            "askPrice": ask_price,
            "askQty": ask_qty,
        }

    def with_sides(self, bids: Sequence[Level], asks: Sequence[Level]) -> Book:
        """A copy with other levels (used by the book faults)."""
        return replace(self, bids=bids, asks=asks)


@dataclass(frozen=True)
class Diff:
    """The levels of a book that changed between two moments, each with its new quantity
    (0: removed), and the update ids spent: ``first_update_id`` to ``last_update_id``."""

    symbol: str
    first_update_id: int
    last_update_id: int
    bids: Sequence[Level]
    asks: Sequence[Level]
    price_decimals: int
    qty_decimals: int

    def levels(self, side: Sequence[Level]) -> list[list[str]]:
        """``side`` as Binance writes levels: [["price", "qty"], ...]."""
        return [[format_units(price, self.price_decimals), format_units(qty, self.qty_decimals)]
                for price, qty in side]


class SimulatedMarket:
    """The simulated market: recorded data plus deterministic movement.

    ``now`` returns Unix seconds; tests pass a fake clock to get exact,
    sleep-free answers.  The object is read-only after construction (but for
    its caches), so it is safe to share between server threads.
    """

    def __init__(
        self,
        seed: int = 1,
        step_seconds: float = STEP_SECONDS,
        now: Callable[[], float] = time.time,
        book_ticker_rate: int = BOOK_TICKER_RATE,
    ) -> None:
        self.step_seconds = step_seconds
        self.now = now
        recorded = data.tickers()
        self._tickers = {ticker["symbol"]: ticker for ticker in recorded}
        self._specs = symbol_specs(recorded)
        self.books = BookModel(seed, max(1, book_ticker_rate // BLOCK_STEPS))
        info = data.exchange_info()
        self._info_header = {key: value for key, value in info.items() if key != "symbols"}
        self._listings = {listing["symbol"]: listing for listing in info["symbols"]}

    @property
    def substeps(self) -> int:
        """Moments a step: the busiest symbols' bookTicker events a step."""
        return self.books.best.substeps

    @property
    def symbols(self) -> list[str]:
        """Ticker symbols in recorded order (what ticker/depth/bookTicker know)."""
        return list(self._specs)

    def has_symbol(self, symbol: str) -> bool:
        """Whether ticker, depth and bookTicker know ``symbol``."""
        return symbol in self._specs

    def is_listed(self, symbol: str) -> bool:
        """Whether exchangeInfo knows ``symbol`` (the two recordings differ)."""
        return symbol in self._listings

    def status(self, symbol: str) -> str | None:
        """``symbol``'s trading status per exchangeInfo; None for a symbol it lacks."""
        listing = self._listings.get(symbol)
        return None if listing is None else str(listing["status"])

    def spec(self, symbol: str) -> SymbolSpec:
        """The pre-parsed recording of ``symbol``."""
        return self._specs[symbol]

    def now_ms(self) -> int:
        """The clock in Unix milliseconds."""
        return math.floor(self.now() * 1000)

    def moment(self) -> int:
        """The current moment: ``substeps`` of them a step.  (Rounded to a thousandth of
        a moment first, so that a clock on a step's boundary is in that step, whatever
        the binary fractions of ``step_seconds``.)"""
        return math.floor(round(self.now() * self.substeps / self.step_seconds, 3))

    def step(self) -> int:
        """The current time step; books change only from one step to the next, but for
        the busiest symbols' best quantities."""
        return self.moment() // self.substeps

    def moment_seconds(self, moment: int) -> float:
        """When ``moment`` begins, in Unix seconds."""
        return moment * self.step_seconds / self.substeps

    def book(self, symbol: str, limit: int, step: int | None = None) -> Book:
        """The order book of ``symbol`` with up to ``limit`` levels per side, now or at
        the first moment of ``step``."""
        moment = self.moment() if step is None else step * self.substeps
        return self.book_at(symbol, limit, moment)

    def book_at(self, symbol: str, limit: int, moment: int) -> Book:
        """The order book of ``symbol`` at ``moment``, up to ``limit`` levels per side."""
        spec = self._specs[symbol]
        step, substep = divmod(moment, self.substeps)
        bids, asks = self.books.levels(spec, step, substep, limit)
        return Book(
            symbol=symbol,
            last_update_id=self.books.update_id(spec, step, substep),
            bids=bids,
            asks=asks,
            tick=spec.tick,
            price_decimals=spec.price_decimals,
            qty_decimals=spec.qty_decimals,
        )

    def diff(self, symbol: str, since: int, step: int) -> Diff | None:
        """What changed in ``symbol``'s book from the first moment of step ``since`` to
        the first of ``step``; None when nothing did (no update id was used)."""
        spec = self._specs[symbol]
        changed = self.books.diff(spec, since, step)
        if changed is None:
            return None
        return Diff(symbol, self.books.update_id(spec, since, 0) + 1,
                    self.books.update_id(spec, step, 0), changed[0], changed[1],
                    spec.price_decimals, spec.qty_decimals)

    def ticker(self, book: Book) -> dict[str, Any]:
        """The recorded 24h ticker of ``book.symbol`` with live best bid/ask.

        Best prices and quantities come from ``book`` so they agree with
        ``bookTicker``; symbols that traded get a 24h window ending now.
        Everything else is the recording.
        """
        ticker = dict(self._tickers[book.symbol])
        best = book.book_ticker_payload()
        for key in ("bidPrice", "bidQty", "askPrice", "askQty"):
            ticker[key] = best[key]
        if ticker["count"]:
            ticker["closeTime"] = self.now_ms()
            ticker["openTime"] = ticker["closeTime"] - DAY_MS
        return ticker

    def exchange_info(self, symbols: Sequence[str] | None = None, *, status: str | None = None,
                      permissions: bool = True) -> dict[str, Any]:
        """exchangeInfo for ``symbols`` (all when None), in today's shape.

        Callers check ``is_listed`` first. The 2023 recording lists each symbol's
        ``permissions``; Binance has since moved them to ``permissionSets`` and sends
        ``permissions`` empty. ``status`` keeps only symbols with that status;
        ``permissions=False`` (``showPermissionSets=false``) empties the sets.
        """
        if symbols is None:
            listings = list(self._listings.values())
        else:
            listings = [self._listings[symbol] for symbol in symbols]
        if status is not None:
            listings = [listing for listing in listings if listing["status"] == status]
        shaped = [{**listing, "permissions": [],
                   "permissionSets": [listing["permissions"]] if permissions else []}
                  for listing in listings]
        return {**self._info_header, "serverTime": self.now_ms(), "symbols": shaped}
