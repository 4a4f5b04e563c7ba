"""Tests of the offline Binance Spot API simulator (``binance_simulator``).

Most tests run the real HTTP server in a thread of this process with a fake
clock, so rate limits and price steps are exact without sleeping; one test
drives the real ``binance-simulator`` console script through
``binance_simulator.testkit.running_simulator``.
"""

from __future__ import annotations

import http.client
import io
import json
import re
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from binance_simulator.testkit import FakeClock, SimulatorControl, running_simulator

from binance_simulator import api, cli, data, weights
from binance_simulator.app import Hangup, Simulator, SimulatorConfig
from binance_simulator.faults import Fault, FaultError, FaultSet, faults_from_body
from binance_simulator.market import SimulatedMarket
from binance_simulator.symbols import decimals_needed, format_units, to_units
from binance_simulator.server import SimulatorServer, serve_in_thread

T0 = 1_710_000_000.0  # a whole minute (2024-03-09 16:00 UTC)
MINI_KEYS = {
    "symbol",
    "lastPrice",
    "openPrice",
    "highPrice",
    "lowPrice",
    "volume",
    "quoteVolume",
    "openTime",
    "closeTime",
    "firstId",
    "lastId",
    "count",
}
FULL_KEYS = MINI_KEYS | set(api.MINI_DROPPED)
LISTING_KEYS = set(
    "symbol status baseAsset baseAssetPrecision quoteAsset quotePrecision quoteAssetPrecision "
    "isSpotTradingAllowed permissions".split()
)
ANSWER_KEYS = LISTING_KEYS | {"permissionSets"}
UNICODE = "币安人生USDT"  # the synthetic non-ASCII listing (tools/trim_simulator_data.py)


@dataclass
class Answer:
    """An HTTP answer read with http.client."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        """The body decoded as JSON."""
        return json.loads(self.body)

    @property
    def weight(self) -> int:
        """The ``X-MBX-USED-WEIGHT-1M`` header."""
        return int(self.headers["X-MBX-USED-WEIGHT-1M"])


def call(url: str, target: str, method: str = "GET", payload: Any = None) -> Answer:
    """One request on a fresh connection."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        body = None if payload is None else json.dumps(payload).encode()
        connection.request(method, target, body=body)
        response = connection.getresponse()
        return Answer(response.status, response.headers, response.read())
    finally:
        connection.close()


def get_json(url: str, target: str) -> Any:
    """GET ``target``, insist on 200 and decode the JSON body."""
    answer = call(url, target)
    assert answer.status == 200, answer.body
    return answer.json()


def symbols_query(*symbols: str) -> str:
    """``symbols=["A","B"]`` URL-encoded, in Binance's compact form."""
    return "symbols=" + quote(json.dumps(list(symbols), separators=(",", ":")))


@pytest.fixture(name="clock")
def fixture_clock() -> FakeClock:
    """A fake clock starting on a whole minute."""
    return FakeClock(T0)


@pytest.fixture(name="server")
def fixture_server(clock: FakeClock) -> Iterator[SimulatorServer]:
    """An in-process simulator on a free port, driven by ``clock``."""
    with serve_in_thread(SimulatorConfig(), clock) as running:
        yield running


@pytest.fixture(name="market", scope="module")
def fixture_market() -> SimulatedMarket:
    """A market frozen at T0."""
    return SimulatedMarket(seed=1, now=lambda: T0)


def set_faults(server: SimulatorServer, *faults: dict[str, Any]) -> list[dict[str, Any]]:
    """Replace the server's faults through the control API (the kit's client)."""
    return SimulatorControl(server.url).set_faults(list(faults))


# -- data and market ------------------------------------------------------


def test_bundled_data_is_the_trimmed_recording() -> None:
    """The package data holds the whole recording, trimmed to the needed fields."""
    info, tickers = data.exchange_info(), data.tickers()
    assert len(info["symbols"]) == 2293 and len(tickers) == 2520
    assert {key for listing in info["symbols"] for key in listing} == LISTING_KEYS
    assert info["symbols"][-1]["baseAsset"] == "币安人生" and tickers[-1]["symbol"] == UNICODE
    assert info["rateLimits"][0] == {
        "rateLimitType": "REQUEST_WEIGHT",
        "interval": "MINUTE",
        "intervalNum": 1,
        "limit": 6000,
    }
    assert sum(1 for ticker in tickers if ticker["count"] == 0) == 1233


def test_decimal_helpers_are_exact() -> None:
    """Binance strings convert to exact 10^-8 units and back."""
    assert to_units("0.05691000") == 5_691_000
    assert to_units("15744.00") == 1_574_400_000_000
    assert decimals_needed("0.05691000") == 5
    assert decimals_needed("69010.00000000") == 0
    assert format_units(5_691_000, 8) == "0.05691000"
    assert format_units(1_574_400_000_000, 2) == "15744.00"
    assert format_units(-5_691_000, 8) == "-0.05691000"
    assert format_units(300_000_000, 0) == "3"
    with pytest.raises(ValueError):
        to_units("0.000000001")


def test_same_seed_same_market_other_seed_other_market() -> None:
    """The seed alone decides the books."""
    clock = FakeClock(T0)
    first, same = SimulatedMarket(1, now=clock), SimulatedMarket(1, now=clock)
    other = SimulatedMarket(2, now=clock)
    differs = False
    for _ in range(10):
        assert first.book("ETHBTC", 50) == same.book("ETHBTC", 50)
        differs = differs or first.book("ETHBTC", 50) != other.book("ETHBTC", 50)
        clock.advance(1)
    assert differs


def test_prices_move_by_ticks_around_the_recording(market: SimulatedMarket) -> None:
    """Best prices move by whole ticks near the recorded mid, spread 1-5 ticks."""
    tick = Decimal("0.00001")  # ETHBTC was recorded at 0.05691000 / 0.05692000
    mid = (Decimal("0.05691000") + Decimal("0.05692000")) / 2
    bids = set()
    for step in range(int(T0), int(T0) + 40):
        ticker = market.book("ETHBTC", 1, step).book_ticker_payload()
        bid, ask = Decimal(ticker["bidPrice"]), Decimal(ticker["askPrice"])
        bids.add(bid)
        assert bid % tick == 0 and ask % tick == 0
        assert tick <= ask - bid <= 5 * tick
        assert abs((bid + ask) / 2 - mid) <= 4 * tick
    assert len(bids) >= 4


