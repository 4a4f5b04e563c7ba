"""Stream mode's refresh layer: live best bid/ask, Q5 on its own clock, local order books.

:class:`LiveMarket` runs a :class:`~collector.stream_client.StreamFeed` on an event
loop of its own thread and keeps, in memory, what the streams say:

* **Q4** from ``<symbol>@bookTicker`` of each Q2 symbol: the spread at any moment is
  the latest best bid/ask pushed (an older update, from a connection being replaced,
  is ignored by its update id);
* **Q5** on a clock of its own, not on scrapes: at every multiple of 10 s of Unix time
  the current spreads are sampled, and the delta is the absolute change from the
  sample 10 s before. ``minimum``/``maximum`` are the lowest and highest spread of
  the last 10 s, the current one included;
* **Q3** from a :class:`~collector.order_book.LocalBook` per Q1 symbol, kept from a
  REST snapshot (``depth``, limit 500) and ``<symbol>@depth@100ms`` per Binance's
  rules. A book that is not synced is not published; a book is resynced at most
  every ``resync_interval`` seconds (each snapshot costs 25 request weight).

Nothing is published while no connection delivers: values pushed before a
disconnection are dropped with it, never served as current. Which symbols to follow
comes from the REST rankings (:meth:`follow`). :meth:`view` hands the front ends one
immutable record; it never waits on the network.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Callable, Mapping, Sequence

from collector import answers
from collector.answers import Notional
from collector.binance import BinanceClient
from collector.cache import Outcome
from collector.errors import (
    BadResponse,
    BinanceError,
    NotAttempted,
    NotSynced,
    RateLimited,
    StreamUnavailable,
)
from collector.models import BookTop, parse_book_ticker_event, parse_depth_update
from collector.order_book import GAP, STALE, THIN, LocalBook
from collector.refresh import RESYNC_INTERVAL, Rankings, Settings, Spreads, snapshot_limit
from collector.stream_client import (
    BOOK_TICKER,
    DEPTH,
    FeedTiming,
    ERROR,
    REASONS,
    StreamFeed,
    stream_name,
)

log = logging.getLogger("collector.live")

SAMPLE_SECONDS = 10.0  # Q5's clock, and the window of the spread's minimum and maximum
DISCONNECT = "disconnect"  # a resync reason of its own: the connection was lost
RESYNC_REASONS = (GAP, THIN, STALE, DISCONNECT)


@dataclass(frozen=True, slots=True)
class StreamHealth:  # pylint: disable=too-many-instance-attributes
    """How the streams have gone, as of one view: the stream health metrics."""

    connected: bool
    reconnects: Mapping[str, int]  # reason → attempts made because of it
    messages: Mapping[str, int]  # stream name → events received
    last_message_age: float | None  # seconds since the last event; None before the first
    synced: Mapping[str, bool]  # Q1 symbol → its local book is synced
    resyncs: Mapping[tuple[str, str], int]  # (symbol, reason) → resyncs
    updates: Mapping[str, int]  # Q2 symbol → best bid/ask updates applied


@dataclass(frozen=True, slots=True)
class LiveView:
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
            if queue:
                queue[-1][0] = at  # the latest is the last entry of both queues
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

    def _expire(self, now: float) -> None:
        for queue in (self._low, self._high):
            while queue and queue[0][0] <= now - self._seconds:
                queue.popleft()


class LiveMarket:  # pylint: disable=too-many-instance-attributes,too-many-arguments
    """The streams' state (see module docstring); a :class:`StreamHandler` for the feed."""

    def __init__(self, client: BinanceClient, settings: Settings, urls: Sequence[str],
                 timing: FeedTiming = FeedTiming(), *,
                 resync_interval: float = RESYNC_INTERVAL,
                 sample_every: float | None = SAMPLE_SECONDS,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self._client = client
        self._levels = settings.depth_levels
        self._limit = snapshot_limit(settings.depth_levels)
        self._resync_interval = resync_interval
        self._sample_every = sample_every  # None: no clock of its own (tests call sample())
        self._clock = clock
        self._wall = wall
        self._feed = StreamFeed(urls, self, timing, clock=clock)
        self._lock = threading.Lock()  # the state below: written on the loop, read by views
        self._ticked = threading.Condition(self._lock)  # a Q5 tick was sampled
        self._following: tuple[tuple[str, ...], tuple[str, ...]] | None = None
        self._by_stream: dict[str, str] = {}  # stream name → symbol
        self._tickers: tuple[str, ...] = ()  # Q2: the bookTicker symbols
        self._books: dict[str, LocalBook] = {}  # Q1
        self._tops: dict[str, tuple[int, BookTop]] = {}  # symbol → (update id, best bid/ask)
        self._windows: dict[str, SpreadWindow] = {}
        self._top_at = 0.0
        self._sample: dict[str, Decimal | None] | None = None
        self._sampled_at = -math.inf
        self._deltas: dict[str, Decimal | None] = {}
        self._tick: tuple[int, Outcome[Spreads]] = (0, Outcome(None))  # (count, last tick)
        self._connected = False
        self._last_message: float | None = None
        self._messages: Counter[str] = Counter()
        self._updates: Counter[str] = Counter()
        self._resyncs: Counter[tuple[str, str]] = Counter()
        # every label of a counter exists from the start, at 0: Prometheus' increase() does
        # not count a series' first sample, so a counter born at 1 would hide its first event
        self._reconnects: Counter[str] = Counter(dict.fromkeys(REASONS, 0))
        self._version = 0
        self._bad_logged = False
        # loop-thread only
        self._snapshots: dict[str, asyncio.Task[None]] = {}
        self._next_snapshot: dict[str, float] = {}
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="snapshot")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="streams", daemon=True)
        self._ready = threading.Event()

    # -- life cycle (any thread) ---------------------------------------------------

    def start(self) -> "LiveMarket":
        """Run the feed and Q5's clock on a thread of their own."""
        self._thread.start()
        self._ready.wait(10)
        return self

    def close(self) -> None:
        """Close the connection and stop the thread."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and self._thread.is_alive():
            loop.call_soon_threadsafe(stop.set)
            self._thread.join(5)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._main(loop))
        finally:
            loop.close()

    async def _main(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop, self._stop = loop, asyncio.Event()
        self._ready.set()
        tasks = [asyncio.create_task(self._supervise())]
        if self._sample_every is not None:
            tasks.append(asyncio.create_task(self._ticks(self._sample_every)))
        try:
            await self._stop.wait()
        finally:
            for task in [*tasks, *self._snapshots.values()]:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _supervise(self) -> None:
        """The feed, started again after a bug (never by design): an exporter never dies
        of its upstream."""
        while True:
            try:
                await self._feed.run()
            except Exception:  # pylint: disable=broad-exception-caught
                log.exception("the streams feed failed; starting it again in a minute")
                with self._lock:
                    connected = self._connected
                if connected:
                    self.on_disconnected(ERROR)
                await asyncio.sleep(60)

    # -- what to follow (any thread) -----------------------------------------------

    def follow(self, rankings: Rankings) -> None:
        """Follow the books of Q1's symbols and the best bid/ask of Q2's."""
        wanted = (tuple(t.symbol for t in rankings.by_volume),
                  tuple(t.symbol for t in rankings.by_trades))
        with self._lock:
            if wanted == self._following:
                return
            self._following = wanted
            if self._loop is not None:  # in the lock: the loop gets the sets in this order
                self._loop.call_soon_threadsafe(self._set_symbols, *wanted)

    def _set_symbols(self, books: tuple[str, ...], tickers: tuple[str, ...]) -> None:
        by_stream = {stream_name(s, BOOK_TICKER): s for s in tickers}
        by_stream.update({stream_name(s, DEPTH): s for s in books})
        with self._lock:
            self._books = {s: self._books.get(s) or LocalBook(s, self._levels, self._limit)
                           for s in books}
            self._tickers = tickers
            for gone in set(self._tops) - set(tickers):
                del self._tops[gone]
                self._windows.pop(gone, None)
            self._by_stream = by_stream
            # counters of what is no longer followed go; those of what now is start at 0
            self._messages = Counter({n: self._messages[n] for n in by_stream})
            self._updates = Counter({s: self._updates[s] for s in tickers})
            self._resyncs = Counter({(s, r): self._resyncs[s, r]
                                     for s in books for r in RESYNC_REASONS})
            self._version += 1
        for gone in set(self._snapshots) - set(books):
            self._snapshots.pop(gone).cancel()
        log.info("following books of %s and best bid/ask of %s",
                 " ".join(books) or "-", " ".join(tickers) or "-")
        self._feed.want(by_stream)

    # -- the feed's reports (loop thread) --------------------------------------------

    def on_connected(self) -> None:
        """Values arrive from now on."""
        with self._lock:
            self._connected = True
            self._bad_logged = False
            self._version += 1

    def on_disconnected(self, reason: str) -> None:
        """Everything pushed so far is dropped: it would be stale."""
        with self._lock:
            self._connected = False
            self._tops.clear()
            self._windows.clear()
            for symbol, book in self._books.items():
                if book.synced:
                    self._resyncs[symbol, DISCONNECT] += 1
                book.reset()
            self._version += 1
        for task in self._snapshots.values():  # their books start over from new events
            task.cancel()
        log.info("streams down (%s): live values withdrawn", reason)

    def on_reconnect(self, reason: str) -> None:
        """Count the attempt."""
        with self._lock:
            self._reconnects[reason] += 1

    def on_bad_message(self, error: BadResponse) -> None:
        """A message of an unknown stream is lost: any book may have missed an event, any
        best bid/ask an update; all are dropped until the streams send them again."""
        self._drop(list(self._books), list(self._tops), error)

    def _drop(self, books: Sequence[str], tops: Sequence[str], error: BadResponse) -> None:
        """Events for these books and best bid/asks may be lost: withdraw them (the books
        resync, the best bid/asks wait for their next update)."""
        with self._lock:
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
            self._version += 1
        if first:  # once per connection: a flood must not flood the log
            log.warning("unreadable stream message, its values withdrawn: %s", error)

    def on_message(self, stream: str, data: Any) -> None:
        """One event: applied to memory, nothing else."""
        symbol = self._by_stream.get(stream)
        now = self._clock()
        try:
            if symbol is not None and stream.endswith(BOOK_TICKER):
                self._on_book_ticker(stream, symbol, data, now)
            elif symbol is not None:
                self._on_depth(stream, symbol, data)
        except BadResponse as error:  # only that stream's values are in doubt
            book_ticker = stream.endswith(BOOK_TICKER)
            self._drop([] if book_ticker else [symbol or ""], [symbol or ""] if book_ticker
                       else [], error)
        finally:
            with self._lock:
                if symbol is not None:
                    self._messages[stream] += 1
                self._last_message = now
                self._version += 1

    def _on_book_ticker(self, stream: str, symbol: str, data: Any, now: float) -> None:
        update_id, top = parse_book_ticker_event(data, stream)
        if top.symbol != symbol:
            raise BadResponse(f"stream {stream}", "s", f"{top.symbol!r} on the wrong stream")
        with self._lock:
            previous = self._tops.get(symbol)
            if previous is not None and update_id <= previous[0]:
                return  # already seen, or older: from a connection being replaced
            self._tops[symbol] = (update_id, top)
            self._updates[symbol] += 1
            self._top_at = self._wall()
            spread = answers.spread(top)
            window = self._windows.get(symbol)
            if window is None:
                window = SpreadWindow(self._sample_every or SAMPLE_SECONDS)
                self._windows[symbol] = window
            if spread is None:
                window.end(now)
            else:
                window.add(now, spread)

    def _on_depth(self, stream: str, symbol: str, data: Any) -> None:
        event = parse_depth_update(data, stream)
        with self._lock:
            book = self._books.get(symbol)
            if book is None:
                return
            reason = book.on_event(event)
            if reason is not None:
                self._resyncs[symbol, reason] += 1
            wants_snapshot = not book.synced and book.first_buffered is not None
        if reason is not None:
            log.info("order book %s resyncs (%s)", symbol, reason)
        if wants_snapshot and symbol not in self._snapshots:
            self._snapshots[symbol] = asyncio.create_task(self._snapshot(symbol, book))

    async def _snapshot(self, symbol: str, book: LocalBook) -> None:
        """Fetch a REST snapshot for ``book``, no sooner than the resync interval allows."""
        try:
            wait = self._next_snapshot.get(symbol, -math.inf) - self._clock()
            if wait > 0:
                await asyncio.sleep(wait)
            self._next_snapshot[symbol] = self._clock() + self._resync_interval
            loop = asyncio.get_running_loop()
            try:
                snapshot = await loop.run_in_executor(
                    self._pool, self._client.order_book, symbol, self._limit, None)
            except BinanceError as error:
                if isinstance(error, RateLimited):
                    self._next_snapshot[symbol] = self._clock() + error.retry_after
                log.warning("order book %s: snapshot failed: %s", symbol, error)
                return
            with self._lock:
                if self._books.get(symbol) is not book:
                    return  # no longer followed
                reason = book.on_snapshot(snapshot)
                if reason is not None:
                    self._resyncs[symbol, reason] += 1
                self._version += 1
            if reason is None and book.synced:
                log.info("order book %s synced at update %d", symbol, snapshot.last_update_id)
            elif reason is not None:
                log.info("order book %s: snapshot not usable (%s)", symbol, reason)
        finally:
            if self._snapshots.get(symbol) is asyncio.current_task():
                del self._snapshots[symbol]

    # -- Q5's clock -------------------------------------------------------------------

    async def _ticks(self, every: float) -> None:
        last = -math.inf
        while True:
            now = self._wall()
            tick = max((math.floor(now / every) + 1) * every, last + every)  # clock steps back
            await asyncio.sleep(tick - now)
            last = tick
            try:
                self.sample(tick, every)
            except Exception:  # pylint: disable=broad-exception-caught
                log.exception("sampling Q5 failed")  # a bug: the next tick tries again

    def sample(self, at: float, every: float = SAMPLE_SECONDS) -> None:
        """Q5 at the tick ``at`` (Unix time): the spreads now, and their change since the
        sample of the tick before, ``every`` seconds earlier (none if it was missed)."""
        with self._lock:
            current = answers.spreads_of(
                self._tickers, {s: t for s, (_, t) in self._tops.items()}
            ) if self._connected else dict.fromkeys(self._tickers)
            previous = self._sample if at - self._sampled_at <= 1.5 * every else None
            self._deltas = answers.spread_deltas(previous, current)
            self._sample, self._sampled_at = current, at
            self._version += 1
            self._tick = (self._tick[0] + 1, self._spreads(self._clock(), current, at))
            self._ticked.notify_all()
            deltas = self._deltas
        if current:  # the exporter's Q5 log, as in REST mode
            log.info("spreads: %s", answers.q5_line(current, deltas))

    def next_tick(self) -> Outcome[Spreads]:
        """Wait for the next Q5 tick: its spreads, deltas and minimum/maximum."""
        with self._ticked:
            seen = self._tick[0]
            self._ticked.wait_for(lambda: self._tick[0] > seen)
            return self._tick[1]

    # -- the record (any thread) ------------------------------------------------------

    @property
    def version(self) -> int:
        """Grows with every change a view could show."""
        return self._version

    def view(self) -> LiveView:
        """What the streams say now; never waits on the network."""
        with self._lock:
            now = self._clock()
            health = StreamHealth(
                connected=self._connected,
                reconnects=dict(self._reconnects),
                messages=dict(self._messages),
                last_message_age=None if self._last_message is None
                else max(0.0, now - self._last_message),
                synced={s: b.synced for s, b in self._books.items()},
                resyncs=dict(self._resyncs),
                updates={s: self._updates[s] for s in self._tickers},
            )
            return LiveView(self._spreads(now), self._book_notionals(), health)

    def _spreads(self, now: float, spreads: Mapping[str, Decimal | None] | None = None,
                 at: float | None = None) -> Outcome[Spreads]:
        """The spreads now (or those of a tick, sampled ``at``), with their last deltas
        and minimum/maximum: under the lock."""
        if self._following is None:
            return Outcome(None, NotAttempted("stream", "no ranking yet to pick symbols from"))
        if not self._connected:
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
            deltas=MappingProxyType({s: self._deltas.get(s) for s in self._tickers}),
            at=self._top_at if at is None else at,
            minimum=MappingProxyType(low), maximum=MappingProxyType(high))
        missing = [s for s in self._tickers if s not in tops]
        error = NotSynced("stream", "no best bid/ask pushed yet for " + " ".join(missing)) \
            if missing else None
        return Outcome(record, error)

    def _book_notionals(self) -> Outcome[Mapping[str, Notional]]:
        if self._following is None:
            return Outcome(None, NotAttempted("stream", "no ranking yet to pick symbols from"))
        if not self._connected:
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
