"""A minimal stand-in for Binance on loopback, serving the fixtures to real processes.

Enough for the report's and exporter's process tests; the full simulator
(``binance-simulator``) covers moving markets, weights and faults.
"""

from __future__ import annotations

import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator
from contextlib import contextmanager
from urllib.parse import parse_qs, urlsplit

from conftest import load


class _Handler(BaseHTTPRequestHandler):
    server: "StandIn"

    def do_GET(self) -> None:  # pylint: disable=invalid-name  # http.server's naming
        url = urlsplit(self.path)
        params = {k: v[0] for k, v in parse_qs(url.query).items()}
        self.server.paths.append(url.path)
        body: Any
        if url.path == "/api/v3/exchangeInfo":
            body = load("exchange_info.json")
        elif url.path == "/api/v3/ticker/24hr":
            body = load("ticker_24hr.json")
        elif url.path == "/api/v3/depth":
            body = load(f"depth/{params['symbol']}.json")
            limit = int(params.get("limit", "100"))
            body["bids"], body["asks"] = body["bids"][:limit], body["asks"][:limit]
        elif url.path == "/api/v3/ticker/bookTicker":
            if self.server.holding:  # a test holds this refresh open until it sets release
                self.server.entered.set()
                self.server.release.wait(30)
            wanted = json.loads(params["symbols"])
            body = [t for t in self.server.book_ticker if t["symbol"] in wanted]
        else:
            self.send_error(404)
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Quiet."""


class StandIn(ThreadingHTTPServer):
    """The server; ``book_ticker`` may be replaced by a test between ticks."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.paths: list[str] = []
        self.book_ticker: list[dict[str, str]] = load("book_ticker.json")
        self.holding = False  # True: bookTicker sets entered, then waits for release
        self.entered, self.release = threading.Event(), threading.Event()

        self.scheme = "http"

    @property
    def url(self) -> str:
        """Base URL to give --base-url."""
        return f"{self.scheme}://127.0.0.1:{self.server_address[1]}"


@contextmanager
def running_standin(tls: ssl.SSLContext | None = None) -> Iterator[StandIn]:
    """Serve on a free loopback port for the duration of the block; over TLS with ``tls``
    (the handshake happens in the request's thread, so a failing one stops nothing)."""
    server = StandIn()
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True,
                                        do_handshake_on_connect=False)
        server.scheme = "https"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)
