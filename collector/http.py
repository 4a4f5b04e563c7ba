"""The exporter's HTTP side: a landing page, ``/metrics``, 404 elsewhere.

One event loop in one thread speaks HTTP/1.1 with keep-alive (Prometheus and
most load tools reuse their connection). A scrape that finds every data group
fresh is answered on the loop from the exposition's rendered bytes, without a
thread hand-off; only a scrape that must wait on a Binance refresh goes to a
small thread pool, so a slow upstream never blocks the landing page or other
scrapes. ``/`` never calls Binance, which makes it the target for health checks.

Limits (see :class:`Limits` and :mod:`collector.http_request`): request heads
of at most 16 KiB, 512 connections at once (a few more get a 503, the rest are
closed at once), an idle keep-alive connection closed after 75 s, a client that
stops reading dropped after 30 s. On ``stop()`` requests in flight get a short
grace period, idle connections are closed at once.
"""

from __future__ import annotations

import asyncio
import email.utils
import html
import logging
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import parse_qs

from collector import __version__
from collector.exposition import Exposition, Request as Wanted
from collector.http_request import (
    MAX_BODY,
    MAX_HEAD,
    BadRequest,
    Request,
    parse_head,
    read_head,
    skip_body,
)

log = logging.getLogger("collector.http")

WRITE_TIMEOUT = 30.0  # a client that stops reading our answer is dropped after this
SHUTDOWN_GRACE = 3.0
BACKLOG = 128  # a burst of scrapers must not overflow the listen queue (1 s SYN retries)

