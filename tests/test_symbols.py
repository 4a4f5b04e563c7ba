"""Your own symbols (``--symbols``) and the whole market (``--spreads all``), in both modes,
against an in-process simulator whose clock stands still between steps: every value must
equal the market's exactly.

The simulator ranks ETHBTC, DOGEBTC, FETBTC, SOLBTC, WLDBTC (Q1) and BTCUSDT, FLOKIUSDT,
SHIBUSDT, WLDUSDT, 币安人生USDT (Q2); ADAUSDT and LTCBTC are in neither, 币安人生USDT has no
book unless asked for, BCCBTC is on BREAK and NOPE is not listed.
"""

from __future__ import annotations

import dataclasses
import io
import json
from decimal import Decimal
from typing import Any, Iterator
from urllib.parse import quote

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from test_bands import reference
from test_live import eventually, streaming

from binance_simulator.testkit import InProcessSimulator, serving_in_process
from collector import answers, report
from collector.binance import BinanceClient
from collector.exporter import BinanceCollector
from collector.models import parse_book_tickers, parse_order_book
from collector.records import STREAM, Settings, Snapshot
from collector.rest_source import RestSource
from collector.source import Source
from collector.stream_client import BOOK_TICKER, stream_name

CHOSEN = ("ADAUSDT", "LTCBTC", "币安人生USDT", "BCCBTC", "NOPE")
FOLLOWED = {"ADAUSDT": True, "LTCBTC": True, "币安人生USDT": True, "BCCBTC": False,
            "NOPE": False}


def market_notional(sim: InProcessSimulator, symbol: str) -> answers.Notional:
    book = parse_order_book(sim.get(f"/api/v3/depth?symbol={quote(symbol)}&limit=200"), symbol)
    return answers.book_notional(book, 200)


def market_spread(sim: InProcessSimulator, symbol: str) -> Decimal | None:
    """Worked out from the raw JSON, not through the exporter's parser."""
    raw = sim.get(f"/api/v3/ticker/bookTicker?symbol={quote(symbol)}")
    bid, ask = Decimal(raw["bidPrice"]), Decimal(raw["askPrice"])
    return ask - bid if 0 < bid < ask else None


def families(source: Source) -> dict[str, list[Any]]:
    registry = CollectorRegistry()
    registry.register(BinanceCollector(source))
    text = generate_latest(registry).decode()
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def assert_followed_as_the_market(snapshot: Snapshot, sim: InProcessSimulator) -> None:
    ranked = snapshot.rankings.value
    assert ranked is not None and not snapshot.errors()
    q1, q2 = [t.symbol for t in ranked.by_volume], [t.symbol for t in ranked.by_trades]
    assert not {"ADAUSDT", "LTCBTC"} & {*q1, *q2} and "币安人生USDT" in q2
    books, spreads = snapshot.books.value, snapshot.spreads.value
    assert books is not None and spreads is not None
    assert list(books) == [*q1, "ADAUSDT", "LTCBTC", "币安人生USDT"]
    assert list(spreads.spreads) == [*q2, "ADAUSDT", "LTCBTC"]
    for symbol in ("ADAUSDT", "LTCBTC", "币安人生USDT"):
        assert books[symbol] == market_notional(sim, symbol)
        assert spreads.spreads.get(symbol, market_spread(sim, symbol)) == \
            market_spread(sim, symbol)
    assert snapshot.followed == FOLLOWED


def assert_metrics(source: Source) -> None:
    found = families(source)
    assert {s.labels["symbol"]: s.value for s in found["binance_symbol_followed"]} == {
        symbol: 1.0 if ok else 0.0 for symbol, ok in FOLLOWED.items()}
    assert found["binance_up"][0].value == 1
    ranked = {s.labels["symbol"] for s in found["binance_symbol_rank"]}
    assert len(ranked) == 10 and not {"ADAUSDT", "LTCBTC"} & ranked
    spread = {s.labels["symbol"]: s for s in found["binance_price_spread"]}
    assert spread["ADAUSDT"].labels["quote_asset"] == "USDT"
    notional = {(s.labels["symbol"], s.labels["side"]): s for s in
                found["binance_order_book_notional"]}
    assert notional["LTCBTC", "bid"].labels["quote_asset"] == "BTC"
    assert ("币安人生USDT", "ask") in notional