def test_step_follows_the_clock() -> None:
    """Prices and levels change only when the clock enters a new step; within one, the
    busiest symbols' best quantities change at each of its moments (five a step: their
    bookTicker events), one side at a time, the update id with them."""
    clock = FakeClock(T0)
    market = SimulatedMarket(seed=1, step_seconds=5, now=clock)
    quiet, moments = market.book("ETHBTC", 3), [market.book("BTCUSDT", 3)]
    for _ in range(4):
        clock.advance(1)
        moments.append(market.book("BTCUSDT", 3))
    clock.advance(0.9)
    assert market.step() == T0 // 5 and market.book("BTCUSDT", 3) == moments[-1]
    assert market.book("ETHBTC", 3) == quiet
    for before, after in zip(moments, moments[1:]):
        assert after.last_update_id > before.last_update_id
        assert [price for price, _ in after.bids + after.asks] == [
            price for price, _ in before.bids + before.asks]
        assert (after.bids[0] != before.bids[0]) + (after.asks[0] != before.asks[0]) == 1
        assert after.bids[1:] == before.bids[1:] and after.asks[1:] == before.asks[1:]
    clock.advance(0.1)
    assert market.step() == T0 // 5 + 1
    assert market.book("BTCUSDT", 3).last_update_id > moments[-1].last_update_id


def test_depth_levels_are_sorted_whole_ticks(market: SimulatedMarket) -> None:
    """Levels are sorted best first, whole ticks apart, sized like the recording. Near the
    best, levels come and go, so gaps may be wider, or one tick where a level was added;
    past the 200 levels that change, gaps widen evenly so that the book reaches 5 % from
    its best price (a 2 % depth band fits in it, as in Binance's busiest books)."""
    book = market.book("BTCUSDT", 5000)
    assert len(book.bids) > 4800 and len(book.asks) > 4800
    bid_prices = [price for price, _ in book.bids]
    ask_prices = [price for price, _ in book.asks]
    assert bid_prices == sorted(set(bid_prices), reverse=True)
    assert ask_prices == sorted(set(ask_prices))
    assert bid_prices[0] < ask_prices[0]
    tick = 1_000_000  # 0.01 USDT in 10^-8 units
    for prices in (bid_prices, [-price for price in ask_prices]):
        gaps = [high - low for high, low in zip(prices, prices[1:])]
        assert all(gap > 0 and gap % tick == 0 for gap in gaps)
        assert len(set(gaps[250:])) <= 3 and min(gaps[250:]) > 3 * tick
        assert abs(prices[0] - prices[-1]) >= Decimal("0.045") * abs(prices[0])
    recorded_qty = to_units("10.80232000")  # BTCUSDT's recorded bidQty
    assert all(0 < qty <= 2 * recorded_qty for _, qty in book.bids)
    assert all(qty % 1000 == 0 for _, qty in book.bids)  # 5 decimals, like the recording


def test_best_level_does_not_depend_on_limit(market: SimulatedMarket) -> None:
    """A deep and a shallow book share their best level."""
    deep, shallow = market.book("ETHBTC", 5000), market.book("ETHBTC", 1)
    assert deep.bids[0] == shallow.bids[0] and deep.asks[0] == shallow.asks[0]
    assert len(deep.asks) > 4800 and 1000 < len(deep.bids) < 4000  # bids stop above zero


def test_cheap_symbol_never_reaches_zero() -> None:
    """A symbol priced in a few ticks keeps positive prices; its bids run out early."""
    clock = FakeClock(T0)
    market = SimulatedMarket(seed=3, now=clock)
    for _ in range(100):
        book = market.book("COSBTC", 100)  # recorded bid 0.00000012
        assert 0 < len(book.bids) < 100
        assert all(price > 0 for price, _ in book.bids)
        clock.advance(1)


def test_dead_thin_and_one_sided_symbols(market: SimulatedMarket) -> None:
    """Zero recorded prices mean empty sides; a few trades mean a thin book."""
    dead = market.book("BCCBTC", 100)
    assert dead.bids == [] and dead.asks == []
    assert dead.book_ticker_payload() == {
        "symbol": "BCCBTC",
        "bidPrice": "0.00000000",
        "bidQty": "0.00000000",
        "askPrice": "0.00000000",
        "askQty": "0.00000000",
    }
    one_sided = market.book("BUSDNGN", 10)  # recorded with a bid but no ask
    assert len(one_sided.bids) == 10 and one_sided.asks == []
    thin = market.book("BTCBIDR", 5000)  # 44 trades in 24 h: a thin book, about 44 levels
    assert 35 <= len(thin.bids) <= 50 and 35 <= len(thin.asks) <= 50


def test_two_decimal_symbols_keep_their_format(market: SimulatedMarket) -> None:
    """IDR pairs keep Binance's two decimals."""
    ticker = market.book("USDTIDRT", 1).book_ticker_payload()
    assert ticker["bidPrice"].endswith(".00") and len(ticker["bidPrice"].split(".")[1]) == 2
    assert abs(Decimal(ticker["bidPrice"]) - Decimal("15744")) <= 10


def test_ticker_takes_live_best_prices(market: SimulatedMarket) -> None:
    """The 24h ticker carries the book's best levels and a window ending now."""
    book = market.book("ETHBTC", 1)
    ticker = market.ticker(book)
    assert {key: ticker[key] for key in ("bidPrice", "bidQty", "askPrice", "askQty")} == {
        key: value for key, value in book.book_ticker_payload().items() if key != "symbol"
    }
    assert ticker["closeTime"] == T0 * 1000 and ticker["openTime"] == T0 * 1000 - 86_400_000
    assert ticker["lastPrice"] == "0.05692000"  # the rest is the recording
    dead = market.ticker(market.book("BCCBTC", 1))
    assert dead == next(t for t in data.tickers() if t["symbol"] == "BCCBTC")


# -- endpoints ------------------------------------------------------------


def test_ping_and_time(server: SimulatorServer) -> None:
    """ping answers {} and time the clock in milliseconds."""
    assert get_json(server.url, "/api/v3/ping") == {}
    assert get_json(server.url, "/api/v3/time") == {"serverTime": int(T0 * 1000)}


