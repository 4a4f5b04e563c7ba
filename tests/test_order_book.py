"""LocalBook: a symbol's order book from a REST snapshot plus @depth events, per Binance's
"How to manage a local order book correctly", with the decisions of collector/order_book.py.

Small books first (one rule a test), then a hypothesis property against a dict model of the
true book, then the simulator's own snapshots and events, in process, step after step.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from binance_simulator.market import SimulatedMarket
from binance_simulator.events import EventFeed
from binance_simulator.testkit import FakeClock
from collector.answers import book_notional
from collector.models import (
    parse_book_ticker_event,
    parse_book_tickers,
    parse_depth_update,
    parse_order_book,
)
from collector.order_book import CROSSED, GAP, ONE_SIDED, STALE, THIN, LocalBook
from collector.records import DepthUpdate, Level, Notional, OrderBook

SYMBOL = "XBTC"


def levels(*pairs: tuple[str, str]) -> tuple[Level, ...]:
    return tuple((Decimal(price), Decimal(qty)) for price, qty in pairs)


def snapshot(last_update_id: int, bids: tuple[Level, ...] = (),
             asks: tuple[Level, ...] = ()) -> OrderBook:
    return OrderBook(SYMBOL, bids, asks, last_update_id)


def event(first: int, last: int, bids: tuple[Level, ...] = (),
          asks: tuple[Level, ...] = ()) -> DepthUpdate:
    return DepthUpdate(SYMBOL, first, last, bids, asks)


def notional_of(bids: tuple[Level, ...], asks: tuple[Level, ...], count: int) -> Notional:
    """What the REST path computes for a book with these levels, best first."""
    return book_notional(OrderBook(SYMBOL, bids, asks, 0), count)


# A bounded ask side (4 levels = the snapshot limit) and a complete bid side (2 levels).
BIDS = levels(("9.5", "1"), ("9", "2"))
ASKS = levels(("10", "1"), ("10.5", "2"), ("11", "3"), ("12", "4"))


def synced_book(last_update_id: int = 100) -> LocalBook:
    book = LocalBook(SYMBOL, levels=2, snapshot_limit=4)
    assert book.on_snapshot(snapshot(last_update_id, BIDS, ASKS)) is None
    return book


# -- sync ---------------------------------------------------------------------------------


def test_events_are_buffered_until_a_snapshot_then_applied() -> None:
    book = LocalBook(SYMBOL, levels=2, snapshot_limit=4)
    assert (book.synced, book.update_id, book.first_buffered, book.notional()) == (
        False, None, None, None)
    assert book.on_event(event(95, 98)) is None  # before the snapshot: dropped at sync
    assert book.on_event(event(99, 102, bids=levels(("9.5", "5")))) is None  # spans 101
    assert book.on_event(event(103, 103, asks=levels(("10", "0")))) is None
    assert (book.synced, book.first_buffered) == (False, 95)
    assert book.on_snapshot(snapshot(100, BIDS, ASKS)) is None
    assert (book.synced, book.update_id, book.first_buffered) == (True, 103, None)
    assert book.notional() == notional_of(levels(("9.5", "5"), ("9", "2")),
                                          levels(("10.5", "2"), ("11", "3")), 2)


def test_a_snapshot_just_before_the_first_event_is_accepted() -> None:
    """lastUpdateId == U - 1: Binance's step 4 would fetch again forever; the snapshot is
    exactly the book the event applies to (the simulator always serves this case)."""
    book = LocalBook(SYMBOL, levels=2, snapshot_limit=4)
    book.on_event(event(101, 104, bids=levels(("9", "0"))))
    assert book.on_snapshot(snapshot(100, BIDS, ASKS)) is None
    assert book.update_id == 104
    assert book.notional() == notional_of(BIDS[:1], ASKS, 2)


def test_a_snapshot_older_than_the_first_event_is_stale_and_the_buffer_kept() -> None:
    book = LocalBook(SYMBOL, levels=2, snapshot_limit=4)
    book.on_event(event(101, 104))
    book.on_event(event(105, 106, asks=levels(("10", "7"))))
    assert book.on_snapshot(snapshot(99, BIDS, ASKS)) == STALE
    assert (book.synced, book.first_buffered, book.notional()) == (False, 101, None)
    assert book.on_snapshot(snapshot(104, BIDS, ASKS)) is None  # drops the first event
    assert book.update_id == 106
    assert book.notional() == notional_of(BIDS, levels(("10", "7"), ("10.5", "2")), 2)


def test_a_snapshot_newer_than_every_event_syncs_at_its_own_id() -> None:
    book = LocalBook(SYMBOL, levels=2, snapshot_limit=4)
    book.on_event(event(101, 104, asks=levels(("10", "0"))))
    assert book.on_snapshot(snapshot(110, BIDS, ASKS)) is None
    assert (book.update_id, book.first_buffered) == (110, None)
    assert book.notional() == notional_of(BIDS, ASKS, 2)  # the dropped event changed nothing


@pytest.mark.parametrize(("first", "last", "expected"), [
    (102, 105, GAP),  # starts after 101: events were missed
    (101, 101, None),
    (95, 101, None),  # spans 101
    (90, 100, None),  # old: ignored, the next one must still span
])
def test_the_first_event_after_the_snapshot_must_span_its_id_plus_one(
        first: int, last: int, expected: str | None) -> None:
    book = synced_book(100)
    assert book.on_event(event(first, last, asks=levels(("10", "9")))) == expected
    if expected == GAP:
        assert (book.synced, book.update_id, book.first_buffered) == (False, None, first)
        assert book.notional() is None
    else:
        assert book.synced and book.update_id == max(100, last)


# -- once synced --------------------------------------------------------------------------


def test_every_later_event_starts_right_after_the_previous_one() -> None:
    book = synced_book(100)
    assert book.on_event(event(99, 105)) is None
    assert book.on_event(event(106, 108)) is None
    assert book.on_event(event(107, 110)) == GAP  # overlaps: not u + 1 of the previous one
    assert (book.synced, book.first_buffered) == (False, 107)
    book = synced_book(100)
    book.on_event(event(99, 105))
    assert book.on_event(event(107, 110)) == GAP  # skips 106
    assert (book.synced, book.first_buffered) == (False, 107)


def test_after_a_gap_the_event_that_showed_it_is_the_first_of_the_next_sync() -> None:
    book = synced_book(100)
    book.on_event(event(101, 102))
    assert book.on_event(event(110, 111, bids=levels(("9.5", "4")))) == GAP
    assert book.on_event(event(112, 112, bids=levels(("9", "3")))) is None
    assert book.on_snapshot(snapshot(109, BIDS, ASKS)) is None
    assert book.update_id == 112
    assert book.notional() == notional_of(levels(("9.5", "4"), ("9", "3")), ASKS, 2)


@pytest.mark.parametrize(("bids", "asks", "reason"), [
    ((), ASKS, ONE_SIDED),
    (BIDS, (), ONE_SIDED),
    ((), (), ONE_SIDED),
    (levels(("10", "1"), ("9", "2")), ASKS, CROSSED),  # locked: best bid = best ask
    (levels(("9.5", "1"), ("10.7", "2")), ASKS, CROSSED),  # out of order, still crossed
])
def test_a_one_sided_or_crossed_snapshot_is_refused_and_the_buffer_kept(
        bids: tuple[Level, ...], asks: tuple[Level, ...], reason: str) -> None:
    """Events carry only the levels that change: a book synced on such a snapshot would
    stay wrong until its next resync, so it is never synced on one."""
    book = LocalBook(SYMBOL, levels=2, snapshot_limit=4)
    book.on_event(event(101, 104, asks=levels(("10", "7"))))
    assert book.on_snapshot(snapshot(100, bids, asks)) == reason
    assert (book.synced, book.first_buffered, book.notional()) == (False, 101, None)
    assert book.on_snapshot(snapshot(100, BIDS, ASKS)) is None
    assert book.notional() == notional_of(BIDS, levels(("10", "7"), ("10.5", "2")), 2)


def test_an_event_that_crosses_the_book_drops_it_like_a_gap() -> None:
    book = synced_book(100)
    assert book.on_event(event(101, 101, bids=levels(("10", "1")))) == CROSSED  # locked
    assert (book.synced, book.first_buffered, book.notional()) == (False, 101, None)
    assert book.on_snapshot(snapshot(101, BIDS, ASKS)) is None
    assert book.on_event(event(102, 102, bids=levels(("9.9", "1")))) is None  # not crossed
    assert book.notional() == notional_of(levels(("9.9", "1"), ("9.5", "1")), ASKS, 2)


def test_crossed_while_applying_the_buffer_keeps_the_rest_buffered() -> None:
    book = LocalBook(SYMBOL, levels=2, snapshot_limit=4)
    book.on_event(event(101, 101, asks=levels(("9", "1"))))
    book.on_event(event(102, 102))
    assert book.on_snapshot(snapshot(100, BIDS, ASKS)) == CROSSED
    assert (book.synced, book.first_buffered) == (False, 101)


def test_old_and_repeated_events_are_ignored() -> None:
    book = synced_book(100)
    change = event(101, 103, asks=levels(("10", "5")))
    assert book.on_event(change) is None
    before = book.notional()
    for stale in (change, event(101, 103, asks=levels(("10", "6"))), event(90, 95)):
        assert book.on_event(stale) is None
    assert (book.update_id, book.notional()) == (103, before)


def test_quantity_zero_removes_a_level_and_others_are_set() -> None:
    book = synced_book(100)
    assert book.on_event(event(101, 101, bids=levels(("9.5", "0"), ("9.75", "0.5"),
                                                     ("8", "0")),  # never there: no-op
                               asks=levels(("10", "0.00000000"), ("10.5", "8")))) is None
    assert book.notional() == notional_of(levels(("9.75", "0.5"), ("9", "2")),
                                          levels(("10.5", "8"), ("11", "3")), 2)
    book.on_event(event(102, 102, bids=levels(("9.75", "0"), ("9", "0"))))
    assert book.notional() == notional_of((), levels(("10.5", "8"), ("11", "3")), 2)


def test_prices_written_differently_are_one_level() -> None:
    """Binance writes "10.00000000"; the same price written "10" is the same level."""
    book = synced_book(100)
    book.on_event(event(101, 101, asks=levels(("10.00000000", "0"))))
    assert book.notional() == notional_of(BIDS, ASKS[1:3], 2)


# -- what a snapshot tells ----------------------------------------------------------------


def test_levels_past_a_full_snapshot_side_are_not_trusted() -> None:
    """The ask side came with snapshot_limit levels, so nothing past 12 is known: a level
    an event sets there is never summed; the book turns thin rather than count it."""
    book = synced_book(100)
    assert book.on_event(event(101, 101, asks=levels(("13", "5"), ("11", "1")))) is None
    assert book.on_event(event(102, 102, asks=levels(("10", "0"), ("10.5", "0")))) is None
    assert book.notional() == notional_of(BIDS, levels(("11", "1"), ("12", "4")), 2)
    assert book.on_event(event(103, 103, asks=levels(("11", "0")))) == THIN  # not 12 + 13
    assert (book.synced, book.first_buffered) == (False, 103)


def test_a_thin_book_syncs_again_from_a_new_snapshot() -> None:
    book = synced_book(100)
    assert book.on_event(event(101, 101, asks=levels(("10", "0"), ("10.5", "0"),
                                                     ("11", "0")))) == THIN
    book.on_event(event(102, 102, asks=levels(("13", "1"))))
    fresh = levels(("11.5", "1"), ("12", "4"), ("13", "1"), ("14", "1"))
    assert book.on_snapshot(snapshot(101, BIDS, fresh)) is None
    assert book.update_id == 102
    assert book.notional() == notional_of(BIDS, fresh[:2], 2)


def test_thin_while_applying_the_buffer_keeps_the_rest_buffered() -> None:
    book = LocalBook(SYMBOL, levels=2, snapshot_limit=4)
    book.on_event(event(101, 101, asks=levels(("10", "0"), ("10.5", "0"), ("11", "0"))))
    book.on_event(event(102, 102))
    assert book.on_snapshot(snapshot(100, BIDS, ASKS)) == THIN
    assert (book.synced, book.first_buffered) == (False, 101)
    assert book.on_snapshot(snapshot(101, BIDS, ASKS[2:] + levels(("13", "1"), ("14", "1"))))\
        is None
    assert book.update_id == 102


def test_a_side_shorter_than_the_snapshot_limit_is_complete_and_never_thin() -> None:
    book = synced_book(100)
    assert book.on_event(event(101, 101, bids=levels(("9.5", "0"), ("9", "0")))) is None
    assert book.notional() == notional_of((), ASKS, 2)
    assert book.on_event(event(102, 102, bids=levels(("5", "1")))) is None  # far, yet known
    assert book.notional() == notional_of(levels(("5", "1")), ASKS, 2)


def test_a_side_holds_at_most_snapshot_limit_levels() -> None:
    """Memory stays bounded: past snapshot_limit levels, the worst are cut off and the
    boundary moves in to the last one kept (every level up to it is still known)."""
    book = synced_book(100)
    grown = levels(("9.25", "1"), ("8", "1"), ("7", "1"), ("6", "1"))
    assert book.on_event(event(101, 101, bids=grown)) is None  # complete, 6 bids: 7, 6 cut
    assert book.notional() == notional_of(levels(("9.5", "1"), ("9.25", "1")), ASKS, 2)
    assert book.on_event(event(102, 102, bids=levels(("9.5", "0"), ("9.25", "0"),
                                                     ("6.5", "1")))) is None  # 6.5: past 8
    assert book.notional() == notional_of(levels(("9", "2"), ("8", "1")), ASKS, 2)
    assert book.on_event(event(103, 103, bids=levels(("9", "0")))) == THIN
    book = synced_book(100)
    assert book.on_event(event(101, 101, asks=levels(("11.5", "1")))) is None  # 12 cut
    assert book.on_event(event(102, 102, asks=levels(("10", "0"), ("10.5", "0")))) is None
    assert book.notional() == notional_of(BIDS, levels(("11", "3"), ("11.5", "1")), 2)
    assert book.on_event(event(103, 103, asks=levels(("11", "0")))) == THIN  # not 12 now


# -- buffer, reset, notional --------------------------------------------------------------


def test_the_buffer_is_bounded_and_contiguous() -> None:
    book = LocalBook(SYMBOL, levels=2, snapshot_limit=4, max_buffer=3)
    for first in range(101, 106):
        book.on_event(event(first, first))
    assert book.first_buffered == 103  # the oldest went first
    assert book.on_snapshot(snapshot(100, BIDS, ASKS)) == STALE
    book.on_event(event(104, 105))  # repeated: ignored
    assert book.first_buffered == 103
    book.on_event(event(107, 107))  # 106 missed: the buffer can no longer be applied
    assert book.first_buffered == 107
    assert book.on_snapshot(snapshot(106, BIDS, ASKS)) is None
    assert book.update_id == 107


def test_the_buffer_is_bounded_by_its_levels_too_and_keeps_the_newest_event() -> None:
    """Large events (a whole book each) must not grow memory while a snapshot is awaited:
    the oldest go once the levels buffered pass the bound; the buffer stays contiguous, and
    a single event larger than the bound is still kept (a book needs it to sync)."""
    book = LocalBook(SYMBOL, levels=2, snapshot_limit=4, max_buffered_levels=10)
    wide = levels(*((f"{9 - n / 10:.1f}", "1") for n in range(4)))  # 4 levels an event
    for first in range(101, 105):
        book.on_event(event(first, first, bids=wide))
    assert (book.first_buffered, book.buffered) == (103, (2, 8))  # 101, 102 went
    huge = levels(*((f"{9 - n / 100:.2f}", "1") for n in range(12)))
    book.on_event(event(105, 105, bids=huge))
    assert (book.first_buffered, book.buffered) == (105, (1, 12))  # alone, over the bound
    assert book.on_snapshot(snapshot(104, BIDS, ASKS)) is None
    assert book.update_id == 105 and book.buffered == (0, 0)


def test_reset_forgets_the_book_and_the_buffer() -> None:
    book = synced_book(100)
    book.reset()
    assert (book.synced, book.update_id, book.first_buffered, book.notional()) == (
        False, None, None, None)
    book.on_event(event(120, 121))
    book.reset()
    assert book.first_buffered is None


def test_notional_is_exact_and_kept_until_the_next_change() -> None:
    """Summed in answers' exact context: 28 digits would round these."""
    long_price = "100000000000000000000.00000001"
    book = LocalBook(SYMBOL, levels=2, snapshot_limit=4)
    high = "100000000000000000001"
    book.on_snapshot(snapshot(1, levels((long_price, "1.00000001"), ("1", "0.1")),
                              levels((high, "1"))))
    first = book.notional()
    assert first is not None
    assert first.bids == Decimal("100000001000000000000.1000000100000001")
    assert (first.bid_levels, first.ask_levels, first.asks) == (2, 1, Decimal(high))
    assert book.notional() is first  # cached
    book.on_event(event(2, 2, asks=levels((high + ".5", "3"))))
    assert book.notional() == notional_of(levels((long_price, "1.00000001"), ("1", "0.1")),
                                          levels((high, "1"), (high + ".5", "3")), 2)


