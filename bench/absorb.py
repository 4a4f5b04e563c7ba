"""A real :class:`~collector.stream_source.StreamSource` against :mod:`bench.blaster`, one core.

``python -m bench.absorb SCRATCH REST_URL CPU BLASTER_CPU rate RATE SECONDS`` or
``... rss RATE MESSAGES RECONNECTS`` (started by :mod:`bench.stream`): pins itself to
core ``CPU``, ranks the simulator's market at ``REST_URL`` once (the symbols to follow,
as the exporter would), starts the blaster pinned to ``BLASTER_CPU`` and a StreamSource
following those rankings with the blaster as its stream URL (its REST side is the
simulator; the blaster serves bookTicker events only, so the books never sync and fetch
no snapshot). Every ``EVERY`` seconds it reads the blaster's sent count, then the
source's view: bookTicker events received and applied (``health.messages`` and
``health.updates``), reconnects, this process's CPU time, the time its threads spent
runnable but waiting for the core (other processes share it), and RSS. It prints one
JSON line.

* ``rate``: the blaster sends ``RATE`` events a second; the run lasts ``SECONDS`` from
  the first event. Default :class:`~collector.stream_client.FeedTiming`.
* ``rss``: the blaster closes each connection after ``PER_CONNECTION`` events; the run
  lasts until ``MESSAGES`` events are applied and ``RECONNECTS`` reconnects made. The
  feed's back-off is shortened (:data:`FAST_RECONNECTS`): with the product's figures a
  connection that ends before 60 s counts as failed and the back-off doubles up to 60
  s, and 30 attempts in 300 s is the cap, so 100 reconnects would take about two hours.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collector import answers
from collector.binance import BinanceClient
from collector.records import STREAM, Settings
from collector.rest_source import RestSource
from collector.stream_source import StreamSource
from collector.stream_client import BOOK_TICKER, FeedTiming

from bench.blaster import running_blaster
from bench.common import BenchError, memory_kb, run_queue_wait

EVERY = 0.25
PER_CONNECTION = 10_000
START_TIMEOUT = 20.0
FAST_RECONNECTS = FeedTiming(backoff_first=0.01, backoff_max=0.05, healthy_after=0.2,
                             max_attempts=100_000)


def rankings(rest_url: str) -> Any:
    """Q1 and Q2 of the simulator's market, from one REST refresh."""
    source = RestSource(BinanceClient([rest_url]), Settings())
    try:
        ranked = source.snapshot().rankings.value
    finally:
        source.close()
    if ranked is None:
        raise BenchError("no rankings from the simulator")
    return ranked


def sample(stats_url: str, source: StreamSource, started: float) -> dict[str, Any]:
    """The blaster's count, then the source's, then this process's CPU and RSS."""
    with urllib.request.urlopen(stats_url, timeout=5) as answer:
        sent = json.load(answer)["sent"]
    health = source.view().health
    cpu = os.times()
    return {"t": time.monotonic() - started, "sent": sent,
            "received": sum(n for name, n in health.messages.items()
                            if name.endswith(BOOK_TICKER)),
            "applied": sum(health.updates.values()),
            "reconnects": sum(health.reconnects.values()),
            "cpu": cpu.user + cpu.system, "waited": run_queue_wait(),
            "rss_kb": memory_kb()["VmRSS"]}


@dataclass(frozen=True)
class Job:
    """The command line: where the simulator is, the cores, the mode and its figures."""

    scratch: Path
    rest_url: str
    cpu: int
    blaster_cpu: int
    mode: str
    figures: tuple[float, ...]

    @classmethod
    def parse(cls, argv: list[str]) -> "Job":
        """``SCRATCH REST_URL CPU BLASTER_CPU MODE FIGURE...``."""
        return cls(Path(argv[0]), argv[1], int(argv[2]), int(argv[3]), argv[4],
                   tuple(float(x) for x in argv[5:]))


def run(job: Job) -> dict[str, Any]:
    """One run (see the module docstring); the samples and what else was seen."""
    os.sched_setaffinity(0, {job.cpu})  # before any thread starts: they inherit it
    ranked = rankings(job.rest_url)
    rate = job.figures[0]
    found: dict[str, Any] = {"samples": [], "symbols": [t.symbol for t in ranked.by_trades],
                             "rss_before_kb": memory_kb()["VmRSS"]}
    with running_blaster(job.scratch, f"{job.mode}-{rate:g}", rate,
                         PER_CONNECTION if job.mode == "rss" else 0, job.blaster_cpu) as blaster:
        source = StreamSource(BinanceClient([job.rest_url]), Settings(source=STREAM),
                              [blaster.url],
                              FAST_RECONNECTS if job.mode == "rss" else FeedTiming()).start()
        try:
            source.follow(answers.watchlist(ranked, {}, ()))
            started = time.monotonic()
            while source.view().health.last_message_age is None:
                if time.monotonic() > started + START_TIMEOUT:
                    raise BenchError("no event from the blaster")
                time.sleep(0.01)
            _loop(found, blaster.url.replace("ws://", "http://") + "/stats", source, job)
        finally:
            source.close()
    found["hwm_kb"] = memory_kb()["VmHWM"]
    return found


def _loop(found: dict[str, Any], stats_url: str, source: StreamSource, job: Job) -> None:
    """Sample until the run is over (bounded by count and by time)."""
    mode, figures = job.mode, job.figures
    started = time.monotonic()
    if mode == "rate":
        seconds = figures[1]
        limit = seconds
    else:
        messages, reconnects = int(figures[1]), int(figures[2])
        limit = 4 * messages / figures[0] + 2 * reconnects + 60
    for _ in range(int(limit / EVERY) + 1):
        time.sleep(EVERY)
        now = sample(stats_url, source, started)
        found["samples"].append(now)
        if mode == "rss" and "blocks_first" not in found and now["applied"] >= PER_CONNECTION:
            found["blocks_first"] = _live_blocks()
            found["blocks_first_at"] = now["applied"]
        if mode == "rate" and now["t"] >= seconds:
            break
        if mode == "rss" and now["applied"] >= messages and now["reconnects"] >= reconnects:
            found["blocks_last"] = _live_blocks()
            break
    else:
        if mode == "rss":
            raise BenchError(f"{messages} events and {reconnects} reconnects not reached in "
                             f"{limit:.0f} s: {found['samples'][-1]}")


def _live_blocks() -> int:
    gc.collect()
    return sys.getallocatedblocks()


if __name__ == "__main__":
    print(json.dumps(run(Job.parse(sys.argv[1:]))))
