"""Q1–Q5 rules, each pinned by a test that fails if the rule breaks."""

from __future__ import annotations

import random
from decimal import Decimal

from conftest import load

from collector import answers
from collector.models import parse_exchange_info, parse_order_book, parse_tickers
from collector.records import BookTop, OrderBook, SymbolInfo, Ticker24h

INFOS = parse_exchange_info(load("exchange_info.json"))
TICKERS = parse_tickers(load("ticker_24hr.json"))


def symbols(tickers: list[Ticker24h]) -> list[str]:
    return [t.symbol for t in tickers]


def test_q1_ranks_btc_quoted_symbols_by_quote_volume() -> None:
    """The real top 5 of 2024-03-10, in BTC: Binance's own market pages rank this way."""
    top = answers.top_by_volume(TICKERS, INFOS)
    assert symbols(top) == ["ETHBTC", "DOGEBTC", "FETBTC", "SOLBTC", "WLDBTC"]
    assert [t.quote_volume for t in top] == [
        Decimal("1159.60641773"), Decimal("536.58103871"), Decimal("409.21713620"),
        Decimal("366.70482724"), Decimal("354.82202202"),
    ]


def test_q1_by_base_volume_is_a_different_ranking() -> None:
    """Base volumes of different coins are not comparable: 209 M DOGE vs 20 k ETH."""
    top = answers.top_by_volume(TICKERS, INFOS, rank_by="base")
    assert symbols(top) == ["DOGEBTC", "LINABTC", "GALABTC", "FETBTC", "WLDBTC"]


def test_quote_asset_comes_from_exchange_info_not_the_spelling() -> None:
    """BTCUSDT, BTCDOWNUSDT, BTCTUSD, BTCEUR and WBTCETH contain 'BTC' but are not BTC-quoted."""
    btc = symbols(answers.quoted_in(TICKERS, INFOS, "BTC"))
    for trap in ("BTCUSDT", "BTCDOWNUSDT", "BTCTUSD", "BTCEUR", "WBTCETH"):
        assert trap not in btc
    assert "WBTCBTC" in btc and "ETHBTC" in btc
    assert "BTCUSDT" in symbols(answers.quoted_in(TICKERS, INFOS, "USDT"))


def test_only_trading_symbols_rank() -> None:
    """XEMBTC and FTTUSDT (BREAK) carry the highest volumes and counts in the fixture."""
    assert INFOS["XEMBTC"].status == "BREAK" and INFOS["FTTUSDT"].status == "BREAK"
    assert "XEMBTC" not in symbols(answers.top_by_volume(TICKERS, INFOS, top=50))
    assert "XEMBTC" not in symbols(answers.top_by_volume(TICKERS, INFOS, top=50, rank_by="base"))
    assert "FTTUSDT" not in symbols(answers.top_by_trades(TICKERS, INFOS, top=50))


def test_symbols_missing_from_exchange_info_are_ignored() -> None:
    """PIXELUSDT has more trades than BTCUSDT but exchangeInfo does not know it: no guessing."""
    assert "PIXELUSDT" not in INFOS
    assert "PIXELUSDT" not in symbols(answers.top_by_trades(TICKERS, INFOS, top=50))


def test_q2_ranks_usdt_quoted_symbols_by_trade_count() -> None:
    top = answers.top_by_trades(TICKERS, INFOS)
    assert [(t.symbol, t.trades) for t in top] == [
        ("FLOKIUSDT", 3877580), ("WLDUSDT", 2165220), ("BTCUSDT", 1460540),
        ("SHIBUSDT", 1422923), ("PEPEUSDT", 1402169),
    ]


def _info(symbol: str, quote: str) -> SymbolInfo:
    return SymbolInfo(symbol, "TRADING", symbol[: -len(quote)], quote)


def test_ties_break_by_symbol_and_ignore_input_order() -> None:
    """Equal volumes or counts must not make the answer depend on Binance's listing order."""
    tied = [Ticker24h(s, Decimal("5"), Decimal("1.0"), 7) for s in ("CCCBTC", "AAABTC", "BBBBTC")]
    infos = {t.symbol: _info(t.symbol, "BTC") for t in tied}
    for _ in range(5):
        random.shuffle(tied)
        assert symbols(answers.top_by_volume(tied, infos, top=2)) == ["AAABTC", "BBBBTC"]
        assert symbols(answers.top_by_volume(tied, infos, top=2, rank_by="base")) == [
            "AAABTC", "BBBBTC"]
        assert symbols(answers.top_by_trades(tied, infos, quote_asset="BTC", top=2)) == [
            "AAABTC", "BBBBTC"]


def test_decimal_ranking_is_exact_where_floats_are_not() -> None:
    """0.30000000000000001 and 0.3 are equal as floats; the symbol tie-break must not decide."""
    a = Ticker24h("AAABTC", Decimal(0), Decimal("0.3"), 1)
    b = Ticker24h("BBBBTC", Decimal(0), Decimal("0.30000000000000001"), 1)
    infos = {t.symbol: _info(t.symbol, "BTC") for t in (a, b)}
    assert symbols(answers.top_by_volume([a, b], infos)) == ["BBBBTC", "AAABTC"]


def test_rankings_do_not_mutate_their_input() -> None:
    tickers = list(TICKERS)
    answers.top_by_volume(tickers, INFOS)
    answers.top_by_trades(tickers, INFOS)
    assert tickers == list(TICKERS)


