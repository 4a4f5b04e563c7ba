"""``BinanceCollector``: the Q5 spreads (and friends) as Prometheus metrics, fetched on scrape.

Nothing is fetched until Prometheus scrapes; each ``collect()`` asks the
:class:`~collector.source.Source` for a snapshot (REST refreshes only the groups
whose TTL ran out: one upstream refresh however many scrapers), and builds
fresh metric families from it. A group whose refresh failed is left
out entirely, never served stale as if current, and ``binance_up`` drops to 0.

Sample output (abridged)::

    # HELP binance_price_spread Best ask minus best bid of each top-N symbol by 24 h trades ...
    # TYPE binance_price_spread gauge
    binance_price_spread{quote_asset="USDT",symbol="BTCUSDT"} 0.01
    # TYPE binance_price_spread_delta gauge
    binance_price_spread_delta{quote_asset="USDT",symbol="BTCUSDT"} 0.0
    # TYPE binance_order_book_notional gauge
    binance_order_book_notional{quote_asset="BTC",side="bid",symbol="ETHBTC"} 365.6386513125
    # TYPE binance_up gauge
    binance_up 1.0
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Iterable, Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from collector import __version__, answers
from collector.errors import NotAttempted
from collector.records import STREAM, Outcome, Snapshot
from collector.source import Source

log = logging.getLogger("collector.exporter")

SYMBOL = ["symbol", "quote_asset"]


class BinanceCollector(Collector):
    """A custom collector: registering it calls nothing; each scrape takes a fresh snapshot.

    The families built from a snapshot are kept and returned again, the same
    objects, while nothing they show has changed (see :meth:`_data_families`),
    so that an exposition can render each of them once per refresh rather than
    once per scrape. The per-scrape families (scrape duration, used weight,
    cool-down) are built on every call.
    """

    def __init__(self, source: Source, clock: Callable[[], float] = time.perf_counter) -> None:
        self.source = source
        self._streams = source.settings.source == STREAM  # stream mode has families of its own
        self._clock = clock
        self._memo_lock = threading.Lock()
        self._memo: tuple[tuple[int, ...], object, list[Metric]] | None = None
        self._hinted = False  # the hint of an outage is logged once, until Binance answers

    def describe(self) -> Iterable[Metric]:
        """The families, empty: lets a registry check names without an upstream call."""
        families = [*_Families(self.source.settings.ttl_spreads, self._streams).all(),
                    *_PerScrape().all()]
        if self._streams:
            families.extend([*_StreamFamilies().all(), _message_age()])
        return families

    def collect(self) -> Iterable[Metric]:
        """One snapshot → every family, refreshing what is due. Never raises for an upstream
        problem."""
        started = self._clock()
        return self._collect(self.source.snapshot(), started)

    def collect_cached(self) -> list[Metric] | None:
        """What ``collect()`` would return if nothing is due, without waiting; else None."""
        started = self._clock()
        snapshot = self.source.cached_snapshot()
        if snapshot is None:
            return None
        return self._collect(snapshot, started)

    def _collect(self, snapshot: Snapshot, started: float) -> list[Metric]:
        self._log(snapshot)
        families = self._data_families(snapshot)
        per_scrape = _PerScrape()
        if snapshot.health.used_weight is not None:
            per_scrape.used_weight.add_metric([], snapshot.health.used_weight)

        per_scrape.cool_down.add_metric([], snapshot.health.cool_down)
        per_scrape.scrape_duration.add_metric([], self._clock() - started)
        stream = snapshot.health.stream
        if stream is None:
            return [*families, *per_scrape.all()]
        age = _message_age()
        if stream.last_message_age is not None:
            age.add_metric([], stream.last_message_age)
        return [*families, *per_scrape.all(), age]

    def _data_families(self, snapshot: Snapshot) -> list[Metric]:
        """The families that change only with a refresh, rebuilt only after one.

        Families built from a snapshot are labelled with the generation read before
        its answers (they can only be newer: a refresh meanwhile costs one rebuild);
        they are reused while the generation read after a snapshot's refreshes is
        still that label, i.e. nothing has been refreshed since, and the spreads'
        minimum and maximum (stream mode) are still those shown: they change with time
        alone, as values leave their 10 s window.
        """
        with self._memo_lock:
            memo = self._memo
        spreads = snapshot.spreads.value
        bounds = None if spreads is None else (dict(spreads.minimum), dict(spreads.maximum))
        if memo is not None and memo[0] == snapshot.health.generation and memo[1] == bounds:
            return memo[2]
        f = _Families(self.source.settings.ttl_spreads, self._streams)
        self._add_spreads(f, snapshot)
        self._add_books(f, snapshot)
        self._add_rankings(f, snapshot)
        self._add_health(f, snapshot)
        families = list(f.all())
        if self._streams:
            families.extend(self._stream_families(snapshot))
        with self._memo_lock:
            self._memo = (snapshot.health.before, bounds, families)
        return families

    def _add_spreads(self, f: "_Families", snapshot: Snapshot) -> None:
        spreads = snapshot.spreads.value
        if spreads is None:  # failed: left out, never the previous values
            return
        for symbol, value in spreads.spreads.items():
            if value is None:  # an empty side or a crossed book: no series at all
                continue
            labels = [symbol, snapshot.quote_asset(symbol)]
            top = spreads.tops[symbol]
            f.spread.add_metric(labels, float(value))
            f.best_bid.add_metric(labels, float(top.bid_price))
            f.best_ask.add_metric(labels, float(top.ask_price))
            ratio = answers.relative_spread(top)
            if ratio is not None:
                f.spread_ratio.add_metric(labels, float(ratio))
            delta = spreads.deltas.get(symbol)
            if delta is not None:
                f.spread_delta.add_metric(labels, float(delta))

    def _add_books(self, f: "_Families", snapshot: Snapshot) -> None:
        for symbol, notional in (snapshot.books.value or {}).items():
            quote = snapshot.quote_asset(symbol)
            for side, total, levels in (
                ("bid", notional.bids, notional.bid_levels),
                ("ask", notional.asks, notional.ask_levels),
            ):
                f.notional.add_metric([symbol, quote, side], float(total))
                f.levels.add_metric([symbol, quote, side], levels)

    def _add_rankings(self, f: "_Families", snapshot: Snapshot) -> None:
        ranked = snapshot.rankings.value
        if ranked is None:
            return
        for ranking, tickers in (("volume", ranked.by_volume), ("trades", ranked.by_trades)):
            for position, ticker in enumerate(tickers, 1):
                labels = [ticker.symbol, snapshot.quote_asset(ticker.symbol)]
                f.rank.add_metric([*labels, ranking], position)
                f.quote_volume.add_metric(labels, float(ticker.quote_volume))
                f.base_volume.add_metric(labels, float(ticker.volume))
                f.trades.add_metric(labels, ticker.trades)

    @staticmethod
    def _add_health(f: "_Families", snapshot: Snapshot) -> None:
        health = snapshot.health
        f.up.add_metric([], 0 if snapshot.errors() else 1)
        for name, unix in health.last_refresh.items():
            f.last_refresh.add_metric([name], unix)
        for (name, kind), count in health.failures.items():
            f.failures.add_metric([name, kind], count)
        for (endpoint, code), count in sorted(health.requests.items()):
            f.requests.add_metric([endpoint, code], count)
        f.weight_limit.add_metric([], health.weight_limit)
        f.build.add_metric([], {"version": __version__})

    @staticmethod
    def _stream_families(snapshot: Snapshot) -> list[Metric]:
        stream = snapshot.health.stream
        assert stream is not None
        f = _StreamFamilies()
        spreads = snapshot.spreads.value
        if spreads is not None:
            for symbol, low in spreads.minimum.items():
                labels = [symbol, snapshot.quote_asset(symbol)]
                f.spread_min.add_metric(labels, float(low))
                f.spread_max.add_metric(labels, float(spreads.maximum[symbol]))
        f.connected.add_metric([], 1 if stream.connected else 0)
        for reason, count in sorted(stream.reconnects.items()):
            f.reconnects.add_metric([reason], count)
        for name, count in sorted(stream.messages.items()):
            f.messages.add_metric([name], count)
        for symbol, synced in stream.synced.items():
            f.synced.add_metric([symbol, snapshot.quote_asset(symbol)], 1 if synced else 0)
        for (symbol, reason), count in sorted(stream.resyncs.items()):
            f.resyncs.add_metric([symbol, snapshot.quote_asset(symbol), reason], count)
        for symbol, count in stream.updates.items():
            f.updates.add_metric([symbol, snapshot.quote_asset(symbol)], count)
        return list(f.all())

    def _log(self, snapshot: Snapshot) -> None:
        """Log each failed refresh once (only the scrape that did it); Q5's log line is the
        source's (:func:`collector.q5.log_sample`)."""
        outcomes: list[tuple[str, Outcome[Any]]] = [
            ("exchange", snapshot.exchange), ("rankings", snapshot.rankings),
            ("books", snapshot.books), ("spreads", snapshot.spreads),
        ]
        logged: list[object] = []
        for name, outcome in outcomes:
            if outcome.refreshed and outcome.error is not None and outcome.error not in logged:
                logged.append(outcome.error)
                # nothing was sent (no ranking yet, budget spent): the cause is logged elsewhere
                quiet = isinstance(outcome.error, NotAttempted)
                log.log(logging.DEBUG if quiet else logging.WARNING,
                        "%s refresh failed (%s): %s", name, outcome.error.kind, outcome.error)
                if outcome.error.hint and not self._hinted:
                    self._hinted = True  # once per outage, not once per refresh
                    log.warning("%s", outcome.error.hint)
        if not snapshot.errors():
            self._hinted = False


