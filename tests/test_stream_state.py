"""The stream state, in process: each kind of change reaches the view, and nothing else does.

A view is made of what changed since the last one (``collector.tracked``), so a change
that did not go through a tracked map would be served stale. Each test below makes one
kind of change and asserts the value the next view shows; a view with nothing changed
gives the very same records (a scrape between two events costs a comparison).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Callable

import pytest

from collector.errors import BadResponse, NotAttempted, NotSynced, StreamUnavailable
from collector.records import OrderBook
from collector.stream_state import SpreadWindow, StreamState, StreamView


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _state(clock: _Clock, tickers: tuple[str, ...] = ("BTCUSDT", "ETHUSDT")) -> StreamState:
    state = StreamState(2, 4, window=10, clock=clock, wall=clock)
    state.ranked()
    state.follow(["BTCUSDT"], list(tickers))
    state.connected()
    return state


def _push(state: StreamState, update_id: int, bid: str, symbol: str = "BTCUSDT",
          ask: str = "100") -> None:
    state.message(f"{symbol.lower()}@bookTicker", {"u": update_id, "s": symbol, "b": bid,
                                                    "B": "1", "a": ask, "A": "1"})


def _depth(state: StreamState, first: int, last: int, bid: str = "99") -> None:
    state.message("btcusdt@depth@100ms", {"e": "depthUpdate", "E": 1, "s": "BTCUSDT",
                                          "U": first, "u": last, "b": [[bid, "2"]], "a": []})


def _snapshot(state: StreamState, update_id: int = 4) -> str | None:
    book = state.books.get("BTCUSDT")
    assert book is not None
    return state.snapshot_arrived(book, OrderBook(
        "BTCUSDT", ((Decimal(99), Decimal(1)), (Decimal(98), Decimal(1))),
        ((Decimal(100), Decimal(1)), (Decimal(101), Decimal(1))), update_id))


def _spreads(view: StreamView) -> dict[str, Decimal | None]:
    assert view.spreads.value is not None
    return dict(view.spreads.value.spreads)


def test_a_view_with_nothing_changed_is_the_same_records() -> None:
    clock = _Clock()
    state = _state(clock)
    _push(state, 1, "99")
    _push(state, 1, "90", "ETHUSDT")
    first = state.view({})
    clock.now = 1.0
    again = state.view({})
    assert again.spreads is first.spreads and again.books is first.books
    assert again.health.messages is first.health.messages
    assert again.health.updates is first.health.updates
    assert (first.health.last_message_age, again.health.last_message_age) == (0.0, 1.0)


def test_a_best_bid_ask_changes_its_symbol_s_chunk_alone() -> None:
    """One event copies the chunk of its symbol; the others are shared, so what a
    reader made of them stays valid."""
    clock = _Clock()
    symbols = tuple(f"S{i}USDT" for i in range(40))
    state = _state(clock, symbols)
    for number, symbol in enumerate(symbols, 1):
        _push(state, number, "99", symbol)
    before = state.view({}).spreads.value
    _push(state, 100, "98", "S39USDT")
    after = state.view({}).spreads.value
    assert before is not None and after is not None
    assert after.spreads["S39USDT"] == Decimal(2) and before.spreads["S39USDT"] == Decimal(1)
    assert after.tops["S39USDT"].bid_price == Decimal(98)
    shared = [a is b for a, b in zip(before.spreads.chunks, after.spreads.chunks)]  # type: ignore[attr-defined]
    assert shared == [True, True, False]
    assert dict(after.spreads) == {**dict(before.spreads), "S39USDT": Decimal(2)}


KINDS: dict[str, tuple[Callable[[StreamState, _Clock], object],
                       Callable[[StreamView], object], object]] = {
    "bookTicker": (lambda s, c: _push(s, 2, "98"),
                   lambda v: _spreads(v)["BTCUSDT"], Decimal(2)),
    "bookTicker count": (lambda s, c: _push(s, 2, "99"),
                         lambda v: v.health.updates["BTCUSDT"], 2),
    "message count": (lambda s, c: _push(s, 2, "98"),
                      lambda v: v.health.messages["btcusdt@bookTicker"], 2),
    "empty side": (lambda s, c: _push(s, 2, "0"),
                   lambda v: _spreads(v)["BTCUSDT"], None),
    "10 s extremes": (lambda s, c: _push(s, 2, "90"),
                      lambda v: (v.spreads.value.minimum["BTCUSDT"],  # type: ignore[union-attr]
                                 v.spreads.value.maximum["BTCUSDT"]),  # type: ignore[union-attr]
                      (Decimal(1), Decimal(10))),
    "time alone": (lambda s, c: (_push(s, 2, "90"), setattr(c, "now", 11.0)),
                   lambda v: v.spreads.value.maximum["BTCUSDT"],  # type: ignore[union-attr]
                   Decimal(10)),
    "window left": (lambda s, c: (setattr(c, "now", 1.0), _push(s, 2, "90"),
                                  setattr(c, "now", 11.5)),
                    lambda v: v.spreads.value.minimum["BTCUSDT"],  # type: ignore[union-attr]
                    Decimal(10)),
    "snapshot": (lambda s, c: _snapshot(s), lambda v: v.health.synced["BTCUSDT"], True),
    "depth": (lambda s, c: (_depth(s, 3, 5), _snapshot(s), _depth(s, 6, 6, "99.5")),
              lambda v: getattr((v.books.value or {}).get("BTCUSDT"), "bids", None),
              Decimal(397)),  # 99.5 x 2 + 99 x 2, the best 2 levels
    "resync": (lambda s, c: (_snapshot(s), _depth(s, 9, 10)),
               lambda v: v.health.resyncs["BTCUSDT", "gap"], 1),
    "bad message": (lambda s, c: s.bad_message(BadResponse("stream", "message", "x")),
                    lambda v: "BTCUSDT" in v.spreads.value.tops,  # type: ignore[union-attr]
                    False),
    "disconnected": (lambda s, c: s.disconnected(),
                     lambda v: type(v.spreads.error), StreamUnavailable),
    "connection added": (lambda s, c: s.connections(2), lambda v: v.health.connected, False),
    "connected": (lambda s, c: (s.disconnected(), s.view({}), s.connected()),
                  lambda v: type(v.spreads.error), NotSynced),  # published again, empty
    "reconnecting": (lambda s, c: s.reconnecting("error"),
                     lambda v: v.health.reconnects["error"], 1),
    "follow": (lambda s, c: s.follow(["BTCUSDT"], ["BTCUSDT", "BNBUSDT"]),
               lambda v: (sorted(v.spreads.value.spreads),  # type: ignore[union-attr]
                          type(v.spreads.error)), (["BNBUSDT", "BTCUSDT"], NotSynced)),
}


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_of_change_reaches_the_next_view(kind: str) -> None:
    """A kept view must never hide a change: each way the streams change the state, and
    the value the next view shows."""
    clock = _Clock()
    state = _state(clock)
    _push(state, 1, "99")
    _push(state, 1, "90", "ETHUSDT")
    change, read, expected = KINDS[kind]
    kept = state.view({})
    assert read(kept) != expected  # the change is a change
    assert state.view({}).spreads is kept.spreads
    change(state, clock)
    assert read(state.view({})) == expected


def test_nothing_is_published_before_a_ranking_says_what_to_follow() -> None:
    clock = _Clock()
    state = StreamState(2, 4, window=10, clock=clock, wall=clock)
    state.follow(["BTCUSDT"], ["BTCUSDT"])
    state.connected()
    _push(state, 1, "99")
    assert isinstance(state.view({}).spreads.error, NotAttempted)
    state.ranked()
    assert _spreads(state.view({})) == {"BTCUSDT": Decimal(1)}


def test_a_follow_keeps_the_counts_of_what_is_still_followed() -> None:
    clock = _Clock()
    state = _state(clock)
    _push(state, 1, "99")
    state.follow(["BTCUSDT"], ["BTCUSDT", "BNBUSDT"])
    health = state.view({}).health
    assert dict(health.updates) == {"BTCUSDT": 1, "BNBUSDT": 0}
    assert dict(health.messages) == {"btcusdt@bookTicker": 1, "bnbusdt@bookTicker": 0,
                                     "btcusdt@depth@100ms": 0}
    assert list(health.messages) == sorted(health.messages)  # as the exporter renders them


def test_q5_deltas_reach_the_view_for_every_symbol() -> None:
    clock = _Clock()
    state = _state(clock)
    _push(state, 1, "99")
    first = state.view({})
    deltas = {"BTCUSDT": Decimal("0.5")}
    view = state.view(deltas)
    assert view.spreads is not first.spreads and view.spreads.value is not None
    assert dict(view.spreads.value.deltas) == {"BTCUSDT": Decimal("0.5"), "ETHUSDT": None}
    assert state.view(deltas).spreads is view.spreads


def test_events_applied_while_a_view_is_read_are_in_the_next_one() -> None:
    """A view copies what changed since the version it read: an event after that read is
    the next view's, never lost between the two."""
    clock = _Clock()
    state = _state(clock)
    for update in range(1, 200):
        _push(state, update, str(90 + update % 9))
        if update % 7 == 0:
            view = state.view({})
            assert _spreads(view)["BTCUSDT"] == Decimal(100) - Decimal(90 + update % 9)
    assert state.view({}).health.updates["BTCUSDT"] == 199


