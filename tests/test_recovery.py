"""Recovery, against the simulator: after an outage that began at start-up, after every kind
of rate-limit cool-down, and with a Unicode symbol in Q2 from request to label.

The exporter runs in this process on a fake clock (so an hour of outage takes no time) and
talks real HTTP to a real simulator process; the simulator's own request counts prove what
was, and was not, sent.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
from typing import Any, Callable, Iterator

import pytest
from conftest import FakeClock
from e2e_support import BIN, Lines
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from binance_simulator.testkit import SimulatorProcess, popen, running_simulator

from collector.binance import BinanceClient
from collector.exporter import BinanceCollector
from collector.rest_source import RestSource
from collector.records import Settings

pytestmark = pytest.mark.e2e

UNICODE = "币安人生USDT"  # third in the simulator's Q2 (tools/trim_simulator_data.py)


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorProcess]:
    # the fake clock puts hours of requests into a few real seconds: the simulator's own
    # per-minute weight limit (real time) must not be what the tests measure
    with running_simulator("--seed", "11", "--weight-limit", "10000000") as handle:
        yield handle


class CollectorOnSimulator:
    """A collector over the simulator on a fake clock; scrape() is one Prometheus scrape."""

    def __init__(self, sim: SimulatorProcess, settings: Settings = Settings()) -> None:
        self.clock = FakeClock()
        client = BinanceClient([sim.url], timeout=2, retries=0, clock=self.clock,
                               wall=self.clock.wall)
        self.source = RestSource(client, dataclasses.replace(settings, refresh_budget=8),
                                clock=self.clock, wall=self.clock.wall)
        self.registry = CollectorRegistry()
        self.registry.register(BinanceCollector(self.source))

    def scrape(self) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
        out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
        text = generate_latest(self.registry).decode()
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
        return out

    def up(self) -> float:
        return self.scrape()["binance_up"][()]


@pytest.fixture
def exporter(sim: SimulatorProcess) -> Iterator[CollectorOnSimulator]:
    sim.clear_faults()
    sim.reset_stats()
    e = CollectorOnSimulator(sim)
    yield e
    e.source.close()
    sim.clear_faults()


def spreads_of(samples: dict[str, Any]) -> set[str]:
    return {dict(labels)["symbol"] for labels in samples.get("binance_price_spread", {})}


def test_an_exporter_started_during_an_outage_recovers_within_a_minute(
        sim: SimulatorProcess, exporter: CollectorOnSimulator) -> None:
    """Binance unreachable for the first two hours: it comes back, and within 60 s of that
    every group is up again (not after exchangeInfo's one-hour TTL)."""
    sim.set_faults([{"name": "close_immediately"}])
    for _ in range(720):  # two hours of Prometheus scrapes, every 10 s
        assert exporter.up() == 0
        exporter.clock.advance(10)
    sent = sim.stats()["requests_total"]
    assert sent <= 2 * (7200 // 60 + 4)  # exchangeInfo and the ticker, at most once a minute
    # the worst moment for Binance to come back: just after a failed attempt
    while sim.stats()["requests_total"] == sent:
        exporter.up()
        exporter.clock.advance(1)
    sim.clear_faults()
    back = exporter.clock.now
    while exporter.up() == 0:
        exporter.clock.advance(1)
        assert exporter.clock.now - back <= 60
    assert len(spreads_of(exporter.scrape())) == 5


@pytest.mark.parametrize(("status", "retry_after", "cool_down"), [
    (429, 45, 45), (418, 45, 45), (403, 45, 45), (403, 0, 60)])
def test_after_a_cool_down_the_first_scrape_recovers_every_group(
        sim: SimulatorProcess, status: int, retry_after: int, cool_down: int) -> None:
    """Nothing is sent while it lasts; with a scrape every second, the first scrape after its
    end has binance_up 1 and all five spreads (403 without Retry-After: 60 s). TTLs of 30 s
    make every group fall due, and fail unsent, inside the cool-down."""
    sim.clear_faults()
    exporter = CollectorOnSimulator(sim, Settings(ttl_exchange=30, ttl_rankings=30))
    assert exporter.up() == 1
    exporter.clock.advance(10)  # the spreads are due
    sim.set_faults([{"name": "status", "status": status, "retry_after": retry_after}])
    limited = exporter.scrape()
    assert limited["binance_up"][()] == 0
    assert limited["binance_api_cool_down_seconds"][()] == cool_down
    sim.clear_faults()  # Binance would answer again: we must still wait
    sent = sim.stats()["requests_total"]
    for _ in range(cool_down - 1):
        exporter.clock.advance(1)
        assert exporter.up() == 0
    assert sim.stats()["requests_total"] == sent
    failures = exporter.scrape()["binance_refresh_failures_total"]
    assert {dict(k)["group"] for k in failures if ("kind", "rate_limited") in k} == {
        "exchange", "rankings", "books", "spreads"}
    exporter.clock.advance(1)
    samples = exporter.scrape()
    assert samples["binance_up"][()] == 1
    assert len(spreads_of(samples)) == 5
    refreshed = samples["binance_last_refresh_timestamp_seconds"]
    assert {dict(k)["group"] for k, v in refreshed.items() if v == exporter.clock.wall()} == {
        "exchange", "rankings", "books", "spreads"}
    exporter.source.close()


def test_a_unicode_symbol_goes_from_request_to_label_unchanged(
        sim: SimulatorProcess, exporter: CollectorOnSimulator) -> None:
    """It is third in Q2: bookTicker must carry it as UTF-8, /metrics must show it as is."""
    samples = exporter.scrape()
    assert samples["binance_up"][()] == 1
    assert UNICODE in spreads_of(samples)
    ranks = {dict(k)["symbol"]: v for k, v in samples["binance_symbol_rank"].items()
             if ("ranking", "trades") in k}
    assert ranks[UNICODE] == 3
    text = generate_latest(exporter.registry).decode()
    assert f'binance_price_spread{{quote_asset="USDT",symbol="{UNICODE}"}}' in text
    requests = sim.stats()["requests"]
    assert requests["/api/v3/ticker/bookTicker"] == {"200": 1}


def wait_for(lines: Lines, wanted: Callable[[str], bool], most: int = 60) -> str:
    """The first of the next ``most`` lines that is ``wanted``."""
    for _ in range(most):
        line = lines.next()
        if wanted(line):
            return line
    raise AssertionError(f"none of {most} lines was the one wanted")


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_the_open_ended_report_survives_a_failed_tick(sim: SimulatorProcess, fmt: str) -> None:
    """binance-report as a real process, left running: bookTicker fails, then recovers; the
    log notes the failure and goes on; SIGTERM ends it with 0 (as Ctrl-C)."""
    sim.clear_faults()
    command = [str(BIN / "binance-report"), "--base-url", sim.url, "--interval", "1",
               "--retries", "0", "--format", fmt]
    with popen(command, stdout=subprocess.PIPE, text=True) as process:
        lines = Lines(process.stdout)
        if fmt == "json":
            assert UNICODE in json.loads(lines.next())["spreads"]  # Q1-Q4, Unicode intact
            good = wait_for(lines, lambda line: '"spreads"' in line)
        else:
            wait_for(lines, lambda line: line.startswith("Q5"))
            good = wait_for(lines, lambda line: UNICODE in line)
        sim.set_faults([{"name": "error_5xx", "status": 503,
                         "endpoints": ["/api/v3/ticker/bookTicker"]}])
        failed = wait_for(lines, lambda line: "error" in line)
        sim.clear_faults()
        again = wait_for(lines, lambda line: UNICODE in line and "error" not in line)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    if fmt == "json":
        assert json.loads(good)["spreads"][UNICODE]
        error = json.loads(failed)
        assert set(error) == {"time", "error"} and "HTTP 503" in error["error"]
        assert json.loads(again)["deltas"][UNICODE] is not None  # from the last good tick
    else:
        assert "error: /api/v3/ticker/bookTicker: HTTP 503" in failed
        assert again.split()[1] == UNICODE
