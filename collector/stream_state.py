"""What the streams have said, held in memory: applied by callbacks, read as records.

:class:`StreamState` routes each event to the part of the state whose job it is:
:class:`~collector.stream_tops.Tops` (Q4: best bid/ask and 10 s extremes per symbol),
:class:`~collector.stream_books.Books` (Q3: the local order books) and
:class:`~collector.stream_connections.Connections` (which connection delivers, and the
counts). Each keeps what it publishes in :class:`~collector.tracked.TrackedMap` objects,
so :meth:`StreamState.view` asks each map what changed since the version it last read
and copies only that, in a short critical section: events never wait for a view of the
whole market. The whole-market maps are published as
:class:`~collector.chunked.ChunkedMap` objects that share their unchanged chunks with
the view before, which lets a scrape render only what changed.

Nothing is published while no connection delivers: values pushed before a
disconnection are dropped with it, never served as current. It does no I/O and owns
no thread: the stream source calls it from its event loop and reads records from any
thread.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from types import MappingProxyType
from typing import Any, Callable, Collection, Sequence

from collector.chunked import Layout
from collector.costs import DepthLimits
from collector.errors import BadResponse
from collector.models import parse_book_ticker_event, parse_depth_update
from collector.order_book import GAP, LocalBook
from collector.q5 import SAMPLE_SECONDS, SpreadMap
from collector.records import OrderBook, Outcome, Spreads
from collector.stream_books import BAND, DISCONNECT, RESYNC_REASONS, Books
from collector.stream_client import BOOK_TICKER, DEPTH, stream_name
from collector.stream_connections import Connections
from collector.stream_tops import SpreadWindow, Tops
from collector.stream_views import DOWN, UNRANKED, Publication, StreamView, build_view

__all__ = ["BAND", "DISCONNECT", "RESYNC_REASONS", "SpreadWindow", "StreamState", "StreamView"]

log = logging.getLogger("collector.stream.state")


class StreamState:  # pylint: disable=too-many-instance-attributes
    """The streams' values and health (see module docstring)."""

    def __init__(self, levels: int, snapshot_limit: int, *, window: float = SAMPLE_SECONDS,  # pylint: disable=too-many-arguments
                 clock: Callable[[], float], wall: Callable[[], float],
                 bands: Sequence[str] = ()) -> None:
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()  # written on the stream loop, read by any thread
        self._viewing = threading.Lock()  # one view built at a time (not held by events)
        self.tops = Tops(window)
        self.books = Books(levels, snapshot_limit, bands)
        self.links = Connections()
        self._ranked = False  # a ranking has said what to follow
        self._by_stream: dict[str, str] = {}  # stream name → symbol
        self._required: tuple[str, ...] = ()  # the symbols whose spread must be known
        self._layouts = (Layout(()), Layout(()))  # (the symbols, the streams) followed
        self._published = Publication()

    @property
    def limits(self) -> DepthLimits:
        """The depth each book's snapshots need (the loop thread's)."""
        return self.books.limits

    # -- what to follow ------------------------------------------------------------------

    def ranked(self) -> None:
        """A ranking has said what to follow (it is followed once :meth:`follow` runs)."""
        with self._lock:
            self._ranked = True

    def follow(self, books: Sequence[str], tickers: Sequence[str],
               required: Sequence[str] | None = None) -> dict[str, str]:
        """Follow the books of ``books`` and the best bid/ask of ``tickers``; the streams
        that takes, name → symbol. Spreads are published once ``required`` (default: all
        of ``tickers``) have each had a best bid/ask pushed: an illiquid symbol of the whole
        market may not change for minutes."""
        by_stream = {stream_name(s, BOOK_TICKER): s for s in tickers}
        by_stream.update({stream_name(s, DEPTH): s for s in books})
        with self._lock:
            self.books.follow(books)
            self.tops.follow(tickers)
            self.links.streams(by_stream)
            self._required = tuple(tickers if required is None else required)
            self._by_stream = by_stream
            self._layouts = (Layout(tickers), Layout(sorted(by_stream)))
        return by_stream

    # -- the connections ---------------------------------------------------------------

    def connections(self, count: int) -> None:
        """The streams are spread over ``count`` connections, numbered from 0."""
        with self._lock:
            self.links.count(count)

    def connected(self, connection: int = 0) -> None:
        """Values arrive on ``connection`` from now on."""
        with self._lock:
            self.links.connected(connection)

    @property
    def is_connected(self) -> bool:
        """True while a connection delivers."""
        return self.links.any_up

    def disconnected(self, connection: int = 0, streams: Collection[str] | None = None) -> None:
        """What ``connection`` pushed (the values of ``streams``; None: all) is dropped: it
        would be stale."""
        with self._lock:
            self.links.disconnected(connection)
            tops, books = self._carried_by(streams)
            self.tops.drop(tops)
            self.books.reset(books, DISCONNECT)

    def reconnecting(self, reason: str) -> None:
        """Count a connection attempt."""
        with self._lock:
            self.links.reconnects.add(reason)

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
            return list(self.tops.tops), self.books.symbols
        names = set(streams)
        return ([s for s in self.tops.tops if stream_name(s, BOOK_TICKER) in names],
                [s for s in self.books.symbols if stream_name(s, DEPTH) in names])

    def _drop(self, books: Sequence[str], tops: Sequence[str], error: BadResponse) -> None:
        """Events for these books and best bid/asks may be lost: withdraw them."""
        with self._lock:
            first, self.links.bad_logged = not self.links.bad_logged, True
            self.books.reset(books, GAP)
            self.tops.drop(tops)
        if first:  # once per connection: a flood must not flood the log
            log.warning("unreadable stream message, its values withdrawn: %s", error)

    # -- events ------------------------------------------------------------------------

    def message(self, stream: str, data: Any) -> LocalBook | None:
        """One event applied; the book it left waiting for a snapshot, if any."""
        symbol = self._by_stream.get(stream)
        now = self._clock()
        book_ticker = stream.endswith(BOOK_TICKER)
        try:
            if symbol is None:
                return None
            if book_ticker:
                update_id, top = parse_book_ticker_event(data, stream)
                if top.symbol != symbol:
                    raise BadResponse(f"stream {stream}", "s",
                                      f"{top.symbol!r} on the wrong stream")
                with self._lock:
                    self.tops.apply(update_id, top, now, self._wall())
                return None
            event = parse_depth_update(data, stream)
            with self._lock:
                return self.books.on_event(symbol, event)
        except BadResponse as error:  # only that stream's values are in doubt
            self._drop([] if book_ticker else [symbol or ""],
                       [symbol or ""] if book_ticker else [], error)
            return None
        finally:
            with self._lock:
                self.links.message(stream if symbol is not None else None, now)

    def snapshot_arrived(self, book: LocalBook, snapshot: OrderBook,
                         limit: int | None = None) -> str | None:
        """A REST snapshot for ``book``, asked with ``limit`` levels, applied unless the
        book is no longer followed; the reason it could not be used, if any."""
        with self._lock:
            return self.books.on_snapshot(book, snapshot, limit)

    # -- records -----------------------------------------------------------------------

    def current_spreads(self) -> SpreadMap:
        """Q4 now, for Q5's sample: none at all while no connection delivers."""
        with self._lock:
            if not self.links.any_up:
                return dict.fromkeys(self.tops.symbols)
            return self.tops.spreads()

    def view(self, deltas: SpreadMap) -> StreamView:
        """What the streams say now, with Q5's last ``deltas``; never waits on the network.
        Only what changed since the last view is copied; the age of the last message is
        always now's."""
        published = self._published
        with self._viewing:
            with self._lock:
                now = self._clock()
                self.tops.expire(now)
                parts = published.read(self._layouts, self.tops, self.links, self.books)
                ranked, up, all_up = self._ranked, self.links.any_up, self.links.all_up
                books = self.books.notionals()
                last, at, required = self.links.last_message, self.tops.last_at, \
                    self._required
            spreads, health = build_view(published, parts, deltas, all_up, at)
        health = replace(health, last_message_age=None if last is None
                         else max(0.0, now - last))
        if not ranked:
            return StreamView(UNRANKED, UNRANKED, health)
        if not up:
            return StreamView(DOWN, DOWN, health)
        return StreamView(published.outcome(spreads, required), books, health)

    def tick(self, spreads: SpreadMap, deltas: SpreadMap, at: float) -> Outcome[Spreads]:
        """The record of Q5's sample ``spreads`` taken at ``at`` (Unix time)."""
        view = self.view(deltas)
        record = view.spreads.value
        if record is None:
            return view.spreads
        return replace(view.spreads, value=replace(
            record, spreads=MappingProxyType(dict(spreads)), at=at))
