"""Property-based tests (hypothesis) for the response parsers and the Q1–Q5 answers.

Issue 7, "Fuzzing". Whatever Binance sends, a parser returns validated records or
raises the library's own ``BadResponse`` naming the endpoint and the field, and
never anything else. The answers computed from valid records are exact, sorted,
at most N long and independent of the order Binance lists symbols in.

Runs are derandomized (fixed seed, no example database) so CI is reproducible,
and ``deadline=None`` because timing on a loaded 2-core runner is not a property.
"""

from __future__ import annotations

import copy
import json
import re
from decimal import Decimal
from fractions import Fraction
from functools import cmp_to_key
from types import MappingProxyType
from typing import Any, Callable, Iterable, Iterator, Mapping

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector import answers
from collector.errors import BadResponse
from collector.models import (
    BOOK_TICKER,
    DEPTH,
    EXCHANGE_INFO,
    TICKER_24H,
    parse_book_ticker_event,
    parse_book_tickers,
    parse_depth_update,
    parse_exchange_info,
    parse_order_book,
    parse_tickers,
)
from collector.records import BookTop, DepthUpdate, OrderBook, SymbolInfo, Ticker24h
from collector.stream_client import decode_message

FUZZ = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

Path = tuple[Any, ...]

# --- arbitrary JSON -----------------------------------------------------------------

KEYS = st.sampled_from(
    ["symbol", "status", "baseAsset", "quoteAsset", "symbols", "volume", "quoteVolume",
     "count", "bids", "asks", "bidPrice", "bidQty", "askPrice", "askQty", "lastUpdateId",
     "e", "s", "U", "u", "b", "a", "B", "A"]
) | st.text(max_size=6)

# Strings that look like numbers to someone: Decimal() takes many that Binance never sends.
NUMBER_LIKE = st.sampled_from(
    ["0", "0.00000000", "-0", "-0.0", "1", "-1", "+1", "1.5", ".5", "5.", "1e3", "1E+1000000",
     "1E-1000000", "1e999999999999999999999", "NaN", "-NaN", "sNaN", "Infinity", "-Infinity",
     "inf", "1_000", " 1", "1 ", "1\n", "\u0661\u0662", "\uff11", "0x10", "1,5", "", "abc",
     "12345678901234567890123456789.12345678"]
)

SCALARS = (
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10)
    | NUMBER_LIKE
)

JSON = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(KEYS, children, max_size=4),
    max_leaves=12,
)

# --- valid, Binance-shaped data ----------------------------------------------------


def numeral(whole: int, decimals: int, fraction: int) -> str:
    """A Binance decimal string such as ``"0.05691000"``: up to 8 decimals, no exponent."""
    if not decimals:
        return str(whole)
    return f"{whole}.{fraction % 10**decimals:0{decimals}d}"