class _Families:  # pylint: disable=too-many-instance-attributes
    """The metric families that change only with a refresh (memoised by the collector)."""

    def __init__(self, ttl_spreads: float, streaming: bool = False) -> None:
        cached = f"Cached: refreshed from Binance at most every {ttl_spreads:g} s."
        since = "since the previous refresh"
        if streaming:
            cached = "Live: the latest best bid/ask pushed by Binance's bookTicker stream."
            since = "between the last two samples on the 10 s clock (Q5)"
        self.spread = GaugeMetricFamily(
            "binance_price_spread",
            "Best ask minus best bid of each top-N symbol by 24 h trades, in the quote asset. "
            + cached, labels=SYMBOL)
        self.spread_delta = GaugeMetricFamily(
            "binance_price_spread_delta",
            f"Absolute change of binance_price_spread {since}; absent until a symbol's second "
            "observation. " + cached, labels=SYMBOL)

        self.spread_ratio = GaugeMetricFamily(
            "binance_price_spread_ratio",
            "Spread divided by the mid price, comparable across symbols. " + cached,
            labels=SYMBOL)
        self.best_bid = GaugeMetricFamily(
            "binance_best_bid_price", "Best bid price, in the quote asset. " + cached,
            labels=SYMBOL)
        self.best_ask = GaugeMetricFamily(
            "binance_best_ask_price", "Best ask price, in the quote asset. " + cached,
            labels=SYMBOL)
        self.notional = GaugeMetricFamily(
            "binance_order_book_notional",
            "Sum of price times quantity over the top levels of each side of the book of each "
            "top-N symbol by 24 h volume, in the quote asset. Cached.",
            labels=[*SYMBOL, "side"])
        self.levels = GaugeMetricFamily(
            "binance_order_book_levels",
            "Levels summed into binance_order_book_notional (fewer than asked on a thin book). "
            "Cached.", labels=[*SYMBOL, "side"])
        self.rank = GaugeMetricFamily(
            "binance_symbol_rank",
            "Position (1 = first) of the symbol in the ranking by 24 h volume or trades. Cached.",
            labels=[*SYMBOL, "ranking"])
        self.quote_volume = GaugeMetricFamily(
            "binance_symbol_quote_volume_24h",
            "Rolling 24 h traded volume of each ranked symbol, in the quote asset. Cached.",
            labels=SYMBOL)
        self.base_volume = GaugeMetricFamily(
            "binance_symbol_base_volume_24h",
            "Rolling 24 h traded volume of each ranked symbol, in the base asset. Cached.",
            labels=SYMBOL)
        self.trades = GaugeMetricFamily(
            "binance_symbol_trades_24h",
            "Number of trades in the rolling 24 h window of each ranked symbol. Cached.",
            labels=SYMBOL)
        self.up = GaugeMetricFamily(
            "binance_up", "1 if the last refresh of every data group succeeded, else 0.")
        self.last_refresh = GaugeMetricFamily(
            "binance_last_refresh_timestamp_seconds",
            "Unix time of each data group's last successful refresh.", labels=["group"])
        self.failures = CounterMetricFamily(
            "binance_refresh_failures", "Failed refreshes by data group and kind of error.",
            labels=["group", "kind"])
        self.requests = CounterMetricFamily(
            "binance_api_requests",
            "HTTP requests sent to Binance (retries included) by endpoint and status code, "
            "or 'error' when no response came.", labels=["endpoint", "code"])
        self.weight_limit = GaugeMetricFamily(
            "binance_api_weight_limit",
            "Request weight Binance allows per minute and IP: the REQUEST_WEIGHT limit of the "
            "last exchangeInfo (6000 until one is seen).")
        self.build = InfoMetricFamily("binance_exporter_build", "Version of this exporter.")

    def all(self) -> Iterator[Metric]:
        """Every family, in a stable order."""
        yield from vars(self).values()


