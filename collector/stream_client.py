"""One combined-stream WebSocket to Binance, kept connected to the streams wanted.

aiohttp speaks WebSocket (handshake, framing, answering pings with their payload);
this module decides when to connect, what to subscribe to and when to give up on a
connection, per Binance's rules (web-socket-streams.md):

* one connection, ``<base>/stream?streams=a/b/...``; later changes of the wanted set
  go as ``SUBSCRIBE``/``UNSUBSCRIBE`` on it, our messages spaced so that, with the
  pongs aiohttp sends, the connection stays under Binance's 5 incoming messages a
  second;
* a connection is replaced before Binance's 24 h cut (``rollover``, 23 h) and on a
  ``serverShutdown`` event: the new one is opened first and the old one closed once
  the new one has delivered on every depth stream, so no update is missed;
* a connection that closes, fails, or sends nothing for ``stall`` seconds (30) is
  dropped and a new one opened after an exponential back-off with jitter, never more
  than ``max_attempts`` (30) attempts in ``attempt_window`` seconds (300; Binance
  allows 300 per IP). Base URLs are tried in turn when a connection cannot be made.

What arrives is handed to a :class:`StreamHandler` on the event loop's thread, as it
arrives: the handler only updates memory, so the reader never waits on anything but
the socket. A message is decoded only as far as its stream's name: its event goes on
as raw JSON, which :mod:`collector.models`' parsers decode typed (bench section 8).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Protocol, Sequence
from urllib.parse import quote

import aiohttp
import msgspec

from collector.errors import BadResponse

log = logging.getLogger("collector.stream")

DEFAULT_STREAM_URL = "wss://data-stream.binance.vision"
MAX_STREAMS = 1024  # on one connection (web-socket-streams.md)
URL_NAMES = 2000  # characters of stream names in a connection's URL; the rest are subscribed
SUBSCRIBE_NAMES = 200  # stream names in one SUBSCRIBE/UNSUBSCRIBE message
BOOK_TICKER = "bookTicker"
DEPTH = "depth@100ms"

# why a connection was replaced: the label of binance_stream_reconnects_total
CLOSED = "closed"  # the server closed it
ERROR = "error"  # it failed, or could not be made
STALL = "stall"  # open, but nothing arrived for `stall` seconds
SERVER_SHUTDOWN = "server_shutdown"  # Binance announced a shutdown
ROLLOVER = "rollover"  # replaced before Binance's 24 h cut
REFUSED = "refused"  # the handshake was answered with an HTTP error (403, 429, ...)
REASONS = (CLOSED, ERROR, STALL, SERVER_SHUTDOWN, ROLLOVER, REFUSED)


def stream_name(symbol: str, kind: str) -> str:
    """``BTCUSDT``, ``bookTicker`` → ``btcusdt@bookTicker`` (symbols are lower case)."""
    return f"{symbol.lower()}@{kind}"


def spread_over_connections(names: Sequence[str], most: int = MAX_STREAMS) -> list[list[str]]:
    """``names`` in order, ``most`` to a connection: the first connection gets the first
    (the books' depth streams, then the top symbols' bookTicker)."""
    return [list(names[i:i + most]) for i in range(0, len(names), most)] or [[]]


def _url_part(names: Sequence[str]) -> list[str]:
    """The first names that fit in a connection URL (at least one)."""
    size, taken = 0, list[str]()
    for name in names:
        size += len(name) + 1
        if taken and size > URL_NAMES:
            break
        taken.append(name)
    return taken


def stream_url(base: str, names: Iterable[str]) -> str:
    """The combined-stream URL; names percent-encoded as UTF-8 (symbols may be non-ASCII)."""
    return f"{base.rstrip('/')}/stream?streams=" + "/".join(quote(n, safe="@") for n in names)


class StreamHandler(Protocol):
    """What a :class:`StreamFeed` reports, on its event loop's thread."""

    def on_connected(self) -> None:
        """A connection is open and subscribed to the wanted streams."""

    def on_message(self, stream: str, data: Any) -> None:
        """One event of a combined stream: ``data`` is its JSON object, undecoded (a
        :class:`msgspec.Raw`), for :mod:`collector.models`' parsers."""

    def on_bad_message(self, error: BadResponse) -> None:
        """A message that could not be read: an event of some stream may be lost."""

    def on_disconnected(self, reason: str) -> None:
        """No connection carries data any more (one of :data:`REASONS`)."""

    def on_reconnect(self, reason: str) -> None:
        """A new connection is being attempted, because of ``reason`` (one of
        :data:`REASONS`): counted once per attempt after the first."""