@pytest.fixture(name="sim")
def fixture_sim() -> Iterator[InProcessSimulator]:
    with serving_in_process(weight_limit=1_000_000) as sim:
        yield sim


def rest_source(sim: InProcessSimulator, settings: Settings) -> RestSource:
    return RestSource(BinanceClient([sim.url], timeout=5, retries=0), settings, on_sample=None)


def test_rest_follows_chosen_symbols_exactly_and_names_those_left_out(
        sim: InProcessSimulator, caplog: pytest.LogCaptureFixture) -> None:
    source = rest_source(sim, Settings(symbols=CHOSEN))
    try:
        assert_followed_as_the_market(source.snapshot(), sim)
        assert_metrics(source)
    finally:
        source.close()
    left_out = [r.getMessage() for r in caplog.records if "--symbols" in r.getMessage()]
    assert left_out == ["--symbols left out, not a TRADING symbol of Binance: BCCBTC, NOPE"]


def test_stream_follows_chosen_symbols_exactly() -> None:
    with streaming(exporter=Settings(source=STREAM, symbols=CHOSEN)) as stream:
        stream.synced()
        assert_followed_as_the_market(stream.step(), stream.sim)
        assert_metrics(stream.source)


def test_a_lower_case_symbol_gets_a_hint(sim: InProcessSimulator,
                                         caplog: pytest.LogCaptureFixture) -> None:
    source = rest_source(sim, Settings(symbols=("ethbtc",)))
    try:
        assert source.snapshot().followed == {"ethbtc": False}
    finally:
        source.close()
    assert "ethbtc (symbols are case-sensitive: ETHBTC?)" in caplog.text


def trading(sim: InProcessSimulator) -> set[str]:
    return {s["symbol"] for s in sim.get("/api/v3/exchangeInfo")["symbols"]
            if s["status"] == "TRADING"}


def test_rest_spreads_all_gives_every_trading_symbol_from_one_call(
        sim: InProcessSimulator) -> None:
    source = rest_source(sim, Settings(all_spreads=True))
    try:
        sim.control.reset_stats()
        snapshot = source.snapshot()
    finally:
        source.close()
    requests = sim.control.stats()["requests"]["/api/v3/ticker/bookTicker"]
    assert sum(requests.values()) == 1  # one call, before the checks' own
    spreads = snapshot.spreads.value
    assert spreads is not None and not snapshot.errors()
    every = trading(sim)
    assert set(spreads.spreads) == every and len(every) > 1000  # and none other
    tops = sim.get("/api/v3/ticker/bookTicker")
    assert len(tops) > len(every)  # the answer has BREAK symbols too: left out
    for raw in tops:
        if raw["symbol"] in every:
            bid, ask = Decimal(raw["bidPrice"]), Decimal(raw["askPrice"])
            assert spreads.spreads[raw["symbol"]] == (ask - bid if 0 < bid < ask else None)


def test_the_report_prints_chosen_symbols_after_q1_to_q4(sim: InProcessSimulator) -> None:
    settings = Settings(symbols=CHOSEN, ttl_spreads=1e9)
    source = rest_source(sim, settings)
    out = io.StringIO()
    try:
        assert report.run(source, fmt="text", count=0, interval=10, out=out)
    finally:
        source.close()
    text = out.getvalue()
    assert text.index("Q4  ") < text.index("Your symbols (--symbols)")
    rows = text.split("Your symbols (--symbols)")[1].splitlines()
    ada = parse_book_tickers([sim.get("/api/v3/ticker/bookTicker?symbol=ADAUSDT")])["ADAUSDT"]
    notional = market_notional(sim, "ADAUSDT")
    assert rows[2].split() == ["ADAUSDT", "USDT", answers.plain(ada.bid_price),
                               answers.plain(ada.ask_price),
                               answers.plain(market_spread(sim, "ADAUSDT")),
                               answers.plain(notional.bids), answers.plain(notional.asks)]
    assert rows[5] == "  left out, not a TRADING symbol of Binance: BCCBTC NOPE"
    q3 = text.split("Q3  ")[1].split("Q4  ")[0]
    assert "ADAUSDT" not in q3  # Q3 and Q4 stay the ranked symbols'


