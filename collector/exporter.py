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
from collector.chunked import ABSENT, ChunkedMap, Layout, chunked
from collector.errors import NotAttempted
from collector.parted import PartedBuilder
from collector.records import STREAM, Outcome, Snapshot, Spreads, SymbolInfo
from collector.source import Source

log = logging.getLogger("collector.exporter")

SYMBOL = ["symbol", "quote_asset"]


Group = tuple[Metric, ...]  # families built, kept and rendered together


class BinanceCollector(Collector):
    """A custom collector: registering it calls nothing; each scrape takes a fresh snapshot.

    The families are built in groups, each from one part of a snapshot (the spreads, the
    books, the rankings, the health figures, the streams' health), and a group is kept
    and returned again, the same objects, while its part is unchanged (see
    :class:`_Kept`): a best bid/ask pushed by a stream rebuilds the spread families, not
    the books', so that an exposition renders and compresses only what changed. The
    per-scrape families (scrape duration, used weight, cool-down) are built on every call.
    """

    def __init__(self, source: Source, clock: Callable[[], float] = time.perf_counter) -> None:
        self.source = source
        self._streams = source.settings.source == STREAM  # stream mode has families of its own
        self._clock = clock
        self._kept = _Kept()
        self._parted: dict[str, PartedBuilder] = {}  # the whole market's families, by name
        self._hinted = False  # the hint of an outage is logged once, until Binance answers

    def describe(self) -> Iterable[Metric]:
        """The families, empty: lets a registry check names without an upstream call."""
        ttl = self.source.settings.ttl_spreads
        groups: list[Iterable[Metric]] = [
            _SpreadFamilies(ttl, self._streams).all(), _BookFamilies().all(),
            _BandFamilies().all() if self.source.settings.depth_bands else (),
            _RankingFamilies().all(), _HealthFamilies().all()]
        if self._streams:
            groups += [_ExtremeFamilies().all(), _StreamFamilies().all(),
                       _EventCountFamilies().all()]
        if self.source.settings.symbols:
            groups.append(_FollowedFamilies().all())
        groups.append(_PerScrape().all())
        if self._streams:
            groups.append([_message_age()])
        return [family for group in groups for family in group]

    def collect(self) -> Iterable[Metric]:
        """One snapshot → every family, refreshing what is due. Never raises for an upstream
        problem."""
        return [family for group in self.collect_groups() for family in group]

    def collect_groups(self) -> list[Group]:
        """:meth:`collect`'s families in their groups, kept ones first, per-scrape ones last."""
        started = self._clock()
        return self._collect(self.source.snapshot(), started)

    def collect_cached(self) -> list[Group] | None:
        """What ``collect_groups()`` would return if nothing is due, without waiting; else
        None."""
        started = self._clock()
        snapshot = self.source.cached_snapshot()
        if snapshot is None:
            return None
        return self._collect(snapshot, started)

    def _collect(self, snapshot: Snapshot, started: float) -> list[Group]:
        self._log(snapshot)
        groups = self._data_groups(snapshot)
        per_scrape = _PerScrape()
        if snapshot.health.used_weight is not None:
            per_scrape.used_weight.add_metric([], snapshot.health.used_weight)

        per_scrape.cool_down.add_metric([], snapshot.health.cool_down)
        per_scrape.scrape_duration.add_metric([], self._clock() - started)
        stream = snapshot.health.stream
        if stream is None:
            return [*groups, tuple(per_scrape.all())]
        age = _message_age()
        if stream.last_message_age is not None:
            age.add_metric([], stream.last_message_age)
        return [*groups, tuple(per_scrape.all()), (age,)]

    def _data_groups(self, snapshot: Snapshot) -> list[Group]:
        """The groups that change only with their part of the snapshot, rebuilt only when it
        changed (the symbols' metadata gives every group its quote_asset labels)."""
        kept, symbols = self._kept, snapshot.symbols
        spreads, health = snapshot.spreads.value, snapshot.health
        groups = [
            kept.get("spreads", (spreads, symbols), lambda: self._spread_families(snapshot)),
            kept.get("books", (snapshot.books.value, symbols),
                     lambda: self._book_families(snapshot, self.source.settings.depth_bands)),
            kept.get("rankings", (snapshot.rankings.value, symbols),
                     lambda: self._ranking_families(snapshot)),
            kept.get("health", (not snapshot.errors(), health.last_refresh, health.failures,
                                health.requests, health.weight_limit),
                     lambda: self._health_families(snapshot)),
        ]
        if self.source.settings.symbols:
            groups.append(kept.get("followed", (snapshot.followed,),
                                   lambda: self._followed_families(snapshot)))
        stream = health.stream
        if self._streams and stream is not None:
            groups += [
                kept.get("extremes", (None, None, symbols) if spreads is None else
                         (spreads.minimum, spreads.maximum, symbols),
                         lambda: self._extreme_families(snapshot)),
                kept.get("stream", (stream.connected, stream.reconnects, stream.synced,
                                    stream.resyncs, symbols),
                         lambda: self._stream_families(snapshot)),
                kept.get("events", (stream.messages, stream.updates, symbols),
                         lambda: self._event_count_families(snapshot)),
            ]
        return groups

    def _spread_families(self, snapshot: Snapshot) -> Group:
        f = _SpreadFamilies(self.source.settings.ttl_spreads, self._streams)
        spreads = snapshot.spreads.value
        if spreads is None:  # failed: left out, never the previous values
            return tuple(f.all())
        values, tops, deltas = _aligned(spreads)
        meta = snapshot.symbols
        return (self._family(f.spread, _spread_rows, meta, values),
                self._family(f.spread_delta, _delta_rows, meta, values, deltas),
                self._family(f.spread_ratio, _ratio_rows, meta, values, tops),
                self._family(f.best_bid, _bid_rows, meta, values, tops),
                self._family(f.best_ask, _ask_rows, meta, values, tops))

    def _family(self, template: Metric, rows: Callable[..., Any], meta: object,
                *maps: ChunkedMap[Any]) -> Metric:
        """A whole-market family, built again only where its maps changed (see
        :mod:`collector.parted`)."""
        builder = self._parted.get(template.name)
        if builder is None:
            builder = self._parted[template.name] = PartedBuilder(template, rows)
        return builder.family(maps, meta)

    @staticmethod
    def _book_families(snapshot: Snapshot, bands: tuple[str, ...]) -> Group:
        f, b = _BookFamilies(), _BandFamilies()
        for symbol, notional in (snapshot.books.value or {}).items():
            quote = snapshot.quote_asset(symbol)
            for side, total, levels in (
                ("bid", notional.bids, notional.bid_levels),
                ("ask", notional.asks, notional.ask_levels),
            ):
                f.notional.add_metric([symbol, quote, side], float(total))
                f.levels.add_metric([symbol, quote, side], levels)
            for band, depth in notional.bands.items():
                for side, total, complete in (("bid", depth.bids, depth.bids_complete),
                                              ("ask", depth.asks, depth.asks_complete)):
                    b.notional.add_metric([symbol, quote, side, band], float(total))
                    b.complete.add_metric([symbol, quote, side, band], 1 if complete else 0)
        return (*f.all(), *b.all()) if bands else tuple(f.all())

    @staticmethod
    def _ranking_families(snapshot: Snapshot) -> Group:
        f = _RankingFamilies()
        ranked = snapshot.rankings.value
        if ranked is None:
            return tuple(f.all())
        for ranking, tickers in (("volume", ranked.by_volume), ("trades", ranked.by_trades)):
            for position, ticker in enumerate(tickers, 1):
                labels = [ticker.symbol, snapshot.quote_asset(ticker.symbol)]
                f.rank.add_metric([*labels, ranking], position)
                f.quote_volume.add_metric(labels, float(ticker.quote_volume))
                f.base_volume.add_metric(labels, float(ticker.volume))
                f.trades.add_metric(labels, ticker.trades)
        return tuple(f.all())

    @staticmethod
    def _followed_families(snapshot: Snapshot) -> Group:
        f = _FollowedFamilies()
        for symbol, followed in snapshot.followed.items():
            f.followed.add_metric([symbol], 1 if followed else 0)
        return tuple(f.all())

    @staticmethod
    def _health_families(snapshot: Snapshot) -> Group:
        f = _HealthFamilies()
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
        return tuple(f.all())

    def _extreme_families(self, snapshot: Snapshot) -> Group:
        f = _ExtremeFamilies()
        spreads = snapshot.spreads.value
        if spreads is None:
            return tuple(f.all())
        low = chunked(spreads.minimum)
        high = chunked(spreads.maximum, low.layout)
        return (self._family(f.spread_min, _spread_rows, snapshot.symbols, low),
                self._family(f.spread_max, _max_rows, snapshot.symbols, low, high))

    @staticmethod
    def _stream_families(snapshot: Snapshot) -> Group:
        stream = snapshot.health.stream
        assert stream is not None
        f = _StreamFamilies()
        f.connected.add_metric([], 1 if stream.connected else 0)
        for reason, count in sorted(stream.reconnects.items()):
            f.reconnects.add_metric([reason], count)
        for symbol, synced in stream.synced.items():
            f.synced.add_metric([symbol, snapshot.quote_asset(symbol)], 1 if synced else 0)
        for (symbol, reason), count in sorted(stream.resyncs.items()):
            f.resyncs.add_metric([symbol, snapshot.quote_asset(symbol), reason], count)
        return tuple(f.all())

    def _event_count_families(self, snapshot: Snapshot) -> Group:
        stream = snapshot.health.stream
        assert stream is not None
        f = _EventCountFamilies()
        messages = stream.messages if isinstance(stream.messages, ChunkedMap) \
            else ChunkedMap.of(Layout(sorted(stream.messages)), stream.messages)
        return (self._family(f.messages, _count_rows, None, messages),
                self._family(f.updates, _spread_rows, snapshot.symbols,
                             chunked(stream.updates)))

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