@dataclass(frozen=True, slots=True)
class FeedTiming:  # pylint: disable=too-many-instance-attributes
    """The connection policy's figures (seconds); tests shorten them."""

    stall: float = 30.0
    rollover: float = 23 * 3600.0
    overlap: float = 10.0  # most time a replaced connection is kept beside its successor
    max_attempts: int = 30
    attempt_window: float = 300.0
    backoff_first: float = 1.0
    backoff_max: float = 60.0
    healthy_after: float = 60.0  # a connection delivering this long resets the back-off
    request_interval: float = 0.3  # between our SUBSCRIBE/UNSUBSCRIBE messages
    connect_timeout: float = 10.0
    close_timeout: float = 1.0


class ConnectPolicy:
    """When the next connection attempt may start: back-off, jitter and the attempt cap."""

    def __init__(self, timing: FeedTiming, clock: Callable[[], float] = time.monotonic,
                 rng: Callable[[], float] = random.random) -> None:
        self._timing = timing
        self._clock = clock
        self._rng = rng
        self._attempts: deque[float] = deque()
        self._failures = 0  # consecutive attempts or connections that did not last

    def delay(self) -> float:
        """Seconds to wait before the next attempt."""
        t, now = self._timing, self._clock()
        while self._attempts and self._attempts[0] <= now - t.attempt_window:
            self._attempts.popleft()
        wait = 0.0
        if self._failures:
            backoff = min(t.backoff_max, t.backoff_first * 2 ** (self._failures - 1))
            wait = backoff * (0.5 + self._rng() / 2)  # jitter: spread clients apart
        if len(self._attempts) >= t.max_attempts:
            wait = max(wait, self._attempts[0] + t.attempt_window - now)
        return wait

    def attempted(self) -> None:
        """An attempt starts now."""
        self._attempts.append(self._clock())

    def failed(self) -> None:
        """The attempt failed, or its connection ended before it was healthy."""
        self._failures += 1

    def planned(self) -> None:
        """A replacement we chose (rollover, serverShutdown): no back-off for it."""
        self._failures = 0

    def healthy(self) -> None:
        """A connection has delivered for ``healthy_after`` seconds."""
        self._failures = 0



class StreamMessage(msgspec.Struct, gc=False):
    """A combined-stream message: the stream's name, and its event, undecoded."""

    stream: str
    data: msgspec.Raw


decode_message = msgspec.json.Decoder(StreamMessage).decode


