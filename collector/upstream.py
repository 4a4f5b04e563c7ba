"""The REST side both sources share: exchangeInfo and the 24 h ticker, Q1/Q2, and health.

=========== ======================================= ======= ==========
group       upstream call                           weight  default TTL
=========== ======================================= ======= ==========
exchange    ``/api/v3/exchangeInfo``                20      3600 s
rankings    ``/api/v3/ticker/24hr`` (all, MINI)     80      300 s
=========== ======================================= ======= ==========

Each group is a :class:`~collector.cache.TtlGroup` (TTL, single flight, failures held).
The rankings take only symbol metadata from exchangeInfo and keep the last good one
if a refresh of it fails; they are computed once per (exchangeInfo, ticker) pair, not
once per scrape. A source adds groups of its own (:meth:`Upstream.group`) and builds
its snapshots with :meth:`Upstream.snapshot`, so every group's health is shown alike.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Mapping

from collector import answers
from collector.binance import BinanceClient
from collector.cache import TtlGroup
from collector.costs import peak_weight_per_minute
from collector.errors import NotAttempted
from collector.records import (
    Health,
    Notional,
    Outcome,
    Rankings,
    Settings,
    Snapshot,
    Spreads,
    StreamHealth,
    SymbolInfo,
    Ticker24h,
    Watchlist,
)

log = logging.getLogger("collector.upstream")

Exchange = Mapping[str, SymbolInfo]


class Pending:
    """An outcome now, or a future of one."""

    def __init__(self, value: Outcome[Any] | Future[Outcome[Any]]) -> None:
        self._value = value

    def result(self) -> Outcome[Any]:
        """The outcome, waiting for the refresh if there is one."""
        if isinstance(self._value, Future):
            return self._value.result()
        return self._value


class Upstream:  # pylint: disable=too-many-instance-attributes
    """Cached, single-flight REST groups and the rankings (see module docstring)."""

    def __init__(self, client: BinanceClient, settings: Settings, *,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.client = client
        self.settings = settings
        self.clock = clock
        self._wall = wall
        self._groups: dict[str, TtlGroup[Any]] = {}
        self._exchange: TtlGroup[Exchange] = self.group("exchange", settings.ttl_exchange)
        self._tickers: TtlGroup[tuple[Ticker24h, ...]] = self.group(
            "rankings", settings.ttl_rankings)
        # refreshes that run beside the scrape's own thread
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="binance")
        self._rank_lock = threading.Lock()
        self._ranked: tuple[object, object, Rankings] | None = None
        self._watched: tuple[object, object, Watchlist] | None = None

    def group(self, name: str, ttl: float) -> TtlGroup[Any]:
        """A new data group of this upstream, shown in the health figures."""
        group: TtlGroup[Any] = TtlGroup(name, ttl, retry_delay=self.settings.retry_delay,
                                        clock=self.clock, wall=self._wall)
        self._groups[name] = group
        return group

    def close(self) -> None:
        """Stop the worker threads."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def deadline(self) -> float | None:
        """When a refresh starting now must be over (``refresh_budget``), if ever."""
        budget = self.settings.refresh_budget
        return None if budget is None else self.clock() + budget

    # -- rankings --------------------------------------------------------------------

    def rankings(self, deadline: float | None) -> tuple[Pending, Outcome[Rankings]]:
        """exchangeInfo (still in flight, maybe) and Q1/Q2, refreshing what is due."""
        exchange = self.beside(
            self._exchange, lambda: self._exchange.get(lambda: self.client.exchange_info(deadline))
        )
        tickers = self._tickers.get(lambda: self.client.tickers_24h(deadline))
        return exchange, self._rank(exchange.result(), tickers)

    def cached_rankings(self) -> tuple[Outcome[Exchange], Outcome[Rankings]] | None:
        """What :meth:`rankings` would give if nothing is due, without waiting; else None."""
        exchange, tickers = self._exchange.peek(), self._tickers.peek()
        if exchange is None or tickers is None:
            return None
        return exchange, self._rank(exchange, tickers)

    def beside(self, group: TtlGroup[Any], refresh: Callable[[], Outcome[Any]]) -> Pending:
        """Run ``refresh`` on the pool, in parallel with the caller, unless nothing is due."""
        ready = group.peek()
        if ready is not None:
            return Pending(ready)
        return Pending(self._pool.submit(refresh))

    def _rank(self, exchange: Outcome[Exchange],
              tickers: Outcome[tuple[Ticker24h, ...]]) -> Outcome[Rankings]:
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

    def _compute_rankings(self, infos: Exchange, tickers: tuple[Ticker24h, ...]) -> Rankings:
        s = self.settings
        by_volume = answers.top_by_volume(
            tickers, infos, quote_asset=s.volume_quote, top=s.top, rank_by=s.rank_by
        )
        by_trades = answers.top_by_trades(tickers, infos, quote_asset=s.trades_quote, top=s.top)
        return Rankings(tuple(by_volume), tuple(by_trades))

    def last_ranking(self) -> Rankings | None:
        """The last good ranking, if any."""
        with self._rank_lock:
            return self._ranked[2] if self._ranked else None

    def watchlist(self, rankings: Outcome[Rankings]) -> Watchlist | None:
        """What to follow: from the current ranking, else the last good one, and the last
        good exchangeInfo; None before the first ranking. Worked out once per pair; the
        ``--symbols`` left out are logged once per change."""
        ranked = rankings.value or self.last_ranking()
        infos = self._exchange.last_good
        if ranked is None or infos is None:
            return None
        with self._rank_lock:
            kept = self._watched
            if kept is not None and kept[0] is ranked and kept[1] is infos:
                return kept[2]
            s = self.settings
            watched = answers.watchlist(ranked, infos, s.symbols, s.all_spreads)
            left_out = sorted(symbol for symbol, ok in watched.followed.items() if not ok)
            if left_out and (kept is None or [k for k, ok in kept[2].followed.items() if not ok]
                             != [k for k, ok in watched.followed.items() if not ok]):
                log.warning("--symbols left out, not a TRADING symbol of Binance: %s",
                            ", ".join(_why(symbol, infos) for symbol in left_out))
            self._watched = (ranked, infos, watched)
            return watched

    def watchlist_to_fetch(self, rankings: Outcome[Rankings], endpoint: str) -> Watchlist:
        """:meth:`watchlist`, only to decide what to fetch: no ranking yet is an error."""
        watched = self.watchlist(rankings)
        if watched is None:
            raise NotAttempted(endpoint, "no ranking yet to pick symbols from")
        return watched

    # -- health and snapshots -----------------------------------------------------------

    def snapshot(self, rankings: Outcome[Rankings], books: Outcome[Mapping[str, Notional]],
                 spreads: Outcome[Spreads], exchange: Outcome[Exchange],
                 stream: StreamHealth | None = None) -> Snapshot:
        """The record front ends read, with the health figures as of now."""
        if exchange.refreshed and exchange.ok:
            self._check_weight_limit()
        health = Health(
            requests=self.client.request_counts(),
            failures={(name, kind): count for name, group in self._groups.items()
                      for kind, count in sorted(group.failure_counts().items())},
            last_refresh={name: group.last_success for name, group in self._groups.items()
                          if group.last_success is not None},
            used_weight=self.client.used_weight_this_minute(),
            weight_limit=self.client.weight_limit,
            cool_down=self.client.cool_down_remaining(),
            stream=stream,
        )
        watched = self.watchlist(rankings) if self.settings.symbols else None
        return Snapshot(rankings, books, spreads, exchange, health,
                        self._exchange.last_good or {},
                        watched.followed if watched is not None else {})

    def _check_weight_limit(self) -> None:
        """Warn when these settings could spend more in a minute than Binance now allows."""
        peak, limit = peak_weight_per_minute(self.settings), self.client.weight_limit
        if peak > limit:
            log.warning("these settings could spend %d request weight in one minute, over the "
                        "%d Binance now allows: raise the TTLs (--ttl-*), or lower --top or "
                        "--depth-levels", peak, limit)


def _why(symbol: str, infos: Exchange) -> str:
    """``FOO`` or ``BAR (BREAK)`` (exchangeInfo is asked for TRADING symbols only, so one
    not TRADING is usually not listed at all); a case-only difference gets a hint."""
    info = infos.get(symbol)
    if info is not None:
        return f"{symbol} ({info.status})"
    if symbol.upper() != symbol and symbol.upper() in infos:
        return f"{symbol} (symbols are case-sensitive: {symbol.upper()}?)"
    return symbol
