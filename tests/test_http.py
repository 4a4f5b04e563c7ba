"""The exporter's HTTP side and its process: landing page, /metrics, flags, signals.

Every server here listens on port 0 and is reached at the port it reports."""

from __future__ import annotations

import argparse
import gzip
import http.client
import signal
import socket
import sys
import threading
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pytest
import responses
from conftest import FakeClock
from standin import running_standin

from binance_simulator.testkit import running_exporter

from collector import exporter_cli
from collector.binance import BinanceClient
from collector.config import parse_args
from collector.exporter import BinanceCollector
from collector.exposition import Body, Exposition, Request
from collector.server import LANDING, MetricsServer
from collector.rest_source import RestSource

EXPORTER = Path(sys.executable).with_name("binance-exporter")
TEXT = "text/plain; charset=utf-8"


def get(url: str, headers: dict[str, str] | None = None, method: str = "GET",
        data: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {}, method=method, data=data)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


needs_ipv6 = pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback here")


@contextmanager
def serving(clock: FakeClock, exposition: type[Exposition] = Exposition,
            address: str = "127.0.0.1") -> Iterator[MetricsServer]:
    """A started server over a source on ``clock``; stopped (again) and closed on exit."""
    source = RestSource(BinanceClient(clock=clock, wall=clock.wall), clock=clock, wall=clock.wall)
    srv = MetricsServer(address, 0, exposition(BinanceCollector(source))).start()
    try:
        yield srv
    finally:
        srv.stop()
        source.close()


@pytest.fixture
def server(market_mock: responses.RequestsMock, clock: FakeClock) -> Iterator[MetricsServer]:
    market_mock.add_passthru("http://127.0.0.1")
    with serving(clock) as srv:
        yield srv


class HeldExposition:
    """An exposition without Binance: ``cached()`` answers ``?name[]=cached`` at once and
    nothing else; ``fresh()`` (a refresh) sets ``entered``, then waits for ``release``.
    ``calls`` records (method, thread name) of each call."""

    def __init__(self) -> None:
        self.entered, self.release = threading.Event(), threading.Event()
        self.calls: list[tuple[str, str]] = []

    def cached(self, request: Request) -> Body | None:
        self.calls.append(("cached", threading.current_thread().name))
        return Body(b"from cache\n", TEXT) if request.names == ("cached",) else None

    def fresh(self, _: Request) -> Body:
        self.calls.append(("fresh", threading.current_thread().name))
        self.entered.set()
        assert self.release.wait(30)
        return Body(b"refreshed\n", TEXT)


@contextmanager
def held_server(grace: float = 30.0) -> Iterator[tuple[MetricsServer, HeldExposition]]:
    """A server over a HeldExposition; released and stopped on exit."""
    held = HeldExposition()
    srv = MetricsServer("127.0.0.1", 0, held, grace=grace)  # type: ignore[arg-type]
    try:
        yield srv, held
    finally:
        held.release.set()
        srv.stop()


def scrape_in_thread(url: str) -> tuple[threading.Thread, list[object]]:
    """GET ``url`` in a new thread; the list gets (status, body) or the exception's type."""
    outcome: list[object] = []

    def scrape() -> None:
        try:
            status, _, body = get(url)
            outcome.append((status, body))
        except (OSError, http.client.HTTPException) as exc:
            outcome.append(type(exc))

    thread = threading.Thread(target=scrape)
    thread.start()
    return thread, outcome


def assert_port_free(port: int) -> None:
    with socket.socket() as again:  # released: a new server (SO_REUSEADDR, as ours) can listen
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))
        again.listen()


# -- routes and negotiation --------------------------------------------------------