def test_q3_sums_price_times_quantity_per_side_exactly() -> None:
    book = OrderBook("XBTC",
                     bids=((Decimal("0.1"), Decimal("3")), (Decimal("0.2"), Decimal("0.5"))),
                     asks=((Decimal("0.30000001"), Decimal("2")),), last_update_id=1)
    notional = answers.book_notional(book, 200)
    assert notional.bids == Decimal("0.4")  # 0.3 + 0.1, exactly
    assert notional.asks == Decimal("0.60000002")
    assert (notional.bid_levels, notional.ask_levels) == (2, 1)


def test_q3_sums_only_the_first_levels_of_a_longer_book() -> None:
    """The DOGEBTC fixture has 250 levels; only the best 200 count."""
    raw = load("depth/DOGEBTC.json")
    book = parse_order_book(raw, "DOGEBTC")
    notional = answers.book_notional(book, 200)
    expected = sum(Decimal(p) * Decimal(q) for p, q in raw["bids"][:200])
    assert notional.bids == expected and notional.bid_levels == 200
    assert notional.bids != sum(Decimal(p) * Decimal(q) for p, q in raw["bids"])


def test_q3_thin_book_sums_what_exists() -> None:
    """SOLBTC has 37 bid levels: sum them and say so, do not fail or pad."""
    book = parse_order_book(load("depth/SOLBTC.json"), "SOLBTC")
    notional = answers.book_notional(book, 200)
    assert (notional.bid_levels, notional.ask_levels) == (37, 200)
    empty = answers.book_notional(OrderBook("X", (), (), last_update_id=1), 200)
    assert (empty.bids, empty.asks, empty.bid_levels) == (Decimal(0), Decimal(0), 0)


def top(bid: str, ask: str) -> BookTop:
    return BookTop("XUSDT", Decimal(bid), Decimal("1"), Decimal(ask), Decimal("1"))


def test_q4_spread_is_exact() -> None:
    """Floats would give 0.010000000002037268 for 69010.01 - 69010.00."""
    assert answers.spread(top("69010.00000000", "69010.01000000")) == Decimal("0.01")
    assert str(answers.spread(top("0.00024376", "0.00024377"))) == "1E-8"


def test_q4_empty_side_means_no_spread() -> None:
    """Binance sends "0.00000000" for an empty side; ask - 0 would be a made-up spread."""
    assert answers.spread(top("0.00000000", "1.5")) is None
    assert answers.spread(top("1.5", "0.00000000")) is None


def test_q4_crossed_or_locked_book_gives_no_spread_never_a_negative_one() -> None:
    assert answers.spread(top("2", "1")) is None
    assert answers.spread(top("2", "2")) is None


def test_relative_spread_is_spread_over_mid() -> None:
    assert answers.relative_spread(top("99", "101")) == Decimal("0.02")
    assert answers.relative_spread(top("0", "101")) is None


def test_spreads_of_keeps_order_and_marks_missing_symbols() -> None:
    tops = {"XUSDT": top("1", "1.5")}
    assert answers.spreads_of(["YUSDT", "XUSDT"], tops) == {"YUSDT": None, "XUSDT": Decimal("0.5")}


def test_q5_first_tick_and_newcomers_have_no_delta() -> None:
    first = {"A": Decimal("0.02"), "B": Decimal("0.01")}
    assert answers.spread_deltas(None, first) == {"A": None, "B": None}
    second = {"A": Decimal("0.01"), "C": Decimal("0.5"), "B": None}
    assert answers.spread_deltas(first, second) == {"A": Decimal("0.01"), "C": None, "B": None}
    third = {"B": Decimal("0.03")}
    # B had no spread last time (empty side): no delta until its second observation
    assert answers.spread_deltas(second, third) == {"B": None}


def test_q5_delta_is_absolute() -> None:
    assert answers.spread_deltas({"A": Decimal("0.01")}, {"A": Decimal("0.03")}) == {
        "A": Decimal("0.02")}
    assert answers.spread_deltas({"A": Decimal("0.03")}, {"A": Decimal("0.01")}) == {
        "A": Decimal("0.02")}


def test_long_values_are_ranked_summed_and_subtracted_exactly() -> None:
    """Decimal's default context keeps 28 digits: negating, multiplying or subtracting longer
    values rounded them, so two volumes that differ in the 29th digit tied (and the symbol
    decided), and a notional or spread came out rounded."""
    long_a, long_b = "100000000000000000000.00000001", "100000000000000000000.00000002"
    tied = [Ticker24h("AAABTC", Decimal(long_a), Decimal(long_a), 1),
            Ticker24h("BBBBTC", Decimal(long_b), Decimal(long_b), 1)]
    infos = {t.symbol: _info(t.symbol, "BTC") for t in tied}
    assert symbols(answers.top_by_volume(tied, infos)) == ["BBBBTC", "AAABTC"]
    assert symbols(answers.top_by_volume(tied, infos, rank_by="base")) == ["BBBBTC", "AAABTC"]
    book = OrderBook("XBTC", bids=((Decimal(long_a), Decimal("1.00000001")),), asks=(),
                     last_update_id=1)
    assert answers.book_notional(book, 1).bids == Decimal(
        "100000001000000000000.0000000100000001")
    assert answers.spread(top("0.00000001", long_a)) == Decimal("100000000000000000000")
    assert answers.spread_deltas({"A": Decimal(long_a)}, {"A": Decimal("0.00000001")}) == {
        "A": Decimal("100000000000000000000")}