_PLAIN = frozenset({dict, tuple, bool, int, float, str, type(None)})  # compared by value


class _Kept:
    """Groups of families kept with the inputs they were built from, and returned again
    while the inputs are the same objects, or equal plain values (records and whole-market
    maps are compared by identity: a new one is a change): a group is rebuilt only when
    what it shows changed. The inputs are held, so an id can never be mistaken for a new
    one's."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._groups: dict[str, tuple[tuple[object, ...], Group]] = {}

    def get(self, name: str, inputs: tuple[object, ...], build: Callable[[], Group]) -> Group:
        """The kept group ``name`` if built from these inputs, else ``build()`` (kept)."""
        with self._lock:
            kept = self._groups.get(name)
        if kept is not None and all(a is b or (type(a) in _PLAIN and a == b)
                                    for a, b in zip(kept[0], inputs)):
            return kept[1]
        group = build()
        with self._lock:
            self._groups[name] = (inputs, group)
        return group


def _quote(symbols: Any, symbol: str) -> str:
    """The symbol's quote asset in ``symbols`` (exchangeInfo's); "" if unknown."""
    info: SymbolInfo | None = symbols.get(symbol)
    return info.quote_asset if info is not None else ""


def _aligned(spreads: Spreads) -> tuple[ChunkedMap[Any], ChunkedMap[Any], ChunkedMap[Any]]:
    """The spreads, best bid/asks and deltas as maps of one layout (the spreads')."""
    values = chunked(spreads.spreads)
    return values, chunked(spreads.tops, values.layout), chunked(spreads.deltas, values.layout)


# a symbol's rows of each whole-market family, from its values in the family's maps (the
# first: the spread, or the value itself; ABSENT where a map has none)

def _spread_rows(symbol: str, values: tuple[Any, ...], meta: Any) -> list[tuple[list[str], float]]:
    return [] if values[0] is None else [([symbol, _quote(meta, symbol)], float(values[0]))]


def _delta_rows(symbol: str, values: tuple[Any, ...], meta: Any) -> list[tuple[list[str], float]]:
    spread, delta = values
    if spread is None or delta is None or delta is ABSENT:
        return []
    return [([symbol, _quote(meta, symbol)], float(delta))]


def _ratio_rows(symbol: str, values: tuple[Any, ...], meta: Any) -> list[tuple[list[str], float]]:
    ratio = None if values[0] is None else answers.relative_spread(values[1])
    return [] if ratio is None else [([symbol, _quote(meta, symbol)], float(ratio))]


def _bid_rows(symbol: str, values: tuple[Any, ...], meta: Any) -> list[tuple[list[str], float]]:
    return [] if values[0] is None else [([symbol, _quote(meta, symbol)],
                                          float(values[1].bid_price))]


def _ask_rows(symbol: str, values: tuple[Any, ...], meta: Any) -> list[tuple[list[str], float]]:
    return [] if values[0] is None else [([symbol, _quote(meta, symbol)],
                                          float(values[1].ask_price))]


def _max_rows(symbol: str, values: tuple[Any, ...], meta: Any) -> list[tuple[list[str], float]]:
    return [([symbol, _quote(meta, symbol)], float(values[1]))]


def _count_rows(name: str, values: tuple[Any, ...], _: Any) -> list[tuple[list[str], float]]:
    return [([name], values[0])]


class _Group:
    """Families built together; ``all()`` in a stable order."""

    def all(self) -> Iterator[Metric]:
        """Every family, in a stable order."""
        yield from vars(self).values()


class _SpreadFamilies(_Group):
    """Q4 and Q5: changed by a spreads refresh, or a best bid/ask pushed."""

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


class _BookFamilies(_Group):
    """Q3: changed by a books refresh, or a depth event."""

    def __init__(self) -> None:
        self.notional = GaugeMetricFamily(
            "binance_order_book_notional",
            "Sum of price times quantity over the top levels of each side of the book of each "
            "top-N symbol by 24 h volume, in the quote asset. Cached.",
            labels=[*SYMBOL, "side"])
        self.levels = GaugeMetricFamily(
            "binance_order_book_levels",
            "Levels summed into binance_order_book_notional (fewer than asked on a thin book). "
            "Cached.", labels=[*SYMBOL, "side"])


class _BandFamilies(_Group):
    """``--depth-bands`` only: depth within ±x % of mid, with the books."""

    def __init__(self) -> None:
        self.notional = GaugeMetricFamily(
            "binance_order_book_band_notional",
            "Sum of price times quantity of the levels within the band (percent, as given) of "
            "the mid price, per side, in the quote asset: the bids at or above mid x (1 - "
            "band/100), the asks at or below mid x (1 + band/100). A floor where "
            "binance_order_book_band_complete is 0.", labels=[*SYMBOL, "side", "band"])
        self.complete = GaugeMetricFamily(
            "binance_order_book_band_complete",
            "1 when the levels known reach past the band's edge (or the whole side is known), "
            "so binance_order_book_band_notional is the whole band; 0 when it is only a floor.",
            labels=[*SYMBOL, "side", "band"])


class _RankingFamilies(_Group):
    """Q1 and Q2: changed by a rankings refresh."""

    def __init__(self) -> None:
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


class _FollowedFamilies(_Group):
    """``--symbols`` only: which of them are followed; changed by exchangeInfo."""

    def __init__(self) -> None:
        self.followed = GaugeMetricFamily(
            "binance_symbol_followed",
            "1 for each --symbols entry followed, 0 for one Binance does not list as TRADING "
            "(left out). Cached.", labels=["symbol"])


class _HealthFamilies(_Group):
    """How talking to Binance has gone: changed by every request."""

    def __init__(self) -> None:
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


class _PerScrape(_Group):
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


class _ExtremeFamilies(_Group):
    """Stream mode's lowest and highest spread of the last 10 s: changed with the spreads."""

    def __init__(self) -> None:
        self.spread_min = GaugeMetricFamily(
            "binance_price_spread_min",
            "Lowest binance_price_spread of the last 10 s, the current one included.",
            labels=SYMBOL)
        self.spread_max = GaugeMetricFamily(
            "binance_price_spread_max",
            "Highest binance_price_spread of the last 10 s, the current one included.",
            labels=SYMBOL)


class _StreamFamilies(_Group):
    """Stream mode's health of the streams (absent in REST mode): connections and books."""

    def __init__(self) -> None:
        self.connected = GaugeMetricFamily(
            "binance_stream_connected",
            "1 while a WebSocket connection to the streams is open (one silent for 30 s is "
            "dropped), else 0.")
        self.reconnects = CounterMetricFamily(
            "binance_stream_reconnects",
            "Connection attempts after the first, by why the one before ended: closed, "
            "error, stall, server_shutdown, rollover, refused.", labels=["reason"])
        self.synced = GaugeMetricFamily(
            "binance_order_book_synced",
            "1 while the local order book of a top-N symbol by 24 h volume is synced (its "
            "notional is published), else 0.", labels=SYMBOL)
        self.resyncs = CounterMetricFamily(
            "binance_order_book_resyncs",
            "Local order books discarded and fetched again, by reason: gap, thin, stale, "
            "one_sided, crossed, disconnect.", labels=[*SYMBOL, "reason"])


class _EventCountFamilies(_Group):
    """Stream mode's event counts (absent in REST mode): changed by every event, so kept
    apart from the rest of the streams' health, which then re-renders only when it
    changes."""

    def __init__(self) -> None:
        self.messages = CounterMetricFamily(
            "binance_stream_messages", "Stream events received, by stream.", labels=["stream"])
        self.updates = CounterMetricFamily(
            "binance_book_ticker_updates",
            "Best bid/ask updates applied from the bookTicker stream.", labels=SYMBOL)


def _message_age() -> GaugeMetricFamily:
    """Stream mode's one per-scrape family."""
    return GaugeMetricFamily(
        "binance_stream_last_message_age_seconds",
        "Seconds since the last stream event of any kind (stream mode only).")
