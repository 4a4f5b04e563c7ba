"""Benchmark 6: stream mode (``--source stream``) beside REST mode, in one run.

Two simulators with the same flags (``--seed 1``, latency L on every REST answer; the
streams add none), one per mode so that each one's weight is its exporter's alone, and a
real ``binance-exporter`` against each, at default TTLs. The simulators run at their
default pace, Binance's: a step every 100 ms, depth events of the levels that changed
(about 10 a second of ~20 levels for the busiest symbols, fewer and smaller for the
others) and 50 bookTicker events a second for the busiest.

* **Weight.** For ``MINUTES`` minutes both exporters are scraped like cost scenario (b):
  10 scrapers every 1 s, staggered by 0.1 s, a new connection per scrape. The weight is
  read from each simulator at every minute mark; *steady* is minutes 2 onwards. The run
  lasts 6 minutes so that the steady window spans one rankings TTL (300 s): the one
  ``ticker/24hr`` refresh after start-up (80) falls in minute 6. exchangeInfo's (20, TTL
  1 h) does not; it adds 0.3/min in the long run.
* **Change → /metrics.** From minute 2 to the end a poller per exporter asks, every 1 ms
  on a kept-alive connection, ``/metrics?name[]=binance_best_bid_price&name[]=
  binance_best_ask_price`` and notes when the answer changes (the time it arrived). The
  simulated market is a function of (seed, symbol, step), and the steps start at
  multiples of 100 ms of Unix time, so the best bid/ask of every followed symbol at every
  step is known here. An answer is dated to the latest step (not after its arrival, not
  before the answer before it) whose best bid/ask of *every* followed symbol it shows;
  an answer that matches no step (stream mode, between two symbols' events) is not
  dated. For each step whose best bid/ask differs from the step before, latency = the
  arrival of the first answer dated to that step or a later one, minus the step's start:
  in REST mode a change overtaken by a newer one before a refresh counts as shown by
  that refresh. Steps later than 15 s before the end are left out (REST would show them
  after it). The p99 is taken per minute; the figure is the median of those, and the
  p99 of all changes pooled is shown beside it. Each process's CPU time and its threads'
  time spent waiting for a core (``/proc/PID/task/*/schedstat``) are read at every minute
  mark, with the load average: the machine may be shared. The exporters' CPU is shown
  in minute 1, before the pollers start: the events and 10 scrapers a second alone.
* **CPU as Prometheus scrapes.** Then a fresh simulator and exporter per mode, side by
  side, scraped like cost scenario (a): one scraper every 15 s, as a Prometheus server
  would. The stream exporter's CPU from ``SETTLED`` s to the end of ``PACED_MINUTES`` is
  the events' own cost, the one judged (the scrapes' cost is judged by the scrape
  latency figures).
* **Scrape latency.** Then ``wrk`` (1 thread, keep-alive, ``Accept-Encoding: gzip``), 1
  and 10 clients, windows interleaved over four exporters: a third REST exporter with
  every TTL at an hour (cached scrapes only, the baseline, as in section 3); the two
  above at default TTLs (every scrape counted, refreshing ones included, streams
  flowing); and a stream exporter whose stream URL is :mod:`bench.blaster` at 1,000
  bookTicker events a second (REST side: the stream simulator), for a rate of events
  several times the simulator's and below the absorption target, without depth events
  (its books never sync). A closed loop of
  thousands of scrapes a second dilutes the rare refreshing scrape, so each window's
  maximum is shown beside its p99, and the p99 of every scrape of the 10 scrapers of
  the weight run (refreshes included, one a minute or more) is shown too.
* **Absorption.** :mod:`bench.absorb`: a real ``StreamSource`` on one core, following the
  simulator's rankings, against :mod:`bench.blaster` pinned to the other core, which
  pushes bookTicker events at a fixed rate (and once unthrottled: the most one core
  takes in). Samples every 0.25 s of the blaster's sent count and the events the market
  applied (``health.updates``); lag = sent − applied. From 1 s on, the rates over the
  run are least-squares slopes; a rate is kept up with when both the blaster's and the
  market's rates are within 1 % of it (the lag does not grow).
* **RSS.** :mod:`bench.absorb` again, in a fresh process: the blaster closes every
  connection after 10,000 events, and the run ends after 1,000,000 events applied and
  100 reconnects; VmRSS every 0.25 s, VmHWM at the end, and live Python blocks after
  the first connection and at the end (after ``gc.collect()``).
"""

from __future__ import annotations

import http.client
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlsplit

from binance_simulator.market import SimulatedMarket

from bench import cost, scrape
from bench.blaster import running_blaster
from bench.common import (ROOT, BenchError, cpu_seconds, median, percentile,
                          run_queue_wait)
from bench.figures import Figure
from bench.procs import NO_RATE_LIMIT, HTTP_TIMEOUT, exporter, simulator

