"""Pure functions that turn validated records into the product's answers (Q1–Q5).

No I/O and no floats: everything is exact ``Decimal``. Rankings break ties by
symbol name, ascending, so the same market always gives the same answer
whatever order Binance listed the symbols in. Inputs are never mutated.
"""

from __future__ import annotations

import operator
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal, localcontext
from functools import partial
from itertools import takewhile
from typing import Callable, Iterable, Mapping, Sequence

from collector.records import (
    BandDepth,
    BookTop,
    Level,
    Notional,
    OrderBook,
    RankBy,
    Rankings,
    SymbolInfo,
    Ticker24h,
    Watchlist,
)

# Sums, products and differences are exact in this context (the default one keeps 28
# digits and rounds longer results). Never divide in it: 1/3 would not terminate.
_EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)


def quoted_in(
    tickers: Iterable[Ticker24h], infos: Mapping[str, SymbolInfo], quote_asset: str
) -> list[Ticker24h]:
    """Tickers of ``TRADING`` symbols whose quote asset, per exchangeInfo, is ``quote_asset``.

    The symbol's spelling is never used: ``BTCUSDT`` is quoted in USDT and
    ``WBTCETH`` in ETH. Symbols unknown to exchangeInfo (listed since it was
    fetched) are left out rather than guessed.
    """
    selected = []
    for ticker in tickers:
        info = infos.get(ticker.symbol)
        if info is not None and info.trading and info.quote_asset == quote_asset:
            selected.append(ticker)
    return selected


def top_by_volume(
    tickers: Iterable[Ticker24h],
    infos: Mapping[str, SymbolInfo],
    *,
    quote_asset: str = "BTC",
    top: int = 5,
    rank_by: RankBy = "quote",
) -> list[Ticker24h]:
    """Q1: the ``top`` symbols quoted in ``quote_asset`` by 24 h volume, descending.

    ``quote`` ranks by ``quoteVolume`` (in BTC for BTC-quoted symbols, so coins
    are comparable, as on Binance's own market pages); ``base`` by ``volume``.
    """
    candidates = quoted_in(tickers, infos, quote_asset)
    if rank_by == "quote":
        candidates.sort(key=lambda t: (t.quote_volume.copy_negate(), t.symbol))
    else:
        candidates.sort(key=lambda t: (t.volume.copy_negate(), t.symbol))
    return candidates[:top]


def top_by_trades(
    tickers: Iterable[Ticker24h],
    infos: Mapping[str, SymbolInfo],
    *,
    quote_asset: str = "USDT",
    top: int = 5,
) -> list[Ticker24h]:
    """Q2: the ``top`` symbols quoted in ``quote_asset`` by 24 h trade count, descending."""
    candidates = quoted_in(tickers, infos, quote_asset)
    candidates.sort(key=lambda t: (-t.trades, t.symbol))
    return candidates[:top]


def book_notional(book: OrderBook, levels: int, bands: Sequence[str] = (),
                  whole: tuple[bool, bool] = (True, True)) -> Notional:
    """Q3: Σ price × quantity over the first ``levels`` levels of each side, as returned;
    and the depth within each of ``bands`` (:func:`depth_bands`).

    Binance returns levels best first, so the first N are the top N. A thin
    book sums what it has and says how many levels that was. ``whole``: whether the
    bids, the asks, are the whole side (else deeper levels exist, unknown).
    """
    bids = book.bids[:levels]
    asks = book.asks[:levels]
    with localcontext(_EXACT):
        return Notional(
            symbol=book.symbol,
            bids=sum((price * qty for price, qty in bids), Decimal(0)),
            asks=sum((price * qty for price, qty in asks), Decimal(0)),
            bid_levels=len(bids),
            ask_levels=len(asks),
            bands=depth_bands(book.bids, book.asks, bands, whole) if bands else {},
        )


