"""Benchmark 4: CPU of a full-market ranking refresh, from the bytes of the 24 h ticker.

The recorded ticker (2,519 symbols) is the FULL answer; the client asks for
``type=MINI``, derived here in memory the way the simulator does. One run
decodes the JSON, validates it into ``Ticker24h`` records and ranks Q1 and
Q2 against the recorded exchangeInfo (parsed once, outside the timing: it is
a separate group with a one-hour TTL). ``orjson`` is measured as a drop-in
for the JSON decode when it is installed.

The simulator's own cost of building and encoding a 200-level book is shown
beside them: every depth answer of the other benchmarks pays it, so it must
stay far below the latency L they add (target: under 5 ms).
"""

from __future__ import annotations

import importlib
import json
import time
from importlib import resources
from typing import Any, Callable, Mapping

from collector import answers, models
from collector.simulator.api import MINI_DROPPED
from collector.simulator.market import Market as SimulatedMarket

from bench.common import median
from bench.figures import Figure

SECTION = "4"
LIMIT_MS = 30.0
BOOK_LIMIT_MS = 5.0
STEPS = ("decode", "validate", "rank")

Loads = Callable[[bytes], Any]


def _data(name: str) -> bytes:
    return (resources.files("collector.simulator") / "data" / name).read_bytes()


def decoders() -> dict[str, Loads]:
    """``json`` always; ``orjson`` when importable."""
    found: dict[str, Loads] = {"json": json.loads}
    try:
        found["orjson"] = importlib.import_module("orjson").loads
    except ImportError:
        pass
    return found


def payloads() -> dict[str, bytes]:
    """The FULL recording and the MINI answer derived from it."""
    full = _data("ticker_24hr.json")
    mini = [{key: value for key, value in ticker.items() if key not in MINI_DROPPED}
            for ticker in json.loads(full)]
    return {"FULL": full, "MINI": json.dumps(mini, separators=(",", ":")).encode()}


def one_run(raw: bytes, loads: Loads, infos: Mapping[str, models.SymbolInfo]) -> list[float]:
    """Seconds to decode, validate and rank once."""
    started = time.perf_counter()
    payload = loads(raw)
    decoded = time.perf_counter()
    tickers = models.parse_tickers(payload)
    validated = time.perf_counter()
    answers.top_by_volume(tickers, infos)
    answers.top_by_trades(tickers, infos)
    return [decoded - started, validated - decoded, time.perf_counter() - validated]


def measure(runs: int) -> tuple[list[Figure], str]:
    """Total time per variant as figures, and a Markdown breakdown by step."""
    infos = models.parse_exchange_info(json.loads(_data("exchange_info.json")))
    figures = []
    lines = ["| answer | bytes | decoder | decode ms | validate ms | rank ms | total ms |",
             "|---|---:|---|---:|---:|---:|---:|"]
    for kind, raw in payloads().items():
        for name, loads in decoders().items():
            steps = [one_run(raw, loads, infos) for _ in range(runs)]
            totals = tuple(sum(step) * 1000 for step in steps)
            middle = median(totals)
            figures.append(Figure(
                SECTION, f"decode+validate+rank, {kind} ticker, {name}", totals, "ms",
                f"≤ {LIMIT_MS:g}", middle <= LIMIT_MS, note=f"{len(raw) / 1e6:.2f} MB"))
            parts = [median([step[i] for step in steps]) * 1000 for i in range(len(STEPS))]
            lines.append(f"| {kind} | {len(raw):,} | {name} | "
                         + " | ".join(f"{part:.2f}" for part in parts) + f" | {middle:.2f} |")
    figures.append(simulator_book(runs))
    if "orjson" not in decoders():
        lines.append("\norjson is not installed: `pip install orjson` to measure it.")
    return figures, "\n".join(lines)


def simulator_book(runs: int) -> Figure:
    """Milliseconds for the simulator to build and encode one 200-level depth answer."""
    market = SimulatedMarket(seed=1, now=lambda: 1_710_000_000.0)
    timings = []
    for step in range(runs):
        started = time.perf_counter()
        json.dumps(market.book("BTCUSDT", 200, step).depth_payload())
        timings.append((time.perf_counter() - started) * 1000)
    return Figure(SECTION, "simulator: build + encode a 200-level book", tuple(timings), "ms",
                  f"≤ {BOOK_LIMIT_MS:g}", median(timings) <= BOOK_LIMIT_MS, digits=2)