# Integer parts of 0 to 25 digits, evenly: with 8 decimals that is more than the 28
# significant digits of Decimal's default precision, where rounding would start.
WHOLES = st.integers(0, 25).flatmap(lambda digits: st.integers(10**digits // 10, 10**digits - 1))
DECIMALS = st.builds(numeral, WHOLES, st.integers(0, 8), st.integers(0, 10**8 - 1))
# Frequent ties and zeros (an empty book side is "0.00000000").
FEW = st.sampled_from(
    ["0", "0.00000000", "0.00000001", "1", "1.00000000", "2.5", "2.50000000", "100"]
)
AMOUNTS = FEW | DECIMALS
POSITIVE = AMOUNTS.filter(lambda s: Decimal(s) > 0)

ASSETS = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=5)
QUOTES = ["BTC", "USDT", "ETH"]
QUOTE_CHOICES = st.sampled_from(["BTC", "BTC", "BTC", "USDT", "ETH"])
STATUSES = st.sampled_from(["TRADING", "TRADING", "BREAK", "HALT"])
SYMBOLS = st.builds(str.__add__, ASSETS, st.sampled_from(QUOTES))

SYMBOL_ENTRIES = st.builds(
    lambda base, quote, status: {
        "symbol": base + quote, "status": status, "baseAsset": base, "quoteAsset": quote,
        "permissionSets": [["SPOT"]],
    },
    ASSETS, st.sampled_from(QUOTES), STATUSES,
)
EXCHANGE_INFOS = st.builds(
    lambda symbols: {"timezone": "UTC", "symbols": symbols},
    st.lists(SYMBOL_ENTRIES, max_size=5, unique_by=lambda e: e["symbol"]),
)
TICKER_LISTS = st.lists(
    st.fixed_dictionaries(
        {"symbol": SYMBOLS, "volume": AMOUNTS, "quoteVolume": AMOUNTS,
         "count": st.integers(0, 10**9)},
        optional={"openPrice": AMOUNTS, "lastPrice": AMOUNTS},
    ),
    max_size=5, unique_by=lambda e: e["symbol"],
)
LEVELS = st.lists(st.lists(POSITIVE, min_size=2, max_size=2), max_size=6)
DEPTHS = st.fixed_dictionaries(
    {"lastUpdateId": st.integers(0, 10**12), "bids": LEVELS, "asks": LEVELS}
)
BOOK_TICKER_LISTS = st.lists(
    st.fixed_dictionaries(
        {"symbol": SYMBOLS, "bidPrice": AMOUNTS, "bidQty": AMOUNTS, "askPrice": AMOUNTS,
         "askQty": AMOUNTS}
    ),
    max_size=5, unique_by=lambda e: e["symbol"],
)
# stream events: a removed level has quantity 0
UPDATE_LEVELS = st.lists(st.builds(lambda price, qty: [price, qty], POSITIVE, AMOUNTS),
                         max_size=6)
DEPTH_UPDATES = st.builds(
    lambda first, span, bids, asks: {"e": "depthUpdate", "E": 1767225600000, "s": "ETHBTC",
                                     "U": first, "u": first + span, "b": bids, "a": asks},
    st.integers(0, 10**12), st.integers(0, 50), UPDATE_LEVELS, UPDATE_LEVELS,
)
BOOK_TICKER_EVENTS = st.fixed_dictionaries(
    {"u": st.integers(0, 10**12), "s": SYMBOLS, "b": AMOUNTS, "B": AMOUNTS, "a": AMOUNTS,
     "A": AMOUNTS}
)
STREAM = "ethbtc@depth@100ms"


def parse_depth(payload: Any) -> OrderBook:
    return parse_order_book(payload, "ETHBTC")


def parse_update(payload: Any) -> DepthUpdate:
    return parse_depth_update(payload, STREAM)


def parse_book_ticker(payload: Any) -> tuple[int, BookTop]:
    return parse_book_ticker_event(payload, STREAM)


# name -> (parser, endpoint it must name, strategy of valid payloads)
PARSERS: dict[str, tuple[Callable[[Any], Any], str, st.SearchStrategy[Any]]] = {
    "exchangeInfo": (parse_exchange_info, EXCHANGE_INFO, EXCHANGE_INFOS),
    "ticker24hr": (parse_tickers, TICKER_24H, TICKER_LISTS),
    "depth": (parse_depth, f"{DEPTH}?symbol=ETHBTC", DEPTHS),
    "bookTicker": (parse_book_tickers, BOOK_TICKER, BOOK_TICKER_LISTS),
    "depthUpdate": (parse_update, f"stream {STREAM}", DEPTH_UPDATES),
    "bookTickerEvent": (parse_book_ticker, f"stream {STREAM}", BOOK_TICKER_EVENTS),
}

# --- helpers ------------------------------------------------------------------------


def locations(value: Any, prefix: Path = ()) -> Iterator[Path]:
    """Every place inside a JSON value, as a path of keys and indices (the root is ``()``)."""
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from locations(child, prefix + (key,))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from locations(child, prefix + (index,))


def render(path: Path) -> str:
    """A path as the parsers name fields: ``symbols[3].status``, ``[2].volume``, ``bids[0][1]``."""
    text = ""
    for step in path:
        if isinstance(step, int):
            text += f"[{step}]"
        else:
            text = f"{text}.{step}" if text else step
    return text


def replaced(payload: Any, path: Path, value: Any) -> Any:
    if not path:
        return value
    result = copy.deepcopy(payload)
    parent = result
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    return result


def deleted(payload: Any, path: Path) -> Any:
    result = copy.deepcopy(payload)
    parent = result
    for step in path[:-1]:
        parent = parent[step]
    del parent[path[-1]]
    return result


def check_records(result: Any) -> None:
    """Whatever a parser returns is fully validated: no wrong type, no negative, no NaN."""

    def amount(value: Any, positive: bool = False) -> None:
        assert isinstance(value, Decimal) and value.is_finite() and value >= 0
        assert value > 0 or not positive

    def text(value: Any) -> None:
        assert isinstance(value, str) and value

    def update_id(value: Any) -> None:
        assert isinstance(value, int) and not isinstance(value, bool) and value >= 0

    if isinstance(result, OrderBook):
        update_id(result.last_update_id)
        for price, qty in result.bids + result.asks:
            amount(price, positive=True)
            amount(qty, positive=True)
        return
    if isinstance(result, DepthUpdate):
        text(result.symbol)
        update_id(result.first_update_id)
        update_id(result.last_update_id)
        assert result.first_update_id <= result.last_update_id
        for price, qty in result.bids + result.asks:
            amount(price, positive=True)
            amount(qty)
        return
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], BookTop):
        update_id(result[0])  # a bookTicker event: (u, BookTop)
        result = [result[1]]
    records: Iterable[Any] = result
    if isinstance(result, Mapping):
        assert all(record.symbol == key for key, record in result.items())
        records = result.values()
    for record in records:
        text(record.symbol)
        if isinstance(record, SymbolInfo):
            for field in (record.status, record.base_asset, record.quote_asset):
                text(field)
        elif isinstance(record, Ticker24h):
            amount(record.volume)
            amount(record.quote_volume)
            assert isinstance(record.trades, int) and not isinstance(record.trades, bool)
            assert record.trades >= 0
        else:
            assert isinstance(record, BookTop)
            for value in (record.bid_price, record.bid_qty, record.ask_price, record.ask_qty):
                amount(value)


