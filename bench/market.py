"""Benchmark 7: the whole market (``--spreads all``), REST and stream mode side by side.

Simulators at their defaults (``--seed 1``, a step every 100 ms, Binance's pace; no
latency added), one per mode, each serving its whole market: about 1,341 ``TRADING``
symbols of 2,520, every one in the all-symbols ``ticker/bookTicker`` answer and as a
``<symbol>@bookTicker`` stream. Each exporter runs with ``--spreads all``; the number of
spreads it publishes is counted (a symbol whose book has an empty side has none).

* **Scrape size.** ``/metrics`` as served, without and with ``Accept-Encoding: gzip``
  (bytes on the wire), and its number of series (lines that are not comments), of the
  REST exporter once its cache is warm and of the stream exporter after the CPU run.
* **Cached scrape latency.** ``wrk`` (1 thread, keep-alive, ``Accept-Encoding: gzip``),
  1 and 10 clients, windows interleaved, against a REST exporter whose TTLs are all an
  hour (``--ttl-spreads 3600`` and the others, as in section 3), so that no scrape in a
  window refreshes anything (the simulator's request count is read around them); the
  time the exporter's threads spent runnable but waiting for a core, and the load
  average, are shown beside them (the machine may be shared). The same windows are
  then run against the stream exporter, events flowing, for context.
* **Side by side, scraped as by Prometheus.** A REST exporter with ``--ttl-spreads 10``
  (the other TTLs an hour: only spreads refresh) and a stream exporter (``--source
  stream --stream-url`` its simulator's), started together; after ``SETTLED`` s both are
  scraped every 15 s (gzip, a new connection each) for the run's length. Each process's
  CPU time (``/proc/PID/stat``) is read after each scrape; the share of a core is the
  CPU from the first scrape to the last over the time between them. REST: every scrape
  of the run refreshes the spreads (one all-symbols ``bookTicker`` call, weight 4,
  counted by its simulator), so its CPU over the run divided by those calls is the CPU
  of one refresh and its rendering. Stream: the events received are the sum of its
  ``binance_stream_messages_total``, read at the first and the last scrape; the events
  sent are the simulator's own count (``/_sim/stats``), and the ``@bookTicker``
  subscriptions it holds are counted at the end. The stream exporter's CPU is judged
  against one core, and only counts as within target at the simulated rate when it
  received at least 99 % of what was sent and every ``TRADING`` symbol was subscribed.
  A stream exporter that does not start, receives nothing or is not up is recorded as
  FAILED with the reason (its last warning), and the REST side is still measured.
* **Refresh cost in process.** The simulator's all-symbols ``bookTicker`` answer, built
  in this process, decoded and validated into book tops from its bytes (msgspec, typed:
  ``models.parse_book_tickers`` of the body, as the REST client hands it on; section 8
  compares it with ``json``) and turned into the spreads of every ``TRADING`` symbol with
  their Q5 deltas, as a REST refresh does.
* **RSS.** VmRSS and VmHWM (peak) of each exporter at its end: the cached one after the
  ``wrk`` windows, the two others after theirs.
"""

from __future__ import annotations

import gzip
import http.client
import json
import math
import os
import re
import shutil
import time
import urllib.request
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from binance_simulator.testkit import Process, SimulatorProcess

from collector import answers, models
from collector.records import Rankings

from bench import scrape
from bench.common import BenchError, cpu_seconds, median, memory_kb, run_queue_wait
from bench.cpu import served
from bench.figures import Figure
from bench.procs import HTTP_TIMEOUT, exporter, simulator
from bench.procs import scrape as scrape_once

SECTION = "7"
STEP = "0.1"  # the simulator's default step, Binance's pace
ALL = ("--spreads", "all")
LONG = "3600"
REFRESHING = ("--ttl-spreads", "10", "--ttl-books", LONG, "--ttl-rankings", LONG,
              "--ttl-exchange", LONG)  # only the spreads refresh, at the shortest TTL
