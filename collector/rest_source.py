"""The default source: Q1–Q5 fetched from Binance's REST API when asked for, TTL-cached.

:class:`RestSource` adds two groups to the shared :class:`~collector.upstream.Upstream`:

========== ======================================= ======= ==========
group      upstream call                           weight  default TTL
========== ======================================= ======= ==========
books      ``/api/v3/depth?limit=200`` × books     25 × N  30 s
           (``--depth-bands``: a limit per book)   5-250
spreads    ``/api/v3/ticker/bookTicker?symbols=``  4       10 s
           (``--spreads all``: without symbols)    4
========== ======================================= ======= ==========

The books are Q1's symbols and ``--symbols``, the spreads Q2's and ``--symbols`` (or
every ``TRADING`` symbol): see :func:`collector.answers.watchlist`.
A refresh takes at most two rounds of round trips: exchangeInfo and the
ticker in parallel, then the books (in parallel with each other) and the
spreads. The books and spreads depend on the rankings only for *which*
symbols to ask for; if a rankings refresh fails, they keep using the last
successful ranking's symbols (their own values are still fresh), while the
ranking figures themselves are reported as failed. Each spreads refresh is a
Q5 sample.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Callable, Iterator, Mapping

from collector import answers
from collector.binance import BinanceClient
from collector.cache import TtlGroup
from collector.costs import DepthLimits
from collector.q5 import Listener, Q5Sampler, log_sample
from collector.records import Notional, Outcome, Rankings, Settings, Snapshot, Spreads
from collector.upstream import Upstream


class RestSource:  # pylint: disable=too-many-instance-attributes
    """Cached, single-flight access to the answers (see module docstring)."""

    def __init__(
        self,
        client: BinanceClient,
        settings: Settings = Settings(),
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        on_sample: Listener | None = log_sample,
    ) -> None:
        self.settings = settings
        self._wall = wall
        self._upstream = Upstream(client, settings, clock=clock, wall=wall)
        self._books: TtlGroup[Mapping[str, Notional]] = self._upstream.group(
            "books", settings.ttl_books)
        self._spreads: TtlGroup[Spreads] = self._upstream.group("spreads", settings.ttl_spreads)
        # the books fan out one depth call per symbol on a pool of their own, so they
        # never queue behind other scrapes' tasks waiting on a group lock
        self._depth_pool = ThreadPoolExecutor(max_workers=settings.books,
                                              thread_name_prefix="binance-depth")
        self._q5 = Q5Sampler(on_sample=on_sample)
        self._limits = DepthLimits(settings.depth_levels, settings.depth_bands,  # books' lock
                                   once=math.isinf(settings.ttl_books))

    def close(self) -> None:
        """Stop the worker threads."""
        self._upstream.close()
        self._depth_pool.shutdown(wait=False, cancel_futures=True)

    def snapshot(self) -> Snapshot:
        """Current answers, refreshing only the groups whose TTL ran out."""
        deadline = self._upstream.deadline()
        exchange, rankings = self._upstream.rankings(deadline)
        spreads = self._upstream.beside(self._spreads,
                                        lambda: self._refresh_spreads(rankings, deadline))
        books = self._refresh_books(rankings, deadline)
        return self._upstream.snapshot(rankings, books, spreads.result(), exchange.result())

    def cached_snapshot(self) -> Snapshot | None:
        """The snapshot ``snapshot()`` would give if it refreshed nothing, else None.

        Never waits on I/O: None as soon as a group is due or being refreshed,
        so an event loop can answer a scrape from cache without a thread and
        hand only the scrapes that must refresh to one.
        """
        ranked = self._upstream.cached_rankings()
        books, spreads = self._books.peek(), self._spreads.peek()
        if ranked is None or books is None or spreads is None:
            return None
        exchange, rankings = ranked
        return self._upstream.snapshot(rankings, books, spreads, exchange)

    def settled_snapshot(self, sleep: Callable[[float], None], clock: Callable[[], float],
                         patience: float = 30.0) -> Snapshot:
        """A snapshot: every answer is fetched before it returns (a failure is final)."""
        del sleep, clock, patience  # nothing to wait for
        return self.snapshot()

    def q5_ticks(self, first: Snapshot, interval: float, sleep: Callable[[float], None],
                 clock: Callable[[], float]) -> Iterator[Outcome[Spreads]]:
        """The first tick is ``first``'s spreads; then the spreads are fetched again on a
        grid of ``interval`` seconds from now. Neither the TTL nor a remembered failure
        holds a tick back: each asks Binance once, and a failed tick does not silence the
        next. Slots already gone by (a slow tick, a suspended machine) are skipped, not
        caught up in a burst of requests."""
        started, slot = clock(), 0
        yield first.spreads
        while True:
            slot = max(slot + 1, math.ceil((clock() - started) / interval))
            sleep(max(0.0, started + slot * interval - clock()))
            yield self._refresh_spreads(Outcome(None), self._upstream.deadline(), now=True)

    def _refresh_books(
        self, rankings: Outcome[Rankings], deadline: float | None
    ) -> Outcome[Mapping[str, Notional]]:
        def load() -> Mapping[str, Notional]:
            watched = self._upstream.watchlist_to_fetch(rankings, "/api/v3/depth")
            levels, bands = self.settings.depth_levels, self.settings.depth_bands
            client, limits = self._upstream.client, self._limits
            asked = {symbol: limits.limit(symbol) for symbol in watched.books}
            futures = [self._depth_pool.submit(client.order_book, symbol, limit, deadline)
                       for symbol, limit in asked.items()]
            # all of them, even after one failed: a refresh is over only when none of its
            # requests is still in flight (and being counted) behind the scrape's back
            wait(futures)
            notionals = {}
            for book in (future.result() for future in futures):
                limit = asked[book.symbol]  # fewer levels than asked: the whole side
                notional = answers.book_notional(
                    book, levels, bands, (len(book.bids) < limit, len(book.asks) < limit))
                limits.learn(book.symbol, limit, notional)
                notionals[book.symbol] = notional
            return notionals

        return self._books.get(load)

    def _refresh_spreads(
        self, rankings: Outcome[Rankings], deadline: float | None, now: bool = False
    ) -> Outcome[Spreads]:
        def load() -> Spreads:
            watched = self._upstream.watchlist_to_fetch(rankings, "/api/v3/ticker/bookTicker")
            symbols = watched.spreads
            tops = self._upstream.client.book_tickers(
                None if self.settings.all_spreads else symbols, deadline)
            spreads = answers.spreads_of(symbols, tops)
            at = self._wall()
            # only under the group's lock, only on success: a failed refresh is no sample
            deltas = self._q5.sample(spreads, at)
            return Spreads(tops, spreads, deltas, at)

        return self._spreads.get(load, now=now)
