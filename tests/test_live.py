"""Stream mode against the simulator's streams: sync, gaps, reconnects, nothing stale.

The simulator runs in this process on a fake clock (``serving_in_process``): a test
moves the market one step at a time and ``step()`` returns once every connection has
sent that step's events, so which events exist is exact. The exporter's side runs as
in production: a :class:`StreamSource` on its own thread and event loop, connected over
loopback, with the connection policy's figures shortened (real time). What it has
applied is awaited with :func:`eventually`, a deadline, never a fixed sleep.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import signal
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any, Callable, Iterator, Mapping, TypeVar
from urllib.parse import quote

import pytest
from e2e_support import promtool
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from binance_simulator.streams import StreamSettings
from binance_simulator.testkit import (BIN, FakeClock, InProcessSimulator, running_exporter,
                                       running_simulator, serving_in_process)
from collector import answers, report
from collector.binance import BinanceClient
from collector.exporter import BinanceCollector
from collector.errors import NotAttempted, NotSynced, StreamUnavailable
from collector.models import parse_book_tickers, parse_order_book
from collector.records import STREAM, Rankings, Settings, Snapshot
from collector.stream_client import FeedTiming
from collector.stream_source import StreamSource
from collector.stream_state import StreamView

T = TypeVar("T")
DEADLINE = 20.0  # generous: what is due arrives in milliseconds, but CI machines are noisy
FAST = FeedTiming(stall=60.0, backoff_first=0.05, backoff_max=0.2, healthy_after=0.5,
                  request_interval=0.05, overlap=30.0)


def eventually(check: Callable[[], T | None], what: str, deadline: float = DEADLINE) -> T:
    """The first truthy ``check()``, polled until ``deadline`` seconds have passed."""
    end = time.monotonic() + deadline
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > end:
            raise AssertionError(f"not within {deadline:g} s: {what}")
        time.sleep(0.01)


def happened(counts: Mapping[Any, int]) -> dict[Any, int]:
    """A counter's labels that counted something (every label starts at 0)."""
    return {key: count for key, count in counts.items() if count}


class StreamRig:
    """A StreamSource against an in-process simulator, and ways to watch it."""

    def __init__(self, sim: InProcessSimulator, source: StreamSource) -> None:
        self.sim, self.source = sim, source

    def snapshot(self) -> Snapshot:
        return self.source.snapshot()

    def view(self) -> StreamView:
        return self.source.view()

    def step(self, steps: int = 1) -> Snapshot:
        """Move the market ``steps`` steps; wait until every book equals the REST book of the
        new step exactly, and every best bid/ask the REST one; that snapshot."""
        for _ in range(steps):
            self.sim.step(1)

        def caught_up() -> Snapshot | None:
            snapshot = self.snapshot()
            books, spreads = snapshot.books.value, snapshot.spreads.value
            if not snapshot.books.ok or books is None or spreads is None or any(
                    notional != self.rest_notional(symbol) for symbol, notional in books.items()
            ) or any(value != self.rest_spread(symbol)
                     for symbol, value in spreads.spreads.items()):
                return None
            return snapshot
        return eventually(caught_up, "the books and best bid/asks of the new step")

    def synced(self) -> Snapshot:
        """Step the market until every book is synced and every best bid/ask known."""
        def ready() -> Snapshot | None:
            snapshot = self.snapshot()
            if snapshot.books.ok and snapshot.spreads.ok:
                return snapshot
            self.sim.step(1)
            return None
        return eventually(ready, "every book synced, every best bid/ask known")

    def rest_notional(self, symbol: str) -> answers.Notional:
        book = parse_order_book(self.sim.get(f"/api/v3/depth?symbol={quote(symbol)}&limit=200"),
                                symbol)
        return answers.book_notional(book, 200)

    def rest_spread(self, symbol: str) -> Decimal | None:
        tops = parse_book_tickers([self.sim.get(f"/api/v3/ticker/bookTicker?symbol="
                                                f"{quote(symbol)}")])
        return answers.spread(tops[symbol])


# The rig reads REST depth (25 weight a book) to check every step, and a step is a second
# of the simulator's clock: a minute of weight can pass in a second. The exporter's own
# requests are a few snapshots; the test's checks must not use its budget up.
CHECKING_WEIGHT_LIMIT = 1_000_000


