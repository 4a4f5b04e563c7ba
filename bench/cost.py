"""Benchmark 2: request weight per minute spent upstream, by the simulator's own accounting.

Two scenarios run at the same time, each with its own simulator and exporter
process at default TTLs: (a) 1 scraper every 15 s, (b) 10 scrapers every 1 s
(staggered by 0.1 s, like unsynchronised Prometheus servers). The weight is
read from each simulator at every minute mark; nothing is excluded, and the
steady state (minutes 2 onwards, without the cold start) is shown beside it.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from binance_simulator.testkit import Process, SimulatorProcess

from bench.common import memory_kb
from bench.figures import Figure
from bench.procs import exporter, scrape, simulator

SECTION = "2"
LIMIT = 300.0  # weight per minute
ONE_REFRESH = 125.0  # the largest refresh: five depth?limit=200 calls


@dataclass(frozen=True)
class Scenario:
    """``scrapers`` clients, each scraping every ``interval`` seconds."""

    name: str
    scrapers: int
    interval: float


SCENARIOS = (Scenario("a", 1, 15.0), Scenario("b", 10, 1.0))


@dataclass
class Run:  # pylint: disable=too-many-instance-attributes
    """One scenario's processes and what was seen."""

    scenario: Scenario
    sim: SimulatorProcess
    exporter: Process
    weights: list[int] = field(default_factory=list)  # cumulative, at each minute mark
    scrapes: Counter[str] = field(default_factory=Counter)  # by HTTP status
    latencies: list[float] = field(default_factory=list)  # seconds, of each 200
    lock: threading.Lock = field(default_factory=threading.Lock)
    stats: dict[str, Any] = field(default_factory=dict)
    memory: dict[str, int] = field(default_factory=dict)

    def per_minute(self) -> list[float]:
        """Weight spent in each minute."""
        return [later - earlier for earlier, later in zip([0, *self.weights], self.weights)]


def measure(scratch: Path, latency_ms: int, minutes: int) -> tuple[list[Figure], str]:
    """The cost figures and a Markdown detail section."""
    with ExitStack() as stack:
        runs = []
        for scenario in SCENARIOS:
            sim = stack.enter_context(simulator(scratch, f"cost-{scenario.name}",
                                                "--latency-ms", str(latency_ms)))
            served = stack.enter_context(exporter(scratch, f"cost-{scenario.name}", sim.url))
            runs.append(Run(scenario, sim, served))
        drive(runs, minutes)
        for run in runs:
            run.stats = run.sim.stats()
            run.memory = memory_kb(run.exporter.pid)
    return _figures(runs, minutes), _details(runs)


def drive(runs: list[Run], minutes: int) -> None:
    """Scrape on schedule for ``minutes``, reading the weight at every minute mark."""
    for run in runs:
        run.sim.reset_stats()
    start = time.monotonic()
    end = start + 60 * minutes
    threads = [
        threading.Thread(target=_scraper, args=(run, start + i * 0.1, end), daemon=True)
        for run in runs for i in range(run.scenario.scrapers)
    ]
    for thread in threads:
        thread.start()
    for minute in range(1, minutes + 1):
        time.sleep(max(0.0, start + 60 * minute - time.monotonic()))
        if minute == minutes:
            for thread in threads:
                thread.join(timeout=30)
        for run in runs:
            run.weights.append(int(run.sim.stats()["weight_total"]))


def _scraper(run: Run, first: float, end: float) -> None:
    """Scrape at ``first``, then every interval, until ``end`` (bounded by time and count)."""
    at = first
    while at < end:
        time.sleep(max(0.0, at - time.monotonic()))
        seconds = None
        try:
            code, seconds, _ = scrape(run.exporter.url)
            status = str(code)
        except OSError as exc:
            status = type(exc).__name__
        with run.lock:
            run.scrapes[status] += 1
            if status == "200" and seconds is not None:
                run.latencies.append(seconds)
        at += run.scenario.interval


def _figures(runs: list[Run], minutes: int) -> list[Figure]:
    figures = []
    rates = {}
    for run in runs:
        s = run.scenario
        plural = "s" if s.scrapers > 1 else ""
        label = f"({s.name}) {s.scrapers} scraper{plural} every {s.interval:g} s"
        per_minute = run.per_minute()
        rate = run.weights[-1] / minutes
        rates[s.name] = rate
        figures.append(Figure(
            SECTION, f"weight/min over {minutes} min, all included {label}", (rate,),
            "weight/min", f"≤ {LIMIT:g}", rate <= LIMIT, digits=0,
            note=f"per minute {'/'.join(str(int(w)) for w in per_minute)}"))
        if minutes > 1:
            steady = sum(per_minute[1:]) / (minutes - 1)
            figures.append(Figure(
                SECTION, f"weight/min from minute 2 on (steady) {label}", (steady,),
                "weight/min", f"≤ {LIMIT:g}", steady <= LIMIT, digits=0,
                note="mean of minutes 2 onwards"))
    gap = abs(rates["a"] - rates["b"])
    figures.append(Figure(SECTION, "|(a) − (b)|, weight/min over the whole run", (gap,),
                          "weight/min", f"≤ {ONE_REFRESH:g} (one books refresh)",
                          gap <= ONE_REFRESH, digits=0))
    for run in runs:
        figures.append(Figure(
            "5", f"RSS of the real exporter after the cost run ({run.scenario.name})",
            (run.memory["VmRSS"] / 1024,), "MB", "≤ 60", run.memory["VmHWM"] / 1024 <= 60,
            note=f"peak {run.memory['VmHWM'] / 1024:.1f} MB"))
    return figures


def _details(runs: list[Run]) -> str:
    lines = ["| scenario | scrapes by status | upstream requests by endpoint (all answered 200?) "
             "| weight at each minute mark |", "|---|---|---|---|"]
    for run in runs:
        scrapes = ", ".join(f"{status}: {n}" for status, n in sorted(run.scrapes.items()))
        by_endpoint = {path.rsplit("/", 1)[-1]: counts
                       for path, counts in run.stats["requests"].items()}
        requests = ", ".join(f"{name}: {sum(counts.values())}"
                             for name, counts in sorted(by_endpoint.items()))
        all_ok = all(set(counts) == {"200"} for counts in by_endpoint.values())
        weights = ", ".join(map(str, run.weights))
        answered = "yes" if all_ok else "NO"
        lines.append(f"| ({run.scenario.name}) | {scrapes} | {requests} ({answered}) | {weights} |")
    return "\n".join(lines)
