"""The exporter's HTTP side and its process: landing page, /metrics, flags, signals."""

from __future__ import annotations

import argparse
import gzip
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest
import responses
from conftest import FakeClock
from e2e_support import free_port
from prometheus_client import CollectorRegistry
from standin import running_standin

from collector import cli
from collector.binance import BinanceClient
from collector.config import parse_args
from collector.exporter import BinanceCollector
from collector.http import MetricsServer, make_app
from collector.market import Market

EXPORTER = Path(sys.executable).with_name("binance-exporter")


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


@pytest.fixture
def server(market_mock: responses.RequestsMock, clock: FakeClock) -> Iterator[MetricsServer]:
    market = Market(BinanceClient(clock=clock, wall=clock.wall), clock=clock, wall=clock.wall)
    registry = CollectorRegistry()
    registry.register(BinanceCollector(market))
    market_mock.add_passthru("http://127.0.0.1")
    srv = MetricsServer("127.0.0.1", 0, make_app(registry)).start()
    yield srv
    srv.stop()
    market.close()


def test_landing_page_links_to_metrics_and_calls_nothing(
    server: MetricsServer, market_mock: responses.RequestsMock
) -> None:
    status, headers, body = get(f"http://127.0.0.1:{server.port}/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b'<a href="/metrics">' in body
    assert len(market_mock.calls) == 0  # health checks never reach Binance


def test_unknown_paths_are_404(server: MetricsServer) -> None:
    status, _, body = get(f"http://127.0.0.1:{server.port}/favicon.ico")
    assert status == 404 and b"/metrics" in body


def test_metrics_negotiates_openmetrics_and_gzip(server: MetricsServer) -> None:
    base = f"http://127.0.0.1:{server.port}/metrics"
    status, headers, body = get(base)
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert b'binance_price_spread{quote_asset="USDT",symbol="BTCUSDT"} 0.01' in body
    _, headers, body = get(base, {"Accept": "application/openmetrics-text; version=1.0.0"})
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")
    _, headers, body = get(base, {"Accept-Encoding": "gzip"})
    assert headers.get("Content-Encoding") == "gzip"
    assert b"binance_up 1.0" in gzip.decompress(body)


@pytest.mark.parametrize(
    "argv",
    [["--ttl-spreads", "9"], ["--ttl-books", "0"], ["--ttl-rankings", "-5"],
     ["--ttl-exchange", "x"], ["--port", "65536"], ["--port", "-1"], ["--port", "http"],
     ["--refresh-budget", "0"], ["--log-level", "verbose"], ["--base-url", "api.binance.com"],
     ["--top", "51"]],
)
def test_bad_flags_exit_2_with_one_line(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("binance-exporter: error:")


def test_bad_environment_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BINANCE_TTL_SPREADS", "5")
    with pytest.raises(SystemExit) as exc:
        cli.main([])
    assert exc.value.code == 2


def parse(*argv: str) -> argparse.Namespace:
    return parse_args(cli.build_parser(), ["--listen-address", "127.0.0.1", *argv])


def test_port_in_use_exits_1_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        code = cli.serve(parse("--port", str(taken.getsockname()[1])), threading.Event())
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("binance-exporter: cannot listen on 127.0.0.1:") and err.count("\n") == 1


def test_serve_answers_until_stopped(market_mock: responses.RequestsMock) -> None:
    """The server the CLI starts: its own registry, the landing page, then a clean stop."""
    market_mock.add_passthru("http://127.0.0.1")
    stop = threading.Event()
    servers: list[MetricsServer] = []
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(
        cli.serve(parse("--port", "0"), stop, on_ready=servers.append)))
    thread.start()
    deadline = time.monotonic() + 10
    while not servers and time.monotonic() < deadline:
        time.sleep(0.01)
    port = servers[0].port
    assert get(f"http://127.0.0.1:{port}/")[0] == 200
    assert b"binance_up 1.0" in get(f"http://127.0.0.1:{port}/metrics")[2]
    stop.set()
    thread.join(10)
    assert codes == [0] and not thread.is_alive()


def wait_for(url: str, process: subprocess.Popen[str], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        try:
            get(url)
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"{url} did not answer within {seconds} s")


def test_the_exporter_process_is_lazy_serves_metrics_and_stops_on_sigterm() -> None:
    with running_standin() as upstream:
        port = free_port()
        with subprocess.Popen(
            [str(EXPORTER), "--listen-address", "127.0.0.1", "--port", str(port),
             "--base-url", upstream.url],
            stderr=subprocess.PIPE, text=True,
        ) as process:
            try:
                wait_for(f"http://127.0.0.1:{port}/", process)
                assert not upstream.paths  # started, answered the landing page, no upstream call
                status, _, body = get(f"http://127.0.0.1:{port}/metrics")
                assert status == 200 and b"binance_up 1.0" in body
                assert sorted(set(upstream.paths)) == [
                    "/api/v3/depth", "/api/v3/exchangeInfo", "/api/v3/ticker/24hr",
                    "/api/v3/ticker/bookTicker"]
                process.send_signal(signal.SIGTERM)
                assert process.wait(timeout=15) == 0
            finally:
                if process.poll() is None:  # pragma: no cover - only when the test failed
                    process.kill()
            stderr = process.stderr.read() if process.stderr else ""
        assert "spreads: FLOKIUSDT=0.00000001 (delta -)" in stderr
        assert "SIGTERM, shutting down" in stderr
        with socket.socket() as again:  # released: a new server (SO_REUSEADDR, as
            again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # ours) can listen
            again.bind(("127.0.0.1", port))
            again.listen()


def test_metrics_answers_200_when_binance_fails(
    server: MetricsServer, market_mock: responses.RequestsMock
) -> None:
    """A failing upstream is a metric (binance_up 0), not an HTTP error Prometheus would drop."""
    market_mock.replace(responses.GET, "https://api.binance.com/api/v3/ticker/24hr", status=502)
    status, _, body = get(f"http://127.0.0.1:{server.port}/metrics")
    assert status == 200
    assert b"\nbinance_up 0.0\n" in body
    assert b'binance_refresh_failures_total{group="rankings",kind="unavailable"} 1.0' in body


def test_kubernetes_service_links_do_not_break_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Service named binance injects BINANCE_PORT=tcp://...; ours is BINANCE_LISTEN_PORT."""
    monkeypatch.setenv("BINANCE_PORT", "tcp://10.0.0.7:8080")
    assert cli.build_parser().parse_args([]).port == 8080
    monkeypatch.setenv("BINANCE_LISTEN_PORT", "9101")
    assert cli.build_parser().parse_args([]).port == 9101
    monkeypatch.setenv("BINANCE_LISTEN_PORT", "tcp://10.0.0.7:8080")
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args([])