GZIP = {"Accept-Encoding": "gzip"}
CLIENTS = (1, 10)
SCRAPE_TARGET_MS = 50.0
CPU_TARGET = 1.0  # of one core
KEEP_UP = 0.99
RSS_TARGET_MB = 150.0
SETTLED = 20.0  # seconds after start before the run: subscriptions paced, books synced
EVERY = 15.0  # as by Prometheus
BOOK_TICKER_PATH = models.BOOK_TICKER
MESSAGES = "binance_stream_messages_total"
PROBLEM = re.compile(r" (?:WARNING|ERROR) (.*)$", re.M)


@dataclass(frozen=True)
class Plan:
    """How long and how often: the full run, or ``--quick``."""

    wrk_runs: int
    wrk_seconds: float
    seconds: int  # of the run scraped as by Prometheus, a multiple of EVERY
    decode_runs: int


FULL = Plan(3, 4.0, 60, 20)
QUICK = Plan(1, 2.0, 30, 5)


@dataclass(frozen=True)
class Size:
    """One ``/metrics`` answer: bytes raw and gzipped, series, spreads published."""

    raw: int
    gzip: int
    series: int
    spreads: int


@dataclass
class Mark:
    """Readings after one scrape of the run (``None``: that side is not there)."""

    at: float
    cpu: dict[str, float] = field(default_factory=dict)  # process name → CPU seconds
    book_tickers: int = 0  # all-symbols bookTicker calls the REST simulator served
    sent: float | None = None  # stream events the stream simulator sent
    received: float | None = None  # binance_stream_messages_total, summed
    up: bool | None = None  # the stream exporter's binance_up


@dataclass
class StreamSide:  # pylint: disable=too-many-instance-attributes
    """What the stream exporter did, or why it could not be measured."""

    error: str = ""
    size: Size | None = None
    windows: dict[int, list[scrape.Window]] = field(default_factory=dict)
    memory: dict[str, int] = field(default_factory=dict)
    subscribed: int = 0  # @bookTicker streams the simulator serves it at the end
    stats: dict[str, Any] = field(default_factory=dict)  # the simulator's stream stats
    problem: str = ""  # its last warning or error line


@dataclass
class Whole:  # pylint: disable=too-many-instance-attributes
    """Everything measured in the section."""

    market: dict[str, int]
    cached_size: Size
    cached_windows: dict[int, list[scrape.Window]]
    cached_meanwhile: str  # upstream requests, waiting for a core, load
    cached_memory: dict[str, int]
    marks: list[Mark]
    refreshing_memory: dict[str, int]
    stream: StreamSide
    decode: list[list[float]]


def measure(scratch: Path, plan: Plan) -> tuple[list[Figure], str]:
    """Every figure of the section, and its Markdown details."""
    tool = shutil.which("wrk")
    with simulator(scratch, "market-rest", "--step-seconds", STEP) as rest_sim:
        market = whole_market(rest_sim.url)
        cached = _cached(scratch, plan, rest_sim, tool)
        marks, refreshing_memory, stream = side_by_side(scratch, plan, rest_sim, tool)
    whole = Whole(market, *cached, marks, refreshing_memory, stream,
                  decode_costs(plan.decode_runs))
    figures = _figures(whole)
    return figures, _details(figures, whole)


def _cached(scratch: Path, plan: Plan, rest_sim: SimulatorProcess, tool: str | None
            ) -> tuple[Size, dict[int, list[scrape.Window]], str, dict[str, int]]:
    """The REST exporter with every TTL long: its size, ``wrk``, what else happened
    meanwhile (upstream requests: none expected; waiting for a core), its memory."""
    with exporter(scratch, "market-cached", rest_sim.url, *ALL, *scrape.CACHE_ONLY) as cached:
        scrape.warm_up(cached.url)
        found = size(cached.url)
        before = rest_sim.stats()["requests_total"]
        waited, started = run_queue_wait(cached.pid), time.monotonic()
        windows = _wrk(tool, cached.url, plan)
        waited = (run_queue_wait(cached.pid) - waited) / (time.monotonic() - started)
        upstream = int(rest_sim.stats()["requests_total"] - before)
        meanwhile = (f"{upstream} upstream requests; the exporter waited for a core "
                     f"{waited:.2f} s/s, load average {os.getloadavg()[0]:.1f}")
        return found, windows, meanwhile, memory_kb(cached.pid)