class _Connection:  # pylint: disable=too-many-instance-attributes
    """One open WebSocket: what it was asked for and what it has delivered."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse[bool], base: str, names: set[str],
                 opened_at: float) -> None:
        self.ws = ws
        self.base = base
        self.subscribed = set(names)
        self.opened_at = opened_at
        self.last_data = opened_at
        self.delivered: set[str] = set()  # streams that have sent at least one event
        self.shutdown = asyncio.Event()  # a serverShutdown event arrived
        self.healthy = False
        self.retry_at = -math.inf  # when a failed replacement may be tried again
        self.reader: asyncio.Task[str] | None = None
        # a successor's depth events, held until it takes over: replayed then, in its own
        # order, so that events of two connections never interleave in a book
        self.held: list[tuple[str, Any]] | None = None

    def caught_up(self) -> bool:
        """Every depth stream has delivered: a predecessor may be closed."""
        return all(name in self.delivered for name in self.subscribed if "@depth" in name)


class StreamFeed:  # pylint: disable=too-many-instance-attributes
    """Keeps one connection open to the wanted streams (see module docstring).

    ``run()`` is the task; ``want()`` changes the streams. Both on the loop's thread.
    """

    def __init__(self, urls: Sequence[str], handler: StreamHandler,
                 timing: FeedTiming = FeedTiming(), *,
                 clock: Callable[[], float] = time.monotonic,
                 rng: Callable[[], float] = random.random) -> None:
        self._urls = list(urls)
        self._url = 0  # the base URL in use; the next one after a failed attempt
        self._handler = handler
        self._timing = timing
        self._clock = clock
        self._policy = ConnectPolicy(timing, clock, rng)
        self._wanted: set[str] = set()
        self._changed = asyncio.Event()
        self._next_id = 0
        self._last_request = -float("inf")
        self._session: aiohttp.ClientSession | None = None
        self._attempts = 0
        self._failure = ERROR  # why the last attempt failed

    def want(self, names: Iterable[str]) -> None:
        """The streams to follow from now on; applied on the open connection, if any."""
        wanted = set(names)
        if wanted != self._wanted:
            self._wanted = wanted
            self._changed.set()

    async def run(self) -> None:
        """Connect, follow, replace, reconnect: until cancelled."""
        async with aiohttp.ClientSession() as session:
            self._session = session
            current: _Connection | None = None
            reason = ERROR
            try:
                while True:
                    if current is None:
                        current = await self._open(reason)
                        if current is None:
                            reason = self._failure
                            continue
                        self._handler.on_connected()
                    current, reason = await self._follow(current)
            finally:
                if current is not None:
                    await self._close(current)

    # -- opening ---------------------------------------------------------------

    async def _open(self, reason: str, planned: bool = False) -> _Connection | None:
        """A new connection to the wanted streams, once there are some; None if it failed."""
        while not self._wanted:
            self._changed.clear()
            await self._changed.wait()
        if planned:
            self._policy.planned()
        delay = self._policy.delay()
        if delay > 0:
            log.info("connecting to the streams in %.1f s", delay)
            await asyncio.sleep(delay)
        if self._attempts:
            self._handler.on_reconnect(reason)
        self._attempts += 1
        self._policy.attempted()
        # depth streams first: a successor must carry them all when it takes over
        base = self._urls[self._url]
        names = _url_part(sorted(self._wanted, key=lambda name: ("@depth" not in name, name)))
        self._changed.clear()
        if len(names) < len(self._wanted):
            self._changed.set()  # the rest: SUBSCRIBE once connected
        assert self._session is not None
        try:
            ws = await asyncio.wait_for(self._session.ws_connect(
                stream_url(base, names), autoping=True, max_msg_size=16 * 2**20,
                timeout=aiohttp.ClientWSTimeout(ws_close=self._timing.close_timeout)),
                self._timing.connect_timeout)
        except aiohttp.WSServerHandshakeError as exc:
            self._attempt_failed(REFUSED, base, f"HTTP {exc.status} {exc.message}")
            return None
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            self._attempt_failed(ERROR, base, str(exc) or type(exc).__name__)
            return None
        log.info("streams connected to %s (%d streams, %d more to subscribe)", base,
                 len(names), len(self._wanted) - len(names))
        connection = _Connection(ws, base, set(names), self._clock())
        connection.reader = asyncio.create_task(self._read(connection))
        return connection

    def _attempt_failed(self, reason: str, base: str, problem: str) -> None:
        log.warning("cannot connect to the streams at %s: %s", base, problem)
        self._policy.failed()
        self._failure = reason
        self._url = (self._url + 1) % len(self._urls)
        self._changed.set()  # a change taken for this attempt is still to be made

    # -- following -------------------------------------------------------------

    async def _follow(self, current: _Connection) -> tuple[_Connection | None, str]:
        """Serve ``current`` until it is replaced: (successor, why), or until no connection
        is left: (None, why), the handler told."""
        t = self._timing
        while True:
            assert current.reader is not None
            now = self._clock()
            if not current.healthy and now >= current.opened_at + t.healthy_after:
                current.healthy = True
                self._policy.healthy()
            if now >= current.last_data + t.stall and not current.reader.done():
                log.warning("nothing from the streams for %g s", t.stall)
                current.reader.cancel()
                return await self._lost(current, STALL)
            if current.reader.done():
                return await self._lost(current, self._ended(current.reader))
            replace = ROLLOVER if now >= current.opened_at + t.rollover else (
                SERVER_SHUTDOWN if current.shutdown.is_set() else None)
            if replace is not None and now >= current.retry_at:
                successor, gone = await self._replace(current, replace)
                if successor is not None or gone:
                    return successor, replace
                continue
            if self._changed.is_set():
                self._changed.clear()
                await self._resubscribe(current)
                continue
            wake = [current.last_data + t.stall,
                    max(t.rollover + current.opened_at, current.retry_at)]
            if not current.healthy:
                wake.append(current.opened_at + t.healthy_after)
            waits: set[asyncio.Future[Any]] = {current.reader,
                                               asyncio.ensure_future(self._changed.wait())}
            if now >= current.retry_at:  # a shutdown not yet acted upon
                waits.add(asyncio.ensure_future(current.shutdown.wait()))
            try:
                await asyncio.wait(waits, timeout=max(0.0, min(wake) - self._clock()),
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiting in waits - {current.reader}:
                    waiting.cancel()

    async def _lost(self, current: _Connection, reason: str) -> tuple[None, str]:
        """``current`` ended and none replaces it: the handler drops what it pushed."""
        if not current.healthy:
            self._policy.failed()
        await self._close(current)
        log.warning("streams disconnected (%s)", reason)
        self._handler.on_disconnected(reason)
        return None, reason

    async def _replace(self, current: _Connection, reason: str
                       ) -> tuple[_Connection | None, bool]:
        """Open a successor beside ``current``; once it has delivered every depth stream,
        close ``current`` and hand over: (successor, False). (None, False) if ``current``
        stays (the successor failed; another try in ``backoff_max``). If ``current`` ends
        meanwhile, the handler is told at once (nothing is served from a connection that
        is gone) and the successor, if it comes up, follows as a new connection:
        (successor or None, True)."""
        log.info("replacing the streams connection (%s)", reason)
        assert current.reader is not None
        opening = asyncio.ensure_future(self._open(reason, planned=True))
        await asyncio.wait({opening, current.reader}, return_when=asyncio.FIRST_COMPLETED)
        if not opening.done():  # the old one is gone first
            await self._lost(current, self._ended(current.reader))
            successor = await opening
            if successor is not None:
                self._handler.on_connected()
            return successor, True
        successor = opening.result()
        if successor is None:
            current.retry_at = self._clock() + self._timing.backoff_max
            return None, False
        assert successor.reader is not None
        successor.held = []
        deadline = self._clock() + self._timing.overlap
        while not successor.caught_up() and not successor.reader.done() \
                and not current.reader.done() and self._clock() < deadline:
            await asyncio.sleep(0.05)
        if successor.reader.done():  # the successor failed: keep the old one
            await self._close(successor)
            current.retry_at = self._clock() + self._timing.backoff_max
            return None, False
        await self._close(current)
        held, successor.held = successor.held, None
        for stream, data in held:
            self._deliver(stream, data)
        return successor, False

    async def _resubscribe(self, current: _Connection) -> None:
        """SUBSCRIBE what is newly wanted, UNSUBSCRIBE what no longer is: paced."""
        added = sorted(self._wanted - current.subscribed)
        removed = sorted(current.subscribed - self._wanted)
        requests = [(method, chunk) for method, names in (("SUBSCRIBE", added),
                                                          ("UNSUBSCRIBE", removed))
                    for chunk in (names[i:i + SUBSCRIBE_NAMES]
                                  for i in range(0, len(names), SUBSCRIBE_NAMES))]
        for method, names in requests:
            pause = self._last_request + self._timing.request_interval - self._clock()
            if pause > 0:
                await asyncio.sleep(pause)
            self._next_id += 1
            try:
                await current.ws.send_str(json.dumps(
                    {"method": method, "params": names, "id": self._next_id}))
            except (aiohttp.ClientError, OSError, RuntimeError) as exc:
                log.warning("cannot send %s on the streams connection: %s", method, exc)
                return  # the reader sees the connection end
            self._last_request = self._clock()
            log.info("%s %s", method, " ".join(names) if len(names) <= 10
                     else f"{len(names)} streams")
            if method == "SUBSCRIBE":
                current.subscribed.update(names)
            else:
                current.subscribed.difference_update(names)
                current.delivered.difference_update(names)

    def _deliver(self, stream: str, data: Any) -> None:
        try:
            self._handler.on_message(stream, data)
        except Exception:  # pylint: disable=broad-exception-caught
            # a bug, not Binance's: say so, keep reading (BadResponse is handled)
            log.exception("applying an event of %s failed", stream)

    @staticmethod
    def _ended(reader: asyncio.Task[str]) -> str:
        """Why a reader ended; a bug in it (it never raises by design) is logged as an error."""
        if reader.cancelled():
            return STALL
        error = reader.exception()
        if error is None:
            return reader.result()
        log.error("the streams reader failed", exc_info=error)
        return ERROR

    async def _close(self, connection: _Connection) -> None:
        if connection.reader is not None:
            connection.reader.cancel()
        try:
            await connection.ws.close()
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError):
            pass

    # -- reading ---------------------------------------------------------------

    async def _read(self, connection: _Connection) -> str:
        """Hand every event to the handler until the connection ends; returns why it did
        (a connection that goes silent is cancelled by ``_follow``, the watchdog)."""
        ws = connection.ws
        while True:
            try:
                message = await ws.receive()
            except (aiohttp.ClientError, OSError) as error:  # e.g. a pong to a closing peer
                log.warning("the streams connection failed: %s", error)
                return ERROR
            if message.type == aiohttp.WSMsgType.TEXT:
                connection.last_data = self._clock()
                self._dispatch(connection, message.data)
            elif message.type == aiohttp.WSMsgType.BINARY:
                self._handler.on_bad_message(BadResponse("stream", "message", "binary frame"))
            elif message.type == aiohttp.WSMsgType.ERROR:
                return ERROR
            elif message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
                                  aiohttp.WSMsgType.CLOSED):
                return SERVER_SHUTDOWN if connection.shutdown.is_set() else CLOSED

    def _dispatch(self, connection: _Connection, text: str) -> None:
        try:
            message = decode_message(text)
        except msgspec.ValidationError:  # JSON, but not {"stream": ..., "data": ...}
            self._not_an_event(text)
            return
        except msgspec.DecodeError:
            self._handler.on_bad_message(BadResponse("stream", "message", "not JSON"))
            return
        stream, data = message.stream, message.data
        if memoryview(data)[:1].tobytes() != b"{":
            self._handler.on_bad_message(
                BadResponse("stream", "message", "neither a stream event nor a reply"))
            return
        if "serverShutdown" in text and msgspec.json.decode(data).get("e") == "serverShutdown":
            log.warning("the streams server announced a shutdown")
            connection.shutdown.set()
            return
        connection.delivered.add(stream)
        if connection.held is not None and "@depth" in stream:
            connection.held.append((stream, data))
        else:
            self._deliver(stream, data)

    def _not_an_event(self, text: str) -> None:
        """A reply to a request: {"result", "id"}, or an error, as {"error": {...}, "id"}
        or {"code", "msg", "id"} (web-socket-streams.md's error table); else a bad message."""
        try:
            message = msgspec.json.decode(text)
        except msgspec.DecodeError:  # what decode_message stopped at may hide the rest
            self._handler.on_bad_message(BadResponse("stream", "message", "not JSON"))
            return
        if isinstance(message, dict) and "stream" not in message \
                and ("id" in message or "code" in message):
            error = message.get("error") or message.get("code")
            if error is not None:
                log.warning("the streams server refused request %s: %s",
                            message.get("id"), message.get("error") or message)
            return
        self._handler.on_bad_message(
            BadResponse("stream", "message", "neither a stream event nor a reply"))
