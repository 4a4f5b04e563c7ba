"""Parameter validation and the handlers of the simulated ``/api/v3`` endpoints.

Answers have Binance's shapes (prices and quantities as strings, times, ids
and counts as numbers) and bad parameters get Binance's error codes, so a
client that passes here has a fair chance against the real API.  Symbol
lists are checked as strictly as Binance does: ``symbols`` must be a compact
JSON array (``["BTCUSDT","ETHBTC"]``, no spaces), which catches clients that
send ``json.dumps`` output with its default separators.  Symbols may be
non-ASCII (Binance, 2025-12-02): they arrive as percent-encoded UTF-8, and a
client that sends ``json.dumps``'s ``\\uXXXX`` escapes instead gets -1100
(a backslash is not a legal character), as from Binance.

``symbolStatus`` filters exchangeInfo and the tickers by trading status
(-1122 for a value Binance does not know, -1220 when a single ``symbol``
has another status); ``showPermissionSets=false`` empties ``permissionSets``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import mutations, weights
from .faults import Fault
from .market import Book, SimulatedMarket

# Binance's published ranges, as quoted in its -1100 message; the patterns also take
# any non-ASCII character, since symbols may be Unicode
SYMBOL_RANGE = "^[A-Z0-9-_.]{1,20}$"
SYMBOLS_RANGE = '^\\[("[A-Z0-9-_.]{1,20}"(,"[A-Z0-9-_.]{1,20}"){0,}){0,1}\\]$'
_CHAR = "(?:[A-Z0-9\\-_.]|[^\\x00-\\x7f])"
_SYMBOL = re.compile(f"{_CHAR}{{1,20}}")
_SYMBOLS = re.compile(f'\\[(?:"{_CHAR}{{1,20}}"(?:,"{_CHAR}{{1,20}}")*)?\\]')
STATUSES = ("TRADING", "HALT", "BREAK", "END_OF_DAY", "CANCEL_ONLY")
EXCHANGE_INFO_STATUSES = ("TRADING", "HALT", "BREAK")

MINI_DROPPED = (
    "priceChange",
    "priceChangePercent",
    "weightedAvgPrice",
    "prevClosePrice",
    "lastQty",
    "bidPrice",
    "bidQty",
    "askPrice",
    "askQty",
)

Params = Mapping[str, Sequence[str]]


class ErrorAnswer(Exception):
    """A Binance error answer: HTTP status plus ``{"code": ..., "msg": ...}``."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code, self.msg, self.status = code, msg, status

    def payload(self) -> dict[str, Any]:
        """The JSON body Binance sends."""
        return {"code": self.code, "msg": self.msg}


def invalid_symbol() -> ErrorAnswer:
    """Binance's answer for a symbol it does not know."""
    return ErrorAnswer(-1121, "Invalid symbol.")


def illegal(name: str, legal: str) -> ErrorAnswer:
    """Binance's answer for a malformed parameter value."""
    msg = f"Illegal characters found in parameter '{name}'; legal range is '{legal}'."
    return ErrorAnswer(-1100, msg)


def one(params: Params, name: str) -> str | None:
    """The single value of ``name``; a repeated parameter is an error, as on Binance."""
    values = params.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise ErrorAnswer(-1101, "Duplicate values for a parameter detected.")
    if values[0] == "":
        raise ErrorAnswer(-1105, f"Parameter '{name}' was empty.")
    return values[0]


def status_param(params: Params, legal: Sequence[str]) -> str | None:
    """``symbolStatus=``: one of ``legal``, else Binance's -1122."""
    status = one(params, "symbolStatus")
    if status is not None and status not in legal:
        raise ErrorAnswer(-1122, "Invalid symbolStatus.")
    return status


def flag_param(params: Params, name: str, default: bool) -> bool:
    """A BOOLEAN parameter: ``true`` or ``false``."""
    value = one(params, name)
    if value is None:
        return default
    if value.lower() not in ("true", "false"):
        raise ErrorAnswer(-1130, "Invalid data sent for a parameter.")
    return value.lower() == "true"


def symbol_param(params: Params) -> str | None:
    """``symbol=``, validated against Binance's pattern."""
    symbol = one(params, "symbol")
    if symbol is not None and not _SYMBOL.fullmatch(symbol):
        raise illegal("symbol", SYMBOL_RANGE)
    return symbol


def symbols_param(params: Params) -> list[str] | None:
    """``symbols=["A","B"]``, validated against Binance's pattern."""
    raw = one(params, "symbols")
    if raw is None:
        return None
    if not _SYMBOLS.fullmatch(raw):
        raise illegal("symbols", SYMBOLS_RANGE)
    symbols: list[str] = json.loads(raw)
    if not symbols:
        raise ErrorAnswer(-1105, "Parameter 'symbols' was empty.")
    if len(set(symbols)) != len(symbols):
        raise ErrorAnswer(-1101, "Duplicate values for a parameter detected.")
    return symbols


