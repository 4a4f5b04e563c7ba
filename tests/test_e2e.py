"""End to end, with real processes on loopback: simulator → exporter → Prometheus.

These tests prove what mocks inside one process cannot: the console scripts,
the HTTP server and ports, what a real Prometheus stores, and how many
requests really reach "Binance" when many scrapers hit the exporter.
"""

from __future__ import annotations

import json
import math
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any, Iterator

import pytest
from e2e_support import BIN, Prometheus, http_get, promtool, running_prometheus, tool
from test_deploy import METRIC_NAME, STREAM_METRICS, as_promql, panel_exprs

from binance_simulator.testkit import SimulatorProcess, running_exporter, running_simulator

pytestmark = pytest.mark.e2e

LOAD_SECONDS = 30
SCRAPERS = 5


def recorded(name: str) -> Any:
    """The simulator's market snapshot, read here independently of the collector code."""
    return json.loads(resources.files("binance_simulator").joinpath("data", name).read_text())


def expected_rankings() -> tuple[list[str], list[str]]:
    """Q1 and Q2 computed from the snapshot with plain Python, not collector.answers."""
    quote_of = {s["symbol"]: s["quoteAsset"] for s in recorded("exchange_info.json")["symbols"]
                if s["status"] == "TRADING"}
    tickers = recorded("ticker_24hr.json")
    btc = [t for t in tickers if quote_of.get(t["symbol"]) == "BTC"]
    usdt = [t for t in tickers if quote_of.get(t["symbol"]) == "USDT"]
    q1 = sorted(btc, key=lambda t: (-Decimal(t["quoteVolume"]), t["symbol"]))[:5]
    q2 = sorted(usdt, key=lambda t: (-t["count"], t["symbol"]))[:5]
    return [t["symbol"] for t in q1], [t["symbol"] for t in q2]


def fetch(sim: SimulatorProcess, path: str, **params: str) -> Any:
    url = f"{sim.url}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.load(answer)


def test_report_answers_match_an_independent_computation() -> None:
    """binance-report --format json against the simulator, checked figure by figure.

    Prices are frozen for the run (one step per day), and the books are read
    again afterwards to prove they did not move while the report ran.
    """
    q1, q2 = expected_rankings()
    with running_simulator("--step-seconds", "86400", "--seed", "5") as sim:
        books = {s: fetch(sim, "/api/v3/depth", symbol=s, limit="200") for s in q1}
        compact = json.dumps(q2, separators=(",", ":"), ensure_ascii=False)
        tops = fetch(sim, "/api/v3/ticker/bookTicker", symbols=compact)
        done = subprocess.run(
            [str(BIN / "binance-report"), "--base-url", sim.url, "--count", "0",
             "--format", "json"], capture_output=True, text=True, timeout=60, check=False)
        assert books == {s: fetch(sim, "/api/v3/depth", symbol=s, limit="200") for s in q1}
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert [e["symbol"] for e in answer["top_btc_by_volume"]] == q1
    assert [e["symbol"] for e in answer["top_usdt_by_trades"]] == q2
    assert_notionals(answer["order_book_notional"], books)
    for top in tops:
        spread = Decimal(top["askPrice"]) - Decimal(top["bidPrice"])
        assert Decimal(answer["spreads"][top["symbol"]]) == spread


def assert_notionals(got: dict[str, Any], books: dict[str, Any]) -> None:
    """Σ price × qty per side of each book, and the level counts."""
    for symbol, book in books.items():
        for side, key in (("bids", "bid_levels"), ("asks", "ask_levels")):
            total = sum(Decimal(p) * Decimal(q) for p, q in book[side])
            assert Decimal(got[symbol][side]) == total, (symbol, side)
            assert got[symbol][key] == len(book[side])


