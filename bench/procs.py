"""The simulator and the exporter as real processes on 127.0.0.1, from the shared test kit.

Each writes its output to a log file in the benchmark's scratch directory; the
kit reads the URL each prints once it listens on port 0, and stops the process
when the ``with`` block ends. A process that does not start is a ``BenchError``.
"""

from __future__ import annotations

import http.client
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

from binance_simulator.testkit import (
    Process,
    SimulatorProcess,
    running_exporter,
    running_simulator,
)

from bench.common import BenchError

HTTP_TIMEOUT = 15.0
NO_RATE_LIMIT = ("--weight-limit", "100000000")  # simulator flags


@contextmanager
def simulator(scratch: Path, name: str, *args: str) -> Iterator[SimulatorProcess]:
    """``binance-simulator`` with ``args``, e.g. ``--latency-ms 50``, until the block ends."""
    try:
        with running_simulator(*args, logs=scratch, name=f"simulator-{name}") as sim:
            yield sim
    except RuntimeError as exc:  # it did not start
        raise BenchError(str(exc)) from None


@contextmanager
def exporter(scratch: Path, name: str, upstream: str, *args: str) -> Iterator[Process]:
    """``binance-exporter`` on a loopback port of its own choosing, until the block ends."""
    try:
        with running_exporter(upstream, *args, logs=scratch, name=f"exporter-{name}") as served:
            yield served
    except RuntimeError as exc:
        raise BenchError(str(exc)) from None


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