@dataclass(frozen=True)
class DataFaults:
    """The faults that change what the handlers compute (rather than the transport)."""

    unknown_symbols: frozenset[str] = frozenset()
    dropped_symbols: frozenset[str] = frozenset()
    empty_sides: frozenset[str] = frozenset()
    crossed: bool = False

    @classmethod
    def from_faults(cls, faults: Iterable[Fault]) -> DataFaults:
        """Collect the data faults among those drawn for a request."""
        unknown, dropped, sides, crossed = set(), set(), set(), False
        for fault in faults:
            if fault.name == "unknown_symbol":
                unknown.add(fault.params["symbol"])
            elif fault.name == "drop_symbol":
                dropped.add(fault.params["symbol"])
            elif fault.name == "empty_book_side":
                sides.add(fault.params["side"])
            elif fault.name == "crossed_book":
                crossed = True
        return cls(frozenset(unknown), frozenset(dropped), frozenset(sides), crossed)

    def apply(self, book: Book) -> Book:
        """The book as the active book faults distort it."""
        if self.crossed:
            book = mutations.cross_book(book)
        for side in sorted(self.empty_sides):
            book = mutations.empty_side(book, side)
        return book


class Api:
    """The endpoint handlers; each returns the JSON payload or raises ``ErrorAnswer``."""

    def __init__(self, market: SimulatedMarket) -> None:
        self.market = market
        self._handlers: dict[str, Callable[[Params, DataFaults], Any]] = {
            weights.PING: lambda params, faults: {},
            weights.TIME: lambda params, faults: {"serverTime": market.now_ms()},
            weights.EXCHANGE_INFO: self.exchange_info,
            weights.TICKER_24HR: self.ticker_24hr,
            weights.DEPTH: self.depth,
            weights.BOOK_TICKER: self.book_ticker,
        }

    def handle(self, path: str, params: Params, faults: DataFaults) -> Any:
        """Answer a request to one of ``weights.ENDPOINTS``."""
        return self._handlers[path](params, faults)

    @staticmethod
    def _selection(
        params: Params, known: Callable[[str], bool], faults: DataFaults
    ) -> tuple[str | None, list[str] | None]:
        """``symbol`` or ``symbols`` (not both), every one known to ``known``."""
        symbol, symbols = symbol_param(params), symbols_param(params)
        if symbol is not None and symbols is not None:
            raise ErrorAnswer(-1128, "Combination of optional parameters invalid.")
        for name in [symbol] if symbol is not None else symbols or []:
            if not known(name) or name in faults.unknown_symbols:
                raise invalid_symbol()
        return symbol, symbols

    def _books(self, symbols: Iterable[str], faults: DataFaults, moment: int) -> list[Book]:
        return [
            faults.apply(self.market.book_at(symbol, 1, moment))
            for symbol in symbols
            if symbol not in faults.dropped_symbols
        ]

    def exchange_info(self, params: Params, faults: DataFaults) -> Any:
        """``GET /api/v3/exchangeInfo`` -- all symbols, or ``symbol``/``symbols`` only."""
        symbol, symbols = self._selection(params, self.market.is_listed, faults)
        status = status_param(params, EXCHANGE_INFO_STATUSES)
        if status is not None and (symbol is not None or symbols is not None):
            raise ErrorAnswer(-1128, "Combination of optional parameters invalid.")
        permissions = flag_param(params, "showPermissionSets", True)
        return self.market.exchange_info([symbol] if symbol is not None else symbols,
                                         status=status, permissions=permissions)

    def ticker_24hr(self, params: Params, faults: DataFaults) -> Any:
        """``GET /api/v3/ticker/24hr`` -- FULL or MINI, one symbol, a list or all."""
        kind = one(params, "type") or "FULL"
        if kind not in ("FULL", "MINI"):
            raise illegal("type", "FULL, MINI")
        symbol, symbols = self._selection(params, self.market.has_symbol, faults)
        status = status_param(params, STATUSES)
        if status is not None and symbol is not None and self.market.status(symbol) != status:
            raise ErrorAnswer(
                -1220, "The symbol's status does not match the requested symbolStatus.")
        moment = self.market.moment()

        def view(book: Book) -> dict[str, Any]:
            ticker = self.market.ticker(book)
            if kind == "MINI":
                for key in MINI_DROPPED:
                    del ticker[key]
            return ticker

        if symbol is not None:
            return view(faults.apply(self.market.book_at(symbol, 1, moment)))
        chosen = symbols if symbols is not None else self.market.symbols
        if status is not None:
            chosen = [name for name in chosen if self.market.status(name) == status]
        return [view(book) for book in self._books(chosen, faults, moment)]

    def depth(self, params: Params, faults: DataFaults) -> Any:
        """``GET /api/v3/depth`` -- ``symbol`` required, ``limit`` 1..5000 (more is capped)."""
        raw_limit = one(params, "limit")
        if raw_limit is not None and not raw_limit.isdigit():
            raise illegal("limit", "^[0-9]{1,20}$")
        limit = int(raw_limit) if raw_limit is not None else weights.DEFAULT_DEPTH_LIMIT
        if limit < 1:
            raise ErrorAnswer(-1130, "Invalid data sent for a parameter.")
        if "symbol" not in params:
            raise ErrorAnswer(
                -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."
            )
        symbol, _ = self._selection({"symbol": params["symbol"]}, self.market.has_symbol, faults)
        assert symbol is not None
        book = self.market.book(symbol, min(limit, weights.MAX_DEPTH_LIMIT))
        return faults.apply(book).depth_payload()

    def book_ticker(self, params: Params, faults: DataFaults) -> Any:
        """``GET /api/v3/ticker/bookTicker`` -- one symbol (object), a list or all (list)."""
        symbol, symbols = self._selection(params, self.market.has_symbol, faults)
        moment = self.market.moment()
        if symbol is not None:
            return faults.apply(self.market.book_at(symbol, 1, moment)).book_ticker_payload()
        chosen = symbols if symbols is not None else self.market.symbols
        return [book.book_ticker_payload() for book in self._books(chosen, faults, moment)]
