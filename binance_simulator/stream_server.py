"""The streams' listener: aiohttp's WebSocket server around ``streams.StreamSession``.

Binance serves its streams from a host of their own; so does the simulator: a
port of its own (``--ws-port``), served by an event loop in a background
thread, sharing the ``Simulator`` (market, clock, faults, stats) with the REST
server.  aiohttp does the HTTP upgrade and the framing; this module moves
messages between sockets and sessions:

* ``/stream?streams=a/b`` (combined: events wrapped as ``{"stream", "data"}``)
  and ``/ws/a/b`` (raw).  Names arrive URL-encoded, which aiohttp decodes.
* For each connection, the request handler reads (requests, pings, pongs) and
  one writer task sends: what the reader's messages call for, and what the
  session finds due when the clock reaches its next deadline (a step, a ping,
  a close) or when :meth:`StreamServer.wake` says the clock has moved -- the
  way tests with a fake clock get exact, sleep-free timing.
* Stopping sends every connection ``serverShutdown`` and closes it (1001).

A bad stream name is answered 400 and ``ws_refuse`` refuses the upgrade, before
any WebSocket exists.  Every upgrade request, and each connection's subscriptions
and end, go to the simulator's ``ConnectionLog`` (``GET /_sim/connections``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import signal
import socket
import struct
import threading
from collections.abc import Callable, Iterator, Sequence

from aiohttp import WSMsgType, web

from .connection_log import ConnectionLog
from .app import Simulator
from .events import EventFeed
from .stream_names import StreamNameError, parse_stream
from .streams import MAX_STREAMS, Action, Close, Ping, Pong, Send, StreamContext, StreamSession

CLOSE_TIMEOUT = 5.0  # seconds a close or a stop waits for the other side
MIN_WAIT = 0.001  # a writer never spins: it waits at least this long between passes
MAX_MESSAGE = 64 * 1024  # requests are small; Binance's own limit is not documented
EVENT_KINDS = ("bookTicker", "depthUpdate")  # the Sends that carry a market step


class Connection:  # pylint: disable=too-many-instance-attributes
    """One WebSocket: its session, the messages queued for it and its writer's passes."""

    def __init__(self, ws: web.WebSocketResponse, session: StreamSession,
                 transport: asyncio.Transport | None, log: ConnectionLog) -> None:
        self.ws, self.session, self._transport = ws, session, transport
        self._log = log
        self.log_id = log.opened(session.connected_at, list(session.cursors))
        self._step = 0  # the market step of the events being sent
        self._outbox: list[Action] = []
        self._wake = asyncio.Event()
        self._passes = [0, 0]  # started, finished
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self.done = False
        self.closing = False

    def post(self, actions: Sequence[Action]) -> None:
        """Queue ``actions`` for the writer and wake it."""
        self._outbox.extend(actions)
        self._wake.set()

    def nudge(self) -> asyncio.Future[None]:
        """Wake the writer; done once a pass begun after now has finished."""
        waiter = asyncio.get_running_loop().create_future()
        if self.done:
            waiter.set_result(None)
        else:
            self._waiters.append((self._passes[0] + 1, waiter))
            self._wake.set()
        return waiter

    async def write(self, now: Callable[[], float]) -> None:
        """The writer: a pass whenever woken or a deadline comes, until the end."""
        try:
            while not self.done:
                self._wake.clear()
                self._passes[0] += 1
                actions, self._outbox = self._outbox, []
                for action in itertools.chain(actions, self._due(now())):
                    if self.done:
                        break
                    await self._carry_out(action)
                self._finish_pass()
                if not self.done:
                    timeout = max(self.session.next_deadline() - now(), MIN_WAIT)
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), timeout)
        finally:
            self.end()

    def _due(self, now: float) -> Iterator[Action]:
        """The session's due actions; notes first the step they belong to (read just
        before the session reads it, as the events of a deep book take a while)."""
        self._step = self.session.feed.market.step()
        yield from self.session.due(now)

    def ended(self, label: str) -> None:
        """The connection is over, for ``label``: counted, and logged with the time."""
        self.session.stats.count("closed", label)
        self._log.closed(self.log_id, self.session.feed.market.now(), label)

    def subscriptions_changed(self) -> None:
        """A request was handled: log what the connection is now subscribed to."""
        self._log.subscriptions(self.log_id, list(self.session.cursors),
                                self.session.feed.market.now())

    def end(self) -> None:
        """No more passes: whoever waits on one stops waiting."""
        self.done = True
        self._finish_pass()

    def _finish_pass(self) -> None:
        self._passes[1] = self._passes[0]
        waiting = []
        for need, waiter in self._waiters:
            if self.done or need <= self._passes[1]:
                if not waiter.done():
                    waiter.set_result(None)
            else:
                waiting.append((need, waiter))
        self._waiters = waiting

    async def _carry_out(self, action: Action) -> None:
        stats = self.session.stats
        try:
            if isinstance(action, Send):
                if action.kind in EVENT_KINDS:
                    self._log.sent(self.log_id, self._step, self.session.feed.market.now())
                await self.ws.send_str(action.text)
                stats.count("messages_sent", action.kind)
            elif isinstance(action, Ping):
                await self.ws.ping(action.payload)
                stats.count("frames", "pings_sent")
            elif isinstance(action, Pong):
                await self.ws.pong(action.payload)
            else:
                await self._close(action)
        except ConnectionError:
            self.done = True
            self.ended("gone")

    async def _close(self, close: Close) -> None:
        self.done = self.closing = True
        self.ended(close.label)
        if not close.abrupt:
            await self.ws.close(code=close.code, message=close.reason.encode())
            return
        if self._transport is not None:  # a TCP reset, no close frame
            with contextlib.suppress(OSError):
                self._transport.get_extra_info("socket").setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self._transport.abort()


