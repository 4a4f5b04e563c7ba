"""The stream-mode checks of ``make soak`` (``tools/soak.py``), on made-up scrapes.

The soak reports 0 violations when all is well; these tests show that its checks do count
what they are meant to count, so that a 0 in RELIABILITY.md means something. The market
is the simulator's own (``Model``), the connection log is written by hand in the shape of
``GET /_sim/connections``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SOAK_PATH = Path(__file__).resolve().parent.parent / "tools" / "soak.py"
STEP = 1_796_000_000  # a market step (1 s each): its Unix time


def load_soak() -> ModuleType:
    spec = importlib.util.spec_from_file_location("soak", SOAK_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["soak"] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


soak = load_soak()


def connection(streams: dict[str, list[list[float | None]]], sent: range,
               closed_at: float | None = None) -> dict[str, Any]:
    """A log entry: subscribed as ``streams`` says, the events of each step in ``sent``
    sent 10 ms into it."""
    since = min(interval[0] for intervals in streams.values() for interval in intervals)
    assert since is not None
    return {"id": 1, "outcome": "accepted", "status": 101, "at": since,
            "closed_at": closed_at, "closed": None if closed_at is None else "abrupt",
            "streams": streams, "sent": [[step, step + 0.01] for step in sent]}


@pytest.fixture(scope="module")
def model() -> Any:
    return soak.Model(STEP - soak.LOOKBACK - 20, STEP + 20)


def top(model: Any, step: int, symbol: str = "BTCUSDT") -> tuple[float, float]:
    return model._top(symbol, step)  # pylint: disable=protected-access


def showing(model: Any, step: int, at: float, symbol: str = "BTCUSDT",
            connected: float = 1) -> Any:
    """A scrape sent at ``at`` that shows ``symbol``'s best bid/ask of ``step``."""
    bid, ask = top(model, step, symbol)
    return soak.Shown(at, at + 0.01, connected, {symbol: bid}, {symbol: ask}, {symbol})


def unlike(model: Any, steps: range, among: range) -> int:
    """A step of ``steps`` whose best bid/ask is none of those of ``among`` (a symbol has
    only a few dozen price pairs: most recur)."""
    return next(step for step in steps
                if top(model, step) not in {top(model, other) for other in among})


def test_a_value_only_a_gone_connection_carried_counts(model: Any) -> None:
    """The first connection closed 3 s before the scrape; its successor, open since 2 s
    before, carries only what it started from and sent since, so a value of the first
    one's that it never carried counts (and a value it sent does not). A value whose
    only connection went less than GRACE before the scrape is a close call."""
    old = unlike(model, range(STEP - 9, STEP - 2), range(STEP - 2, STEP + 1))
    log = [connection({"btcusdt@bookTicker": [[STEP - 10.0, STEP - 3.0]]},
                      range(STEP - 9, STEP - 2), closed_at=STEP - 3.0),
           connection({"btcusdt@bookTicker": [[STEP - 2.0, None]]}, range(STEP - 1, STEP + 1)),
           connection({"ethbtc@bookTicker": [[STEP - 20.0, STEP + 0.2]]},
                      range(STEP - 19, STEP + 1), closed_at=STEP + 0.2)]
    checks = soak.Checks(log, model)
    checks.check(showing(model, old, STEP + 0.5))
    checks.check(showing(model, STEP, STEP + 0.5))
    checks.check(showing(model, STEP, STEP + 0.7, "ETHBTC"))
    assert [finding.why for finding in checks.gone] == [
        f"btcusdt@bookTicker {top(model, old)}: carried only by connections gone 3.500 s "
        "before"]
    assert not checks.stale
    assert checks.close_calls == [(pytest.approx(0.5), "abrupt", STEP + 0.7, "ethbtc@bookTicker")]


def test_an_old_value_of_an_open_connection_is_stale(model: Any) -> None:
    """Sent more than FRESH before the scrape and replaced since: stale, not gone."""
    old = unlike(model, range(STEP - 10, STEP - 4), range(STEP - 3, STEP + 4))
    log = [connection({"btcusdt@bookTicker": [[STEP - 20.0, None]]}, range(STEP - 19, STEP + 4))]
    checks = soak.Checks(log, model)
    checks.check(showing(model, old, STEP + 3.5))
    checks.check(showing(model, STEP, STEP + 3.5))  # the last one sent FRESH before: fresh
    assert not checks.gone
    last = max(step for step in range(old, STEP) if top(model, step) == top(model, old))
    assert [finding.why for finding in checks.stale] == [
        f"btcusdt@bookTicker {top(model, old)}: its connection sent a newer one "
        f"{STEP + 3.5 - (last + 1.01):.1f} s before"]


