"""The exporter's HTTP side: a landing page, ``/metrics``, 404 elsewhere.

``/metrics`` is prometheus_client's own WSGI app, so content negotiation
(OpenMetrics or text) and gzip keep working. ``/`` never calls Binance, which
makes it the right target for health checks.
"""

from __future__ import annotations

import html
import threading
from socketserver import ThreadingMixIn
from typing import Any, Callable, Iterable
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

from collector import __version__

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

LANDING = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Binance exporter</title></head>
<body><h1>Binance exporter</h1>
<p>Public Binance Spot market data as Prometheus metrics (version {version}).</p>
<p><a href="/metrics">Metrics</a></p>
</body></html>
"""


def make_app(registry: CollectorRegistry) -> WsgiApp:
    """The WSGI application serving ``registry``."""
    metrics = make_wsgi_app(registry)
    landing = LANDING.format(version=html.escape(__version__)).encode()

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if path == "/metrics":
            return metrics(environ, start_response)  # type: ignore[no-any-return]
        if path == "/":
            start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                                      ("Content-Length", str(len(landing)))])
            return [landing]
        body = b"Not found: try /metrics\n"
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8"),
                                         ("Content-Length", str(len(body)))])
        return [body]

    return app


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    """One thread per request, so a slow refresh never blocks the landing page."""

    daemon_threads = True
    # socketserver's default backlog of 5 drops connections from a burst of
    # scrapers; the kernel then retries the SYN after 1 s, a 1 s scrape
    request_queue_size = 128


class _QuietHandler(WSGIRequestHandler):
    """No access log line per scrape; headers and body leave at once (no Nagle delay)."""

    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # pylint: disable=redefined-builtin
        pass


class MetricsServer:
    """A started server; ``stop()`` releases the port."""

    def __init__(self, address: str, port: int, app: WsgiApp) -> None:
        # binding happens here, so "address in use" surfaces as OSError to the caller
        self._httpd = make_server(address, port, app, _ThreadingServer, _QuietHandler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="http", daemon=True
        )

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        return int(self._httpd.server_address[1])

    def start(self) -> "MetricsServer":
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)
