"""BinanceCollector: exact metrics, lazy fetching, single flight, and honest failures."""

from __future__ import annotations

import logging
import os
import subprocess
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

import pytest
from e2e_support import promtool
import requests
import responses
from conftest import BASE, FakeClock, calls_to, connection_error, load, register_market
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from collector import q5
from collector.binance import BinanceClient
from collector.exporter import BinanceCollector
from collector.rest_source import RestSource
from collector.records import (STREAM, BookTop, Health, Outcome, Settings, Snapshot, Spreads,
                               StreamHealth, SymbolInfo)

GOLDEN = Path(__file__).parent / "golden" / "metrics.txt"
BOOK_TICKER = f"{BASE}/api/v3/ticker/bookTicker"
Q2 = ["FLOKIUSDT", "WLDUSDT", "BTCUSDT", "SHIBUSDT", "PEPEUSDT"]


class Exporter:
    """A registry holding one collector over a source on a fake clock."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        client = BinanceClient(clock=clock, wall=clock.wall, sleep=clock.sleep, retries=0)
        self.source = RestSource(client, Settings(), clock=clock, wall=clock.wall)
        self.registry = CollectorRegistry()
        self.registry.register(BinanceCollector(self.source, clock=clock))

    def text(self) -> str:
        return generate_latest(self.registry).decode()

    def samples(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample of one scrape, keyed by name and sorted labels."""
        out = {}
        for family in text_string_to_metric_families(self.text()):
            for s in family.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out

    def series(self, name: str) -> dict[str, float]:
        """{symbol: value} of one metric (for metrics labelled by symbol only)."""
        return {dict(k[1])["symbol"]: v for k, v in self.samples().items() if k[0] == name}

    def value(self, name: str, **labels: str) -> float:
        return self.samples()[(name, tuple(sorted(labels.items())))]


@pytest.fixture
def exporter(clock: FakeClock) -> Iterator[Exporter]:
    e = Exporter(clock)
    yield e
    e.source.close()


def test_exposition_matches_the_golden_file(market_mock: responses.RequestsMock,
                                            exporter: Exporter) -> None:
    """The exact /metrics text for the fixtures. Regenerate with BINANCE_REGENERATE=1."""
    text = exporter.text()
    if os.environ.get("BINANCE_REGENERATE"):
        GOLDEN.write_text(text)  # pragma: no cover
    assert text == GOLDEN.read_text()
    del market_mock


def test_spreads_are_the_fixture_decimals(market_mock: responses.RequestsMock,
                                          exporter: Exporter) -> None:
    spreads = exporter.series("binance_price_spread")
    assert spreads == {"FLOKIUSDT": 1e-08, "WLDUSDT": 0.001, "BTCUSDT": 0.01,
                       "SHIBUSDT": 1e-08, "PEPEUSDT": 1e-08}
    assert exporter.value("binance_price_spread", symbol="BTCUSDT", quote_asset="USDT") == 0.01
    assert exporter.value("binance_order_book_levels", symbol="SOLBTC", quote_asset="BTC",
                          side="bid") == 37
    assert exporter.value("binance_up") == 1
    del market_mock


def test_delta_series_appear_from_the_second_refresh(exporter: Exporter, clock: FakeClock) -> None:
    tops = load("book_ticker.json")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        register_market(mock, book_ticker=tops)
        assert exporter.series("binance_price_spread_delta") == {}
        clock.advance(5)
        assert exporter.series("binance_price_spread_delta") == {}  # still cached: same refresh
        tops[2]["askPrice"] = "69010.03000000"  # BTCUSDT spread 0.01 -> 0.03
        mock.replace(responses.GET, BOOK_TICKER, json=tops)
        clock.advance(5)
        deltas = exporter.series("binance_price_spread_delta")
        assert deltas == {"FLOKIUSDT": 0.0, "WLDUSDT": 0.0, "BTCUSDT": 0.02,
                          "SHIBUSDT": 0.0, "PEPEUSDT": 0.0}
        assert calls_to(mock, "/bookTicker") == 2


def test_registering_and_describing_make_no_upstream_call(clock: FakeClock) -> None:
    """Lazy means lazy: only a scrape fetches. Any request here would fail the mock."""
    with responses.RequestsMock() as mock:
        e = Exporter(clock)
        names = [m.name for m in BinanceCollector(e.source).describe()]
        assert "binance_price_spread" in names and "binance_up" in names
        assert len(mock.calls) == 0
        e.source.close()


