"""The refresh layer: which upstream calls answer Q1–Q5, when, and with what delta.

:class:`Refresher` wires the Binance client to the pure answers through four
cached groups, each with its own TTL:

========== ======================================= ======= ==========
group      upstream call                           weight  default TTL
========== ======================================= ======= ==========
exchange   ``/api/v3/exchangeInfo``                20      3600 s
rankings   ``/api/v3/ticker/24hr`` (all, MINI)     80      300 s
books      ``/api/v3/depth?limit=200`` × top N     25 × N  30 s
spreads    ``/api/v3/ticker/bookTicker?symbols=``  4       10 s
========== ======================================= ======= ==========

A refresh takes at most two rounds of round trips: exchangeInfo and the
ticker in parallel, then the books (in parallel with each other) and the
spreads. The books and spreads depend on the rankings only for *which*
symbols to ask for; if a rankings refresh fails, they keep using the last
successful ranking's symbols (their own values are still fresh), while the
ranking figures themselves are reported as failed. Likewise the rankings take
only symbol metadata from exchangeInfo, and keep the last good one if a
refresh of it fails.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Callable, Mapping

from collector import answers
from collector.answers import Notional, RankBy
from collector.binance import (
    BOOK_TICKERS_WEIGHT,
    EXCHANGE_INFO_WEIGHT,
    TICKER_24H_ALL_WEIGHT,
    BinanceClient,
    depth_weight,
)
from collector.cache import Outcome, TtlGroup
from collector.errors import BinanceError, NotAttempted
from collector.models import BookTop, SymbolInfo, Ticker24h

if TYPE_CHECKING:  # live imports this module's records
    from collector.live import LiveMarket, LiveView, StreamHealth

log = logging.getLogger(__name__)

_EMPTY: dict[str, Decimal] = {}
GROUPS = ("exchange", "rankings", "books", "spreads")  # the data groups, in refresh order


@dataclass(frozen=True, slots=True)
class Settings:  # pylint: disable=too-many-instance-attributes
    """What to compute and how often; the CLI fills it from flags."""

    top: int = 5
    depth_levels: int = 200
    rank_by: RankBy = "quote"
    volume_quote: str = "BTC"
    trades_quote: str = "USDT"
    ttl_exchange: float = 3600.0
    ttl_rankings: float = 300.0
    ttl_books: float = 30.0
    ttl_spreads: float = 10.0
    retry_delay: float = 10.0
    refresh_budget: float | None = None  # seconds a refresh may take (scrape timeout)
    stream: bool = False  # stream mode: spreads and books from the streams (see live)


RESYNC_INTERVAL = 10.0  # stream mode: least time between two snapshots of one book


def snapshot_limit(levels: int) -> int:
    """Stream mode's depth snapshot limit: 500 for up to 200 levels (a margin for the
    book's drift, at weight 25), else the smallest of Binance's limits ≥ 2.5 × levels."""
    return next((limit for limit in (500, 1000, 5000) if limit >= 2.5 * levels), 5000)


def peak_weight_per_minute(settings: Settings) -> int:
    """The most request weight a healthy Refresher can spend in one minute.

    Binance counts weight per minute, so a refresh costs its whole weight in the
    minute it happens, however long its TTL. The worst minute is the first: every
    group is fetched, and each is refreshed again as often as its TTL allows in 60 s
    (the books at 0 and 30 s at the defaults). A group with an infinite TTL, as in
    the report, is fetched once. Defaults: 20 + 80 + 2 × 125 + 6 × 4 = 374.

    In stream mode the spreads cost nothing and the books a snapshot each when they
    (re)sync; the worst minute resyncs every book as often as allowed: 20 + 80 +
    6 × 5 × 25 = 850. A steady minute costs 80 / 5 = 16 (the rankings).
    """
    costs: tuple[tuple[int, float], ...] = (
        (EXCHANGE_INFO_WEIGHT, settings.ttl_exchange),
        (TICKER_24H_ALL_WEIGHT, settings.ttl_rankings),
    )
    if settings.stream:
        costs += ((settings.top * depth_weight(snapshot_limit(settings.depth_levels)),
                   RESYNC_INTERVAL),)
    else:
        costs += ((settings.top * depth_weight(settings.depth_levels), settings.ttl_books),
                  (BOOK_TICKERS_WEIGHT, settings.ttl_spreads))
    return sum(weight * max(1, math.ceil(60.0 / ttl)) for weight, ttl in costs)


@dataclass(frozen=True, slots=True)
class Rankings:
    """Q1 and Q2."""

    by_volume: tuple[Ticker24h, ...]
    by_trades: tuple[Ticker24h, ...]


@dataclass(frozen=True, slots=True)
class Spreads:
    """One spread refresh: Q4 per symbol and the Q5 delta from the refresh before."""

    tops: Mapping[str, BookTop]
    spreads: Mapping[str, Decimal | None]
    deltas: Mapping[str, Decimal | None]
    at: float  # Unix time of this refresh (stream mode: of the last best bid/ask pushed)
    # stream mode only: the lowest and highest spread of the last 10 s, the current included
    minimum: Mapping[str, Decimal] = field(default_factory=_EMPTY.copy)
    maximum: Mapping[str, Decimal] = field(default_factory=_EMPTY.copy)


@dataclass(frozen=True, slots=True)
class Health:  # pylint: disable=too-many-instance-attributes
    """How talking to Binance has gone, as of one snapshot: what the health metrics show."""

    # a generation: one number per group that grows after each refresh of it, then the
    # requests sent; equal generations mean that nothing was refreshed in between.
    # ``before`` is read before the snapshot's answers: what it shows is at least that new.
    # ``generation`` is read after its refreshes, like every figure below.
    before: tuple[int, ...]
    generation: tuple[int, ...]
    requests: Mapping[tuple[str, str], int]  # (endpoint, HTTP status or "error") → count
    failures: Mapping[tuple[str, str], int]  # (group, error kind) → failed refreshes
    last_refresh: Mapping[str, float]  # group → Unix time of its last successful refresh
    used_weight: int | None  # X-MBX-USED-WEIGHT-1M this clock minute; None if unknown
    weight_limit: int  # per minute, from exchangeInfo
    cool_down: float  # seconds left of a rate-limit cool-down
    stream: StreamHealth | None = None  # stream mode only


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything one scrape or report tick can publish; failed parts carry their error.

    The one record the front ends read: the answers, their symbols' metadata and the
    health of the refreshes. Its mappings are shared and must be treated as read-only.
    """

    rankings: Outcome[Rankings]
    books: Outcome[Mapping[str, Notional]]
    spreads: Outcome[Spreads]
    exchange: Outcome[Mapping[str, SymbolInfo]]
    health: Health
    symbols: Mapping[str, SymbolInfo]  # the last good exchangeInfo (metadata, for labels)

    def quote_asset(self, symbol: str) -> str:
        """The symbol's quote asset per the last good exchangeInfo; "" if unknown."""
        info = self.symbols.get(symbol)
        return info.quote_asset if info is not None else ""

    def errors(self) -> list[BinanceError]:
        """The distinct errors of this snapshot, first one first."""
        found: list[BinanceError] = []
        for outcome in (self.exchange, self.rankings, self.books, self.spreads):
            if outcome.error is not None and outcome.error not in found:
                found.append(outcome.error)
        return found