@contextmanager
def streaming(settings: StreamSettings = StreamSettings(), timing: FeedTiming = FAST,
              urls_before: tuple[str, ...] = (), exporter: Settings = Settings(source=STREAM),
              **options: Any) -> Iterator[StreamRig]:
    with serving_in_process(settings, weight_limit=CHECKING_WEIGHT_LIMIT) as sim:
        client = BinanceClient([sim.url], timeout=5, retries=0)
        source = StreamSource(client, exporter, [*urls_before, sim.stream_url],
                              timing, resync_interval=options.pop("resync_interval", 0.0),
                              sample_every=options.pop("sample_every", None), **options)
        try:
            yield StreamRig(sim, source.start())
        finally:
            source.close()


@pytest.fixture(name="stream")
def fixture_stream() -> Iterator[StreamRig]:
    with streaming() as stream:
        yield stream


def test_nothing_is_published_before_the_streams_deliver(stream: StreamRig) -> None:
    first = stream.snapshot()
    assert first.rankings.ok
    assert first.books.value is None or first.books.error is not None
    assert first.spreads.error is not None
    assert isinstance(first.spreads.error, (StreamUnavailable, NotSynced))


def test_first_sync_gives_the_rest_answers_exactly(stream: StreamRig) -> None:
    snapshot = stream.synced()
    ranked = snapshot.rankings.value
    assert ranked is not None
    books = snapshot.books.value
    assert books is not None and set(books) == {t.symbol for t in ranked.by_volume}
    spreads = snapshot.spreads.value
    assert spreads is not None
    for _ in range(3):  # the market moves; the local books follow it exactly
        snapshot = stream.step()
    health = snapshot.health.stream
    assert health is not None and health.connected
    assert all(health.synced.values()) and not happened(health.resyncs)
    assert set(health.synced) == {t.symbol for t in ranked.by_volume}


def symbol_of(stream: StreamRig, ranking: str = "volume") -> str:
    ranked = stream.snapshot().rankings.value
    assert ranked is not None
    return (ranked.by_volume if ranking == "volume" else ranked.by_trades)[0].symbol


def step_to_a_change(stream: StreamRig, symbol: str) -> None:
    """Step the market until its next step changes ``symbol``'s book, so that the step
    brings an event: a quieter symbol's book changes on most steps, not all."""
    market = stream.sim.market
    while market.diff(symbol, market.step(), market.step() + 1) is None:
        stream.sim.step(1)


def step_until_each_changed(stream: StreamRig, symbols: list[str]) -> None:
    """Step the market until each of ``symbols``' books has changed, so that each has had
    an event: new books sync from their first events, and a bookTicker stream sends
    changes only."""
    market = stream.sim.market
    since = market.step()
    stream.sim.step(1)
    while any(market.diff(symbol, since, market.step()) is None for symbol in symbols):
        stream.sim.step(1)


def test_a_gap_withdraws_the_book_until_a_new_snapshot_continues_it(stream: StreamRig) -> None:
    stream.synced()
    symbol = symbol_of(stream)
    depth = symbol.lower() + "@depth@100ms"
    step_to_a_change(stream, symbol)
    stream.sim.control.set_faults([{"name": "ws_gap", "rate": 1, "streams": [depth]},
                                   {"name": "error_5xx", "status": 503, "rate": 1,
                                    "endpoints": ["/api/v3/depth"]}])
    stream.sim.step(1)  # this step's event for the symbol is never sent
    stream.sim.control.set_faults([{"name": "error_5xx", "status": 503, "rate": 1,
                                    "endpoints": ["/api/v3/depth"]}])
    step_to_a_change(stream, symbol)
    stream.sim.step(1)  # the next one does not continue the book: a gap
    eventually(lambda: stream.view().health.resyncs.get((symbol, "gap")), "the gap")
    withdrawn = stream.snapshot()  # no snapshot can be had (503): the book stays out
    assert isinstance(withdrawn.books.error, NotSynced)
    assert withdrawn.books.value is not None and symbol not in withdrawn.books.value
    assert len(withdrawn.books.value) == 4  # the other books are still published
    assert withdrawn.health.stream is not None
    assert withdrawn.health.stream.synced[symbol] is False
    stream.sim.control.clear_faults()
    snapshot = stream.synced()
    assert snapshot.books.value is not None
    assert snapshot.books.value[symbol] == stream.rest_notional(symbol)
    assert snapshot.health.stream is not None
    assert happened(snapshot.health.stream.resyncs) == {(symbol, "gap"): 1}


