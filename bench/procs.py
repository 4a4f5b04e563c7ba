"""Start and stop the simulator and the exporter as real processes, on 127.0.0.1 only.

Each process writes its output to a log file in a scratch directory; its URL
is read back from that file (both print it once they listen on port 0). On
leaving the ``with`` block the process is always terminated and reaped.
"""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import sys
import time
import urllib.request
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

from bench.common import ROOT, BenchError

BIN = Path(sys.executable).parent
SIMULATOR_LINE = re.compile(r"binance-simulator listening on (http://127\.0\.0\.1:\d+)")
EXPORTER_LINE = re.compile(r"listening on (http://127\.0\.0\.1:\d+)/metrics")
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
HTTP_TIMEOUT = 15.0
NO_RATE_LIMIT = ("--weight-limit", "100000000")  # simulator flags


@dataclass(frozen=True)
class Service:
    """A started process and the base URL it serves."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        """The process id."""
        return self.process.pid


@contextmanager
def service(command: list[str], ready: re.Pattern[str], log: Path) -> Iterator[Service]:
    """Run ``command`` until the block ends; ``ready`` finds its URL in its output."""
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        yield Service(_wait_for_url(process, ready, log), process, log)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_for_url(process: subprocess.Popen[bytes], ready: re.Pattern[str], log: Path) -> str:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        match = ready.search(log.read_text(encoding="utf-8", errors="replace"))
        if match:
            return match.group(1)
        if process.poll() is not None:
            break
        time.sleep(0.05)
    tail = log.read_text(encoding="utf-8", errors="replace")[-1000:]
    raise BenchError(f"{log.stem} did not start (exit status {process.poll()}): {tail!r}")


def simulator(scratch: Path, name: str, *args: str) -> AbstractContextManager[Service]:
    """A context manager running ``binance-simulator`` with ``args``, e.g. ``--latency-ms 50``."""
    command = [str(BIN / "binance-simulator"), "--port", "0", "--exit-with-parent", *args]
    return service(command, SIMULATOR_LINE, scratch / f"simulator-{name}.log")


def exporter(
    scratch: Path, name: str, upstream: str, *args: str
) -> AbstractContextManager[Service]:
    """A context manager running ``binance-exporter`` on a free loopback port."""
    command = [str(BIN / "binance-exporter"), "--base-url", upstream, "--listen-address",
               "127.0.0.1", "--port", "0", "--log-level", "info", *args]
    return service(command, EXPORTER_LINE, scratch / f"exporter-{name}.log")


def sim_stats(sim: Service) -> dict[str, Any]:
    """The simulator's own accounting (``GET /_sim/stats``)."""
    with urllib.request.urlopen(sim.url + "/_sim/stats", timeout=HTTP_TIMEOUT) as answer:
        stats: dict[str, Any] = json.load(answer)
    return stats


def reset_sim_stats(sim: Service) -> None:
    """Zero the simulator's counters and lift any rate limit."""
    request = urllib.request.Request(sim.url + "/_sim/stats/reset", data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as answer:
        answer.read()


def scrape(url: str, headers: dict[str, str] | None = None) -> tuple[int, float, bytes]:
    """GET ``url + /metrics`` once on a new connection: (status, seconds, body)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port,
                                            timeout=HTTP_TIMEOUT)
    try:
        started = time.perf_counter()
        connection.request("GET", "/metrics", headers=headers or {})
        response = connection.getresponse()
        body = response.read()
        return response.status, time.perf_counter() - started, body
    finally:
        connection.close()