@pytest.mark.parametrize(("count", "limit", "buffer", "buffered_levels"),
                         [(0, 4, 1, 1), (5, 4, 1, 1), (2, 4, 0, 1), (2, 4, 1, 0)])
def test_sizes_are_checked(count: int, limit: int, buffer: int, buffered_levels: int) -> None:
    with pytest.raises(ValueError):
        LocalBook(SYMBOL, levels=count, snapshot_limit=limit, max_buffer=buffer,
                  max_buffered_levels=buffered_levels)


# -- property: the local book's top is the true book's top ---------------------------------

PRICES = st.integers(1, 8)  # in tenths; an ask is 0.8 above: the true book never crosses
QTYS = st.sampled_from(["1", "2.5", "0.00000001", "7", "12345.6789"])
CHANGES = st.lists(st.tuples(st.booleans(), PRICES, QTYS | st.sampled_from(["0", "0.0"])),
                   max_size=8)
# one side of the first book: often deeper than a snapshot, with levels past its boundary
START = st.lists(st.tuples(PRICES, QTYS), min_size=1, max_size=16) \
    | st.lists(st.tuples(PRICES, QTYS), min_size=10, max_size=16)
STEPS = st.lists(st.tuples(st.sampled_from(["send", "send", "send", "lose", "repeat"]),
                           CHANGES, st.integers(1, 3)), max_size=25)