def test_twenty_concurrent_scrapes_cause_one_request_per_group(
    market_mock: responses.RequestsMock, exporter: Exporter
) -> None:
    barrier = threading.Barrier(20)
    ups: list[float] = []

    def scrape() -> None:
        barrier.wait(10)
        ups.append(exporter.value("binance_up"))

    threads = [threading.Thread(target=scrape) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert ups == [1.0] * 20
    assert calls_to(market_mock, "/exchangeInfo") == 1
    assert calls_to(market_mock, "/ticker/24hr") == 1
    assert calls_to(market_mock, "/depth") == 5  # one per Q1 book
    assert calls_to(market_mock, "/bookTicker") == 1


def test_a_failed_group_is_left_out_counted_and_retried_after_10_s(
    market_mock: responses.RequestsMock, exporter: Exporter, clock: FakeClock
) -> None:
    exporter.text()
    market_mock.replace(responses.GET, BOOK_TICKER, status=503)
    clock.advance(10)
    samples = exporter.samples()
    assert samples[("binance_up", ())] == 0
    names = {name for name, _ in samples}
    # no spread family carries a value from before the failure
    assert not names & {"binance_price_spread", "binance_price_spread_delta",
                        "binance_best_bid_price", "binance_best_ask_price"}
    assert "binance_order_book_notional" in names  # other groups are still fresh
    assert samples[("binance_refresh_failures_total",
                    (("group", "spreads"), ("kind", "unavailable")))] == 1
    assert samples[("binance_api_requests_total",
                    (("code", "503"), ("endpoint", "/api/v3/ticker/bookTicker")))] == 1
    # failures are remembered: scrapes within 10 s send nothing
    for _ in range(4):
        clock.advance(2)
        assert exporter.value("binance_up") == 0
    assert calls_to(market_mock, "/bookTicker") == 2
    market_mock.replace(responses.GET, BOOK_TICKER, json=load("book_ticker.json"))
    clock.advance(2)
    assert exporter.value("binance_up") == 1
    assert exporter.series("binance_price_spread")["BTCUSDT"] == 0.01
    # the delta is against the last successful refresh
    assert exporter.series("binance_price_spread_delta")["BTCUSDT"] == 0.0


def test_rate_limit_silences_every_endpoint_until_retry_after(
    market_mock: responses.RequestsMock, exporter: Exporter, clock: FakeClock
) -> None:
    exporter.text()
    market_mock.replace(responses.GET, BOOK_TICKER, status=429, headers={"Retry-After": "45"})
    clock.advance(10)
    assert exporter.value("binance_up") == 0
    assert exporter.value("binance_api_cool_down_seconds") == 45
    sent = len(market_mock.calls)
    for _ in range(4):  # books (30 s) fall due during the cool-down: failed, not sent
        clock.advance(10)
        assert exporter.value("binance_up") == 0
    assert len(market_mock.calls) == sent
    assert "binance_order_book_notional" not in {n for n, _ in exporter.samples()}
    market_mock.replace(responses.GET, BOOK_TICKER, json=load("book_ticker.json"))
    clock.advance(10)
    assert exporter.value("binance_up") == 1
    assert exporter.value("binance_api_cool_down_seconds") == 0


def test_a_bad_payload_never_kills_the_scrape(
    market_mock: responses.RequestsMock, exporter: Exporter, clock: FakeClock
) -> None:
    exporter.text()
    market_mock.replace(responses.GET, BOOK_TICKER, json=[{"symbol": "BTCUSDT", "bidPrice": "x"}])
    clock.advance(10)
    assert exporter.value("binance_up") == 0
    assert exporter.value("binance_refresh_failures_total", group="spreads",
                          kind="bad_response") == 1


def test_an_empty_side_drops_that_symbols_spread_until_both_sides_return(
    exporter: Exporter, clock: FakeClock
) -> None:
    tops = load("book_ticker.json")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        register_market(mock, book_ticker=tops)
        exporter.text()
        tops[0]["bidPrice"] = "0.00000000"
        mock.replace(responses.GET, BOOK_TICKER, json=tops)
        clock.advance(10)
        assert "FLOKIUSDT" not in exporter.series("binance_price_spread")
        assert "FLOKIUSDT" not in exporter.series("binance_price_spread_delta")
        assert "FLOKIUSDT" not in exporter.series("binance_best_bid_price")
        assert exporter.value("binance_up") == 1  # a source state, not an error
        tops[0]["bidPrice"] = "0.00024376"
        mock.replace(responses.GET, BOOK_TICKER, json=tops)
        clock.advance(10)
        assert exporter.series("binance_price_spread")["FLOKIUSDT"] == 1e-08
        assert "FLOKIUSDT" not in exporter.series("binance_price_spread_delta")


def test_each_refresh_is_logged_once_not_each_scrape(
    market_mock: responses.RequestsMock, exporter: Exporter, clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="collector.exporter"), \
            caplog.at_level(logging.INFO, logger="collector.q5"):
        exporter.text()
        exporter.text()
        market_mock.replace(responses.GET, BOOK_TICKER, status=500)
        clock.advance(10)
        exporter.text()
        exporter.text()
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert messages[0].startswith("spreads: FLOKIUSDT=0.00000001 (delta -) WLDUSDT=0.001")
    assert messages[1].startswith("spreads refresh failed (unavailable)")
    assert all("Traceback" not in m for m in messages)


def test_an_unreachable_binance_is_explained_once_per_outage(
    exporter: Exporter, clock: FakeClock, caplog: pytest.LogCaptureFixture,
) -> None:
    """The log says what to try once per outage, not at every failed refresh."""
    hints = 0
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        for path in ("exchangeInfo", "ticker/24hr"):
            mock.get(f"{BASE}/api/v3/{path}",
                     body=connection_error("dns"))
        with caplog.at_level(logging.WARNING, logger="collector.exporter"):
            for _ in range(4):  # four failed refreshes, 60 s apart
                exporter.text()
                clock.advance(60)
        hints = sum("make demo" in r.getMessage() for r in caplog.records)
        assert hints == 1
        assert sum("refresh failed" in r.getMessage() for r in caplog.records) == 8
        caplog.clear()
        register_market(mock)  # Binance is back ...
        for path in ("exchangeInfo", "ticker/24hr"):
            mock.replace(responses.GET, f"{BASE}/api/v3/{path}",
                         json=load("exchange_info.json" if path == "exchangeInfo"
                                   else "ticker_24hr.json"))
        assert exporter.value("binance_up") == 1
        for path in ("exchangeInfo", "ticker/24hr"):  # ... and gone again: a new outage
            mock.replace(responses.GET, f"{BASE}/api/v3/{path}",
                         body=connection_error("dns"))
        clock.advance(3600)
        with caplog.at_level(logging.WARNING, logger="collector.exporter"):
            exporter.text()
        assert sum("make demo" in r.getMessage() for r in caplog.records) == 1


def test_the_weight_limit_is_binances_and_settings_over_it_are_logged(
    exporter: Exporter, caplog: pytest.LogCaptureFixture,
) -> None:
    """binance_api_weight_limit follows exchangeInfo's REQUEST_WEIGHT (6000 until seen)."""
    info = load("exchange_info.json")
    info["rateLimits"] = [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE",
                           "intervalNum": 1, "limit": 300}]
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        register_market(mock)
        mock.replace(responses.GET, f"{BASE}/api/v3/exchangeInfo", json=info)
        with caplog.at_level(logging.WARNING, logger="collector.exporter"):
            assert exporter.value("binance_api_weight_limit") == 300
    assert [r.getMessage() for r in caplog.records] == [
        "these settings could spend 374 request weight in one minute, over the 300 Binance now "
        "allows: raise the TTLs (--ttl-*), or lower --top or --depth-levels"]