def whole_market(url: str) -> dict[str, int]:
    """What the simulator lists and serves: symbols, TRADING ones, the bookTicker answer."""
    info = _get_json(url + models.EXCHANGE_INFO)
    trading = {s["symbol"] for s in info["symbols"] if s["status"] == "TRADING"}
    with urllib.request.urlopen(url + BOOK_TICKER_PATH, timeout=HTTP_TIMEOUT) as answer:
        raw = answer.read()
    tops = json.loads(raw)
    two_sided = {t["symbol"] for t in tops if float(t["bidQty"]) and float(t["askQty"])}
    return {"listed": len(info["symbols"]), "trading": len(trading),
            "book_ticker_bytes": len(raw), "book_ticker_symbols": len(tops),
            "book_ticker_trading": len(trading & {t["symbol"] for t in tops}),
            "two_sided_trading": len(trading & two_sided)}


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT) as answer:
        return json.load(answer)


def size(url: str) -> Size:
    """``/metrics`` of the exporter at ``url``, raw and gzipped."""
    status, _, raw = scrape_once(url)
    zipped_status, _, zipped = scrape_once(url, GZIP)
    if status != 200 or zipped_status != 200:
        raise BenchError(f"/metrics answered {status}, gzipped {zipped_status}")
    text = raw.decode()
    return Size(len(raw), len(zipped), series_count(text),
                sum(1 for line in text.splitlines() if line.startswith("binance_price_spread{")))


def series_count(text: str) -> int:
    """The series in an exposition: lines that are neither empty nor comments."""
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))


def counter_sum(text: str, name: str) -> float:
    """The sum over every label set of the series ``name`` in an exposition."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith((name + "{", name + " ")))


def _wrk(tool: str | None, url: str, plan: Plan) -> dict[int, list[scrape.Window]]:
    windows: dict[int, list[scrape.Window]] = {clients: [] for clients in CLIENTS}
    for _ in range(plan.wrk_runs):  # interleaved: a noisy moment hits both levels alike
        for clients in CLIENTS:
            windows[clients].append(scrape.window(tool, url, clients, plan.wrk_seconds, "gzip"))
    return windows


# -- REST refreshing and stream, side by side -------------------------------------------


def side_by_side(scratch: Path, plan: Plan, rest_sim: SimulatorProcess, tool: str | None
                 ) -> tuple[list[Mark], dict[str, int], StreamSide]:
    """The REST exporter refreshing at every scrape and the stream exporter, scraped as by
    Prometheus after ``SETTLED`` s; then ``wrk`` on the stream exporter."""
    stream = StreamSide()
    with ExitStack() as stack:
        refreshing = stack.enter_context(exporter(scratch, "market-refreshing", rest_sim.url,
                                                  *ALL, *REFRESHING))
        pids = {"REST exporter": refreshing.pid, "REST simulator": rest_sim.pid}
        stream_sim: SimulatorProcess | None = None
        served_stream: Process | None = None
        try:
            stream_sim = stack.enter_context(simulator(scratch, "market-stream",
                                                       "--step-seconds", STEP))
            served_stream = stack.enter_context(exporter(
                scratch, "market-stream", stream_sim.url, *ALL, "--source", "stream",
                "--stream-url", stream_sim.stream_url))
            pids |= {"stream exporter": served_stream.pid, "stream simulator": stream_sim.pid}
        except BenchError as exc:
            stream.error = f"did not start: {str(exc)[-300:]}"
        time.sleep(SETTLED)
        marks = _paced(plan, refreshing, rest_sim, served_stream, stream_sim, pids)
        refreshing_memory = memory_kb(refreshing.pid)
        if served_stream is not None and stream_sim is not None:
            _stream_after(stream, plan, tool, served_stream, stream_sim, marks)
    return marks, refreshing_memory, stream


def _paced(plan: Plan, refreshing: Process, rest_sim: SimulatorProcess,  # pylint: disable=too-many-arguments,too-many-positional-arguments
           served_stream: Process | None, stream_sim: SimulatorProcess | None,
           pids: dict[str, int]) -> list[Mark]:
    """Scrape both exporters every ``EVERY`` s for ``plan.seconds``; a mark after each."""
    marks = []
    start = time.monotonic()
    for index in range(plan.seconds // int(EVERY) + 1):
        time.sleep(max(0.0, start + index * EVERY - time.monotonic()))
        mark = Mark(time.monotonic())
        status, _, _ = scrape_once(refreshing.url, GZIP)
        if status != 200:
            raise BenchError(f"the refreshing REST exporter answered {status}")
        if served_stream is not None and stream_sim is not None:
            _read_stream(mark, served_stream.url, stream_sim)
        mark.cpu = {name: _cpu_or_nan(pid) for name, pid in pids.items()}
        mark.book_tickers = sum(rest_sim.stats()["requests"].get(BOOK_TICKER_PATH, {}).values())
        marks.append(mark)
    return marks


def _read_stream(mark: Mark, url: str, sim: SimulatorProcess) -> None:
    """The stream exporter's events received and ``binance_up``; the events sent to it."""
    try:
        status, _, body = scrape_once(url, GZIP)
        if status == 200:
            text = gzip.decompress(body).decode()
            mark.received = counter_sum(text, MESSAGES)
            mark.up = counter_sum(text, "binance_up") == 1.0
        sent = sim.stats()["streams"]["messages_sent"]
        mark.sent = float(sum(n for kind, n in sent.items() if kind != "reply"))
    except (OSError, http.client.HTTPException, ValueError):
        pass  # a process that died: the marks show it