class Truth:
    """The true book, a dict per side (True: bids), and what the stream tells of it."""

    def __init__(self) -> None:
        self.sides: dict[bool, dict[Decimal, Decimal]] = {True: {}, False: {}}

    def change(self, changes: list[tuple[bool, int, str]]) -> tuple[tuple[Level, ...], ...]:
        """Apply ``changes``; the (bids, asks) an event sends for them. A side keeps its
        last level, as a market's does (a snapshot with an empty side is refused)."""
        sent: dict[bool, list[Level]] = {True: [], False: []}
        for is_bid, tenths, text in changes:
            side, qty = self.sides[is_bid], Decimal(text)
            price = Decimal(tenths + (0 if is_bid else 8)) / 10
            ordered = sorted(side, reverse=is_bid)
            if not qty and tenths <= len(ordered):
                price = ordered[tenths - 1]  # remove the n-th best: sides do run thin
            if qty:
                side[price] = qty
            elif len(side) > 1 or price not in side:
                side.pop(price, None)
            else:
                continue
            sent[is_bid].append((price, qty))
        return tuple(sent[True]), tuple(sent[False])

    def top(self, count: int) -> tuple[tuple[Level, ...], tuple[Level, ...]]:
        """The best ``count`` levels of each side, best first."""
        return (tuple(sorted(self.sides[True].items(), reverse=True)[:count]),
                tuple(sorted(self.sides[False].items())[:count]))

    def rest(self, update_id: int, limit: int) -> OrderBook:
        """A depth snapshot with ``limit`` levels a side."""
        return OrderBook(SYMBOL, *self.top(limit), update_id)