SECTION = "6"
MODES = ("rest", "stream")
SEED = 1
STEP = 0.1  # seconds of a simulator step: its default, Binance's pace
MINUTES = 6
SCRAPERS, INTERVAL = 10, 1.0  # cost scenario (b)
POLL_EVERY = 0.001
POLL_PATH = "/metrics?name[]=binance_best_bid_price&name[]=binance_best_ask_price"
HORIZON = 15.0  # steps this close to the end are left out (REST: TTL 10 s + slack)
SEARCH = round(HORIZON / STEP) + 2  # steps back an answer may date from
CLIENTS = (1, 10)
CACHED = "REST, cached only"
BLASTED = 1_000  # bookTicker events a second to a stream exporter, from the blaster
BLASTED_NAME = f"stream, bookTicker only at {BLASTED:,}/s from the blaster"
WEIGHT_TARGET = 20.0
LATENCY_TARGET_MS = 10.0
SCRAPE_FACTOR = 1.5
SETTLED = 20  # seconds into a run: the books have synced, start-up is over
CPU_TARGET = 0.05  # of one core: the stream exporter on events, scraped as by Prometheus
PACED_MINUTES = 2  # the CPU run scraped as by Prometheus (cost scenario (a))
ABSORB_TARGET = 10_000
RATES = (10_000, 20_000, 40_000)
UNTHROTTLED = 1_000_000  # a rate the blaster cannot reach: it sends as fast as taken
KEEP_UP = 0.99
RSS_RATE = 20_000
RSS_TARGET_MB = 60.0
RSS_PEAK = "peak RSS (VmHWM) over "
RSS_GROWTH = "RSS growth, first connection → end"
FLAT_PERCENT = 5.0
CHILD_TIMEOUT = 600.0
PRICE = re.compile(r'^binance_best_(bid|ask)_price\{[^}]*symbol="([^"]*)"[^}]*\} (\S+)$', re.M)
COUNTER = re.compile(r"^(binance_stream_\w+_total|binance_order_book_resyncs_total)"
                     r"(\{[^}]*\})? (\S+)$", re.M)

Shown = dict[str, tuple[float, float]]  # symbol → (best bid, best ask) on /metrics


@dataclass(frozen=True)
class Plan:  # pylint: disable=too-many-instance-attributes
    """How long and how often: the full run, or ``--quick``."""

    minutes: int
    wrk_runs: int
    wrk_seconds: float
    absorb_runs: int
    absorb_seconds: float
    rss_messages: int
    rss_reconnects: int


FULL = Plan(MINUTES, 3, 4.0, 2, 8.0, 1_000_000, 100)
QUICK = Plan(2, 1, 2.0, 1, 4.0, 100_000, 10)


@dataclass
class Polled:
    """What one exporter's ``/metrics`` showed: each new answer, with its arrival."""

    changes: list[tuple[float, Shown]] = field(default_factory=list)
    polls: int = 0
    errors: int = 0
    first: float = math.nan  # Unix time of the first and the last answer
    last: float = math.nan


@dataclass
class SideBySide:  # pylint: disable=too-many-instance-attributes
    """What the two exporters did: the weight run, the pollers, ``wrk``."""

    runs: list[cost.Run]
    stats: dict[str, dict[str, Any]]
    polled: dict[str, Polled]
    windows: dict[tuple[str, int], list[scrape.Window]]
    counters: dict[str, float]
    usage: list[dict[str, Any]]  # at each minute mark of the weight run (see _usage)
    paced: list[dict[str, Any]]  # the same, of the run scraped as by Prometheus


@dataclass
class OneCore:
    """The absorption runs by offered rate, the RSS run, and the cores used."""

    rates: dict[int, list[dict[str, Any]]]
    rss: dict[str, Any]
    pinned: tuple[int, int]


def measure(scratch: Path, latency_ms: int, plan: Plan) -> tuple[list[Figure], str]:
    """Every figure of the section, and its Markdown details."""
    both = side_by_side(scratch, latency_ms, plan)
    alone = one_core(scratch, plan)
    latencies = {mode: change_latencies(both.polled[mode]) for mode in MODES}
    figures = [
        *_weight_figures(both.runs),
        *_cpu_figures(both.usage, both.paced),
        *_latency_figures(latencies),
        *_scrape_figures(both.windows, both.runs),
        *_absorb_figures(alone.rates),
        *_rss_figures(alone.rss, plan),
    ]
    return figures, _details(figures, both, latencies, alone)