@pytest.mark.parametrize(("fault", "reason"), [
    ({"name": "crossed_book"}, "crossed"),
    ({"name": "empty_book_side", "side": "ask"}, "one_sided"),
    ({"name": "empty_book_side", "side": "bid"}, "one_sided"),
])
def test_a_crossed_or_one_sided_snapshot_never_syncs_a_book(
        stream: StreamRig, fault: dict[str, str], reason: str) -> None:
    """Events carry only what changes: a book synced on such a snapshot stayed wrong until
    its next resync (the stream soak found 492 scrapes of them)."""
    stream.synced()
    symbol = symbol_of(stream)
    depth = symbol.lower() + "@depth@100ms"
    step_to_a_change(stream, symbol)
    stream.sim.control.set_faults([{"name": "ws_gap", "rate": 1, "streams": [depth]},
                                   {**fault, "rate": 1, "endpoints": ["/api/v3/depth"]}])
    stream.sim.step(1)  # this step's event for the symbol is never sent
    stream.sim.control.set_faults([{**fault, "rate": 1, "endpoints": ["/api/v3/depth"]}])
    step_to_a_change(stream, symbol)
    stream.sim.step(1)  # a gap; every snapshot then is refused
    eventually(lambda: stream.view().health.resyncs.get((symbol, reason)), reason)
    for _ in range(3):
        stream.sim.step(1)
        refused = stream.snapshot()
        assert refused.books.value is not None and symbol not in refused.books.value
        assert refused.health.stream is not None
        assert refused.health.stream.synced[symbol] is False
    stream.sim.control.clear_faults()
    snapshot = stream.synced()
    assert snapshot.books.value is not None
    assert snapshot.books.value[symbol] == stream.rest_notional(symbol)
    assert snapshot.health.stream is not None
    resyncs = happened(snapshot.health.stream.resyncs)
    assert resyncs[symbol, "gap"] == 1 and resyncs[symbol, reason] >= 1
    assert set(resyncs) == {(symbol, "gap"), (symbol, reason)}


def test_a_lost_connection_withdraws_every_live_value_then_reconnects(stream: StreamRig) -> None:
    stream.synced()
    # the connection is cut, and new ones are refused until the test says
    stream.sim.control.set_faults([{"name": "ws_close", "rate": 1},
                                   {"name": "ws_refuse", "rate": 1}])
    stream.sim.step(1)
    def disconnected() -> Snapshot | None:
        snapshot = stream.snapshot()
        assert snapshot.health.stream is not None
        return None if snapshot.health.stream.connected else snapshot
    down = eventually(disconnected, "the disconnection")
    # nothing from before the disconnection is served as current
    assert isinstance(down.spreads.error, StreamUnavailable) and down.spreads.value is None
    assert isinstance(down.books.error, StreamUnavailable) and down.books.value is None
    assert down.health.stream is not None and not any(down.health.stream.synced.values())
    stream.sim.control.clear_faults()
    up = eventually(lambda: stream.view().health.connected, "a new connection")
    assert up
    # connected again, the market has not moved: nothing pushed before the drop comes back
    again = stream.view().spreads
    assert again.value is not None and not again.value.tops
    assert isinstance(again.error, NotSynced)
    snapshot = stream.synced()
    health = snapshot.health.stream
    assert health is not None and health.connected
    assert sum(health.reconnects.values()) >= 1
    assert set(happened(health.reconnects)) <= {"closed", "error", "refused"}
    assert {reason for _, reason in happened(health.resyncs)} == {"disconnect"}
    for symbol, notional in (snapshot.books.value or {}).items():
        assert notional == stream.rest_notional(symbol)


