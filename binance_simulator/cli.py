"""The ``binance-simulator`` console script.

Prints exactly two lines once both ports are bound, ``binance-simulator
listening on http://HOST:PORT`` (the REST API) and then ``binance-simulator
streams on ws://HOST:PORT`` (the WebSocket streams); ``--port 0`` and
``--ws-port 0``, the defaults, pick free ports, so a test or benchmark harness
reads the addresses from stdout.  It then serves
until SIGTERM, SIGINT, ``POST /_sim/shutdown`` or -- with
``--exit-with-parent`` -- the death of the process that started it, which
keeps crashed test runs from leaving simulators behind.  Bad flags give a
one-line error and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from types import FrameType
from typing import NoReturn, TypeVar

from .app import Simulator, SimulatorConfig
from .faults import FAULT_NAMES, Fault, FaultError
from .market import BOOK_TICKER_RATE, STEP_SECONDS
from .server import POLL_INTERVAL, SimulatorServer
from .stream_server import StreamServer
from .streams import StreamSettings

PROG = "binance-simulator"
PARENT_POLL_SECONDS = 0.5
STOP_POLL_SECONDS = 0.1

Number = TypeVar("Number", int, float)


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error instead of usage plus error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _bounded(
    kind: Callable[[str], Number], low: float, high: float | None = None
) -> Callable[[str], Number]:
    """An argparse type: ``kind`` within [low, high], with a one-line error otherwise."""

    def convert(text: str) -> Number:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid value {text!r}") from None
        if value < low or (high is not None and value > high):
            limits = f"between {low:g} and {high:g}" if high is not None else f">= {low:g}"
            raise argparse.ArgumentTypeError(f"{text} is not {limits}")
        return value

    return convert


def _fault(text: str) -> Fault:
    try:
        return Fault.parse(text)
    except FaultError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = _Parser(prog=PROG, description="Offline simulator of the public Binance Spot API.")
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    add("--port", type=_bounded(int, 0, 65535), default=0, help="0 (default) picks a free port")
    add("--ws-port", type=_bounded(int, 0, 65535), default=0,
        help="port of the WebSocket streams; 0 (default) picks a free port")
    add("--seed", type=int, default=1, help="seed of prices, books and fault draws (default 1)")
    add("--latency-ms", type=_bounded(int, 0), default=0, help="delay added to every API answer")
    add("--weight-limit", type=_bounded(int, 1), default=6000, help="weight/minute (default 6000)")
    add("--step-seconds", type=_bounded(float, 0.001), default=STEP_SECONDS,
        help="market step: books change once a step, a @depth@100ms event each (default 0.1 s, "
             "Binance's pace; more slows the market down)")
    add(
        "--fault",
        type=_fault,
        action="append",
        default=[],
        metavar="NAME[:KEY=VALUE,...]",
        help=f"activate a fault at start-up (repeatable); names: {', '.join(FAULT_NAMES)}",
    )
    add("--ws-ping-seconds", type=_bounded(float, 0.01), default=20.0,
        help="streams: ping interval; a ping unanswered for 3 intervals closes (default 20)")
    add("--ws-max-age", type=_bounded(float, 0.01), default=86400.0,
        help="streams: seconds before a connection is closed (default 86400, Binance's 24 h)")
    add("--ws-book-ticker-rate", type=_bounded(int, 10, 1000), default=BOOK_TICKER_RATE,
        help="streams: bookTicker events a second of the busiest symbols at a 0.1 s step, "
             f"in whole tens (default {BOOK_TICKER_RATE}; Binance: 50-500 for BTCUSDT)")
    add("--exit-with-parent", action="store_true", help="exit when the parent process goes away")
    add("--verbose", action="store_true", help="log every request to stderr")
    return parser


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    """Map parsed flags onto the simulator's configuration."""
    return SimulatorConfig(
        seed=args.seed,
        latency_ms=args.latency_ms,
        weight_limit=args.weight_limit,
        step_seconds=args.step_seconds,
        faults=tuple(args.fault),
        verbose=args.verbose,
        streams=StreamSettings(args.ws_ping_seconds, args.ws_max_age, args.ws_book_ticker_rate),
    )


def watch_parent(
    stop: threading.Event,
    parent: int,
    getppid: Callable[[], int] = os.getppid,
    interval: float = PARENT_POLL_SECONDS,
) -> None:
    """Set ``stop`` once our parent is no longer ``parent`` (it died; we were re-parented)."""
    while not stop.wait(interval):
        if getppid() != parent:
            stop.set()


def _cannot_listen(host: str, port: int, error: OSError) -> int:
    print(f"{PROG}: error: cannot listen on {host}:{port}: {error.strerror}", file=sys.stderr)
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator until asked to stop; returns the exit status."""
    parent = os.getppid()  # before the slow part: a parent dying during start-up still counts
    args = build_parser().parse_args(argv)
    simulator = Simulator(config_from_args(args))
    try:
        server = SimulatorServer(simulator, args.host, args.port)
    except OSError as error:
        return _cannot_listen(args.host, args.port, error)
    try:
        streams = StreamServer(simulator, args.host, args.ws_port)
    except OSError as error:
        server.server_close()
        return _cannot_listen(args.host, args.ws_port, error)
    stop = simulator.stop_requested

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signals = (signal.SIGTERM, signal.SIGINT)
    previous = {signum: signal.signal(signum, on_signal) for signum in signals}
    if args.exit_with_parent:
        threading.Thread(target=watch_parent, args=(stop, parent), daemon=True).start()
    serving = threading.Thread(target=server.serve_forever, args=(POLL_INTERVAL,), daemon=True)
    serving.start()
    streams.start()
    print(f"{PROG} listening on {server.url}", flush=True)
    print(f"{PROG} streams on {streams.url}", flush=True)
    try:
        while not stop.wait(STOP_POLL_SECONDS):  # a timed wait stays responsive to signals
            pass
    finally:
        streams.stop()
        server.stop()
        serving.join()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0
