"""Stream mode's source: spreads and books kept live from Binance's WebSocket streams.

:class:`StreamSource` runs, on an event loop of its own thread, a
:class:`~collector.stream_client.StreamFeed` whose events it applies to a
:class:`~collector.stream_state.StreamState`, the REST snapshots the local books need
(:class:`BookSnapshots`), and Q5's clock: at every multiple of ``sample_every`` (10 s)
of Unix time the current spreads are a :class:`~collector.q5.Q5Sampler` sample. Which
symbols to follow comes from the REST rankings (:class:`~collector.upstream.Upstream`),
as in REST mode. :meth:`StreamSource.snapshot` never waits on the streams.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterator, Sequence

from collector.binance import BinanceClient
from collector.costs import RESYNC_INTERVAL, snapshot_interval, snapshot_limit
from collector.errors import BadResponse, BinanceError, RateLimited
from collector.order_book import LocalBook
from collector.q5 import SAMPLE_SECONDS, Listener, Q5Sampler, log_sample
from collector.records import Outcome, Rankings, Settings, Snapshot, Spreads, Watchlist
from collector.stream_client import (
    BOOK_TICKER,
    DEPTH,
    ERROR,
    FeedTiming,
    StreamFeed,
    StreamHandler,
    spread_over_connections,
    stream_name,
)
from collector.stream_state import StreamState, StreamView
from collector.upstream import Upstream

log = logging.getLogger("collector.stream.source")


async def until(clock: Callable[[], float], deadline: float, step: float = 1.0) -> None:
    """Sleep until ``clock()`` reaches ``deadline``, looking at it at least every ``step``
    seconds: an injected clock that is moved on ends the wait as the real one would."""
    while (left := deadline - clock()) > 0:
        await asyncio.sleep(min(left, step))


class BookSnapshots:  # pylint: disable=too-many-instance-attributes
    """The REST snapshots local books start from: at most one in flight per book, and
    no sooner than ``resync_interval`` after the book's last one (each costs weight)."""

    def __init__(self, client: BinanceClient, state: StreamState, resync_interval: float,
                 clock: Callable[[], float]) -> None:
        self._client = client
        self._state = state
        self._resync_interval = resync_interval  # at weight 25; longer for deeper snapshots
        self._clock = clock
        self._tasks: dict[str, asyncio.Task[None]] = {}  # loop thread only
        self._next: dict[str, float] = {}
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="snapshot")

    def want(self, book: LocalBook) -> None:
        """``book`` waits for a snapshot: fetch one, unless one is on its way."""
        if book.symbol not in self._tasks:
            self._tasks[book.symbol] = asyncio.create_task(self._fetch(book))

    def keep_only(self, symbols: Sequence[str]) -> None:
        """Cancel the snapshots of books no longer followed."""
        for gone in set(self._tasks) - set(symbols):
            self._tasks.pop(gone).cancel()

    def cancel_all(self) -> None:
        """Drop every snapshot in flight: their books start over from new events."""
        for task in self._tasks.values():
            task.cancel()

    def close(self) -> None:
        """Stop the worker threads."""
        self.cancel_all()
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _fetch(self, book: LocalBook) -> None:
        symbol = book.symbol
        try:
            await until(self._clock, self._next.get(symbol, -math.inf))
            limit = self._state.limits.limit(symbol)
            self._next[symbol] = self._clock() + self._resync_interval * \
                snapshot_interval(limit) / RESYNC_INTERVAL
            loop = asyncio.get_running_loop()
            try:
                snapshot = await loop.run_in_executor(
                    self._pool, self._client.order_book, symbol, limit, None)
            except BinanceError as error:
                if isinstance(error, RateLimited):
                    self._next[symbol] = self._clock() + error.retry_after
                log.warning("order book %s: snapshot failed: %s", symbol, error)
                return
            self._state.snapshot_arrived(book, snapshot, limit)
        finally:
            if self._tasks.get(symbol) is asyncio.current_task():
                del self._tasks[symbol]