@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(start_bids=START, start_asks=START, steps=STEPS, count=st.integers(1, 4))
def test_the_local_top_levels_are_always_the_true_books(
        start_bids: list[tuple[int, str]], start_asks: list[tuple[int, str]],
        steps: list[tuple[str, list[tuple[bool, int, str]], int]], count: int) -> None:
    """The stream sends each change of the true book as an event, a snapshot is its best
    4 levels. Whatever the changes, lost or repeated events, the local book is either
    synced with the truth's best ``count`` levels, or says why not (and a new snapshot
    syncs it again)."""
    limit = 4
    truth = Truth()
    truth.change([(True, price, qty) for price, qty in start_bids])
    truth.change([(False, price, qty) for price, qty in start_asks])
    book = LocalBook(SYMBOL, levels=count, snapshot_limit=limit)
    update_id = 1000
    assert book.on_snapshot(truth.rest(update_id, limit)) is None
    delivered: DepthUpdate | None = None
    for action, changes, span in steps:
        if action == "repeat":
            if delivered is not None:
                assert book.on_event(delivered) is None
            continue
        sent = event(update_id + 1, update_id + span, *truth.change(changes))
        update_id += span
        if action == "lose":
            continue
        delivered = sent
        reason = book.on_event(sent)
        if reason is not None:
            assert reason in (GAP, THIN) and not book.synced
            assert book.first_buffered == sent.first_update_id
            assert book.on_snapshot(truth.rest(update_id, limit)) is None
        assert book.update_id == update_id
        assert book.notional() == notional_of(*truth.top(count), count)


