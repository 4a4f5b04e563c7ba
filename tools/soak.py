"""`make soak`: the exporter under random upstream faults, scraped hard, for minutes.

Starts the simulator and a real `binance-exporter` process on loopback, switches
a random fault (or none) on the simulator every few seconds, scrapes /metrics
with 10 clients at 1 s, and samples the exporter's RSS and thread count. Prints
a summary and writes its section of RELIABILITY.md. Stops by itself after --minutes.

Two runs, one after the other (``--mode`` picks one):

* ``rest``: the exporter in its default REST mode, under REST faults;
* ``stream``: the exporter with ``--source stream`` on the simulator's streams, under
  REST faults and stream faults (``ws_...``) switched side by side. Every scrape is
  also checked against the simulator: no value from a connection that had already
  gone, no book published while unsynced or unlike the simulator's (see
  :class:`Checks`), and the connection attempts are counted against the exporter's cap.

    .venv/bin/python tools/soak.py --minutes 10 --mode stream
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import random
import re
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from bisect import bisect_left, bisect_right
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

from binance_simulator.market import SimulatedMarket
from binance_simulator.testkit import SimulatorProcess, running_exporter, running_simulator
from collector.costs import peak_weight_per_minute
from collector.records import STREAM, Settings

ROOT = Path(__file__).resolve().parent.parent
ENDPOINTS = ["/api/v3/exchangeInfo", "/api/v3/ticker/24hr", "/api/v3/depth",
             "/api/v3/ticker/bookTicker"]
FAULTS: list[dict[str, Any]] = [
    {"name": "latency", "ms": 1500}, {"name": "timeout", "seconds": 3}, {"name": "reset"},
    {"name": "close_immediately"}, {"name": "error_5xx", "status": 503},
    {"name": "error_5xx", "status": 500, "rate": 0.5},
    {"name": "status", "status": 429, "retry_after": 5},
    {"name": "status", "status": 418, "retry_after": 5},
    {"name": "status", "status": 403, "retry_after": 5}, {"name": "malformed_json"},
    {"name": "wrong_type"}, {"name": "non_numeric_price"}, {"name": "negative_price"},
    {"name": "empty_book_side", "side": "ask"}, {"name": "crossed_book"},
    {"name": "drop_symbol", "symbol": "FLOKIUSDT"},
]
# every stream fault of binance_simulator/faults.py; a rate below 1 leaves some steps alone
STREAM_FAULTS: list[dict[str, Any]] = [
    {"name": "ws_gap", "rate": 0.3}, {"name": "ws_stall"}, {"name": "ws_close"},
    {"name": "ws_close", "rate": 0.2}, {"name": "ws_malformed", "rate": 0.3},
    {"name": "ws_malformed", "streams": ["bookTicker"]},
    {"name": "ws_refuse", "status": 503}, {"name": "ws_refuse", "status": 429},
    {"name": "ws_refuse", "status": 403}, {"name": "ws_no_pong_close"},
    {"name": "ws_shutdown"}, {"name": "ws_shutdown", "seconds": 3},
]
SEED = 1  # the simulator's --seed: the checks recompute its market
STEP_SECONDS = 1.0  # the simulator's --step-seconds
PING_SECONDS = 1.0  # the simulator's --ws-ping-seconds: ws_no_pong_close bites within 3 s
DEPTH_LEVELS = 200  # the exporter's default --depth-levels, summed into the notional
GRACE = 1.0  # seconds the exporter may take to notice a connection has gone
# seconds from a step's first event to the exporter having applied all of them: the
# simulator computes five full-depth diffs a step (300-400 KB of JSON each), the exporter
# parses them on one thread, on a machine both share with ten scrapers
FRESH = 3.0
LOOKBACK = 120  # steps back a value shown may be from (the exporter's stall watchdog: 30 s)
ATTEMPT_WINDOW = 300.0  # the exporter's cap: 30 connection attempts in 300 s
MAX_ATTEMPTS = 30
# the exporter's worst minute in stream mode at the flags this soak gives it (StreamSoak)
STREAM_WEIGHT_BUDGET = peak_weight_per_minute(Settings(source=STREAM, depth_levels=DEPTH_LEVELS))


def proc_status(pid: int) -> tuple[int, int]:
    """(RSS in kB, threads) of a process."""
    text = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    rss = int(re.search(r"VmRSS:\s+(\d+)", text).group(1))  # type: ignore[union-attr]
    threads = int(re.search(r"Threads:\s+(\d+)", text).group(1))  # type: ignore[union-attr]
    return rss, threads


class Soak:  # pylint: disable=too-many-instance-attributes
    """One run: processes, fault switcher, scrapers and a sampler, all bounded by ``stop_at``.

    This is the REST-mode run; :class:`StreamSoak` changes what the exporter is started
    with, which faults are switched, and what is kept of each scrape and reported.
    """

    mode = "rest"
    heading = "REST mode"

    def __init__(self, seconds: float, clients: int, switch: float, seed: int,
                 logs: Path | None = None) -> None:
        self.seconds, self.clients, self.switch = seconds, clients, switch
        self.random = random.Random(seed)
        self.logs = logs  # where the processes' output goes; None: a temporary directory
        self.stop_at = 0.0
        self.scrapes: list[tuple[bool, float]] = []
        self.samples: list[tuple[float, int, int]] = []
        self.faults_applied = 0
        self.switches = Switches()
        self.lock = threading.Lock()

    def simulator_args(self) -> list[str]:
        """Flags of ``binance-simulator`` beyond the test kit's."""
        return []

    def exporter_args(self, sim: SimulatorProcess) -> list[str]:
        """Flags of ``binance-exporter`` beyond the test kit's."""
        del sim  # the stream-mode run points the exporter at its streams
        return ["--timeout", "1"]

    def draw_faults(self) -> list[dict[str, Any]]:
        """The next faults to switch to: a random REST fault on random endpoints, or none."""
        if self.random.random() < 0.3:
            return []
        fault = dict(self.random.choice(FAULTS))
        fault["endpoints"] = self.random.sample(ENDPOINTS, self.random.randint(1, 4))
        self.faults_applied += 1
        return [fault]

    def keep(self, ok: bool, started: float, elapsed: float, body: bytes) -> None:
        """Record one scrape (``started``: Unix time; ``elapsed``: seconds)."""
        del started, body  # only the stream-mode run checks what a scrape showed
        with self.lock:
            self.scrapes.append((ok, elapsed))

    def scraper(self, url: str) -> None:
        """One client: GET /metrics every second."""
        while time.monotonic() < self.stop_at:
            started, began = time.time(), time.monotonic()
            body = b""
            try:
                with urllib.request.urlopen(url, timeout=15) as answer:
                    body = answer.read()
                    ok = answer.status == 200
            except (urllib.error.URLError, OSError):
                ok = False
            elapsed = time.monotonic() - began
            self.keep(ok, started, elapsed, body)
            time.sleep(max(0.0, 1.0 - elapsed))

    def switcher(self, sim: SimulatorProcess) -> None:
        """Switch to random faults, or none, every few seconds."""
        while time.monotonic() < self.stop_at:
            faults = self.draw_faults()
            self.switches.add(time.time(), faults)
            if faults:
                sim.set_faults(faults)
            else:
                sim.clear_faults()
            time.sleep(self.switch)
        sim.clear_faults()

    def sampler(self, pid: int) -> None:
        """RSS and threads of the exporter every 5 s."""
        started = time.monotonic()
        while time.monotonic() < self.stop_at:
            rss, threads = proc_status(pid)
            self.samples.append((time.monotonic() - started, rss, threads))
            time.sleep(5)

    def run(self) -> dict[str, Any]:
        """Start everything, wait for the end, stop everything; the summary."""
        with tempfile.TemporaryDirectory(prefix="soak-") as scratch, \
                running_simulator(*self.simulator_args(), logs=self.logs or Path(scratch),
                                  name=f"simulator-{self.mode}") as sim, \
                running_exporter(sim.url, *self.exporter_args(sim),
                                 logs=self.logs or Path(scratch),
                                 name=f"exporter-{self.mode}") as exporter:
            stats_before = sim.stats()
            self.stop_at = time.monotonic() + self.seconds
            started = time.time()
            threads = [threading.Thread(target=self.scraper, args=(exporter.url + "/metrics",))
                       for _ in range(self.clients)]
            threads += [threading.Thread(target=self.switcher, args=(sim,)),
                        threading.Thread(target=self.sampler, args=(exporter.pid,))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(self.seconds + 60)
            stats = sim.stats()
            alive = exporter.process.poll() is None
            extra = self.observe(sim, started)
        weight = stats["weight_total"] - stats_before["weight_total"]
        return {**self.summary(weight, alive), **extra}

    def observe(self, sim: SimulatorProcess, started: float) -> dict[str, Any]:
        """Figures of this mode's own, read from the simulator before it stops."""
        del sim, started
        return {}

    def summary(self, weight: int, alive: bool) -> dict[str, Any]:
        """The figures of the run."""
        latencies = sorted(elapsed for _, elapsed in self.scrapes)
        rss = [s[1] for s in self.samples]
        threads = [s[2] for s in self.samples]
        return {
            "minutes": self.seconds / 60, "clients": self.clients,
            "faults_switched": self.faults_applied,
            "scrapes": len(self.scrapes),
            "answered_pct": 100 * sum(ok for ok, _ in self.scrapes) / max(1, len(self.scrapes)),
            "p50_ms": 1000 * statistics.median(latencies),
            "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
            "max_ms": 1000 * latencies[-1],
            # after the first minute: start-up allocations are not growth
            "rss_first_mb": next((s[1] for s in self.samples if s[0] >= 60), rss[0]) / 1024,
            "rss_last_mb": rss[-1] / 1024,
            "rss_max_mb": max(rss) / 1024,
            "threads_min": min(threads), "threads_max": max(threads),
            "rss_by_minute": [round(s[1] / 1024, 1) for s in self.samples if int(s[0]) % 60 < 5],
            "weight_per_minute": weight / (self.seconds / 60),
            "exporter_alive": alive,
        }

    @staticmethod
    def ok(result: dict[str, Any]) -> bool:
        """Whether the run met its targets."""
        return bool(result["answered_pct"] == 100 and result["exporter_alive"]
                    and result["weight_per_minute"] <= 600)

    @staticmethod
    def rows(result: dict[str, Any]) -> list[tuple[str, str, str]]:
        """The table's rows: (figure, measured, target)."""
        return [
            ("scrapes answered 200", f"{result['answered_pct']:.2f} % of {result['scrapes']}",
             "100 %"),
            ("scrape time p50 / p99 / max",
             f"{result['p50_ms']:.1f} / {result['p99_ms']:.1f} / {result['max_ms']:.1f} ms",
             "p99 < 10 s scrape timeout"),
            ("exporter RSS at 1 min / at the end / max",
             f"{result['rss_first_mb']:.1f} / {result['rss_last_mb']:.1f} / "
             f"{result['rss_max_mb']:.1f} MB", "flat"),
            ("exporter threads min / max", f"{result['threads_min']} / {result['threads_max']}",
             "flat"),
            ("upstream weight per minute", f"{result['weight_per_minute']:.0f}",
             "≤ 600 (10 % of Binance's limit)"),
            ("exporter still running", str(result["exporter_alive"]), "True"),
        ]

    def section(self, result: dict[str, Any]) -> str:
        """This mode's section of RELIABILITY.md."""
        return f"""## {self.heading}

`make soak` ({Path(__file__).name}): the exporter against the simulator with a random
fault (or none) switched every few seconds ({result['faults_switched']} faults applied), scraped
by {result['clients']} clients at 1 s for {result['minutes']:g} minutes.

{machine()}

{table(self.rows(result))}

Exporter RSS (MB) about every minute: {", ".join(map(str, result["rss_by_minute"]))}.

Weight: a failed group is held before its next attempt (books and spreads for
their TTL, rankings and exchangeInfo from 60 s doubling up to theirs), and nothing
is sent during a 429/418 cool-down. But a failing attempt can cost more than a
healthy one: a timeout or 5xx is retried once (`--retries 1`) and
Binance charges answers that then fail validation. With a new fault every few
seconds the rate therefore sits somewhat above the healthy 274/min of
BENCHMARKS.md (this run includes the one-off cold start of 229 weight, ~23/min
over 10 minutes); the budget checked is 10 % of Binance's 6,000/min.

Scrape times above a few milliseconds are scrapes that waited for a refresh
meeting an injected timeout or latency; the maximum stays under the 8 s refresh
budget. RSS grows in steps (allocator high-water marks after bursts of
refreshes), not steadily. Threads: the HTTP event loop, a pool of up to 8 for
scrapes that wait on a refresh, and the market's pools for parallel calls; the
count moves with how many scrapes are waiting, never with how many connect.
"""


# -- stream mode ------------------------------------------------------------------------

SHOWN = re.compile(
    r"^(binance_(?:best_bid_price|best_ask_price|price_spread|order_book_notional|"
    r"order_book_synced|stream_connected|stream_reconnects_total))(?:\{([^}]*)\})? (\S+)$",
    re.M)
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass
class Shown:  # pylint: disable=too-many-instance-attributes
    """What one stream-mode scrape showed of the values under check (symbol → value)."""

    started: float  # Unix time the scrape was sent
    ended: float  # Unix time its answer was read
    connected: float | None = None
    bids: dict[str, float] = field(default_factory=dict)
    asks: dict[str, float] = field(default_factory=dict)
    spreads: set[str] = field(default_factory=set)
    books: dict[str, dict[str, float]] = field(default_factory=dict)  # symbol → side → value
    synced: dict[str, float] = field(default_factory=dict)
    reconnects: dict[str, float] = field(default_factory=dict)  # reason → attempts

    @classmethod
    def parse(cls, text: str, started: float, ended: float) -> Shown:
        """Read the families under check from an exposition."""
        shown = cls(started, ended)
        for name, labels, value in SHOWN.findall(text):
            label = dict(LABEL.findall(labels))
            number = float(value)
            if name == "binance_stream_connected":
                shown.connected = number
            elif name == "binance_stream_reconnects_total":
                shown.reconnects[label["reason"]] = number
            elif name == "binance_order_book_notional":
                shown.books.setdefault(label["symbol"], {})[label["side"]] = number
            else:
                target = {"binance_best_bid_price": shown.bids,
                          "binance_best_ask_price": shown.asks,
                          "binance_order_book_synced": shown.synced}.get(name)
                if target is None:
                    shown.spreads.add(label["symbol"])
                else:
                    target[label["symbol"]] = number
        return shown

    def live_values(self) -> bool:
        """Whether it shows any value the streams deliver (spreads or books)."""
        return bool(self.bids or self.asks or self.spreads or self.books)


Pair = tuple[float, float]


class Model:
    """The simulator's market recomputed here (a pure function of seed, symbol and step):
    each step's best bid and ask, and its book's notionals over the best DEPTH_LEVELS
    levels a side, as the exporter sums them; indexed by value, for steps first..last."""

    def __init__(self, first: int, last: int) -> None:
        self.market = SimulatedMarket(SEED, STEP_SECONDS)
        self.first, self.last = first, last
        self._values: dict[tuple[str, str], list[Pair]] = {}  # (kind, symbol) → by step
        self._index: dict[tuple[str, str], dict[Pair, list[int]]] = {}

    @staticmethod
    def step(at: float) -> int:
        """The market step at Unix time ``at``."""
        return math.floor(at / STEP_SECONDS)

    def steps(self, kind: str, symbol: str, shown: Pair, first: int, last: int) -> list[int]:
        """The steps in [first, last] whose ``kind`` ("top": best bid and ask; "book": bid
        and ask notionals) of ``symbol`` is ``shown`` (notionals: to 12 digits)."""
        key = (kind, symbol)
        if key not in self._values:
            compute = self._top if kind == "top" else self._notional
            values = self._values[key] = [compute(symbol, step)
                                          for step in range(self.first, self.last + 1)]
            index = self._index[key] = {}
            for step, value in enumerate(values, self.first):
                index.setdefault(value, []).append(step)
        steps = self._index[key].get(shown)
        if steps is None and kind == "book":  # the same sum, rounded another way?
            steps = [step for step, value in enumerate(self._values[key], self.first)
                     if all(math.isclose(a, b, rel_tol=1e-12, abs_tol=0)
                            for a, b in zip(value, shown))]
        steps = steps or []
        return steps[bisect_left(steps, first):bisect_left(steps, last + 1)]

    def _top(self, symbol: str, step: int) -> Pair:
        top = self.market.book(symbol, 1, step).book_ticker_payload()
        return float(top["bidPrice"]), float(top["askPrice"])

    def _notional(self, symbol: str, step: int) -> Pair:
        book = self.market.book(symbol, DEPTH_LEVELS, step)
        # units are 10^-8: a price times a quantity counts 10^-16, exactly
        return (float(Decimal(sum(p * q for p, q in book.bids)).scaleb(-16)),
                float(Decimal(sum(p * q for p, q in book.asks)).scaleb(-16)))


@dataclass(frozen=True)
class Carrier:
    """One connection's record of one stream (from ``GET /_sim/connections``): when it
    ended (inf while open), and the market steps it carried, as (step, when), in order:
    the step each subscription started from (the simulator sends changes only), then
    each step whose events it sent while subscribed."""

    opened: float
    closed: float
    reason: str  # how it ended, as the simulator logged it ("" while open)
    steps: tuple[tuple[int, float], ...]
    times: tuple[float, ...]  # of the steps, for bisection

    @classmethod
    def of(cls, entry: dict[str, Any], stream: str) -> Carrier:
        """``stream``'s record on the connection logged as ``entry``."""
        steps = []
        for since, until in entry["streams"][stream]:
            until = math.inf if until is None else until
            steps.append((Model.step(since), since))
            steps += [(step, at) for step, at in entry["sent"] if since <= at <= until]
        closed = math.inf if entry["closed_at"] is None else entry["closed_at"]
        steps.sort(key=lambda sent: sent[1])
        return cls(entry["at"], closed, entry["closed"] or "", tuple(steps),
                   tuple(at for _, at in steps))

    def fresh(self, since: float, until: float) -> list[int]:
        """The steps a client may still show at ``until`` if it has read everything this
        connection sent up to ``since``: the last one sent by then, and any sent after."""
        first = max(0, bisect_right(self.times, since) - 1)
        return [step for step, _ in self.steps[first:bisect_right(self.times, until)]]

    def ever(self, until: float) -> list[int]:
        """Every step carried up to ``until``."""
        return [step for step, _ in self.steps[:bisect_right(self.times, until)]]


@dataclass(frozen=True)
class Finding:
    """A scrape that counts, and why; for a book unlike the simulator's, the symbol and
    when that book was synced (between the last scrape that showed it unsynced and the
    first that showed it synced), to tell which snapshot it was built on."""

    shown: Shown
    why: str
    book: str = ""
    synced_between: tuple[float, float] = (-math.inf, math.inf)


class Checks:  # pylint: disable=too-many-instance-attributes
    """The stream-mode checks of every scrape, against the simulator's connection log
    (``GET /_sim/connections``) and its market, recomputed (:class:`Model`). A value is
    *fresh* if a connection still open when the scrape was sent, or gone less than GRACE
    before, carried it at a step it may still be shown for (:meth:`Carrier.fresh`, the
    exporter being given FRESH seconds to read what was sent; a book, at that step or a
    later one: a snapshot may be newer than the last event). Else it counts:

    * **gone**: a best bid/ask, spread or notional shown while ``binance_stream_connected``
      is 0; a best bid/ask or notional that only connections gone by then carried; one
      that no connection carried at all (the simulator never sent it);
    * **stale**: an older value of a connection still open: it sent newer ones more than
      FRESH before the scrape.
    * **unsynced**: a notional of a symbol whose ``binance_order_book_synced`` is not 1 in
      the same scrape, or a (bid, ask) notional pair unlike the simulator's book (best
      DEPTH_LEVELS levels a side) at every step of the last LOOKBACK.

    Scrapes are checked in the order they were sent.
    """

    def __init__(self, connections: list[dict[str, Any]], model: Model) -> None:
        self.model = model
        self.carriers: dict[str, list[Carrier]] = {}
        for entry in connections:
            for stream in entry["streams"]:
                self.carriers.setdefault(stream, []).append(Carrier.of(entry, stream))
        self.gone: list[Finding] = []
        self.stale: list[Finding] = []
        self.unsynced: list[Finding] = []  # one per book: a scrape may show several
        # (seconds after its connection went, within GRACE; how it ended; the scrape's time;
        # the value's stream)
        self.close_calls: list[tuple[float, str, float, str]] = []
        self.checked = Counter[str]()
        self._unsynced_seen: dict[str, float] = {}  # symbol → last scrape showing it unsynced
        self._synced_seen: dict[str, float] = {}  # symbol → first scrape showing it synced since

    def check(self, shown: Shown) -> None:
        """Check one scrape; what it breaks goes to ``gone``, ``stale`` and ``unsynced``."""
        problems: dict[str, list[str]] = {"gone": [], "stale": []}
        if shown.live_values() and shown.connected != 1:
            problems["gone"].append(f"values shown with binance_stream_connected "
                                    f"{shown.connected}")
        first = self.model.step(shown.started) - LOOKBACK
        last = self.model.step(shown.ended)
        for symbol in sorted(shown.bids.keys() | shown.asks.keys()):
            self.checked["tops"] += 1
            value = (shown.bids.get(symbol, math.nan), shown.asks.get(symbol, math.nan))
            steps = set(self.model.steps("top", symbol, value, first, last))
            self._judge(f"{symbol.lower()}@bookTicker", value, steps, shown, problems)
        self._track_sync(shown)
        for symbol, sides in sorted(shown.books.items()):
            self.checked["books"] += 1
            value = (sides.get("bid", math.nan), sides.get("ask", math.nan))
            if shown.synced.get(symbol) != 1:
                self.unsynced.append(Finding(shown, f"{symbol} notional {value} while synced "
                                                    f"is {shown.synced.get(symbol)}"))
            steps = set(self.model.steps("book", symbol, value, first, last))
            if not steps:
                window = (self._unsynced_seen.get(symbol, -math.inf),
                          self._synced_seen.get(symbol, shown.started))
                self.unsynced.append(Finding(
                    shown, f"{symbol} notional {value}: the simulator's book at no step of "
                           f"the last {LOOKBACK} s", symbol, window))
            else:
                self._judge(f"{symbol.lower()}@depth@100ms", value, steps, shown, problems,
                            or_later=True)
        for kind, found in problems.items():
            if found:
                getattr(self, kind).append(Finding(shown, "; ".join(found)))

    def _track_sync(self, shown: Shown) -> None:
        for symbol in shown.synced.keys() | shown.books.keys():
            if shown.synced.get(symbol) == 1:
                self._synced_seen.setdefault(symbol, shown.started)
            else:
                self._unsynced_seen[symbol] = shown.ended
                self._synced_seen.pop(symbol, None)

    def _judge(self, stream: str, value: Pair, steps: set[int], shown: Shown,  # pylint: disable=too-many-arguments,too-many-positional-arguments
               problems: dict[str, list[str]], or_later: bool = False) -> None:
        """Whether ``value`` of ``stream``, the market of ``steps``, is fresh; if not,
        why it counts goes to ``problems``."""
        carriers = [c for c in self.carriers.get(stream, ()) if c.opened <= shown.ended]
        for carrier in carriers:
            if carrier.closed < shown.started - GRACE:
                continue
            fresh = carrier.fresh(shown.started - FRESH, shown.ended)
            if fresh and (steps & set(fresh) or or_later and max(steps) >= min(fresh)):
                if carrier.closed < shown.started:
                    self.close_calls.append((shown.started - carrier.closed, carrier.reason,
                                             shown.started, stream))
                return
        what = f"{stream} {value}"
        gone = [c for c in carriers if c.closed < shown.started - GRACE and steps & set(
            c.ever(shown.ended))]
        if gone:
            latest = max(c.closed for c in gone)
            problems["gone"].append(f"{what}: carried only by connections gone "
                                    f"{shown.started - latest:.3f} s before")
        elif any(steps & set(c.ever(shown.ended)) for c in carriers):
            newer = min((at for c in carriers for step, at in c.steps
                         if at <= shown.ended and step > max(steps)), default=math.nan)
            problems["stale"].append(f"{what}: its connection sent a newer one "
                                     f"{shown.started - newer:.1f} s before")
        else:
            problems["gone"].append(f"{what}: no connection carried it")


class Switches:
    """When the switcher set which faults (Unix time, the faults), in order."""

    SNAPSHOT_FAULTS = ("empty_book_side", "crossed_book")  # a depth answer, changed on purpose
    MARGIN = 4.0  # seconds a snapshot may be asked for before its book syncs

    def __init__(self) -> None:
        self.history: list[tuple[float, list[dict[str, Any]]]] = []

    def add(self, at: float, faults: list[dict[str, Any]]) -> None:
        """The faults set at ``at``."""
        self.history.append((at, faults))

    def active(self, start: float, end: float) -> list[dict[str, Any]]:
        """Every fault active at some moment of [start, end]."""
        times = [at for at, _ in self.history]
        first = max(0, bisect_left(times, start) - 1)
        return [fault for at, faults in self.history[first:] if at <= end for fault in faults]

    def corrupted_snapshot(self, finding: Finding) -> str:
        """The faults that changed the depth answers while the finding's book was synced
        ("a or b"), or ""."""
        start, end = finding.synced_between
        return " or ".join(sorted({
            fault["name"] for fault in self.active(start - self.MARGIN, end)
            if fault["name"] in self.SNAPSHOT_FAULTS
            and "/api/v3/depth" in fault.get("endpoints", [])}))

    def describe(self, at: float) -> str:
        """The faults active at ``at``, briefly."""
        faults = self.active(at, at)
        return " + ".join(f"{f['name']}({', '.join(f.get('endpoints', f.get('streams', [])))})"
                          if f.get("endpoints") or f.get("streams") else f["name"]
                          for f in faults) or "none"


def longest_run(shown: list[Shown], findings: list[Finding]) -> float:
    """The longest a symbol's book was shown unlike the simulator's in every scrape in a
    row (seconds from the first such scrape to the last)."""
    wrong = {(id(f.shown), f.book) for f in findings}
    longest = 0.0
    for symbol in {f.book for f in findings}:
        since: float | None = None
        for scrape in shown:
            if (id(scrape), symbol) in wrong:
                since = scrape.started if since is None else since
                longest = max(longest, scrape.started - since)
            else:
                since = None
    return longest


def by_reason(calls: list[tuple[float, str, float, str]]) -> dict[str, list[float]]:
    """Close calls grouped by how their connection ended."""
    grouped: dict[str, list[float]] = {}
    for lag, reason, _, _ in calls:
        grouped.setdefault(reason, []).append(lag)
    return grouped


def spaced(findings: list[Finding], count: int = 5, apart: float = 10.0) -> list[Finding]:
    """The first ``count`` findings at least ``apart`` seconds from each other."""
    chosen: list[Finding] = []
    for finding in findings:
        if not chosen or finding.shown.started >= chosen[-1].shown.started + apart:
            chosen.append(finding)
    return chosen[:count]


def busiest(times: list[float], window: float) -> tuple[int, float]:
    """The most of ``times`` (sorted) within any ``window`` seconds, and the seconds from
    the first of them to the last."""
    most, span, start = 0, 0.0, 0
    for end, at in enumerate(times):
        while times[start] <= at - window:
            start += 1
        if end - start + 1 > most:
            most, span = end - start + 1, at - times[start]
    return most, span


class StreamSoak(Soak):
    """The stream-mode run: the exporter on the simulator's streams, REST and stream
    faults switched side by side, every scrape kept and checked."""

    mode = "stream"
    heading = "Stream mode"

    def __init__(self, seconds: float, clients: int, switch: float, seed: int,
                 logs: Path | None = None) -> None:
        super().__init__(seconds, clients, switch, seed, logs)
        self.shown: list[Shown] = []
        self.stream_faults_applied = 0

    def simulator_args(self) -> list[str]:
        return ["--seed", str(SEED), "--step-seconds", str(STEP_SECONDS),
                "--ws-ping-seconds", str(PING_SECONDS)]

    def exporter_args(self, sim: SimulatorProcess) -> list[str]:
        return ["--timeout", "1", "--source", "stream", "--stream-url", sim.stream_url,
                "--depth-levels", str(DEPTH_LEVELS)]

    def draw_faults(self) -> list[dict[str, Any]]:
        """A REST fault drawn as in REST mode, and beside it a random stream fault, or none."""
        faults = super().draw_faults()
        if self.random.random() >= 0.3:
            faults.append(dict(self.random.choice(STREAM_FAULTS)))
            self.stream_faults_applied += 1
        return faults

    def keep(self, ok: bool, started: float, elapsed: float, body: bytes) -> None:
        super().keep(ok, started, elapsed, body)
        if ok:
            shown = Shown.parse(body.decode("utf-8", errors="replace"), started,
                                started + elapsed)
            with self.lock:
                self.shown.append(shown)

    def observe(self, sim: SimulatorProcess, started: float) -> dict[str, Any]:
        """Check every scrape kept against the simulator's log and market."""
        connections = sim.connections()
        ended = time.time()
        shown = sorted(self.shown, key=lambda s: s.started)
        checks = Checks(connections, Model(Model.step(started) - LOOKBACK,
                                           Model.step(ended) + 1))
        for scrape in shown:
            checks.check(scrape)
        causes = [(f, self.switches.corrupted_snapshot(f) if f.book else "")
                  for f in checks.unsynced]
        unsynced = {id(f.shown) for f in checks.unsynced}
        unlike = {id(f.shown) for f in checks.unsynced if f.book}
        explained = unlike - {id(f.shown) for f, cause in causes if f.book and not cause}
        if self.logs is not None:  # everything, for whoever investigates
            findings = [f"{kind}: {self.example(f)}" for kind in ("gone", "stale", "unsynced")
                        for f in getattr(checks, kind)]
            findings += [f"close call: {at:.3f}: {stream} {1000 * lag:.0f} ms after its "
                         f"connection ended ({reason})"
                         for lag, reason, at, stream in checks.close_calls]
            (self.logs / "findings-stream.txt").write_text("\n".join(findings) + "\n",
                                                          encoding="utf-8")
            (self.logs / "connections-stream.json").write_text(json.dumps(connections),
                                                               encoding="utf-8")
        attempts = sorted(entry["at"] for entry in connections)
        last = shown[-1].reconnects if shown else {}
        return {
            "stream_faults_switched": self.stream_faults_applied,
            "checked_scrapes": len(shown),
            "connected_pct": 100 * sum(s.connected == 1 for s in shown) / max(1, len(shown)),
            "with_tops": sum(bool(s.bids) for s in shown),
            "with_books": sum(bool(s.books) for s in shown),
            "tops_checked": checks.checked["tops"], "books_checked": checks.checked["books"],
            "gone": len(checks.gone), "stale": len(checks.stale), "unsynced": len(unsynced),
            "while_unsynced": len({id(f.shown) for f in checks.unsynced if not f.book}),
            "unlike": len(unlike), "unlike_on_corrupted_snapshots": len(explained),
            "corrupted_by": sorted({name for _, cause in causes
                                    for name in cause.split(" or ") if name}),
            "longest_wrong_book_s": longest_run(shown, [f for f in checks.unsynced if f.book]),
            "examples": [self.example(f) for f in
                         spaced(checks.gone) + spaced(checks.stale) + spaced(checks.unsynced)],
            "close_calls": len(checks.close_calls),
            "close_calls_by_reason": {
                reason: (len(lags), 1000 * max(lags)) for reason, lags in sorted(
                    by_reason(checks.close_calls).items())},
            "attempts": len(attempts),
            "outcomes": dict(Counter(entry["outcome"] for entry in connections)),
            "closes": dict(Counter(entry["closed"] for entry in connections
                                   if entry["closed"] is not None)),
            "attempts_max_window": busiest(attempts, ATTEMPT_WINDOW)[0],
            "attempts_max_window_span": busiest(attempts, ATTEMPT_WINDOW)[1],
            "attempts_by_window": [
                sum(1 for at in attempts if started + i <= at < started + i + ATTEMPT_WINDOW)
                for i in range(0, max(1, int(self.seconds)), int(ATTEMPT_WINDOW))],
            "reconnects": {reason: int(count) for reason, count in sorted(last.items())},
        }

    def example(self, finding: Finding) -> str:
        """One finding, with the faults active when it was scraped (and, for a book, when
        it was synced)."""
        at = datetime.fromtimestamp(finding.shown.started, timezone.utc)
        text = f"{at:%H:%M:%S.%f}"[:-3] + f" UTC: {finding.why}; faults: " + \
            self.switches.describe(finding.shown.started)
        if finding.book:
            start, end = (finding.shown.started - at for at in finding.synced_between)
            cause = self.switches.corrupted_snapshot(finding) or "no depth answer changed then"
            text += f"; book synced {end:.1f} to {start:.1f} s before ({cause})"
        return text

    @staticmethod
    def ok(result: dict[str, Any]) -> bool:
        return bool(result["answered_pct"] == 100 and result["exporter_alive"]
                    and result["weight_per_minute"] <= STREAM_WEIGHT_BUDGET
                    and result["gone"] == 0 and result["stale"] == 0
                    and result["unsynced"] == 0
                    and result["attempts_max_window"] <= MAX_ATTEMPTS)

    @staticmethod
    def rows(result: dict[str, Any]) -> list[tuple[str, str, str]]:
        common = Soak.rows(result)
        outcomes = result["outcomes"]
        corrupted = " or ".join(f"`{name}`" for name in result["corrupted_by"])
        unlike = f"{result['unlike']} of {result['with_books']} showing books"
        if result["unlike"]:
            unlike += (f"; in {result['unlike_on_corrupted_snapshots']} of them, only books "
                       f"synced while {corrupted} was on for /api/v3/depth")
        weight = (f"{result['weight_per_minute']:.0f}",
                  f"≤ {STREAM_WEIGHT_BUDGET}, the exporter's worst minute in stream mode")
        return [*common[:2], (
            "scrapes showing values from a connection already gone",
            f"{result['gone']} of {result['checked_scrapes']} ({result['tops_checked']} best "
            f"bid/asks and {result['books_checked']} books checked)", "0"), (
            f"scrapes showing a value older than its open connection sent {FRESH:g} s before",
            f"{result['stale']} of {result['checked_scrapes']}", "0"), (
            "scrapes showing a book while its `binance_order_book_synced` is 0",
            f"{result['while_unsynced']} of {result['with_books']} showing books", "0"), (
            "scrapes showing a book unlike the simulator's at every step of the last "
            f"{LOOKBACK} s", unlike, "0"), (
            "stream connection attempts in any 5 minutes (the simulator's count)",
            f"{result['attempts_max_window']}, within {result['attempts_max_window_span']:.1f} s "
            f"(all {result['attempts']}: "
            f"{outcomes.get('accepted', 0)} accepted, {outcomes.get('refused', 0)} refused)",
            f"≤ {MAX_ATTEMPTS}, the exporter's cap"), (
            "scrapes with the streams connected", f"{result['connected_pct']:.1f} %",
            "(as the faults allow)"), *common[2:4],
            ("upstream weight per minute", *weight), common[5]]

    def section(self, result: dict[str, Any]) -> str:
        reconnects = ", ".join(f"{reason} {count}"
                               for reason, count in result["reconnects"].items())
        closes = ", ".join(f"{reason} {count}"
                           for reason, count in sorted(result["closes"].items()))
        windows = ", ".join(map(str, result["attempts_by_window"]))
        calls = ", ".join(f"{reason} {count}, {latest:.0f} ms" for reason, (count, latest)
                          in result["close_calls_by_reason"].items()) or "none"
        examples = "\n".join(f"* {line}" for line in result["examples"])
        examples = f"\nFirst scrapes that counted:\n\n{examples}\n" if examples else ""
        return f"""## {self.heading}

`make soak MODE=stream` ({Path(__file__).name}): the exporter with `--source stream` on
the simulator's streams, scraped by {result['clients']} clients at 1 s for \
{result['minutes']:g} minutes, with a random
REST fault (or none) and a random stream fault (or none) switched side by side every few
seconds ({result['faults_switched']} REST and {result['stream_faults_switched']} stream \
faults applied). The simulator pings every
{PING_SECONDS:g} s, so that `ws_no_pong_close` closes a connection within a fault's few seconds.

{machine()}

{table(self.rows(result))}

* Exporter RSS (MB) about every minute: {", ".join(map(str, result["rss_by_minute"]))}.
* Connection attempts by 5-minute window from the start: {windows}.
* `binance_stream_reconnects_total` at the end, by reason: {reconnects}.
* Connections as the simulator saw them end: {closes}.
* Scrapes with best bid/asks: {result['with_tops']}; with books: {result['with_books']}.
* Longest a book was shown unlike the simulator's, from the first scrape to the last in a
  row: {result['longest_wrong_book_s']:.1f} s (the scrapers scrape together, once a second).
* Values served within the {GRACE:g} s allowance after their connection had gone (see
  below): {result['close_calls']}; by how the connection ended (values, latest): {calls}.
{examples}
What counts, per scrape (`Checks` in {Path(__file__).name}):

The simulator's market is a pure function of (seed, symbol, step), so the soak recomputes
each step's best bid/ask and book; the simulator's connection log (`GET /_sim/connections`)
says when each connection opened and ended, from when to when it was subscribed to each
stream, and when it sent the events of which step. A stream carries the market of the step
it was subscribed at (the simulator sends changes only), then of each step it sends. A
value shown is *fresh* if a connection still open when the scrape was sent (or gone less
than {GRACE:g} s before: the exporter's time to read a close) carried it at the last step
it had sent {FRESH:g} s before the scrape (the exporter's time to apply it), or at a step
sent since; a book may also be newer (a snapshot can be). A best bid/ask and its spread
or a book that is not fresh counts as:

* **from a connection already gone** if only connections gone by then had carried it, if
  no connection ever carried it (the simulator never sent it), and whenever a best
  bid/ask, spread or notional is shown while `binance_stream_connected` is 0;
* **older than its open connection sent** if a connection still open had carried it,
  but sent newer values more than {FRESH:g} s before the scrape.

**Books published while unsynced**, two counts: scrapes that show
`binance_order_book_notional` for a symbol whose `binance_order_book_synced` is not 1; and
scrapes that show a bid/ask notional pair that is the simulator's book (best
{DEPTH_LEVELS} levels a side) at no step of the last {LOOKBACK} s, as a book that missed an
event, or was synced on a snapshot unlike the market, would. Such a book is traced to the
snapshot it was synced on: when it was synced (between the last scrape that showed it
unsynced and the first that showed it synced), was `empty_book_side` or `crossed_book`
switched on for `/api/v3/depth`?
"""


# -- the report -------------------------------------------------------------------------

INTRO = """# Reliability: soak tests

`make soak` runs the exporter against the simulator for minutes with faults switched at
random every few seconds and 10 scrapers at 1 s: once in REST mode, then once in stream
mode (`MODE=rest` or `MODE=stream` for one, `MINUTES=1` for a short run). Each run
rewrites its own section.
"""


def machine() -> str:
    """The machine and the time of the run, for a report."""
    cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                if line.startswith("model name")), platform.processor())
    cores = len(re.findall("^processor", cpuinfo, re.M))
    return (f"Machine: {cpu}, {cores} cores,\n"
            f"Python {platform.python_version()}; run {datetime.now(timezone.utc):%Y-%m-%d %H:%M}"
            " UTC.")