class _Pending:
    """An outcome now, or a future of one."""

    def __init__(self, value: Outcome[Any] | Future[Outcome[Any]]) -> None:
        self._value = value

    def result(self) -> Outcome[Any]:
        """The outcome, waiting for the refresh if there is one."""
        if isinstance(self._value, Future):
            return self._value.result()
        return self._value


class Refresher:  # pylint: disable=too-many-instance-attributes
    """Cached, single-flight access to the answers (see module docstring)."""

    def __init__(
        self,
        client: BinanceClient,
        settings: Settings = Settings(),
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        live: LiveMarket | None = None,
    ) -> None:
        self._client = client
        self._live = live  # stream mode: spreads and books come from it
        self.settings = settings
        self._clock = clock
        self._wall = wall

        timing: dict[str, Any] = {"retry_delay": settings.retry_delay, "clock": clock, "wall": wall}
        self._exchange: TtlGroup[Mapping[str, SymbolInfo]] = TtlGroup(
            "exchange", settings.ttl_exchange, **timing
        )
        self._tickers: TtlGroup[tuple[Ticker24h, ...]] = TtlGroup(
            "rankings", settings.ttl_rankings, **timing
        )
        self._books: TtlGroup[Mapping[str, Notional]] = TtlGroup(
            "books", settings.ttl_books, **timing
        )
        self._spreads: TtlGroup[Spreads] = TtlGroup("spreads", settings.ttl_spreads, **timing)
        self._groups: dict[str, TtlGroup[Any]] = {
            g.name: g for g in (self._exchange, self._tickers, self._books, self._spreads)
        }
        # exchangeInfo and spreads run beside the scrape's own thread; the books
        # fan out one depth call per symbol on a pool of their own, so they never
        # queue behind other scrapes' tasks waiting on a group lock
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="binance")
        self._depth_pool = ThreadPoolExecutor(max_workers=settings.top,
                                              thread_name_prefix="binance-depth")
        self._rank_lock = threading.Lock()
        self._ranked: tuple[object, object, Rankings] | None = None
        self._previous_spreads: Mapping[str, Decimal | None] | None = None

    @property
    def streaming(self) -> bool:
        """True in stream mode (spreads and books from the streams)."""
        return self._live is not None

    def close(self) -> None:
        """Stop the worker threads."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._depth_pool.shutdown(wait=False, cancel_futures=True)
        if self._live is not None:
            self._live.close()

    def _generation(self) -> tuple[int, ...]:
        """Read before a snapshot's answers (see Health.generation)."""
        return (*(group.generation for group in self._groups.values()),
                sum(self._client.request_counts().values()),
                *(() if self._live is None else (self._live.version,)))

    def _health(self, before: tuple[int, ...], stream: StreamHealth | None = None) -> Health:
        """The health figures after a snapshot's refreshes (see Health)."""
        requests = self._client.request_counts()
        return Health(
            before=before,
            generation=self._generation(),
            requests=requests,
            failures={(name, kind): count for name, group in self._groups.items()
                      for kind, count in sorted(group.failure_counts().items())},
            last_refresh={name: group.last_success for name, group in self._groups.items()
                          if group.last_success is not None},
            used_weight=self._client.used_weight_this_minute(),
            weight_limit=self._client.weight_limit,
            cool_down=self._client.cool_down_remaining(),
            stream=stream,
        )

    def _snapshot(self, generation: tuple[int, ...], rankings: Outcome[Rankings],
                  books: Outcome[Mapping[str, Notional]], spreads: Outcome[Spreads],
                  exchange: Outcome[Mapping[str, SymbolInfo]]) -> Snapshot:
        if exchange.refreshed and exchange.ok:
            self._check_weight_limit()
        return Snapshot(rankings, books, spreads, exchange, self._health(generation),
                        self._exchange.last_good or {})

    def _check_weight_limit(self) -> None:
        """Warn when these settings could spend more in a minute than Binance now allows."""
        peak, limit = peak_weight_per_minute(self.settings), self._client.weight_limit
        if peak > limit:
            log.warning("these settings could spend %d request weight in one minute, over the "
                        "%d Binance now allows: raise the TTLs (--ttl-*), or lower --top or "
                        "--depth-levels", peak, limit)

    def refresh_spreads(self) -> Outcome[Spreads]:
        """Refresh the spreads now, for the symbols of the last ranking (a Q5 tick); in
        stream mode, wait for the next tick of Q5's clock.

        Neither the TTL nor a remembered failure holds it back: a report's tick
        asks Binance once per interval, and a failed tick does not silence the next.
        """
        if self._live is not None:  # stream mode: the next tick of Q5's own clock
            return self._live.next_tick()
        deadline = None
        if self.settings.refresh_budget is not None:
            deadline = self._clock() + self.settings.refresh_budget
        return self._refresh_spreads(Outcome(None), deadline, now=True)

    # -- one snapshot ----------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """Current answers, refreshing only the groups whose TTL ran out."""
        generation = self._generation()
        deadline = None
        if self.settings.refresh_budget is not None:
            deadline = self._clock() + self.settings.refresh_budget
        exchange = self._beside(
            self._exchange, lambda: self._exchange.get(lambda: self._client.exchange_info(deadline))
        )
        tickers = self._tickers.get(lambda: self._client.tickers_24h(deadline))
        rankings = self._rank(exchange.result(), tickers)
        if self._live is not None:
            return self._live_snapshot(generation, rankings, exchange.result())
        spreads = self._beside(self._spreads, lambda: self._refresh_spreads(rankings, deadline))
        books = self._refresh_books(rankings, deadline)
        return self._snapshot(generation, rankings, books, spreads.result(), exchange.result())

    def cached_snapshot(self) -> Snapshot | None:
        """The snapshot ``snapshot()`` would give if it refreshed nothing, else None.

        Never waits on I/O: None as soon as a group is due or being refreshed,
        so an event loop can answer a scrape from cache without a thread and
        hand only the scrapes that must refresh to one.
        """
        generation = self._generation()
        exchange = self._exchange.peek()
        tickers = self._tickers.peek()
        if self._live is not None:
            if exchange is None or tickers is None:
                return None
            return self._live_snapshot(generation, self._rank(exchange, tickers), exchange)
        books = self._books.peek()
        spreads = self._spreads.peek()
        if exchange is None or tickers is None or books is None or spreads is None:
            return None
        return self._snapshot(generation, self._rank(exchange, tickers), books, spreads,
                              exchange)

    def _live_snapshot(self, generation: tuple[int, ...], rankings: Outcome[Rankings],
                       exchange: Outcome[Mapping[str, SymbolInfo]]) -> Snapshot:
        """Stream mode: the rankings from REST pick what the streams follow; the
        spreads and books are the streams' view."""
        assert self._live is not None
        with self._rank_lock:
            ranked = rankings.value or (self._ranked[2] if self._ranked else None)
        if ranked is not None:
            self._live.follow(ranked)
        view: LiveView = self._live.view()
        if exchange.refreshed and exchange.ok:
            self._check_weight_limit()
        return Snapshot(rankings, view.books, view.spreads, exchange,
                        self._health(generation, view.health), self._exchange.last_good or {})

    def _beside(self, group: TtlGroup[Any], refresh: Callable[[], Outcome[Any]]) -> _Pending:
        """Run ``refresh`` on the pool, in parallel with the caller, unless nothing is due."""
        ready = group.peek()
        if ready is not None:
            return _Pending(ready)
        return _Pending(self._pool.submit(refresh))

    def _rank(
        self, exchange: Outcome[Mapping[str, SymbolInfo]], tickers: Outcome[tuple[Ticker24h, ...]]
    ) -> Outcome[Rankings]:
        """Rank once per (exchangeInfo, ticker) pair, not once per scrape.

        The ranked figures come from the ticker, which must be current. From
        exchangeInfo only symbol metadata is used (quote asset, status), so a
        failed exchangeInfo refresh falls back on the last good one rather than
        blank the rankings; it still counts as a failure of its own group.
        The pair is recognised by identity (``is``), holding references so that
        a freed answer's id can never be mistaken for a new one's.
        """
        refreshed = tickers.refreshed or exchange.refreshed
        infos = exchange.value if exchange.value is not None else self._exchange.last_good
        if infos is None or tickers.value is None:
            # "refreshed" only if the error is new, so that it is logged once
            error, new = (tickers.error, tickers.refreshed) if tickers.error else (
                exchange.error, exchange.refreshed)
            return Outcome(None, error, new)
        with self._rank_lock:
            ranked = self._ranked
            if ranked is None or ranked[0] is not infos or ranked[1] is not tickers.value:
                ranked = (infos, tickers.value, self._compute_rankings(infos, tickers.value))
                self._ranked = ranked
            return Outcome(ranked[2], refreshed=refreshed)

    def _compute_rankings(
        self, infos: Mapping[str, SymbolInfo], tickers: tuple[Ticker24h, ...]
    ) -> Rankings:
        s = self.settings
        by_volume = answers.top_by_volume(
            tickers, infos, quote_asset=s.volume_quote, top=s.top, rank_by=s.rank_by
        )
        by_trades = answers.top_by_trades(tickers, infos, quote_asset=s.trades_quote, top=s.top)
        return Rankings(tuple(by_volume), tuple(by_trades))

    def _ranking_to_fetch(self, rankings: Outcome[Rankings], endpoint: str) -> Rankings:
        """The current ranking, else the last good one (only to decide what to fetch)."""
        current = rankings.value
        if current is None:
            with self._rank_lock:
                current = self._ranked[2] if self._ranked else None
        if current is None:
            raise NotAttempted(endpoint, "no ranking yet to pick symbols from")
        return current

    def _refresh_books(
        self, rankings: Outcome[Rankings], deadline: float | None
    ) -> Outcome[Mapping[str, Notional]]:
        def load() -> Mapping[str, Notional]:
            current = self._ranking_to_fetch(rankings, "/api/v3/depth")
            levels = self.settings.depth_levels
            futures = [
                self._depth_pool.submit(self._client.order_book, t.symbol, levels, deadline)
                for t in current.by_volume
            ]
            # all of them, even after one failed: a refresh is over only when none of its
            # requests is still in flight (and being counted) behind the scrape's back
            wait(futures)
            books = [future.result() for future in futures]
            return {book.symbol: answers.book_notional(book, levels) for book in books}

        return self._books.get(load)

    def _refresh_spreads(
        self, rankings: Outcome[Rankings], deadline: float | None, now: bool = False
    ) -> Outcome[Spreads]:
        def load() -> Spreads:
            current = self._ranking_to_fetch(rankings, "/api/v3/ticker/bookTicker")
            symbols = [t.symbol for t in current.by_trades]
            tops = self._client.book_tickers(symbols, deadline)
            spreads = answers.spreads_of(symbols, tops)
            deltas = answers.spread_deltas(self._previous_spreads, spreads)
            self._previous_spreads = spreads  # only under the group's lock, only on success
            return Spreads(tops, spreads, deltas, self._wall())

        return self._spreads.get(load, now=now)