def _cpu_or_nan(pid: int) -> float:
    try:
        return cpu_seconds(pid)
    except OSError:
        return math.nan


def _stream_after(stream: StreamSide, plan: Plan, tool: str | None,  # pylint: disable=too-many-arguments,too-many-positional-arguments
                  served_stream: Process, sim: SimulatorProcess, marks: list[Mark]) -> None:
    """After the run: why it failed, if it did; its size, ``wrk``, RSS, the simulator's
    view of its streams."""
    problems = PROBLEM.findall(served_stream.output())
    stream.problem = problems[-1][:300] if problems else ""
    try:
        stats = sim.stats()["streams"]
        stream.stats = {key: stats[key] for key in ("connections_open", "connections",
                                                    "closed", "messages_sent")}
        stream.subscribed = sum(1 for name in stats["subscriptions"]
                                if name.endswith("@bookTicker"))
        stream.size = size(served_stream.url)
        stream.windows = _wrk(tool, served_stream.url, plan)
        stream.memory = memory_kb(served_stream.pid)
    except (OSError, http.client.HTTPException, ValueError, BenchError) as exc:
        stream.error = stream.error or f"{type(exc).__name__}: {str(exc)[:200]}"
    first, last = marks[0], marks[-1]
    if not stream.error:
        if first.received is None or last.received is None:
            stream.error = "its /metrics could not be read during the run"
        elif last.received - first.received <= 0:
            stream.error = "no stream event received"
        elif not last.up:
            stream.error = "binance_up was 0 at the end of the run"
    if stream.error and stream.problem:
        stream.error += f" (its last warning: {stream.problem})"


# -- in process ------------------------------------------------------------------------


def decode_costs(runs: int) -> list[list[float]]:
    """Seconds to decode, validate and compute the spreads (and Q5 deltas) of every
    TRADING symbol from the all-symbols bookTicker answer, ``runs`` times."""
    raw = book_ticker_answer()
    infos = models.parse_exchange_info(json.loads(served(models.EXCHANGE_INFO, {})))
    symbols = answers.watchlist(Rankings((), ()), infos, (), all_spreads=True).spreads
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        tops = models.parse_book_tickers(raw)
        validated = time.perf_counter()
        spreads = answers.spreads_of(symbols, tops)
        answers.spread_deltas(spreads, spreads)
        timings.append([validated - started, time.perf_counter() - validated])
    return timings