def test_exchange_info_all_and_filtered(server: SimulatorServer) -> None:
    """exchangeInfo answers all symbols, one, or a list."""
    info = get_json(server.url, "/api/v3/exchangeInfo")
    assert info["timezone"] == "UTC" and info["serverTime"] == int(T0 * 1000)
    assert info["exchangeFilters"] == [] and len(info["rateLimits"]) == 4
    assert len(info["symbols"]) == 2293 and set(info["symbols"][0]) == ANSWER_KEYS
    assert info["symbols"][0]["permissions"] == [] and info["symbols"][0]["permissionSets"]
    one = get_json(server.url, "/api/v3/exchangeInfo?symbol=ETHBTC")["symbols"]
    assert [listing["symbol"] for listing in one] == ["ETHBTC"]
    assert one[0]["status"] == "TRADING" and one[0]["quoteAsset"] == "BTC"
    two = get_json(server.url, "/api/v3/exchangeInfo?" + symbols_query("BTCUSDT", "ETHBTC"))
    assert [listing["symbol"] for listing in two["symbols"]] == ["BTCUSDT", "ETHBTC"]


def test_symbol_listed_in_ticker_but_not_in_exchange_info(server: SimulatorServer) -> None:
    """The recordings are six months apart; PIXELUSDT was listed in between."""
    answer = call(server.url, "/api/v3/exchangeInfo?symbol=PIXELUSDT")
    assert (answer.status, answer.json()) == (400, {"code": -1121, "msg": "Invalid symbol."})
    assert get_json(server.url, "/api/v3/ticker/24hr?symbol=PIXELUSDT")["symbol"] == "PIXELUSDT"


def test_symbol_status_and_permission_sets_shrink_the_answers(server: SimulatorServer) -> None:
    """symbolStatus=TRADING and showPermissionSets=false leave out what a client discards."""
    full = call(server.url, "/api/v3/exchangeInfo")
    small = call(server.url, "/api/v3/exchangeInfo?symbolStatus=TRADING&showPermissionSets=false")
    listings = small.json()["symbols"]
    assert len(listings) == 1341 and {listing["status"] for listing in listings} == {"TRADING"}
    assert all(listing["permissionSets"] == [] for listing in listings)
    assert len(small.body) < 0.5 * len(full.body)
    breaks = get_json(server.url, "/api/v3/exchangeInfo?symbolStatus=BREAK")["symbols"]
    assert len(breaks) == 952 and breaks[0]["permissionSets"]
    tickers = get_json(server.url, "/api/v3/ticker/24hr?type=MINI&symbolStatus=TRADING")
    assert len(tickers) == 1341 and "PIXELUSDT" not in {t["symbol"] for t in tickers}
    assert get_json(server.url, "/api/v3/ticker/24hr?symbol=ETHBTC&symbolStatus=TRADING")


@pytest.mark.parametrize("target, code", [
    ("/api/v3/exchangeInfo?symbolStatus=trading", -1122),
    ("/api/v3/exchangeInfo?symbolStatus=END_OF_DAY", -1122),
    ("/api/v3/ticker/24hr?symbolStatus=NOPE", -1122),
    ("/api/v3/exchangeInfo?symbol=ETHBTC&symbolStatus=TRADING", -1128),
    ("/api/v3/exchangeInfo?showPermissionSets=maybe", -1130),
    ("/api/v3/ticker/24hr?symbol=ETHBTC&symbolStatus=BREAK", -1220),
])
def test_bad_symbol_status(server: SimulatorServer, target: str, code: int) -> None:
    """A status Binance does not know is -1122; a single symbol of another status, -1220."""
    answer = call(server.url, target)
    assert answer.status == 400 and answer.json()["code"] == code


def test_unicode_symbols_are_percent_encoded_utf8(server: SimulatorServer) -> None:
    """A non-ASCII symbol travels as UTF-8; json.dumps' \\u escapes are refused like Binance."""
    encoded = "/api/v3/ticker/bookTicker?" + "symbols=" + quote(
        json.dumps([UNICODE, "BTCUSDT"], separators=(",", ":"), ensure_ascii=False))
    tops = get_json(server.url, encoded)
    assert [top["symbol"] for top in tops] == [UNICODE, "BTCUSDT"]
    escaped = call(server.url, "/api/v3/ticker/bookTicker?" + symbols_query(UNICODE))
    assert escaped.status == 400 and escaped.json()["code"] == -1100
    one = get_json(server.url, "/api/v3/depth?limit=5&symbol=" + quote(UNICODE))
    assert len(one["bids"]) == 5
    listing = get_json(server.url, "/api/v3/exchangeInfo?symbol=" + quote(UNICODE))["symbols"]
    assert listing[0]["quoteAsset"] == "USDT" and listing[0]["baseAsset"] == "币安人生"


def test_ticker_24hr_full_all(server: SimulatorServer) -> None:
    """The full ticker list has every recorded symbol with Binance's types."""
    tickers = get_json(server.url, "/api/v3/ticker/24hr")
    assert len(tickers) == 2520
    assert all(set(ticker) == FULL_KEYS for ticker in tickers)
    eth = next(ticker for ticker in tickers if ticker["symbol"] == "ETHBTC")
    assert isinstance(eth["count"], int) and isinstance(eth["openTime"], int)
    assert isinstance(eth["bidPrice"], str) and len(eth["bidPrice"].split(".")[1]) == 8
    assert sum(1 for ticker in tickers if ticker["count"] == 0) == 1233


def test_ticker_24hr_mini_single_and_list(server: SimulatorServer) -> None:
    """type=MINI drops the nine documented fields."""
    mini = get_json(server.url, "/api/v3/ticker/24hr?symbol=ETHBTC&type=MINI")
    assert set(mini) == MINI_KEYS and mini["symbol"] == "ETHBTC"
    full = get_json(server.url, "/api/v3/ticker/24hr?symbol=ETHBTC&type=FULL")
    assert set(full) == FULL_KEYS
    target = "/api/v3/ticker/24hr?type=MINI&" + symbols_query("BNBBTC", "ETHBTC")
    listed = get_json(server.url, target)
    assert [ticker["symbol"] for ticker in listed] == ["BNBBTC", "ETHBTC"]
    assert all(set(ticker) == MINI_KEYS for ticker in listed)


