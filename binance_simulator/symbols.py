"""What the recording tells about each symbol: prices, sizes, precision, and how busy it is.

Prices and quantities are integers counting 10^-8 units, Binance's smallest
increment.  That is exact like ``Decimal`` (which parses the recordings) and
several times faster for books thousands of levels deep.  Strings keep the
width Binance used for the symbol: 8 decimals, except the 2 of a few IDR/BIDR
pairs.

How busy a symbol is comes from its recorded 24 h trade count: the ``BUSIEST``
symbols by count change their books on every step, and at every moment one of
their best quantities; the others change on ``active_steps`` steps of every
``BLOCK_STEPS`` (1 to 9, fewer for fewer trades), and symbols recorded without
prices never change.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

UNITS = 10**8
MAX_LEVELS = 5000
MIN_LEVELS = 20
BUSIEST = 10  # symbols, by recorded trade count
BLOCK_STEPS = 10  # a second at Binance's pace

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

    def qty(self, draw: int) -> int:
        """The quantity a 16-bit ``draw`` picks: 1..qty_span steps of qty_step."""
        return self.qty_step * (1 + draw * self.qty_span // 65536)


def active_steps(count: int, rank: int) -> int:
    """Steps of every ``BLOCK_STEPS`` on which a symbol with ``count`` trades in 24 h,
    ``rank``-th by count, changes its book: all for the busiest, else 1 to 9 (3 for
    ~150 trades, 5 for ~1,000, 7 for ~10,000, 9 from ~100,000)."""
    if rank < BUSIEST and count:
        return BLOCK_STEPS
    if count < 10:
        return 1
    return min(BLOCK_STEPS - 1, max(1, round(2 * math.log10(count) - 1)))


@dataclass(frozen=True)
class SymbolSpec:  # pylint: disable=too-many-instance-attributes
    """What the recording tells about one symbol, pre-parsed for speed."""

    symbol: str
    bid: SideSpec
    ask: SideSpec
    tick: int
    price_decimals: int
    qty_decimals: int
    max_levels: int
    active_steps: int = BLOCK_STEPS

    @classmethod
    def from_ticker(cls, ticker: dict[str, Any], rank: int = 0) -> SymbolSpec:
        """Build from one recorded ``ticker/24hr`` entry, ``rank``-th by trade count."""
        bid, ask = ticker["bidPrice"], ticker["askPrice"]
        bid_spec, ask_spec = SideSpec.parse(bid, ticker["bidQty"]), SideSpec.parse(
            ask, ticker["askQty"])
        live = bool(bid_spec.best or ask_spec.best)
        return cls(
            symbol=ticker["symbol"],
            bid=bid_spec,
            ask=ask_spec,
            tick=10 ** (8 - max(decimals_needed(bid), decimals_needed(ask))),
            price_decimals=width(bid),
            qty_decimals=width(ticker["bidQty"]),
            max_levels=min(MAX_LEVELS, max(MIN_LEVELS, int(ticker["count"]))),
            active_steps=active_steps(int(ticker["count"]), rank) if live else 0,
        )

    @property
    def busy(self) -> bool:
        """Whether the book changes on every step, and its best quantities in between."""
        return self.active_steps == BLOCK_STEPS

    def side(self, is_bid: bool) -> SideSpec:
        """The bid or the ask side's recording."""
        return self.bid if is_bid else self.ask


def symbol_specs(tickers: Iterable[dict[str, Any]]) -> dict[str, SymbolSpec]:
    """{symbol: spec} in recorded order, each knowing its rank by trade count."""
    recorded = list(tickers)
    by_count = sorted(recorded, key=lambda ticker: (-int(ticker["count"]), ticker["symbol"]))
    rank = {ticker["symbol"]: place for place, ticker in enumerate(by_count)}
    return {ticker["symbol"]: SymbolSpec.from_ticker(ticker, rank[ticker["symbol"]])
            for ticker in recorded}
