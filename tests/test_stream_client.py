"""The stream connection's policy and names, without a network (see test_live for the rest)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import msgspec
import pytest

from binance_simulator.testkit import FakeClock
from collector.errors import BadResponse
from collector.stream_client import (ConnectPolicy, FeedTiming, StreamFeed, _Connection,
                                     stream_name, stream_url)


def test_stream_names_are_lower_case_and_urls_percent_encode_unicode() -> None:
    assert stream_name("BTCUSDT", "bookTicker") == "btcusdt@bookTicker"
    assert stream_name("币安人生USDT", "depth@100ms") == "币安人生usdt@depth@100ms"
    assert stream_url("wss://data-stream.binance.vision/", ["btcusdt@bookTicker",
                                                            "币安人生usdt@bookTicker"]) == (
        "wss://data-stream.binance.vision/stream?streams=btcusdt@bookTicker/"
        "%E5%B8%81%E5%AE%89%E4%BA%BA%E7%94%9Fusdt@bookTicker")


def policy(rng: float = 1.0) -> tuple[ConnectPolicy, FakeClock]:
    clock = FakeClock()
    return ConnectPolicy(FeedTiming(), clock, lambda: rng), clock


def test_the_first_attempt_and_a_planned_replacement_do_not_wait() -> None:
    connect, _ = policy()
    assert connect.delay() == 0
    connect.attempted()
    connect.failed()
    connect.planned()
    assert connect.delay() == 0


@pytest.mark.parametrize("rng, factor", [(0.0, 0.5), (1.0, 1.0)])
def test_back_off_doubles_with_jitter_up_to_a_minute(rng: float, factor: float) -> None:
    connect, _ = policy(rng)
    delays = []
    for _ in range(9):
        connect.attempted()
        connect.failed()
        delays.append(connect.delay())
    assert delays == [factor * d for d in (1, 2, 4, 8, 16, 32, 60, 60, 60)]
    connect.healthy()  # a connection that lasted: the next loss starts over
    connect.failed()
    assert connect.delay() == factor * 1


def test_never_more_than_30_attempts_in_5_minutes() -> None:
    connect, clock = policy()
    for _ in range(30):
        assert connect.delay() == 0  # planned replacements: no back-off
        connect.attempted()
        clock.advance(1)
    assert connect.delay() == pytest.approx(300 - 30)  # until the first leaves the window
    clock.advance(270)
    assert connect.delay() == 0


class Recorder:
    """A StreamHandler that keeps what it was told."""

    def __init__(self, fail: bool = False) -> None:
        self.events: list[tuple[str, Any]] = []
        self.bad: list[str] = []
        self.fail = fail

    def on_connected(self) -> None: ...
    def on_disconnected(self, reason: str) -> None: ...  # pylint: disable=unused-argument
    def on_reconnect(self, reason: str) -> None: ...  # pylint: disable=unused-argument

    def on_message(self, stream: str, data: Any) -> None:
        if self.fail:
            raise KeyError("a bug")
        self.events.append((stream, data))

    def on_bad_message(self, error: BadResponse) -> None:
        self.bad.append(str(error))


def dispatch(text: str, handler: Recorder | None = None) -> tuple[Recorder, Any]:
    handler = handler or Recorder()
    feed = StreamFeed(["ws://127.0.0.1:9"], handler)
    connection = _Connection(None, "ws://127.0.0.1:9",  # type: ignore[arg-type]
                             {"ethbtc@depth@100ms"}, 0.0)
    feed._dispatch(connection, text)  # pylint: disable=protected-access
    return handler, connection


def test_events_go_to_the_handler_and_mark_their_stream_delivered() -> None:
    """The event goes on undecoded, for models' parsers to decode typed."""
    handler, connection = dispatch('{"stream":"ethbtc@depth@100ms","data":{"e":"depthUpdate"}}')
    [(stream, data)] = handler.events
    assert stream == "ethbtc@depth@100ms" and isinstance(data, msgspec.Raw)
    assert msgspec.json.decode(data) == {"e": "depthUpdate"}
    assert connection.caught_up()


def test_server_shutdown_is_noted_not_handed_on() -> None:
    handler, connection = dispatch(
        '{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":1}}')
    assert connection.shutdown.is_set() and not handler.events


