"""Real processes for end-to-end tests: the exporter and a real Prometheus on loopback.

Each context manager starts one process on a free 127.0.0.1 port, waits until
it answers, and always stops it (terminate, then kill) when the block ends,
also when the test failed.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

BIN = Path(sys.executable).parent


def free_port() -> int:
    """A port nobody listens on right now."""
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


@contextmanager
def stopped_at_exit(process: subprocess.Popen[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    """Terminate and reap ``process`` when the block ends, however it ends."""
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


@contextmanager
def running_exporter(base_url: str, *args: str) -> Iterator[str]:
    """``binance-exporter`` against ``base_url``; yields its http://127.0.0.1:PORT."""
    port = free_port()
    command = [str(BIN / "binance-exporter"), "--listen-address", "127.0.0.1",
               "--port", str(port), "--base-url", base_url, *args]
    with stopped_at_exit(subprocess.Popen(command, stderr=subprocess.DEVNULL)) as process:
        url = f"http://127.0.0.1:{port}"
        wait_until_up(url + "/", process)
        yield url


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


@contextmanager
def running_prometheus(target: str, scrape_interval: str = "1s") -> Iterator[Prometheus]:
    """Debian's ``prometheus`` scraping ``target`` (host:port) as job ``binance``."""
    binary = shutil.which("prometheus")
    assert binary, "prometheus is not installed (apt-get install prometheus)"
    with tempfile.TemporaryDirectory(prefix="e2e-prometheus-") as workdir:
        config = Path(workdir) / "prometheus.yml"
        config.write_text(
            "global:\n"
            f"  scrape_interval: {scrape_interval}\n"
            f"  scrape_timeout: {scrape_interval}\n"
            "scrape_configs:\n"
            "  - job_name: binance\n"
            f"    static_configs: [{{targets: ['{target}']}}]\n"
        )
        port = free_port()
        command = [binary, f"--config.file={config}", f"--storage.tsdb.path={workdir}/data",
                   f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]
        with stopped_at_exit(subprocess.Popen(command, stderr=subprocess.DEVNULL)) as process:
            url = f"http://127.0.0.1:{port}"
            wait_until_up(url + "/-/ready", process)
            yield Prometheus(url)
