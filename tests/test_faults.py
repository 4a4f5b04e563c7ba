"""The fault matrix: every upstream fault × every data group it can hit, against the simulator.

For each case the exporter (real HTTP to a real simulator process, on a fake
clock so TTLs pass without waiting) must: answer /metrics with 200 inside the
scrape timeout, set ``binance_up`` 0 and count the error by group, kind and
HTTP code, leave the failed group's series out (never its old values), send
nothing during a 429/418 cool-down, and restore every series with correct
values once the fault clears. The outcome table is printed at the end of the
test run (see conftest.py).
"""

from __future__ import annotations

import io
import json
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Iterator

import pytest
from conftest import FAULT_MATRIX_ROW, FakeClock
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from binance_simulator.testkit import SimulatorProcess, running_simulator

from collector import report
from collector.binance import BinanceClient
from collector.exporter import BinanceCollector
from collector.exposition import Exposition
from collector.server import MetricsServer
from collector.rest_source import RestSource
from collector.records import Settings

pytestmark = pytest.mark.e2e

ENDPOINT = {"exchange": "/api/v3/exchangeInfo", "rankings": "/api/v3/ticker/24hr",
            "books": "/api/v3/depth", "spreads": "/api/v3/ticker/bookTicker"}
TTL = {"exchange": 3600, "rankings": 300, "books": 30, "spreads": 10}
RANKING_SERIES = {"binance_symbol_rank", "binance_symbol_quote_volume_24h",
                  "binance_symbol_base_volume_24h", "binance_symbol_trades_24h"}
SERIES = {
    # exchangeInfo has no series of its own: rankings keep its last good symbol metadata
    "exchange": set(),
    "rankings": RANKING_SERIES,
    "books": {"binance_order_book_notional", "binance_order_book_levels"},
    "spreads": {"binance_price_spread", "binance_price_spread_delta", "binance_price_spread_ratio",
                "binance_best_bid_price", "binance_best_ask_price"},
}
SCRAPE_TIMEOUT = 10.0
# the exporter's request timeout: the simulator's biggest answer (the 24 h ticker, 1.3 MB)
# takes 0.1 s, several times that on a busy machine; the latency and timeout faults below
# hold an answer back longer
CLIENT_TIMEOUT = 1.0
TOP_BTC = "ETHBTC"  # Q1's first symbol in the recorded source
TOP_USDT = "FLOKIUSDT"  # Q2's first


@dataclass(frozen=True)
class Expect:
    """What a fault does to a group: fail (with kind and code), or a documented source state."""

    kind: str | None = None  # error kind when the refresh fails
    code: str | None = None  # the HTTP code counted for the failed request
    state: str = "ok"  # when it does not fail: ok, no_spreads, zero_bids, ranking_changed

    def describe(self) -> str:
        return f"fails: {self.kind} ({self.code})" if self.kind else self.state.replace("_", " ")


def fail(kind: str, code: str) -> Expect:
    return Expect(kind, code)


OK = Expect()
ALL = ("exchange", "rankings", "books", "spreads")

