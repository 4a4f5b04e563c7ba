"""The immutable records everything else passes around, and the front ends read.

Upstream data as validated from Binance's JSON (:class:`SymbolInfo`, :class:`Ticker24h`,
:class:`BookTop`, :class:`OrderBook`, :class:`DepthUpdate`), the answers made of it
(:class:`Notional`, :class:`Rankings`, :class:`Spreads`), what is followed
(:class:`Watchlist`), how the upstream has gone
(:class:`Health`, :class:`StreamHealth`), and the one record a scrape or a report tick
reads: :class:`Snapshot`. Plus :class:`Settings`, what to compute and how often.

This module imports nothing else of the package but :mod:`collector.errors` (the
failures a record may carry), and only for type checking: any layer may use it.
Mappings inside a record are shared between readers and must be treated as read-only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Generic, Literal, Mapping, TypeVar

if TYPE_CHECKING:
    from collector.errors import BinanceError

T = TypeVar("T")

RankBy = Literal["quote", "base"]
REST = "rest"  # spreads and books fetched when scraped, cached per data group
STREAM = "stream"  # spreads and books kept live from Binance's WebSocket streams
SOURCES = (REST, STREAM)

Level = tuple[Decimal, Decimal]  # (price, quantity)


@dataclass(frozen=True, slots=True)
class Settings:  # pylint: disable=too-many-instance-attributes
    """What to compute and how often; the front ends fill it from flags."""

    top: int = 5
    depth_levels: int = 200
    rank_by: RankBy = "quote"
    volume_quote: str = "BTC"
    trades_quote: str = "USDT"
    ttl_exchange: float = 3600.0
    ttl_rankings: float = 300.0
    ttl_books: float = 30.0
    ttl_spreads: float = 10.0
    retry_delay: float = 10.0
    refresh_budget: float | None = None  # seconds a refresh may take (scrape timeout)
    source: str = REST  # where spreads and books come from: REST or STREAM
    symbols: tuple[str, ...] = ()  # followed besides the rankings (--symbols)
    all_spreads: bool = False  # spreads of every TRADING symbol (--spreads all)
    depth_bands: tuple[str, ...] = ()  # ±x % of mid, as given (--depth-bands)

    @property
    def books(self) -> int:
        """The most order books followed: Q1's and ``symbols``."""
        return self.top + len(self.symbols)


# -- upstream data, as validated ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SymbolInfo:
    """One symbol of ``exchangeInfo``: the only trusted source of its quote asset."""

    symbol: str
    status: str
    base_asset: str
    quote_asset: str

    @property
    def trading(self) -> bool:
        """Only ``TRADING`` symbols take part in rankings (not ``BREAK``, ``HALT``...)."""
        return self.status == "TRADING"


@dataclass(frozen=True, slots=True)
class Ticker24h:
    """24 h rolling statistics of one symbol."""

    symbol: str
    volume: Decimal  # in the base asset
    quote_volume: Decimal  # in the quote asset
    trades: int  # Binance's ``count``


@dataclass(frozen=True, slots=True)
class BookTop:
    """Best bid and ask of one symbol; a price of 0 means that side is empty."""

    symbol: str
    bid_price: Decimal
    bid_qty: Decimal
    ask_price: Decimal
    ask_qty: Decimal


@dataclass(frozen=True, slots=True)
class OrderBook:
    """Price levels best first, exactly as ``/api/v3/depth`` returned them.

    ``last_update_id`` is Binance's ``lastUpdateId``: where a local book kept from the
    diff stream starts (see :mod:`collector.order_book`).
    """

    symbol: str
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    last_update_id: int


@dataclass(frozen=True, slots=True)
class DepthUpdate:
    """One ``<symbol>@depth`` event: absolute quantities of the levels that changed.

    A quantity of 0 removes that level; prices are > 0. ``first_update_id`` (``U``) to
    ``last_update_id`` (``u``) are the book updates the event covers.
    """

    symbol: str
    first_update_id: int  # U
    last_update_id: int  # u
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]


# -- answers ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BandDepth:
    """Σ price × quantity of a book's levels within ±x % of its mid price, per side, with
    how many levels that was; a side is *complete* when a level past the band's edge, or
    the end of the side, is known (else its sum is a floor)."""

    bids: Decimal
    asks: Decimal
    bid_levels: int
    ask_levels: int
    bids_complete: bool
    asks_complete: bool


_NO_BANDS: dict[str, BandDepth] = {}


