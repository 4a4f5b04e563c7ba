"""Binance's market-data WebSocket streams, minus the sockets.

What a stream connection is sent, and when, is decided here; ``stream_server``
carries it out with aiohttp.  A :class:`StreamSession` is told what arrived
and asked what is due at the clock's time; it answers with plain actions
(:class:`Send`, :class:`Ping`, :class:`Pong`, :class:`Close`).

Stream names are a lower-cased symbol and a kind: ``btcusdt@bookTicker``,
``btcusdt@depth@100ms`` (``@depth``, Binance's 1000 ms variant, is served the
same way: the simulated market moves once a step whatever the speed).  Events
follow the market's steps:

* ``@bookTicker``: at each step whose best bid or ask (price or quantity)
  differs from the last one sent, ``{"u", "s", "b", "B", "a", "A"}``, where
  ``u`` is the book's ``lastUpdateId`` at that step.
* ``@depth@100ms``: the difference between the book the connection last saw
  and the book now, at full depth (up to 5,000 levels a side): every level
  added or changed, every removed level with quantity zero; ``U`` is the old
  book's ``lastUpdateId`` + 1, ``u`` the new one's.  A client that follows
  Binance's "How to manage a local order book correctly" from a REST snapshot
  thus holds the REST book of the current step.  A step without a change sends
  nothing; a connection that missed steps (a stall, a late loop) gets one event
  spanning them.  Events are computed once per (symbol, steps) and shared by
  every connection.

Requests (``SUBSCRIBE``, ``UNSUBSCRIBE``, ``LIST_SUBSCRIPTIONS``,
``SET_PROPERTY``/``GET_PROPERTY`` ``combined``) are answered as Binance does,
errors as ``{"error": {"code", "msg"}, "id"}``.  More than five incoming
messages (pings and pongs included) in a second close the connection (1008),
as do more than ``3 x ping_seconds`` without the pong of a ping (Binance: 20 s,
one minute), and every connection closes after ``max_age`` (24 h).  The stream
faults (``faults.STREAM_FAULTS``) are drawn here, once a step for a connection
and once an event for ``ws_gap``.
"""

from __future__ import annotations

import json
import math
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .faults import FaultSet
from .market import Level, SimulatedMarket, format_units
from .stream_names import BOOK_TICKER, Stream, StreamNameError, parse_stream
from .weights import MAX_DEPTH_LIMIT

MAX_STREAMS = 1024
MAX_INCOMING_PER_SECOND = 5
PONG_TIMEOUT_PINGS = 3
GOING_AWAY = 1001
POLICY_VIOLATION = 1008
METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")
ROUND_FAULTS = frozenset({"ws_close", "ws_shutdown", "ws_stall", "ws_malformed"})


def dumps(payload: Any) -> str:
    """Compact JSON with UTF-8 kept as is (Binance: events may carry non-ASCII)."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def _changes(old: Sequence[Level], new: Sequence[Level], descending: bool) -> list[Level]:
    """Levels of ``new`` that differ from ``old``, and ``old``'s vanished ones at 0."""
    before, after = dict(old), dict(new)
    changed = [(price, qty) for price, qty in new if before.get(price) != qty]
    changed += [(price, 0) for price in before if price not in after]
    return sorted(changed, reverse=descending)