def test_depth_shape_default_and_cap(server: SimulatorServer) -> None:
    """depth defaults to 100 levels and caps limit at 5000."""
    depth = get_json(server.url, "/api/v3/depth?symbol=BTCUSDT")
    assert set(depth) == {"lastUpdateId", "bids", "asks"} and isinstance(depth["lastUpdateId"], int)
    assert len(depth["bids"]) == len(depth["asks"]) == 100
    assert all(isinstance(price, str) and isinstance(qty, str) for price, qty in depth["bids"])
    asks = [Decimal(price) for price, _ in depth["asks"]]
    bids = [Decimal(price) for price, _ in depth["bids"]]
    assert asks == sorted(asks) and bids == sorted(bids, reverse=True) and bids[0] < asks[0]
    capped = get_json(server.url, "/api/v3/depth?symbol=BTCUSDT&limit=6000")
    assert capped == get_json(server.url, "/api/v3/depth?symbol=BTCUSDT&limit=5000")
    assert 4800 < len(capped["asks"]) <= 5000  # the busiest books: all their levels
    dead = get_json(server.url, "/api/v3/depth?symbol=BCCBTC&limit=10")
    assert dead["bids"] == [] and dead["asks"] == []


def test_book_ticker_single_list_and_all(server: SimulatorServer) -> None:
    """bookTicker answers an object for symbol=, a list otherwise."""
    single = get_json(server.url, "/api/v3/ticker/bookTicker?symbol=ETHBTC")
    assert set(single) == {"symbol", "bidPrice", "bidQty", "askPrice", "askQty"}
    listed = get_json(server.url, "/api/v3/ticker/bookTicker?" + symbols_query("ETHBTC", "BCCBTC"))
    assert listed[0] == single and listed[1]["bidPrice"] == listed[1]["askPrice"] == "0.00000000"
    every = get_json(server.url, "/api/v3/ticker/bookTicker")
    assert len(every) == 2520 and every[0] == single


def test_depth_best_level_equals_book_ticker_and_ticker(
    server: SimulatorServer, clock: FakeClock
) -> None:
    """At the same instant, all three endpoints agree on the best levels."""
    for _ in range(5):
        depth = get_json(server.url, "/api/v3/depth?symbol=BNBBTC&limit=500")
        book = get_json(server.url, "/api/v3/ticker/bookTicker?symbol=BNBBTC")
        ticker = get_json(server.url, "/api/v3/ticker/24hr?symbol=BNBBTC")
        assert depth["bids"][0] == [book["bidPrice"], book["bidQty"]]
        assert depth["asks"][0] == [book["askPrice"], book["askQty"]]
        assert (ticker["bidPrice"], ticker["askQty"]) == (book["bidPrice"], book["askQty"])
        clock.advance(1)


@pytest.mark.parametrize(
    ("target", "code"),
    [
        ("/api/v3/depth?symbol=NOPE", -1121),
        ("/api/v3/ticker/24hr?symbol=NOPE", -1121),
        ("/api/v3/ticker/bookTicker?" + symbols_query("ETHBTC", "NOPE"), -1121),
        ("/api/v3/depth", -1102),
        ("/api/v3/depth?symbol=ethbtc", -1100),
        ("/api/v3/depth?symbol=ETHBTC&limit=abc", -1100),
        ("/api/v3/depth?symbol=ETHBTC&limit=0", -1130),
        ("/api/v3/ticker/24hr?symbols=%5B%22ETHBTC%22,%20%22BNBBTC%22%5D", -1100),  # a space
        ("/api/v3/ticker/24hr?symbols=ETHBTC", -1100),
        ("/api/v3/ticker/24hr?symbols=%5B%5D", -1105),
        ("/api/v3/ticker/24hr?symbol=", -1105),
        ("/api/v3/ticker/24hr?" + symbols_query("ETHBTC", "ETHBTC"), -1101),
        ("/api/v3/ticker/24hr?symbol=ETHBTC&symbol=BNBBTC", -1101),
        ("/api/v3/ticker/24hr?symbol=ETHBTC&" + symbols_query("BNBBTC"), -1128),
        ("/api/v3/ticker/24hr?symbol=ETHBTC&type=HUGE", -1100),
    ],
)
def test_bad_parameters_get_binance_errors(server: SimulatorServer, target: str, code: int) -> None:
    """Bad parameters get 400 with Binance's error codes."""
    answer = call(server.url, target)
    assert answer.status == 400 and answer.json()["code"] == code
    assert answer.weight > 0  # the header is on error answers too


def test_unknown_path_and_method(server: SimulatorServer) -> None:
    """Unknown paths are 404; API paths only take GET."""
    assert call(server.url, "/api/v3/nothing").status == 404
    assert call(server.url, "/api/v3/ping", "POST").status == 405
    assert call(server.url, "/_sim/nothing").status == 404


def test_keep_alive_serves_several_requests_per_connection(server: SimulatorServer) -> None:
    """HTTP/1.1 keep-alive works thanks to Content-Length."""
    parts = urlsplit(server.url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=5)
    try:
        for _ in range(3):
            connection.request("GET", "/api/v3/ping")
            response = connection.getresponse()
            assert response.status == 200 and response.read() == b"{}"
            assert response.headers["Content-Length"] == "2"
    finally:
        connection.close()
    assert call(server.url, "/_sim/stats").json()["requests"]["/api/v3/ping"] == {"200": 3}


# -- weights and rate limits ------------------------------------------------


