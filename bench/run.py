"""The ``make bench`` command: every benchmark, a table on stdout, ``BENCHMARKS.md``.

Usage: ``python -m bench [--latency-ms L] [--cost-minutes N] [--quick] [--only SECTIONS]
[--output PATH]``. Exit status 0 when everything was measured (targets missed or
not), 1 when a benchmark could not measure (e.g. a process failed to start).
"""

from __future__ import annotations

import argparse
import inspect
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Callable, Sequence

from bench import cost, cpu, decode, latency, market, memory, report, scrape, stream
from bench.common import ROOT, BenchError
from bench.figures import Figure, text_table


def _latency(args: argparse.Namespace, scratch: Path) -> tuple[list[Figure], str]:
    runs, cross_checks = (3, 1) if args.quick else (10, 3)
    return latency.measure(scratch, args.latency_ms, runs, cross_checks), ""


def _cost(args: argparse.Namespace, scratch: Path) -> tuple[list[Figure], str]:
    return cost.measure(scratch, args.latency_ms, minutes=1 if args.quick else args.cost_minutes)


def _scrape(args: argparse.Namespace, scratch: Path) -> tuple[list[Figure], str]:
    runs, seconds = (1, 2.0) if args.quick else (4, 5.0)
    return scrape.measure(scratch, (1, 10, 50), runs, seconds)


def _cpu(args: argparse.Namespace, _: Path) -> tuple[list[Figure], str]:
    return cpu.measure(10 if args.quick else 50)


def _memory(args: argparse.Namespace, scratch: Path) -> tuple[list[Figure], str]:
    return memory.measure(scratch, 40 if args.quick else 200, 1 if args.quick else memory.RUNS)


def _stream(args: argparse.Namespace, scratch: Path) -> tuple[list[Figure], str]:
    return stream.measure(scratch, args.latency_ms, stream.QUICK if args.quick else stream.FULL)


def _market(args: argparse.Namespace, scratch: Path) -> tuple[list[Figure], str]:
    return market.measure(scratch, market.QUICK if args.quick else market.FULL)


def _decode(args: argparse.Namespace, _: Path) -> tuple[list[Figure], str]:
    return decode.measure(5 if args.quick else 30)


Runner = Callable[[argparse.Namespace, Path], tuple[list[Figure], str]]
SECTIONS: dict[str, tuple[str, ModuleType, Runner]] = {
    "latency": ("1. Refresh latency", latency, _latency),
    "cost": ("2. Upstream cost", cost, _cost),
    "scrape": ("3. Scrape latency from cache", scrape, _scrape),
    "cpu": ("4. CPU of a ranking refresh", cpu, _cpu),
    "memory": ("5. Memory", memory, _memory),
    "stream": ("6. Stream mode", stream, _stream),
    "market": ("7. Whole market", market, _market),
    "decode": ("8. Decoding what Binance sends", decode, _decode),
}


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--latency-ms", type=int, default=50,
                        help="latency L the simulator adds to every answer (default 50)")
    parser.add_argument("--cost-minutes", type=int, default=3, choices=range(1, 11),
                        metavar="1-10", help="length of the upstream cost run (default 3)")
    parser.add_argument("--quick", action="store_true",
                        help="a short smoke run (1-minute cost run, fewer repeats)")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated subset of {','.join(SECTIONS)}")
    parser.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md",
                        help="report to write (default BENCHMARKS.md)")
    args = parser.parse_args(argv)
    args.only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(args.only) - set(SECTIONS)
    if unknown or args.latency_ms < 1:
        parser.error(f"unknown sections {sorted(unknown)}" if unknown else "--latency-ms < 1")
    return args


def run_sections(args: argparse.Namespace, scratch: Path
                 ) -> tuple[list[Figure], dict[str, str]]:
    """Run the chosen benchmarks in order; details are each module's method plus its data."""
    figures: list[Figure] = []
    details: dict[str, str] = {}
    for name, (title, module, runner) in SECTIONS.items():
        if name not in args.only:
            continue
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        found, data = runner(args, scratch)
        figures += found
        method = inspect.cleandoc(module.__doc__ or "").split("\n\n", 1)[-1]
        details[title] = f"{method}\n\n{data}".strip()
    return sorted(figures, key=lambda f: f.section), details


def main(argv: Sequence[str] | None = None) -> int:
    """Run, print the table, write the report; 0 even when a target is missed."""
    args = parse(argv)
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
            figures, details = run_sections(args, Path(scratch))
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    seconds = time.monotonic() - started
    about = report.machine()
    about["latency L"] = f"{args.latency_ms} ms"
    about["command"] = " ".join(["python -m bench", *(sys.argv[1:] if argv is None else argv)])
    about["run time"] = f"{seconds / 60:.1f} minutes"
    print("\n".join(f"{key}: {value}" for key, value in about.items()))
    print(text_table(figures))
    report.write(args.output, about, figures, details)
    print(f"bench: done in {seconds:.0f} s; wrote {args.output}", file=sys.stderr)
    return 0