# fault name, simulator parameters, {group: expected}; groups not listed are not hit
FAULTS: list[tuple[str, dict[str, Any], dict[str, Expect]]] = [
    ("latency beyond the timeout", {"name": "latency", "ms": 1500},
     dict.fromkeys(ALL, fail("unavailable", "error"))),
    ("timeout (connection held)", {"name": "timeout", "seconds": 2},
     dict.fromkeys(ALL, fail("unavailable", "error"))),
    ("connection reset mid-body", {"name": "reset"},
     dict.fromkeys(ALL, fail("unavailable", "200"))),
    ("connection closed at once", {"name": "close_immediately"},
     dict.fromkeys(ALL, fail("unavailable", "error"))),
    ("500", {"name": "error_5xx", "status": 500}, dict.fromkeys(ALL, fail("unavailable", "500"))),
    ("502 (HTML page)", {"name": "error_5xx", "status": 502},
     dict.fromkeys(ALL, fail("unavailable", "502"))),
    ("503", {"name": "error_5xx", "status": 503}, dict.fromkeys(ALL, fail("unavailable", "503"))),
    ("429 Retry-After 30", {"name": "status", "status": 429, "retry_after": 30},
     dict.fromkeys(ALL, fail("rate_limited", "429"))),
    ("418 Retry-After 30", {"name": "status", "status": 418, "retry_after": 30},
     dict.fromkeys(ALL, fail("rate_limited", "418"))),
    ("403 WAF limit, Retry-After 30", {"name": "status", "status": 403, "retry_after": 30},
     dict.fromkeys(ALL, fail("rate_limited", "403"))),
    ("451 restricted location", {"name": "status", "status": 451},
     dict.fromkeys(ALL, fail("restricted", "451"))),
    ("malformed JSON", {"name": "malformed_json"}, dict.fromkeys(ALL, fail("bad_response", "200"))),
    ("object where a list belongs", {"name": "wrong_type"},
     dict.fromkeys(ALL, fail("bad_response", "200"))),
    ("missing field", {"name": "missing_field", "field": "<per group>"},
     dict.fromkeys(ALL, fail("bad_response", "200"))),
    # prices are not among the fields exchangeInfo and the MINI ticker are used for
    ("non-numeric price", {"name": "non_numeric_price"},
     {"exchange": OK, "rankings": OK, "books": fail("bad_response", "200"),
      "spreads": fail("bad_response", "200")}),
    ("negative price", {"name": "negative_price"},
     {"exchange": OK, "rankings": OK, "books": fail("bad_response", "200"),
      "spreads": fail("bad_response", "200")}),
    # bookTicker's "0.00000000" is Binance's empty side; a depth level priced 0 is invalid
    ("zero price", {"name": "zero_price"},
     {"books": fail("bad_response", "200"), "spreads": Expect(state="no_spreads")}),
    ("empty bid side", {"name": "empty_book_side", "side": "bid"},
     {"books": Expect(state="zero_bids"), "spreads": Expect(state="no_spreads")}),
    ("crossed book", {"name": "crossed_book"},
     {"books": OK, "spreads": Expect(state="no_spreads")}),
    ("unknown symbol (-1121)", {"name": "unknown_symbol", "symbol": "<per group>"},
     {"books": fail("api_error", "400"), "spreads": fail("api_error", "400")}),
    ("symbol leaves the ranking", {"name": "drop_symbol", "symbol": TOP_USDT},
     {"rankings": Expect(state="ranking_changed")}),
]
MISSING_FIELD = {"exchange": "quoteAsset", "rankings": "quoteVolume", "books": "bids",
                 "spreads": "askPrice"}
UNKNOWN_SYMBOL = {"books": TOP_BTC, "spreads": TOP_USDT}
FAULT_NAMES = [name for name, _, _ in FAULTS]  # the matrix's rows, in this order
CASES = [(name, spec, group, expect) for name, spec, groups in FAULTS
         for group, expect in groups.items()]


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorProcess]:
    """One simulator for the matrix; prices frozen (one step a day) so values can be compared."""
    with running_simulator("--step-seconds", "86400", "--seed", "3") as handle:
        yield handle


class Scraper:
    """An exporter in this process (fake clock, real HTTP both ways) over the simulator."""

    def __init__(self, sim: SimulatorProcess) -> None:
        self.sim = sim
        self.clock = FakeClock()
        client = BinanceClient([sim.url], timeout=CLIENT_TIMEOUT, retries=1, backoff=0.05,
                               clock=self.clock, wall=self.clock.wall)
        self.source = RestSource(client, Settings(refresh_budget=8), clock=self.clock,
                             wall=self.clock.wall)
        self.server = MetricsServer("127.0.0.1", 0,
                                    Exposition(BinanceCollector(self.source))).start()

    def close(self) -> None:
        self.server.stop()
        self.source.close()

    def scrape(self) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
        """GET /metrics: must be 200 within the scrape timeout; {name: {labels: value}}."""
        started = time.monotonic()
        url = f"http://127.0.0.1:{self.server.port}/metrics"
        with urllib.request.urlopen(url, timeout=SCRAPE_TIMEOUT) as answer:
            assert answer.status == 200
            text = answer.read().decode()
        assert time.monotonic() - started < SCRAPE_TIMEOUT
        out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
        return out


