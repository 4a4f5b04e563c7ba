"""Binance's JSON → validated records (:mod:`collector.records`).

Binance sends prices and quantities as strings (``"0.05691000"``); they become
exact :class:`~decimal.Decimal` here and stay exact until a Prometheus sample
needs a float. Every field the product uses is checked: a missing,
mistyped or non-numeric field raises :class:`~collector.errors.BadResponse`
naming the endpoint and the field's path, e.g. ``[17].quoteVolume``.
Fields the product does not use are ignored, so additions upstream (such as
``permissionSets``) never break parsing.

Every parser takes the decoded JSON (dicts and lists). The three that run at volume,
:func:`parse_book_ticker_event`, :func:`parse_depth_update` and :func:`parse_book_tickers`,
also take the raw JSON (``bytes``, or a :class:`msgspec.Raw` as the stream client hands
events on). Raw bookTicker events and answers are decoded by msgspec straight into typed
structs, their numerals kept as strings and checked all at once (bench section 8: about
2.4 times as fast as ``json`` and the checks below); anything that typed decoding does not
take as it is, a bad field or merely an unusual one, is decoded untyped and checked
field by field below, so a raw payload is accepted, rejected and named exactly as its
decoded form would be. Depth events are decoded untyped: they are few (Q1's books),
and typed decoding would gain them less (1.5 times, section 8).
"""

from __future__ import annotations

import re
from decimal import Decimal
from itertools import chain
from operator import attrgetter
from types import MappingProxyType
from typing import Annotated, Any, Mapping, Sequence

import msgspec

from collector.errors import BadResponse
from collector.records import BookTop, DepthUpdate, Level, OrderBook, SymbolInfo, Ticker24h

EXCHANGE_INFO = "/api/v3/exchangeInfo"
TICKER_24H = "/api/v3/ticker/24hr"
DEPTH = "/api/v3/depth"
BOOK_TICKER = "/api/v3/ticker/bookTicker"

# Binance's numerals: ASCII digits and an optional fraction ("0.05691000"). Decimal()
# alone also takes "1E+1000000", "1_000", " 1", "+1" and non-ASCII digits.
_NUMERAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


