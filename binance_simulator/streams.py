"""Binance's market-data WebSocket streams, minus the sockets: one connection's session.

What a stream connection is sent, and when, is decided here; ``stream_server``
carries it out with aiohttp.  A :class:`StreamSession` is told what arrived
and asked what is due at the clock's time; it answers with plain actions
(:class:`Send`, :class:`Ping`, :class:`Pong`, :class:`Close`).

Stream names are parsed in ``stream_names``, event payloads computed in ``events``,
requests parsed in ``stream_requests``.  The session sends each subscribed stream
its events as the market's steps come (a step is Binance's 100 ms at the default
``--step-seconds``, cut into moments: ``--ws-book-ticker-rate`` / 10 of them):

* ``@bookTicker``: at each moment whose best bid or ask (price or quantity) differs
  from the last one sent: every moment for the busiest symbols (50 a second by
  default), a step's first moment for the others.  When the clock has passed
  several moments at once (a fake clock, a late loop), the latest only;
* ``@depth@100ms``: the levels that changed since the connection's last event, so
  that a client that follows Binance's "How to manage a local order book
  correctly" from a REST snapshot holds the REST book of the step's first moment.
  A step without a change sends nothing; a connection that missed steps (a stall, a
  late loop) gets one event spanning them.  ``@depth``, Binance's 1000 ms variant,
  sends the same every ten steps.

Requests (``SUBSCRIBE``, ``UNSUBSCRIBE``, ``LIST_SUBSCRIPTIONS``,
``SET_PROPERTY``/``GET_PROPERTY`` ``combined``) are answered as Binance does.  More
than five incoming messages (pings and pongs included) in a second close the
connection (1008), as do more than ``3 x ping_seconds`` without the pong of a ping
(Binance: 20 s, one minute), and every connection closes after ``max_age`` (24 h).
The stream faults (``faults.STREAM_FAULTS``) are drawn here, once a step for a
connection and once an event for ``ws_gap``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .events import EventFeed, dumps
from .faults import FaultSet
from .market import BOOK_TICKER_RATE
from .stream_names import BOOK_TICKER, DEPTH_100MS, DEPTH_1S, Stream
from .stream_requests import (GET_PROPERTY, LIST_SUBSCRIPTIONS, SUBSCRIBE, UNSUBSCRIBE, Request,
                              RequestError, parse_request)
from .stream_stats import StreamStats

MAX_STREAMS = 1024
MAX_INCOMING_PER_SECOND = 5
PONG_TIMEOUT_PINGS = 3
GOING_AWAY = 1001
POLICY_VIOLATION = 1008
ROUND_FAULTS = frozenset({"ws_close", "ws_shutdown", "ws_stall", "ws_malformed"})
DEPTH_EVERY = {DEPTH_100MS: 1, DEPTH_1S: 10}  # steps per depth event: 100 ms and 1 s


@dataclass(frozen=True)
class StreamSettings:
    """Per-connection timing (``--ws-ping-seconds``, ``--ws-max-age``), and how many
    bookTicker events a second the busiest symbols send at Binance's pace of ten steps
    a second (``--ws-book-ticker-rate``; Binance: 50 to 500 for BTCUSDT), in whole
    tens: that many moments a step at which the market's best levels may change."""

    ping_seconds: float = 20.0
    max_age: float = 86_400.0
    book_ticker_rate: int = BOOK_TICKER_RATE

    @property
    def pong_timeout(self) -> float:
        """How long a ping may stay unanswered (Binance: a minute for a 20 s ping)."""
        return PONG_TIMEOUT_PINGS * self.ping_seconds


@dataclass(frozen=True)
class StreamContext:
    """What every session shares: the events, the faults, the stats and the timing."""

    feed: EventFeed
    faults: FaultSet
    stats: StreamStats
    settings: StreamSettings


@dataclass(frozen=True)
class Send:
    """A text message; ``kind`` labels it in the stats, ``stream`` names its stream."""

    text: str
    kind: str
    stream: str = ""


@dataclass(frozen=True)
class Ping:
    """A ping frame."""

    payload: bytes


@dataclass(frozen=True)
class Pong:
    """A pong frame answering the client's ping."""

    payload: bytes


@dataclass(frozen=True)
class Close:
    """End the connection: a close frame (``code``, ``reason``), or a TCP reset when
    ``abrupt``; ``label`` is the reason in the stats."""

    label: str
    code: int = GOING_AWAY
    reason: str = ""
    abrupt: bool = False


Action = Send | Ping | Pong | Close


@dataclass
class Cursor:
    """What one subscribed stream last sent: the book's step, or the best bid/ask."""

    stream: Stream
    since: int
    last: tuple[str, ...] = ()
    gapped: bool = False


class IncomingRate:
    """Binance's limit on what a client sends: at most ``limit`` messages a second."""

    def __init__(self, limit: int = MAX_INCOMING_PER_SECOND) -> None:
        self.limit = limit
        self._times: deque[float] = deque()

    def allows(self, now: float) -> bool:
        """Count a message arriving at ``now``: whether it is within the rate."""
        while self._times and self._times[0] <= now - 1:
            self._times.popleft()
        self._times.append(now)
        return len(self._times) <= self.limit