class EventFeed:
    """Event payloads (encoded JSON) computed from the market, cached per step."""

    def __init__(self, market: SimulatedMarket) -> None:
        self.market = market
        self._full_book = lru_cache(maxsize=16)(
            lambda symbol, step: market.book(symbol, MAX_DEPTH_LIMIT, step))
        self.book_ticker: Callable[[str, int], tuple[str, tuple[str, ...]]] = \
            lru_cache(maxsize=4096)(self._book_ticker)
        self.depth_update: Callable[[str, int, int], str | None] = \
            lru_cache(maxsize=16)(self._depth_update)

    def _book_ticker(self, symbol: str, step: int) -> tuple[str, tuple[str, ...]]:
        """The bookTicker event at ``step`` and its (b, B, a, A), to tell a change."""
        book = self.market.book(symbol, 1, step)
        best = book.book_ticker_payload()
        key = (best["bidPrice"], best["bidQty"], best["askPrice"], best["askQty"])
        payload = {"u": book.last_update_id, "s": symbol, "b": key[0], "B": key[1],
                   "a": key[2], "A": key[3]}
        return dumps(payload), key

    def _depth_update(self, symbol: str, since: int, step: int) -> str | None:
        """The depthUpdate from the book at ``since`` to the book at ``step``; None if
        no level changed."""
        old, new = self._full_book(symbol, since), self._full_book(symbol, step)
        bids = _changes(old.bids, new.bids, descending=True)
        asks = _changes(old.asks, new.asks, descending=False)
        if not bids and not asks:
            return None

        def levels(changed: list[Level]) -> list[list[str]]:
            return [[format_units(price, new.price_decimals),
                     format_units(qty, new.qty_decimals)] for price, qty in changed]

        return dumps({"e": "depthUpdate", "E": math.floor(step * self.market.step_seconds * 1000),
                      "s": symbol, "U": old.last_update_id + 1, "u": new.last_update_id,
                      "b": levels(bids), "a": levels(asks)})


class StreamStats:
    """Stream figures for ``GET /_sim/stats`` (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open = 0
        self._subscriptions: Counter[str] = Counter()
        self._counters: dict[str, Counter[str]] = {}
        self.reset()

    def reset(self) -> None:
        """Zero the counters (open connections and subscriptions are state: they stay)."""
        with self._lock:
            self._counters = {key: Counter() for key in ("connections", "messages_sent",
                                                         "closed", "frames")}

    def count(self, group: str, key: str) -> None:
        """One more ``key`` in ``group`` (connections, messages_sent, closed, frames)."""
        with self._lock:
            self._counters[group][key] += 1

    def opened(self, change: int) -> None:
        """A connection opened (+1) or ended (-1)."""
        with self._lock:
            self._open += change
            if change > 0:
                self._counters["connections"]["accepted"] += 1

    def subscribed(self, names: Iterable[str], change: int) -> None:
        """Subscriptions added (+1) or dropped (-1)."""
        with self._lock:
            for name in names:
                self._subscriptions[name] += change
            self._subscriptions = +self._subscriptions  # drop the zeros

    def snapshot(self) -> dict[str, Any]:
        """The ``streams`` part of the stats."""
        with self._lock:
            return {"connections_open": self._open,
                    "subscriptions": dict(sorted(self._subscriptions.items())),
                    **{group: dict(counts) for group, counts in self._counters.items()}}


@dataclass(frozen=True)
class StreamSettings:
    """Per-connection timing: ``--ws-ping-seconds`` and ``--ws-max-age``."""

    ping_seconds: float = 20.0
    max_age: float = 86_400.0

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


class RequestError(Exception):
    """A request answered with Binance's ``{"error": {...}, "id": ...}``."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code, self.msg = code, msg


@dataclass
class Cursor:
    """What one subscribed stream last sent: the book's step, or the best bid/ask."""

    stream: Stream
    since: int
    last: tuple[str, ...] = ()
    gapped: bool = False


def _valid_id(ident: object) -> bool:
    if isinstance(ident, bool):
        return False
    if isinstance(ident, int):
        return -(2**63) <= ident < 2**63
    return ident is None or (isinstance(ident, str) and len(ident) <= 36 and ident.isalnum())


def _names(params: object) -> list[str]:
    if not isinstance(params, list) or not all(isinstance(name, str) for name in params):
        raise RequestError(2, "Invalid request: params must be a list of stream names")
    return params


