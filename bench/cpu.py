"""Benchmark 4: CPU of a full-market ranking refresh, from the bytes of the 24 h ticker.

The answers are the simulator's own, built in this process by its request
handlers from the recorded market (2,520 symbols): the FULL ticker, the MINI
one the client asked for until 2026-11, and ``type=MINI&symbolStatus=TRADING``,
what it asks for now. One run decodes the JSON, validates it into
``Ticker24h`` records and ranks Q1 and Q2 against the recorded exchangeInfo
(parsed once, outside the timing: it is a separate group with a one-hour
TTL). ``orjson`` is measured as a drop-in for the JSON decode when it is
installed. exchangeInfo is measured the same way (decode + validate), all
symbols with their permission sets against ``symbolStatus=TRADING&
showPermissionSets=false``; the simulator's copy is trimmed to the fields the
product reads, so Binance's own answer is larger and shrinks by more.

The simulator's own cost of building and encoding a 200-level book is shown
beside them: every depth answer of the other benchmarks pays it, so it must
stay far below the latency L they add (target: under 5 ms).
"""

from __future__ import annotations

import importlib
import json
import time
from typing import Any, Callable, Mapping

from collector import answers, models
from collector.records import SymbolInfo
from binance_simulator.api import Api, DataFaults
from binance_simulator.market import SimulatedMarket

from bench.common import median
from bench.figures import Figure

SECTION = "4"
LIMIT_MS = 30.0
BOOK_LIMIT_MS = 5.0
STEPS = ("decode", "validate", "rank")

Loads = Callable[[bytes], Any]


def decoders() -> dict[str, Loads]:
    """``json`` always; ``orjson`` when importable."""
    found: dict[str, Loads] = {"json": json.loads}
    try:
        found["orjson"] = importlib.import_module("orjson").loads
    except ImportError:
        pass
    return found


TICKERS = {
    "FULL": {},
    "MINI": {"type": ["MINI"]},
    "MINI, TRADING": {"type": ["MINI"], "symbolStatus": ["TRADING"]},
}
EXCHANGE_INFOS = {
    "all, permission sets": {},
    "TRADING, no permission sets": {"symbolStatus": ["TRADING"],
                                    "showPermissionSets": ["false"]},
}


def served(path: str, params: Mapping[str, list[str]]) -> bytes:
    """The simulator's answer to ``path?params``, as bytes on the wire."""
    api = Api(SimulatedMarket(seed=1, now=lambda: 1_710_000_000.0))
    return json.dumps(api.handle(path, params, DataFaults()), separators=(",", ":"),
                      ensure_ascii=False).encode()


def payloads() -> dict[str, bytes]:
    """The ticker answers by variant (see the module docstring)."""
    return {name: served(models.TICKER_24H, params) for name, params in TICKERS.items()}


def exchange_info_figures(runs: int) -> tuple[list[Figure], list[str]]:
    """Bytes and decode+validate time of each exchangeInfo variant."""
    figures, lines = [], []
    for name, params in EXCHANGE_INFOS.items():
        raw = served(models.EXCHANGE_INFO, params)
        timings = []
        for _ in range(runs):
            started = time.perf_counter()
            models.parse_exchange_info(json.loads(raw))
            timings.append((time.perf_counter() - started) * 1000)
        figures.append(Figure(SECTION, f"decode+validate exchangeInfo, {name}", tuple(timings),
                              "ms", note=f"{len(raw) / 1e6:.2f} MB"))
        lines.append(f"| exchangeInfo, {name} | {len(raw):,} | json | | | | "
                     f"{median(timings):.2f} |")
    return figures, lines


def one_run(raw: bytes, loads: Loads, infos: Mapping[str, SymbolInfo]) -> list[float]:
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
    infos = models.parse_exchange_info(json.loads(served(models.EXCHANGE_INFO, {})))
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
    info_figures, info_lines = exchange_info_figures(runs)
    figures += info_figures
    lines += info_lines
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