@pytest.fixture
def scraper(sim: SimulatorProcess) -> Iterator[Scraper]:
    sim.clear_faults()
    sim.reset_stats()
    s = Scraper(sim)
    yield s
    s.close()
    sim.clear_faults()


def symbols_of(samples: dict[str, dict[Any, float]], name: str) -> set[str]:
    return {dict(labels)["symbol"] for labels in samples.get(name, {})}


def fetch(sim: SimulatorProcess, path: str, **params: str) -> Any:
    query = urllib.parse.urlencode(params)
    with urllib.request.urlopen(f"{sim.url}{path}?{query}", timeout=10) as answer:
        return json.load(answer)


def assert_values_are_the_simulators(sim: SimulatorProcess,
                                     samples: dict[str, dict[Any, float]]) -> None:
    """After recovery: spreads and notionals equal what the simulator serves now."""
    spreads = {dict(k)["symbol"]: v for k, v in samples["binance_price_spread"].items()}
    tops = fetch(sim, "/api/v3/ticker/bookTicker",
                 symbols=json.dumps(sorted(spreads), separators=(",", ":"), ensure_ascii=False))
    assert len(tops) == len(spreads) == 5
    for top in tops:
        exact = Decimal(top["askPrice"]) - Decimal(top["bidPrice"])
        assert spreads[top["symbol"]] == float(exact)
    book = fetch(sim, "/api/v3/depth", symbol=TOP_BTC, limit="200")
    bids = sum(Decimal(p) * Decimal(q) for p, q in book["bids"])
    key = (("quote_asset", "BTC"), ("side", "bid"), ("symbol", TOP_BTC))
    assert samples["binance_order_book_notional"][key] == float(bids)


def assert_outcome(expect: Expect, group: str, baseline: dict[str, Any],
                   during: dict[str, Any]) -> None:
    """The scrape while the fault is active shows exactly the expected outcome."""
    names = set(during)
    if expect.kind:
        assert during["binance_up"][()] == 0
        failures = during["binance_refresh_failures_total"]
        assert failures[(("group", group), ("kind", expect.kind))] == 1
        requests = during["binance_api_requests_total"]
        assert requests[(("code", expect.code), ("endpoint", ENDPOINT[group]))] >= 1
        assert not names & SERIES[group], "a failed group's series must be left out"
        if group == "exchange":
            assert RANKING_SERIES <= names
    elif expect.state == "no_spreads":
        assert during["binance_up"][()] == 1
        assert not names & SERIES["spreads"], "no made-up or negative spread"
    elif expect.state == "zero_bids":
        for name in ("binance_order_book_notional", "binance_order_book_levels"):
            assert {v for k, v in during[name].items() if ("side", "bid") in k} == {0.0}
    elif expect.state == "ranking_changed":
        assert TOP_USDT in symbols_of(baseline, "binance_price_spread")
        assert TOP_USDT not in symbols_of(during, "binance_symbol_rank")
        assert TOP_USDT not in symbols_of(during, "binance_price_spread")
    else:
        assert during["binance_up"][()] == 1
        assert SERIES[group] <= names


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-{c[2]}" for c in CASES])
def test_fault_matrix(case: tuple[str, dict[str, Any], str, Expect], scraper: Scraper,
                      sim: SimulatorProcess, record_property: Callable[[str, Any], None]) -> None:
    name, spec, group, expect = case
    scraper.scrape()
    scraper.clock.advance(10)
    baseline = scraper.scrape()  # deltas exist from here on
    assert baseline["binance_up"][()] == 1
    fault = dict(spec, endpoints=[ENDPOINT[group]])
    if fault.get("field") == "<per group>":
        fault["field"] = MISSING_FIELD[group]
    if fault.get("symbol") == "<per group>":
        fault["symbol"] = UNKNOWN_SYMBOL[group]
    wait = TTL[group]
    if group == "exchange" and expect.kind == "rate_limited":
        # exchangeInfo falls due alone, the other groups refreshed a second before: were the
        # 24 h ticker due too, it would go out beside exchangeInfo and race the 429/418/403,
        # whose cool-down refuses it if it comes first (right, but another case than this)
        scraper.clock.advance(TTL[group] - 10 - 1)  # 1 s before exchangeInfo's TTL runs out
        scraper.scrape()
        wait = 1
    sim.set_faults([fault])
    scraper.clock.advance(wait)
    assert_outcome(expect, group, baseline, scraper.scrape())

    if expect.kind == "rate_limited":
        sent = sim.stats()["requests_total"]
        for _ in range(2):  # groups fall due within the 30 s cool-down: failed, nothing sent
            scraper.clock.advance(10)
            assert scraper.scrape()["binance_up"][()] == 0
        assert sim.stats()["requests_total"] == sent

    sim.clear_faults()
    sim.reset_stats()  # also lifts the simulator's own ban
    scraper.clock.advance(TTL[group] + 31)  # past the retry delay and any cool-down
    after = scraper.scrape()
    assert after["binance_up"][()] == 1
    if expect.state == "no_spreads":  # spreads are back; deltas from their second observation
        assert "binance_price_spread" in after and "binance_price_spread_delta" not in after
        scraper.clock.advance(10)
        after = scraper.scrape()
    assert all(series <= set(after) for series in SERIES.values())
    assert_values_are_the_simulators(sim, after)
    record_property(FAULT_MATRIX_ROW, (FAULT_NAMES.index(name), name, group, expect.describe()))