def test_server_shutdown_hands_over_to_a_new_connection_without_a_gap(stream: StreamRig) -> None:
    stream.synced()
    # the server closes the announced connection an hour of its clock later: in this test,
    # only the exporter's handover closes it
    stream.sim.control.set_faults([{"name": "ws_shutdown", "seconds": 3600, "rate": 1}])
    stream.sim.step(1)
    stream.sim.control.clear_faults()
    eventually(lambda: stream.view().health.reconnects.get("server_shutdown"),
               "a new connection after serverShutdown")
    for _ in range(3):
        stream.step()
        snapshot = stream.snapshot()
        assert snapshot.books.ok and snapshot.spreads.value is not None
    health = stream.view().health
    assert health.connected and happened(health.reconnects) == {"server_shutdown": 1}
    assert not happened(health.resyncs)  # the books went on from the new connection's events
    # both connections may send the handover step's best bid/asks (whether they do is a
    # race): each is applied once, by its update id (see the next test)

    def handed_over() -> bool:
        if stream.sim.control.stats()["streams"]["connections_open"] == 1:
            return True
        # the old connection closes once the new one has sent an event on every depth
        # stream (a quiet book's may wait for a step that changes it), then its close takes
        # a moment to reach the simulator
        stream.sim.step(1)
        return False
    eventually(handed_over, "the old connection closed, the new one alone open")


def test_rollover_replaces_the_connection_before_binance_cuts_it() -> None:
    with streaming(timing=dataclasses.replace(FAST, rollover=1.0)) as stream:
        stream.synced()
        def rolled() -> bool:
            stream.step()
            assert stream.snapshot().books.ok  # never a gap in the published books
            return stream.view().health.reconnects.get("rollover", 0) >= 2
        eventually(rolled, "two rollovers")
        health = stream.view().health
        assert set(happened(health.reconnects)) == {"rollover"} and not happened(health.resyncs)


def test_pings_are_answered_and_a_server_that_gets_no_pong_closes() -> None:
    """Binance pings every 20 s and drops a client silent for a minute; here every 2 s of
    the simulator's clock, and 6 s."""
    with streaming(StreamSettings(ping_seconds=2)) as stream:
        stream.synced()
        # 9 s of the clock, a ping in every 3 s, each answered: the first ping's 6 s pass,
        # and the connection stays
        for _ in range(3):
            stream.sim.step(2)
            stream.step()
        assert not happened(stream.view().health.reconnects)
        stream.sim.control.set_faults([{"name": "ws_no_pong_close", "rate": 1}])
        for _ in range(4):
            stream.sim.step(2)
        # closed by the server, or failed answering its ping as it closed
        eventually(lambda: stream.view().health.reconnects.get("closed", 0)
                   + stream.view().health.reconnects.get("error", 0),
                   "a close for the pongs ignored")
        stream.sim.control.clear_faults()
        assert stream.synced().health.stream is not None


def test_a_stalled_connection_is_dropped_by_the_watchdog() -> None:
    clock = FakeClock()  # the watchdog's: moved here by hand, a busy machine cannot stall it
    with streaming(timing=dataclasses.replace(FAST, stall=1.0), clock=clock) as stream:
        stream.synced()
        stream.step()  # every event sent is applied: none comes after the clock moves
        stream.sim.control.set_faults([{"name": "ws_stall", "rate": 1}])
        stream.sim.step(1)
        clock.advance(1.0)
        eventually(lambda: stream.view().health.reconnects.get("stall"), "the watchdog")
        stream.sim.control.clear_faults()
        assert stream.synced().health.stream is not None


def test_refused_and_unreachable_urls_are_skipped_with_back_off(stream: StreamRig) -> None:
    stream.sim.control.set_faults([{"name": "ws_refuse", "status": 429, "rate": 1}])
    stream.snapshot()  # rankings: the feed starts connecting
    started = time.monotonic()
    eventually(lambda: stream.view().health.reconnects.get("refused", 0) >= 3, "refusals")
    refused = stream.view().health.reconnects["refused"]
    # backing off: 0.025-0.05 s, then doubling up to 0.1-0.2 s (FAST), never in a tight loop
    assert refused <= 5 + (time.monotonic() - started) / 0.1
    stream.sim.control.clear_faults()
    snapshot = stream.synced()
    assert snapshot.health.stream is not None and snapshot.health.stream.connected


