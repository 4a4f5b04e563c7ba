"""TTL groups: expiry on an injected clock, single flight, remembered failures."""

from __future__ import annotations

import threading

import pytest
from conftest import FakeClock

from collector.cache import TtlGroup
from collector.errors import NotAttempted, RateLimited, UpstreamUnavailable


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
    assert group.last_success == clock.wall()


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
    assert group.last_good == 1  # kept to decide what to fetch, never published
    clock.advance(9)
    again = group.get(load)
    assert again.error is failed.error and not again.refreshed
    assert load.calls == 2  # no attempt inside the retry delay
    load.failing = False
    clock.advance(1)
    assert group.get(load).value == 3
    assert group.failure_counts() == {"unavailable": 1}


def attempts_per_second(group: TtlGroup[int], load: Loader, clock: FakeClock,
                        seconds: int) -> list[int]:
    """The seconds at which a scrape every second made ``load`` run."""
    attempts = []
    for second in range(seconds):
        before = load.calls
        group.get(load)
        if load.calls > before:
            attempts.append(second)
        clock.advance(1)
    return attempts


@pytest.mark.parametrize("ttl", [300, 3600])
def test_a_group_without_data_retries_at_least_every_minute(ttl: float, clock: FakeClock) -> None:
    """Started during an outage: back off 10, 20, 40 s, then every 60 s, never its whole TTL.

    An exporter started while Binance was unreachable must recover within a
    minute of Binance coming back, not after an hour (exchangeInfo's TTL).
    """
    group: TtlGroup[int] = TtlGroup("exchange", ttl, retry_delay=10, clock=clock)
    load = Loader()
    load.failing = True
    assert attempts_per_second(group, load, clock, 7200) == [
        0, 10, 30, 70, *range(130, 7200, 60)]
    load.failing = False
    clock.advance(7210 - 7200)
    assert group.get(load).ok  # recovers at the first scrape after the delay


def test_a_group_with_data_backs_off_up_to_its_ttl(clock: FakeClock) -> None:
    """Once it has data, an outage costs no more than health: every TTL at most."""
    group: TtlGroup[int] = TtlGroup("rankings", 300, retry_delay=10, clock=clock)
    load = Loader()
    assert group.get(load).ok
    clock.advance(300)
    load.failing = True
    assert attempts_per_second(group, load, clock, 1500) == [0, 60, 180, 420, 720, 1020, 1320]


def test_a_rate_limit_is_held_until_the_cool_down_ends_not_longer(clock: FakeClock) -> None:
    """A group that fell due during a cool-down is retried by the first call after it ends."""
    group: TtlGroup[int] = TtlGroup("exchange", 3600, retry_delay=10, clock=clock)

    def limited() -> int:
        raise RateLimited("/x", "cooling down", 45)

    group.get(limited)
    clock.advance(44.9)
    assert group.peek() is not None  # still held
    clock.advance(0.1)
    assert group.peek() is None and group.get(Loader()).ok


def test_a_refresh_that_sent_nothing_is_not_held(clock: FakeClock) -> None:
    """NotAttempted (no ranking yet, no time left) cost Binance nothing: try at the next call."""
    group: TtlGroup[int] = TtlGroup("spreads", 10, retry_delay=10, clock=clock)

    def not_yet() -> int:
        raise NotAttempted("/x", "no ranking yet")

    assert group.get(not_yet).error is not None
    assert group.peek() is None
    assert group.get(Loader()).ok


def test_a_short_ttl_group_retries_every_10_s(clock: FakeClock) -> None:
    group: TtlGroup[int] = TtlGroup("spreads", 10, retry_delay=10, clock=clock)
    load = Loader()
    load.failing = True
    for _ in range(5):
        group.get(load)
        clock.advance(10)
    assert load.calls == 5