def book_ticker_answer() -> bytes:
    """The simulator's all-symbols bookTicker answer, built in this process."""
    return served(BOOK_TICKER_PATH, {})


# -- figures ---------------------------------------------------------------------------


def _share(marks: list[Mark], name: str) -> float:
    """The process's share of a core from the first mark to the last."""
    first, last = marks[0], marks[-1]
    return (last.cpu.get(name, math.nan) - first.cpu.get(name, math.nan)) / (last.at - first.at)


def _figures(whole: Whole) -> list[Figure]:
    return [*_size_figures(whole), *_scrape_figures(whole), *_refresh_figures(whole),
            *_stream_figures(whole), *_rss_figures(whole)]


def _size_figures(whole: Whole) -> list[Figure]:
    figures = []
    sizes = {"REST": whole.cached_size, "stream": whole.stream.size}
    for mode, found in sizes.items():
        error = "" if mode == "REST" else _stream_failed(whole.stream, found is not None)
        for kind in ("raw", "gzip"):
            value = math.nan if found is None else float(getattr(found, kind))
            note = "" if found is None else (
                f"{found.series:,} series, {found.spreads:,} spreads" if kind == "raw" else
                f"{found.raw / max(1, found.gzip):.1f}× smaller")
            figures.append(Figure(SECTION, f"/metrics size, {kind}, {mode} --spreads all",
                                  (value,), "bytes", digits=0, note=note, error=error))
    return figures


def _stream_failed(stream: StreamSide, measured: bool) -> str:
    """Why a figure of the stream exporter does not stand for the whole market: empty when
    its run was measured; when it failed, the reason, or a pointer to it if the figure
    itself was measured (of an exporter that received no events)."""
    if not stream.error:
        return "" if measured else "not measured"
    return "the stream run failed, no events (see its CPU figure)" if measured else stream.error


def _scrape_name(clients: int, who: str) -> str:
    return f"p99 /metrics, wrk {clients} client{'s' if clients > 1 else ''}, gzip, {who}"


def _scrape_figures(whole: Whole) -> list[Figure]:
    figures = []
    for clients in CLIENTS:
        found = whole.cached_windows[clients]
        p99s = tuple(w.p99 for w in found)
        judged = clients == max(CLIENTS)
        figures.append(Figure(
            SECTION, _scrape_name(clients, "REST --spreads all, cached only"), p99s, "ms",
            f"≤ {SCRAPE_TARGET_MS:g}" if judged else "",
            median(p99s) <= SCRAPE_TARGET_MS if judged else None, digits=2,
            note=f"{_window_note(found)}; {whole.cached_meanwhile}"))
    for clients in CLIENTS:
        found = whole.stream.windows.get(clients, [])
        figures.append(Figure(
            SECTION, _scrape_name(clients, "stream --spreads all, events flowing"),
            tuple(w.p99 for w in found) or (math.nan,), "ms", digits=2,
            note=_window_note(found) if found else "",
            error=_stream_failed(whole.stream, bool(found))))
    return figures


def _window_note(found: list[scrape.Window]) -> str:
    worst = max((w.worst for w in found if w.worst is not None), default=math.nan)
    return (f"p50 {median([w.p50 for w in found]):.2f}, max {worst:.1f} ms, "
            f"{median([w.per_second for w in found]):.0f} scrapes/s, "
            f"{sum(w.errors for w in found)} errors")