def test_a_dead_first_url_falls_back_to_the_next() -> None:
    with serving_in_process() as gone:
        dead = gone.stream_url  # nothing listens there any more: refused
    with streaming(urls_before=[dead]) as stream:
        snapshot = stream.synced()
        assert snapshot.health.stream is not None
        assert happened(snapshot.health.stream.reconnects) == {"error": 1}


def test_subscriptions_follow_the_rankings_on_the_same_connection(stream: StreamRig) -> None:
    first = stream.synced().rankings.value
    assert first is not None
    stats = stream.sim.control.stats
    # the rankings move (here: forced), many times in a row: one connection throughout,
    # and never over Binance's 5 incoming messages a second (the simulator would close it)
    moved = Rankings(first.by_trades[:2], first.by_volume[:2])  # new books, new tickers
    for _ in range(5):
        stream.source.follow(answers.watchlist(moved, {}, ()))
        stream.source.follow(answers.watchlist(first, {}, ()))
    stream.source.follow(answers.watchlist(moved, {}, ()))
    wanted = {t.symbol.lower() + "@depth@100ms" for t in moved.by_volume} | \
        {t.symbol.lower() + "@bookTicker" for t in moved.by_trades}
    eventually(lambda: set(stats()["streams"]["subscriptions"]) == wanted, "the new set")
    step_until_each_changed(stream, [t.symbol for t in (*moved.by_volume, *moved.by_trades)])

    def moved_synced() -> StreamView | None:
        view = stream.view()
        return view if view.books.ok and view.spreads.ok else None
    view = eventually(moved_synced, "the new books synced, the new best bid/asks known")
    assert set(view.health.synced) == {t.symbol for t in moved.by_volume}
    assert set(view.books.value or {}) == {t.symbol for t in moved.by_volume}
    assert view.spreads.value is not None
    assert set(view.spreads.value.spreads) == {t.symbol for t in moved.by_trades}
    assert not happened(view.health.reconnects)
    assert stats()["streams"]["connections_open"] == 1
    assert stats()["streams"]["connections"] == {"accepted": 1}


def test_q5_deltas_come_from_the_10_s_clock_not_from_updates(
        stream: StreamRig, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="collector.q5")
    stream.synced()
    symbol = symbol_of(stream, "trades")
    stream.source.sample(1000.0)
    first = stream.source.view().spreads.value
    assert first is not None and first.deltas[symbol] is None  # one sample: no delta yet
    before = first.spreads[symbol]
    for _ in range(3):  # the spread moves between the ticks: only the samples count
        stream.step()
    stream.source.sample(1010.0)
    after = stream.view().spreads.value
    assert after is not None and before is not None
    assert after.deltas[symbol] == abs(after.spreads[symbol] - before)
    assert after.minimum[symbol] <= after.spreads[symbol] <= after.maximum[symbol]
    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("spreads: ")]
    assert f"{symbol}={answers.plain(after.spreads[symbol])} " \
        f"(delta {answers.plain(after.deltas[symbol])})" in logged[-1]  # the Q5 log
    stream.source.sample(1030.0)  # a tick was missed: no delta across it
    missed = stream.view().spreads.value
    assert missed is not None and missed.deltas[symbol] is None


def test_min_and_max_forget_a_spread_10_s_after_it_stopped_being_current() -> None:
    """The collector reuses the families it built while nothing was refreshed; the window's
    bounds move with time alone, so a scrape 10 s after the last event must not show the
    bounds of the scrape before it."""
    clock = FakeClock()  # the exporter's monotonic clock: the window's time
    with streaming(clock=clock) as stream:
        stream.synced()  # a step or more: quieter books may wait a step for their first event
        clock.advance(10)  # the spreads seen while syncing leave the window, but the latest
        symbol = symbol_of(stream, "trades")
        collector = BinanceCollector(stream.source)

        def bounds() -> tuple[float, ...]:
            families = {f.name: f for f in collector.collect()}
            return tuple(next(s.value for s in families[name].samples
                              if s.labels["symbol"] == symbol)
                         for name in ("binance_price_spread", "binance_price_spread_min",
                                      "binance_price_spread_max"))
        first = bounds()[0]
        for _ in range(50):  # until the spread moves: the window holds two values
            stream.step()
            spread, low, high = bounds()
            if spread != first:
                break
        assert (low, high) == (min(first, spread), max(first, spread))
        assert bounds() == (spread, low, high)  # the same scrape again: nothing moved
        clock.advance(10)  # no event since: the earlier spread has left the window
        assert bounds() == (spread, spread, spread)


