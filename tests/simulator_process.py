"""Run the Binance simulator as a real subprocess, for tests and benchmarks.

Usage::

    from simulator_process import running_simulator

    with running_simulator("--seed", "7", "--fault", "error_5xx:rate=0.5") as sim:
        requests.get(f"{sim.url}/api/v3/ping", timeout=5)
        assert sim.stats()["requests_total"] == 1

The simulator is started with ``--port 0 --exit-with-parent``: it picks a
free port (read back from its one line of output) and dies with the test
process even if that is killed.  On leaving the block the process is always
terminated and reaped, whether the block succeeded or not.
"""

from __future__ import annotations

import json
import queue
import re
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

SIMULATOR = Path(sys.executable).with_name("binance-simulator")
ADDRESS_LINE = re.compile(r"binance-simulator listening on (http://\S+)")
STARTUP_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0


class SimulatorHandle:
    """A running simulator: its base ``url`` and helpers for the control API."""

    def __init__(self, url: str, process: subprocess.Popen[str]) -> None:
        self.url = url
        self.process = process

    def control(self, method: str, path: str, payload: Any = None) -> Any:
        """Call a ``/_sim/`` endpoint and return its decoded JSON answer."""
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:
            raise ValueError(f"{method} {path}: {error.code} {error.read().decode()}") from None

    def stats(self) -> dict[str, Any]:
        """Request counts per path and status, weights and start time."""
        stats: dict[str, Any] = self.control("GET", "/_sim/stats")
        return stats

    def reset_stats(self) -> None:
        """Zero the counters and lift any rate limit or ban."""
        self.control("POST", "/_sim/stats/reset")

    def set_faults(self, faults: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Replace the active faults; returns them as the simulator understood them."""
        active: list[dict[str, Any]] = self.control("POST", "/_sim/faults", {"faults": faults})[
            "faults"
        ]
        return active

    def clear_faults(self) -> None:
        """Deactivate every fault."""
        self.control("DELETE", "/_sim/faults")


def _read_address(process: subprocess.Popen[str], timeout: float) -> str:
    """The URL from the simulator's first output line, waiting at most ``timeout``."""
    stdout: IO[str] | None = process.stdout
    assert stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        line = lines.get(timeout=timeout)
    except queue.Empty:
        raise RuntimeError(f"binance-simulator printed no address within {timeout} s") from None
    match = ADDRESS_LINE.fullmatch(line.strip())
    if match is None:
        status = process.poll()
        raise RuntimeError(f"binance-simulator did not start (exit status {status}): {line!r}")
    return match.group(1)


def _stop(process: subprocess.Popen[str]) -> None:
    """Terminate (then kill, if need be) and reap the process."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()


@contextmanager
def running_simulator(
    *args: str, startup_timeout: float = STARTUP_TIMEOUT
) -> Iterator[SimulatorHandle]:
    """Start ``binance-simulator --port 0 --exit-with-parent *args``; stop it on exit."""
    command = [str(SIMULATOR), "--port", "0", "--exit-with-parent", *args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        yield SimulatorHandle(_read_address(process, startup_timeout), process)
    finally:
        _stop(process)
