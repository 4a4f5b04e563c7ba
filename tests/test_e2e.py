"""End to end, with real processes on loopback: simulator → exporter → Prometheus, with the
exporter in its default REST mode and in stream mode (one chain each, one after the other).

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
from collections import Counter
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any, Iterator

import bcrypt
import pytest
from e2e_support import BIN, Prometheus, http_get, promtool, running_prometheus, tool
from pki import CA
from test_deploy import FLAG_METRICS, METRIC_NAME, STREAM_METRICS, as_promql, panel_exprs

from binance_simulator.market import SimulatedMarket
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

    def run_load(self, seconds: float = LOAD_SECONDS, reset: bool = True) -> None:
        """SCRAPERS extra scrapers for ``seconds``; the simulator's stats over that window
        (``reset=False``: since the simulator started, the exporter's cold start included)."""
        if reset:
            self.sim.reset_stats()
        stop = time.monotonic() + seconds
        threads = [threading.Thread(target=self.scraper, args=(stop,)) for _ in range(SCRAPERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(seconds + 30)
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
              if (STREAM_METRICS | FLAG_METRICS) & set(METRIC_NAME.findall(expr))]
    assert stream
    empty = [title for title, expr in panel_exprs(board)
             if (title, expr) not in stream and "binance_refresh_failures_total" not in expr
             and not chain.prometheus.query_range(as_promql(expr))]
    assert not empty, f"panels without data: {empty}"
    served = [title for title, expr in stream if chain.prometheus.query_range(as_promql(expr))]
    assert not served, f"stream-mode panels with data in REST mode: {served}"


# ---------------------------------------------------------------- stream mode
#
# The same chain with the exporter in stream mode (--source stream): spreads and books
# come from the simulator's WebSocket streams, only the rankings and the books' snapshots
# from REST. The simulator's market moves at every multiple of STEP_SECONDS of Unix time,
# the exporter samples Q5 at every multiple of TICK_SECONDS: both clocks are the same
# machine's, so the test knows when each value changed and which one each tick saw.

STREAM_SECONDS = 55  # observed once the first spreads are stored
STREAM_SEED = 11
STEP_SECONDS = 12  # see test_stream_deltas_are_exact_on_the_10_s_clock
TICK_SECONDS = 10  # the exporter's Q5 clock (collector.q5.SAMPLE_SECONDS)
NEAR = 1.5  # seconds either side of a step or a tick within which events and samples may race
# a step's depth event is the change of five books of 5,000 levels: built by the simulator and
# parsed by the exporter in about a second, several on a busy machine (bookTicker events go
# first), so a book may show the step before for this long after a step
BOOK_LATE = 6.0
SCRAPE_TIMEOUT = 1  # running_prometheus: a stored sample was rendered within 1 s of its time
DEPTH_LEVELS = 200  # the exporter's default --depth-levels
SNAPSHOT_WEIGHT = 25  # a stream-mode book snapshot: depth limit 500
MIN_CHECKED_TICKS = 2  # per symbol: see test_stream_deltas_are_exact_on_the_10_s_clock

Series = dict[tuple[str, ...], list[tuple[float, float]]]
STORED = {  # metric: the labels that tell its series apart
    "binance_price_spread": ("symbol",),
    "binance_price_spread_delta": ("symbol",),
    "binance_price_spread_min": ("symbol",),
    "binance_price_spread_max": ("symbol",),
    "binance_order_book_notional": ("symbol", "side"),
    "binance_order_book_synced": ("symbol",),
    "binance_stream_connected": (),
    "binance_up": (),
}


def stored(prometheus: Prometheus, selector: str, labels: tuple[str, ...]) -> Series:
    """{label values: [(timestamp, value), ...]} of the raw samples of the last 2 minutes."""
    return {tuple(series["metric"].get(label, "") for label in labels):
            [(float(t), float(v)) for t, v in series["values"]]
            for series in prometheus.query(f"{selector}[2m]")}


class StreamChain(Chain):
    """The stream-mode chain; ``stored`` is what Prometheus held when the load ended."""

    stored: dict[str, Series]

    def wait_for_spreads(self, seconds: float = STEP_SECONDS + 30) -> None:
        """Until Prometheus has stored the spreads of every Q2 symbol: a bookTicker stream
        sends changes only, so the first come with the market's first step after the
        connection (and Prometheus scrapes a few seconds after it says it is ready)."""
        deadline = time.monotonic() + seconds
        while len(self.prometheus.query("binance_price_spread")) < len(expected_rankings()[1]):
            assert time.monotonic() < deadline, f"no spreads stored within {seconds} s"
            time.sleep(0.5)


@pytest.fixture(scope="module")
def stream_chain() -> Iterator[StreamChain]:
    """Started after the REST chain's load (module fixtures are set up in test order), so the
    two loads never overlap. The first scrape, before Prometheus starts, connects the
    streams; the load starts once the spreads are stored, so its STREAM_SECONDS all count.
    The simulator's stats are since it started: the exporter's cold start included."""
    tool("prometheus", "apt-get install prometheus")
    with running_simulator("--seed", str(STREAM_SEED), "--step-seconds", str(STEP_SECONDS)) \
            as sim, running_exporter(sim.url, "--source", "stream", "--stream-url",
                                     sim.stream_url) as exporter:
        assert http_get(exporter.url + "/metrics")[0] == 200
        with running_prometheus(exporter.url.removeprefix("http://")) as prometheus:
            observed = StreamChain(sim, exporter.url, prometheus)
            observed.wait_for_spreads()
            observed.run_load(STREAM_SECONDS, reset=False)
            observed.stored = {name: stored(prometheus, name, labels)
                               for name, labels in STORED.items()}
            yield observed


def a_step_within(start: float, end: float) -> bool:
    """Whether the market moves in [start, end] (steps are multiples of STEP_SECONDS)."""
    return math.floor(end / STEP_SECONDS) * STEP_SECONDS >= start


def clean(timestamp: float, late: float = NEAR) -> bool:
    """Whether a stored sample shows the market of the step it was scraped in: the
    exporter rendered it within SCRAPE_TIMEOUT of its timestamp, and no step lies within
    NEAR of that (``late`` before it), so no event of a neighbouring step can be in it."""
    return not a_step_within(timestamp - late, timestamp + SCRAPE_TIMEOUT + NEAR)


def by_step(samples: list[tuple[float, float]], late: float = NEAR) -> dict[int, set[float]]:
    """The values of the clean samples, by market step."""
    steps: dict[int, set[float]] = {}
    for timestamp, value in samples:
        if clean(timestamp, late):
            steps.setdefault(math.floor(timestamp / STEP_SECONDS), set()).add(value)
    return steps


def model_spread(market: SimulatedMarket, symbol: str, step: int) -> float:
    """The simulator's spread of ``symbol`` at ``step``, from its market model."""
    top = market.book(symbol, 1, step).book_ticker_payload()
    return float(Decimal(top["askPrice"]) - Decimal(top["bidPrice"]))


def model_notional(market: SimulatedMarket, symbol: str, side: str, step: int) -> float:
    """Σ price × quantity of the top DEPTH_LEVELS levels of one side, at ``step``."""
    levels = market.book(symbol, DEPTH_LEVELS, step).depth_payload()[f"{side}s"]
    return float(sum(Decimal(price) * Decimal(qty) for price, qty in levels))


def first_sync(chain: StreamChain) -> float:
    """The timestamp of the first stored scrape in which every Q1 book was synced."""
    books = chain.stored["binance_order_book_synced"]
    synced: dict[float, list[float]] = {}
    for samples in books.values():
        for timestamp, value in samples:
            synced.setdefault(timestamp, []).append(value)
    return min(t for t, values in synced.items() if values == [1.0] * len(books))


def test_stream_spreads_and_books_are_the_markets_of_their_steps(
        stream_chain: StreamChain) -> None:
    """Spreads for the Q2 symbols and notionals for the Q1 books, each equal to the
    simulator's market model at the step it was scraped in (samples within NEAR of a step
    are left out, and notionals up to BOOK_LATE after one: which side of it they show is a
    race). Every value of one step is the same: the streams push changes only."""
    q1, q2 = expected_rankings()
    market = SimulatedMarket(STREAM_SEED, STEP_SECONDS)
    spreads = stream_chain.stored["binance_price_spread"]
    assert sorted(spreads) == sorted((s,) for s in q2)
    notionals = stream_chain.stored["binance_order_book_notional"]
    assert sorted(notionals) == sorted((s, side) for s in q1 for side in ("bid", "ask"))
    checked = 0
    for (symbol,), samples in spreads.items():
        for step, values in by_step(samples).items():
            assert len(values) == 1, (symbol, step, values)
            assert math.isclose(values.pop(), model_spread(market, symbol, step),
                                rel_tol=1e-12, abs_tol=0), (symbol, step)
            checked += 1
    for (symbol, side), samples in notionals.items():
        for step, values in by_step(samples, BOOK_LATE).items():
            assert len(values) == 1, (symbol, side, step, values)
            assert math.isclose(values.pop(), model_notional(market, symbol, side, step),
                                rel_tol=1e-12, abs_tol=0), (symbol, side, step)
            checked += 1
    assert checked >= 10 * 3 + 5 * 3  # three steps per series at least


def test_stream_spread_lies_between_its_min_and_max(stream_chain: StreamChain) -> None:
    """binance_price_spread_min ≤ binance_price_spread ≤ binance_price_spread_max in every
    stored scrape, for every symbol: the three come from one scrape, so share its
    timestamp."""
    spreads = stream_chain.stored["binance_price_spread"]
    low = {k: dict(v) for k, v in stream_chain.stored["binance_price_spread_min"].items()}
    high = {k: dict(v) for k, v in stream_chain.stored["binance_price_spread_max"].items()}
    assert sorted(low) == sorted(high) == sorted(spreads)
    for key, samples in spreads.items():
        assert len(samples) >= STREAM_SECONDS // 2, key
        for timestamp, spread in samples:
            assert low[key][timestamp] <= spread <= high[key][timestamp], (key, timestamp)


def deltas_by_tick(samples: list[tuple[float, float]],
                   deltas: list[tuple[float, float]]) -> dict[int, list[float | None]]:
    """{tick: the delta stored with each spread scraped well inside its interval (None:
    no delta)}. A scrape at t is rendered within [t, t + SCRAPE_TIMEOUT]: it shows tick T's
    delta if T + NEAR <= t <= T + TICK_SECONDS - SCRAPE_TIMEOUT - NEAR."""
    delta_at = dict(deltas)
    ticks: dict[int, list[float | None]] = {}
    for timestamp, _ in samples:
        tick = math.floor(timestamp / TICK_SECONDS) * TICK_SECONDS
        if tick + NEAR <= timestamp <= tick + TICK_SECONDS - SCRAPE_TIMEOUT - NEAR:
            ticks.setdefault(tick, []).append(delta_at.get(timestamp))
    return ticks


def test_stream_deltas_are_exact_on_the_10_s_clock(stream_chain: StreamChain) -> None:
    """binance_price_spread_delta on the exporter's own 10 s clock, checked tick by tick.

    At each tick T (a multiple of 10 s) the exporter samples the spreads and publishes
    |sample at T − sample at T − 10| until the next tick. So, per symbol:

    * the stored deltas are one value per tick interval; scrapes within NEAR (1.5 s) of a
      tick, or rendered within NEAR of the next, are left out (see deltas_by_tick);
    * from the tick after the exporter first had a spread on (the first stored spread,
      plus SCRAPE_TIMEOUT), every scrape has a delta: it never loses its spreads on a
      healthy run;
    * the delta of tick T is |spread(T) − spread(T − 10)|. spread(T) is the market's
      spread of the step T lies in, unless a step lies within NEAR of T: then the stream
      event and the sampling race, and T is skipped. Steps are multiples of 12 s, so ticks
      lie 0, 2, 4, 6, 4, 2 s from the nearest step (repeating every minute): only the
      ticks of whole minutes are skipped, with the ticks after them. The checked ticks,
      20, 30, 40 and 50 s past a minute, each follow one step (at 12, 24, 36, 48 s), so
      their deltas are mostly not 0. A step's spread is the one its clean stored spreads
      show (test_stream_spreads_and_books_are_the_markets_of_their_steps checks them
      against the market model).

    How many ticks this checks: the load starts once the spreads are stored and lasts
    STREAM_SECONDS = 55 s, so the ticks T from 11 s after the first stored spread (T − 10
    after it, plus SCRAPE_TIMEOUT) to NEAR before the last scrape (at most 1 s before the
    end) span at least 55 − 11 − 2.5 = 41.5 s: at least four ticks, of which at most two
    are a whole minute or the tick after one. Hence MIN_CHECKED_TICKS = 2 per symbol.
    Floats are compared with a tolerance for their conversion from decimals only.
    """
    spreads = stream_chain.stored["binance_price_spread"]
    deltas = stream_chain.stored["binance_price_spread_delta"]
    assert sorted(deltas) == sorted(spreads)
    checked, moved = Counter[str](), 0
    for key, samples in spreads.items():
        known = {step: values.pop() for step, values in by_step(samples).items()
                 if len(values) == 1}
        since = samples[0][0] + SCRAPE_TIMEOUT  # the exporter has had a spread since
        for tick, values in sorted(deltas_by_tick(samples, deltas[key]).items()):
            if tick - TICK_SECONDS < since:
                continue  # the exporter may have had no spread at the tick before
            assert None not in values and len(set(values)) == 1, (key, tick, values)
            if any(a_step_within(t - NEAR, t + NEAR) for t in (tick - TICK_SECONDS, tick)):
                continue
            before = known.get(math.floor((tick - TICK_SECONDS) / STEP_SECONDS))
            after = known.get(math.floor(tick / STEP_SECONDS))
            if before is None or after is None:
                continue
            delta = values[0]
            assert delta is not None and math.isclose(
                delta, abs(after - before), rel_tol=1e-9, abs_tol=1e-15), (key, tick, values)
            checked[key[0]] += 1
            moved += delta != 0
    assert all(checked[symbol] >= MIN_CHECKED_TICKS for (symbol,) in spreads), checked
    # not a test of 0 = 0: each checked tick follows one step, which draws a spread of 1 to
    # 5 ticks anew, so about 4 in 5 deltas are not 0 (fewer than 2 of 10: p < 1e-5)
    assert moved >= 2, checked


def test_stream_health_after_the_first_sync(stream_chain: StreamChain) -> None:
    """From the first scrape in which every book is synced on, every stored scrape says
    binance_up 1, binance_stream_connected 1 and every binance_order_book_synced 1."""
    synced_at = first_sync(stream_chain)
    for name in ("binance_up", "binance_stream_connected", "binance_order_book_synced"):
        for key, samples in stream_chain.stored[name].items():
            after = [value for timestamp, value in samples if timestamp >= synced_at]
            assert len(after) >= 20, (name, key, len(after))
            assert set(after) == {1}, (name, key)
    assert all(status == 200 for status, _ in stream_chain.scrapes)
    assert sum(up for _, up in stream_chain.scrapes) >= SCRAPERS * 10


def test_stream_live_scrape_passes_promtool(stream_chain: StreamChain) -> None:
    status, body = http_get(stream_chain.exporter + "/metrics")
    assert status == 200 and b"\nbinance_stream_connected 1.0\n" in body
    checked = subprocess.run([promtool(), "check", "metrics"], input=body, capture_output=True,
                             timeout=30, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_stream_mode_spends_only_the_rankings_and_one_snapshot_per_book(
        stream_chain: StreamChain) -> None:
    """Since the simulator started (the exporter's cold start included), however many
    scrapers: exchangeInfo (20) and the 24 h ticker (80) once, one snapshot per Q1 book
    (depth limit 500: 25 each), room for one resync; never a REST bookTicker, and one
    stream connection."""
    stats = stream_chain.stats
    requests = {path: sum(codes.values()) for path, codes in stats["requests"].items()}
    assert requests.get("/api/v3/ticker/bookTicker", 0) == 0
    assert 5 <= requests.get("/api/v3/depth", 0) <= 6
    assert stats["weight_total"] <= 20 + 80 + 5 * SNAPSHOT_WEIGHT + SNAPSHOT_WEIGHT
    assert stats["streams"]["connections"] == {"accepted": 1}


def test_every_dashboard_panel_returns_data_in_stream_mode(stream_chain: StreamChain) -> None:
    """The provisioned dashboard against what Prometheus stored from the stream-mode
    exporter: every panel has data, the "Stream mode" row's included. The reconnects and
    resyncs panels show increase() of counters the exporter serves from 0: present, and 0
    on this healthy run (one connection, no resync). The refresh-failures panel is empty on
    a healthy run by design, as in REST mode. The range covers the whole run: the used
    weight is served only in the clock minute of the exporter's cold start, its last REST
    call."""
    board = json.loads((Path(__file__).parent.parent / "grafana" / "dashboards" /
                        "binance.json").read_text())
    answers = {(title, expr): stream_chain.prometheus.query_range(as_promql(expr), seconds=300)
               for title, expr in panel_exprs(board)
               if "binance_refresh_failures_total" not in expr
               and not FLAG_METRICS & set(METRIC_NAME.findall(expr))}
    empty = [title for (title, _), result in answers.items() if not result]
    assert not empty, f"panels without data in stream mode: {empty}"
    for (title, expr), result in answers.items():
        if "reconnects_total" in expr or "resyncs_total" in expr:
            assert {float(v) for series in result for _, v in series["values"]} == {0}, title


# ---------------------------------------------------------------- your symbols, depth bands
#
# --symbols and --depth-bands against a real Prometheus, in both modes. In REST mode the
# market stands still (a step an hour), so what Prometheus stored must equal the
# simulator's books exactly; in stream mode it moves, and the families must be there.

FLAGS = ("--symbols", "ADAUSDT,NOPE", "--depth-bands", "0.5,2", "--weight-budget", "6000")
FLAG_BOOKS = 6  # Q1 and ADAUSDT


def band_reference(sim: SimulatorProcess, symbol: str, band: str) -> tuple[float, float]:
    """Σ price × quantity within ±band % of mid, per side, of the simulator's whole book."""
    book = fetch(sim, "/api/v3/depth", symbol=symbol, limit="5000")
    bids = [(Decimal(p), Decimal(q)) for p, q in book["bids"]]
    asks = [(Decimal(p), Decimal(q)) for p, q in book["asks"]]
    mid = (bids[0][0] + asks[0][0]) / 2
    low, high = mid * (1 - Decimal(band) / 100), mid * (1 + Decimal(band) / 100)
    return (float(sum(p * q for p, q in bids if p >= low)),
            float(sum(p * q for p, q in asks if p <= high)))


@pytest.mark.parametrize("mode", ["rest", "stream"])
def test_prometheus_stores_your_symbols_and_depth_bands(mode: str) -> None:
    tool("prometheus", "apt-get install prometheus")
    stream = mode == "stream"
    step = "1" if stream else "3600"
    with running_simulator("--seed", "11", "--step-seconds", step, "--weight-limit",
                           "1000000") as sim, \
            running_exporter(sim.url, *FLAGS, *(("--source", "stream", "--stream-url",
                                                 sim.stream_url) if stream else ())) as exporter:
        assert http_get(exporter.url + "/metrics")[0] == 200  # stream mode: connects
        with running_prometheus(exporter.url.removeprefix("http://")) as prometheus:
            deadline = time.monotonic() + 60
            while len(prometheus.query("binance_order_book_band_complete == 1")) \
                    < FLAG_BOOKS * 2 * 2 or not prometheus.query(
                        'binance_price_spread{symbol="ADAUSDT"}'):
                assert time.monotonic() < deadline, "the bands and ADAUSDT not stored in 60 s"
                time.sleep(0.5)
            followed = {s["metric"]["symbol"]: float(s["value"][1])
                        for s in prometheus.query("binance_symbol_followed")}
            assert followed == {"ADAUSDT": 1.0, "NOPE": 0.0}
            notionals = prometheus.query("binance_order_book_band_notional")
            assert {(s["metric"]["symbol"], s["metric"]["band"], s["metric"]["side"])
                    for s in notionals} == {(symbol, band, side)
                                            for symbol in [*expected_rankings()[0], "ADAUSDT"]
                                            for band in ("0.5", "2") for side in ("bid", "ask")}
            if not stream:  # the market stands still: exactly the simulator's books
                for series in notionals:
                    labels = series["metric"]
                    want = band_reference(sim, labels["symbol"], labels["band"])
                    assert math.isclose(float(series["value"][1]),
                                        want[labels["side"] == "ask"], rel_tol=1e-12)
            board = json.loads((Path(__file__).parent.parent / "grafana" / "dashboards" /
                                "binance.json").read_text())
            empty = [title for title, expr in panel_exprs(board)
                     if FLAG_METRICS & set(METRIC_NAME.findall(expr))
                     and not prometheus.query_range(as_promql(expr))]
            assert not empty, f"flag panels without data: {empty}"


# ---------------------------------------------------------------- TLS and basic auth

def test_prometheus_scrapes_over_tls_with_basic_auth(tmp_path: Path) -> None:
    """The exporter with a web configuration (TLS, a bcrypt user), scraped by a real
    Prometheus that verifies its certificate against the test's CA and sends the password:
    up is 1 and the samples are stored. A second job with a wrong password gets up 0."""
    tool("prometheus", "apt-get install prometheus")
    CA(tmp_path).issue("server")
    (tmp_path / "password").write_text("scrape-secret")
    (tmp_path / "wrong").write_text("guess")
    hashed = bcrypt.hashpw(b"scrape-secret", bcrypt.gensalt(4)).decode()
    web = tmp_path / "web.yml"
    web.write_text("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
                   f"basic_auth_users:\n  prometheus: {hashed}\n")
    tls = {"scheme": "https", "tls_config": {"ca_file": str(tmp_path / "ca.crt")}}
    with running_simulator("--seed", "11", "--step-seconds", "3600") as sim, \
            running_exporter(sim.url, "--web.config.file", str(web)) as exporter:
        assert exporter.url.startswith("https://127.0.0.1:")
        jobs = {"binance": {**tls, "basic_auth": {
                    "username": "prometheus", "password_file": str(tmp_path / "password")}},
                "intruder": {**tls, "basic_auth": {
                    "username": "prometheus", "password_file": str(tmp_path / "wrong")}}}
        with running_prometheus(exporter.url.removeprefix("https://"), jobs=jobs) as prometheus:
            deadline = time.monotonic() + 60
            while not (prometheus.query('up{job="binance"} == 1')
                       and prometheus.query('up{job="intruder"} == 0')
                       and prometheus.query('binance_up{job="binance"} == 1')):
                assert time.monotonic() < deadline, "no scrape over TLS stored within 60 s"
                time.sleep(0.5)
            assert prometheus.query('process_resident_memory_bytes{job="binance"}')
            assert not prometheus.query('binance_up{job="intruder"}')