def attempt(name: str, payload: Any) -> BadResponse | None:
    """Parse; the only acceptable failure is a BadResponse naming the endpoint and a field.

    Any other exception (KeyError, TypeError, InvalidOperation, ...) propagates and fails
    the test.
    """
    parser, endpoint, _ = PARSERS[name]
    try:
        result = parser(payload)
    except BadResponse as err:
        assert err.endpoint == endpoint
        assert isinstance(err.field, str) and err.field
        assert str(err).startswith(f"{endpoint}: field {err.field}: ")
        return err
    check_records(result)
    return None


def names_inside(field: str, path: Path) -> bool:
    """``field`` is the field at ``path`` or one inside it (``[1].symbol`` inside ``[1]``).

    A depthUpdate's ``U`` after its ``u`` is named ``U`` whichever of the two was changed.
    """
    where = render(path)
    return field == where or field.startswith((f"{where}.", f"{where}[")) \
        or (field, where) == ("U", "u")


ALL_PARSERS = pytest.mark.parametrize("name", list(PARSERS))

# --- parsers: arbitrary input -------------------------------------------------------


@ALL_PARSERS
@FUZZ
@given(
    payload=JSON
    | st.lists(JSON, max_size=4)
    | st.fixed_dictionaries({"symbols": st.lists(JSON, max_size=4)})
    | st.fixed_dictionaries({"bids": st.lists(JSON, max_size=3),
                             "asks": st.lists(JSON, max_size=3)})
)
def test_any_json_payload_parses_or_is_a_bad_response(name: str, payload: Any) -> None:
    """The exporter catches BinanceError only: any other exception would fail the scrape."""
    attempt(name, payload)


@ALL_PARSERS
@FUZZ
@given(data=st.data())
def test_any_value_anywhere_in_a_valid_payload_is_parsed_or_named(name: str, data: Any) -> None:
    """Replacing the payload, an entry or a field with junk must name that very field.

    An error that names another field (or none) sends whoever reads the log the wrong way.
    """
    payload = data.draw(PARSERS[name][2], label="valid payload")
    path = data.draw(st.sampled_from(list(locations(payload))), label="path")
    junk = data.draw(JSON, label="junk")
    err = attempt(name, replaced(payload, path, junk))
    if err is not None and path:
        assert names_inside(err.field, path), (err.field, render(path))


