"""A fallback load generator for when ``wrk`` is not installed.

Clients are threads spread over a few worker *processes*, so that the load
generator does not share the exporter's GIL; each client sends GET requests
back to back on new connections (the exporter closes each one) until the
time is up. On a 2-core machine the clients still compete with the exporter
for CPU: ``wrk`` gives more faithful figures (``apt-get install wrk``).
"""

from __future__ import annotations

import http.client
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

MAX_REQUESTS_PER_CLIENT = 200_000


@dataclass(frozen=True)
class Load:
    """Latencies (seconds) of successful requests, failures and the wall time."""

    latencies: tuple[float, ...]
    errors: int
    seconds: float


def run(host: str, port: int, clients: int, seconds: float,
        headers: dict[str, str] | None = None) -> Load:
    """``clients`` concurrent clients on ``/metrics`` for ``seconds``, sending ``headers``."""
    workers = min(clients, os.cpu_count() or 1)
    shares = [clients // workers + (1 if i < clients % workers else 0) for i in range(workers)]
    started = time.monotonic()
    jobs = [(host, port, share, seconds, headers or {}) for share in shares]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        parts = list(pool.map(_worker, jobs))
    latencies = tuple(latency for part, _ in parts for latency in part)
    return Load(latencies, sum(errors for _, errors in parts), time.monotonic() - started)


def _worker(job: tuple[str, int, int, float, dict[str, str]]) -> tuple[list[float], int]:
    host, port, clients, seconds, headers = job
    end = time.monotonic() + seconds
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()

    def client() -> None:
        mine = []
        failed = 0
        for _ in range(MAX_REQUESTS_PER_CLIENT):
            if time.monotonic() >= end:
                break
            started = time.perf_counter()
            try:
                connection = http.client.HTTPConnection(host, port, timeout=10)
                connection.request("GET", "/metrics", headers=headers)
                response = connection.getresponse()
                response.read()
                connection.close()
                ok = response.status == 200
            except OSError:
                ok = False
            if ok:
                mine.append(time.perf_counter() - started)
            else:
                failed += 1
        with lock:
            latencies.extend(mine)
            errors[0] += failed

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 30)
    return latencies, errors[0]