class StreamSession:  # pylint: disable=too-many-instance-attributes
    """One connection's state: subscriptions, timers, incoming rate, faults."""

    def __init__(self, context: StreamContext, streams: Sequence[Stream],
                 combined: bool = True) -> None:
        self.feed, self.faults = context.feed, context.faults
        self.stats, self.settings = context.stats, context.settings
        self.combined = combined
        now = self.feed.market.now()
        self.connected_at = now
        self._round = self.feed.market.step()
        self._next_ping = now + self.settings.ping_seconds
        self._ping_count = 0
        self._unanswered: deque[tuple[int, float]] = deque()  # (ping number, sent at)
        self._incoming: deque[float] = deque()
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
        reply = self._reply(text)
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
        if self.faults.draw_streams({"ws_no_pong_close"}, list(self.cursors)):
            return []
        answered = int(payload) if payload.isdigit() else 0  # unsolicited pongs answer nothing
        while self._unanswered and self._unanswered[0][0] <= answered:
            self._unanswered.popleft()
        return []

    def _refused(self, now: float) -> list[Action] | None:
        """Count an incoming message: None within the rate, else what to do about it."""
        if self.closing:
            return []
        while self._incoming and self._incoming[0] <= now - 1:
            self._incoming.popleft()
        self._incoming.append(now)
        if len(self._incoming) > MAX_INCOMING_PER_SECOND:
            return self._close("too_many_requests", POLICY_VIOLATION, "Too many requests")
        return None

    def _reply(self, text: str) -> dict[str, Any]:
        try:
            request = json.loads(text)
        except ValueError as error:
            return {"error": {"code": 3, "msg": f"Invalid JSON: {error}"}, "id": None}
        ident = request.get("id") if isinstance(request, dict) else None
        try:
            if not isinstance(request, dict):
                raise RequestError(2, "Invalid request: expected a JSON object")
            return {"result": self._request(request), "id": ident}
        except RequestError as error:
            return {"error": {"code": error.code, "msg": error.msg},
                    "id": ident if _valid_id(ident) else None}

    def _request(self, request: dict[str, Any]) -> Any:
        if not _valid_id(request.get("id")):
            raise RequestError(2, "Invalid request: request ID must be an unsigned integer")
        if set(request) - {"method", "params", "id"}:
            raise RequestError(2, "Invalid request: too many parameters")
        method, params = request.get("method"), request.get("params", [])
        if method is None:
            raise RequestError(2, "Invalid request: missing field `method`")
        if method not in METHODS:
            expected = ", ".join(f"`{name}`" for name in METHODS)
            raise RequestError(2, f"Invalid request: unknown variant `{method}`, "
                                  f"expected one of {expected}")
        if method == "SUBSCRIBE":
            try:
                streams = [parse_stream(name) for name in _names(params)]
            except StreamNameError as error:
                raise RequestError(2, f"Invalid request: {error}") from None
            if len(self.cursors.keys() | {stream.name for stream in streams}) > MAX_STREAMS:
                raise RequestError(4, "Too many subscriptions")
            self._subscribe(streams)
            return None
        if method == "UNSUBSCRIBE":
            gone = [name for name in dict.fromkeys(_names(params)) if name in self.cursors]
            for name in gone:
                del self.cursors[name]
            self.stats.subscribed(gone, -1)
            return None
        if method == "LIST_SUBSCRIPTIONS":
            return list(self.cursors)
        return self._property(method, params)

    def _property(self, method: str, params: object) -> Any:
        if not isinstance(params, list) or not params or not isinstance(params[0], str):
            raise RequestError(2, "Invalid request: property name must be a string")
        if params[0] != "combined":
            raise RequestError(0, "Unknown property")
        if method == "GET_PROPERTY":
            return self.combined
        if len(params) != 2 or not isinstance(params[1], bool):
            raise RequestError(1, "Invalid value type: expected Boolean")
        self.combined = params[1]
        return None

    def _subscribe(self, streams: Iterable[Stream]) -> None:
        step = self.feed.market.step()
        added = []
        for stream in streams:
            if stream.name in self.cursors:
                continue
            cursor = Cursor(stream, step)
            if stream.kind == BOOK_TICKER and stream.symbol is not None:
                cursor.last = self.feed.book_ticker(stream.symbol, step)[1]
            self.cursors[stream.name] = cursor
            added.append(stream.name)
        self.stats.subscribed(added, +1)

    def end(self) -> None:
        """The connection is gone: its subscriptions leave the stats."""
        self.stats.subscribed(self.cursors, -1)
        self.cursors = {}

    # -- what is due -------------------------------------------------------

    def due(self, now: float) -> Iterator[Action]:
        """Everything to send at ``now``: a close, or the events of a new step and a ping.

        Lazy: the caller sends each action as it comes, so a step's bookTicker events go
        out before its depth diffs (tens of milliseconds for a deep book) are computed.
        """
        if self.closing:
            return
        for deadline, label, code, reason in (
                (self._shutdown_at, "server_shutdown", GOING_AWAY, "Server shutdown"),
                (self.connected_at + self.settings.max_age, "max_age", GOING_AWAY,
                 "Connection max age reached"),
                (self._pong_deadline(), "pong_timeout", POLICY_VIOLATION, "Pong timeout")):
            if deadline is not None and now >= deadline:
                yield from self._close(label, code, reason)
                return
        step = self.feed.market.step()
        if step > self._round:
            self._round = step
            yield from self._new_step(step, now)
        if not self._stalled and not self.closing and now >= self._next_ping:
            self._ping_count += 1
            self._unanswered.append((self._ping_count, now))
            self._next_ping = now + self.settings.ping_seconds
            yield Ping(str(self._ping_count).encode())

    def next_deadline(self) -> float:
        """When something may next be due, by the clock (the caller also wakes on demand)."""
        deadlines = [(self._round + 1) * self.feed.market.step_seconds,
                     self.connected_at + self.settings.max_age]
        if not self._stalled:
            deadlines.append(self._next_ping)
        for deadline in (self._pong_deadline(), self._shutdown_at):
            if deadline is not None:
                deadlines.append(deadline)
        return min(deadlines)

    def shutdown(self, now: float) -> list[Action]:
        """The server is stopping: ``serverShutdown``, then the close."""
        if self.closing:
            return []
        return [self._shutdown_event(now), *self._close("server_shutdown", GOING_AWAY,
                                                        "Server shutdown")]

    def _pong_deadline(self) -> float | None:
        return self._unanswered[0][1] + self.settings.pong_timeout if self._unanswered else None

    def _close(self, label: str, code: int = GOING_AWAY, reason: str = "",
               abrupt: bool = False) -> list[Action]:
        self.closing = True
        return [Close(label, code, reason, abrupt)]

    def _new_step(self, step: int, now: float) -> Iterator[Action]:
        """The step's faults, then its events (unless stalled)."""
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
        for event in self._events(step):
            if malformed is not None and malformed.applies_to_streams([event.stream]):
                yield Send(event.text[: len(event.text) // 2], "malformed", event.stream)
                malformed = None
            yield event

    def _events(self, step: int) -> Iterator[Send]:
        """bookTicker events first: they are cheap, and what latency is measured on."""
        cursors = list(self.cursors.items())  # a request may change them between sends
        for name, cursor in cursors:
            symbol = cursor.stream.symbol
            if symbol is not None and cursor.stream.kind == BOOK_TICKER:
                text, best = self.feed.book_ticker(symbol, step)
                if best != cursor.last:
                    cursor.last = best
                    yield self._event(name, text, "bookTicker")
        for name, cursor in cursors:
            symbol = cursor.stream.symbol
            if symbol is None or cursor.stream.kind == BOOK_TICKER:
                continue
            update = self.feed.depth_update(symbol, cursor.since, step)
            if update is None:
                continue
            skip = not cursor.gapped and bool(self.faults.draw_streams({"ws_gap"}, [name]))
            cursor.since, cursor.gapped = step, skip
            if not skip:
                yield self._event(name, update, "depthUpdate")

    def _event(self, name: str, text: str, kind: str) -> Send:
        if self.combined:
            text = f'{{"stream":{dumps(name)},"data":{text}}}'
        return Send(text, kind, name)

    def _shutdown_event(self, now: float) -> Send:
        payload = {"e": "serverShutdown", "E": math.floor(now * 1000)}
        return Send(dumps({"stream": "!serverShutdown", "data": payload} if self.combined
                          else payload), "serverShutdown")