@pytest.mark.parametrize(
    ("path", "query", "weight"),
    [
        (weights.PING, {}, 1),
        (weights.TIME, {}, 1),
        (weights.EXCHANGE_INFO, {}, 20),
        (weights.EXCHANGE_INFO, {"symbol": ["ETHBTC"]}, 20),
        (weights.TICKER_24HR, {"symbol": ["ETHBTC"]}, 2),
        (weights.TICKER_24HR, {"symbols": [json.dumps(["A"] * 20)]}, 2),
        (weights.TICKER_24HR, {"symbols": [json.dumps(["A"] * 21)]}, 40),
        (weights.TICKER_24HR, {"symbols": [json.dumps(["A"] * 100)]}, 40),
        (weights.TICKER_24HR, {"symbols": [json.dumps(["A"] * 101)]}, 80),
        (weights.TICKER_24HR, {"symbols": ["garbage"]}, 2),
        (weights.TICKER_24HR, {}, 80),
        (weights.DEPTH, {}, 5),
        (weights.DEPTH, {"limit": ["100"]}, 5),
        (weights.DEPTH, {"limit": ["101"]}, 25),
        (weights.DEPTH, {"limit": ["500"]}, 25),
        (weights.DEPTH, {"limit": ["1000"]}, 50),
        (weights.DEPTH, {"limit": ["5000"]}, 250),
        (weights.BOOK_TICKER, {"symbol": ["ETHBTC"]}, 2),
        (weights.BOOK_TICKER, {"symbols": ['["ETHBTC"]']}, 4),
        (weights.BOOK_TICKER, {}, 4),
        ("/api/v3/unknown", {}, 0),
    ],
)
def test_request_weights(path: str, query: dict[str, list[str]], weight: int) -> None:
    """Weights follow Binance's documentation."""
    assert weights.request_weight(path, query) == weight


def test_weight_header_accumulates_per_minute(server: SimulatorServer, clock: FakeClock) -> None:
    """The weight header sums the clock minute's weight, errors included."""
    assert call(server.url, "/api/v3/ping").weight == 1
    assert call(server.url, "/api/v3/exchangeInfo").weight == 21
    assert call(server.url, "/api/v3/depth?symbol=ETHBTC&limit=1000").weight == 71
    assert call(server.url, "/api/v3/depth?symbol=NOPE").weight == 76  # errors cost too
    assert call(server.url, "/api/v3/ticker/bookTicker").weight == 80
    assert call(server.url, "/api/v3/nothing").weight == 80  # unknown paths cost nothing
    clock.advance(60)
    assert call(server.url, "/api/v3/time").weight == 1


def test_over_the_limit_429_then_escalating_418(clock: FakeClock) -> None:
    """Over the limit: 429 until the minute ends, then 418 bans that double."""
    with serve_in_thread(SimulatorConfig(weight_limit=10), clock) as server:
        clock.advance(15)
        assert [call(server.url, "/api/v3/depth?symbol=ETHBTC").weight for _ in range(2)] == [5, 10]
        refused = call(server.url, "/api/v3/ping")
        assert refused.status == 429 and refused.headers["Retry-After"] == "45"
        assert refused.weight == 10 and refused.json()["code"] == -1003
        assert "current limit is 10 request weight per 1 MINUTE" in refused.json()["msg"]
        clock.advance(5)
        banned = call(server.url, "/api/v3/ping")
        assert banned.status == 418 and banned.headers["Retry-After"] == "120"
        expected = f"Way too much request weight used; IP banned until {int(T0 + 140) * 1000}."
        assert banned.json()["msg"].startswith(expected)
        again = call(server.url, "/api/v3/ping")
        assert again.status == 418 and again.headers["Retry-After"] == "240"
        clock.advance(240)
        assert call(server.url, "/api/v3/ping").status == 200
        stats = call(server.url, "/_sim/stats").json()
        assert stats["requests"]["/api/v3/ping"] == {"429": 1, "418": 2, "200": 1}
        assert stats["weight_total"] == 11


def test_stats_reset_lifts_a_ban(clock: FakeClock) -> None:
    """Resetting the stats also forgets rate limits and bans."""
    with serve_in_thread(SimulatorConfig(weight_limit=1), clock) as server:
        assert call(server.url, "/api/v3/ping").status == 200
        assert call(server.url, "/api/v3/ping").status == 429
        assert call(server.url, "/api/v3/ping").status == 418
        reset = call(server.url, "/_sim/stats/reset", "POST").json()
        assert reset["requests_total"] == 0 and reset["weight_current_minute"] == 0
        assert call(server.url, "/api/v3/ping").status == 200


def test_stats_count_api_calls_only(server: SimulatorServer, clock: FakeClock) -> None:
    """Stats count API requests by path and status, not control calls."""
    call(server.url, "/api/v3/ping")
    call(server.url, "/api/v3/depth?symbol=ETHBTC")
    call(server.url, "/api/v3/depth?symbol=NOPE")
    call(server.url, "/_sim/faults")
    clock.advance(30)
    assert call(server.url, "/_sim/stats").json() == {
        "requests": {"/api/v3/ping": {"200": 1}, "/api/v3/depth": {"200": 1, "400": 1}},
        "requests_total": 3,
        "weight_total": 11,
        "weight_current_minute": 11,
        "started_at": T0,
        "streams": {"connections_open": 0, "subscriptions": {}, "connections": {},
                    "messages_sent": {}, "closed": {}, "frames": {}},
    }


# -- faults -----------------------------------------------------------------


def test_fault_control_api_round_trip(server: SimulatorServer) -> None:
    """Faults are listed with defaults filled in, replaced and cleared."""
    assert call(server.url, "/_sim/faults").json() == {"faults": []}
    answer = set_faults(
        server,
        {"name": "latency", "ms": 1},
        {"name": "error_5xx", "endpoints": ["/api/v3/depth"], "rate": 0.5},
    )
    expected = [
        {"name": "latency", "ms": 1, "rate": 1.0},
        {"name": "error_5xx", "status": 500, "rate": 0.5, "endpoints": ["/api/v3/depth"]},
    ]
    assert answer == expected
    assert call(server.url, "/_sim/faults").json() == {"faults": expected}
    assert call(server.url, "/_sim/faults", "DELETE").json() == {"faults": []}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"faults": [{"name": "nope"}]}, "unknown fault 'nope'"),
        ({"faults": [{"name": "missing_field"}]}, "parameter 'field' is required"),
        ({"faults": [{"name": "error_5xx", "status": 404}]}, "must be one of 500, 502, 503, 504"),
        ({"faults": [{"name": "latency", "ms": "slow"}]}, "expected int"),
        ({"faults": [{"name": "latency", "ms": -1}]}, "must be >= 0"),
        ({"faults": [{"name": "latency", "ms": True}]}, "got a boolean"),
        ({"faults": [{"name": "missing_field", "field": 3}]}, "expected a non-empty str"),
        ({"faults": [{"name": "reset", "rate": 2}]}, "between 0 and 1"),
        ({"faults": [{"name": "reset", "endpoints": ["/x"]}]}, "unknown path(s) /x"),
        ({"faults": [{"name": "reset", "endpoints": "/api/v3/ping"}]}, None),
        ({"faults": [{"name": "reset", "endpoints": [1]}]}, "expected a list of paths"),
        ({"faults": [{"name": "reset", "colour": "red"}]}, "unknown parameter(s) colour"),
        ({"faults": ["reset"]}, "must be a JSON object"),
        ({"fault": []}, "expected a JSON object"),
    ],
)
def test_invalid_faults_are_rejected(body: Any, message: str | None) -> None:
    """Fault specifications are validated strictly."""
    if message is None:  # a single path as a string is accepted
        assert faults_from_body(body)[0].endpoints == ("/api/v3/ping",)
        return
    with pytest.raises(FaultError, match=message.replace("(", r"\(").replace(")", r"\)")):
        faults_from_body(body)


