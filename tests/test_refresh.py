"""The refresh layer: what is fetched when, deltas between refreshes, partial failures."""

from __future__ import annotations

import math
import time
from decimal import Decimal
from typing import Any, Iterator

import pytest
import responses
from conftest import FakeClock, calls_to, depth_callback, load, register_market

from collector.binance import BinanceClient, depth_weight
from collector.errors import UpstreamUnavailable
from collector.rest_source import RestSource
from collector.costs import peak_weight_per_minute
from collector.records import Settings
from binance_simulator.weights import request_weight as simulated_weight


@pytest.fixture
def source(clock: FakeClock) -> Iterator[RestSource]:
    client = BinanceClient(clock=clock, sleep=clock.sleep, retries=0)
    m = RestSource(client, Settings(), clock=clock, wall=clock.wall)
    yield m
    m.close()


def bump(book_ticker: list[dict[str, str]], symbol: str, ask: str) -> None:
    for entry in book_ticker:
        if entry["symbol"] == symbol:
            entry["askPrice"] = ask


def test_first_snapshot_answers_q1_to_q4(
    market_mock: responses.RequestsMock, source: RestSource
) -> None:
    snap = source.snapshot()
    assert snap.errors() == []
    assert snap.rankings.value is not None
    assert [t.symbol for t in snap.rankings.value.by_volume] == [
        "ETHBTC", "DOGEBTC", "FETBTC", "SOLBTC", "WLDBTC"]
    assert snap.quote_asset("BTCUSDT") == "USDT"
    assert snap.quote_asset("UNKNOWN") == ""
    health = snap.health
    assert health.requests[("/api/v3/depth", "200")] == 5 and health.failures == {}
    assert set(health.last_refresh) == {"exchange", "rankings", "books", "spreads"}
    assert health.weight_limit == 6000 and health.cool_down == 0
    assert snap.books.value is not None and set(snap.books.value) == {
        "ETHBTC", "DOGEBTC", "FETBTC", "SOLBTC", "WLDBTC"}
    assert snap.books.value["SOLBTC"].bid_levels == 37
    spreads = snap.spreads.value
    assert spreads is not None
    assert list(spreads.spreads) == ["FLOKIUSDT", "WLDUSDT", "BTCUSDT", "SHIBUSDT", "PEPEUSDT"]
    assert spreads.spreads["BTCUSDT"] == Decimal("0.01")
    assert set(spreads.deltas.values()) == {None}
    assert calls_to(market_mock, "/depth") == 5
    assert calls_to(market_mock, "/bookTicker") == 1


def test_groups_refresh_on_their_own_ttls(market_mock: responses.RequestsMock, source: RestSource,
                                           clock: FakeClock) -> None:
    source.snapshot()
    clock.advance(10)
    source.snapshot()
    assert calls_to(market_mock, "/bookTicker") == 2
    assert calls_to(market_mock, "/depth") == 5
    clock.advance(20)
    source.snapshot()
    assert calls_to(market_mock, "/depth") == 10
    assert calls_to(market_mock, "/ticker/24hr") == 1
    clock.advance(270)
    source.snapshot()
    assert calls_to(market_mock, "/ticker/24hr") == 2
    assert calls_to(market_mock, "/exchangeInfo") == 1


def test_delta_is_against_the_previous_refresh(clock: FakeClock, source: RestSource) -> None:
    book_ticker = load("book_ticker.json")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        register_market(mock, book_ticker=book_ticker)
        source.snapshot()
        bump(book_ticker, "BTCUSDT", "69010.05000000")   # spread 0.01 -> 0.05
        bump(book_ticker, "WLDUSDT", "0.00000000")       # ask side emptied
        mock.replace(responses.GET, "https://api.binance.com/api/v3/ticker/bookTicker",
                     json=book_ticker)
        clock.advance(10)
        spreads = source.snapshot().spreads.value
        assert spreads is not None
        assert spreads.deltas["BTCUSDT"] == Decimal("0.04")
        assert spreads.deltas["FLOKIUSDT"] == Decimal(0)
        assert spreads.spreads["WLDUSDT"] is None and spreads.deltas["WLDUSDT"] is None
        bump(book_ticker, "WLDUSDT", "10.84000000")
        mock.replace(responses.GET, "https://api.binance.com/api/v3/ticker/bookTicker",
                     json=book_ticker)
        clock.advance(10)
        spreads = source.snapshot().spreads.value
        assert spreads is not None
        # both sides are back: a spread again, but no delta until its second observation
        assert spreads.spreads["WLDUSDT"] == Decimal("0.002")
        assert spreads.deltas["WLDUSDT"] is None
        assert spreads.deltas["BTCUSDT"] == Decimal(0)


def test_failed_rankings_keep_books_and_spreads_on_the_last_symbols(
    market_mock: responses.RequestsMock, source: RestSource, clock: FakeClock
) -> None:
    source.snapshot()
    market_mock.replace(responses.GET, "https://api.binance.com/api/v3/ticker/24hr", status=500)
    clock.advance(300)
    snap = source.snapshot()
    assert isinstance(snap.rankings.error, UpstreamUnavailable)
    assert snap.rankings.value is None  # never the old ranking as if current
    assert snap.spreads.ok and snap.books.ok
    assert snap.errors() == [snap.rankings.error]