def test_a_best_bid_ask_seen_before_or_older_is_not_applied_again() -> None:
    """During a handover two connections send the same events: a bookTicker update whose
    id is not above the last one applied changes nothing."""
    state = StreamState(200, 500, clock=lambda: 0.0, wall=lambda: 0.0)
    state.ranked()
    state.follow([], ["BTCUSDT"])
    state.connected()

    def push(update_id: int, bid: str) -> None:
        state.message("btcusdt@bookTicker", {"u": update_id, "s": "BTCUSDT", "b": bid,
                                             "B": "1", "a": "100", "A": "1"})

    push(10, "99")
    push(10, "98")  # the same update again, from the other connection
    push(9, "97")  # an older one
    view = state.view({})
    assert view.health.updates == {"BTCUSDT": 1}
    assert view.health.messages == {"btcusdt@bookTicker": 3}
    assert view.spreads.value is not None and view.spreads.value.spreads == {
        "BTCUSDT": Decimal(1)}
    push(11, "99.5")
    assert state.view({}).health.updates == {"BTCUSDT": 2}
    assert state.current_spreads() == {"BTCUSDT": Decimal("0.5")}


def test_a_view_is_kept_between_changes_but_its_message_age_is_always_now() -> None:
    """Scrapes between two events get the same records (nothing rebuilt), each with the
    age of the last message at its own time; an event, new Q5 deltas, or a 10 s extreme
    leaving its window (time alone) give a new view."""
    clock = _Clock()
    state = _state(clock, ("BTCUSDT",))
    deltas: dict[str, Decimal | None] = {}
    _push(state, 1, "95")  # spread 5
    clock.now = 1.0
    _push(state, 2, "99")  # spread 1: 5 stays the maximum until 11
    first = state.view(deltas)
    clock.now = 3.0
    again = state.view(deltas)
    assert again.spreads is first.spreads and again.books is first.books
    assert again.health.messages is first.health.messages
    assert (first.health.last_message_age, again.health.last_message_age) == (0.0, 2.0)
    clock.now = 11.0  # 5 (current until 1) leaves the window: the maximum is now 1
    later = state.view(deltas)
    assert later.spreads is not first.spreads and later.spreads.value is not None
    assert later.spreads.value.maximum == {"BTCUSDT": Decimal(1)}
    new_deltas: dict[str, Decimal | None] = {"BTCUSDT": Decimal(4)}
    sampled = state.view(new_deltas)
    assert sampled.spreads.value is not None
    assert sampled.spreads.value.deltas == {"BTCUSDT": Decimal(4)}
    _push(state, 3, "98")
    pushed = state.view(new_deltas).spreads.value
    assert pushed is not None and pushed.spreads == {"BTCUSDT": Decimal(2)}