def test_stream_mode_metrics_and_promtool(stream: StreamRig) -> None:
    """What Prometheus sees in stream mode: live values, min ≤ spread ≤ max, the stream's
    health with every counter label present from the start, and a clean promtool check."""
    stream.synced()
    registry = CollectorRegistry()
    registry.register(BinanceCollector(stream.source))
    text = generate_latest(registry).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["binance_up"].samples[0].value == 1
    assert families["binance_stream_connected"].samples[0].value == 1
    reconnects = {s.labels["reason"]: s.value for s in families["binance_stream_reconnects"].samples
                  if s.name.endswith("_total")}
    assert reconnects == dict.fromkeys(
        ("closed", "error", "stall", "server_shutdown", "rollover", "refused"), 0)
    resyncs = {(s.labels["symbol"], s.labels["reason"]): s.value
               for s in families["binance_order_book_resyncs"].samples
               if s.name.endswith("_total")}
    reasons = ("gap", "thin", "stale", "one_sided", "crossed", "disconnect")
    assert resyncs == {(symbol, reason): 0 for symbol in {s for s, _ in resyncs}
                       for reason in reasons}
    assert len(resyncs) == 5 * len(reasons)
    synced = families["binance_order_book_synced"].samples
    assert len(synced) == 5 and all(s.value == 1 for s in synced)
    spread = {s.labels["symbol"]: s.value for s in families["binance_price_spread"].samples}
    low = {s.labels["symbol"]: s.value for s in families["binance_price_spread_min"].samples}
    high = {s.labels["symbol"]: s.value for s in families["binance_price_spread_max"].samples}
    assert set(spread) == set(low) == set(high) and len(spread) == 5
    assert all(low[s] <= spread[s] <= high[s] for s in spread)
    assert len(families["binance_order_book_notional"].samples) == 10
    assert families["binance_stream_last_message_age_seconds"].samples[0].value >= 0
    checker = promtool()
    checked = subprocess.run([checker, "check", "metrics"], input=text.encode(),
                             capture_output=True, timeout=30, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_report_in_stream_mode_prints_q1_to_q4_then_exact_ticks() -> None:
    """``binance-report --source stream`` as a real process against a real simulator."""
    with running_simulator("--step-seconds", "0.2") as sim:
        done = subprocess.run(
            [str(BIN / "binance-report"), "--base-url", sim.url, "--source", "stream",
             "--stream-url", sim.stream_url, "--count", "3", "--interval", "1",
             "--format", "json"], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # the streams' progress is not the report's business
    answers_, *ticks = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(answers_["order_book_notional"]) == 5 and len(answers_["spreads"]) == 5
    assert len(ticks) == 3
    times = [datetime.fromisoformat(t["time"].replace("Z", "+00:00")).timestamp()
             for t in ticks]
    assert [b - a for a, b in zip(times, times[1:])] == [1.0, 1.0]  # Q5's own clock
    for before, after in zip(ticks, ticks[1:]):
        for symbol, spread in after["spreads"].items():
            assert Decimal(after["min"][symbol]) <= Decimal(spread) \
                <= Decimal(after["max"][symbol])
            assert Decimal(after["deltas"][symbol]) == abs(
                Decimal(spread) - Decimal(before["spreads"][symbol]))


def test_an_unreadable_message_resyncs_every_book(stream: StreamRig) -> None:
    stream.synced()
    stream.sim.control.set_faults([{"name": "ws_malformed", "rate": 1,
                                    "streams": ["depth@100ms"]}])
    stream.sim.step(1)
    stream.sim.control.clear_faults()
    eventually(lambda: sum(n for (_, reason), n in stream.view().health.resyncs.items()
                           if reason == "gap") == 5, "every book resyncing")
    assert stream.synced().books.ok


def test_a_rate_limited_snapshot_waits_out_the_cool_down(
        stream: StreamRig, caplog: pytest.LogCaptureFixture) -> None:
    """A 429 on a snapshot: nothing more is asked for until Retry-After has passed."""
    stream.sim.control.set_faults([{"name": "status", "status": 429, "retry_after": 60,
                                    "rate": 1, "endpoints": ["/api/v3/depth"]}])
    stream.snapshot()
    eventually(lambda: stream.view().health.connected, "a connection")
    stream.sim.step(1)  # first events: a snapshot is tried, and refused
    stats = stream.sim.control.stats
    eventually(lambda: stats()["requests"].get("/api/v3/depth", {}).get("429", 0) >= 1,
               "a refused snapshot")
    books = set(stream.view().health.synced)

    def every_book_refused() -> bool:
        failed = {message.split(":")[0].removeprefix("order book ")
                  for message in caplog.messages if ": snapshot failed: " in message}
        if books <= failed:
            return True
        stream.sim.step(1)  # a quiet book's first event, and its snapshot, may wait a step
        return False
    # each book asks for its snapshot on its first event, two may be on their way at once:
    # the fault stays until each book's has failed (refused with a 429, or not sent in the
    # cool-down), else one sent just before the cool-down began could reach the simulator
    # once it answers again, and sync its book
    eventually(every_book_refused, "every book's snapshot refused")
    stream.sim.control.clear_faults()  # the simulator would answer again: we must still wait
    for _ in range(5):  # events keep coming during the cool-down: no snapshot is asked for
        stream.sim.step(1)
    snapshot = stream.snapshot()
    assert sum(stats()["requests"].get("/api/v3/depth", {}).values()) <= 5  # one a book
    assert isinstance(snapshot.books.error, NotSynced) and not snapshot.books.value
    assert snapshot.health.cool_down > 30


def test_q5_ticks_on_its_own_clock_at_exact_multiples() -> None:
    with streaming(sample_every=0.5) as stream:
        stream.synced()
        stream.step()  # no event left to parse: none holds up the ticks (on the same loop)
        ticks = [stream.source.next_tick() for _ in range(3)]
    times = [tick.value.at for tick in ticks if tick.value is not None]
    assert len(times) == 3 and all(t % 0.5 == 0 for t in times)
    assert [b - a for a, b in zip(times, times[1:])] == [0.5, 0.5]
    last = ticks[-1].value
    assert last is not None and all(d is not None for d in last.deltas.values())


def test_nothing_before_a_ranking_says_what_to_follow() -> None:
    client = BinanceClient(["http://127.0.0.1:9"], timeout=1, retries=0)
    source = StreamSource(client, Settings(source=STREAM), ["ws://127.0.0.1:9"])
    view = source.view()
    assert isinstance(view.spreads.error, NotAttempted) and view.spreads.value is None
    assert isinstance(view.books.error, NotAttempted) and view.books.value is None
    assert not view.health.connected and view.health.last_message_age is None
    source.close()


def test_the_report_gives_up_on_streams_it_cannot_reach() -> None:
    """No stream, no Q1-Q4: after its patience the report raises the stream's error (exit 1
    with its hint, as any upstream failure)."""
    with serving_in_process() as gone:
        dead = gone.stream_url
    with serving_in_process() as sim:
        client = BinanceClient([sim.url], timeout=5, retries=0)
        source = StreamSource(client, Settings(source=STREAM), [dead], FAST,
                              sample_every=None).start()
        clock = FakeClock()
        try:
            with pytest.raises(StreamUnavailable) as raised:
                report.run(source, fmt="text", count=0, interval=10, out=io.StringIO(),
                           sleep=clock.sleep, clock=clock)
        finally:
            source.close()
    assert raised.value.hint is not None and "--stream-url" in raised.value.hint
    assert clock() - 1000 >= 30  # it waited its patience out


def test_a_server_shutdown_with_no_successor_withdraws_at_once_without_spinning() -> None:
    """serverShutdown, the connection closed at once, new ones refused: the values go
    with the old connection (not when a successor shows up), and the feed waits out its
    back-off rather than spinning."""
    with streaming() as stream:
        stream.synced()
        stream.sim.control.set_faults([{"name": "ws_shutdown", "seconds": 0, "rate": 1},
                                       {"name": "ws_refuse", "rate": 1}])
        stream.sim.step(1)
        down = eventually(lambda: not stream.view().health.connected, "the values withdrawn")
        assert down and stream.view().spreads.value is None
        used = time.process_time()
        eventually(lambda: stream.view().health.reconnects.get("refused", 0) >= 2, "retries")
        time.sleep(0.5)  # a window to measure the feed's CPU in, not a synchronisation
        assert time.process_time() - used < 0.4  # waiting on a back-off costs no CPU
        stream.sim.control.clear_faults()
        assert stream.synced().books.ok


def test_books_resync_at_most_once_per_resync_interval() -> None:
    """Each snapshot costs 25 weight: a book gapping again soon waits out the interval (on
    the exporter's clock, moved here by hand: a busy machine cannot make it pass)."""
    clock = FakeClock()
    with streaming(resync_interval=8.0, clock=clock) as stream:
        stream.synced()  # the first snapshots
        symbol = symbol_of(stream)
        depth = symbol.lower() + "@depth@100ms"
        stats = stream.sim.control.stats

        def snapshots() -> int:
            return sum(stats()["requests"]["/api/v3/depth"].values())
        before = snapshots()
        step_to_a_change(stream, symbol)
        stream.sim.control.set_faults([{"name": "ws_gap", "rate": 1, "streams": [depth]}])
        stream.sim.step(1)
        stream.sim.control.clear_faults()
        step_to_a_change(stream, symbol)
        stream.sim.step(1)
        eventually(lambda: stream.view().health.resyncs[symbol, "gap"] == 1, "the gap")
        stream.sim.step(1)  # events keep coming: the book wants a snapshot, and waits
        clock.advance(7.9)
        stream.sim.step(1)
        assert snapshots() == before  # within 8 s of the last snapshot of this book
        clock.advance(0.1)
        eventually(lambda: stream.view().health.synced[symbol] or stream.sim.step(1),
                   "the book synced after the interval")
        assert snapshots() == before + 1


def test_a_bad_event_withdraws_only_its_stream_s_values() -> None:
    """An unreadable bookTicker drops that best bid/ask (a newer one was lost); an unreadable
    depth event resyncs that book; the others stay."""
    with streaming() as stream:
        snapshot = stream.synced()
        ranked = snapshot.rankings.value
        assert ranked is not None
        ticker, book = ranked.by_trades[0].symbol, ranked.by_volume[0].symbol
        stream.source.on_message(ticker.lower() + "@bookTicker", {"u": 1, "s": ticker})
        stream.source.on_message(book.lower() + "@depth@100ms", {"e": "depthUpdate"})
        view = stream.view()
        assert view.spreads.value is not None
        assert set(view.spreads.value.tops) == {t.symbol for t in ranked.by_trades} - {ticker}
        assert view.books.value is not None
        assert set(view.books.value) == {t.symbol for t in ranked.by_volume} - {book}
        assert happened(view.health.resyncs) == {(book, "gap"): 1}


def test_the_exporter_in_stream_mode_serves_then_stops_cleanly_on_sigterm() -> None:
    """``binance-exporter --source stream`` as a real process: binance_up 1 once synced,
    and SIGTERM closes the connection and exits 0."""
    with running_simulator("--step-seconds", "0.5") as sim, running_exporter(
            sim.url, "--source", "stream", "--stream-url", sim.stream_url) as exporter:

        def up() -> bool:
            with urllib.request.urlopen(exporter.url + "/metrics", timeout=10) as answer:
                return "\nbinance_up 1.0\n" in answer.read().decode()
        eventually(up, "binance_up 1 from the streams")
        exporter.process.send_signal(signal.SIGTERM)
        assert exporter.process.wait(30) == 0
        eventually(lambda: sim.stats()["streams"]["connections_open"] == 0,
                   "the connection closed")