def _refresh_figures(whole: Whole) -> list[Figure]:
    marks = whole.marks
    refreshes = marks[-1].book_tickers - marks[0].book_tickers
    spent = marks[-1].cpu["REST exporter"] - marks[0].cpu["REST exporter"]
    seconds = marks[-1].at - marks[0].at
    totals = tuple(sum(run) * 1000 for run in whole.decode)
    parts = "/".join(f"{median([run[i] for run in whole.decode]) * 1000:.1f}" for i in range(2))
    bytes_ = whole.market["book_ticker_bytes"]
    return [
        Figure(SECTION, "CPU per spreads refresh, REST --spreads all (refresh + render)",
               (spent / refreshes * 1000 if refreshes else math.nan,), "CPU ms",
               note=f"{refreshes} all-symbols bookTicker calls of {bytes_:,} bytes in "
               f"{seconds:.0f} s, scraped every {EVERY:g} s",
               error="" if refreshes else "no refresh in the run"),
        Figure(SECTION, "decode+validate+spreads of the all-symbols bookTicker, in process",
               totals, "ms", note=f"{bytes_:,} bytes; decode+validate/spreads {parts} ms"),
        Figure(SECTION, f"CPU, REST exporter --spreads all, refreshing every {EVERY:g} s",
               (_share(marks, "REST exporter") * 100,), "% of a core",
               note=f"{seconds:.0f} s; its simulator "
               f"{_share(marks, 'REST simulator'):.0%}"),
    ]


def _stream_figures(whole: Whole) -> list[Figure]:
    marks, stream = whole.marks, whole.stream
    first, last = marks[0], marks[-1]
    seconds = last.at - first.at
    trading = whole.market["trading"]
    if stream.error or None in (first.received, last.received, first.sent, last.sent):
        error = stream.error or "not measured"
        return [Figure(SECTION, _stream_cpu_name(), (math.nan,), "% of a core",
                       f"≤ {CPU_TARGET:.0%}", False, error=error),
                Figure(SECTION, "events received/s, stream exporter --spreads all", (math.nan,),
                       "events/s", error=error)]
    received = (_value(last.received) - _value(first.received)) / seconds
    sent = (_value(last.sent) - _value(first.sent)) / seconds
    share = _share(marks, "stream exporter")
    kept = received >= KEEP_UP * sent
    complete = stream.subscribed >= trading
    return [
        Figure(SECTION, _stream_cpu_name(), (share * 100,), "% of a core",
               f"≤ {CPU_TARGET:.0%}, at the simulated rate", share <= CPU_TARGET and kept
               and complete,
               note=f"{seconds:.0f} s after {SETTLED:g} s; received {received:,.0f}/s of "
               f"{sent:,.0f}/s sent; {stream.subscribed:,} of {trading:,} bookTicker streams "
               f"subscribed; its simulator {_share(marks, 'stream simulator'):.0%}"),
        Figure(SECTION, "events received/s, stream exporter --spreads all", (received,),
               "events/s", digits=0,
               note=f"the simulator sent {sent:,.0f}/s (bookTicker and depth), "
               f"{received / sent:.1%} received" if sent else "the simulator sent none"),
    ]


def _value(reading: float | None) -> float:
    return math.nan if reading is None else reading


def _stream_cpu_name() -> str:
    return f"CPU, stream exporter --spreads all, settled, scraped every {EVERY:g} s"


_RSS_NAMES = ("REST, cached only, after wrk", f"REST, refreshing every {EVERY:g} s",
              "stream, after the run and wrk")


def _rss_name(who: str) -> str:
    return f"peak RSS (VmHWM), {who}, --spreads all"


def _rss_figures(whole: Whole) -> list[Figure]:
    figures = []
    found = zip(_RSS_NAMES, (whole.cached_memory, whole.refreshing_memory, whole.stream.memory))
    for name, memory in found:
        peak = memory.get("VmHWM", 0) / 1024
        figures.append(Figure(
            SECTION, _rss_name(name),
            (peak if memory else math.nan,), "MB", f"≤ {RSS_TARGET_MB:g}",
            peak <= RSS_TARGET_MB if memory else False,
            note=f"VmRSS {memory['VmRSS'] / 1024:.1f} MB at the end" if memory else "",
            error=_stream_failed(whole.stream, bool(memory)) if name.startswith("stream")
            else ""))
    return figures


# -- details ---------------------------------------------------------------------------