@ALL_PARSERS
@FUZZ
@given(data=st.data())
def test_deleting_any_part_of_a_valid_payload_is_parsed_or_named(name: str, data: Any) -> None:
    """A missing field is reported as missing, by its path; dropping an entry is no error."""
    payload = data.draw(PARSERS[name][2], label="valid payload")
    places = [path for path in locations(payload) if path]
    if not places:
        assert attempt(name, payload) is None
        return
    path = data.draw(st.sampled_from(places), label="path")
    err = attempt(name, deleted(payload, path))
    if err is None:
        return
    if isinstance(path[-1], str):
        assert (err.field, err.problem) == (render(path), "missing")
    else:  # a level lost its price or quantity
        assert err.field == render(path[:-1])


def nested(depth: int, leaf: Any) -> Any:
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"symbol": value}
    return value


@ALL_PARSERS
@settings(FUZZ, max_examples=20)
@given(data=st.data(), depth=st.integers(1, 400))
def test_deeply_nested_values_never_exhaust_the_stack(name: str, data: Any, depth: int) -> None:
    """Error messages quote the bad value: that must not recurse out of the stack."""
    payload = data.draw(PARSERS[name][2].filter(lambda p: len(list(locations(p))) > 1))
    path = data.draw(st.sampled_from([p for p in locations(payload) if p]))
    attempt(name, replaced(payload, path, nested(depth, "x")))


PLAIN = re.compile(r"[0-9]+(\.[0-9]+)?")
CANDIDATE_NUMERALS = (
    NUMBER_LIKE
    | AMOUNTS
    | st.text(max_size=8)
    | st.from_regex(r"[-+]?[0-9]{0,4}(\.[0-9]{0,9})?([eE][-+]?[0-9]{1,9})?", fullmatch=True)
    | st.decimals().map(str)
    | st.floats().map(str)
)


@FUZZ
@given(text=CANDIDATE_NUMERALS)
def test_decimal_fields_take_plain_numerals_only(text: str) -> None:
    """Binance writes ``"0.05691000"``; ``Decimal()`` also takes ``"1E+1000000"``, ``"1_000"``,
    ``" 1"`` or Arabic-Indic digits. Accepting those lets absurd magnitudes reach the answers
    (which then overflow) and hides a broken upstream behind a plausible number.
    """
    plain = PLAIN.fullmatch(text.removeprefix("-")) is not None
    ticker = {"symbol": "ETHBTC", "volume": text, "quoteVolume": "1", "count": 1}
    try:
        volume = parse_tickers([ticker])[0].volume
    except BadResponse as err:
        assert err.field == "[0].volume"
        assert not plain or Decimal(text) < 0
    else:
        assert plain and volume.as_tuple() == Decimal(text).as_tuple()
    try:
        price = parse_order_book({"lastUpdateId": 1, "bids": [[text, "1"]], "asks": []},
                                 "ETHBTC").bids[0][0]
    except BadResponse as err:
        assert err.field == "bids[0][0]"
        assert not plain or Decimal(text) <= 0
    else:
        assert plain and price.as_tuple() == Decimal(text).as_tuple()


# --- parsers: valid input round-trips -----------------------------------------------


def exact(value: Decimal, text: str) -> bool:
    """Same number and same digits: ``"0.05691000"`` keeps its 8 decimals."""
    return value.as_tuple() == Decimal(text).as_tuple()


@FUZZ
@given(payload=EXCHANGE_INFOS)
def test_valid_exchange_info_round_trips(payload: Any) -> None:
    """The quote asset is the only trusted way to tell BTC-quoted symbols: it must survive."""
    infos = parse_exchange_info(payload)
    assert list(infos) == [entry["symbol"] for entry in payload["symbols"]]
    for entry in payload["symbols"]:
        info = infos[entry["symbol"]]
        assert (info.status, info.base_asset, info.quote_asset) == (
            entry["status"], entry["baseAsset"], entry["quoteAsset"])
        assert info.trading == (entry["status"] == "TRADING")