class _PerScrape:
    """The metric families that may change on every scrape, built fresh each time."""

    def __init__(self) -> None:
        self.used_weight = GaugeMetricFamily(
            "binance_api_used_weight",
            "Request weight used in the current minute: the highest X-MBX-USED-WEIGHT-1M "
            "header seen this minute.")
        self.cool_down = GaugeMetricFamily(
            "binance_api_cool_down_seconds",
            "Seconds left of a 429/418/403 rate-limit cool-down during which nothing is sent.")
        self.scrape_duration = GaugeMetricFamily(
            "binance_scrape_duration_seconds", "Time this collection took, refreshes included.")

    def all(self) -> Iterator[Metric]:
        """Every family, in a stable order."""
        yield from vars(self).values()


class _StreamFamilies:  # pylint: disable=too-many-instance-attributes
    """Stream mode's own families: min/max and the streams' health (absent in REST mode)."""

    def __init__(self) -> None:
        self.spread_min = GaugeMetricFamily(
            "binance_price_spread_min",
            "Lowest binance_price_spread of the last 10 s, the current one included.",
            labels=SYMBOL)
        self.spread_max = GaugeMetricFamily(
            "binance_price_spread_max",
            "Highest binance_price_spread of the last 10 s, the current one included.",
            labels=SYMBOL)
        self.connected = GaugeMetricFamily(
            "binance_stream_connected",
            "1 while a WebSocket connection to the streams is open (one silent for 30 s is "
            "dropped), else 0.")
        self.reconnects = CounterMetricFamily(
            "binance_stream_reconnects",
            "Connection attempts after the first, by why the one before ended: closed, "
            "error, stall, server_shutdown, rollover, refused.", labels=["reason"])
        self.messages = CounterMetricFamily(
            "binance_stream_messages", "Stream events received, by stream.", labels=["stream"])
        self.synced = GaugeMetricFamily(
            "binance_order_book_synced",
            "1 while the local order book of a top-N symbol by 24 h volume is synced (its "
            "notional is published), else 0.", labels=SYMBOL)
        self.resyncs = CounterMetricFamily(
            "binance_order_book_resyncs",
            "Local order books discarded and fetched again, by reason: gap, thin, stale, "
            "disconnect.", labels=[*SYMBOL, "reason"])
        self.updates = CounterMetricFamily(
            "binance_book_ticker_updates",
            "Best bid/ask updates applied from the bookTicker stream.", labels=SYMBOL)

    def all(self) -> Iterator[Metric]:
        """Every family, in a stable order."""
        yield from vars(self).values()


def _message_age() -> GaugeMetricFamily:
    """Stream mode's one per-scrape family."""
    return GaugeMetricFamily(
        "binance_stream_last_message_age_seconds",
        "Seconds since the last stream event of any kind (stream mode only).")
