"""Depth within ±x % of mid (``--depth-bands``): the sums, when they are complete, the depth
limit each book is asked with, and both sources against the simulator, exactly.

The reference sums here are written out with plain loops, apart from
:func:`collector.answers.depth_bands`.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
from decimal import Decimal
from typing import Any, Callable, Iterator
from urllib.parse import quote

import pytest
from test_live import eventually, streaming

from binance_simulator.testkit import InProcessSimulator, serving_in_process
from collector import answers, report
from collector.binance import BinanceClient
from collector.costs import DepthLimits
from collector.models import parse_order_book
from collector.records import STREAM, BandDepth, Level, Notional, Settings
from collector.rest_source import RestSource


def levels(*pairs: tuple[str, str]) -> tuple[Level, ...]:
    return tuple((Decimal(price), Decimal(qty)) for price, qty in pairs)


# mid 100: ±1 % is [99, 101], ±5 % is [95, 105]
BIDS = levels(("99.5", "2"), ("99", "1"), ("98", "4"), ("94", "10"))
ASKS = levels(("100.5", "1"), ("101", "3"), ("101.01", "5"))


def test_a_band_sums_the_levels_at_or_inside_its_edges_exactly() -> None:
    bands = answers.depth_bands(BIDS, ASKS, ("1", "5"))
    assert bands["1"] == BandDepth(bids=Decimal("99.5") * 2 + 99, asks=Decimal("100.5") + 303,
                                   bid_levels=2, ask_levels=2,  # 99 and 101: on the edge, in
                                   bids_complete=True, asks_complete=True)
    assert bands["5"] == BandDepth(bids=Decimal(199 + 99 + 392), asks=Decimal("908.55"),
                                   bid_levels=3, ask_levels=3,
                                   bids_complete=True, asks_complete=True)


def test_a_side_that_ends_inside_the_band_is_a_floor_unless_it_is_the_whole_side() -> None:
    bounded = answers.depth_bands(BIDS, ASKS, ("5",), whole=(False, False))["5"]
    assert (bounded.bids_complete, bounded.asks_complete) == (True, False)  # 94 is past 95
    whole = answers.depth_bands(BIDS, ASKS, ("5",), whole=(False, True))["5"]
    assert whole.asks_complete and whole.asks == bounded.asks


def test_the_band_label_is_kept_as_given_and_exact_for_odd_mids() -> None:
    bids, asks = levels(("0.00000001", "3")), levels(("0.00000002", "7"))
    bands = answers.depth_bands(bids, asks, ("0.50", "50"))
    assert set(bands) == {"0.50", "50"}
    assert bands["50"].bids == Decimal("0.00000003")  # mid 0.000000015: edge 0.0000000075
    assert bands["50"].asks == Decimal("0.00000014")  # edge 0.0000000225
    assert bands["0.50"].bid_levels == 0 and bands["0.50"].asks == 0


@pytest.mark.parametrize(("bids", "asks"), [
    ((), ASKS), (BIDS, ()), (levels(("100.5", "1")), ASKS), (levels(("101", "1")), ASKS)])
def test_no_mid_no_bands(bids: tuple[Level, ...], asks: tuple[Level, ...]) -> None:
    assert not answers.depth_bands(bids, asks, ("1",))


def notional(band: BandDepth) -> Notional:
    return Notional("X", Decimal(0), Decimal(0), 0, 0, {"2": band})


def test_depth_limits_learn_the_smallest_weight_that_reaches_the_widest_band() -> None:
    plain = DepthLimits(200)
    assert plain.limit("X") == plain.most == 200  # no bands: as today
    limits = DepthLimits(200, ("0.5", "2"))
    assert (limits.limit("X"), limits.most) == (500, 5000)  # 200 costs what 500 does
    short = BandDepth(Decimal(1), Decimal(1), 500, 40, False, True)
    assert limits.learn("X", 500, notional(short)) == 1000  # the edge not reached: deeper
    assert limits.learn("X", 1000, notional(short)) == 5000
    assert limits.learn("X", 5000, notional(short)) == 5000  # Binance's most
    reached = BandDepth(Decimal(1), Decimal(1), 612, 80, True, True)
    assert limits.learn("X", 5000, notional(reached)) == 1000  # 613 levels show the edge
    assert limits.learn("X", 1000, notional(BandDepth(Decimal(1), Decimal(1), 3, 9, True,
                                                      True))) == 500  # never under 200
    assert limits.learn("X", 500, Notional("X", Decimal(0), Decimal(0), 0, 0)) == 500  # no mid
    assert limits.limit("Y") == 500


# -- against the simulator ------------------------------------------------------------------

BANDS = ("0.5", "2", "30")


def reference(sim: InProcessSimulator, symbol: str, limit: int = 5000
              ) -> dict[str, tuple[Decimal, Decimal, bool, bool]]:
    """(bids, asks, bids complete, asks complete) per band, from the simulator's own depth
    answer of ``limit`` levels, summed with loops."""
    raw: dict[str, Any] = sim.get(f"/api/v3/depth?symbol={quote(symbol)}&limit={limit}")
    bids = [(Decimal(p), Decimal(q)) for p, q in raw["bids"]]
    asks = [(Decimal(p), Decimal(q)) for p, q in raw["asks"]]
    mid = (bids[0][0] + asks[0][0]) / 2
    found = {}
    for band in BANDS:
        low = mid * (1 - Decimal(band) / 100)
        high = mid * (1 + Decimal(band) / 100)
        bid_sum, bids_past = side_sum(bids, lambda price, edge=low: price >= edge)
        ask_sum, asks_past = side_sum(asks, lambda price, edge=high: price <= edge)
        found[band] = (bid_sum, ask_sum, bids_past or len(bids) < limit,
                       asks_past or len(asks) < limit)
    return found


def side_sum(side: list[tuple[Decimal, Decimal]], inside: Callable[[Decimal], bool]
             ) -> tuple[Decimal, bool]:
    """Σ price × quantity of the levels inside; whether a level outside is known."""
    total, past = Decimal(0), False
    for price, qty in side:
        if inside(price):
            total += price * qty
        else:
            past = True
    return total, past


def shown(notional: Notional) -> dict[str, tuple[Decimal, Decimal, bool, bool]]:
    return {band: (d.bids, d.asks, d.bids_complete, d.asks_complete)
            for band, d in notional.bands.items()}


@pytest.fixture(name="sim")
def fixture_sim() -> Iterator[InProcessSimulator]:
    with serving_in_process(weight_limit=1_000_000) as sim:
        yield sim


def test_rest_bands_equal_the_reference_and_go_deeper_until_complete(
        sim: InProcessSimulator) -> None:
    """SOLBTC's 500, then 1,000 best levels do not reach 30 % of mid: those answers are
    floors (complete 0), and each refresh asks for the next larger limit until the edge
    is passed (here at 5,000, the whole book). Every complete band is the whole book's."""
    settings = Settings(depth_bands=BANDS, ttl_books=10.0, symbols=("ADAUSDT",))
    clock = [0.0]
    source = RestSource(BinanceClient([sim.url], timeout=5, retries=0), settings,
                        clock=lambda: clock[0], on_sample=None)
    seen = []
    try:
        for limit in (500, 1000, 5000, 5000):
            books = source.snapshot().books.value
            assert books is not None and len(books) == 6
            expected = reference(sim, "SOLBTC", limit)
            assert shown(books["SOLBTC"]) == expected
            seen.append(expected["30"][2:])
            for symbol, book in books.items():
                whole = reference(sim, symbol)
                for band, depth in book.bands.items():
                    assert not depth.bids_complete or depth.bids == whole[band][0]
                    assert not depth.asks_complete or depth.asks == whole[band][1]
                q3 = answers.book_notional(parse_order_book(sim.get(
                    f"/api/v3/depth?symbol={quote(symbol)}&limit=200"), symbol), 200)
                assert dataclasses.replace(book, bands={}) == q3  # unchanged by the limit
            clock[0] += 10.0
    finally:
        source.close()
    assert seen == [(False, False), (False, False), (True, True), (True, True)]


