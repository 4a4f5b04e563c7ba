"""Benchmark 5: memory over many refreshes of every group, in a fresh process.

``python -m bench.memory URL REFRESHES`` (started by :func:`measure`) builds
a ``Market`` + ``BinanceCollector`` against the simulator at URL, then for
each refresh renders the metrics with ``generate_latest`` and moves a fake
clock past every TTL, so the next render refreshes all four groups with real
HTTP. It prints one JSON line: VmRSS every 20 refreshes and VmHWM (peak).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from collector.binance import BinanceClient
from collector.exporter import BinanceCollector
from collector.market import Market, Settings

from bench.common import ROOT, BenchError, FakeClock, memory_kb
from bench.figures import Figure
from bench.procs import NO_RATE_LIMIT, simulator

SECTION = "5"
LIMIT_MB = 60.0
FLAT_PERCENT = 5.0
EVERY = 20
CHILD_TIMEOUT = 300.0


def measure(scratch: Path, refreshes: int) -> tuple[list[Figure], str]:
    """Peak RSS and growth between refresh 20 and the last, from a child process."""
    with simulator(scratch, "memory", *NO_RATE_LIMIT) as sim:
        done = subprocess.run([sys.executable, "-m", "bench.memory", sim.url, str(refreshes)],
                              capture_output=True, text=True, cwd=ROOT, check=False,
                              timeout=CHILD_TIMEOUT)
    if done.returncode != 0:
        raise BenchError(f"bench.memory failed: {done.stderr[-1000:]}")
    found = json.loads(done.stdout.splitlines()[-1])
    rss = {int(n): kb / 1024 for n, kb in found["rss_kb"].items()}
    first, last = rss[EVERY], rss[max(rss)]
    growth = (last - first) / first * 100
    peak = found["hwm_kb"] / 1024
    figures = [
        Figure(SECTION, f"peak RSS (VmHWM) after {max(rss)} refreshes, in-process", (peak,),
               "MB", f"≤ {LIMIT_MB:g}", peak <= LIMIT_MB,
               note=f"RSS {first:.1f} MB after {EVERY}, {last:.1f} MB after {max(rss)}"),
        Figure(SECTION, f"RSS growth, refresh {EVERY} → {max(rss)}", (growth,), "%",
               f"≤ {FLAT_PERCENT:g} %", abs(growth) <= FLAT_PERCENT),
    ]
    curve = ", ".join(f"{n}: {mb:.1f}" for n, mb in sorted(rss.items()))
    return figures, f"VmRSS (MB) after N refreshes: {curve}; took {found['seconds']:.1f} s."


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
    started = time.perf_counter()
    try:
        for n in range(1, refreshes + 1):
            if b"\nbinance_up 1.0\n" not in generate_latest(registry):
                raise BenchError(f"refresh {n} failed")
            clock.advance(longest_ttl + 1)
            if n % EVERY == 0:
                rss[n] = memory_kb()["VmRSS"]
    finally:
        market.close()
    return {"rss_kb": rss, "hwm_kb": memory_kb()["VmHWM"],
            "seconds": time.perf_counter() - started}


if __name__ == "__main__":
    print(json.dumps(refresh_many(sys.argv[1], int(sys.argv[2]))))