def _details(figures: list[Figure], whole: Whole) -> str:
    market = whole.market
    lines = [
        f"The simulator lists {market['listed']:,} symbols, {market['trading']:,} of them "
        f"TRADING; its all-symbols bookTicker answer has {market['book_ticker_symbols']:,} "
        f"({market['book_ticker_bytes']:,} bytes), {market['book_ticker_trading']:,} of them "
        f"TRADING, {market['two_sided_trading']:,} of those with both sides of the book (a "
        "spread).", "", *_side_by_side(figures), "", *_decode_table(whole.decode), "",
        *_run_table(whole.marks), "", *_stream_lines(whole.stream)]
    return "\n".join(lines)


def _side_by_side(figures: list[Figure]) -> list[str]:
    by_name = {figure.name: figure for figure in figures}

    def cell(name: str) -> str:
        figure = by_name[name]
        if figure.error:
            return "failed"
        return f"{figure.median:,.{figure.digits}f} {figure.unit}"

    rows: list[tuple[str, str, str, Callable[[str], str]]] = [
        ("/metrics size, raw", "/metrics size, raw, REST --spreads all",
         "/metrics size, raw, stream --spreads all", cell),
        ("/metrics size, gzip", "/metrics size, gzip, REST --spreads all",
         "/metrics size, gzip, stream --spreads all", cell),
        *((f"scrape p99, wrk {c} client{'s' if c > 1 else ''}, gzip",
           _scrape_name(c, "REST --spreads all, cached only"),
           _scrape_name(c, "stream --spreads all, events flowing"), cell) for c in CLIENTS),
        ("CPU scraped every 15 s (REST: refreshing each time)",
         f"CPU, REST exporter --spreads all, refreshing every {EVERY:g} s",
         _stream_cpu_name(), cell),
    ]
    lines = ["Side by side (medians; targets and verdicts in the table above):", "",
             "| figure | REST | stream |", "|---|---:|---:|"]
    for label, rest, stream, show in rows:
        lines.append(f"| {label} | {show(rest)} | {show(stream)} |")
    cached, refreshing, stream = _RSS_NAMES
    lines.append(f"| peak RSS (VmHWM) | {cell(_rss_name(cached))} cached only, "
                 f"{cell(_rss_name(refreshing))} refreshing | {cell(_rss_name(stream))} |")
    return lines


def _decode_table(decode: list[list[float]]) -> list[str]:
    steps = ("decode + validate (msgspec)", "spreads + Q5 deltas")
    return ["In process, the all-symbols bookTicker answer (ms, median of "
            f"{len(decode)}):", "", "| " + " | ".join(steps) + " | total |",
            "|---:|---:|---:|",
            "| " + " | ".join(f"{median([run[i] for run in decode]) * 1000:.2f}"
                              for i in range(len(steps)))
            + f" | {median([sum(run) for run in decode]) * 1000:.2f} |"]


def _run_table(marks: list[Mark]) -> list[str]:
    names = list(marks[0].cpu)
    lines = ["The run scraped every 15 s, at each scrape: CPU seconds of each process, the REST "
             "simulator's all-symbols bookTicker calls, the stream events sent and received "
             "(cumulative):", "",
             "| s | " + " | ".join(names) + " | bookTicker calls | sent | received | up |",
             "|---:|" + "---:|" * (len(names) + 4)]
    for mark in marks:
        lines.append(f"| {mark.at - marks[0].at:.0f} | "
                     + " | ".join(f"{mark.cpu[name]:.2f}" for name in names)
                     + f" | {mark.book_tickers} | {_count(mark.sent)} | "
                     f"{_count(mark.received)} | {'' if mark.up is None else int(mark.up)} |")
    return lines


def _count(value: float | None) -> str:
    return "" if value is None else f"{value:,.0f}"


def _stream_lines(stream: StreamSide) -> list[str]:
    lines = [f"Stream exporter: {stream.error or 'measured'}."]
    if stream.stats:
        lines.append(f"Its simulator at the end: {stream.subscribed:,} @bookTicker streams "
                     f"subscribed; {json.dumps(stream.stats, sort_keys=True)}.")
    if stream.problem and not stream.error:
        lines.append(f"Its last warning: {stream.problem}")
    return lines