def test_the_spread_window_keeps_the_extremes_of_the_last_10_s_and_the_latest() -> None:
    window = SpreadWindow(10)
    assert window.bounds(0) is None
    for at, value in ((0, "5"), (1, "2"), (2, "9"), (3, "4")):
        window.add(at, Decimal(value))
    assert window.bounds(3) == (Decimal(2), Decimal(9))  # 5, 2, 9 and 4 were all current
    assert window.bounds(11.5) == (Decimal(2), Decimal(9))  # 2 was current until 2 > 1.5
    assert window.bounds(12) == (Decimal(4), Decimal(9))
    assert window.bounds(13) == (Decimal(4), Decimal(4))  # only the latest remains
    assert window.bounds(1000) == (Decimal(4), Decimal(4))  # current, however old


def test_a_spread_that_ended_leaves_the_window_from_its_end_not_from_the_next_one() -> None:
    """A spread ended by an empty side or a crossed book (no spread for a while) counts
    until that end, not until the next spread arrives."""
    window = SpreadWindow(10)
    window.add(0, Decimal(5))
    window.end(1)  # no spread from 1 to 9
    window.add(9, Decimal(1))
    assert window.bounds(10.5) == (Decimal(1), Decimal(5))  # 5 was current until 1 > 0.5
    assert window.bounds(11) == (Decimal(1), Decimal(1))  # 5 left at 1 + 10, not at 9 + 10


def test_min_and_max_leave_out_a_spread_that_stopped_being_current() -> None:
    window = SpreadWindow(10)
    window.add(0, Decimal(1))
    window.end(5)  # a crossed book from 5 s: no spread
    assert window.bounds(14) == (Decimal(1), Decimal(1))  # it was current until 5
    assert window.bounds(15) is None
    window.add(20, Decimal(3))
    assert window.bounds(21) == (Decimal(3), Decimal(3))