@FUZZ
@given(payload=TICKER_LISTS)
def test_valid_tickers_round_trip_exactly(payload: Any) -> None:
    """Q1/Q2 rank on these numbers: any rounding at parse time could reorder a ranking."""
    tickers = parse_tickers(payload)
    assert [t.symbol for t in tickers] == [entry["symbol"] for entry in payload]
    for ticker, entry in zip(tickers, payload):
        assert exact(ticker.volume, entry["volume"])
        assert exact(ticker.quote_volume, entry["quoteVolume"])
        assert ticker.trades == entry["count"]


@FUZZ
@given(payload=DEPTHS)
def test_valid_order_books_round_trip_exactly(payload: Any) -> None:
    """Q3 sums these levels: they must be the exact strings, best first, none dropped."""
    book = parse_order_book(payload, "ETHBTC")
    assert book.symbol == "ETHBTC"
    for levels, raw in ((book.bids, payload["bids"]), (book.asks, payload["asks"])):
        assert len(levels) == len(raw)
        for (price, qty), (raw_price, raw_qty) in zip(levels, raw):
            assert exact(price, raw_price) and exact(qty, raw_qty)


@FUZZ
@given(payload=BOOK_TICKER_LISTS)
def test_valid_book_tickers_round_trip_exactly(payload: Any) -> None:
    """Q4 subtracts these prices: one ulp of rounding is a wrong spread."""
    tops = parse_book_tickers(payload)
    assert list(tops) == [entry["symbol"] for entry in payload]
    for entry in payload:
        top = tops[entry["symbol"]]
        for attribute, key in (("bid_price", "bidPrice"), ("bid_qty", "bidQty"),
                               ("ask_price", "askPrice"), ("ask_qty", "askQty")):
            assert exact(getattr(top, attribute), entry[key])


# --- parsers: raw JSON, as the stream client and the REST client hand it on --------

RAW_PARSERS = pytest.mark.parametrize("name", ["depthUpdate", "bookTickerEvent", "bookTicker"])


def raw_forms(payload: Any) -> list[Any]:
    """The payload's JSON as bytes, and as the stream client hands an event on (a
    msgspec.Raw inside a combined-stream message); none if it has no strict JSON form
    (NaN, a lone surrogate)."""
    try:
        text = json.dumps(payload, allow_nan=False, ensure_ascii=False)
        raw = text.encode()
    except ValueError:
        return []
    return [raw, decode_message(f'{{"stream":"{STREAM}","data":{text}}}').data]


def outcome(name: str, payload: Any) -> tuple[Any, ...]:
    """The records (their repr: digits included), or the error with its field and problem."""
    try:
        result = PARSERS[name][0](payload)
    except BadResponse as err:
        return ("error", str(err), err.field, err.problem)
    return ("ok", repr(dict(result) if isinstance(result, Mapping) else result))


@RAW_PARSERS
@FUZZ
@given(data=st.data())
def test_raw_json_is_parsed_or_named_as_its_decoded_form(name: str, data: Any) -> None:
    """A payload as raw JSON (typed decoding, or untyped and checked field by field when
    typed decoding does not take it) is accepted, rejected and named exactly as decoded."""
    payload = data.draw(PARSERS[name][2], label="valid payload")
    change = data.draw(st.sampled_from(["none", "replace", "delete"]), label="change")
    places = [path for path in locations(payload) if path]
    if change == "replace":
        path = data.draw(st.sampled_from(list(locations(payload))), label="path")
        payload = replaced(payload, path, data.draw(JSON | NUMBER_LIKE, label="junk"))
    elif change == "delete" and places:
        payload = deleted(payload, data.draw(st.sampled_from(places), label="path"))
    forms = raw_forms(payload)
    expected = outcome(name, payload)
    for raw in forms:
        assert outcome(name, raw) == expected