def side_by_side(scratch: Path, latency_ms: int, plan: Plan) -> SideBySide:
    """Both modes against identical simulators: weight and pollers, then ``wrk``."""
    flags = ("--latency-ms", str(latency_ms), "--seed", str(SEED), "--step-seconds", f"{STEP:g}")
    with ExitStack() as stack:
        sims = {mode: stack.enter_context(simulator(scratch, f"stream-{mode}", *flags))
                for mode in MODES}
        served = {
            "rest": stack.enter_context(exporter(scratch, "stream-rest", sims["rest"].url)),
            "stream": stack.enter_context(exporter(
                scratch, "stream-stream", sims["stream"].url, "--source", "stream",
                "--stream-url", sims["stream"].stream_url)),
        }
        runs = [cost.Run(cost.Scenario(mode, SCRAPERS, INTERVAL), sims[mode], served[mode])
                for mode in MODES]
        pids = {f"{mode} {kind}": process.pid for mode in MODES
                for kind, process in (("exporter", served[mode]), ("simulator", sims[mode]))}
        polled, usage = _weight_and_polls(runs, plan.minutes, pids)
        stats = {run.scenario.name: run.sim.stats() for run in runs}
        windows = _scrape_phase(stack, scratch,
                                {mode: (sims[mode].url, served[mode].url) for mode in MODES}, plan)
        counters = _stream_counters(served["stream"].url)
    return SideBySide(runs, stats, polled, windows, counters, usage,
                      paced_cpu(scratch, flags))


def paced_cpu(scratch: Path, flags: Sequence[str]) -> list[dict[str, Any]]:
    """Fresh simulators and exporters of both modes, scraped as by Prometheus (cost
    scenario (a)) for ``PACED_MINUTES``; each process's CPU at ``SETTLED`` s and each
    minute mark."""
    with ExitStack() as stack:
        sims = {mode: stack.enter_context(simulator(scratch, f"paced-{mode}", *flags))
                for mode in MODES}
        served = {mode: stack.enter_context(exporter(
            scratch, f"paced-{mode}", sims[mode].url,
            *(("--source", "stream", "--stream-url", sims[mode].stream_url)
              if mode == "stream" else ()))) for mode in MODES}
        scenario = cost.SCENARIOS[0]
        runs = [cost.Run(cost.Scenario(mode, scenario.scrapers, scenario.interval),
                         sims[mode], served[mode]) for mode in MODES]
        pids = {f"{mode} {kind}": process.pid for mode in MODES
                for kind, process in (("exporter", served[mode]), ("simulator", sims[mode]))}
        start = time.monotonic()
        with ThreadPoolExecutor(max_workers=1) as pool:
            usage = pool.submit(_usage, pids, start, PACED_MINUTES)
            cost.drive(runs, PACED_MINUTES)
            return usage.result(timeout=120)


def one_core(scratch: Path, plan: Plan) -> OneCore:
    """The absorption runs and the RSS run, each a fresh process (see the docstring)."""
    with simulator(scratch, "stream-absorb", *NO_RATE_LIMIT) as sim:
        cpus = sorted(os.sched_getaffinity(0))
        pinned = (cpus[0], cpus[-1])
        rates = {rate: [_child(scratch, sim.url, pinned, "rate", rate, plan.absorb_seconds)
                        for _ in range(plan.absorb_runs)] for rate in (*RATES, UNTHROTTLED)}
        rss = _child(scratch, sim.url, pinned, "rss", RSS_RATE, plan.rss_messages,
                     plan.rss_reconnects)
    return OneCore(rates, rss, pinned)


# -- weight and change → /metrics -------------------------------------------------------


def _scrape_phase(stack: ExitStack, scratch: Path, urls: dict[str, tuple[str, str]],
                  plan: Plan) -> dict[tuple[str, int], list[scrape.Window]]:
    """``wrk`` over the two exporters (``urls``: mode → its simulator's, its own), a
    cached-only one and one fed by the blaster."""
    cached = stack.enter_context(exporter(scratch, "stream-cached", urls["rest"][0],
                                          *scrape.CACHE_ONLY))
    blaster = stack.enter_context(running_blaster(scratch, "scrape", BLASTED))
    blasted = stack.enter_context(exporter(scratch, "stream-blasted", urls["stream"][0],
                                           "--source", "stream", "--stream-url", blaster.url))
    for url in (cached.url, blasted.url):
        scrape.warm_up(url)
    time.sleep(2)  # the blasted exporter connects and events flow
    return _wrk({CACHED: cached.url, "REST": urls["rest"][1], "stream": urls["stream"][1],
                 BLASTED_NAME: blasted.url}, plan)


def _weight_and_polls(runs: list[cost.Run], minutes: int, pids: dict[str, int]
                      ) -> tuple[dict[str, Polled], list[dict[str, Any]]]:
    """The cost run's scrapers for ``minutes``; the pollers from minute 2 to its end; the
    processes' CPU at each minute mark."""
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(runs) + 1) as pool:
        futures = {run.scenario.name: pool.submit(poll, run.exporter.url, start + 60,
                                                  start + 60 * minutes) for run in runs}
        usage = pool.submit(_usage, pids, start, minutes)
        cost.drive(runs, minutes)
        return ({name: future.result(timeout=120) for name, future in futures.items()},
                usage.result(timeout=120))


