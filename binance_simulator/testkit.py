"""The test kit shared by ``tests/``, ``bench/`` and ``tools/``: real processes on loopback.

* :func:`running_simulator` starts ``binance-simulator`` and yields a
  :class:`SimulatorProcess`: its REST ``url`` and streams' ``stream_url``, and its
  :class:`SimulatorControl`, the ``/_sim`` control API (faults, stats, the
  streams' connection log), usable alone for a simulator served in a thread;
* :func:`running_exporter` starts ``binance-exporter`` and yields it with its base URL;
* :func:`popen` runs any other command (a report, a Prometheus) until the block ends;
* :class:`FakeClock` is the injectable clock (monotonic, wall, sleep) of in-process tests;
* :func:`serving_in_process` serves REST and streams in threads of the caller's process on
  a :class:`FakeClock`, as an :class:`InProcessSimulator`: the test moves the market.

Both processes listen on ``127.0.0.1`` port 0: the port they bound is read back from
their own output ("listening on http://...", "streams on ws://..."), never guessed
beforehand by probing for a
free port, which another process could take in between. Output goes to a log file (a
temporary one unless a directory is given), so a process can never block on a full
pipe; on leaving the block the process is terminated (then killed) and reaped, however
the block ended. Nothing here imports the exporter's code: the exporter is a command.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .app import SimulatorConfig
from .market import SimulatedMarket
from .server import SimulatorServer, serve_in_thread
from .stream_server import StreamServer
from .streams import StreamSettings

BIN = Path(sys.executable).parent
SIMULATOR_READY = re.compile(r"binance-simulator listening on (http://\S+)")
STREAMS_READY = re.compile(r"binance-simulator streams on (ws://\S+)")
EXPORTER_READY = re.compile(r"listening on (https?://\S+?)/metrics")
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
HTTP_TIMEOUT = 10.0


class FakeClock:
    """A monotonic clock and a wall clock that move only when told to.

    ``clock()`` is the monotonic reading, ``clock.wall()`` Unix time (1_767_225_600 is
    2026-01-01T00:00:00Z), ``clock.sleep(s)`` an injectable ``time.sleep`` that only
    moves both.
    """

    def __init__(self, start: float = 1000.0, wall_start: float = 1_767_225_600.0) -> None:
        self.now = start
        self.wall_offset = wall_start - start

    def __call__(self) -> float:
        return self.now

    def wall(self) -> float:
        """Unix time."""
        return self.now + self.wall_offset

    def advance(self, seconds: float) -> None:
        """Move both clocks forward."""
        self.now += seconds

    def sleep(self, seconds: float) -> None:
        """Sleep without waiting."""
        self.advance(seconds)


@dataclass(frozen=True)
class Process:
    """A started process: the base URL it serves, and the log of its output."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        """The process id."""
        return self.process.pid

    def output(self) -> str:
        """Everything it has written so far."""
        return self.log.read_text(encoding="utf-8", errors="replace")


class SimulatorControl:
    """The ``/_sim`` control API of the simulator at ``url`` (neither counted nor limited)."""

    url: str

    def __init__(self, url: str) -> None:
        self.url = url

    def control(self, method: str, path: str, payload: Any = None) -> Any:
        """Call a ``/_sim/`` endpoint; its decoded JSON answer, ValueError on a 4xx/5xx."""
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as answer:
                return json.load(answer)
        except urllib.error.HTTPError as error:
            raise ValueError(f"{method} {path}: {error.code} {error.read().decode()}") from None

    def stats(self) -> dict[str, Any]:
        """Requests by path and status, weight used, start time."""
        stats: dict[str, Any] = self.control("GET", "/_sim/stats")
        return stats

    def reset_stats(self) -> None:
        """Zero the counters and lift any rate limit or ban."""
        self.control("POST", "/_sim/stats/reset")

    def connections(self) -> list[dict[str, Any]]:
        """The stream connection log: attempts, open and close times, subscriptions."""
        log: list[dict[str, Any]] = self.control("GET", "/_sim/connections")["connections"]
        return log

    def set_faults(self, faults: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Replace the active faults; returns them as the simulator understood them."""
        active: list[dict[str, Any]] = self.control("POST", "/_sim/faults",
                                                    {"faults": faults})["faults"]
        return active

    def clear_faults(self) -> None:
        """Deactivate every fault."""
        self.control("DELETE", "/_sim/faults")


@dataclass(frozen=True)
class SimulatorProcess(Process, SimulatorControl):
    """A running ``binance-simulator``: the process, its control API and ``stream_url``,
    the base of its WebSocket streams (``ws://127.0.0.1:PORT``; add ``/stream?...``)."""

    stream_url: str = ""


@contextmanager
def popen(command: list[str], **options: Any) -> Iterator[subprocess.Popen[Any]]:
    """``subprocess.Popen(command, **options)`` until the block ends, however it ends."""
    process = subprocess.Popen(command, **options)  # pylint: disable=consider-using-with
    try:
        yield process
    finally:
        stop(process)
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream is not None:
                stream.close()


