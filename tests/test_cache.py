"""TTL groups: expiry on an injected clock, single flight, remembered failures."""

from __future__ import annotations

import threading

import pytest
from conftest import FakeClock

from collector.cache import TtlGroup
from collector.errors import UpstreamUnavailable


class Loader:
    """Counts calls; fails while ``failing`` is set."""

    def __init__(self) -> None:
        self.calls = 0
        self.failing = False

    def __call__(self) -> int:
        self.calls += 1
        if self.failing:
            raise UpstreamUnavailable("/x", "down")
        return self.calls


def test_value_is_reused_until_the_ttl_runs_out(clock: FakeClock) -> None:
    group: TtlGroup[int] = TtlGroup("g", 10, clock=clock, wall=clock.wall)
    load = Loader()
    first = group.get(load)
    assert (first.value, first.refreshed, first.ok) == (1, True, True)
    clock.advance(9.999)
    assert (group.get(load).value, group.get(load).refreshed) == (1, False)
    clock.advance(0.001)
    assert group.get(load).value == 2
    assert group.last_success == clock.wall() and group.refreshes == 2


def test_a_new_key_is_a_miss_within_the_ttl(clock: FakeClock) -> None:
    """Books cached for last ranking's symbols are not the books of a new ranking."""
    group: TtlGroup[int] = TtlGroup("g", 30, clock=clock)
    load = Loader()
    assert group.get(load, key=("A",)).value == 1
    assert group.get(load, key=("A",)).value == 1
    assert group.get(load, key=("B",)).value == 2


def test_failure_is_remembered_for_the_retry_delay_and_never_serves_stale(
    clock: FakeClock,
) -> None:
    group: TtlGroup[int] = TtlGroup("g", 10, retry_delay=10, clock=clock)
    load = Loader()
    group.get(load)
    clock.advance(10)
    load.failing = True
    failed = group.get(load)
    assert failed.value is None and isinstance(failed.error, UpstreamUnavailable)
    assert failed.refreshed and not failed.ok
    assert group.last_good == 1  # kept for "which symbols", never published
    clock.advance(9)
    again = group.get(load)
    assert again.error is failed.error and not again.refreshed
    assert load.calls == 2  # no attempt inside the retry delay
    load.failing = False
    clock.advance(1)
    assert group.get(load).value == 3
    assert (group.failures, group.last_error) == ({"unavailable": 1}, None)


def test_invalidate_forces_a_refresh(clock: FakeClock) -> None:
    group: TtlGroup[int] = TtlGroup("g", 300, clock=clock)
    load = Loader()
    group.get(load)
    group.invalidate()
    assert group.get(load).value == 2


def test_concurrent_callers_cause_one_refresh() -> None:
    """20 scrapes arriving together on an expired group: one upstream call, 20 answers."""
    group: TtlGroup[int] = TtlGroup("g", 10)
    entered = threading.Event()
    release = threading.Event()
    calls = []

    def slow_load() -> int:
        calls.append(1)
        entered.set()
        release.wait(5)
        return 42

    results: list[int | None] = []
    threads = [threading.Thread(target=lambda: results.append(group.get(slow_load).value))
               for _ in range(20)]
    for thread in threads:
        thread.start()
    assert entered.wait(5)
    # whether the others are already queued on the lock or arrive after the
    # release, each must get the one value: no timing luck involved
    release.set()
    for thread in threads:
        thread.join(5)
    assert results == [42] * 20
    assert len(calls) == 1


def test_bugs_in_a_loader_are_not_swallowed(clock: FakeClock) -> None:
    group: TtlGroup[int] = TtlGroup("g", 10, clock=clock)

    def broken() -> int:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        group.get(broken)