def _usage(pids: dict[str, int], start: float, minutes: int) -> list[dict[str, Any]]:
    """At each minute mark, and at ``SETTLED`` s: each process's CPU seconds and seconds of
    waiting for a core while runnable, and the 1-minute load average (the machine is
    shared)."""
    marks = []
    for at in sorted({SETTLED, *(60 * minute for minute in range(minutes + 1))}):
        time.sleep(max(0.0, start + at - time.monotonic()))
        marks.append({"at": at, "load": os.getloadavg()[0],
                      **{name: (cpu_seconds(pid), run_queue_wait(pid))
                         for name, pid in pids.items()}})
    return marks


def poll(url: str, start: float, end: float) -> Polled:
    """Poll best bid/ask from ``start`` to ``end`` (monotonic), every ``POLL_EVERY`` s."""
    found = Polled()
    time.sleep(max(0.0, start - time.monotonic()))
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port,
                                            timeout=HTTP_TIMEOUT)
    last: Shown | None = None
    at = time.monotonic()
    for _ in range(int((end - start) / POLL_EVERY) + 1):
        if at >= end:
            break
        time.sleep(max(0.0, at - time.monotonic()))
        at += POLL_EVERY
        try:
            connection.request("GET", POLL_PATH)
            body = connection.getresponse().read().decode()
        except (OSError, http.client.HTTPException):
            found.errors += 1
            connection.close()
            continue
        arrived = time.time()
        found.polls += 1
        if found.polls == 1:
            found.first = arrived
        found.last = arrived
        shown = shown_by(body)
        if shown != last:
            found.changes.append((arrived, shown))
            last = shown
        at = max(at, time.monotonic())  # a slow answer is not made up for by a burst
    connection.close()
    return found


def shown_by(body: str) -> Shown:
    """The best bid and ask of each symbol that has both in a ``/metrics`` answer."""
    sides: dict[str, dict[str, float]] = {"bid": {}, "ask": {}}
    for side, symbol, value in PRICE.findall(body):
        sides[side][symbol] = float(value)
    return {symbol: (bid, sides["ask"][symbol]) for symbol, bid in sides["bid"].items()
            if symbol in sides["ask"]}