@contextmanager
def started(command: list[str], ready: re.Pattern[str], log: Path) -> Iterator[Process]:
    """Run ``command`` until the block ends; ``ready`` finds its URL in its output."""
    with log.open("wb") as output, popen(command, stdout=output,
                                         stderr=subprocess.STDOUT) as process:
        yield Process(_wait_for_url(process, ready, log), process, log)


def stop(process: subprocess.Popen[Any]) -> int:
    """Terminate (then kill, if need be) and reap ``process``; its exit status."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def _wait_for_url(process: subprocess.Popen[bytes], ready: re.Pattern[str], log: Path) -> str:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        match = ready.search(log.read_text(encoding="utf-8", errors="replace"))
        if match:
            return match.group(1)
        if process.poll() is not None:
            break
        time.sleep(0.02)
    tail = log.read_text(encoding="utf-8", errors="replace")[-1000:]
    raise RuntimeError(f"{log.stem} did not start (exit status {process.poll()}): {tail!r}")


@contextmanager
def _log_in(directory: Path | None, name: str) -> Iterator[Path]:
    if directory is not None:
        yield directory / f"{name}.log"
        return
    with tempfile.TemporaryDirectory(prefix="binance-testkit-") as scratch:
        yield Path(scratch) / f"{name}.log"


@contextmanager
def running_simulator(*args: str, logs: Path | None = None,
                      name: str = "simulator") -> Iterator[SimulatorProcess]:
    """``binance-simulator --port 0 --ws-port 0 --exit-with-parent *args`` until the block
    ends."""
    command = [str(BIN / "binance-simulator"), "--host", "127.0.0.1", "--port", "0",
               "--ws-port", "0", "--exit-with-parent", *args]
    # the caller's with-block exits these (pylint cannot tell a generator is always closed)
    with _log_in(logs, name) as log, \
            started(command, SIMULATOR_READY, log) as running:  # pylint: disable=contextmanager-generator-missing-cleanup
        stream_url = _wait_for_url(running.process, STREAMS_READY, running.log)
        yield SimulatorProcess(running.url, running.process, running.log, stream_url)


@contextmanager
def running_exporter(upstream: str, *args: str, logs: Path | None = None,
                     name: str = "exporter") -> Iterator[Process]:
    """``binance-exporter`` on 127.0.0.1, port 0, reading from ``upstream``; yields it with
    its base URL (``http://127.0.0.1:PORT``, ``https://`` with a web configuration that
    asks for TLS), read from its own start-up log line."""
    command = [str(BIN / "binance-exporter"), "--base-url", upstream, "--listen-address",
               "127.0.0.1", "--port", "0", "--log-level", "info", *args]
    with _log_in(logs, name) as log, \
            started(command, EXPORTER_READY, log) as running:  # pylint: disable=contextmanager-generator-missing-cleanup
        yield running


T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z: on a whole step


@dataclass
class InProcessSimulator:
    """A simulator served in this process: REST, streams, and the clock that drives both."""

    rest: SimulatorServer
    streams: StreamServer
    clock: FakeClock

    @property
    def url(self) -> str:
        """The REST base URL."""
        return self.rest.url

    @property
    def stream_url(self) -> str:
        """The streams' base URL (``ws://127.0.0.1:PORT``)."""
        return self.streams.url

    @property
    def control(self) -> SimulatorControl:
        """Its ``/_sim`` control API."""
        return SimulatorControl(self.rest.url)

    @property
    def market(self) -> SimulatedMarket:
        """The market it serves: what a step will bring is known beforehand."""
        return self.rest.simulator.api.market

    def get(self, target: str) -> Any:
        """GET a REST or control path; its decoded JSON."""
        with urllib.request.urlopen(self.rest.url + target, timeout=HTTP_TIMEOUT) as answer:
            return json.load(answer)

    def step(self, seconds: float) -> None:
        """Move the clock; return once every stream connection has sent what is now due."""
        self.clock.advance(seconds)
        self.streams.wake().result(HTTP_TIMEOUT)


@contextmanager
def serving_in_process(settings: StreamSettings = StreamSettings(), step_seconds: float = 1.0,
                       start: float = T0, weight_limit: int = 6000
                       ) -> Iterator[InProcessSimulator]:
    """REST and streams served from one simulator on a :class:`FakeClock` at ``start``
    (its weight limit, too, counts minutes of that clock)."""
    clock = FakeClock(start)
    config = SimulatorConfig(step_seconds=step_seconds, streams=settings,
                             weight_limit=weight_limit)
    with serve_in_thread(config, clock) as rest:
        streams = StreamServer(rest.simulator).start()
        try:
            yield InProcessSimulator(rest, streams, clock)
        finally:
            streams.stop()
