"""What the streams have said, held in memory: applied by callbacks, read as records.

:class:`StreamState` keeps, for the symbols followed:

* **Q4** from ``<symbol>@bookTicker`` of each Q2 symbol: the latest best bid/ask pushed
  (an older update, from a connection being replaced, is ignored by its update id), and
  the lowest and highest spread of the last 10 s (:class:`SpreadWindow`);
* **Q3** from a :class:`~collector.order_book.LocalBook` per Q1 symbol, kept from a
  REST snapshot and ``<symbol>@depth@100ms`` per Binance's rules. A book that is not
  synced is not published;
* the streams' health figures.

Nothing is published while no connection delivers: values pushed before a
disconnection are dropped with it, never served as current. It does no I/O and owns
no thread: the stream source calls it from its event loop and reads records from any
thread (one lock). A sample event::

    {"u": 400900217, "s": "BNBUSDT", "b": "25.35190000", "B": "31.21000000",
     "a": "25.36520000", "A": "40.66000000"}
"""

from __future__ import annotations

import logging
import math
import threading
from collections import Counter, deque
from dataclasses import dataclass, replace
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Callable, Collection, Mapping, Sequence

from collector import answers
from collector.errors import BadResponse, NotAttempted, NotSynced, StreamUnavailable
from collector.models import parse_book_ticker_event, parse_depth_update
from collector.costs import DepthLimits
from collector.order_book import CROSSED, GAP, ONE_SIDED, STALE, THIN, LocalBook
from collector.q5 import SAMPLE_SECONDS, SpreadMap
from collector.records import (
    BookTop,
    Notional,
    Outcome,
    OrderBook,
    Spreads,
    StreamHealth,
)
from collector.stream_client import BOOK_TICKER, DEPTH, REASONS, stream_name

log = logging.getLogger("collector.stream.state")

DISCONNECT = "disconnect"  # a resync reason of its own: the connection was lost
BAND = "band"  # the snapshot stopped short of the widest --depth-bands edge: a deeper one
RESYNC_REASONS = (GAP, THIN, STALE, ONE_SIDED, CROSSED, DISCONNECT)


@dataclass(frozen=True, slots=True)
class StreamView:
    """What the streams give a snapshot."""

    spreads: Outcome[Spreads]
    books: Outcome[Mapping[str, Notional]]
    health: StreamHealth


class SpreadWindow:
    """The lowest and highest spread over the last ``seconds``, the latest one included.

    A value counts while it was current: from its update to the next one. Two monotonic
    queues of ``[no longer current at, value]`` (the latest: never), so a bound costs
    O(1) amortised whatever the update rate, and memory holds at most one window's
    updates.
    """

    def __init__(self, seconds: float = SAMPLE_SECONDS) -> None:
        self._seconds = seconds
        self._low: deque[list[Any]] = deque()  # values increasing
        self._high: deque[list[Any]] = deque()  # values decreasing

    def add(self, at: float, value: Decimal) -> None:
        """A new current spread at ``at``: the one before stops being current."""
        for queue in (self._low, self._high):
            if queue and queue[-1][0] > at:  # the latest (last of both queues) stops being
                queue[-1][0] = at  # current now, unless end() already said when it did
        entry = [math.inf, value]
        while self._low and self._low[-1][1] >= value:
            self._low.pop()
        while self._high and self._high[-1][1] <= value:
            self._high.pop()
        self._low.append(entry)
        self._high.append(entry)
        self._expire(at)

    def end(self, at: float) -> None:
        """No spread from ``at`` on (an empty side, a crossed book): the latest value stops
        being current, and leaves the window ``seconds`` later."""
        for queue in (self._low, self._high):
            if queue and queue[-1][0] > at:
                queue[-1][0] = at
        self._expire(at)

    def bounds(self, now: float) -> tuple[Decimal, Decimal] | None:
        """(minimum, maximum) of the values current in (now - seconds, now]; None if none."""
        self._expire(now)
        if not self._low:
            return None
        return self._low[0][1], self._high[0][1]

    def changes_at(self) -> float:
        """When the bounds next change with time alone (no :meth:`add` or :meth:`end`):
        when the value holding either leaves the window; never while only the latest is held."""
        ends = [queue[0][0] for queue in (self._low, self._high) if queue]
        return min(ends, default=math.inf) + self._seconds

    def _expire(self, now: float) -> None:
        for queue in (self._low, self._high):
            while queue and queue[0][0] <= now - self._seconds:
                queue.popleft()