def test_the_report_json_carries_chosen_symbols_and_the_market(
        sim: InProcessSimulator) -> None:
    source = rest_source(sim, Settings(symbols=CHOSEN, all_spreads=True, ttl_spreads=1e9))
    out = io.StringIO()
    try:
        assert report.run(source, fmt="json", count=0, interval=10, out=out)
    finally:
        source.close()
    answer = json.loads(out.getvalue())
    assert answer["symbols"]["NOPE"] == {"followed": False}
    ltc = answer["symbols"]["LTCBTC"]
    notional = market_notional(sim, "LTCBTC")
    assert ltc == {"followed": True, "quote_asset": "BTC",
                   "spread": answers.plain(market_spread(sim, "LTCBTC")),
                   "order_book_notional": {"bids": answers.plain(notional.bids),
                                           "asks": answers.plain(notional.asks),
                                           "bid_levels": 200, "ask_levels": 200}}
    assert "ADAUSDT" not in answer["order_book_notional"]
    market = answer["market"]
    assert {row["symbol"] for row in market} == trading(sim)
    ratios = [Decimal(row["spread_ratio"]) for row in market if row["spread_ratio"]]
    assert ratios == sorted(ratios) and len(ratios) > 500  # tightest first
    assert all(row["spread"] is None for row in market[len(ratios):])  # none last


def open_connections(sim: InProcessSimulator) -> list[dict[str, Any]]:
    """The simulator's connection log: the connections open now."""
    return [c for c in sim.control.connections()
            if c["outcome"] == "accepted" and c["closed_at"] is None]


def test_stream_spreads_all_spreads_the_market_over_connections_of_1024_streams() -> None:
    """Every TRADING symbol's bookTicker: more than Binance's 1,024 streams on one
    connection, so a second one carries the rest (the simulator refuses a 1,025th). A
    spread is published once its stream has pushed a best bid/ask, and equals the
    market's; the Q2 symbols' are required before the spreads count as known."""
    with streaming(exporter=Settings(source=STREAM, all_spreads=True)) as stream:
        stream.synced()
        every = trading(stream.sim)

        # a connection's URL names its first streams, the rest are subscribed once it is
        # open, a paced request at a time: synced() waited for the first connection's (it
        # carries the Q2 symbols), nothing yet for the second's
        def all_subscribed() -> bool:
            opened = open_connections(stream.sim)
            return len(opened) == 2 and sum(len(c["streams"]) for c in opened) == len(every) + 5
        eventually(all_subscribed, "every stream subscribed, on two connections")

        def as_the_market() -> dict[str, Decimal | None] | None:
            snapshot = stream.snapshot()
            spreads = snapshot.spreads.value
            if not snapshot.spreads.ok or spreads is None:
                return None
            market = {}
            for raw in stream.sim.get("/api/v3/ticker/bookTicker"):
                bid, ask = Decimal(raw["bidPrice"]), Decimal(raw["askPrice"])
                market[raw["symbol"]] = ask - bid if 0 < bid < ask else None
            if any(value is not None and value != market[symbol]
                   for symbol, value in spreads.spreads.items()):
                return None
            return dict(spreads.spreads)

        for _ in range(3):
            stream.sim.step(1)
            found = eventually(as_the_market, "every spread pushed, as the market's")
        assert set(found) == every
        assert len([value for value in found.values() if value is not None]) > 500
        opened = open_connections(stream.sim)
        sizes = sorted(len(c["streams"]) for c in opened)
        assert len(opened) == 2 and sizes[-1] == 1024 and sum(sizes) == len(every) + 5
        assert stream.view().health.connected