@RAW_PARSERS
@pytest.mark.parametrize("text", ['{"u": 1', "", "[1,]", '{"u": NaN}', '"\\ud800"'])
def test_raw_json_that_is_not_json_is_a_bad_body(name: str, text: str) -> None:
    parser, endpoint, _ = PARSERS[name]
    with pytest.raises(BadResponse) as err:
        parser(text.encode())
    assert str(err.value) == f"{endpoint}: field body: not valid JSON"


# --- Q1/Q2 rankings -----------------------------------------------------------------

Market = tuple[list[Ticker24h], Mapping[str, SymbolInfo]]


@st.composite
def markets(draw: Any) -> Market:
    """Tickers plus exchangeInfo: some symbols unknown, not TRADING, or quoted in another
    asset than their spelling suggests (``WBTCETH``); volumes and counts often tied.
    """
    pairs = draw(st.lists(st.tuples(ASSETS, QUOTE_CHOICES), max_size=12,
                          unique_by=lambda pair: pair[0] + pair[1]))
    # Amounts that differ from one another only in their 8th decimal, at any magnitude,
    # often beyond 28 significant digits.
    whole = draw(WHOLES | st.integers(10**20, 10**30))
    near = st.sampled_from([numeral(whole, 8, fraction) for fraction in range(4)])
    amounts = near | near | AMOUNTS
    infos: dict[str, SymbolInfo] = {}
    tickers = []
    for base, quote in pairs:
        symbol = base + quote
        if draw(st.integers(0, 9)):
            listed_quote = draw(st.sampled_from([quote, quote, quote, *QUOTES]))
            status = draw(st.sampled_from(["TRADING", "TRADING", "TRADING", "BREAK", "HALT"]))
            infos[symbol] = SymbolInfo(symbol, status, base, listed_quote)
        trades = draw(st.integers(0, 3) | st.integers(0, 10**12))
        tickers.append(Ticker24h(symbol, Decimal(draw(amounts)), Decimal(draw(amounts)), trades))
    return tickers, MappingProxyType(infos)


Ranker = Callable[[Iterable[Ticker24h], Mapping[str, SymbolInfo], str, int], list[Ticker24h]]

RANKINGS: dict[str, tuple[Ranker, Callable[[Ticker24h], Any]]] = {
    "quote_volume": (
        lambda tickers, infos, quote, n: answers.top_by_volume(
            tickers, infos, quote_asset=quote, top=n, rank_by="quote"),
        lambda t: t.quote_volume,
    ),
    "base_volume": (
        lambda tickers, infos, quote, n: answers.top_by_volume(
            tickers, infos, quote_asset=quote, top=n, rank_by="base"),
        lambda t: t.volume,
    ),
    "trades": (
        lambda tickers, infos, quote, n: answers.top_by_trades(
            tickers, infos, quote_asset=quote, top=n),
        lambda t: t.trades,
    ),
}

ALL_RANKINGS = pytest.mark.parametrize("ranking", list(RANKINGS))


@ALL_RANKINGS
@FUZZ
@given(market=markets(), quote=QUOTE_CHOICES, n=st.integers(0, 7))
def test_rankings_are_the_top_n_eligible_symbols_in_order(
    ranking: str, market: Market, quote: str, n: int
) -> None:
    """Q1/Q2 are "the top N": sorted by the key descending then symbol ascending, only
    TRADING symbols quoted in the asset exchangeInfo names, never more than N, and the
    caller's list untouched (one parsed answer serves every consumer of a scrape).
    """
    rank, key = RANKINGS[ranking]
    tickers, infos = market
    argument = list(tickers)
    result = rank(argument, infos, quote, n)
    assert argument == tickers

    assert len(result) <= n
    for ticker in result:
        assert infos[ticker.symbol].trading and infos[ticker.symbol].quote_asset == quote
    for first, second in zip(result, result[1:]):
        assert key(first) > key(second) or (
            key(first) == key(second) and first.symbol < second.symbol)

    def order(a: Ticker24h, b: Ticker24h) -> int:  # exact comparisons, no arithmetic
        if key(a) != key(b):
            return -1 if key(a) > key(b) else 1
        return -1 if a.symbol < b.symbol else int(a.symbol > b.symbol)

    eligible = [t for t in tickers if t.symbol in infos and infos[t.symbol].trading
                and infos[t.symbol].quote_asset == quote]
    assert result == sorted(eligible, key=cmp_to_key(order))[:n]