class StreamSource:  # pylint: disable=too-many-instance-attributes
    """The streams' thread and loop, wired to the state, the snapshots and Q5's clock;
    the :class:`~collector.stream_client.StreamHandler` of its feed."""

    def __init__(self, client: BinanceClient, settings: Settings,  # pylint: disable=too-many-arguments
                 urls: Sequence[str], timing: FeedTiming = FeedTiming(), *,
                 resync_interval: float = RESYNC_INTERVAL,
                 sample_every: float | None = SAMPLE_SECONDS,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time,
                 on_sample: Listener | None = log_sample) -> None:
        self.settings = settings
        self._upstream = Upstream(client, settings, clock=clock, wall=wall)
        self._clock = clock
        self._wall = wall
        self._sample_every = sample_every  # None: no clock of its own (tests call sample())
        every = sample_every or SAMPLE_SECONDS
        limit = snapshot_limit(settings.depth_levels)
        self.state = StreamState(settings.depth_levels, limit, window=every,
                                 clock=clock, wall=wall, bands=settings.depth_bands)
        self._q5 = Q5Sampler(max_gap=1.5 * every, on_sample=on_sample)
        self._snapshots = BookSnapshots(client, self.state, resync_interval, clock)
        self._feed = StreamFeed(urls, self, timing, clock=clock)
        self._follow_lock = threading.Lock()
        self._following: tuple[tuple[str, ...], ...] | None = None
        self._names: list[str] = []  # the first connection's streams (loop thread)
        self._extra: list[_ExtraFeed] = []  # the others, past 1,024 streams (loop thread)
        self._urls, self._timing = urls, timing
        self._ticked = threading.Condition()  # a Q5 tick was sampled
        self._tick: tuple[int, Outcome[Spreads]] = (0, Outcome(None))  # (count, last tick)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="streams", daemon=True)
        self._ready = threading.Event()

    # -- life cycle (any thread) ---------------------------------------------------------

    def start(self) -> "StreamSource":
        """Run the feed and Q5's clock on a thread of their own."""
        self._thread.start()
        self._ready.wait(10)
        return self

    def close(self) -> None:
        """Close the connection and stop the threads."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and self._thread.is_alive():
            loop.call_soon_threadsafe(stop.set)
            self._thread.join(5)
        self._snapshots.close()
        self._upstream.close()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._main(loop))
        finally:
            loop.close()

    async def _main(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop, self._stop = loop, asyncio.Event()
        self._ready.set()
        tasks = [asyncio.create_task(self.supervise())]
        if self._sample_every is not None:
            tasks.append(asyncio.create_task(self._ticks(self._sample_every)))
        try:
            await self._stop.wait()
        finally:
            self._snapshots.cancel_all()
            tasks += [extra.task for extra in self._extra]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def extra_feed(self, handler: StreamHandler) -> StreamFeed:
        """A feed of its own for a connection past the first (loop thread)."""
        return StreamFeed(self._urls, handler, self._timing, clock=self._clock)

    async def supervise(self, feed: StreamFeed | None = None,
                         handler: StreamHandler | None = None) -> None:
        """A feed (the first one by default), started again after a bug (never by design):
        an exporter never dies of its upstream."""
        feed, handler = feed or self._feed, handler or self
        while True:
            try:
                await feed.run()
            except Exception:  # pylint: disable=broad-exception-caught
                log.exception("the streams feed failed; starting it again in a minute")
                handler.on_disconnected(ERROR)
                await asyncio.sleep(60)

    # -- what to follow (any thread) -------------------------------------------------------

    def follow(self, watched: Watchlist) -> None:
        """Follow the books and best bid/asks ``watched`` names."""
        wanted = (watched.books, watched.spreads, watched.top_spreads)
        with self._follow_lock:
            if wanted == self._following:
                return
            self._following = wanted
            self.state.ranked()
            if self._loop is not None:  # in the lock: the loop gets the sets in this order
                self._loop.call_soon_threadsafe(self._set_symbols, *wanted)

    def _set_symbols(self, books: tuple[str, ...], tickers: tuple[str, ...],
                     required: tuple[str, ...]) -> None:
        self.state.follow(books, tickers, required)
        self._snapshots.keep_only(books)
        if len(tickers) > 20:
            log.info("following books of %s and best bid/ask of %d symbols",
                     " ".join(books) or "-", len(tickers))
        else:
            log.info("following books of %s and best bid/ask of %s",
                     " ".join(books) or "-", " ".join(tickers) or "-")
        # the first connection carries the books and the spreads that must be known
        first = set(required)
        ordered = [*required, *(s for s in tickers if s not in first)]
        parts = spread_over_connections([stream_name(s, DEPTH) for s in books]
                                        + [stream_name(s, BOOK_TICKER) for s in ordered])
        self.state.connections(len(parts))
        self._names = parts[0]
        self._feed.want(parts[0])
        for extra in self._extra[len(parts) - 1:]:  # no longer needed
            extra.task.cancel()
        del self._extra[len(parts) - 1:]
        for index, names in enumerate(parts[1:], 1):
            if index > len(self._extra):
                self._extra.append(_ExtraFeed(self, index))
            self._extra[index - 1].want(names)

    # -- the feed's reports (loop thread) ----------------------------------------------------

    def on_connected(self) -> None:
        """Values arrive from now on."""
        self.state.connected()

    def on_disconnected(self, reason: str) -> None:
        """Everything the first connection pushed is dropped: it would be stale."""
        self.state.disconnected(0, self._names if self._extra else None)
        self._snapshots.cancel_all()
        log.info("streams down (%s): live values withdrawn", reason)

    def on_reconnect(self, reason: str) -> None:
        """Count the attempt."""
        self.state.reconnecting(reason)

    def on_bad_message(self, error: BadResponse) -> None:
        """A message that could not be read: every value of its connection is in doubt."""
        self.state.bad_message(error, self._names if self._extra else None)

    def on_message(self, stream: str, data: Any) -> None:
        """One event: applied to memory; a book it left unsynced gets a snapshot."""
        book = self.state.message(stream, data)
        if book is not None:
            self._snapshots.want(book)

    # -- Q5's clock -----------------------------------------------------------------------

    async def _ticks(self, every: float) -> None:
        last = -math.inf
        while True:
            now = self._wall()
            tick = max((math.floor(now / every) + 1) * every, last + every)  # clock steps back
            await asyncio.sleep(tick - now)
            last = tick
            try:
                self.sample(tick)
            except Exception:  # pylint: disable=broad-exception-caught
                log.exception("sampling Q5 failed")  # a bug: the next tick tries again

    def sample(self, at: float) -> None:
        """Q5 at the tick ``at`` (Unix time): the spreads now, and their change since the
        sample of the tick before (none if it was missed)."""
        current = self.state.current_spreads()
        deltas = self._q5.sample(current, at)
        record = self.state.tick(current, deltas, at)
        with self._ticked:
            self._tick = (self._tick[0] + 1, record)
            self._ticked.notify_all()

    def next_tick(self) -> Outcome[Spreads]:
        """Wait for the next Q5 tick: its spreads, deltas and minimum/maximum."""
        with self._ticked:
            seen = self._tick[0]
            self._ticked.wait_for(lambda: self._tick[0] > seen)
            return self._tick[1]

    # -- the Source interface (any thread) ---------------------------------------------------

    def view(self) -> StreamView:
        """What the streams say now, with Q5's last deltas."""
        return self.state.view(self._q5.deltas)

    def snapshot(self) -> Snapshot:
        """The rankings from REST (refreshed when due) pick what the streams follow; the
        spreads and books are the streams' view."""
        exchange, rankings = self._upstream.rankings(self._upstream.deadline())
        return self._snapshot(rankings, exchange.result())

    def cached_snapshot(self) -> Snapshot | None:
        """As :meth:`snapshot`, unless the rankings are due: then None, without waiting."""
        ranked = self._upstream.cached_rankings()
        if ranked is None:
            return None
        exchange, rankings = ranked
        return self._snapshot(rankings, exchange)

    def settled_snapshot(self, sleep: Callable[[float], None], clock: Callable[[], float],
                         patience: float = 30.0) -> Snapshot:
        """A snapshot once every book is synced and every best bid/ask known, or
        ``patience`` seconds on (then its errors say what is missing)."""
        snapshot = self.snapshot()
        give_up = clock() + patience
        while snapshot.errors() and clock() < give_up and snapshot.rankings.ok:
            sleep(0.1)
            snapshot = self.snapshot()
        return snapshot

    def q5_ticks(self, first: Snapshot, interval: float, sleep: Callable[[float], None],
                 clock: Callable[[], float]) -> Iterator[Outcome[Spreads]]:
        """Every tick of Q5's own clock (exact multiples of its interval), from the next."""
        del first, interval, sleep, clock  # the clock is the source's own
        while True:
            yield self.next_tick()

    def _snapshot(self, rankings: Outcome[Rankings], exchange: Outcome[Any]) -> Snapshot:
        watched = self._upstream.watchlist(rankings)
        if watched is not None:
            self.follow(watched)
        view = self.view()
        return self._upstream.snapshot(rankings, view.books, view.spreads, exchange,
                                       stream=view.health)