class Chain:
    """simulator → exporter → Prometheus, observed for LOAD_SECONDS under extra scrapers."""

    def __init__(self, sim: SimulatorProcess, exporter: str, prometheus: Prometheus) -> None:
        self.sim, self.exporter, self.prometheus = sim, exporter, prometheus
        self.scrapes: list[tuple[int, bool]] = []  # (status, binance_up 1 seen)
        self.stats: dict[str, Any] = {}

    def scraper(self, stop: float) -> None:
        while time.monotonic() < stop:
            status, body = http_get(self.exporter + "/metrics")
            self.scrapes.append((status, b"\nbinance_up 1.0\n" in body))
            time.sleep(1)

    def run_load(self) -> None:
        self.sim.reset_stats()
        stop = time.monotonic() + LOAD_SECONDS
        threads = [threading.Thread(target=self.scraper, args=(stop,)) for _ in range(SCRAPERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(LOAD_SECONDS + 30)
        self.stats = self.sim.stats()


@pytest.fixture(scope="module")
def chain() -> Iterator[Chain]:
    tool("prometheus", "apt-get install prometheus")
    with running_simulator("--seed", "11") as sim, running_exporter(sim.url) as exporter, \
            running_prometheus(exporter.url.removeprefix("http://")) as prometheus:
        observed = Chain(sim, exporter.url, prometheus)
        observed.run_load()
        yield observed


def raw_samples(prometheus: Prometheus, selector: str) -> dict[str, list[tuple[float, float]]]:
    """{symbol or group: [(timestamp, value), ...]} of the raw samples of the last 2 minutes."""
    out = {}
    for series in prometheus.query(f"{selector}[2m]"):
        key = series["metric"].get("symbol") or series["metric"].get("group", "")
        out[key] = [(float(t), float(v)) for t, v in series["values"]]
    return out


def test_prometheus_stores_spreads_and_exact_deltas(chain: Chain) -> None:
    """Every stored delta equals |spread − the previous refresh's spread|, per symbol."""
    _, q2 = expected_rankings()
    spreads = raw_samples(chain.prometheus, "binance_price_spread")
    deltas = raw_samples(chain.prometheus, "binance_price_spread_delta")
    refreshed = dict(raw_samples(chain.prometheus,
                                 'binance_last_refresh_timestamp_seconds{group="spreads"}')[
        "spreads"])
    assert sorted(spreads) == sorted(q2)
    assert sorted(deltas) == sorted(q2)
    checked = 0
    for symbol in q2:
        # one (spread, delta) per refresh, in refresh order; scrapes share timestamps
        delta_at = dict(deltas[symbol])
        per_refresh: dict[float, tuple[float, float | None]] = {}
        for ts, spread in spreads[symbol]:
            per_refresh[refreshed[ts]] = (spread, delta_at.get(ts))
        ordered = [per_refresh[k] for k in sorted(per_refresh)]
        assert len(ordered) >= 3, f"{symbol}: only {len(ordered)} refreshes stored"
        for (before, _), (after, delta) in zip(ordered, ordered[1:]):
            assert delta is not None
            assert math.isclose(delta, abs(after - before), rel_tol=1e-9, abs_tol=1e-15)
            checked += 1
    assert checked >= 10


def test_live_scrape_passes_promtool(chain: Chain) -> None:
    status, body = http_get(chain.exporter + "/metrics")
    assert status == 200
    checked = subprocess.run([promtool(), "check", "metrics"], input=body, capture_output=True,
                             timeout=30, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_many_scrapers_cause_no_more_refreshes_than_the_ttls_allow(chain: Chain) -> None:
    """SCRAPERS clients and Prometheus at 1 s for 30 s: the TTLs, not the scrapers, set the load."""
    assert len(chain.scrapes) >= SCRAPERS * 5  # they did scrape (a busy machine scrapes less)
    assert all(status == 200 and up for status, up in chain.scrapes)
    requests = {path: sum(codes.values()) for path, codes in chain.stats["requests"].items()}
    windows = LOAD_SECONDS / 10
    assert 2 <= requests.get("/api/v3/ticker/bookTicker", 0) <= math.ceil(windows) + 1
    assert requests.get("/api/v3/depth", 0) <= 5 * (math.ceil(LOAD_SECONDS / 30) + 1)
    assert requests.get("/api/v3/ticker/24hr", 0) <= 1
    assert requests.get("/api/v3/exchangeInfo", 0) <= 1
    # the window may include the cold start: exchangeInfo 20 + ticker 80, then books (25 × 5)
    # at most twice and bookTicker (4) at most 4 times
    assert chain.stats["weight_total"] <= 20 + 80 + 2 * 125 + 4 * 4


def test_every_dashboard_panel_returns_data(chain: Chain) -> None:
    """The provisioned dashboard against what a real Prometheus stored from the exporter.

    Panels are range queries, as Grafana sends them: the used weight is absent from
    scrapes early in a clock minute, before the first answer from Binance in it. The
    refresh-failures panel is empty on a healthy run by design; failures are checked by
    the fault matrix instead. Queries of stream-mode metrics are empty in the default
    REST mode this chain runs, and must be.
    """
    board = json.loads((Path(__file__).parent.parent / "grafana" / "dashboards" /
                        "binance.json").read_text())
    stream = [(title, expr) for title, expr in panel_exprs(board)
              if STREAM_METRICS & set(METRIC_NAME.findall(expr))]
    assert stream
    empty = [title for title, expr in panel_exprs(board)
             if (title, expr) not in stream and "binance_refresh_failures_total" not in expr
             and not chain.prometheus.query_range(as_promql(expr))]
    assert not empty, f"panels without data: {empty}"
    served = [title for title, expr in stream if chain.prometheus.query_range(as_promql(expr))]
    assert not served, f"stream-mode panels with data in REST mode: {served}"