def test_stream_bands_equal_the_whole_books_once_deep_enough() -> None:
    """Each snapshot that stops short of the widest band is dropped for a deeper one
    (resync reason ``band``); then every band is complete and equals the simulator's."""
    with streaming(exporter=Settings(source=STREAM, depth_bands=BANDS)) as stream:
        def as_the_market() -> dict[str, Notional] | None:
            books = stream.snapshot().books
            if not books.ok or books.value is None or any(
                    shown(book) != reference(stream.sim, symbol)
                    for symbol, book in books.value.items()):
                return None
            return dict(books.value)

        def step_until_complete() -> dict[str, Notional] | None:
            stream.sim.step(1)  # events: a book dropped for a deeper snapshot asks for one
            try:
                return eventually(as_the_market, "the market's bands", deadline=2.0)
            except AssertionError:
                return None

        books = eventually(step_until_complete, "every band complete, as the market's")
        assert all(d.bids_complete and d.asks_complete
                   for book in books.values() for d in book.bands.values())
        health = stream.view().health
        resyncs = {key for key, count in health.resyncs.items() if count}
        assert {reason for _, reason in resyncs} == {"band"}
        assert ("ETHBTC", "band") in resyncs


def test_the_report_asks_once_as_deep_as_binance_allows_and_prints_every_band(
        sim: InProcessSimulator) -> None:
    settings = Settings(depth_bands=BANDS, symbols=("ADAUSDT",), ttl_books=math.inf,
                        ttl_rankings=math.inf, ttl_exchange=math.inf, ttl_spreads=math.inf)
    for fmt in ("json", "text"):
        source = RestSource(BinanceClient([sim.url], timeout=5, retries=0), settings,
                            on_sample=None)
        out = io.StringIO()
        try:
            assert report.run(source, fmt=fmt, count=0, interval=10, out=out)
        finally:
            source.close()
        if fmt == "json":
            answer = json.loads(out.getvalue())
            books = {**answer["order_book_notional"],
                     "ADAUSDT": answer["symbols"]["ADAUSDT"]["order_book_notional"]}
            assert len(books) == 6
            for symbol, book in books.items():
                assert {band: (Decimal(d["bids"]), Decimal(d["asks"]), d["bids_complete"],
                               d["asks_complete"]) for band, d in book["bands"].items()} \
                    == reference(sim, symbol)
        else:
            table = out.getvalue().split("(--depth-bands)")[1].splitlines()[2:]
            sol = reference(sim, "SOLBTC")["30"]
            assert ["SOLBTC", "BTC", "±30", "%", answers.plain(sol[0]),
                    answers.plain(sol[1])] in [row.split() for row in table]
            assert len(table) == 6 * len(BANDS)