def test_connection_refused_fails_every_group_and_recovers(
        sim: SimulatorProcess, record_property: Callable[[str, Any], None]) -> None:
    """Nothing listens at the base URL: all groups fail, /metrics still answers."""
    clock = FakeClock()
    client = BinanceClient(["http://127.0.0.1:9"], timeout=0.5, retries=1, backoff=0.05,
                           clock=clock, wall=clock.wall)
    source = RestSource(client, clock=clock, wall=clock.wall)
    registry = CollectorRegistry()
    registry.register(BinanceCollector(source))
    text = "".join(f"{m.name} {s.value}\n" for m in registry.collect() for s in m.samples
                   if m.name in ("binance_up",))
    source.close()
    assert text == "binance_up 0\n"
    counts = client.request_counts()
    assert counts[("/api/v3/exchangeInfo", "error")] == 2
    assert counts[("/api/v3/ticker/24hr", "error")] == 2
    assert ("/api/v3/depth", "error") not in counts  # no ranking: nothing to ask for
    record_property(FAULT_MATRIX_ROW, (len(FAULT_NAMES), "connection refused", "all",
                                       "fails: unavailable (error)"))
    del sim


REPORT_FAULTS = [spec for name, spec, groups in FAULTS
                 if any(e.kind for e in groups.values()) and "<per group>" not in spec.values()]


@pytest.mark.parametrize("spec", REPORT_FAULTS, ids=[s["name"] + str(s.get("status", ""))
                                                     for s in REPORT_FAULTS])
def test_report_exits_1_with_one_line_for_each_fault(
    spec: dict[str, Any], sim: SimulatorProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.clear_faults()
    sim.reset_stats()
    sim.set_faults([spec])
    code = report.main(["--base-url", sim.url, "--count", "0", "--timeout", "0.5",
                        "--retries", "0"], out=io.StringIO())
    sim.clear_faults()
    err = capsys.readouterr().err.splitlines()
    assert code == 1
    assert err[0].startswith("binance-report: /api/v3/")
    assert len(err) == (2 if spec.get("status") == 451 else 1)  # 451: what to try instead