class Heartbeat:
    """The server's pings: one every ``ping_seconds`` from the start, each numbered; a
    pong answers the pings up to the number it carries."""

    def __init__(self, settings: StreamSettings, now: float) -> None:
        self.settings = settings
        self.next_ping = now + settings.ping_seconds
        self._count = 0
        self._unanswered: deque[tuple[int, float]] = deque()  # (ping number, sent at)

    def ping(self, now: float) -> Ping | None:
        """The ping due at ``now``, if one is."""
        if now < self.next_ping:
            return None
        self._count += 1
        self._unanswered.append((self._count, now))
        self.next_ping = now + self.settings.ping_seconds
        return Ping(str(self._count).encode())

    def pong(self, payload: bytes) -> None:
        """A pong arrived (an unsolicited one, not carrying a number, answers nothing)."""
        answered = int(payload) if payload.isdigit() else 0
        while self._unanswered and self._unanswered[0][0] <= answered:
            self._unanswered.popleft()

    def pong_deadline(self) -> float | None:
        """When the oldest unanswered ping times out; None when all are answered."""
        if not self._unanswered:
            return None
        return self._unanswered[0][1] + self.settings.pong_timeout


class StreamSession:  # pylint: disable=too-many-instance-attributes
    """One connection: its subscriptions, what each was last sent, its timers and
    faults; it decides what to send, the server sends it."""

    def __init__(self, context: StreamContext, streams: Sequence[Stream],
                 combined: bool = True) -> None:
        self.feed, self.faults = context.feed, context.faults
        self.stats, self.settings = context.stats, context.settings
        self.combined = combined
        now = self.feed.market.now()
        self.connected_at = now
        self._moment = self.feed.market.moment()
        self._heartbeat = Heartbeat(self.settings, now)
        self._incoming = IncomingRate()
        self._stalled = False
        self._shutdown_at: float | None = None
        self.closing = False
        self.cursors: dict[str, Cursor] = {}
        self._subscribe(streams)

    # -- what arrived ------------------------------------------------------

    def on_text(self, text: str, now: float) -> list[Action]:
        """A request from the client: the reply, or a close past the message rate."""
        refused = self._refused(now)
        if refused is not None:
            return refused
        try:
            request = parse_request(text)
            reply = {"result": self._carry_out(request), "id": request.ident}
        except RequestError as error:
            reply = error.payload()
        return [] if self._stalled else [Send(dumps(reply), "reply")]

    def on_ping(self, payload: bytes, now: float) -> list[Action]:
        """A ping from the client: a pong with its payload (pings count toward the rate)."""
        refused = self._refused(now)
        if refused is not None:
            return refused
        return [] if self._stalled else [Pong(payload)]

    def on_pong(self, payload: bytes, now: float) -> list[Action]:
        """A pong: it answers our pings up to the one whose number it carries."""
        refused = self._refused(now)
        if refused is not None:
            return refused
        if not self.faults.draw_streams({"ws_no_pong_close"}, list(self.cursors)):
            self._heartbeat.pong(payload)
        return []

    def _refused(self, now: float) -> list[Action] | None:
        """Count an incoming message: None within the rate, else what to do about it."""
        if self.closing:
            return []
        if not self._incoming.allows(now):
            return self._close("too_many_requests", POLICY_VIOLATION, "Too many requests")
        return None

    def _carry_out(self, request: Request) -> Any:
        """Do what a valid request asks; its result."""
        if request.method == SUBSCRIBE:
            if len(self.cursors.keys() | {stream.name for stream in request.streams}) \
                    > MAX_STREAMS:
                raise RequestError(4, "Too many subscriptions", request.ident)
            self._subscribe(request.streams)
            return None
        if request.method == UNSUBSCRIBE:
            gone = [name for name in dict.fromkeys(request.names) if name in self.cursors]
            for name in gone:
                del self.cursors[name]
            self.stats.subscribed(gone, -1)
            return None
        if request.method == LIST_SUBSCRIPTIONS:
            return list(self.cursors)
        if request.method == GET_PROPERTY:
            return self.combined
        self.combined = bool(request.value)
        return None

    def _subscribe(self, streams: Iterable[Stream]) -> None:
        moment = self.feed.market.moment()
        added = []
        for stream in streams:
            if stream.name in self.cursors:
                continue
            cursor = Cursor(stream, moment // self.feed.market.substeps)
            if stream.kind == BOOK_TICKER and stream.symbol is not None:
                cursor.last = self.feed.book_ticker(stream.symbol, moment)[1]
            self.cursors[stream.name] = cursor
            added.append(stream.name)
        self.stats.subscribed(added, +1)

    def end(self) -> None:
        """The connection is gone: its subscriptions leave the stats."""
        self.stats.subscribed(self.cursors, -1)
        self.cursors = {}

    # -- what is due -------------------------------------------------------

    def due(self, now: float) -> Iterator[Action]:
        """Everything to send at ``now``: a close, or the events of a new moment and a ping.

        Lazy: the caller sends each action as it comes, so a step's bookTicker events go
        out before its depth events are computed.
        """
        if self.closing:
            return
        for deadline, label, code, reason in (
                (self._shutdown_at, "server_shutdown", GOING_AWAY, "Server shutdown"),
                (self.connected_at + self.settings.max_age, "max_age", GOING_AWAY,
                 "Connection max age reached"),
                (self._heartbeat.pong_deadline(), "pong_timeout", POLICY_VIOLATION,
                 "Pong timeout")):
            if deadline is not None and now >= deadline:
                yield from self._close(label, code, reason)
                return
        moment, substeps = self.feed.market.moment(), self.feed.market.substeps
        if moment > self._moment:
            new_step = moment // substeps > self._moment // substeps
            self._moment = moment
            if new_step:
                yield from self._new_step(moment, now)
            elif not self._stalled:
                yield from self._book_tickers(moment)
        if not self._stalled and not self.closing:
            ping = self._heartbeat.ping(now)
            if ping is not None:
                yield ping

    def next_deadline(self) -> float:
        """When something may next be due, by the clock (the caller also wakes on demand)."""
        deadlines = [self.feed.market.moment_seconds(self._moment + 1),
                     self.connected_at + self.settings.max_age]
        if not self._stalled:
            deadlines.append(self._heartbeat.next_ping)
        for deadline in (self._heartbeat.pong_deadline(), self._shutdown_at):
            if deadline is not None:
                deadlines.append(deadline)
        return min(deadlines)

    def shutdown(self, now: float) -> list[Action]:
        """The server is stopping: ``serverShutdown``, then the close."""
        if self.closing:
            return []
        return [self._shutdown_event(now), *self._close("server_shutdown", GOING_AWAY,
                                                        "Server shutdown")]

    def _close(self, label: str, code: int = GOING_AWAY, reason: str = "",
               abrupt: bool = False) -> list[Action]:
        self.closing = True
        return [Close(label, code, reason, abrupt)]

    def _new_step(self, moment: int, now: float) -> Iterator[Action]:
        """The step's faults, then its events at ``moment`` (unless stalled)."""
        fired = {fault.name: fault
                 for fault in self.faults.draw_streams(ROUND_FAULTS, list(self.cursors))}
        if "ws_close" in fired:
            yield from self._close("abrupt", abrupt=True)
            return
        if "ws_shutdown" in fired and self._shutdown_at is None:
            yield self._shutdown_event(now)
            self._shutdown_at = now + fired["ws_shutdown"].params["seconds"]
            if now >= self._shutdown_at:
                yield from self._close("server_shutdown", GOING_AWAY, "Server shutdown")
                return
        self._stalled = "ws_stall" in fired
        if self._stalled:
            return
        malformed = fired.get("ws_malformed")
        for event in self._events(moment):
            if malformed is not None and malformed.applies_to_streams([event.stream]):
                yield Send(event.text[: len(event.text) // 2], "malformed", event.stream)
                malformed = None
            yield event

    def _events(self, moment: int) -> Iterator[Send]:
        """bookTicker events first: they are cheap, and what latency is measured on."""
        yield from self._book_tickers(moment)
        step = moment // self.feed.market.substeps
        for name, cursor in list(self.cursors.items()):  # a request may change them
            symbol = cursor.stream.symbol
            if symbol is None or cursor.stream.kind == BOOK_TICKER:
                continue
            until = step - step % DEPTH_EVERY[cursor.stream.kind]
            update = self.feed.depth_update(symbol, cursor.since, until) \
                if until > cursor.since else None
            if update is None:
                continue
            skip = not cursor.gapped and bool(self.faults.draw_streams({"ws_gap"}, [name]))
            cursor.since, cursor.gapped = until, skip
            if not skip:
                yield self._event(name, update, "depthUpdate")

    def _book_tickers(self, moment: int) -> Iterator[Send]:
        """The best bid/asks that changed since last sent: the latest, when the clock
        passed several moments at once."""
        for name, cursor in list(self.cursors.items()):  # a request may change them
            symbol = cursor.stream.symbol
            if symbol is not None and cursor.stream.kind == BOOK_TICKER:
                text, best = self.feed.book_ticker(symbol, moment)
                if best != cursor.last:
                    cursor.last = best
                    yield self._event(name, text, "bookTicker")

    def _event(self, name: str, text: str, kind: str) -> Send:
        if self.combined:
            text = f'{{"stream":{dumps(name)},"data":{text}}}'
        return Send(text, kind, name)

    def _shutdown_event(self, now: float) -> Send:
        payload = {"e": "serverShutdown", "E": math.floor(now * 1000)}
        return Send(dumps({"stream": "!serverShutdown", "data": payload} if self.combined
                          else payload), "serverShutdown")