class _Fields:
    """Typed accessors that raise ``BadResponse`` with the field's path."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint

    def fail(self, path: str, problem: str) -> BadResponse:
        """The error for ``path``; returned so callers can ``raise`` it."""
        return BadResponse(self.endpoint, path, problem)

    def obj(self, value: Any, path: str) -> Mapping[str, Any]:
        """``value`` must be a JSON object."""
        if not isinstance(value, dict):
            raise self.fail(path or "body", f"expected an object, got {_kind(value)}")
        return value

    def array(self, value: Any, path: str) -> list[Any]:
        """``value`` must be a JSON array."""
        if not isinstance(value, list):
            raise self.fail(path or "body", f"expected a list, got {_kind(value)}")
        return value

    def get(self, parent: Mapping[str, Any], key: str, path: str) -> Any:
        """``parent[key]``, which must be present."""
        try:
            return parent[key]
        except KeyError:
            raise self.fail(_join(path, key), "missing") from None

    def text(self, parent: Mapping[str, Any], key: str, path: str) -> str:
        """A non-empty string field."""
        value = self.get(parent, key, path)
        if not isinstance(value, str) or not value:
            raise self.fail(_join(path, key), f"expected a non-empty string, got {value!r:.40}")
        return value

    def decimal(self, value: Any, path: str, *, positive: bool = False) -> Decimal:
        """A decimal string, finite and not negative (strictly positive if asked)."""
        if not isinstance(value, str):
            raise self.fail(path, f"expected a decimal string, got {_kind(value)}")
        if not _NUMERAL.fullmatch(value):
            raise self.fail(path, f"not a decimal: {value!r:.40}")
        number = Decimal(value)
        if number < 0 or (positive and number == 0):
            raise self.fail(path, f"out of range: {value!r:.40}")
        return number

    def decimal_field(self, parent: Mapping[str, Any], key: str, path: str) -> Decimal:
        """A non-negative decimal string field."""
        return self.decimal(self.get(parent, key, path), _join(path, key))

    def count(self, parent: Mapping[str, Any], key: str, path: str) -> int:
        """A non-negative JSON integer (``true`` is not a count)."""
        value = self.get(parent, key, path)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.fail(_join(path, key), f"expected a non-negative integer, got {value!r:.40}")
        return value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def parse_exchange_info(payload: Any) -> Mapping[str, SymbolInfo]:
    """``/api/v3/exchangeInfo`` → read-only mapping of symbol → :class:`SymbolInfo`."""
    fields = _Fields(EXCHANGE_INFO)
    symbols = fields.array(fields.get(fields.obj(payload, ""), "symbols", ""), "symbols")
    infos: dict[str, SymbolInfo] = {}
    for index, raw in enumerate(symbols):
        path = f"symbols[{index}]"
        entry = fields.obj(raw, path)
        info = SymbolInfo(
            symbol=fields.text(entry, "symbol", path),
            status=fields.text(entry, "status", path),
            base_asset=fields.text(entry, "baseAsset", path),
            quote_asset=fields.text(entry, "quoteAsset", path),
        )
        infos[info.symbol] = info
    return MappingProxyType(infos)


def parse_weight_limit(payload: Any) -> int | None:
    """exchangeInfo's ``REQUEST_WEIGHT`` limit per minute; None if it announces none.

    Called on a payload ``parse_exchange_info`` accepted. A limit over N minutes
    counts as limit / N (rounded down); limits over seconds or days are not ours
    to budget (the product spends per minute). The figure only informs (a metric, a
    warning), so a malformed entry is skipped rather than failing the symbols with it.
    """
    raw = payload.get("rateLimits") if isinstance(payload, dict) else None
    limits = []
    for entry in raw if isinstance(raw, list) else ():
        if not isinstance(entry, dict) or entry.get("rateLimitType") != "REQUEST_WEIGHT" \
                or entry.get("interval") != "MINUTE":
            continue
        minutes, limit = entry.get("intervalNum"), entry.get("limit")
        if isinstance(minutes, int) and isinstance(limit, int) and 0 < minutes <= limit \
                and not isinstance(minutes, bool) and not isinstance(limit, bool):
            limits.append(limit // minutes)
    return min(limits) if limits else None


def parse_tickers(payload: Any) -> tuple[Ticker24h, ...]:
    """``/api/v3/ticker/24hr`` (FULL or MINI, all symbols) → tickers in answer order."""
    fields = _Fields(TICKER_24H)
    tickers = []
    for index, raw in enumerate(fields.array(payload, "")):
        path = f"[{index}]"
        entry = fields.obj(raw, path)
        tickers.append(
            Ticker24h(
                symbol=fields.text(entry, "symbol", path),
                volume=fields.decimal_field(entry, "volume", path),
                quote_volume=fields.decimal_field(entry, "quoteVolume", path),
                trades=fields.count(entry, "count", path),
            )
        )
    return tuple(tickers)


def _levels(fields: _Fields, body: Mapping[str, Any], name: str, *,
            zero_qty: bool) -> tuple[Level, ...]:
    """``body[name]``: [price, quantity] pairs, price > 0, quantity > 0 (>= 0 if
    ``zero_qty``).

    Streams send thousands of levels a second, so the usual case is checked inline,
    without building paths; any other level goes through :func:`_level`, which names
    what is wrong with it.
    """
    numeral = _NUMERAL.fullmatch
    levels = []
    for index, raw in enumerate(fields.array(fields.get(body, name, ""), name)):
        if isinstance(raw, list) and len(raw) >= 2:
            price, qty = raw[0], raw[1]
            if isinstance(price, str) and isinstance(qty, str) and numeral(price) \
                    and numeral(qty):
                level = Decimal(price), Decimal(qty)
                if level[0] > 0 and (level[1] > 0 or (zero_qty and level[1] == 0)):
                    levels.append(level)
                    continue
        levels.append(_level(fields, raw, f"{name}[{index}]", zero_qty))
    return tuple(levels)


def _level(fields: _Fields, raw: Any, path: str, zero_qty: bool) -> Level:
    """One [price, quantity] pair, checked field by field."""
    level = fields.array(raw, path)
    if len(level) < 2:
        raise fields.fail(path, "expected [price, quantity]")
    return (fields.decimal(level[0], f"{path}[0]", positive=True),
            fields.decimal(level[1], f"{path}[1]", positive=not zero_qty))


def parse_order_book(payload: Any, symbol: str) -> OrderBook:
    """``/api/v3/depth`` → :class:`OrderBook`; every level needs price > 0 and qty > 0, and
    ``lastUpdateId`` must be a non-negative integer."""
    fields = _Fields(f"{DEPTH}?symbol={symbol}")
    body = fields.obj(payload, "")
    return OrderBook(symbol=symbol,
                     bids=_levels(fields, body, "bids", zero_qty=False),
                     asks=_levels(fields, body, "asks", zero_qty=False),
                     last_update_id=fields.count(body, "lastUpdateId", ""))


def parse_depth_update(payload: Any, stream: str) -> DepthUpdate:
    """A ``<symbol>@depth`` event (the ``data`` of a combined stream) → :class:`DepthUpdate`.

    ``e`` must be ``depthUpdate``; ``U`` <= ``u``, both non-negative integers; levels are
    [price > 0, quantity >= 0]. Errors name ``stream <stream>`` as the endpoint.
    ``payload`` may be raw JSON (decoded untyped).
    """
    fields = _Fields(f"stream {stream}")
    if isinstance(payload, RAW):
        payload = _decoded(payload, fields.endpoint)
    body = fields.obj(payload, "")
    kind = fields.get(body, "e", "")
    if kind != "depthUpdate":
        raise fields.fail("e", f"expected 'depthUpdate', got {kind!r:.40}")
    symbol = fields.text(body, "s", "")
    first, last = fields.count(body, "U", ""), fields.count(body, "u", "")
    if first > last:
        raise fields.fail("U", f"{first} is after u {last}")
    return DepthUpdate(symbol=symbol, first_update_id=first, last_update_id=last,
                       bids=_levels(fields, body, "b", zero_qty=True),
                       asks=_levels(fields, body, "a", zero_qty=True))


def parse_book_ticker_event(payload: Any, stream: str) -> tuple[int, BookTop]:
    """A ``<symbol>@bookTicker`` event → (its ``u``, the :class:`BookTop` it carries).

    Fields are checked as :func:`parse_book_tickers` checks them (a price of 0 is an
    empty side). Errors name ``stream <stream>`` as the endpoint. ``payload`` may be raw
    JSON (decoded typed, see the module's docstring).
    """
    if isinstance(payload, RAW):
        typed = _typed_book_ticker_event(payload)
        if typed is not None:
            return typed
        payload = _decoded(payload, f"stream {stream}")
    fields = _Fields(f"stream {stream}")
    body = fields.obj(payload, "")
    update_id = fields.count(body, "u", "")
    return update_id, BookTop(
        symbol=fields.text(body, "s", ""),
        bid_price=fields.decimal_field(body, "b", ""),
        bid_qty=fields.decimal_field(body, "B", ""),
        ask_price=fields.decimal_field(body, "a", ""),
        ask_qty=fields.decimal_field(body, "A", ""),
    )


def parse_book_tickers(payload: Any) -> Mapping[str, BookTop]:
    """``/api/v3/ticker/bookTicker?symbols=[...]`` → read-only symbol → :class:`BookTop`.

    ``payload`` may be raw JSON, the answer's body (decoded typed, see the module's
    docstring)."""
    if isinstance(payload, RAW):
        typed = _typed_book_tickers(payload)
        if typed is not None:
            return typed
        payload = _decoded(payload, BOOK_TICKER)
    fields = _Fields(BOOK_TICKER)
    tops: dict[str, BookTop] = {}
    for index, raw in enumerate(fields.array(payload, "")):
        path = f"[{index}]"
        entry = fields.obj(raw, path)
        top = BookTop(
            symbol=fields.text(entry, "symbol", path),
            bid_price=fields.decimal_field(entry, "bidPrice", path),
            bid_qty=fields.decimal_field(entry, "bidQty", path),
            ask_price=fields.decimal_field(entry, "askPrice", path),
            ask_qty=fields.decimal_field(entry, "askQty", path),
        )
        tops[top.symbol] = top
    return MappingProxyType(tops)


# -- raw JSON ---------------------------------------------------------------------------

RAW = (bytes, bytearray, memoryview, msgspec.Raw)  # raw JSON; a str is a decoded JSON string

_Count = Annotated[int, msgspec.Meta(ge=0)]  # bool is no int to msgspec
_Text = Annotated[str, msgspec.Meta(min_length=1)]
# Numerals joined, each followed by a comma, checked at once: plain ones without a sign,
# as Binance writes them (those of _NUMERAL that are >= 0). A comma inside a field adds a
# numeral, so their count is checked too: by the pattern (the four of a bookTicker
# event), or by counting commas.
_PLAIN = re.compile(r"(?:[0-9]+(?:\.[0-9]+)?,)*").fullmatch
_FOUR_PLAIN = re.compile(r"(?:[0-9]+(?:\.[0-9]+)?,){4}").fullmatch


# gc=False: structs of strings and numbers take part in no reference cycle
class _BookTickerEvent(msgspec.Struct, gc=False):
    """A ``<symbol>@bookTicker`` event, its numerals as sent."""

    update_id: _Count = msgspec.field(name="u")
    symbol: _Text = msgspec.field(name="s")
    bid_price: str = msgspec.field(name="b")
    bid_qty: str = msgspec.field(name="B")
    ask_price: str = msgspec.field(name="a")
    ask_qty: str = msgspec.field(name="A")


class _BookTickerEntry(msgspec.Struct, gc=False):
    """One entry of a ``ticker/bookTicker`` answer, its numerals as sent."""

    symbol: _Text
    bid_price: str = msgspec.field(name="bidPrice")
    bid_qty: str = msgspec.field(name="bidQty")
    ask_price: str = msgspec.field(name="askPrice")
    ask_qty: str = msgspec.field(name="askQty")


_BOOK_TICKER_EVENT = msgspec.json.Decoder(_BookTickerEvent)
_BOOK_TICKER_ENTRIES = msgspec.json.Decoder(list[_BookTickerEntry])
_NUMERALS_OF_ENTRY = attrgetter("bid_price", "bid_qty", "ask_price", "ask_qty")


def _decoded(raw: Any, endpoint: str) -> Any:
    """Raw JSON decoded untyped, for the field-by-field checks."""
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError:
        raise BadResponse(endpoint, "body", "not valid JSON") from None


def _plain_decimals(texts: Sequence[str]) -> list[Decimal] | None:
    """Each text as a Decimal, if every one is a plain numeral; else None."""
    if not texts:
        return []
    joined = ",".join(texts) + ","
    if _PLAIN(joined) is None or joined.count(",") != len(texts):
        return None
    return list(map(Decimal, texts))


def _typed_book_ticker_event(raw: Any) -> tuple[int, BookTop] | None:
    """A raw bookTicker event as Binance sends them; None for anything else."""
    try:
        event = _BOOK_TICKER_EVENT.decode(raw)
    except msgspec.DecodeError:  # a ValidationError too
        return None
    bid, bid_qty, ask, ask_qty = event.bid_price, event.bid_qty, event.ask_price, event.ask_qty
    if _FOUR_PLAIN(f"{bid},{bid_qty},{ask},{ask_qty},") is None:
        return None
    return event.update_id, BookTop(event.symbol, Decimal(bid), Decimal(bid_qty), Decimal(ask),
                                    Decimal(ask_qty))


def _typed_book_tickers(raw: Any) -> Mapping[str, BookTop] | None:
    """A raw bookTicker answer as Binance sends them; None for anything else."""
    try:
        entries = _BOOK_TICKER_ENTRIES.decode(raw)
    except msgspec.DecodeError:
        return None
    numbers = _plain_decimals(list(chain.from_iterable(map(_NUMERALS_OF_ENTRY, entries))))
    if numbers is None:
        return None
    found = iter(numbers)  # zip takes them in order: 4 an entry
    tops = {}
    for entry, bid_price, bid_qty, ask_price, ask_qty in zip(entries, found, found, found,
                                                             found):
        tops[entry.symbol] = BookTop(entry.symbol, bid_price, bid_qty, ask_price, ask_qty)
    return MappingProxyType(tops)
