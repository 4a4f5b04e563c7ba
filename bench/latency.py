"""Benchmark 1: refresh latency, in round trips of the simulator's latency L.

* cold: the first snapshot of a new ``RestSource`` (exchangeInfo, 24 h ticker,
  books, spreads): target 3 L + 100 ms (two rounds of parallel calls + CPU);
* spread-only: a snapshot after a fake clock passed the spreads' TTL only:
  target 1 L + 20 ms (one bookTicker call);

both in-process, with real HTTP to a simulator process, repeated; plus the
first ``/metrics`` scrape of freshly started real exporters as a cross-check,
and one bookTicker GET on a kept-alive connection as the upstream's own floor.
The same refreshes against a simulator without added latency (L = 0) tell the
fixed CPU part from the part that grows with L: round trips.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from collector.binance import BinanceClient
from collector.records import Settings, Snapshot
from collector.rest_source import RestSource

from binance_simulator.testkit import FakeClock

from bench.common import BenchError, median
from bench.figures import Figure
from bench.procs import NO_RATE_LIMIT, exporter, scrape, simulator

SECTION = "1"
FLOOR_SYMBOLS = ("BTCUSDT",)


def measure(scratch: Path, latency_ms: int, runs: int, cross_checks: int) -> list[Figure]:
    """Every latency figure at L, plus the L = 0 baseline."""
    with simulator(scratch, "latency-zero", *NO_RATE_LIMIT) as zero, \
            simulator(scratch, "latency", "--latency-ms", str(latency_ms),
                      *NO_RATE_LIMIT) as delayed:
        cold0, warm0 = zip(*(cold_and_warm(zero.url) for _ in range(runs)))
        cold, warm = zip(*(cold_and_warm(delayed.url) for _ in range(runs)))
        real = [real_cold_scrape(scratch, delayed.url) for _ in range(cross_checks)]
        floor = bookticker_floor(delayed.url, runs)
    rounds = Rounds(latency_ms, median(cold0) * 1000, median(warm0) * 1000)
    cold_limit = ("3L+100", 3 * latency_ms + 100.0)
    return [
        rounds.figure("cold refresh at L = 0, in-process", cold0),
        rounds.figure("spread-only refresh at L = 0, in-process", warm0),
        rounds.figure("cold refresh, in-process", cold, cold_limit),
        rounds.figure("cold first scrape, real exporter", real, cold_limit),
        rounds.figure("spread-only refresh, in-process", warm, ("1L+20", latency_ms + 20.0),
                      warm=True),
        rounds.figure("one bookTicker GET on a kept-alive connection", floor, warm=True),
    ]


@dataclass(frozen=True)
class Rounds:
    """Turns seconds into figures, with the round trips they amount to.

    Round trips = (time at L − median time at L = 0) / L, i.e. the time that
    grows with the latency; the L = 0 time is CPU (the exporter's and the
    simulator's, e.g. ~50 ms to generate a 2,519-symbol ticker) and loopback I/O.
    """

    latency_ms: int
    cold0_ms: float
    warm0_ms: float

    def figure(self, name: str, seconds: Sequence[float],
               limit: tuple[str, float] | None = None, warm: bool = False) -> Figure:
        """A figure in ms; ``limit`` is (formula, ms); ``warm`` picks the L = 0 baseline."""
        values = tuple(s * 1000 for s in seconds)
        middle = median(values)
        base = self.warm0_ms if warm else self.cold0_ms
        note = ""
        if self.latency_ms and "L = 0" not in name:
            note = (f"median = {middle / self.latency_ms:.2f} L = "
                    f"{(middle - base) / self.latency_ms:.1f} round trips + {base:.0f} ms")
        return Figure(SECTION, name, values, "ms",
                      target=f"≤ {limit[0]} = {limit[1]:g} ms" if limit else "",
                      passed=None if limit is None else middle <= limit[1], note=note)


GROUPS = ("exchange", "rankings", "books", "spreads")  # a snapshot's data groups


def cold_and_warm(url: str) -> tuple[float, float]:
    """Seconds of a new source's first snapshot, then of a spread-only refresh."""
    clock = FakeClock()
    settings = Settings()
    source = RestSource(BinanceClient([url]), settings, clock=clock)
    try:
        cold, snapshot = _timed(source)
        _expect(snapshot, set(GROUPS))
        clock.advance(settings.ttl_spreads + 0.5)  # the spreads expire, nothing else does
        warm, snapshot = _timed(source)
        _expect(snapshot, {"spreads"})
    finally:
        source.close()
    return cold, warm


def _timed(source: RestSource) -> tuple[float, Snapshot]:
    started = time.perf_counter()
    snapshot = source.snapshot()
    return time.perf_counter() - started, snapshot


def _expect(snapshot: Snapshot, refreshed: set[str]) -> None:
    if snapshot.errors():
        raise BenchError(f"refresh failed: {snapshot.errors()[0]}")
    actual = {name for name in GROUPS if getattr(snapshot, name).refreshed}
    if actual != refreshed:
        raise BenchError(f"refreshed {sorted(actual)}, expected {sorted(refreshed)}")


def real_cold_scrape(scratch: Path, upstream: str) -> float:
    """Seconds of the first ``/metrics`` scrape of a freshly started exporter."""
    with exporter(scratch, "latency", upstream) as running:
        status, seconds, body = scrape(running.url)
    if status != 200 or b"\nbinance_up 1.0\n" not in body:
        raise BenchError(f"cold scrape answered {status} without binance_up 1")
    return seconds


def bookticker_floor(url: str, runs: int) -> list[float]:
    """Seconds of single bookTicker calls through the client, on a kept-alive connection."""
    client = BinanceClient([url])
    client.book_tickers(FLOOR_SYMBOLS)  # opens the connection
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        client.book_tickers(FLOOR_SYMBOLS)
        times.append(time.perf_counter() - started)
    return times