@ALL_RANKINGS
@FUZZ
@given(data=st.data(), market=markets(), quote=QUOTE_CHOICES, n=st.integers(0, 7))
def test_rankings_ignore_listing_order(
    ranking: str, data: Any, market: Market, quote: str, n: int
) -> None:
    """Binance's listing order is arbitrary: the same market must give the same answer."""
    rank, _ = RANKINGS[ranking]
    tickers, infos = market
    shuffled = data.draw(st.permutations(tickers), label="shuffled")
    assert rank(iter(shuffled), infos, quote, n) == rank(tuple(tickers), infos, quote, n)


# --- Q3 notional --------------------------------------------------------------------


@FUZZ
@given(payload=DEPTHS, n=st.integers(0, 8))
def test_book_notional_equals_an_exact_reference_sum(payload: Any, n: int) -> None:
    """Q3 is Σ price × quantity over the first N levels, exactly: the reference sum is
    computed with Fractions straight from Binance's strings, independent of Decimal.
    """
    book = parse_order_book(payload, "ETHBTC")
    notional = answers.book_notional(book, n)
    assert notional.symbol == "ETHBTC"
    for side, total, count in (("bids", notional.bids, notional.bid_levels),
                               ("asks", notional.asks, notional.ask_levels)):
        levels = payload[side][:n]
        reference = sum((Fraction(price) * Fraction(qty) for price, qty in levels), Fraction(0))
        assert isinstance(total, Decimal) and Fraction(total) == reference
        assert count == min(n, len(payload[side]))


# --- Q4 spread and Q5 deltas --------------------------------------------------------


@st.composite
def book_tops(draw: Any) -> BookTop:
    """Bid and ask: either side may be 0 (empty), equal (locked), crossed or normal."""
    first, second = draw(AMOUNTS), draw(AMOUNTS)
    if draw(st.integers(0, 5)) == 0:
        second = first
    bid, ask = (first, second) if draw(st.booleans()) else (second, first)
    return BookTop("ETHBTC", Decimal(bid), Decimal(draw(AMOUNTS)), Decimal(ask),
                   Decimal(draw(AMOUNTS)))


@FUZZ
@given(top=book_tops())
def test_spread_is_exact_positive_or_none(top: BookTop) -> None:
    """An empty side or a crossed/locked book has no spread (never 0 or negative);
    otherwise the spread is exactly ask − bid, which floats would not give.
    """
    value = answers.spread(top)
    if top.bid_price == 0 or top.ask_price == 0 or top.bid_price >= top.ask_price:
        assert value is None
    else:
        assert isinstance(value, Decimal) and value > 0
        assert Fraction(value) == Fraction(top.ask_price) - Fraction(top.bid_price)


SPREADS = st.none() | AMOUNTS.map(Decimal)
SPREAD_MAPS = st.dictionaries(st.sampled_from(["AUSDT", "BUSDT", "CUSDT", "DBTC", "EBTC"]),
                              SPREADS, max_size=5)


@FUZZ
@given(previous=st.none() | SPREAD_MAPS, current=SPREAD_MAPS)
def test_spread_deltas_follow_current_symbols_exactly(
    previous: dict[str, Decimal | None] | None, current: dict[str, Decimal | None]
) -> None:
    """Q5 has one entry per symbol now watched, in order; no delta is made up from a
    missing observation, and every other delta is exactly |now − before|.
    """
    before_previous, before_current = copy.copy(previous), copy.copy(current)
    deltas = answers.spread_deltas(previous, current)
    assert (previous, current) == (before_previous, before_current)
    assert list(deltas) == list(current)
    for symbol, now in current.items():
        then = None if previous is None else previous.get(symbol)
        if now is None or then is None:
            assert deltas[symbol] is None
        else:
            delta = deltas[symbol]
            assert isinstance(delta, Decimal)
            assert Fraction(delta) == abs(Fraction(now) - Fraction(then))