def test_exposition_passes_promtool(market_mock: responses.RequestsMock,
                                    exporter: Exporter) -> None:
    checker = promtool()
    checked = subprocess.run([checker, "check", "metrics"], input=exporter.text(),
                             capture_output=True, text=True, timeout=30, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    del market_mock


@pytest.mark.parametrize(
    ("answer", "kind", "code"),
    [({"status": 500}, "unavailable", "500"),
     ({"body": requests.ReadTimeout("read timed out")}, "unavailable", "error"),
     ({"body": requests.ConnectionError("Connection reset by peer")}, "unavailable", "error"),
     ({"status": 418, "headers": {"Retry-After": "120"}}, "rate_limited", "418"),
     ({"status": 451, "json": {"code": 0, "msg": "restricted"}}, "restricted", "451"),
     ({"status": 400, "json": {"code": -1121, "msg": "Invalid symbol."}}, "api_error", "400"),
     ({"body": "{not json"}, "bad_response", "200"),
     ({"json": {"symbols": []}}, "bad_response", "200")],
)
def test_every_failure_of_a_group_leaves_it_out_and_names_it(
    answer: dict[str, Any], kind: str, code: str,
    market_mock: responses.RequestsMock, exporter: Exporter, clock: FakeClock,
) -> None:
    exporter.text()
    market_mock.replace(responses.GET, BOOK_TICKER, **answer)
    clock.advance(10)
    samples = exporter.samples()
    assert samples[("binance_up", ())] == 0
    assert not {n for n, _ in samples} & {"binance_price_spread", "binance_price_spread_delta"}
    assert samples[("binance_refresh_failures_total", (("group", "spreads"), ("kind", kind)))] == 1
    assert samples[("binance_api_requests_total",
                    (("code", code), ("endpoint", "/api/v3/ticker/bookTicker")))] >= 1


def test_the_q5_log_line_names_at_most_20_symbols(caplog: pytest.LogCaptureFixture) -> None:
    """--spreads all samples the whole market: one line must not list 1,300 symbols."""
    spreads = {f"S{i:04}": Decimal(i) for i in range(1341)}
    with caplog.at_level(logging.INFO, logger="collector.q5"):
        q5.log_sample(spreads, {})
    line = caplog.records[-1].getMessage()
    assert line.startswith("spreads: S0000=0 (delta -) S0001=1 (delta -) ")
    assert "S0019=19 (delta -) and 1321 more on /metrics" in line and "S0020" not in line


class _StreamLike:
    """A stream-mode source whose snapshot a test sets."""

    settings = Settings(source=STREAM)

    def __init__(self, snapshot: Snapshot) -> None:
        self.current = snapshot

    def cached_snapshot(self) -> Snapshot:
        return self.current

    def snapshot(self) -> Snapshot:
        return self.current


def _stream_snapshot(ask: str, low: str, high: str, quote: str = "USDT") -> Snapshot:
    top = BookTop("BTCUSDT", Decimal("69010.00"), Decimal("1"), Decimal(ask), Decimal("2"))
    spreads = Spreads(tops={"BTCUSDT": top}, spreads={"BTCUSDT": top.ask_price - top.bid_price},
                      deltas={"BTCUSDT": None}, at=1.0, minimum={"BTCUSDT": Decimal(low)},
                      maximum={"BTCUSDT": Decimal(high)})
    stream = StreamHealth(connected=True, reconnects={}, messages={"btcusdt@bookTicker": 1},
                          last_message_age=0.0, synced={}, resyncs={}, updates={"BTCUSDT": 1})
    health = Health(requests={}, failures={}, last_refresh={}, used_weight=None,
                    weight_limit=6000, cool_down=0.0, stream=stream)
    nothing: Outcome[Any] = Outcome(None, None)
    return Snapshot(rankings=nothing, books=nothing, spreads=Outcome(spreads, None),
                    exchange=nothing, health=health,
                    symbols={"BTCUSDT": SymbolInfo("BTCUSDT", "TRADING", "BTC", quote)})


def test_stream_min_max_are_rebuilt_only_when_they_change(clock: FakeClock) -> None:
    """A best bid/ask pushed inside the 10 s window's extremes rebuilds the spread families,
    not the min/max ones (their bytes are kept); a new extreme rebuilds them."""
    source = _StreamLike(_stream_snapshot("69010.02", "0.01", "0.03"))
    collector = BinanceCollector(source, clock=clock)  # type: ignore[arg-type]

    def families() -> dict[str, Any]:
        groups = collector.collect_cached()
        assert groups is not None
        return {f.name: f for group in groups for f in group}

    before = families()
    source.current = _stream_snapshot("69010.03", "0.01", "0.03")  # 0.02 → 0.03: inside
    inside = families()
    assert inside["binance_price_spread"] is not before["binance_price_spread"]
    assert inside["binance_price_spread_min"] is before["binance_price_spread_min"]
    assert inside["binance_price_spread_max"] is before["binance_price_spread_max"]
    source.current = _stream_snapshot("69010.05", "0.01", "0.05")  # a new maximum
    outside = families()
    assert outside["binance_price_spread_max"] is not before["binance_price_spread_max"]
    assert [s.value for s in outside["binance_price_spread_max"].samples] == [0.05]
    source.current = _stream_snapshot("69010.05", "0.01", "0.05", quote="USD1")  # relabelled
    relabelled = families()["binance_price_spread_max"]
    assert [s.labels["quote_asset"] for s in relabelled.samples] == ["USD1"]