def test_invalid_fault_post_is_a_400(server: SimulatorServer) -> None:
    """A bad fault list is refused and leaves the active set alone."""
    answer = call(server.url, "/_sim/faults", "POST", {"faults": [{"name": "nope"}]})
    assert answer.status == 400 and "unknown fault" in answer.json()["error"]
    broken = call(server.url, "/_sim/faults", "POST")
    assert broken.status == 400
    assert call(server.url, "/_sim/faults").json() == {"faults": []}


def test_cli_fault_specs() -> None:
    """The command-line spec maps onto the JSON form."""
    fault = Fault.parse("error_5xx:status=503, rate=0.25,endpoints=/api/v3/depth+/api/v3/time")
    assert fault == Fault("error_5xx", {"status": 503}, ("/api/v3/depth", "/api/v3/time"), 0.25)
    assert Fault.parse("timeout:seconds=2").params == {"seconds": 2.0}
    assert Fault.parse("crossed_book").to_json() == {"name": "crossed_book", "rate": 1.0}
    with pytest.raises(FaultError, match="expected key=value"):
        Fault.parse("latency:ms")


def test_fault_rate_draws_are_seeded() -> None:
    """rate= fires on a seeded, repeatable share of matching requests."""
    def pattern(seed: int) -> list[bool]:
        faults = FaultSet([Fault("reset", rate=0.5, endpoints=(weights.DEPTH,))], seed)
        draws = [bool(faults.draw(weights.DEPTH)) for _ in range(200)]
        return draws + [bool(faults.draw(weights.PING))]

    first = pattern(1)
    assert first == pattern(1) and first != pattern(2)
    assert 60 < sum(first) < 140 and first[-1] is False


def test_latency_fault_and_flag(clock: FakeClock) -> None:
    """Latency from the flag and from the fault add up, per endpoint."""
    with serve_in_thread(SimulatorConfig(latency_ms=50), clock) as server:
        set_faults(server, {"name": "latency", "ms": 100, "endpoints": ["/api/v3/time"]})
        started = time.monotonic()
        assert call(server.url, "/api/v3/ping").status == 200
        middle = time.monotonic()
        assert call(server.url, "/api/v3/time").status == 200
        assert middle - started >= 0.05 and time.monotonic() - middle >= 0.15


@pytest.mark.parametrize(
    ("status", "code", "content_type"),
    [
        (500, -1001, "application/json"),
        (503, -1008, "application/json"),
        (504, -1007, "application/json"),
        (502, None, "text/html"),
    ],
)
def test_error_5xx_fault(
    server: SimulatorServer, status: int, code: int | None, content_type: str
) -> None:
    """error_5xx answers Binance's 5xx bodies on the chosen endpoints."""
    set_faults(server, {"name": "error_5xx", "status": status, "endpoints": ["/api/v3/depth"]})
    answer = call(server.url, "/api/v3/depth?symbol=ETHBTC")
    assert answer.status == status and answer.headers["Content-Type"].startswith(content_type)
    if code is not None:
        assert answer.json()["code"] == code
    assert answer.weight == 5
    assert call(server.url, "/api/v3/ping").status == 200  # other endpoints unaffected


def test_status_faults(server: SimulatorServer) -> None:
    """The status fault answers 451, 429 or 418 with Binance's bodies."""
    set_faults(server, {"name": "status", "status": 451})
    restricted = call(server.url, "/api/v3/ping")
    assert restricted.status == 451 and restricted.json() == {
        "code": 0,
        "msg": "Service unavailable from a restricted location according to 'b. Eligibility' in "
        "https://www.binance.com/en/terms. Please contact customer service if you believe you "
        "received this message in error.",
    }
    set_faults(server, {"name": "status", "status": 429, "retry_after": 7})
    limited = call(server.url, "/api/v3/ping")
    assert limited.status == 429 and limited.headers["Retry-After"] == "7"
    assert limited.json()["code"] == -1003
    set_faults(server, {"name": "status", "status": 418, "retry_after": 300})
    banned = call(server.url, "/api/v3/ping")
    assert banned.status == 418 and banned.headers["Retry-After"] == "300"
    assert f"IP banned until {int(T0 + 300) * 1000}" in banned.json()["msg"]
    set_faults(server, {"name": "status", "status": 403, "retry_after": 0})
    waf = call(server.url, "/api/v3/ping")
    assert waf.status == 403 and "Retry-After" not in waf.headers
    assert waf.headers["Content-Type"] == "text/html" and b"403 Forbidden" in waf.body
    set_faults(server, {"name": "status", "status": 403, "retry_after": 45})
    assert call(server.url, "/api/v3/ping").headers["Retry-After"] == "45"


def test_timeout_fault_holds_then_closes(server: SimulatorServer) -> None:
    """timeout holds the connection, then closes it unanswered."""
    set_faults(server, {"name": "timeout", "seconds": 0.3})
    started = time.monotonic()
    with pytest.raises(http.client.RemoteDisconnected):
        call(server.url, "/api/v3/ping")
    assert time.monotonic() - started >= 0.3
    parts = urlsplit(server.url)
    with pytest.raises(TimeoutError):
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=0.1)
        try:
            connection.request("GET", "/api/v3/time")
            connection.getresponse()
        finally:
            connection.close()


def test_close_immediately_fault(server: SimulatorServer) -> None:
    """close_immediately drops the connection without an answer."""
    set_faults(server, {"name": "close_immediately"})
    with pytest.raises(ConnectionError):
        call(server.url, "/api/v3/ping")


