"""The exporter's HTTP side and its process: landing page, /metrics, flags, signals."""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
import responses
from conftest import FakeClock, load, register_market
from e2e_support import free_port
from standin import running_standin

from collector import cli
from collector.binance import BinanceClient
from collector.config import parse_args
from collector.exporter import BinanceCollector
from collector.exposition import Body, Exposition, Request
from collector.http import SHUTDOWN_GRACE, Limits, MetricsServer
from collector.market import Market

EXPORTER = Path(sys.executable).with_name("binance-exporter")
BOOK_TICKER = "https://api.binance.com/api/v3/ticker/bookTicker"


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


@contextmanager
def serving(clock: FakeClock, limits: Limits = Limits(),
            exposition: type[Exposition] = Exposition) -> Iterator[MetricsServer]:
    """A started server over a market on ``clock``; stopped (again) and closed on exit."""
    market = Market(BinanceClient(clock=clock, wall=clock.wall), clock=clock, wall=clock.wall)
    srv = MetricsServer("127.0.0.1", 0, exposition(BinanceCollector(market)), limits).start()
    try:
        yield srv
    finally:
        srv.stop()
        market.close()


@contextmanager
def held_book_ticker() -> Iterator[tuple[threading.Event, threading.Event]]:
    """The fixtures' market, except that each bookTicker call sets ``entered`` and then
    waits for ``release`` (set on exit at the latest). Yields (entered, release)."""
    entered, release = threading.Event(), threading.Event()

    def held(_: object) -> tuple[int, dict[str, str], str]:
        entered.set()
        release.wait(30)
        return 200, {}, json.dumps(load("book_ticker.json"))

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        register_market(mock)
        mock.remove(responses.GET, BOOK_TICKER)
        mock.add_callback("GET", BOOK_TICKER, callback=held)
        mock.add_passthru("http://127.0.0.1")
        try:
            yield entered, release
        finally:
            release.set()


@pytest.fixture
def server(market_mock: responses.RequestsMock, clock: FakeClock) -> Iterator[MetricsServer]:
    market_mock.add_passthru("http://127.0.0.1")
    with serving(clock) as srv:
        yield srv


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


def test_bad_environment_exits_2_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BINANCE_TTL_SPREADS", "5")
    with pytest.raises(SystemExit) as exc:
        cli.main([])
    assert exc.value.code == 2
    assert capsys.readouterr().err == (
        "binance-exporter: error: argument --ttl-spreads: '5' is below the 10 s minimum TTL "
        "(from BINANCE_TTL_SPREADS)\n")
    # a flag wins over the variable, so the variable's bad value is then never an error...
    assert cli.build_parser().parse_args(["--ttl-spreads", "15"]).ttl_spreads == 15
    # ...and a bad flag is blamed on the flag alone
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["--ttl-spreads", "6"])
    assert "(from" not in capsys.readouterr().err


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
    """The server the CLI starts: the landing page, metrics, then a clean stop."""
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


# -- HTTP/1.1 as Prometheus and load tools speak it ------------------------------


def raw(port: int, data: bytes, host: str = "127.0.0.1") -> bytes:
    """Send ``data`` on a new connection and read until the server closes it."""
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_keep_alive_serves_many_requests_on_one_connection(server: MetricsServer) -> None:
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


