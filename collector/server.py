"""The exporter's HTTP side: ``aiohttp.web`` serving a landing page and ``/metrics``.

aiohttp speaks HTTP (parsing, keep-alive, limits, timeouts: its defaults); this module
routes. A scrape served from cache is answered on the event loop; only one that waits
on a Binance refresh goes to a thread pool, so it never holds up ``/`` or other scrapes.
With a web configuration file (``--web.config.file``), :mod:`collector.web_access` guards
every path and, when the file configures TLS, makes each connection's handshake.
"""

from __future__ import annotations

import asyncio
import html
import logging
import signal
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from collector import __version__
from collector.exposition import Body, Exposition, Request as Wanted
from collector.web_access import Guard, TLSSite
from collector.web_config import TLSContexts, WebConfigFile

log = logging.getLogger("collector.server")

SHUTDOWN_GRACE = 3.0  # seconds a request in flight gets to finish on stop()
BACKLOG = 128  # a burst of scrapers must not overflow the listen queue (1 s SYN retries)
WORKERS = 8  # threads for scrapes that wait on a refresh
LANDING = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Binance exporter</title></head>
<body><h1>Binance exporter</h1>
<p>Public Binance Spot market data as Prometheus metrics (version {html.escape(__version__)}).</p>
<p><a href="/metrics">Metrics</a></p>
</body></html>
"""


def listen(address: str, port: int) -> socket.socket:
    """A listening socket. ``::`` is every interface of both families (IPv4 alone where
    the machine has no IPv6); any other address is that address, IPv4 or IPv6."""
    if address == "::":
        if socket.has_dualstack_ipv6():
            return socket.create_server(("::", port), family=socket.AF_INET6,
                                        dualstack_ipv6=True, backlog=BACKLOG)
        address = "0.0.0.0"
    family = socket.getaddrinfo(address, port, type=socket.SOCK_STREAM,
                                flags=socket.AI_PASSIVE)[0][0]
    return socket.create_server((address, port), family=family, backlog=BACKLOG)


class MetricsServer:  # pylint: disable=too-many-instance-attributes
    """A server bound at construction (so "address in use" raises OSError there);
    ``start()`` serves in a background thread, ``stop()`` releases the port. ``app`` is
    the aiohttp application (its signals may be added to before ``start()``)."""

    def __init__(self, address: str, port: int, exposition: Exposition,  # pylint: disable=too-many-arguments
                 grace: float = SHUTDOWN_GRACE, *, web_config: WebConfigFile | None = None
                 ) -> None:
        self._guard = None if web_config is None else Guard(web_config)
        # TLS or not is decided here, once, as the toolkit decides it when it starts serving
        self._tls = TLSContexts(web_config) if web_config is not None \
            and web_config.started().tls.enabled else None
        self.scheme = "http" if self._tls is None else "https"
        self._sock = listen(address, port)
        self.port: int = self._sock.getsockname()[1]  # the bound port (useful with port 0)
        self._exposition = exposition
        self._grace = grace
        self._waits: set[asyncio.Future[Body]] = set()  # scrapes waiting on a refresh
        self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="scrape")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve_forever, name="http", daemon=True)
        self.app = web.Application(middlewares=() if self._guard is None
                                   else (self._guard.middleware,))
        self.app.router.add_get("/", self._landing)  # add_get routes HEAD too
        self.app.router.add_get("/metrics", self._metrics)
        self.app.router.add_route("*", "/{path:.*}", self._elsewhere)
        self.app.on_shutdown.append(self._end_waits_after_grace)
        # aiohttp's own wait (shutdown_timeout, applied twice) is a backstop, a second longer
        # than our grace: a handler that ends just as aiohttp gives up makes it log an error
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=grace + 1)

    def start(self) -> "MetricsServer":
        """Serve in a background thread."""
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start_serving(), self._loop).result(10)
        return self

    def stop(self) -> None:
        """Stop accepting, give requests in flight ``grace`` seconds, release the port."""
        if self._thread.is_alive():
            done = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)
            try:
                done.result(2 * self._grace + 7)
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(5)
        if not self._thread.is_alive() and not self._loop.is_closed():
            self._loop.close()  # an unclosed loop complains when collected (--log-level debug)
        self._sock.close()
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._guard is not None:
            self._guard.credentials.close()

    def _serve_forever(self) -> None:
        # SIGTERM must reach the main thread, which waits for it (exporter_cli.serve): taken by this
        # thread, or by the threads it starts (they inherit the mask), it would not wake it
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        self._loop.run_forever()

    async def _start_serving(self) -> None:
        await self._runner.setup()
        if self._tls is None:
            await web.SockSite(self._runner, self._sock, backlog=BACKLOG).start()
        else:
            await TLSSite(self._runner, self._sock, self._tls, backlog=BACKLOG).start()

    async def _end_waits_after_grace(self, _: web.Application) -> None:
        """On stop (nothing new accepted): scrapes still waiting on a refresh after the
        grace are closed unanswered, whatever aiohttp's own timeouts."""
        def end() -> None:
            for wait in list(self._waits):
                wait.cancel()
        self._loop.call_later(self._grace, end)

    async def _landing(self, _: web.Request) -> web.Response:
        return web.Response(text=LANDING, content_type="text/html")

    async def _elsewhere(self, request: web.Request) -> web.Response:
        if request.method in ("GET", "HEAD"):
            return web.Response(status=404, text="Not found: try /metrics\n")
        return web.Response(status=405, text="Only GET and HEAD\n", headers={"Allow": "GET, HEAD"})

    async def _metrics(self, request: web.Request) -> web.Response:
        headers = request.headers
        wanted = Wanted(headers.get("Accept", ""), headers.get("Accept-Encoding", ""),
                        tuple(n for n in request.query.getall("name[]", ()) if n))  # as parse_qs
        try:
            body = self._exposition.cached(wanted)
            if body is None:  # a refresh is due: wait for it off the loop
                wait = self._loop.run_in_executor(self._pool, self._exposition.fresh, wanted)
                self._waits.add(wait)
                wait.add_done_callback(self._waits.discard)
                body = await wait
        except Exception:  # pylint: disable=broad-exception-caught
            # a bug, not an upstream failure (those are metrics): say so, keep serving
            log.exception("rendering /metrics failed")
            return web.Response(status=500, text="internal error rendering metrics\n")
        answer = {"Content-Type": body.content_type, "Vary": "Accept, Accept-Encoding"}
        if body.gzipped:
            answer["Content-Encoding"] = "gzip"
        return web.Response(body=body.data, headers=answer)