def test_a_lost_second_connection_withdraws_only_its_own_spreads() -> None:
    with streaming(exporter=Settings(source=STREAM, all_spreads=True)) as stream:
        stream.synced()
        last = sorted(s for s in trading(stream.sim) if s.isascii())[-1]  # on the second
        name = stream_name(last, BOOK_TICKER)
        # subscribed by one of the requests the second connection sends once open, paced: a
        # fault for the stream cuts only a connection that carries it already
        eventually(lambda: any(name in c["streams"] for c in open_connections(stream.sim)),
                   f"{name} subscribed")
        # the second connection is cut, and new connections are refused until the test says:
        # the exporter reconnects at once after a connection that was healthy, and could be
        # back before the withdrawal is looked at. The first connection stays up (only
        # attempts are refused)
        stream.sim.control.set_faults([{"name": "ws_close", "rate": 1, "streams": [name]},
                                       {"name": "ws_refuse", "rate": 1}])
        stream.sim.step(1)

        def withdrawn() -> Snapshot | None:
            snapshot = stream.snapshot()
            spreads = snapshot.spreads.value
            health = snapshot.health.stream
            if spreads is None or health is None or health.connected \
                    or spreads.spreads.get(last) is not None:
                return None
            return snapshot
        snapshot = eventually(withdrawn, "the second connection's spreads withdrawn")
        spreads = snapshot.spreads.value
        assert spreads is not None and snapshot.spreads.ok  # the first one still serves
        assert spreads.spreads["BTCUSDT"] == market_spread(stream.sim, "BTCUSDT")
        assert snapshot.books.ok  # the books are on the first connection
        stream.sim.control.clear_faults()

        def back() -> bool:
            stream.sim.step(1)
            health = stream.view().health
            return health.connected and health.reconnects["closed"] + \
                health.reconnects["error"] >= 1
        eventually(back, "the second connection back")


def test_the_report_in_stream_mode_carries_chosen_symbols_and_bands() -> None:
    """The report reads the same Source in stream mode: the chosen symbols' spreads,
    notionals and bands are the market's at the step it printed."""
    settings = Settings(source=STREAM, symbols=CHOSEN, depth_bands=("0.5", "2"))
    with streaming(exporter=settings) as stream:
        def as_the_market() -> bool:
            snapshot = stream.snapshot()
            books = snapshot.books.value
            return snapshot.books.ok and snapshot.spreads.ok and books is not None and all(
                d.bids_complete and d.asks_complete
                for book in books.values() for d in book.bands.values()) and \
                dataclasses.replace(books["ADAUSDT"], bands={}) == \
                market_notional(stream.sim, "ADAUSDT")

        def step_until_settled() -> bool:
            stream.sim.step(1)  # a book dropped for a deeper snapshot needs events
            try:
                return eventually(as_the_market, "settled", deadline=2.0)
            except AssertionError:
                return False

        eventually(step_until_settled, "every book synced, its bands complete")
        printed = {}
        for fmt in ("json", "text"):
            out = io.StringIO()
            assert report.run(stream.source, fmt=fmt, count=0, interval=10, out=out)
            printed[fmt] = out.getvalue()
        sim = stream.sim
        answer = json.loads(printed["json"])
        ada = answer["symbols"]["ADAUSDT"]
        notional = market_notional(sim, "ADAUSDT")
        assert ada["spread"] == answers.plain(market_spread(sim, "ADAUSDT"))
        assert (ada["order_book_notional"]["bids"], ada["order_book_notional"]["asks"]) == (
            answers.plain(notional.bids), answers.plain(notional.asks))
        whole = reference(sim, "ADAUSDT")
        bands = ada["order_book_notional"]["bands"]
        assert {band: (Decimal(d["bids"]), Decimal(d["asks"]), d["bids_complete"],
                       d["asks_complete"]) for band, d in bands.items()} == {
            band: whole[band] for band in ("0.5", "2")}
        assert answer["symbols"]["NOPE"] == {"followed": False}
        text = printed["text"]
        assert "Your symbols (--symbols)" in text and "(--depth-bands)" in text
        assert "  left out, not a TRADING symbol of Binance: BCCBTC NOPE" in text