def table(rows: list[tuple[str, str, str]]) -> str:
    """A Markdown table of (figure, measured, target) rows."""
    lines = [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(["| figure | measured | target |", "|---|---|---|", *lines])


def merge(report: str, heading: str, section: str) -> str:
    """``report`` with the section under ``## heading`` replaced by ``section`` (appended
    if it has none); the other sections are kept as they are."""
    parts = re.split(r"(?m)^(?=## )", report)
    kept = [part.rstrip("\n") for part in parts[1:] if not part.startswith(f"## {heading}\n")]
    sections = sorted([*kept, section.rstrip("\n")], key=lambda part: part.startswith(
        "## Stream"))  # REST mode first
    return "\n\n".join([INTRO.rstrip("\n"), *sections]) + "\n"


def write_report(path: Path, soak: Soak, result: dict[str, Any]) -> str:
    """Rewrite ``soak``'s section of the report at ``path``; returns the section."""
    section = soak.section(result)
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    path.write_text(merge(old, soak.heading, section), encoding="utf-8")
    return section


def main() -> int:
    """Run the soaks; exit 1 unless each met its targets (every scrape answered, the
    exporter alive, the weight in budget; in stream mode no violation, the cap kept)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="per mode")
    parser.add_argument("--mode", choices=("rest", "stream", "both"), default="both")
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--switch-seconds", type=float, default=4.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--report", type=Path, default=ROOT / "RELIABILITY.md")
    parser.add_argument("--logs", type=Path, help="keep the processes' output in this "
                        "directory (default: a temporary one)")
    args = parser.parse_args()
    kinds = [kind for kind in (Soak, StreamSoak) if args.mode in ("both", kind.mode)]
    ok = True
    for kind in kinds:
        soak = kind(args.minutes * 60, args.clients, args.switch_seconds, args.seed,
                    args.logs)
        result = soak.run()
        print(write_report(args.report, soak, result))
        ok = soak.ok(result) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