def test_landing_page_links_to_metrics_and_calls_nothing(
    server: MetricsServer, market_mock: responses.RequestsMock
) -> None:
    status, headers, body = get(f"http://127.0.0.1:{server.port}/")
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert b'<a href="/metrics">' in body and body == LANDING.encode()
    status, headers, body = get(f"http://127.0.0.1:{server.port}/", method="HEAD")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) == len(LANDING)
    assert len(market_mock.calls) == 0  # health checks never reach Binance


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_unknown_paths_are_404(server: MetricsServer, method: str) -> None:
    status, _, body = get(f"http://127.0.0.1:{server.port}/favicon.ico", method=method)
    assert status == 404 and body == (b"Not found: try /metrics\n" if method == "GET" else b"")


@pytest.mark.parametrize("method, path", [
    ("POST", "/metrics"), ("PUT", "/"), ("DELETE", "/metrics"), ("OPTIONS", "/"),
    ("PATCH", "/nowhere"), ("POST", "/nowhere")])
def test_other_methods_are_405_with_allow(server: MetricsServer, method: str, path: str) -> None:
    status, headers, body = get(f"http://127.0.0.1:{server.port}{path}", method=method,
                                data=b"hi" if method in ("POST", "PUT") else None)
    assert status == 405 and headers["Allow"] == "GET, HEAD" and body == b"Only GET and HEAD\n"


def test_metrics_negotiates_openmetrics_and_gzip(server: MetricsServer) -> None:
    base = f"http://127.0.0.1:{server.port}/metrics"
    status, headers, body = get(base)
    assert status == 200 and headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert headers["Vary"] == "Accept, Accept-Encoding" and "Content-Encoding" not in headers
    assert b'binance_price_spread{quote_asset="USDT",symbol="BTCUSDT"} 0.01' in body
    _, headers, body = get(base, {"Accept": "application/openmetrics-text; version=1.0.0"})
    assert headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    assert body.endswith(b"# EOF\n")
    _, headers, zipped = get(base, {"Accept-Encoding": "gzip"})
    assert headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped).startswith(b"# HELP binance_price_spread ")
    status, headers, body = get(base, {"Accept-Encoding": "gzip"}, method="HEAD")
    assert status == 200 and body == b"" and headers["Content-Encoding"] == "gzip"