def test_reset_fault_sends_headers_and_part_of_the_body(server: SimulatorServer) -> None:
    """reset sends the headers and half the body, then resets."""
    set_faults(server, {"name": "reset", "endpoints": ["/api/v3/depth"]})
    parts = urlsplit(server.url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=5)
    try:
        connection.request("GET", "/api/v3/depth?symbol=ETHBTC&limit=100")
        response = connection.getresponse()
        assert response.status == 200 and int(response.headers["Content-Length"]) > 1000
        with pytest.raises((http.client.IncompleteRead, ConnectionError)):
            response.read()
    finally:
        connection.close()


def test_connection_faults_are_counted(server: SimulatorServer) -> None:
    """Hang-ups are counted under their own names."""
    for fault in ("close_immediately", "reset"):
        set_faults(server, {"name": fault})
        with pytest.raises((http.client.IncompleteRead, ConnectionError)):
            call(server.url, "/api/v3/time")
    set_faults(server, {"name": "timeout", "seconds": 0})
    with pytest.raises(ConnectionError):
        call(server.url, "/api/v3/time")
    stats = call(server.url, "/_sim/stats").json()
    assert stats["requests"]["/api/v3/time"] == {"closed": 1, "reset": 1, "timeout": 1}


def test_malformed_json_fault(server: SimulatorServer) -> None:
    """malformed_json truncates the body."""
    set_faults(server, {"name": "malformed_json"})
    answer = call(server.url, "/api/v3/ticker/bookTicker?symbol=ETHBTC")
    assert answer.status == 200 and answer.body.startswith(b'{"symbol":"ETHBTC"')
    with pytest.raises(ValueError):
        answer.json()


def test_wrong_type_fault(server: SimulatorServer) -> None:
    """wrong_type swaps lists and objects."""
    set_faults(server, {"name": "wrong_type"})
    depth = get_json(server.url, "/api/v3/depth?symbol=ETHBTC&limit=5")
    assert isinstance(depth, list) and set(depth[0]) == {"lastUpdateId", "bids", "asks"}
    ticker = get_json(server.url, "/api/v3/ticker/bookTicker?" + symbols_query("ETHBTC"))
    assert isinstance(ticker, dict) and ticker["symbol"] == "ETHBTC"
    assert get_json(server.url, "/api/v3/ping") == [{}]


def test_missing_field_fault(server: SimulatorServer) -> None:
    """missing_field drops the field from every object."""
    set_faults(server, {"name": "missing_field", "field": "bidPrice"})
    tickers = get_json(server.url, "/api/v3/ticker/bookTicker?" + symbols_query("ETHBTC", "BNBBTC"))
    assert [set(ticker) for ticker in tickers] == [{"symbol", "bidQty", "askPrice", "askQty"}] * 2


def test_price_faults(server: SimulatorServer) -> None:
    """non_numeric_price, negative_price and zero_price touch prices only."""
    set_faults(server, {"name": "non_numeric_price"})
    depth = get_json(server.url, "/api/v3/depth?symbol=ETHBTC&limit=3")
    assert {level[0] for level in depth["bids"] + depth["asks"]} == {"abc"}
    assert depth["bids"][0][1] != "abc"  # quantities stay
    ticker = get_json(server.url, "/api/v3/ticker/24hr?symbol=ETHBTC")
    assert ticker["lastPrice"] == ticker["bidPrice"] == "abc"
    assert ticker["volume"] == "20251.65760000"

    set_faults(server, {"name": "negative_price"})
    book = get_json(server.url, "/api/v3/ticker/bookTicker?" + symbols_query("ETHBTC", "BCCBTC"))
    assert Decimal(book[0]["bidPrice"]) < 0 < Decimal(book[0]["bidQty"])
    assert book[1]["bidPrice"] == "0.00000000"  # a zero price stays zero

    set_faults(server, {"name": "zero_price"})
    depth = get_json(server.url, "/api/v3/depth?symbol=USDTIDRT&limit=2")
    assert {level[0] for level in depth["bids"] + depth["asks"]} == {"0.00"}


@pytest.mark.parametrize("side", ["bid", "ask"])
def test_empty_book_side_fault(server: SimulatorServer, side: str) -> None:
    """empty_book_side empties one side in depth and bookTicker alike."""
    set_faults(server, {"name": "empty_book_side", "side": side})
    depth = get_json(server.url, "/api/v3/depth?symbol=ETHBTC&limit=10")
    book = get_json(server.url, "/api/v3/ticker/bookTicker?symbol=ETHBTC")
    other = "ask" if side == "bid" else "bid"
    assert depth[f"{side}s"] == [] and len(depth[f"{other}s"]) == 10
    assert book[f"{side}Price"] == book[f"{side}Qty"] == "0.00000000"
    assert depth[f"{other}s"][0] == [book[f"{other}Price"], book[f"{other}Qty"]]


def test_crossed_book_fault(server: SimulatorServer) -> None:
    """crossed_book puts the best bid above the best ask everywhere."""
    set_faults(server, {"name": "crossed_book"})
    depth = get_json(server.url, "/api/v3/depth?symbol=BTCUSDT&limit=10")
    book = get_json(server.url, "/api/v3/ticker/bookTicker?symbol=BTCUSDT")
    assert Decimal(depth["bids"][0][0]) >= Decimal(depth["asks"][0][0])
    assert Decimal(book["bidPrice"]) >= Decimal(book["askPrice"])
    assert depth["bids"][0] == [book["bidPrice"], book["bidQty"]]
    bids = [Decimal(price) for price, _ in depth["bids"]]
    assert bids == sorted(bids, reverse=True)
    dead = get_json(server.url, "/api/v3/ticker/bookTicker?symbol=BCCBTC")
    assert dead["bidPrice"] == "0.00000000"  # nothing to cross


def test_unknown_symbol_fault(server: SimulatorServer) -> None:
    """unknown_symbol makes requests naming the symbol fail with -1121."""
    set_faults(server, {"name": "unknown_symbol", "symbol": "ETHBTC"})
    for target in (
        "/api/v3/depth?symbol=ETHBTC",
        "/api/v3/ticker/24hr?" + symbols_query("BNBBTC", "ETHBTC"),
        "/api/v3/exchangeInfo?symbol=ETHBTC",
    ):
        answer = call(server.url, target)
        assert (answer.status, answer.json()["code"]) == (400, -1121)
    assert call(server.url, "/api/v3/depth?symbol=BNBBTC").status == 200