def depth_bands(bids: Sequence[Level], asks: Sequence[Level], bands: Sequence[str],
                whole: tuple[bool, bool] = (True, True)) -> dict[str, BandDepth]:
    """Depth within ±x % of mid for each x of ``bands`` (a percentage as given, ``"2"``):
    Σ price × quantity of the bids priced at or above mid × (1 − x/100) and of the asks
    at or below mid × (1 + x/100), mid being (best bid + best ask) / 2 of the same book.

    Levels are best first. A side's sum is complete when a level past the band's edge is
    known, or the side is ``whole``; otherwise it is a floor. No mid (an empty side, a
    crossed book): no bands. Exact: halving and per cent terminate.
    """
    if not bids or not asks or bids[0][0] >= asks[0][0]:
        return {}
    found = {}
    with localcontext(_EXACT):
        mid = (bids[0][0] + asks[0][0]) / 2
        for band in bands:
            fraction = Decimal(band) / 100
            low, high = mid - mid * fraction, mid + mid * fraction
            inside_bids = _within(bids, partial(operator.le, low))  # low <= price
            inside_asks = _within(asks, partial(operator.ge, high))  # high >= price
            found[band] = BandDepth(
                bids=sum((price * qty for price, qty in inside_bids), Decimal(0)),
                asks=sum((price * qty for price, qty in inside_asks), Decimal(0)),
                bid_levels=len(inside_bids), ask_levels=len(inside_asks),
                bids_complete=whole[0] or len(inside_bids) < len(bids),
                asks_complete=whole[1] or len(inside_asks) < len(asks))
    return found


def spread(top: BookTop) -> Decimal | None:
    """Q4: best ask − best bid, or ``None`` when there is no meaningful spread.

    A side priced ``0`` is an empty side: no spread rather than a made-up one.
    A crossed or locked book (bid ≥ ask) cannot persist on a matching engine,
    so it is treated as an inconsistent answer: no spread, never a negative one.
    """
    if top.bid_price <= 0 or top.ask_price <= 0 or top.bid_price >= top.ask_price:
        return None
    with localcontext(_EXACT):
        return top.ask_price - top.bid_price


def relative_spread(top: BookTop) -> Decimal | None:
    """Spread divided by the mid price, a ratio comparable across symbols."""
    value = spread(top)
    if value is None:
        return None
    return value / ((top.bid_price + top.ask_price) / 2)


def watchlist(rankings: Rankings, infos: Mapping[str, SymbolInfo], symbols: Iterable[str],
              all_spreads: bool = False) -> Watchlist:
    """What to follow: Q1's books and Q2's spreads, then each of ``symbols`` that
    exchangeInfo lists as ``TRADING`` (in the order given, once each); with
    ``all_spreads``, the spreads of every ``TRADING`` symbol, by name."""
    followed = {symbol: symbol in infos and infos[symbol].trading for symbol in symbols}
    chosen = [symbol for symbol, ok in followed.items() if ok]
    books = dict.fromkeys([t.symbol for t in rankings.by_volume] + chosen)
    top = tuple(dict.fromkeys([t.symbol for t in rankings.by_trades] + chosen))
    spreads = tuple(sorted(symbol for symbol, info in infos.items() if info.trading)) \
        if all_spreads else top
    return Watchlist(tuple(books), spreads, followed, top)


def _within(levels: Sequence[Level], inside: Callable[[Decimal], bool]) -> list[Level]:
    """The levels, best first, up to the first one outside the band."""
    return list(takewhile(lambda level: inside(level[0]), levels))


def spreads_of(symbols: Iterable[str], tops: Mapping[str, BookTop]) -> dict[str, Decimal | None]:
    """Q4 for each symbol, in the given order; ``None`` if Binance returned no book top."""
    result: dict[str, Decimal | None] = {}
    for symbol in symbols:
        top = tops.get(symbol)
        result[symbol] = None if top is None else spread(top)
    return result


def spread_deltas(
    previous: Mapping[str, Decimal | None] | None, current: Mapping[str, Decimal | None]
) -> dict[str, Decimal | None]:
    """Q5: |spread − previous spread| per symbol of ``current``.

    ``None`` where either observation has no spread: on the first tick, for a
    symbol that just entered the set, or after a side was empty.
    """
    deltas: dict[str, Decimal | None] = {}
    with localcontext(_EXACT):
        for symbol, value in current.items():
            before = None if previous is None else previous.get(symbol)
            deltas[symbol] = None if value is None or before is None else abs(value - before)
    return deltas


def q5_line(spreads: Mapping[str, Decimal | None], deltas: Mapping[str, Decimal | None]) -> str:
    """One Q5 observation as a log line: ``BTCUSDT=0.01 (delta 0) ...``; ``-`` for none."""
    return " ".join(f"{symbol}={plain(value) or '-'} (delta {plain(deltas.get(symbol)) or '-'})"
                    for symbol, value in spreads.items())


def plain(value: Decimal | None) -> str | None:
    """A decimal as Binance would write it, minus trailing zeros: ``0.01``, never ``1E-2``."""
    if value is None:
        return None
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text