# -- the simulator's data, in process ------------------------------------------------------

T0 = 1_767_225_600.0  # on a whole step


@pytest.mark.parametrize(("symbol", "snapshot_first"), [
    ("BTCUSDT", False),  # 5,000 levels a side: the snapshot's 500 are bounded
    ("BTCUSDT", True),
    ("DASHETH", False),  # 166 levels: complete sides shorter than the 200 summed
    ("币安人生USDT", True),
])
def test_the_simulators_snapshot_and_events_give_its_rest_notional(
        symbol: str, snapshot_first: bool) -> None:
    """A snapshot (limit 500) and the feed's events give, step after step, exactly the
    notional of the REST depth (limit 200) at that step, as the REST path computes it.
    The event buffered first is dropped by a later snapshot, or, with the snapshot taken
    just before it (lastUpdateId == U - 1), applied to it. One event spans three steps."""
    clock = FakeClock(T0)
    market = SimulatedMarket(now=clock)
    feed = EventFeed(market)
    stream = symbol.lower() + "@depth@100ms"
    book = LocalBook(symbol, levels=200)

    def rest(limit: int) -> OrderBook:
        return parse_order_book(market.book(symbol, limit, market.step()).depth_payload(),
                                symbol)

    def advance(seconds: int) -> None:
        since = market.step()
        clock.advance(seconds)
        text = feed.depth_update(symbol, since, market.step())
        assert text is not None
        update = parse_depth_update(json.loads(text), stream)
        assert update.symbol == symbol
        assert book.on_event(update) is None

    first = rest(500)
    advance(1)
    assert book.first_buffered == first.last_update_id + 1
    assert book.on_snapshot(first if snapshot_first else rest(500)) is None
    assert book.notional() == book_notional(rest(200), 200)
    for seconds in (1, 1, 3, 1):
        advance(seconds)
        assert book.update_id == rest(1).last_update_id
        assert book.notional() == book_notional(rest(200), 200)


def test_the_simulators_book_ticker_events_parse_to_its_rest_book_ticker() -> None:
    """At a step's first moment, and at a later one, where only the busiest symbols' best
    quantities have moved."""
    clock = FakeClock(T0)
    market = SimulatedMarket(now=clock)
    feed = EventFeed(market)
    for _ in range(2):
        for symbol in ("BTCUSDT", "ETHBTC", "币安人生USDT"):
            book = market.book_at(symbol, 1, market.moment())
            text, _ = feed.book_ticker(symbol, market.moment())
            update_id, top = parse_book_ticker_event(json.loads(text),
                                                     symbol.lower() + "@bookTicker")
            assert update_id == book.last_update_id
            assert top == parse_book_tickers([book.book_ticker_payload()])[symbol]
        clock.advance(market.step_seconds * 3 / market.substeps)
