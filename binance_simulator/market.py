"""Deterministic market state: best bid/ask, order books and 24h tickers.

Every answer is a pure function of (seed, symbol, time step), so two
simulators started with the same ``--seed`` agree exactly, tests can predict
answers without sleeping (the clock is injectable), and nothing has to be
stored or evolved in the background.

* Each symbol starts from its recorded ``bidPrice``/``askPrice``.  Its tick is
  10^-d, where d is the number of decimals those two prices need.
* For each step (``step_seconds`` long) a SHAKE-256 digest of
  ``seed|symbol|step`` gives a mid move of up to three ticks either way from
  the recorded mid and a spread of one to five ticks.  Prices never go <= 0.
* Book levels step away from the best price by one to three whole ticks;
  quantities are pseudo-random multiples of the recorded best quantity's
  precision, between one step and twice the recorded quantity.  SHAKE is an
  extendable-output hash, so a shorter digest is a prefix of a longer one:
  the best level is identical whatever ``limit`` is asked for, which keeps
  ``depth`` and ``bookTicker`` consistent.
* Books hold up to 5000 levels per side, fewer for symbols that traded
  little (one level per recorded trade, at least 20) and for bids that would
  reach zero.
* Symbols recorded with zero prices (delisted, or halted with an empty book)
  have empty books, hence "0.00000000" prices in ``bookTicker``; a side
  recorded alone (BUSDNGN has bids only) stays one-sided.

Prices and quantities are integers counting 10^-8 units, Binance's smallest
increment.  That is exact like ``Decimal`` (which parses the recordings) and
several times faster for books thousands of levels deep.  Strings keep the
width Binance used for the symbol: 8 decimals, except the 2 of a few IDR/BIDR
pairs.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from . import data

UNITS = 10**8
MAX_LEVELS = 5000
MIN_LEVELS = 20
DAY_MS = 86_400_000

Level = tuple[int, int]


def to_units(text: str) -> int:
    """Parse a Binance decimal string into an exact count of 10^-8 units."""
    scaled = Decimal(text).scaleb(8)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{text!r} has more than 8 decimals")
    return int(scaled)


def decimals_needed(text: str) -> int:
    """Decimals a value really uses: "0.05691000" -> 5, "69010.00000000" -> 0."""
    exponent = Decimal(text).normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def width(text: str) -> int:
    """Decimals shown in a Binance string: "0.05691000" -> 8, "15744.00" -> 2."""
    return len(text.partition(".")[2])


def format_units(units: int, decimals: int) -> str:
    """Format 10^-8 units with ``decimals`` places, the way Binance does."""
    sign = "-" if units < 0 else ""
    whole, fraction = divmod(abs(units), UNITS)
    if decimals == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{fraction:08d}"[: len(sign) + len(str(whole)) + 1 + decimals]


def _digest(*parts: object, size: int) -> bytes:
    return hashlib.shake_256("|".join(map(str, parts)).encode()).digest(size)


@dataclass(frozen=True)
class SideSpec:
    """One side of a symbol's recorded book: best price and quantity scale.

    Level quantities are 1..``qty_span`` steps of ``qty_step`` (the recorded
    best quantity's precision), i.e. up to twice the recorded quantity, so
    books keep the magnitude the symbol really trades in.  A side recorded
    without quantity falls back to 1.0.
    """

    best: int
    qty_step: int
    qty_span: int

    @classmethod
    def parse(cls, price: str, qty: str) -> SideSpec:
        """Build from a recorded price and quantity string."""
        recorded = to_units(qty) or UNITS
        qty_step = 10 ** (8 - min(decimals_needed(format_units(recorded, 8)), width(qty)))
        return cls(to_units(price), qty_step, max(1, 2 * recorded // qty_step))


@dataclass(frozen=True)
class SymbolSpec:
    """What the recording tells about one symbol, pre-parsed for speed."""

    symbol: str
    bid: SideSpec
    ask: SideSpec
    tick: int
    price_decimals: int
    qty_decimals: int
    max_levels: int

    @classmethod
    def from_ticker(cls, ticker: dict[str, Any]) -> SymbolSpec:
        """Build from one recorded ``ticker/24hr`` entry."""
        bid, ask = ticker["bidPrice"], ticker["askPrice"]
        return cls(
            symbol=ticker["symbol"],
            bid=SideSpec.parse(bid, ticker["bidQty"]),
            ask=SideSpec.parse(ask, ticker["askQty"]),
            tick=10 ** (8 - max(decimals_needed(bid), decimals_needed(ask))),
            price_decimals=width(bid),
            qty_decimals=width(ticker["bidQty"]),
            max_levels=min(MAX_LEVELS, max(MIN_LEVELS, int(ticker["count"]))),
        )


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


class SimulatedMarket:
    """The simulated market: recorded data plus deterministic movement.

    ``now`` returns Unix seconds; tests pass a fake clock to get exact,
    sleep-free answers.  The object is read-only after construction, so it
    is safe to share between server threads.
    """

    def __init__(
        self,
        seed: int = 1,
        step_seconds: float = 1.0,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.seed = seed
        self.step_seconds = step_seconds
        self.now = now
        recorded = data.tickers()
        self._tickers = {ticker["symbol"]: ticker for ticker in recorded}
        self._specs = {ticker["symbol"]: SymbolSpec.from_ticker(ticker) for ticker in recorded}
        info = data.exchange_info()
        self._info_header = {key: value for key, value in info.items() if key != "symbols"}
        self._listings = {listing["symbol"]: listing for listing in info["symbols"]}

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

    def step(self) -> int:
        """The current time step; prices change only from one step to the next."""
        return math.floor(self.now() / self.step_seconds)

    def best_prices(self, spec: SymbolSpec, step: int) -> tuple[int, int]:
        """Best bid and ask in units at ``step``; 0 marks an empty side."""
        move_byte, spread_byte = _digest(self.seed, spec.symbol, step, size=2)
        move, spread = move_byte % 7 - 3, 1 + spread_byte % 5
        tick, bid, ask = spec.tick, spec.bid.best, spec.ask.best
        if bid and ask:
            doubled_mid = bid // tick + ask // tick + 2 * move
            best_bid = max(1, (doubled_mid - spread) // 2)
            return best_bid * tick, (best_bid + spread) * tick
        if bid:
            return max(1, bid // tick + move) * tick, 0
        if ask:
            return 0, max(1, ask // tick + move) * tick
        return 0, 0

    def _side(self, spec: SymbolSpec, step: int, side: str, best: int, limit: int) -> list[Level]:
        """Up to ``limit`` levels of ``side`` ("bids" or "asks") from ``best`` outwards."""
        count = min(limit, spec.max_levels)
        if best <= 0 or count <= 0:
            return []
        scale = spec.bid if side == "bids" else spec.ask
        digest = _digest(self.seed, spec.symbol, step, side, size=3 * count)
        step_size = -spec.tick if side == "bids" else spec.tick
        price = best
        levels: list[Level] = []
        for index in range(0, 3 * count, 3):
            if index:
                price += step_size * (1 + digest[index] % 3)
                if price <= 0:
                    break
            draw = digest[index + 1] << 8 | digest[index + 2]
            levels.append((price, scale.qty_step * (1 + draw * scale.qty_span // 65536)))
        return levels

    def book(self, symbol: str, limit: int, step: int | None = None) -> Book:
        """The order book of ``symbol`` with up to ``limit`` levels per side.

        ``lastUpdateId`` grows with the step (16 ids per step, plus a
        per-symbol offset) so it never goes backwards.
        """
        spec = self._specs[symbol]
        step = self.step() if step is None else step
        bid, ask = self.best_prices(spec, step)
        offset = int.from_bytes(_digest(symbol, size=4), "big")
        return Book(
            symbol=symbol,
            last_update_id=offset + step * 16 + _digest(self.seed, symbol, step, size=3)[2] % 16,
            bids=self._side(spec, step, "bids", bid, limit),
            asks=self._side(spec, step, "asks", ask, limit),
            tick=spec.tick,
            price_decimals=spec.price_decimals,
            qty_decimals=spec.qty_decimals,
        )

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