@dataclass(frozen=True)
class Latencies:
    """Seconds from each change of the market to /metrics showing it (or a later step)."""

    samples: tuple[tuple[float, float], ...]  # (step start, latency)
    unseen: int  # changes never shown before the end
    undated: int  # answers that matched no step

    def per_minute(self) -> list[list[float]]:
        """The latencies, grouped by the minute of the run their change fell in."""
        if not self.samples:
            return []
        first = self.samples[0][0]
        groups: dict[int, list[float]] = {}
        for at, seconds in self.samples:
            groups.setdefault(int((at - first) // 60), []).append(seconds)
        return [groups[minute] for minute in sorted(groups)]


def change_latencies(polled: Polled) -> Latencies:
    """See the module docstring: date every answer, then find each change's first showing."""
    if not polled.changes:
        raise BenchError("the poller saw no answer")
    low = math.ceil(polled.first / STEP)
    high = math.floor((polled.last - HORIZON) / STEP)
    steps = _market(set(polled.changes[-1][1]), low - SEARCH, math.floor(polled.last / STEP))
    dated = _dated(polled, steps, low - SEARCH)
    samples, unseen, index = [], 0, 0
    for step in range(low, high + 1):
        if steps[step] == steps[step - 1]:
            continue
        while index < len(dated) and dated[index][1] < step:
            index += 1
        if index == len(dated):
            unseen += 1
            continue
        samples.append((step * STEP, dated[index][0] - step * STEP))
    return Latencies(tuple(samples), unseen, len(polled.changes) - len(dated))


def _market(symbols: set[str], first: int, last: int) -> dict[int, Shown]:
    """The simulator's best bid/ask of ``symbols`` at each step from ``first`` to ``last``."""
    market = SimulatedMarket(seed=SEED, step_seconds=STEP)
    steps: dict[int, Shown] = {}
    for step in range(first, last + 1):
        steps[step] = {}
        for symbol in symbols:
            best = market.book(symbol, 1, step).book_ticker_payload()
            steps[step][symbol] = (float(best["bidPrice"]), float(best["askPrice"]))
    return steps


def _dated(polled: Polled, steps: dict[int, Shown], earliest: int) -> list[tuple[float, int]]:
    """(arrival, step) of each answer that shows a step: the latest step it shows, not
    after its arrival nor before the step of the answer before it."""
    dated: list[tuple[float, int]] = []
    for arrived, shown in polled.changes:
        now = math.floor(arrived / STEP)
        step = next((s for s in range(now, max(earliest, now - SEARCH) - 1, -1)
                     if steps.get(s) == shown), None)
        if step is not None:
            earliest = step
            dated.append((arrived, step))
    return dated


def _weight_figures(runs: list[cost.Run]) -> list[Figure]:
    figures = []
    for run in runs:
        per_minute = run.per_minute()
        steady = sum(per_minute[1:]) / max(1, len(per_minute) - 1)
        stream = run.scenario.name == "stream"
        figures.append(Figure(
            SECTION, f"weight/min, steady (minutes 2–{len(per_minute)}), {run.scenario.name}",
            (steady,), "weight/min", f"≤ {WEIGHT_TARGET:g}" if stream else "",
            steady <= WEIGHT_TARGET if stream else None, digits=0,
            note=f"per minute {'/'.join(str(int(w)) for w in per_minute)}"))
    return figures


def _cpu_figures(usage: list[dict[str, Any]], paced: list[dict[str, Any]]) -> list[Figure]:
    """Each process's share of a core once settled: scraped as by Prometheus (``SETTLED``
    s to the end of that run: the one judged), and in minute 1 of the weight run
    (``SETTLED`` to 60 s: 10 scrapers a second, no poller yet), with the whole of minute
    1 and the minutes after (the pollers) beside it."""
    at = {mark["at"]: mark for mark in usage}
    paced_at = {mark["at"]: mark for mark in paced}
    last, paced_end = usage[-1]["at"], paced[-1]["at"]
    figures = []
    for name in _processes(usage):
        def share(start: float, end: float, process: str = name,
                  marks: dict[float, dict[str, Any]] = at) -> float:
            return float(marks[end][process][0] - marks[start][process][0]) / (end - start)
        judged = name == "stream exporter"
        events = share(SETTLED, paced_end, marks=paced_at)
        figures.append(Figure(
            SECTION, f"CPU, settled, scraped every 15 s, {name}", (events * 100,),
            "% of a core", f"≤ {CPU_TARGET:.0%}" if judged else "",
            events <= CPU_TARGET if judged else None,
            note=f"{SETTLED}–{paced_end} s of a run scraped as by one Prometheus server"))
        figures.append(Figure(
            SECTION, f"CPU, settled in minute 1, {name}", (share(SETTLED, 60) * 100,),
            "% of a core",
            note=f"10 scrapers a second; all of minute 1 (start-up and first sync included) "
            f"{share(0, 60):.1%}; minutes 2–{last // 60}, with a poller every "
            f"{POLL_EVERY * 1000:g} ms: {share(60, last):.0%}"))
    return figures


def _processes(usage: list[dict[str, Any]]) -> list[str]:
    return [name for name in usage[0] if name not in ("at", "load")]


def _latency_figures(latencies: dict[str, Latencies]) -> list[Figure]:
    figures = []
    for mode, found in latencies.items():
        p99s = tuple(percentile(group, 99) * 1000 for group in found.per_minute())
        every = [seconds for _, seconds in found.samples]
        if not p99s:
            raise BenchError(f"{mode}: no change of the market was timed")
        stream = mode == "stream"
        figures.append(Figure(
            SECTION, f"market change → /metrics, p99 per minute, {mode}", p99s, "ms",
            f"≤ {LATENCY_TARGET_MS:g}" if stream else "",
            median(p99s) <= LATENCY_TARGET_MS and not found.unseen if stream else None,
            note=f"{len(every)} changes: p50 {percentile(every, 50) * 1000:.0f}, p99 "
            f"{percentile(every, 99) * 1000:.0f}, max {max(every) * 1000:.0f} ms; "
            f"{found.unseen} never shown"))
    return figures


# -- scrape latency ----------------------------------------------------------------------


def _wrk(targets: dict[str, str], plan: Plan) -> dict[tuple[str, int], list[scrape.Window]]:
    tool = shutil.which("wrk")
    windows: dict[tuple[str, int], list[scrape.Window]] = {
        (name, clients): [] for clients in CLIENTS for name in targets}
    for _ in range(plan.wrk_runs):  # interleaved: a noisy moment hits all alike
        for clients in CLIENTS:
            for name, url in targets.items():
                windows[name, clients].append(
                    scrape.window(tool, url, clients, plan.wrk_seconds, "gzip"))
    return windows


def _scrape_figures(windows: dict[tuple[str, int], list[scrape.Window]],
                    runs: list[cost.Run]) -> list[Figure]:
    figures = []
    for clients in CLIENTS:
        base = median([w.p99 for w in windows[CACHED, clients]])
        limit = SCRAPE_FACTOR * base
        for name in (CACHED, "REST", "stream", BLASTED_NAME):
            found = windows[name, clients]
            p99s = tuple(w.p99 for w in found)
            stream = name == "stream"
            worst = max(w.worst for w in found if w.worst is not None)
            rate = median([w.per_second for w in found])
            figures.append(Figure(
                SECTION, f"p99 /metrics, wrk {clients} client{'s' if clients > 1 else ''}, "
                f"gzip, {name}{'' if 'cached' in name else ', all scrapes'}", p99s, "ms",
                f"≤ {SCRAPE_FACTOR:g} × cached = {limit:.2f}" if stream else "",
                median(p99s) <= limit if stream else None, digits=2,
                note=f"p50 {median([w.p50 for w in found]):.2f}, max {worst:.1f} ms, "
                f"{rate:.0f} scrapes/s, {sum(w.errors for w in found)} errors"))
    for run in runs:
        every = run.latencies
        figures.append(Figure(
            SECTION, f"p99 /metrics, {SCRAPERS} scrapers every {INTERVAL:g} s (the weight run, "
            f"new connection each), {run.scenario.name}", (percentile(every, 99) * 1000,),
            "ms", digits=2, note=f"{len(every)} scrapes: p50 {percentile(every, 50) * 1000:.2f}, "
            f"max {max(every) * 1000:.0f} ms"))
    return figures


def _stream_counters(url: str) -> dict[str, float]:
    """The stream exporter's stream counters, summed over labels but the reason's."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port,
                                            timeout=HTTP_TIMEOUT)
    try:
        connection.request("GET", "/metrics")
        body = connection.getresponse().read().decode()
    finally:
        connection.close()
    found: dict[str, float] = {}
    for name, labels, value in COUNTER.findall(body):
        reason = re.search(r'reason="(\w+)"', labels)
        key = f"{name}{{{reason.group(1)}}}" if reason else name
        found[key] = found.get(key, 0.0) + float(value)
    return found


# -- absorption and RSS ----------------------------------------------------------------


def _child(scratch: Path, rest_url: str, pinned: tuple[int, int], mode: str,
           *figures: float) -> dict[str, Any]:
    """One ``python -m bench.absorb`` run; its JSON."""
    command = [sys.executable, "-m", "bench.absorb", str(scratch), rest_url, str(pinned[0]),
               str(pinned[1]), mode, *(f"{x:g}" for x in figures)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False,
                          timeout=CHILD_TIMEOUT)
    if done.returncode != 0:
        raise BenchError(f"bench.absorb failed: {done.stderr[-1500:]}")
    found: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return found


@dataclass(frozen=True)
class Absorbed:
    """One absorption run, from its samples after the first second."""

    sent_rate: float
    applied_rate: float
    cpu: float  # share of the one core
    waited: float  # seconds a second the threads waited for a core while runnable
    lag_max: int
    lag_end: int


def summarize(found: dict[str, Any]) -> Absorbed:
    """Rates as least-squares slopes over the samples from 1 s on; lag = sent − applied."""
    samples = [s for s in found["samples"] if s["t"] >= 1.0]
    if len(samples) < 3:
        raise BenchError("too few samples of an absorption run")
    times = [s["t"] for s in samples]
    lags = [s["sent"] - s["applied"] for s in samples]
    span = times[-1] - times[0]
    return Absorbed(_slope(times, [s["sent"] for s in samples]),
                    _slope(times, [s["applied"] for s in samples]),
                    (samples[-1]["cpu"] - samples[0]["cpu"]) / span,
                    (samples[-1]["waited"] - samples[0]["waited"]) / span, max(lags), lags[-1])


def _slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def _absorb_name(rate: int) -> str:
    if rate == UNTHROTTLED:
        return "bookTicker events applied/s on one core, blaster unthrottled (the most it takes)"
    return f"bookTicker events applied/s on one core at {rate:,}/s offered"


def _absorb_figures(found: dict[int, list[dict[str, Any]]]) -> list[Figure]:
    figures = []
    for rate, results in found.items():
        runs = [summarize(result) for result in results]
        applied = tuple(run.applied_rate for run in runs)
        note = (f"blaster sent {'/'.join(f'{r.sent_rate:,.0f}' for r in runs)}/s; CPU "
                f"{'/'.join(f'{r.cpu:.0%}' for r in runs)} of the core, "
                f"{'/'.join(f'{r.applied_rate / r.cpu:,.0f}' for r in runs)} events per "
                f"CPU-second, waited for the core {'/'.join(f'{r.waited:.2f}' for r in runs)} "
                f"s/s; lag max {'/'.join(f'{r.lag_max:,}' for r in runs)}, at the end "
                f"{'/'.join(f'{r.lag_end:,}' for r in runs)} events")
        judged = ABSORB_TARGET <= rate < UNTHROTTLED
        kept = (median([r.sent_rate for r in runs]) >= KEEP_UP * rate
                and median(applied) >= KEEP_UP * rate)
        figures.append(Figure(
            SECTION, _absorb_name(rate), applied, "events/s",
            f"≥ {KEEP_UP:.0%} of {rate:,}, lag flat" if judged else "",
            kept if judged else None, digits=0, note=note))
    return figures


def _rss_figures(found: dict[str, Any], plan: Plan) -> list[Figure]:
    samples = found["samples"]
    start = next(s for s in samples if s["applied"] >= found["blocks_first_at"])
    end = samples[-1]
    mb = [s["rss_kb"] / 1024 for s in samples]
    peak = found["hwm_kb"] / 1024
    growth = (end["rss_kb"] - start["rss_kb"]) / start["rss_kb"] * 100
    blocks = (found["blocks_last"] - found["blocks_first"]) / found["blocks_first"] * 100
    what = f"{plan.rss_messages:,} events, {plan.rss_reconnects} reconnects"
    return [
        Figure(SECTION, f"{RSS_PEAK}{what}", (peak,), "MB",
               f"≤ {RSS_TARGET_MB:g}", peak <= RSS_TARGET_MB,
               note=f"start {start['rss_kb'] / 1024:.1f} (after the first connection), max "
               f"sampled {max(mb):.1f}, end {end['rss_kb'] / 1024:.1f} MB; "
               f"{end['applied']:,} events, {end['reconnects']} reconnects in "
               f"{end['t']:.0f} s"),
        Figure(SECTION, RSS_GROWTH, (growth,), "%",
               f"≤ {FLAT_PERCENT:g} %", abs(growth) <= FLAT_PERCENT),
        Figure(SECTION, "live Python blocks growth, first connection → end (leak check)",
               (blocks,), "%", f"≤ {FLAT_PERCENT:g} %", abs(blocks) <= FLAT_PERCENT,
               note=f"{found['blocks_last']:,} blocks at the end"),
    ]


# -- details ---------------------------------------------------------------------------


def _details(figures: list[Figure], both: SideBySide, latencies: dict[str, Latencies],
             alone: OneCore) -> str:
    return "\n".join([*_summary(figures, len(both.runs[0].weights), latencies), "",
                      *_side_by_side_data(both, latencies), "", *_one_core_data(alone)])


def _summary(figures: list[Figure], minutes: int, latencies: dict[str, Latencies]
             ) -> list[str]:
    """The issue's table: REST and stream side by side, with the stream targets."""
    by_name = {figure.name: figure for figure in figures}

    def both(name: str) -> str:
        cells = [by_name[name + mode] for mode in MODES]
        return " | ".join(f"{f.median:,.{f.digits}f}" for f in cells) + \
            f" | {cells[1].target} | {cells[1].verdict} |"

    lines = [
        "Side by side in this run (medians over windows or runs; ranges in the table above):",
        "", "| figure | REST | stream | stream target | verdict |", "|---|---:|---:|---|---|",
        f"| request weight per minute, steady (minutes 2–{minutes}) | "
        + both(f"weight/min, steady (minutes 2–{minutes}), "),
        "| market change → `/metrics`, p99 (median of the minutes'; pooled) | " + " | ".join(
            f"{by_name['market change → /metrics, p99 per minute, ' + mode].median:,.0f} ms; "
            f"{percentile([x for _, x in latencies[mode].samples], 99) * 1000:,.0f} ms"
            for mode in MODES) + f" | ≤ {LATENCY_TARGET_MS:g} ms | "
        + by_name["market change → /metrics, p99 per minute, stream"].verdict + " |",
        "| exporter CPU, settled, scraped every 15 s as by Prometheus (the events' cost) | "
        + " | ".join(f"{by_name[f'CPU, settled, scraped every 15 s, {mode} exporter'].median:.1f}"
                     " %" for mode in MODES) + f" | ≤ {CPU_TARGET:.0%} | "
        + by_name["CPU, settled, scraped every 15 s, stream exporter"].verdict + " |",
        f"| exporter CPU, {SETTLED}–60 s of the weight run (events, 10 scrapers a second) | "
        + " | ".join(f"{by_name[f'CPU, settled in minute 1, {mode} exporter'].median:.1f} %"
                     for mode in MODES) + " | | |",
    ]
    for clients in CLIENTS:
        load = f"wrk {clients} client{'s' if clients > 1 else ''}, gzip"
        who = f"p99 /metrics, {load}, "
        cached = by_name[who + CACHED].median
        rest, stream = by_name[who + "REST, all scrapes"], by_name[who + "stream, all scrapes"]
        lines.append(f"| scrape p99 over all scrapes, {load} | {rest.median:.2f} ms "
                     f"(cached only: {cached:.2f}) | {stream.median:.2f} ms | {stream.target} "
                     f"ms | {stream.verdict} |")
    return lines + _one_core_rows(by_name)


def _one_core_rows(by_name: dict[str, Figure]) -> list[str]:
    kept = [rate for rate in RATES if by_name[_absorb_name(rate)].passed]
    most = by_name[_absorb_name(UNTHROTTLED)].median
    peak = next(f for name, f in by_name.items() if name.startswith(RSS_PEAK))
    growth = by_name[RSS_GROWTH]
    return [
        "| bookTicker events absorbed per second on one core, lag flat | — | "
        + (f"{max(kept):,} kept up with" if kept else "none kept up with")
        + f"; unthrottled {most:,.0f} | ≥ {ABSORB_TARGET:,} | "
        + ("pass" if kept and max(kept) >= ABSORB_TARGET else "MISS") + " |",
        f"| RSS across {peak.name[len(RSS_PEAK):]} | — | "
        f"{peak.note.split(';', maxsplit=1)[0]}; growth {growth.median:+.1f} % | "
        f"flat, ≤ {RSS_TARGET_MB:g} MB | {'pass' if peak.passed and growth.passed else 'MISS'} |",
    ]


def _side_by_side_data(both: SideBySide, latencies: dict[str, Latencies]) -> list[str]:
    lines = ["Requests by endpoint over the weight run (all answered 200?), weight at each "
             "minute mark, scrapes by status:", ""]
    for run in both.runs:
        requests = both.stats[run.scenario.name]["requests"]
        counts = ", ".join(f"{path.rsplit('/', 1)[-1]}: {sum(c.values())}"
                           for path, c in sorted(requests.items()))
        ok = all(set(c) == {"200"} for c in requests.values())
        lines.append(f"- {run.scenario.name}: {counts} ({'yes' if ok else 'NO'}); "
                     f"{', '.join(map(str, run.weights))}; {dict(run.scrapes)}")
    lines += ["", "Market change → /metrics, every change of the polled minutes (ms):", ""]
    for mode, found in latencies.items():
        every = [seconds * 1000 for _, seconds in found.samples]
        polled = both.polled[mode]
        lines.append(
            f"- {mode}: {len(every)} changes, p50 {percentile(every, 50):.1f}, p90 "
            f"{percentile(every, 90):.1f}, p99 {percentile(every, 99):.1f}, max {max(every):.1f};"
            f" {found.unseen} never shown; {polled.polls:,} polls ({polled.errors} failed), "
            f"{len(polled.changes):,} distinct answers, {found.undated} of them matching no "
            "step")
    lines += ["", "The stream exporter's counters at the end: " + ", ".join(
        f"{name.replace('binance_', '')} {value:,.0f}"
        for name, value in sorted(both.counters.items())) + "."]
    return lines + ["", *_usage_table(both.usage, latencies["stream"])]


def _usage_table(usage: list[dict[str, Any]], stream: Latencies) -> list[str]:
    """Per minute of the weight run: each process's share of a core, and its seconds a
    second spent waiting for one while runnable, beside stream mode's latency."""
    names = _processes(usage)
    usage = [mark for mark in usage if mark["at"] % 60 == 0]
    p99s = [percentile(group, 99) * 1000 for group in stream.per_minute()]
    lines = ["Per minute of the weight run: CPU (share of one core) / waiting for a core while "
             "runnable (s/s) of each process, the machine's 1-minute load average at the end "
             "of the minute (2 cores, shared with other users' processes), and stream mode's "
             "change → /metrics p99:", "",
             "| minute | " + " | ".join(names) + " | load | stream p99 ms |",
             "|---:|" + "---:|" * (len(names) + 2)]
    for minute, (before, after) in enumerate(zip(usage, usage[1:]), 1):
        cells = [f"{(after[n][0] - before[n][0]) / 60:.0%} / "
                 f"{(after[n][1] - before[n][1]) / 60:.2f}" for n in names]
        p99 = f"{p99s[minute - 2]:.0f}" if 2 <= minute < len(p99s) + 2 else ""
        lines.append(f"| {minute} | " + " | ".join(cells) + f" | {after['load']:.1f} | {p99} |")
    return lines


def _one_core_data(alone: OneCore) -> list[str]:
    lines = [f"Absorption, client pinned to core {alone.pinned[0]} and blaster to core "
             f"{alone.pinned[1]}; per run: blaster sent/s, applied/s, CPU of the client's "
             "core, events applied per CPU-second, seconds a second the client's threads were "
             "runnable but waited for the core, lag (events) every 1 s:", ""]
    for rate, results in alone.rates.items():
        for result in results:
            run = summarize(result)
            lags = [s["sent"] - s["applied"] for s in result["samples"][3::4]]
            lines.append(f"- {'unthrottled' if rate == UNTHROTTLED else f'{rate:,}/s'}: "
                         f"{run.sent_rate:,.0f}, {run.applied_rate:,.0f}, {run.cpu:.0%}, "
                         f"{run.applied_rate / run.cpu:,.0f}, {run.waited:.2f}; lag "
                         + " ".join(f"{lag:,}" for lag in lags))
    samples = alone.rss["samples"]
    curve = samples[::max(1, len(samples) // 12)] + samples[-1:]
    lines += ["", "RSS run: VmRSS (MB) by events applied (reconnects): " + ", ".join(
        f"{s['applied']:,} ({s['reconnects']}): {s['rss_kb'] / 1024:.1f}" for s in curve)
        + f"; before the first event {alone.rss['rss_before_kb'] / 1024:.1f} MB. Symbols "
        "followed (Q2): " + " ".join(alone.rss["symbols"]) + "."]
    return lines