class StreamState:  # pylint: disable=too-many-instance-attributes
    """The streams' values and health (see module docstring)."""

    def __init__(self, levels: int, snapshot_limit: int, *, window: float = SAMPLE_SECONDS,  # pylint: disable=too-many-arguments
                 clock: Callable[[], float], wall: Callable[[], float],
                 bands: Sequence[str] = ()) -> None:
        self._levels = levels
        self._limit = snapshot_limit
        self._bands = tuple(bands)
        self.limits = DepthLimits(snapshot_limit, bands)  # the loop thread's
        self._reasons = RESYNC_REASONS + ((BAND,) if bands else ())
        self._window = window
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()  # written on the stream loop, read by any thread
        self._ranked = False  # a ranking has said what to follow
        self._by_stream: dict[str, str] = {}  # stream name → symbol
        self._tickers: tuple[str, ...] = ()  # Q2: the bookTicker symbols
        self._required: tuple[str, ...] = ()  # those whose spread must be known (Q2's)
        self._books: dict[str, LocalBook] = {}  # Q1
        self._tops: dict[str, tuple[int, BookTop]] = {}  # symbol → (update id, best bid/ask)
        self._windows: dict[str, SpreadWindow] = {}
        self._top_at = 0.0
        self._up: dict[int, bool] = {0: False}  # connection → delivering
        self._connected = False  # every connection delivers
        self._last_message: float | None = None
        self._messages: Counter[str] = Counter()
        self._updates: Counter[str] = Counter()
        self._resyncs: Counter[tuple[str, str]] = Counter()
        # every label of a counter exists from the start, at 0: Prometheus' increase() does
        # not count a series' first sample, so a counter born at 1 would hide its first event
        self._reconnects: Counter[str] = Counter(dict.fromkeys(REASONS, 0))
        self._bad_logged = False
        # the books' record, kept until a book or the connection changes: summing hundreds of
        # levels is the dearest part of a view, and bookTicker events do not change it
        self._books_changed = 0
        self._books_record: tuple[int, Outcome[Mapping[str, Notional]]] | None = None
        # the last view, kept while nothing changed (every change under the lock counts one
        # in _version), Q5's deltas are the same and no 10 s extreme has left its window:
        # a scrape between two events costs a comparison, not a rebuild
        self._version = 0
        self._view: tuple[int, SpreadMap, float, StreamView] | None = None

    # -- what to follow ------------------------------------------------------------------

    def ranked(self) -> None:
        """A ranking has said what to follow (it is followed once :meth:`follow` runs)."""
        with self._lock:
            self._version += 1
            self._ranked = True
            self._books_changed += 1

    def follow(self, books: Sequence[str], tickers: Sequence[str],
               required: Sequence[str] | None = None) -> dict[str, str]:
        """Follow the books of ``books`` and the best bid/ask of ``tickers``; the streams
        that takes, name → symbol. Spreads are published once ``required`` (default: all
        of ``tickers``) have each had a best bid/ask pushed: an illiquid symbol of the whole
        market may not change for minutes."""
        by_stream = {stream_name(s, BOOK_TICKER): s for s in tickers}
        by_stream.update({stream_name(s, DEPTH): s for s in books})
        with self._lock:
            self._version += 1
            self._books = {s: self._books.get(s) or LocalBook(s, self._levels, self._limit,
                                                              bands=self._bands)
                           for s in books}
            self._tickers = tuple(tickers)
            self._required = tuple(tickers if required is None else required)
            for gone in set(self._tops) - set(tickers):
                del self._tops[gone]
                self._windows.pop(gone, None)
            self._by_stream = by_stream
            # counters of what is no longer followed go; those of what now is start at 0
            self._messages = Counter({n: self._messages[n] for n in by_stream})
            self._updates = Counter({s: self._updates[s] for s in tickers})
            self._resyncs = Counter({(s, r): self._resyncs[s, r]
                                     for s in books for r in self._reasons})
            self._books_changed += 1
        return by_stream

    # -- the connection ------------------------------------------------------------------

    def connections(self, count: int) -> None:
        """The streams are spread over ``count`` connections (Binance allows 1,024 streams
        on one), numbered from 0."""
        with self._lock:
            self._version += 1
            self._up = {n: self._up.get(n, False) for n in range(count)}
            self._connected = bool(self._up) and all(self._up.values())
            self._books_changed += 1

    def connected(self, connection: int = 0) -> None:
        """Values arrive on ``connection`` from now on."""
        with self._lock:
            self._version += 1
            self._up[connection] = True
            self._connected = all(self._up.values())
            self._bad_logged = False
            self._books_changed += 1

    @property
    def is_connected(self) -> bool:
        """True while a connection delivers."""
        return any(self._up.values())

    def disconnected(self, connection: int = 0, streams: Collection[str] | None = None) -> None:
        """What ``connection`` pushed (the values of ``streams``; None: all) is dropped: it
        would be stale."""
        with self._lock:
            self._version += 1
            self._up[connection] = False
            self._connected = False
            tops, books = self._carried_by(streams)
            for symbol in tops:
                del self._tops[symbol]
                self._windows.pop(symbol, None)
            for symbol, book in self._books.items():
                if symbol not in books:
                    continue
                if book.synced:
                    self._resyncs[symbol, DISCONNECT] += 1
                book.reset()
            self._books_changed += 1

    def reconnecting(self, reason: str) -> None:
        """Count a connection attempt."""
        with self._lock:
            self._version += 1
            self._reconnects[reason] += 1

    def bad_message(self, error: BadResponse, streams: Collection[str] | None = None) -> None:
        """A message of an unknown stream of ``streams`` (None: any) is lost: any of their
        books may have missed an event, any best bid/ask an update; they are dropped until
        the streams send them again."""
        with self._lock:
            tops, books = self._carried_by(streams)
        self._drop(books, tops, error)

    def _carried_by(self, streams: Collection[str] | None) -> tuple[list[str], list[str]]:
        """The symbols whose best bid/ask, and those whose book, ``streams`` carry (None:
        every stream): under the lock."""
        if streams is None:
            return list(self._tops), list(self._books)
        names = set(streams)
        return ([s for s in self._tops if stream_name(s, BOOK_TICKER) in names],
                [s for s in self._books if stream_name(s, DEPTH) in names])

    def _drop(self, books: Sequence[str], tops: Sequence[str], error: BadResponse) -> None:
        """Events for these books and best bid/asks may be lost: withdraw them (the books
        resync, the best bid/asks wait for their next update)."""
        with self._lock:
            self._version += 1
            first, self._bad_logged = not self._bad_logged, True
            for symbol in books:
                book = self._books.get(symbol)
                if book is not None:
                    if book.synced:
                        self._resyncs[symbol, GAP] += 1
                    book.reset()
            for symbol in tops:
                self._tops.pop(symbol, None)
                self._windows.pop(symbol, None)
            self._books_changed += 1
        if first:  # once per connection: a flood must not flood the log
            log.warning("unreadable stream message, its values withdrawn: %s", error)

    # -- events ------------------------------------------------------------------------

    def message(self, stream: str, data: Any) -> LocalBook | None:
        """One event applied; the book it left waiting for a snapshot, if any."""
        symbol = self._by_stream.get(stream)
        now = self._clock()
        try:
            if symbol is not None and stream.endswith(BOOK_TICKER):
                self._book_ticker(stream, symbol, data, now)
            elif symbol is not None:
                return self._depth(stream, symbol, data)
        except BadResponse as error:  # only that stream's values are in doubt
            book_ticker = stream.endswith(BOOK_TICKER)
            self._drop([] if book_ticker else [symbol or ""], [symbol or ""] if book_ticker
                       else [], error)
        finally:
            with self._lock:
                self._version += 1
                if symbol is not None:
                    self._messages[stream] += 1
                self._last_message = now
        return None

    def _book_ticker(self, stream: str, symbol: str, data: Any, now: float) -> None:
        update_id, top = parse_book_ticker_event(data, stream)
        if top.symbol != symbol:
            raise BadResponse(f"stream {stream}", "s", f"{top.symbol!r} on the wrong stream")
        with self._lock:
            self._version += 1
            previous = self._tops.get(symbol)
            if previous is not None and update_id <= previous[0]:
                return  # already seen, or older: from a connection being replaced
            self._tops[symbol] = (update_id, top)
            self._updates[symbol] += 1
            self._top_at = self._wall()
            spread = answers.spread(top)
            window = self._windows.get(symbol)
            if window is None:
                window = SpreadWindow(self._window)
                self._windows[symbol] = window
            if spread is None:
                window.end(now)
            else:
                window.add(now, spread)

    def _depth(self, stream: str, symbol: str, data: Any) -> LocalBook | None:
        event = parse_depth_update(data, stream)
        with self._lock:
            self._version += 1
            book = self._books.get(symbol)
            if book is None:
                return None
            self._books_changed += 1
            reason = book.on_event(event)
            if reason is not None:
                self._resyncs[symbol, reason] += 1
            wants_snapshot = not book.synced and book.first_buffered is not None
        if reason is not None:
            log.info("order book %s resyncs (%s)", symbol, reason)
        return book if wants_snapshot else None

    def snapshot_arrived(self, book: LocalBook, snapshot: OrderBook,
                         limit: int | None = None) -> str | None:
        """A REST snapshot for ``book``, asked with ``limit`` levels, applied unless the
        book is no longer followed; the reason it could not be used, if any. One that
        stops short of the widest ``--depth-bands`` edge is dropped for a deeper one
        (:data:`BAND`), up to 5,000 levels."""
        symbol = snapshot.symbol
        with self._lock:
            self._version += 1
            if self._books.get(symbol) is not book:
                return None  # no longer followed
            limit = limit or self._limit
            reason = book.on_snapshot(snapshot, limit)
            notional = book.notional() if reason is None and self._bands else None
            if notional is not None and self.limits.learn(symbol, limit, notional) > limit:
                book.reset()
                reason = BAND
            if reason is not None:
                self._resyncs[symbol, reason] += 1
            self._books_changed += 1
        if reason is None and book.synced:
            log.info("order book %s synced at update %d", symbol, snapshot.last_update_id)
        elif reason is not None:
            log.info("order book %s: snapshot not usable (%s)", symbol, reason)
        return reason

    # -- records -----------------------------------------------------------------------

    def current_spreads(self) -> SpreadMap:
        """Q4 now, for Q5's sample: none at all while no connection delivers."""
        with self._lock:
            if not any(self._up.values()):
                return dict.fromkeys(self._tickers)
            return answers.spreads_of(self._tickers, {s: t for s, (_, t) in self._tops.items()})

    def view(self, deltas: SpreadMap) -> StreamView:
        """What the streams say now, with Q5's last ``deltas``; never waits on the network.
        Built again only when something changed (see ``_view``); the age of the last
        message is always now's."""
        with self._lock:
            now = self._clock()
            kept = self._view
            if kept is None or kept[0] != self._version or kept[1] is not deltas \
                    or now >= kept[2]:
                view = self._build_view(now, deltas)
                until = min((w.changes_at() for s, w in self._windows.items() if s in self._tops),
                            default=math.inf)
                kept = self._view = (self._version, deltas, until, view)
            age = None if self._last_message is None else max(0.0, now - self._last_message)
        view = kept[3]
        return replace(view, health=replace(view.health, last_message_age=age))

    def _build_view(self, now: float, deltas: SpreadMap) -> StreamView:
        """The view now: under the lock."""
        health = StreamHealth(
            connected=self._connected,
            reconnects=dict(self._reconnects),
            messages=dict(self._messages),
            last_message_age=None,  # each view's own
            synced={s: b.synced for s, b in self._books.items()},
            resyncs=dict(self._resyncs),
            updates={s: self._updates[s] for s in self._tickers},
        )
        return StreamView(self._spreads(now, deltas), self._book_notionals(), health)

    def tick(self, spreads: SpreadMap, deltas: SpreadMap, at: float) -> Outcome[Spreads]:
        """The record of Q5's sample ``spreads`` taken at ``at`` (Unix time)."""
        with self._lock:
            return self._spreads(self._clock(), deltas, spreads, at)

    def _spreads(self, now: float, deltas: SpreadMap, spreads: SpreadMap | None = None,
                 at: float | None = None) -> Outcome[Spreads]:
        """The spreads now (or those of a tick, sampled ``at``), with their last deltas
        and minimum/maximum: under the lock."""
        if not self._ranked:
            return Outcome(None, NotAttempted("stream", "no ranking yet to pick symbols from"))
        if not any(self._up.values()):
            return Outcome(None, StreamUnavailable("stream", "not connected"))
        tops = {s: self._tops[s][1] for s in self._tickers if s in self._tops}
        low, high = {}, {}
        for symbol in tops:
            window = self._windows.get(symbol)
            bounds = window.bounds(now) if window is not None else None
            if bounds is not None:
                low[symbol], high[symbol] = bounds
        record = Spreads(
            tops=MappingProxyType(tops),
            spreads=MappingProxyType(dict(spreads) if spreads is not None
                                     else answers.spreads_of(self._tickers, tops)),
            deltas=MappingProxyType({s: deltas.get(s) for s in self._tickers}),
            at=self._top_at if at is None else at,
            minimum=MappingProxyType(low), maximum=MappingProxyType(high))
        missing = [s for s in self._required if s not in tops]
        error = NotSynced("stream", "no best bid/ask pushed yet for " + " ".join(missing)) \
            if missing else None
        return Outcome(record, error)

    def _book_notionals(self) -> Outcome[Mapping[str, Notional]]:
        """The books' record: the one kept while nothing it shows changed."""
        kept = self._books_record
        if kept is None or kept[0] != self._books_changed:
            kept = self._books_record = (self._books_changed, self._notionals())
        return kept[1]

    def _notionals(self) -> Outcome[Mapping[str, Notional]]:
        if not self._ranked:
            return Outcome(None, NotAttempted("stream", "no ranking yet to pick symbols from"))
        if not any(self._up.values()):
            return Outcome(None, StreamUnavailable("stream", "not connected"))
        notionals = {}
        for symbol, book in self._books.items():
            notional = book.notional()
            if notional is not None:
                notionals[symbol] = notional
        missing = [s for s in self._books if s not in notionals]
        error = NotSynced("stream", "order book not synced: " + " ".join(missing)) \
            if missing else None
        return Outcome(MappingProxyType(notionals), error)