def test_drop_symbol_fault(server: SimulatorServer) -> None:
    """drop_symbol removes the symbol from list answers only."""
    set_faults(server, {"name": "drop_symbol", "symbol": "ETHBTC"})
    tickers = get_json(server.url, "/api/v3/ticker/24hr")
    books = get_json(server.url, "/api/v3/ticker/bookTicker")
    assert len(tickers) == len(books) == 2519
    assert "ETHBTC" not in {ticker["symbol"] for ticker in tickers + books}
    assert get_json(server.url, "/api/v3/ticker/bookTicker?symbol=ETHBTC")["symbol"] == "ETHBTC"


def test_start_up_faults_from_config(clock: FakeClock) -> None:
    """Faults given at start-up are active from the first request."""
    config = SimulatorConfig(faults=(Fault.parse("error_5xx:status=502"),))
    with serve_in_thread(config, clock) as server:
        assert call(server.url, "/api/v3/ping").status == 502


def test_shutdown_endpoint_requests_a_stop(server: SimulatorServer) -> None:
    """POST /_sim/shutdown asks the process to stop."""
    assert call(server.url, "/_sim/shutdown", "POST").json() == {"shutting_down": True}
    assert server.simulator.stop_requested.is_set()


def test_verbose_logs_requests(clock: FakeClock, capfd: pytest.CaptureFixture[str]) -> None:
    """--verbose logs request lines to stderr."""
    with serve_in_thread(SimulatorConfig(verbose=True), clock) as server:
        call(server.url, "/api/v3/ping")
    assert '"GET /api/v3/ping HTTP/1.1" 200' in capfd.readouterr().err


def test_simulator_decides_without_sockets(clock: FakeClock) -> None:
    """The decision logic is usable without a server."""
    simulator = Simulator(SimulatorConfig(faults=(Fault("timeout", {"seconds": 2.5}),)), clock)
    assert simulator.handle("GET", "/api/v3/ping") == Hangup(2.5, abrupt=False)


# -- command line and subprocess -------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["--port", "70000"],
        ["--weight-limit", "0"],
        ["--seed", "x"],
        ["--step-seconds", "fast"],
        ["--fault", "nope"],
        ["--bogus"],
    ],
)
def test_bad_flags_exit_2_with_one_line(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Bad flags print one error line and exit 2."""
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("binance-simulator: error: ") and err.count("\n") == 1


def test_flags_map_onto_the_config() -> None:
    """Every flag lands in the configuration."""
    args = cli.build_parser().parse_args(
        "--seed 9 --latency-ms 5 --weight-limit 100 --step-seconds 0.5 --fault crossed_book "
        "--verbose".split()
    )
    expected = SimulatorConfig(9, 5, 100, 0.5, (Fault("crossed_book"),), True)
    assert cli.config_from_args(args) == expected
    assert (args.host, args.port, args.exit_with_parent) == ("127.0.0.1", 0, False)


def test_watch_parent_stops_when_the_parent_changes() -> None:
    """A new parent pid means the parent died."""
    parents = iter([100, 100, 1])
    stop = threading.Event()
    cli.watch_parent(stop, 100, lambda: next(parents), interval=0.001)
    assert stop.is_set()


class _TwoLines(io.StringIO):
    """A stdout that signals once two whole lines have been written to it."""

    def __init__(self) -> None:
        super().__init__()
        self.ready = threading.Event()

    def write(self, text: str) -> int:
        written = super().write(text)
        if self.getvalue().count("\n") >= 2:
            self.ready.set()
        return written


def test_main_serves_until_shutdown(monkeypatch: pytest.MonkeyPatch) -> None:
    """main binds port 0 for REST and for the streams, prints the addresses it bound, and
    returns 0 after a shutdown call."""
    out = _TwoLines()
    monkeypatch.setattr(sys, "stdout", out)

    def drive() -> None:
        if out.ready.wait(10):
            url = out.getvalue().split()[3]
            assert call(url, "/api/v3/ping").status == 200
            call(url, "/_sim/shutdown", "POST")

    driver = threading.Thread(target=drive)
    driver.start()
    assert cli.main(["--port", "0", "--exit-with-parent"]) == 0
    driver.join()
    assert re.fullmatch(r"binance-simulator listening on http://127\.0\.0\.1:\d+\n"
                        r"binance-simulator streams on ws://127\.0\.0\.1:\d+\n", out.getvalue())


def test_main_reports_a_busy_port(capsys: pytest.CaptureFixture[str]) -> None:
    """A port in use is a one-line error and exit status 1."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert cli.main(["--port", str(port)]) == 1
    error = capsys.readouterr().err
    assert error.startswith(f"binance-simulator: error: cannot listen on 127.0.0.1:{port}")


def test_console_script_subprocess() -> None:
    """The console script, driven through running_simulator."""
    fault = "error_5xx:status=502,endpoints=/api/v3/depth"
    with running_simulator("--seed", "7", "--fault", fault) as sim:
        assert sim.url.startswith("http://127.0.0.1:")
        assert get_json(sim.url, "/api/v3/ping") == {}
        assert call(sim.url, "/api/v3/depth?symbol=ETHBTC").status == 502
        stats = sim.stats()
        assert stats["requests"] == {"/api/v3/ping": {"200": 1}, "/api/v3/depth": {"502": 1}}
        assert sim.set_faults([{"name": "drop_symbol", "symbol": "ETHBTC"}]) == [
            {"name": "drop_symbol", "symbol": "ETHBTC", "rate": 1.0}
        ]
        assert len(get_json(sim.url, "/api/v3/ticker/bookTicker")) == 2519
        sim.clear_faults()
        assert len(get_json(sim.url, "/api/v3/depth?symbol=ETHBTC&limit=5")["bids"]) == 5
        sim.reset_stats()
        assert sim.stats()["requests_total"] == 0
        with pytest.raises(ValueError, match="unknown fault"):
            sim.set_faults([{"name": "nope"}])
        process = sim.process
    assert process.returncode == 0  # SIGTERM is a clean exit