@dataclass(frozen=True, slots=True)
class Notional:
    """Q3 for one book: Σ price × quantity per side, and how many levels were summed; and
    the ``--depth-bands`` (the band as given, e.g. ``"2"`` → its depth; none without a
    mid price: an empty side or a crossed book)."""

    symbol: str
    bids: Decimal
    asks: Decimal
    bid_levels: int
    ask_levels: int
    bands: Mapping[str, BandDepth] = field(default_factory=_NO_BANDS.copy)


@dataclass(frozen=True, slots=True)
class Rankings:
    """Q1 and Q2."""

    by_volume: tuple[Ticker24h, ...]
    by_trades: tuple[Ticker24h, ...]


_EMPTY: dict[str, Decimal] = {}


@dataclass(frozen=True, slots=True)
class Spreads:
    """Q4 per symbol and Q5: the delta from the sample before (see :mod:`collector.q5`)."""

    tops: Mapping[str, BookTop]
    spreads: Mapping[str, Decimal | None]
    deltas: Mapping[str, Decimal | None]
    at: float  # Unix time of this refresh (stream mode: of the last best bid/ask pushed)
    # stream mode only: the lowest and highest spread of the last 10 s, the current included
    minimum: Mapping[str, Decimal] = field(default_factory=_EMPTY.copy)
    maximum: Mapping[str, Decimal] = field(default_factory=_EMPTY.copy)


@dataclass(frozen=True, slots=True)
class Watchlist:
    """What to follow beside the rankings' figures: the books (Q1's symbols, then
    ``--symbols``), the spreads (Q2's, then ``--symbols``; or every ``TRADING`` symbol),
    and whether each ``--symbols`` entry is followed (listed by Binance and ``TRADING``)."""

    books: tuple[str, ...]
    spreads: tuple[str, ...]
    followed: Mapping[str, bool]
    top_spreads: tuple[str, ...] = ()  # Q2's and --symbols', also with --spreads all


@dataclass(frozen=True, slots=True)
class Outcome(Generic[T]):
    """A current value, or the error of the last attempt to get one."""

    value: T | None
    error: BinanceError | None = None
    refreshed: bool = False  # True only for the one call that did the refresh

    @property
    def ok(self) -> bool:
        """True when ``value`` is current."""
        return self.error is None and self.value is not None


# -- health -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StreamHealth:  # pylint: disable=too-many-instance-attributes
    """How the streams have gone, as of one snapshot: the stream health metrics."""

    connected: bool
    reconnects: Mapping[str, int]  # reason → attempts made because of it
    messages: Mapping[str, int]  # stream name → events received
    last_message_age: float | None  # seconds since the last event; None before the first
    synced: Mapping[str, bool]  # Q1 symbol → its local book is synced
    resyncs: Mapping[tuple[str, str], int]  # (symbol, reason) → resyncs
    updates: Mapping[str, int]  # Q2 symbol → best bid/ask updates applied


@dataclass(frozen=True, slots=True)
class Health:  # pylint: disable=too-many-instance-attributes
    """How talking to Binance has gone, as of one snapshot: what the health metrics show."""

    requests: Mapping[tuple[str, str], int]  # (endpoint, HTTP status or "error") → count
    failures: Mapping[tuple[str, str], int]  # (group, error kind) → failed refreshes
    last_refresh: Mapping[str, float]  # group → Unix time of its last successful refresh
    used_weight: int | None  # X-MBX-USED-WEIGHT-1M this clock minute; None if unknown
    weight_limit: int  # per minute, from exchangeInfo
    cool_down: float  # seconds left of a rate-limit cool-down
    stream: StreamHealth | None = None  # stream mode only


# -- the record front ends read ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything one scrape or report tick can publish; failed parts carry their error.

    The answers, their symbols' metadata and the health of the refreshes.
    """

    rankings: Outcome[Rankings]
    books: Outcome[Mapping[str, Notional]]
    spreads: Outcome[Spreads]
    exchange: Outcome[Mapping[str, SymbolInfo]]
    health: Health
    symbols: Mapping[str, SymbolInfo]  # the last good exchangeInfo (metadata, for labels)
    followed: Mapping[str, bool] = field(default_factory=dict)  # --symbols entry → followed

    def quote_asset(self, symbol: str) -> str:
        """The symbol's quote asset per the last good exchangeInfo; "" if unknown."""
        info = self.symbols.get(symbol)
        return info.quote_asset if info is not None else ""

    def errors(self) -> list[BinanceError]:
        """The distinct errors of this snapshot, first one first."""
        found: list[BinanceError] = []
        for outcome in (self.exchange, self.rankings, self.books, self.spreads):
            if outcome.error is not None and outcome.error not in found:
                found.append(outcome.error)
        return found
