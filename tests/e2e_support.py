"""A real Prometheus on loopback for end-to-end tests, and small HTTP and pipe helpers.

The simulator and the exporter are started with ``binance_simulator.testkit``.
``running_prometheus`` starts Debian's Prometheus on a free 127.0.0.1 port, waits
until it answers, and always stops it (terminate, then kill) when the block ends,
also when the test failed.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator

import pytest
import yaml

from binance_simulator.testkit import popen

BIN = Path(sys.executable).parent


def tool(name: str, install: str) -> str:
    """The path of a command-line tool: the venv's first (pip installs), then PATH. The test
    fails without it in CI (.ci/run installs it), and is skipped elsewhere."""
    beside_python = BIN / name
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        found: str | None = str(beside_python)
    else:
        found = shutil.which(name)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is missing in CI: {install}")
        pytest.skip(f"{name} not installed ({install})")
    return found


def promtool() -> str:
    """Debian's promtool."""
    return tool("promtool", "apt-get install prometheus")


def free_port() -> int:
    """A port nobody listens on right now: only for Prometheus, which cannot report the port
    it bound (our own processes bind port 0 and say which; see binance_simulator.testkit)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def http_get(url: str, timeout: float = 10) -> tuple[int, bytes]:
    """Status and body; HTTP errors are answers too."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def wait_until_up(url: str, process: subprocess.Popen[bytes], seconds: float = 30) -> None:
    """Poll ``url`` until it answers 200; fail early if the process died."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{process.args!r} exited with {process.returncode}")
        try:
            if http_get(url, timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not come up within {seconds} s")


class Lines:
    """The lines a process writes to a pipe, read in a thread, each awaited with a timeout."""

    def __init__(self, stream: IO[str]) -> None:
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line.rstrip("\n"))

    def next(self, timeout: float = 30) -> str:
        """The next line; AssertionError if none comes within ``timeout`` seconds."""
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no line within {timeout} s") from None


class Prometheus:
    """A running Prometheus and its HTTP API."""

    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The ``result`` of an instant query."""
        status, body = http_get(f"{self.url}/api/v1/query?"
                                + urllib.parse.urlencode({"query": promql}))
        answer = json.loads(body)
        assert status == 200 and answer["status"] == "success", answer
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def query_range(self, promql: str, seconds: int = 120) -> list[dict[str, Any]]:
        """The ``result`` of a range query over the last ``seconds``, as a Grafana panel asks
        (a series absent right now, e.g. the used weight early in a minute, still shows)."""
        end = time.time()
        params = {"query": promql, "start": f"{end - seconds:.3f}", "end": f"{end:.3f}",
                  "step": "1"}
        status, body = http_get(f"{self.url}/api/v1/query_range?"
                                + urllib.parse.urlencode(params))
        answer = json.loads(body)
        assert status == 200 and answer["status"] == "success", answer
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result


@contextmanager
def running_prometheus(target: str, scrape_interval: str = "1s",
                       jobs: dict[str, dict[str, Any]] | None = None) -> Iterator[Prometheus]:
    """Debian's ``prometheus`` scraping ``target`` (host:port) as job ``binance``; ``jobs``:
    {job name: its settings beside the target (scheme, tls_config, basic_auth...)}, instead
    of ``binance`` alone."""
    binary = shutil.which("prometheus")
    assert binary, "prometheus is not installed (apt-get install prometheus)"
    with tempfile.TemporaryDirectory(prefix="e2e-prometheus-") as workdir:
        config = Path(workdir) / "prometheus.yml"
        scrapes = [{"job_name": name, "static_configs": [{"targets": [target]}], **settings}
                   for name, settings in (jobs or {"binance": {}}).items()]
        config.write_text(yaml.safe_dump({
            "global": {"scrape_interval": scrape_interval, "scrape_timeout": scrape_interval},
            "scrape_configs": scrapes}))
        port = free_port()
        command = [binary, f"--config.file={config}", f"--storage.tsdb.path={workdir}/data",
                   f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]
        with popen(command, stderr=subprocess.DEVNULL) as process:
            url = f"http://127.0.0.1:{port}"
            wait_until_up(url + "/-/ready", process)
            yield Prometheus(url)
