"""Benchmark 5: memory over many refreshes of every group, in fresh processes.

``python -m bench.memory URL REFRESHES`` (started by :func:`measure`, ``RUNS``
times) builds a ``Market`` + ``BinanceCollector`` against the simulator at URL,
then for each refresh renders the metrics with ``generate_latest`` and moves a
fake clock past every TTL, so the next render refreshes all four groups with
real HTTP. It prints one JSON line: VmRSS and the number of live Python memory
blocks (``sys.getallocatedblocks``) every 20 refreshes, and VmHWM (peak).

Why both: RSS also moves with the allocator. CPython's small-object allocator
takes memory in 1 MiB arenas and can only return an arena once every object in
it is gone, so RSS can rise by an arena or two when a refresh's short-lived
objects fragment one, then stay flat. A leak grows the live blocks; a
fragmentation step does not.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from collector.binance import BinanceClient
from collector.exporter import BinanceCollector
from collector.market import Market, Settings

from bench.common import ROOT, BenchError, FakeClock, median, memory_kb
from bench.figures import Figure
from bench.procs import NO_RATE_LIMIT, simulator

SECTION = "5"
LIMIT_MB = 60.0
FLAT_PERCENT = 5.0
EVERY = 20
CHILD_TIMEOUT = 300.0
RUNS = 3  # fresh processes: the allocator's steps differ from run to run


def measure(scratch: Path, refreshes: int, runs: int = RUNS) -> tuple[list[Figure], str]:
    """Peak RSS, and growth of RSS and of live blocks between refresh 20 and the last."""
    results = []
    with simulator(scratch, "memory", *NO_RATE_LIMIT) as sim:
        for _ in range(runs):
            done = subprocess.run([sys.executable, "-m", "bench.memory", sim.url,
                                   str(refreshes)], capture_output=True, text=True, cwd=ROOT,
                                  check=False, timeout=CHILD_TIMEOUT)
            if done.returncode != 0:
                raise BenchError(f"bench.memory failed: {done.stderr[-1000:]}")
            results.append(json.loads(done.stdout.splitlines()[-1]))
    rss = [{int(n): kb / 1024 for n, kb in found["rss_kb"].items()} for found in results]
    blocks = [{int(n): count for n, count in found["blocks"].items()} for found in results]
    last = max(rss[0])
    peaks = tuple(found["hwm_kb"] / 1024 for found in results)
    growth = tuple(_growth(curve) for curve in rss)
    figures = [
        Figure(SECTION, f"peak RSS (VmHWM) after {last} refreshes, in-process", peaks,
               "MB", f"≤ {LIMIT_MB:g}", median(peaks) <= LIMIT_MB,
               note=f"RSS after {EVERY}: {_spread([c[EVERY] for c in rss])} MB, after "
               f"{last}: {_spread([c[last] for c in rss])} MB"),
        Figure(SECTION, f"RSS growth, refresh {EVERY} → {last}", growth, "%",
               f"≤ {FLAT_PERCENT:g} %", abs(median(growth)) <= FLAT_PERCENT),
    ]
    if all(curve[EVERY] for curve in blocks):  # 0 when pymalloc is off (PYTHONMALLOC=malloc)
        live = tuple(_growth(curve) for curve in blocks)
        figures.append(Figure(
            SECTION, f"live Python blocks growth, refresh {EVERY} → {last} (leak check)",
            live, "%", f"≤ {FLAT_PERCENT:g} %", abs(median(live)) <= FLAT_PERCENT,
            note=f"{median([c[last] for c in blocks]):,.0f} blocks after {last}"))
    curves = "\n".join(
        f"- run {i}: VmRSS (MB) after N refreshes: "
        + ", ".join(f"{n}: {mb:.1f}" for n, mb in sorted(curve.items()))
        + f"; took {found['seconds']:.1f} s."
        for i, (curve, found) in enumerate(zip(rss, results), 1))
    return figures, curves


def _growth(curve: dict[int, float]) -> float:
    """Percent change from refresh ``EVERY`` to the last sample."""
    return (curve[max(curve)] - curve[EVERY]) / curve[EVERY] * 100


def _spread(values: list[float]) -> str:
    return "/".join(f"{v:.1f}" for v in values)


def refresh_many(url: str, refreshes: int) -> dict[str, object]:
    """Refresh every group ``refreshes`` times; RSS every ``EVERY`` refreshes."""
    clock = FakeClock()
    settings = Settings()
    longest_ttl = max(settings.ttl_exchange, settings.ttl_rankings, settings.ttl_books,
                      settings.ttl_spreads)
    market = Market(BinanceClient([url]), settings, clock=clock)
    registry = CollectorRegistry(auto_describe=True)
    registry.register(BinanceCollector(market))
    rss: dict[int, int] = {}
    blocks: dict[int, int] = {}
    started = time.perf_counter()
    try:
        for n in range(1, refreshes + 1):
            if b"\nbinance_up 1.0\n" not in generate_latest(registry):
                raise BenchError(f"refresh {n} failed")
            clock.advance(longest_ttl + 1)
            if n % EVERY == 0:
                gc.collect()  # count live objects, not garbage awaiting the cyclic collector
                rss[n] = memory_kb()["VmRSS"]
                blocks[n] = sys.getallocatedblocks()
    finally:
        market.close()
    return {"rss_kb": rss, "blocks": blocks, "hwm_kb": memory_kb()["VmHWM"],
            "seconds": time.perf_counter() - started}


if __name__ == "__main__":
    print(json.dumps(refresh_many(sys.argv[1], int(sys.argv[2]))))