def test_values_shown_while_disconnected_count_and_unknown_values_too(model: Any) -> None:
    log = [connection({"btcusdt@bookTicker": [[STEP - 10.0, None]]}, range(STEP - 9, STEP + 1))]
    checks = soak.Checks(log, model)
    checks.check(showing(model, STEP, STEP + 0.5, connected=0))
    checks.check(soak.Shown(STEP + 0.5, STEP + 0.51, 1, {"BTCUSDT": 1.0}, {"BTCUSDT": 2.0}))
    assert [finding.why for finding in checks.gone] == [
        "values shown with binance_stream_connected 0",
        "btcusdt@bookTicker (1.0, 2.0): no connection carried it"]


def test_a_book_counts_when_unsynced_or_unlike_the_simulators(model: Any) -> None:
    """The notional of a step's book, synced, carried by an open connection: fine. The same
    while synced is 0, or a notional no step had: counted, the latter with the time its
    book was synced (between the last scrape showing it unsynced and the first synced)."""
    bid, ask = model._notional("ETHBTC", STEP - 1)  # pylint: disable=protected-access
    log = [connection({"ethbtc@depth@100ms": [[STEP - 10.0, None]]}, range(STEP - 9, STEP + 1))]
    checks = soak.Checks(log, model)

    def scrape(at: float, synced: float, books: dict[str, dict[str, float]]) -> Any:
        return soak.Shown(at, at + 0.01, 1, books=books, synced={"ETHBTC": synced})

    checks.check(scrape(STEP - 1.0, 0, {}))
    checks.check(scrape(STEP + 0.2, 1, {"ETHBTC": {"bid": bid, "ask": ask}}))
    checks.check(scrape(STEP + 0.3, 0, {"ETHBTC": {"bid": bid, "ask": ask}}))
    checks.check(scrape(STEP + 0.4, 1, {"ETHBTC": {"bid": bid, "ask": 0.0}}))
    assert not checks.gone and not checks.stale
    assert [finding.why for finding in checks.unsynced] == [
        f"ETHBTC notional {(bid, ask)} while synced is 0",
        f"ETHBTC notional {(bid, 0.0)}: the simulator's book at no step of the last "
        f"{soak.LOOKBACK} s"]
    assert checks.unsynced[1].synced_between == (STEP + 0.31, STEP + 0.4)


def test_faults_on_the_depth_answers_are_found_by_when_the_book_synced() -> None:
    switches = soak.Switches()
    switches.add(STEP - 30.0, [{"name": "crossed_book", "endpoints": ["/api/v3/depth"]}])
    switches.add(STEP - 26.0, [{"name": "ws_gap"}])
    switches.add(STEP - 3.0, [{"name": "empty_book_side", "side": "ask",
                               "endpoints": ["/api/v3/ticker/24hr", "/api/v3/depth"]}])
    switches.add(STEP + 1.0, [])
    shown = soak.Shown(STEP + 5.0, STEP + 5.01)

    def cause(start: float, end: float) -> str:
        return str(switches.corrupted_snapshot(soak.Finding(shown, "", "ETHBTC", (start, end))))

    assert cause(STEP - 0.5, STEP) == "empty_book_side"
    assert cause(STEP - 27.0, STEP - 26.5) == "crossed_book"
    assert cause(STEP - 20.0, STEP - 19.0) == ""  # ws_gap alone: not a depth answer
    assert cause(STEP + 6.0, STEP + 7.0) == ""
    assert switches.describe(STEP) == "empty_book_side(/api/v3/ticker/24hr, /api/v3/depth)"


def test_the_report_keeps_the_other_modes_section() -> None:
    report = soak.merge("", "REST mode", "## REST mode\n\nrest figures\n")
    report = soak.merge(report, "Stream mode", "## Stream mode\n\nstream figures\n")
    report = soak.merge(report, "REST mode", "## REST mode\n\nnew rest figures\n")
    assert report == (soak.INTRO + "\n## REST mode\n\nnew rest figures\n\n"
                      "## Stream mode\n\nstream figures\n")


def test_attempts_in_any_window() -> None:
    assert soak.busiest([0.0, 1.0, 2.0, 299.0, 300.0, 650.0], 300.0) == (4, 299.0)
    assert soak.busiest([0.0, 300.0, 600.0], 300.0) == (1, 0.0)  # the exporter's window: 300 s
    assert soak.busiest([], 300.0) == (0, 0.0)