class StreamServer:
    """The streams' listener, bound at construction (a busy port raises OSError there);
    :meth:`start` serves in a background thread, :meth:`stop` ends it."""

    def __init__(self, simulator: Simulator, host: str = "127.0.0.1", port: int = 0) -> None:
        self.simulator = simulator
        self.context = StreamContext(EventFeed(simulator.api.market), simulator.faults,
                                     simulator.stats.streams, simulator.config.streams)
        self._sock = socket.create_server((host, port))
        self._connections: set[Connection] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve_forever, name="streams", daemon=True)
        app = web.Application()
        app.router.add_get("/stream", self._combined)
        app.router.add_get("/ws", self._raw)
        app.router.add_get("/ws/{streams:.+}", self._raw)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=CLOSE_TIMEOUT)

    @property
    def url(self) -> str:
        """``ws://host:port`` of the bound socket (the real port when 0 was asked)."""
        host, port = self._sock.getsockname()[:2]
        return f"ws://{host}:{port}"

    def start(self) -> StreamServer:
        """Serve in a background thread."""
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start_serving(), self._loop).result(CLOSE_TIMEOUT)
        return self

    def wake(self) -> concurrent.futures.Future[None]:
        """Tell every connection the clock has moved; the future is done once each has
        sent what is due (for tests that move a fake clock)."""
        return asyncio.run_coroutine_threadsafe(self._wake_all(), self._loop)

    def stop(self) -> None:
        """Send ``serverShutdown`` to every connection, close them, release the port."""
        if self._thread.is_alive():
            done = asyncio.run_coroutine_threadsafe(self._shut_down(), self._loop)
            try:
                done.result(4 * CLOSE_TIMEOUT)
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(CLOSE_TIMEOUT)
        if not self._thread.is_alive() and not self._loop.is_closed():
            self._loop.close()
        self._sock.close()

    def _serve_forever(self) -> None:
        # SIGTERM and SIGINT are for the main thread, which waits for them (cli.main)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        self._loop.run_forever()

    async def _start_serving(self) -> None:
        await self._runner.setup()
        await web.SockSite(self._runner, self._sock).start()

    async def _wake_all(self) -> None:
        await asyncio.gather(*(connection.nudge() for connection in list(self._connections)))

    async def _shut_down(self) -> None:
        now = self.simulator.api.market.now()
        for connection in list(self._connections):
            connection.post(connection.session.shutdown(now))
        with contextlib.suppress(asyncio.TimeoutError):  # a client that reads nothing
            await asyncio.wait_for(self._wake_all(), CLOSE_TIMEOUT)
        await self._runner.cleanup()

    async def _combined(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, request.query.get("streams", ""), combined=True)

    async def _raw(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, request.match_info.get("streams", ""), combined=False)

    async def _serve(self, request: web.Request, names: str,
                     combined: bool) -> web.StreamResponse:
        simulator, stats = self.simulator, self.context.stats
        log, now = simulator.stats.connections, simulator.api.market.now
        try:
            streams = [parse_stream(name) for name in dict.fromkeys(names.split("/")) if name]
        except StreamNameError as error:
            stats.count("connections", "bad_request")
            log.attempt(now(), "bad_request", 400)
            return web.json_response({"error": str(error)}, status=400)
        if len(streams) > MAX_STREAMS:
            stats.count("connections", "bad_request")
            log.attempt(now(), "bad_request", 400)
            return web.json_response({"error": f"more than {MAX_STREAMS} streams"}, status=400)
        refusals = simulator.faults.draw_streams({"ws_refuse"}, [s.name for s in streams])
        if refusals:
            stats.count("connections", "refused")
            status = refusals[0].params["status"]
            log.attempt(now(), "refused", status)
            return web.json_response({"error": "refused (ws_refuse fault)"}, status=status)
        ws = web.WebSocketResponse(autoping=False, compress=False, timeout=CLOSE_TIMEOUT,
                                   max_msg_size=MAX_MESSAGE)
        # the session starts before the handshake ends: a client that moves the clock once
        # connected finds the connection's timers set from before
        session = StreamSession(self.context, streams, combined)
        connection = Connection(ws, session, request.transport, log)
        self._connections.add(connection)
        stats.opened(+1)
        try:
            await ws.prepare(request)
            await self._read(connection, now)
        finally:
            log.closed(connection.log_id, now(), "gone")  # unless logged as it ended
            connection.end()
            self._connections.discard(connection)
            stats.opened(-1)
            session.end()
        return ws

    async def _read(self, connection: Connection, now: Callable[[], float]) -> None:
        """The handler's part: read until the connection ends; the writer task sends."""
        session, stats = connection.session, connection.session.stats
        writer = asyncio.create_task(connection.write(now))
        try:
            async for message in connection.ws:
                if message.type is WSMsgType.TEXT:
                    connection.post(session.on_text(message.data, now()))
                    connection.subscriptions_changed()
                elif message.type is WSMsgType.BINARY:
                    connection.post(session.on_text(message.data.decode(errors="replace"), now()))
                    connection.subscriptions_changed()
                elif message.type is WSMsgType.PING:
                    connection.post(session.on_ping(message.data, now()))
                elif message.type is WSMsgType.PONG:
                    stats.count("frames", "pongs_received")
                    connection.post(session.on_pong(message.data, now()))
                else:  # an error: the connection is gone
                    break
        finally:
            if not connection.closing:
                if not connection.done:
                    connection.ended("client")
                connection.done = True
                writer.cancel()
            failure = (await asyncio.gather(writer, return_exceptions=True))[0]
            if isinstance(failure, Exception):  # a bug: let aiohttp log it
                raise failure