LANDING = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Binance exporter</title></head>
<body><h1>Binance exporter</h1>
<p>Public Binance Spot market data as Prometheus metrics (version {version}).</p>
<p><a href="/metrics">Metrics</a></p>
</body></html>
"""
HTML = "text/html; charset=utf-8"
TEXT = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class _Answer:
    status: HTTPStatus
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Limits:
    """How much the server accepts from clients (see the module docstring)."""

    idle_timeout: float = 75.0  # an idle keep-alive connection is closed after this
    max_connections: int = 512  # 503 beyond
    workers: int = 8  # threads for scrapes that wait on a refresh
    max_refusing: int = 64  # connections over the limit being answered 503; beyond, closed


class MetricsServer:  # pylint: disable=too-many-instance-attributes
    """A server bound at construction (so "address in use" raises OSError there);
    ``start()`` serves in a background thread, ``stop()`` releases the port."""

    def __init__(self, address: str, port: int, exposition: Exposition,
                 limits: Limits = Limits()) -> None:
        family = socket.getaddrinfo(address, port, type=socket.SOCK_STREAM,
                                    flags=socket.AI_PASSIVE)[0][0]
        self._sock = socket.create_server((address, port), family=family, backlog=BACKLOG)
        self._exposition = exposition
        self._limits = limits
        self._landing = LANDING.format(version=html.escape(__version__)).encode()
        self._pool = ThreadPoolExecutor(max_workers=limits.workers, thread_name_prefix="scrape")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="http", daemon=True)
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._busy: set[asyncio.Task[None]] = set()
        self._refusing: set[asyncio.Task[None]] = set()
        self._closing = False
        self._date = (0, "")

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        return int(self._sock.getsockname()[1])

    def start(self) -> "MetricsServer":
        """Serve in a background thread."""
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start_serving(), self._loop).result(10)
        return self

    def stop(self) -> None:
        """Stop accepting, let requests in flight finish (briefly), close the socket."""
        if self._thread.is_alive():
            done = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
            try:
                done.result(SHUTDOWN_GRACE + 5)
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(5)
        if not self._thread.is_alive() and not self._loop.is_closed():
            self._loop.close()  # an unclosed loop complains when collected (--log-level debug)
        self._sock.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _start_serving(self) -> None:
        self._server = await asyncio.start_server(
            self._connection, sock=self._sock, limit=MAX_HEAD, backlog=BACKLOG)

    async def _shutdown(self) -> None:
        self._closing = True
        if self._server is not None:
            self._server.close()
        for task in (self._connections - self._busy) | self._refusing:  # not in a request
            task.cancel()
        if self._busy:
            await asyncio.wait(set(self._busy), timeout=SHUTDOWN_GRACE)
        for task in set(self._connections):
            task.cancel()
        if self._connections or self._refusing:
            await asyncio.wait(self._connections | self._refusing, timeout=1)

    # -- one connection --------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        try:
            if len(self._connections) >= self._limits.max_connections or self._closing:
                await self._turn_away(reader, writer, task)
                return
            self._connections.add(task)
            await self._serve(reader, writer, task)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.TimeoutError):
            pass  # the client went away or stalled: nothing to answer
        except asyncio.CancelledError:
            # only our own shutdown cancels connections. End quietly: on Python 3.11
            # asyncio.streams logs a traceback for every cancelled connection task
            pass
        finally:
            self._connections.discard(task)
            self._busy.discard(task)
            writer.close()

    async def _turn_away(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                         task: asyncio.Task[None]) -> None:
        """503 to a connection over the limit; beyond a few such at once, just close it,
        so that a flood of connections cannot run the process out of file descriptors."""
        if len(self._refusing) >= self._limits.max_refusing:
            writer.transport.abort()
            return
        self._refusing.add(task)
        try:
            await self._refuse(reader, writer, _plain(HTTPStatus.SERVICE_UNAVAILABLE,
                                                      "too many connections"))
        finally:
            self._refusing.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     task: asyncio.Task[None]) -> None:
        while not self._closing:
            try:
                lines = await asyncio.wait_for(read_head(reader), self._limits.idle_timeout)
                if lines is None:
                    return  # closed between requests: the normal end of a keep-alive connection
                self._busy.add(task)
                request = parse_head(lines)
                await skip_body(reader, request)
            except BadRequest as exc:
                await self._refuse(reader, writer, _plain(exc.status, str(exc)))
                return
            answer = await self._answer(request)
            keep_alive = request.keep_alive and not self._closing
            await self._send(writer, answer, keep_alive=keep_alive, http10=request.http10,
                             head_only=request.method == "HEAD")
            self._busy.discard(task)
            if not keep_alive:
                return

    async def _refuse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      answer: _Answer) -> None:
        """Answer and close gracefully: half-close, then read what the client still sends.

        Closing a socket with unread bytes makes the kernel reset the connection,
        which can destroy the answer before the client reads it. The reading is
        bounded (64 KiB, 1 s).
        """
        await self._send(writer, answer, keep_alive=False, http10=False, head_only=False)
        if writer.can_write_eof():
            writer.write_eof()
        deadline = self._loop.time() + 1.0
        left = MAX_BODY
        while left > 0 and (wait := deadline - self._loop.time()) > 0:
            try:
                chunk = await asyncio.wait_for(reader.read(left), wait)
            except (asyncio.TimeoutError, ConnectionError):
                return
            if not chunk:
                return
            left -= len(chunk)

    async def _answer(self, request: Request) -> _Answer:
        if request.method not in ("GET", "HEAD"):
            return _Answer(HTTPStatus.METHOD_NOT_ALLOWED, TEXT, b"Only GET and HEAD\n",
                           (("Allow", "GET, HEAD"),))
        if request.path == "/metrics":
            return await self._metrics(request)
        if request.path == "/":
            return _Answer(HTTPStatus.OK, HTML, self._landing)
        return _plain(HTTPStatus.NOT_FOUND, "Not found: try /metrics")

    async def _metrics(self, request: Request) -> _Answer:
        wanted = Wanted(request.headers.get("accept", ""),
                         request.headers.get("accept-encoding", ""),
                         tuple(parse_qs(request.query).get("name[]", ())))
        try:
            body = self._exposition.cached(wanted)
            if body is None:  # a refresh is due: wait for it off the loop
                body = await self._loop.run_in_executor(self._pool, self._exposition.fresh, wanted)
        except Exception:  # pylint: disable=broad-exception-caught
            # a bug, not an upstream failure (those are metrics): say so, keep serving
            log.exception("rendering /metrics failed")
            return _plain(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error rendering metrics")
        headers = [("Vary", "Accept, Accept-Encoding")]
        if body.gzipped:
            headers.append(("Content-Encoding", "gzip"))
        return _Answer(HTTPStatus.OK, body.content_type, body.data, tuple(headers))

    async def _send(self, writer: asyncio.StreamWriter, answer: _Answer, *, keep_alive: bool,
                    http10: bool, head_only: bool) -> None:
        lines = [f"HTTP/1.1 {answer.status.value} {answer.status.phrase}",
                 f"Date: {self._http_date()}",
                 f"Server: binance-exporter/{__version__}",
                 f"Content-Type: {answer.content_type}",
                 f"Content-Length: {len(answer.body)}",
                 *(f"{name}: {value}" for name, value in answer.headers)]
        if not keep_alive:
            lines.append("Connection: close")
        elif http10:
            lines.append("Connection: keep-alive")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        writer.write(head if head_only else head + answer.body)
        if writer.transport.get_write_buffer_size():  # only a slow reader makes us wait
            await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT)

    def _http_date(self) -> str:
        now = int(time.time())
        if self._date[0] != now:
            self._date = (now, email.utils.formatdate(now, usegmt=True))
        return self._date[1]


def _plain(status: HTTPStatus, text: str) -> _Answer:
    return _Answer(status, TEXT, f"{text}\n".encode())