def test_http10_and_connection_close_end_the_connection(server: MetricsServer) -> None:
    """raw() only returns once the server closes: these would hang (then fail) if it did not."""
    answer = raw(server.port, b"GET / HTTP/1.0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and b"Connection: close\r\n" in answer
    answer = raw(server.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b"</html>\n")


def test_pipelined_and_http10_keep_alive_requests_are_answered_in_order(
    server: MetricsServer
) -> None:
    answer = raw(server.port, b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
                              b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n"
                              b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", answer)
    assert statuses == [b"200", b"404", b"200"]
    assert b"Connection: keep-alive\r\n" in answer
    assert answer.endswith(b"\r\n\r\n")  # HEAD: the length of the page, but no body


@pytest.mark.parametrize("request_bytes, status", [
    (b"POST /metrics HTTP/1.1\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi",
     b"405 Method Not Allowed"),
    (b"GARBAGE\r\n\r\n", b"400 Bad Request"),
    (b"GET / HTTP/2.0\r\n\r\n", b"505 HTTP Version Not Supported"),
    (b"GET / HTTP/1.1\r\nno colon here\r\n\r\n", b"400 Bad Request"),
    (b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", b"400 Bad Request"),
    (b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", b"400 Bad Request"),
    (b"GET / HTTP/1.1\r\nContent-Length: \xb2\r\n\r\n", b"400 Bad Request"),  # "²".isdigit()
    # int() refuses numerals over 4300 digits
    (b"GET / HTTP/1.1\r\nContent-Length: " + b"1" * 5000 + b"\r\n\r\n",
     b"413 Request Entity Too Large"),
    (b"GET http://[ HTTP/1.1\r\n\r\n", b"400 Bad Request"),  # urlsplit raises ValueError
    (b"GET /metrics HTTP/1.1\r\nAccept: a\rSet-Cookie: x=1\r\n\r\n", b"400 Bad Request"),
    (b"GET /\x01 HTTP/1.1\r\n\r\n", b"400 Bad Request"),
    (b"GET / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", b"413 Request Entity Too Large"),
    (b"GET / HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n", b"431 Request Header Fields Too Large"),
])
def test_bad_requests_get_a_status_and_never_hurt_the_server(
    server: MetricsServer, request_bytes: bytes, status: bytes
) -> None:
    answer = raw(server.port, request_bytes)
    assert answer.startswith(b"HTTP/1.1 " + status + b"\r\n")
    if status.startswith(b"405"):
        assert b"Allow: GET, HEAD\r\n" in answer
    assert get(f"http://127.0.0.1:{server.port}/")[0] == 200  # still serving


@pytest.fixture
def tight_server(market_mock: responses.RequestsMock, clock: FakeClock
                 ) -> Iterator[MetricsServer]:
    """A server with a 0.2 s idle timeout and room for two connections."""
    market_mock.add_passthru("http://127.0.0.1")
    with serving(clock, Limits(idle_timeout=0.2, max_connections=2)) as srv:
        yield srv


def test_idle_connections_are_closed_and_extra_ones_refused(tight_server: MetricsServer) -> None:
    first = socket.create_connection(("127.0.0.1", tight_server.port), timeout=10)
    second = socket.create_connection(("127.0.0.1", tight_server.port), timeout=10)
    try:
        first.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # both now held by the server
        second.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert first.recv(65536).startswith(b"HTTP/1.1 200")
        assert second.recv(65536).startswith(b"HTTP/1.1 200")
        assert raw(tight_server.port, b"GET / HTTP/1.1\r\n\r\n").startswith(
            b"HTTP/1.1 503 Service Unavailable")
        # the idle timeout closes both (recv returns b"" at EOF; the socket timeout is 10 s)
        assert first.recv(65536) == b"" and second.recv(65536) == b""
    finally:
        first.close()
        second.close()
    assert get(f"http://127.0.0.1:{tight_server.port}/")[0] == 200  # room again


def test_a_slow_refresh_does_not_block_the_landing_page(
    clock: FakeClock,
) -> None:
    """Only the scrapes that need the refresh wait for it; the event loop goes on serving."""
    with held_book_ticker() as (entered, release), serving(clock) as srv:
        url = f"http://127.0.0.1:{srv.port}"
        waiting: list[bytes] = []
        scraper = threading.Thread(target=lambda: waiting.append(get(f"{url}/metrics")[2]))
        scraper.start()
        assert entered.wait(10)  # the first refresh is in flight, holding the spreads' lock
        started = time.monotonic()
        assert get(f"{url}/")[0] == 200
        assert time.monotonic() - started < 2  # not behind the refresh
        assert not waiting
        release.set()
        scraper.join(10)
        assert b"binance_up 1.0" in waiting[0]


def test_stop_is_prompt_with_idle_keep_alive_connections(server: MetricsServer) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("GET", "/")
    connection.getresponse().read()
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2
    connection.close()


def test_ipv6_listen_address(market_mock: responses.RequestsMock) -> None:
    """``--listen-address ::1`` (and ``::``) work: the family comes from the address."""
    market_mock.add_passthru("http://[::1]")
    stop = threading.Event()
    servers: list[MetricsServer] = []
    thread = threading.Thread(target=lambda: cli.serve(
        parse_args(cli.build_parser(), ["--listen-address", "::1", "--port", "0"]), stop,
        on_ready=servers.append))
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not servers and time.monotonic() < deadline:
            time.sleep(0.01)
        status, _, body = get(f"http://[::1]:{servers[0].port}/metrics")
        assert status == 200 and b"binance_up 1.0" in body
    finally:
        stop.set()
        thread.join(10)


def test_a_get_with_a_small_body_is_answered(server: MetricsServer) -> None:
    answer = raw(server.port, b"GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
                              b"GET /x HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert re.findall(rb"HTTP/1\.1 (\d{3}) ", answer) == [b"200", b"404"]


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


def test_stop_gives_a_scrape_in_flight_a_short_grace_then_closes(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A scrape stuck on a refresh does not hold shutdown for the whole refresh budget,
    and closing it is quiet (Python 3.11's asyncio logs a traceback for a cancelled
    connection task)."""
    with held_book_ticker() as (entered, _), serving(clock) as srv:
        outcome: list[object] = []

        def scrape() -> None:
            try:
                outcome.append(get(f"http://127.0.0.1:{srv.port}/metrics")[0])
            except (OSError, http.client.HTTPException) as exc:
                outcome.append(type(exc))

        scraper = threading.Thread(target=scrape)
        scraper.start()
        assert entered.wait(10)
        started = time.monotonic()
        srv.stop()
        assert time.monotonic() - started < SHUTDOWN_GRACE + 2
        scraper.join(10)
        assert time.monotonic() - started < SHUTDOWN_GRACE + 2  # the client saw it at once
        assert outcome == [http.client.RemoteDisconnected]  # closed, never an error page
        assert "Traceback" not in caplog.text and "Exception in callback" not in caplog.text


def test_bare_lf_heads_are_answered(server: MetricsServer) -> None:
    """RFC 9112 lets a server accept LF alone as a line end; waiting for CRLF would hang."""
    answer = raw(server.port, b"GET / HTTP/1.0\n\n")
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")


def test_a_header_value_cannot_add_headers_to_the_answer(server: MetricsServer) -> None:
    """The Accept version is copied into Content-Type: a line break in it must not become a
    header of ours. A bare LF ends the line (the rest is another request header, ignored)."""
    answer = raw(server.port, b"GET /metrics HTTP/1.1\r\nConnection: close\r\n"
                              b"Accept: application/openmetrics-text; version=1.0.0\n"
                              b"Set-Cookie: injected=1\r\n\r\n")
    head = answer.split(b"\r\n\r\n", maxsplit=1)[0]
    assert head.startswith(b"HTTP/1.1 200 OK") and b"Set-Cookie" not in head


def test_an_accept_version_the_library_cannot_read_gets_the_default_format(
    server: MetricsServer, caplog: pytest.LogCaptureFixture
) -> None:
    """prometheus_client's choose_encoder raises on 'version=abc'; that is no 500."""
    status, headers, _ = get(f"http://127.0.0.1:{server.port}/metrics",
                             {"Accept": "text/plain; version=abc"})
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "Traceback" not in caplog.text


def test_a_flood_of_connections_over_the_limit_is_closed_not_queued(
    market_mock: responses.RequestsMock, clock: FakeClock
) -> None:
    """Beyond max_connections, a few get a 503; the rest are closed at once, so file
    descriptors stay bounded however fast connections arrive."""
    market_mock.add_passthru("http://127.0.0.1")
    with serving(clock, Limits(max_connections=1, max_refusing=1)) as srv, \
            socket.create_connection(("127.0.0.1", srv.port), timeout=10) as held, \
            socket.create_connection(("127.0.0.1", srv.port), timeout=10) as refused:
        held.sendall(b"GET / HTTP/1.1\r\n\r\n")
        assert held.recv(65536).startswith(b"HTTP/1.1 200")
        # the server lingers up to 1 s on this one, waiting for it to close: one slot in use
        assert refused.recv(65536).startswith(b"HTTP/1.1 503")
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as third:
            try:
                assert third.recv(65536) == b""  # closed without an answer
            except ConnectionResetError:
                pass  # or reset: either way, not held open
        started = time.monotonic()
        srv.stop()  # while the 503 still lingers: that connection is closed too, at once
        assert time.monotonic() - started < 2
        assert refused.recv(65536) == b""
        assert not srv._refusing  # pylint: disable=protected-access