def test_now_forces_a_refresh_past_the_ttl_and_a_held_failure(clock: FakeClock) -> None:
    """An explicit refresh (a report's Q5 tick) is never held back; a failed one serves nothing."""
    group: TtlGroup[int] = TtlGroup("g", 300, clock=clock)
    load = Loader()
    group.get(load)
    assert group.get(load, now=True).value == 2
    load.failing = True
    assert group.get(load, now=True).error is not None
    assert group.get(load).error is not None  # held, and the old value is gone
    load.failing = False
    assert group.get(load, now=True).value == 4  # calls: 1, 2, failed 3, 4


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
    assert not group.failure_counts()  # readable while the refresh holds the lock
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


def test_peek_answers_like_get_without_ever_loading(clock: FakeClock) -> None:
    """A scrape served from cache needs no thread hand-off: peek says whether one is due."""
    group: TtlGroup[int] = TtlGroup("g", 10, clock=clock)
    load = Loader()
    assert group.peek() is None  # nothing yet: a refresh is due
    group.get(load)
    fresh = group.peek()
    assert fresh is not None and (fresh.value, fresh.refreshed) == (1, False)
    clock.advance(10)
    assert group.peek() is None
    load.failing = True
    group.get(load)
    remembered = group.peek()
    assert remembered is not None and remembered.error is not None
    clock.advance(10)
    assert group.peek() is None
    assert load.calls == 2


def test_a_days_long_outage_keeps_retrying_every_ttl(clock: FakeClock) -> None:
    """2 ** 1024 overflows a float: the backoff must not grow without bound."""
    group: TtlGroup[int] = TtlGroup("spreads", 10, retry_delay=10, clock=clock)
    load = Loader()
    load.failing = True
    for _ in range(3000):  # more than 8 hours of failures, one every 10 s
        group.get(load)
        clock.advance(10)
    assert load.calls == 3000


def test_a_group_with_data_retries_a_failure_only_after_its_ttl(clock: FakeClock) -> None:
    """Failures are remembered like successes: a failing Binance costs no more than a healthy one.

    The soak showed why: with faults flapping, books (TTL 30 s) retried every 10 s
    cost 424 weight a minute against 274 when healthy.
    """
    group: TtlGroup[int] = TtlGroup("books", 30, retry_delay=10, clock=clock)
    load = Loader()
    group.get(load)
    clock.advance(30)
    load.failing = True
    group.get(load)
    clock.advance(29)
    group.get(load)
    assert load.calls == 2  # not retried at 10 or 20 s
    clock.advance(1)
    load.failing = False
    assert group.get(load).ok and load.calls == 3


def attempts_while_failing(group: TtlGroup[int], load: Loader, clock: FakeClock,
                           seconds: int) -> list[int]:
    """Seconds (from now) at which a scrape every second made an upstream attempt."""
    load.failing = True
    attempts = []
    for second in range(seconds):
        before = load.calls
        group.get(load)
        if load.calls > before:
            attempts.append(second)
        clock.advance(1)
    return attempts


def test_a_blip_on_a_slow_group_clears_within_a_minute_not_its_ttl(clock: FakeClock) -> None:
    """One failed exchangeInfo refresh must not hold binance_up at 0 for an hour."""
    group: TtlGroup[int] = TtlGroup("exchange", 3600, retry_delay=10, clock=clock)
    load = Loader()
    group.get(load)
    clock.advance(3600)
    assert attempts_while_failing(group, load, clock, 1000) == [0, 60, 180, 420, 900]


def test_nothing_sent_is_retried_soon(clock: FakeClock) -> None:
    """NotAttempted (budget spent, no ranking yet): nothing reached Binance, so no long hold."""
    group: TtlGroup[int] = TtlGroup("books", 30, retry_delay=10, clock=clock)

    def not_attempted() -> int:
        raise NotAttempted("/api/v3/depth", "no ranking yet to pick symbols from")

    for _ in range(3):
        assert group.get(not_attempted).error is not None
        clock.advance(10)
    assert group.failure_counts() == {"not_attempted": 3}