class _ExtraFeed:
    """A connection past the first (``--spreads all``: more than 1,024 streams): only
    bookTicker streams, its own feed and task; what it pushed is dropped alone when it
    goes down."""

    def __init__(self, source: StreamSource, index: int) -> None:
        self._source, self._index = source, index
        self.names: list[str] = []
        self.feed = source.extra_feed(self)
        self.task = asyncio.create_task(source.supervise(self.feed, self))

    def want(self, names: list[str]) -> None:
        """Its streams from now on."""
        self.names = names
        self.feed.want(names)

    def on_connected(self) -> None:
        """Values arrive on this connection from now on."""
        self._source.state.connected(self._index)

    def on_message(self, stream: str, data: Any) -> None:
        """One event: applied like the first connection's."""
        self._source.on_message(stream, data)

    def on_bad_message(self, error: BadResponse) -> None:
        """A message that could not be read: this connection's values are in doubt."""
        self._source.state.bad_message(error, self.names)

    def on_disconnected(self, reason: str) -> None:
        """What this connection pushed is dropped."""
        self._source.state.disconnected(self._index, self.names)
        log.info("streams connection %d down (%s): its values withdrawn", self._index, reason)

    def on_reconnect(self, reason: str) -> None:
        """Count the attempt."""
        self._source.state.reconnecting(reason)