def test_name_filters_select_families_as_the_client_library_does(server: MetricsServer) -> None:
    base = f"http://127.0.0.1:{server.port}/metrics"

    def families(query: str) -> set[str]:
        text = get(base + query)[2].decode()
        return {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")}

    assert families("?name[]=binance_up&name%5B%5D=binance_api_requests_total") == {
        "binance_up", "binance_api_requests_total"}
    assert len(families("")) > 10
    assert families("?name[]=") == families("")  # an empty value is dropped, as by parse_qs


def test_an_accept_version_the_library_cannot_read_gets_the_default_format(
    server: MetricsServer, caplog: pytest.LogCaptureFixture
) -> None:
    """prometheus_client's choose_encoder raises on 'version=abc'; that is no 500."""
    status, headers, _ = get(f"http://127.0.0.1:{server.port}/metrics",
                             {"Accept": "text/plain; version=abc"})
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "Traceback" not in caplog.text


def raw(port: int, data: bytes) -> bytes:
    """Send ``data`` on a new connection and read until the server closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_a_header_value_cannot_add_headers_to_the_answer(server: MetricsServer) -> None:
    """The Accept version is copied into Content-Type: a line break in it must never become
    a header of ours (aiohttp refuses such a request; whatever it answers, no Set-Cookie)."""
    for brk in (b"\n", b"\r"):
        answer = raw(server.port, b"GET /metrics HTTP/1.1\r\nConnection: close\r\n"
                                  b"Accept: application/openmetrics-text; version=1.0.0" + brk
                                  + b"Set-Cookie: injected=1\r\n\r\n")
        head = answer.split(b"\r\n\r\n", maxsplit=1)[0]
        assert head.startswith(b"HTTP/1.") and b"Set-Cookie" not in head


class _Broken(Exposition):
    """An exposition with a bug."""

    def cached(self, request: Request) -> Body | None:
        raise RuntimeError("a bug")


def test_a_bug_in_rendering_is_a_500_and_the_server_goes_on(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    with serving(clock, exposition=_Broken) as srv:
        status, _, body = get(f"http://127.0.0.1:{srv.port}/metrics")
        assert status == 500 and body == b"internal error rendering metrics\n"
        assert "rendering /metrics failed" in caplog.text and "a bug" in caplog.text
        assert get(f"http://127.0.0.1:{srv.port}/")[0] == 200


def test_metrics_answers_200_when_binance_fails(
    server: MetricsServer, market_mock: responses.RequestsMock
) -> None:
    """A failing upstream is a metric (binance_up 0), not an HTTP error Prometheus would drop."""
    market_mock.replace(responses.GET, "https://api.binance.com/api/v3/ticker/24hr", status=502)
    status, _, body = get(f"http://127.0.0.1:{server.port}/metrics")
    assert status == 200
    assert b"\nbinance_up 0.0\n" in body
    assert b'binance_refresh_failures_total{group="rankings",kind="unavailable"} 1.0' in body


def test_keep_alive_serves_many_requests_on_one_connection(server: MetricsServer) -> None:
    """Prometheus and wrk reuse their connection."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        sockets = set()
        for path in ("/metrics", "/", "/metrics", "/nowhere", "/metrics"):
            connection.request("GET", path)
            answer = connection.getresponse()
            body = answer.read()
            assert answer.status == (404 if path == "/nowhere" else 200)
            assert int(answer.headers["Content-Length"]) == len(body)
            sockets.add(id(connection.sock))
        assert len(sockets) == 1  # never reconnected
    finally:
        connection.close()


# -- a refresh off the event loop, and stopping --------------------------------------


def test_a_held_refresh_holds_up_neither_the_landing_page_nor_a_scrape_from_cache() -> None:
    """Only a scrape that needs the refresh waits for it, in a pool thread; a scrape that
    finds everything cached is answered on the event loop's own thread."""
    with held_server() as (srv, held):
        srv.start()
        url = f"http://127.0.0.1:{srv.port}"
        waiting, outcome = scrape_in_thread(f"{url}/metrics")
        assert held.entered.wait(10)  # the refresh is in flight, and stays so until released
        assert get(f"{url}/")[0] == 200
        assert get(f"{url}/metrics?name[]=cached")[::2] == (200, b"from cache\n")
        assert not outcome and not held.release.is_set()  # answered while the refresh is held
        held.release.set()
        waiting.join(10)
        assert outcome == [(200, b"refreshed\n")]
    assert [call for call, _ in held.calls] == ["cached", "fresh", "cached"]
    assert held.calls[0][1] == held.calls[2][1] == "http"  # the event loop's thread: no hop
    assert held.calls[1][1].startswith("scrape")  # the refresh ran in the pool


def test_stop_lets_a_scrape_in_flight_finish_within_the_grace() -> None:
    with held_server(grace=30) as (srv, held):
        shutting = threading.Event()

        async def on_shutdown(_: Any) -> None:
            shutting.set()

        srv.app.on_shutdown.append(on_shutdown)
        srv.start()
        waiting, outcome = scrape_in_thread(f"http://127.0.0.1:{srv.port}/metrics")
        assert held.entered.wait(10)
        stopper = threading.Thread(target=srv.stop)
        stopper.start()
        assert shutting.wait(10)  # stop() is under way...
        with pytest.raises(ConnectionRefusedError):  # ...nothing new is accepted...
            socket.create_connection(("127.0.0.1", srv.port), timeout=10).close()
        held.release.set()  # ...and the scrape in flight still gets its answer
        waiting.join(10)
        stopper.join(10)
        assert outcome == [(200, b"refreshed\n")] and not stopper.is_alive()
        assert_port_free(srv.port)


def test_stop_closes_a_scrape_still_in_flight_after_the_grace(
    caplog: pytest.LogCaptureFixture
) -> None:
    """A scrape stuck on a refresh does not hold shutdown for the whole refresh budget,
    and closing it is quiet (no traceback)."""
    with held_server(grace=0.1) as (srv, held):
        srv.start()
        waiting, outcome = scrape_in_thread(f"http://127.0.0.1:{srv.port}/metrics")
        assert held.entered.wait(10)
        srv.stop()  # returns with the refresh still held
        assert not held.release.is_set()
        waiting.join(10)
        assert outcome == [http.client.RemoteDisconnected]  # closed, never an error page
        assert_port_free(srv.port)
    assert "Traceback" not in caplog.text and "Exception in callback" not in caplog.text


def test_stop_does_not_wait_for_idle_keep_alive_connections() -> None:
    """With a grace of 10 minutes, a stop() that waited for an idle connection would hang."""
    with held_server(grace=600) as (srv, _):
        srv.start()
        connection = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        try:
            connection.request("GET", "/")
            connection.getresponse().read()
            stopper = threading.Thread(target=srv.stop)
            stopper.start()
            stopper.join(60)
            assert not stopper.is_alive()
        finally:
            connection.close()


# -- listening ---------------------------------------------------------------------


def parse(*argv: str) -> argparse.Namespace:
    return parse_args(exporter_cli.build_parser(), ["--listen-address", "127.0.0.1", *argv])


@contextmanager
def cli_serving(*argv: str) -> Iterator[MetricsServer]:
    """``exporter_cli.serve`` in a thread with ``argv``; stopped on exit, which must return 0."""
    stop, ready = threading.Event(), threading.Event()
    servers: list[MetricsServer] = []
    codes: list[int] = []

    def on_ready(srv: MetricsServer) -> None:
        servers.append(srv)
        ready.set()

    thread = threading.Thread(target=lambda: codes.append(exporter_cli.serve(
        parse_args(exporter_cli.build_parser(), list(argv)), stop, on_ready=on_ready)))
    thread.start()
    try:
        assert ready.wait(10)
        yield servers[0]
    finally:
        stop.set()
        thread.join(10)
    assert codes == [0] and not thread.is_alive()


def test_serve_answers_until_stopped(market_mock: responses.RequestsMock) -> None:
    """The server the CLI starts: the landing page, metrics, then a clean stop."""
    market_mock.add_passthru("http://127.0.0.1")
    with cli_serving("--listen-address", "127.0.0.1", "--port", "0") as srv:
        assert get(f"http://127.0.0.1:{srv.port}/")[0] == 200
        assert b"binance_up 1.0" in get(f"http://127.0.0.1:{srv.port}/metrics")[2]
    assert_port_free(srv.port)


@needs_ipv6
def test_ipv6_listen_address(market_mock: responses.RequestsMock) -> None:
    """``--listen-address ::1``: the family comes from the address."""
    market_mock.add_passthru("http://[::1]")
    with cli_serving("--listen-address", "::1", "--port", "0") as srv:
        status, _, body = get(f"http://[::1]:{srv.port}/metrics")
        assert status == 200 and b"binance_up 1.0" in body
        with pytest.raises(ConnectionRefusedError):  # IPv6 only
            socket.create_connection(("127.0.0.1", srv.port), timeout=10).close()


@needs_ipv6
def test_the_default_address_serves_ipv4_and_ipv6(
    market_mock: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``::`` (the default) is every interface of both families: one dual-stack socket."""
    monkeypatch.delenv("BINANCE_LISTEN_ADDRESS", raising=False)
    assert exporter_cli.build_parser().parse_args([]).listen_address == "::"
    market_mock.add_passthru("http://127.0.0.1")
    market_mock.add_passthru("http://[::1]")
    with cli_serving("--port", "0") as srv:
        for host in ("127.0.0.1", "[::1]"):
            assert get(f"http://{host}:{srv.port}/")[0] == 200
            assert b"binance_up 1.0" in get(f"http://{host}:{srv.port}/metrics")[2]


def test_every_interface_falls_back_to_ipv4_without_ipv6(
    market_mock: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    monkeypatch.setattr(socket, "has_dualstack_ipv6", lambda: False)
    market_mock.add_passthru("http://127.0.0.1")
    with serving(clock, address="::") as srv:
        assert b"binance_up 1.0" in get(f"http://127.0.0.1:{srv.port}/metrics")[2]


@pytest.mark.parametrize("address, shown", [("127.0.0.1", "127.0.0.1"), ("::", "[::]")])
def test_port_in_use_exits_1_with_one_line(
    address: str, shown: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = exporter_cli.serve(parse_args(exporter_cli.build_parser(), [
            "--listen-address", address, "--port", str(port)]), threading.Event())
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith(f"binance-exporter: cannot listen on {shown}:{port}: ")
    assert err.count("\n") == 1


# -- the process -------------------------------------------------------------------


def test_the_exporter_process_is_lazy_serves_metrics_and_stops_on_sigterm() -> None:
    with running_standin() as upstream, running_exporter(upstream.url) as served:
        port = int(served.url.rsplit(":", 1)[1])
        assert get(f"{served.url}/")[0] == 200
        assert not upstream.paths  # started, answered the landing page, no upstream call
        status, _, body = get(f"{served.url}/metrics")
        assert status == 200 and b"binance_up 1.0" in body
        assert sorted(set(upstream.paths)) == [
            "/api/v3/depth", "/api/v3/exchangeInfo", "/api/v3/ticker/24hr",
            "/api/v3/ticker/bookTicker"]
        served.process.send_signal(signal.SIGTERM)
        assert served.process.wait(timeout=15) == 0
        log = served.output()
    assert "spreads: FLOKIUSDT=0.00000001 (delta -)" in log
    assert "SIGTERM, shutting down" in log
    assert_port_free(port)


def test_sigterm_gives_a_scrape_in_flight_its_grace_then_exits_0() -> None:
    """The scrape waits on a refresh held open upstream: SIGTERM closes it after the grace
    (3 s), not after the refresh; the process then exits 0 and frees the port."""
    with running_standin() as upstream, running_exporter(upstream.url) as served:
        port = int(served.url.rsplit(":", 1)[1])
        upstream.holding = True
        waiting, outcome = scrape_in_thread(f"{served.url}/metrics")
        assert upstream.entered.wait(10)
        served.process.send_signal(signal.SIGTERM)
        waiting.join(20)
        assert outcome == [http.client.RemoteDisconnected]
        assert not upstream.release.is_set()  # closed while the refresh was still held
        upstream.release.set()
        assert served.process.wait(timeout=20) == 0
        log = served.output()
    assert "SIGTERM, shutting down" in log and "Traceback" not in log
    assert_port_free(port)


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
        exporter_cli.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("binance-exporter: error:")


def test_bad_environment_exits_2_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BINANCE_TTL_SPREADS", "5")
    with pytest.raises(SystemExit) as exc:
        exporter_cli.main([])
    assert exc.value.code == 2
    assert capsys.readouterr().err == (
        "binance-exporter: error: argument --ttl-spreads: '5' is below the 10 s minimum TTL "
        "(from BINANCE_TTL_SPREADS)\n")
    # a flag wins over the variable, so the variable's bad value is then never an error...
    assert exporter_cli.build_parser().parse_args(["--ttl-spreads", "15"]).ttl_spreads == 15
    # ...and a bad flag is blamed on the flag alone
    with pytest.raises(SystemExit):
        exporter_cli.build_parser().parse_args(["--ttl-spreads", "6"])
    assert "(from" not in capsys.readouterr().err


def test_kubernetes_service_links_do_not_break_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Service named binance injects BINANCE_PORT=tcp://...; ours is BINANCE_LISTEN_PORT."""
    monkeypatch.setenv("BINANCE_PORT", "tcp://10.0.0.7:8080")
    assert exporter_cli.build_parser().parse_args([]).port == 8080
    monkeypatch.setenv("BINANCE_LISTEN_PORT", "9101")
    assert exporter_cli.build_parser().parse_args([]).port == 9101
    monkeypatch.setenv("BINANCE_LISTEN_PORT", "tcp://10.0.0.7:8080")
    with pytest.raises(SystemExit):
        exporter_cli.build_parser().parse_args([])