@pytest.mark.parametrize("text", ['{"result":null,"id":1}',
                                  '{"error":{"code":2,"msg":"x"},"id":1}'])
def test_replies_to_our_requests_are_not_events(text: str, caplog: pytest.LogCaptureFixture
                                                ) -> None:
    handler, _ = dispatch(text)
    assert not handler.events and not handler.bad
    assert ("refused request 1" in caplog.text) == ("error" in text)


@pytest.mark.parametrize("text, problem", [
    ('{"stream":"ethbtc@depth@', "not JSON"),
    ("[1, 2]", "neither a stream event nor a reply"),
    ('{"stream":"ethbtc@depth@100ms","data":[]}', "neither a stream event nor a reply"),
])
def test_unreadable_messages_are_reported_as_bad(text: str, problem: str) -> None:
    handler, _ = dispatch(text)
    assert handler.bad == [f"stream: field message: {problem}"] and not handler.events


@pytest.mark.parametrize("text, problem", [
    ("[1, 2", "not JSON"),  # not an object: what follows is read only to tell a reply
    ('{"stream":7,"data":{}}', "neither a stream event nor a reply"),
    ('{"stream":"ethbtc@depth@100ms"}', "neither a stream event nor a reply"),
    ('{"stream":"ethbtc@depth@100ms","data": "serverShutdown"}',
     "neither a stream event nor a reply"),
])
def test_messages_that_are_not_events_are_told_apart(text: str, problem: str) -> None:
    handler, connection = dispatch(text)
    assert handler.bad == [f"stream: field message: {problem}"] and not handler.events
    assert not connection.shutdown.is_set()


def test_a_mention_of_server_shutdown_is_not_one() -> None:
    text = '{"stream":"x@bookTicker","data":{"e":"serverShutdownNot","s":"serverShutdown"}}'
    handler, connection = dispatch(text)
    assert [stream for stream, _ in handler.events] == ["x@bookTicker"]
    assert not connection.shutdown.is_set()


def test_a_bug_in_the_handler_is_logged_and_reading_goes_on(caplog: pytest.LogCaptureFixture
                                                            ) -> None:
    handler, _ = dispatch('{"stream":"ethbtc@depth@100ms","data":{}}', Recorder(fail=True))
    assert "applying an event of ethbtc@depth@100ms failed" in caplog.text
    assert not handler.bad


def test_a_top_level_error_reply_is_a_reply_not_a_bad_message(
        caplog: pytest.LogCaptureFixture) -> None:
    handler, _ = dispatch('{"code": 2, "msg": "Invalid request", "id": 7}')
    assert not handler.bad and not handler.events
    assert "refused request 7" in caplog.text


class Socket:
    """A connection's socket that notes when each message was sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[float, Any]] = []

    async def send_str(self, text: str) -> None:
        self.sent.append((time.monotonic(), json.loads(text)))


def test_subscription_changes_are_paced_under_binance_s_message_rate() -> None:
    """SUBSCRIBE and UNSUBSCRIBE at least ``request_interval`` (0.3 s) apart: with pongs,
    under Binance's 5 incoming messages a second."""
    async def scenario() -> list[tuple[float, Any]]:
        feed = StreamFeed(["ws://127.0.0.1:9"], Recorder())
        socket = Socket()
        connection = _Connection(socket, "ws://127.0.0.1:9",  # type: ignore[arg-type]
                                 {"a@bookTicker", "b@bookTicker"}, 0.0)
        for wanted in ({"b@bookTicker", "c@bookTicker"}, {"c@bookTicker", "d@bookTicker"}):
            feed.want(wanted)
            await feed._resubscribe(connection)  # pylint: disable=protected-access
        assert connection.subscribed == {"c@bookTicker", "d@bookTicker"}
        return socket.sent

    sent = asyncio.run(scenario())
    assert [(m["method"], m["params"]) for _, m in sent] == [
        ("SUBSCRIBE", ["c@bookTicker"]), ("UNSUBSCRIBE", ["a@bookTicker"]),
        ("SUBSCRIBE", ["d@bookTicker"]), ("UNSUBSCRIBE", ["b@bookTicker"])]
    assert len({m["id"] for _, m in sent}) == 4
    gaps = [b - a for (a, _), (b, _) in zip(sent, sent[1:])]
    assert all(gap >= FeedTiming().request_interval - 0.01 for gap in gaps), gaps