def test_without_any_ranking_books_and_spreads_fail_without_calls(
    source: RestSource, clock: FakeClock
) -> None:
    with responses.RequestsMock() as mock:
        mock.get("https://api.binance.com/api/v3/exchangeInfo", json=load("exchange_info.json"))
        mock.get("https://api.binance.com/api/v3/ticker/24hr", status=503)
        snap = source.snapshot()
        assert snap.exchange.ok and not snap.rankings.ok
        assert "no ranking yet" in str(snap.books.error)
        assert "no ranking yet" in str(snap.spreads.error)
        assert len(mock.calls) == 2
    del clock


class SpyClient(BinanceClient):
    """Records the deadline each call was given (every call reads its body through
    get_body: decoded by get, or handed to models undecoded)."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock=clock, wall=clock.wall, retries=0)
        self.deadlines: list[float | None] = []

    def get_body(self, endpoint: str, params: Any, deadline: float | None = None) -> bytes:
        self.deadlines.append(deadline)
        return super().get_body(endpoint, params, deadline)


def test_every_call_of_a_scrape_shares_the_refresh_budget(
    market_mock: responses.RequestsMock, clock: FakeClock
) -> None:
    """So that a scrape, retries included, ends inside Prometheus' scrape timeout."""
    client = SpyClient(clock)
    m = RestSource(client, Settings(refresh_budget=8), clock=clock, wall=clock.wall)
    m.snapshot()
    m.close()
    assert client.deadlines == [clock.now + 8] * 8  # exchangeInfo, ticker, 5 books, bookTicker
    del market_mock


def test_a_new_ranking_does_not_refresh_spreads_inside_their_ttl(
    market_mock: responses.RequestsMock, source: RestSource, clock: FakeClock
) -> None:
    """Binance is asked for spreads at most every 10 s, whatever the ranking does."""
    source.snapshot()
    clock.advance(295)
    source.snapshot()  # spreads refreshed at t=295
    tickers = load("ticker_24hr.json")
    for ticker in tickers:
        if ticker["symbol"] == "PEPEUSDT":
            ticker["count"] = 9_000_000  # reorders Q2
    market_mock.replace(responses.GET, "https://api.binance.com/api/v3/ticker/24hr", json=tickers)
    clock.advance(5)
    snap = source.snapshot()  # rankings refresh at t=300
    assert snap.rankings.value is not None
    assert snap.rankings.value.by_trades[0].symbol == "PEPEUSDT"
    assert calls_to(market_mock, "/bookTicker") == 2  # t=0 and t=295, not again at t=300
    assert calls_to(market_mock, "/depth") == 5 * 2  # t=0 and t=295, not again at t=300
    clock.advance(5)
    spreads = source.snapshot().spreads.value
    assert spreads is not None and list(spreads.spreads)[0] == "PEPEUSDT"


def test_a_failed_exchange_info_refresh_keeps_rankings_on_the_last_good_one(
    market_mock: responses.RequestsMock, source: RestSource, clock: FakeClock
) -> None:
    """exchangeInfo only says which quote asset and status a symbol has: metadata, not data."""
    source.snapshot()
    market_mock.replace(responses.GET, "https://api.binance.com/api/v3/exchangeInfo", status=503)
    clock.advance(3600)
    snap = source.snapshot()
    assert isinstance(snap.exchange.error, UpstreamUnavailable)
    assert snap.rankings.ok and snap.rankings.value is not None  # ticker refreshed at t=3600
    assert snap.rankings.value.by_trades[0].symbol == "FLOKIUSDT"
    assert snap.errors() == [snap.exchange.error]


def test_the_peak_minute_is_the_first_one_as_measured() -> None:
    """Binance counts per minute: a refresh costs its whole weight in its minute, whatever
    the TTL. The first minute fetches everything and refreshes the books (30 s) twice and
    the spreads (10 s) six times: 20 + 80 + 2 × 125 + 6 × 4, which is the 374 that
    make bench measured in the first minute with 10 scrapers at 1 s."""
    assert peak_weight_per_minute(Settings()) == 374
    report_like = Settings(ttl_spreads=1, ttl_books=math.inf, ttl_rankings=math.inf,
                           ttl_exchange=math.inf)
    assert peak_weight_per_minute(report_like) == 20 + 80 + 125 + 60 * 4  # Q1-Q3 once
    one_big_refresh = Settings(top=50, depth_levels=5000, ttl_books=3600)
    assert peak_weight_per_minute(one_big_refresh) == 20 + 80 + 50 * 250 + 24


def test_the_clients_depth_weights_agree_with_the_simulators() -> None:
    """Two transcriptions of Binance's table, written apart: they must agree on every limit."""
    for limit in range(1, 5001):
        assert depth_weight(limit) == simulated_weight("/api/v3/depth",
                                                       {"limit": [str(limit)]}), limit


def test_a_failed_books_refresh_ends_only_when_all_its_requests_have(source: RestSource) -> None:
    """One depth call failing fast must not end the refresh while the other four are still
    in flight: their requests would then be sent and counted behind the scrape's back (a
    rate-limit test once saw a request 'during' a cool-down that way)."""
    done: list[str] = []

    def depth(request: Any) -> tuple[int, dict[str, str], str]:
        symbol = request.params["symbol"]
        if symbol == "ETHBTC":  # first in the ranking: its future is the first result read
            return 500, {}, "{}"
        time.sleep(0.2)  # still in flight when ETHBTC has failed
        done.append(symbol)
        return depth_callback(request)

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        register_market(mock, depth=depth)
        snap = source.snapshot()
    assert isinstance(snap.books.error, UpstreamUnavailable)
    assert sorted(done) == ["DOGEBTC", "FETBTC", "SOLBTC", "WLDBTC"]
