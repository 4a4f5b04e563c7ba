"""Benchmark 5: memory over many refreshes of every group, in fresh processes.

``python -m bench.memory URL REFRESHES VARIANT`` (started by :func:`measure`,
``RUNS`` times per variant) builds a ``RestSource`` + ``BinanceCollector`` against
the simulator at URL,
then for each refresh renders the metrics with ``generate_latest`` and moves a
fake clock past every TTL, so the next render refreshes all four groups with
real HTTP. It prints one JSON line: VmRSS and the number of live Python memory
blocks (``sys.getallocatedblocks``) every 20 refreshes, and VmHWM (peak).

Why both: RSS also moves with the allocator. CPython's small-object allocator
takes memory in 1 MiB arenas and can only return an arena once every object in
it is gone, so RSS can rise by an arena or two when a refresh's short-lived
objects fragment one, then stay flat. A leak grows the live blocks; a
fragmentation step does not.

Variants, side by side in one run: ``now``, the client as it is, asking for
TRADING symbols only and no permission sets; ``before``, the same client
asking for every symbol with its permission sets, as it did until 2026-11
(exchangeInfo and the ticker are most of what a refresh allocates).
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest

from collector import binance
from collector.binance import BinanceClient
from collector.exporter import BinanceCollector
from collector.records import Settings
from collector.rest_source import RestSource

from binance_simulator.testkit import FakeClock

from bench.common import ROOT, BenchError, median, memory_kb
from bench.figures import Figure
from bench.procs import NO_RATE_LIMIT, simulator

SECTION = "5"
LIMIT_MB = 60.0
FLAT_PERCENT = 5.0
EVERY = 20
CHILD_TIMEOUT = 300.0
RUNS = 3  # fresh processes: the allocator's steps differ from run to run
VARIANTS = {
    "now": (binance.EXCHANGE_INFO_PARAMS, binance.TICKER_24H_PARAMS),
    "before": ({}, {"type": "MINI"}),
}


def measure(scratch: Path, refreshes: int, runs: int = RUNS) -> tuple[list[Figure], str]:
    """Peak RSS, and growth of RSS and of live blocks between refresh 20 and the last,
    for the client as it is (judged) and as it was (shown beside it)."""
    results: dict[str, list[dict[str, object]]] = {name: [] for name in VARIANTS}
    with simulator(scratch, "memory", *NO_RATE_LIMIT) as sim:
        for _ in range(runs):  # interleaved, so that a noisy minute hits both alike
            for variant, found in results.items():
                done = subprocess.run([sys.executable, "-m", "bench.memory", sim.url,
                                       str(refreshes), variant], capture_output=True,
                                      text=True, cwd=ROOT, check=False, timeout=CHILD_TIMEOUT)
                if done.returncode != 0:
                    raise BenchError(f"bench.memory failed: {done.stderr[-1000:]}")
                found.append(json.loads(done.stdout.splitlines()[-1]))
    figures: list[Figure] = []
    curves = []
    for variant, found in results.items():
        more, text = _figures(found, judged=variant == "now",
                              label="" if variant == "now" else " (before: all symbols)")
        figures += more
        curves.append(f"{variant}:\n{text}")
    return figures, "\n\n".join(curves)


def _figures(results: list[dict[str, Any]], judged: bool, label: str
             ) -> tuple[list[Figure], str]:
    rss = [{int(n): kb / 1024 for n, kb in found["rss_kb"].items()} for found in results]
    blocks = [{int(n): count for n, count in found["blocks"].items()} for found in results]
    last = max(rss[0])
    peaks = tuple(found["hwm_kb"] / 1024 for found in results)
    growth = tuple(_growth(curve) for curve in rss)

    def verdict(ok: bool) -> bool | None:
        return ok if judged else None

    figures = [
        Figure(SECTION, f"peak RSS (VmHWM) after {last} refreshes, in-process{label}", peaks,
               "MB", f"≤ {LIMIT_MB:g}" if judged else "", verdict(median(peaks) <= LIMIT_MB),
               note=f"RSS after {EVERY}: {_spread([c[EVERY] for c in rss])} MB, after "
               f"{last}: {_spread([c[last] for c in rss])} MB"),
        Figure(SECTION, f"RSS growth, refresh {EVERY} → {last}{label}", growth, "%",
               f"≤ {FLAT_PERCENT:g} %" if judged else "",
               verdict(abs(median(growth)) <= FLAT_PERCENT)),
    ]
    if all(curve[EVERY] for curve in blocks):  # 0 when pymalloc is off (PYTHONMALLOC=malloc)
        live = tuple(_growth(curve) for curve in blocks)
        figures.append(Figure(
            SECTION, f"live Python blocks growth, refresh {EVERY} → {last} (leak check){label}",
            live, "%", f"≤ {FLAT_PERCENT:g} %" if judged else "",
            verdict(abs(median(live)) <= FLAT_PERCENT),
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


def refresh_many(url: str, refreshes: int, variant: str = "now") -> dict[str, object]:
    """Refresh every group ``refreshes`` times; RSS every ``EVERY`` refreshes."""
    binance.EXCHANGE_INFO_PARAMS, binance.TICKER_24H_PARAMS = VARIANTS[variant]
    clock = FakeClock()
    settings = Settings()
    longest_ttl = max(settings.ttl_exchange, settings.ttl_rankings, settings.ttl_books,
                      settings.ttl_spreads)
    source = RestSource(BinanceClient([url]), settings, clock=clock)
    registry = CollectorRegistry(auto_describe=True)
    registry.register(BinanceCollector(source))
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
        source.close()
    return {"rss_kb": rss, "blocks": blocks, "hwm_kb": memory_kb()["VmHWM"],
            "seconds": time.perf_counter() - started}


if __name__ == "__main__":
    print(json.dumps(refresh_many(sys.argv[1], int(sys.argv[2]), sys.argv[3])))
