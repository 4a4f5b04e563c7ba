"""Tests of the simulator's WebSocket streams (``binance_simulator.streams``, ``stream_server``).

Most tests serve REST and streams in threads of this process from one ``Simulator`` with a
fake clock: a test moves the clock, then ``StreamServer.wake()`` returns once every
connection has sent what is due, so steps, pings and closes happen exactly when the test
says, without sleeping. Clients are aiohttp's (``ClientSession.ws_connect``), as the
exporter's will be. One test drives the real ``binance-simulator`` through the test kit.
"""

from __future__ import annotations

import asyncio
import json
import signal
import statistics
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp.http_websocket import WSMessageTextBytes
from yarl import URL

from binance_simulator import cli
from binance_simulator.faults import Fault, FaultError, FaultSet
from binance_simulator.market import SimulatedMarket
from binance_simulator.streams import StreamSettings
from binance_simulator.testkit import (T0, InProcessSimulator, SimulatorProcess,
                                       running_simulator, serving_in_process)

TIMEOUT = 10.0  # generous: a message that is due arrives in milliseconds
UNICODE = "币安人生USDT"
Json = Any
Client = aiohttp.ClientWebSocketResponse[bool]  # mypy targets 3.10: no Literal overloads


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(scenario())


def stream_query(*names: str) -> str:
    """``/stream?streams=a/b`` with every name percent-encoded, as a client sends them."""
    return "/stream?streams=" + "/".join(quote(name, safe="") for name in names)


class Sim(InProcessSimulator):
    """The shared in-process simulator, plus what these tests do from an event loop."""

    async def advance(self, seconds: float) -> None:
        """Move the clock; return once every connection has sent what is now due."""
        self.clock.advance(seconds)
        await asyncio.wrap_future(self.streams.wake())

    async def advance_to(self, moment: int) -> None:
        """Move the clock to the start of ``moment`` (set, not added up: a thousand small
        steps added to a Unix time would drift off the moments' edges)."""
        market = self.market
        self.clock.now = market.moment_seconds(moment)
        assert market.moment() == moment
        await asyncio.wrap_future(self.streams.wake())

    def sent(self) -> int:
        """How many messages the streams have sent so far (their ``/_sim/stats``, read in
        process)."""
        return sum(self.rest.simulator.stats.streams.snapshot()["messages_sent"].values())

    @asynccontextmanager
    async def connect(self, target: str = "/stream", autoping: bool = True
                      ) -> AsyncIterator[Client]:
        """A client connected to ``target``, sent as given (percent-encoding untouched)."""
        async with aiohttp.ClientSession() as session, session.ws_connect(
                URL(self.streams.url + target, encoded=True), autoping=autoping) as ws:
            yield ws


@contextmanager
def serving(settings: StreamSettings = StreamSettings(), step_seconds: float = 1.0,
            weight_limit: int = 6000) -> Iterator[Sim]:
    with serving_in_process(settings, step_seconds, T0, weight_limit) as sim:
        yield Sim(sim.rest, sim.streams, sim.clock)


@pytest.fixture(name="sim")
def fixture_sim() -> Iterator[Sim]:
    with serving() as sim:
        yield sim


async def request(ws: Client, method: str, *params: Any,
                  ident: Any = 1) -> Json:
    await ws.send_json({"method": method, "params": list(params), "id": ident})
    return await ws.receive_json(timeout=TIMEOUT)


async def text(ws: Client) -> str:
    """The next message, which must be text."""
    received = await ws.receive_str(timeout=TIMEOUT)
    assert isinstance(received, str)
    return received


async def closed(ws: Client) -> aiohttp.WSMessage | WSMessageTextBytes:
    """The next message, which must end the connection."""
    message = await ws.receive(timeout=TIMEOUT)
    assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                            aiohttp.WSMsgType.ERROR), message
    return message


class Gap(Exception):
    """An event that does not continue the local book: discard it and resync."""


class ModelBook:
    """A local order book kept as Binance's "How to manage a local order book correctly"
    says: from a REST snapshot, ignore events with ``u`` <= the book's update id, and every
    event applied must start at most one id after it."""

    def __init__(self, snapshot: Json) -> None:
        self.update_id: int = snapshot["lastUpdateId"]
        self.sides = {"b": dict(snapshot["bids"]), "a": dict(snapshot["asks"])}
        self.applied = 0

    def apply(self, event: Json) -> None:
        if event["u"] <= self.update_id:
            return
        if event["U"] > self.update_id + 1:
            raise Gap(f"U {event['U']} after {self.update_id}")
        for side in "ba":
            for price, qty in event[side]:
                if Decimal(qty) == 0:
                    self.sides[side].pop(price, None)
                else:
                    self.sides[side][price] = qty
        self.update_id = event["u"]
        self.applied += 1

    def levels(self, side: str) -> list[list[str]]:
        ordered = sorted(self.sides[side].items(), key=lambda level: Decimal(level[0]),
                         reverse=side == "b")
        return [list(level) for level in ordered]


def rest_book_ticker_event(sim: Sim, symbol: str) -> Json:
    """The bookTicker event the REST answers at the current step imply."""
    best = sim.get(f"/api/v3/ticker/bookTicker?symbol={quote(symbol)}")
    update_id = sim.get(f"/api/v3/depth?symbol={quote(symbol)}&limit=1")["lastUpdateId"]
    return {"u": update_id, "s": symbol, "b": best["bidPrice"], "B": best["bidQty"],
            "a": best["askPrice"], "A": best["askQty"]}


# -- names, wrapping, bookTicker --------------------------------------------------------


def test_combined_stream_wraps_events_and_takes_url_encoded_unicode_names(sim: Sim) -> None:
    """Binance's symbols may be non-ASCII: the stream name arrives percent-encoded, comes
    back decoded in the wrapper, and the event names the symbol in UTF-8."""
    names = [UNICODE.lower() + "@bookTicker", "btcusdt@bookTicker"]

    async def scenario() -> None:
        async with sim.connect(stream_query(*names)) as ws:
            assert await request(ws, "LIST_SUBSCRIPTIONS") == {"result": names, "id": 1}
            await sim.advance(1)
            received = [await text(ws) for _ in range(2)]
            assert UNICODE in "".join(received)  # UTF-8 as is, not \\u escapes
            events = {json.loads(raw)["stream"]: json.loads(raw) for raw in received}
            assert set(events) == set(names)
            assert set(events[names[0]]) == {"stream", "data"}
            assert events[names[0]]["data"] == rest_book_ticker_event(sim, UNICODE)

    run(scenario)


def test_book_ticker_events_equal_the_rest_book_ticker_step_after_step(sim: Sim) -> None:
    """BTCUSDT, one of the busiest symbols, changes on every step."""
    async def scenario() -> None:
        async with sim.connect(stream_query("btcusdt@bookTicker")) as ws:
            for _ in range(4):
                await sim.advance(1)
                event = await ws.receive_json(timeout=TIMEOUT)
                assert event == {"stream": "btcusdt@bookTicker",
                                 "data": rest_book_ticker_event(sim, "BTCUSDT")}
            stats = sim.get("/_sim/stats")["streams"]
            assert (stats["connections_open"], stats["messages_sent"]) == (1, {"bookTicker": 4})

    run(scenario)


def test_raw_streams_and_the_combined_property(sim: Sim) -> None:
    """``/ws/<name>`` sends bare events; SET_PROPERTY combined turns the wrapper on."""
    async def scenario() -> None:
        async with sim.connect("/ws/ethbtc@bookTicker") as ws:
            assert await request(ws, "GET_PROPERTY", "combined") == {"result": False, "id": 1}
            await sim.advance(1)
            assert await ws.receive_json(timeout=TIMEOUT) == rest_book_ticker_event(sim, "ETHBTC")
            assert await request(ws, "SET_PROPERTY", "combined", True) == {"result": None, "id": 1}
            await sim.advance(1)
            assert (await ws.receive_json(timeout=TIMEOUT))["stream"] == "ethbtc@bookTicker"

    run(scenario)


def test_bad_stream_names_are_refused_before_the_upgrade(sim: Sim) -> None:
    async def scenario() -> None:
        for target in ("/stream?streams=BTCUSDT@bookTicker", "/stream?streams=btcusdt@trade",
                       "/ws/btcusdt"):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                async with sim.connect(target):
                    pass
            assert refused.value.status == 400

    run(scenario)


# -- depth: the local book ----------------------------------------------------------------


@pytest.mark.parametrize(("symbol", "limit"), [("BTCUSDT", 5000), (UNICODE, 500),
                                             ("BNBBTC", 100)])
def test_a_local_book_from_a_snapshot_and_the_events_is_the_rest_book(
        sim: Sim, symbol: str, limit: int) -> None:
    """The key property: events carry the levels that changed since the last event, with
    U/u continuing the snapshot's lastUpdateId, so a client following Binance's procedure
    holds the REST book step after step -- also when one event spans several steps. The
    snapshot is taken after some events were buffered (they are dropped: u <=
    lastUpdateId); the first kept event starts at lastUpdateId + 1. As Binance warns, a
    level deeper than the snapshot that never changes stays unknown: so every level held is
    REST's, the top of the book (well inside the snapshot's depth) is REST's, and a full
    snapshot gives the full book. BNBBTC, a quieter symbol, changes on 9 steps of 10: on a
    step without a change its lastUpdateId stays, and no event comes."""
    name = symbol.lower() + "@depth@100ms"

    def moved(update_id: int) -> bool:
        """Whether the book's lastUpdateId is past ``update_id``: an event is due."""
        return bool(sim.get(f"/api/v3/depth?symbol={quote(symbol)}&limit=1")["lastUpdateId"]
                    > update_id)

    def check(book: ModelBook) -> None:
        full = sim.get(f"/api/v3/depth?symbol={quote(symbol)}&limit=5000")
        top = sim.get(f"/api/v3/depth?symbol={quote(symbol)}&limit={limit * 4 // 5}")
        assert book.update_id == full["lastUpdateId"]
        for side, levels in (("b", full["bids"]), ("a", full["asks"])):
            assert book.sides[side].items() <= dict(levels).items()  # nothing stale
        assert (book.levels("b")[:len(top["bids"])], book.levels("a")[:len(top["asks"])]) \
            == (top["bids"], top["asks"])
        if limit == 5000:
            assert (book.levels("b"), book.levels("a")) == (full["bids"], full["asks"])

    async def scenario() -> None:
        async with sim.connect(stream_query(name)) as ws:
            buffered: list[Json] = []
            while len(buffered) < 2:
                last = sim.get(f"/api/v3/depth?symbol={quote(symbol)}&limit=1")
                await sim.advance(1)
                if moved(last["lastUpdateId"]):
                    buffered.append((await ws.receive_json(timeout=TIMEOUT))["data"])
            snapshot = sim.get(f"/api/v3/depth?symbol={quote(symbol)}&limit={limit}")
            assert all(event["u"] <= snapshot["lastUpdateId"] for event in buffered)
            book = ModelBook(snapshot)
            for event in buffered:
                book.apply(event)
            expected = 0
            for seconds in (1, 1, 3, 1, 1, 1):
                await sim.advance(seconds)
                if not moved(book.update_id):
                    check(book)
                    continue
                event = (await ws.receive_json(timeout=TIMEOUT))["data"]
                assert event["U"] == book.update_id + 1 and event["s"] == symbol
                assert event["e"] == "depthUpdate" and event["E"] == int(sim.clock() * 1000)
                book.apply(event)
                expected += 1
                check(book)
            assert book.applied == expected >= 4

    run(scenario)


def test_removed_levels_carry_quantity_zero_in_the_symbols_width(sim: Sim) -> None:
    """``@depth`` is Binance's 1000 ms stream: one event every ten steps."""
    async def scenario() -> None:
        async with sim.connect(stream_query("btcusdt@depth")) as ws:
            before = sim.get("/api/v3/depth?symbol=BTCUSDT&limit=5000")
            await sim.advance(9)
            await sim.advance(1)
            event = (await ws.receive_json(timeout=TIMEOUT))["data"]
            assert event["E"] == int(sim.clock() * 1000) == (T0 + 10) * 1000
            after = sim.get("/api/v3/depth?symbol=BTCUSDT&limit=5000")
            removed = {price for price, _ in before["bids"]} - {p for p, _ in after["bids"]}
            assert removed and all([price, "0.00000000"] in event["b"] for price in removed)
            assert [float(price) for price, _ in event["b"]] == sorted(
                (float(price) for price, _ in event["b"]), reverse=True)

    run(scenario)


BUSY, QUIET = "BTCUSDT", "ETHBTC"  # 7th and 258th of 2,520 symbols by recorded trades
TICKS = {BUSY: Decimal("0.01"), QUIET: Decimal("0.00001")}
RATE_SECONDS, DEPTH_SECONDS, CHECK_SECONDS = 2, 20, 4  # at Binance's pace: 0.1 s a step


class Follower:
    """A client of the depth and bookTicker streams of some symbols: a local book of each
    (from a REST snapshot), the events as they came, the latest best bid/ask."""

    def __init__(self, sim: Sim, symbols: tuple[str, ...]) -> None:
        self.sim = sim
        self.books = {symbol: ModelBook(sim.get(f"/api/v3/depth?symbol={symbol}&limit=5000"))
                      for symbol in symbols}
        self.best = {symbol: rest_book_ticker_event(sim, symbol) for symbol in symbols}
        self.depths: dict[str, list[Json]] = {symbol: [] for symbol in symbols}
        self.tickers: dict[str, list[tuple[int, Json]]] = {symbol: [] for symbol in symbols}

    def on_message(self, message: Json, moment: int, checked: bool) -> None:
        """A message at ``moment``; ``checked``: compare a bookTicker event with REST."""
        event, symbol = message["data"], message["data"]["s"]
        if message["stream"].endswith("@bookTicker"):
            self.best[symbol] = event  # sent before the step's depth events
            if checked:
                assert event == rest_book_ticker_event(self.sim, symbol)
                self.tickers[symbol].append((moment, event))
            return
        book = self.books[symbol]
        assert event["U"] == book.update_id + 1
        book.apply(event)
        self.depths[symbol].append({**event, "near": near_best(self.best[symbol], event)})

    def check_books(self) -> None:
        """Every local book is the REST book, whole."""
        for symbol, book in self.books.items():
            full = self.sim.get(f"/api/v3/depth?symbol={symbol}&limit=5000")
            assert book.update_id == full["lastUpdateId"]
            assert (book.levels("b"), book.levels("a")) == (full["bids"], full["asks"])


def test_a_busy_and_a_quiet_symbol_at_binances_sizes_and_rates() -> None:
    """Recorded Binance Spot streams: BTCUSDT sends ~10 depth events a second of a median
    10-15 levels (mean ~20, p99 ~100), a third of them removals, clustered near the best,
    ~0.75 KB; and 50 to 500 bookTicker events a second. Mid-caps send 3-10 depth events a
    second of 2-8 levels. The exporter must be tested against that load, not another (the
    simulator once sent 15,000 levels, 480 KB, once a second). So: 20 s of the market at
    Binance's pace on the fake clock, the first 2 moment by moment (5 a step), the rest step
    by step. Every depth event continues the last one, and a local book from a REST
    snapshot plus the events is the REST book (checked every 4 s); every bookTicker event
    is the REST best bid/ask of its moment, its ``u`` REST's lastUpdateId then. How many
    messages each move of the clock brings is read from the simulator's own count: nothing
    waits on time."""
    names = [f"{symbol.lower()}@{kind}" for symbol in (BUSY, QUIET)
             for kind in ("depth@100ms", "bookTicker")]

    async def scenario(sim: Sim) -> Follower:
        market = sim.market
        start, substeps = market.moment(), market.substeps
        assert substeps == 5  # 50 bookTicker events a second, by default
        rated = start + RATE_SECONDS * 10 * substeps
        async with sim.connect(stream_query(*names)) as ws:
            follower, sent = Follower(sim, (BUSY, QUIET)), sim.sent()
            for moment in [*range(start + 1, rated + 1),
                           *range(rated + substeps, start + DEPTH_SECONDS * 10 * substeps + 1,
                                  substeps)]:
                await sim.advance_to(moment)
                before, sent = sent, sim.sent()
                for _ in range(sent - before):
                    follower.on_message(await ws.receive_json(timeout=TIMEOUT), moment,
                                        checked=moment <= rated)
                if (moment - start) % (CHECK_SECONDS * 10 * substeps) == 0:
                    follower.check_books()
        return follower

    with serving(step_seconds=0.1, weight_limit=1_000_000) as sim:
        follower = asyncio.run(scenario(sim))
    busy, quiet = (depth_figures(follower.depths[symbol]) for symbol in (BUSY, QUIET))
    assert busy["per_second"] == 10  # every step
    assert 10 <= busy["median"] <= 15
    assert 15 <= busy["mean"] <= 25
    assert 60 <= busy["p99"] <= 120 and busy["max"] <= 140
    assert 0.25 <= busy["removed"] <= 0.4 and busy["near"] >= 0.75
    assert 0.5 <= busy["kb"] <= 1.0
    assert 3 <= quiet["per_second"] <= 10
    assert 2 <= quiet["median"] <= 8
    assert 2 <= quiet["mean"] <= 8
    tickers = follower.tickers
    for events in tickers.values():
        assert [event["u"] for _, event in events] == sorted(
            {event["u"] for _, event in events})  # increasing
    assert len(tickers[BUSY]) / RATE_SECONDS == 50  # every moment: one best level moved
    assert 3 <= len(tickers[QUIET]) / RATE_SECONDS <= 10
    assert all(moment % 5 == 0 for moment, _ in tickers[QUIET])  # its steps' first moments


def near_best(best: Json, event: Json) -> int:
    """How many of a depth ``event``'s levels lie within 100 ticks (about 50 levels) of
    the best price of their side, as the bookTicker event ``best`` gives it."""
    tick = TICKS[event["s"]]
    return sum(abs(Decimal(price) - Decimal(best[side])) <= 100 * tick
               for side in "ba" for price, _ in event[side])


def depth_figures(events: list[Json]) -> dict[str, float]:
    """Events a second, levels an event (median, mean, p99, max), the share of removals and
    of levels near the best, and the mean size in KB."""
    sizes = [len(event["b"]) + len(event["a"]) for event in events]
    levels = [level for event in events for level in event["b"] + event["a"]]
    encoded = [len(json.dumps({k: v for k, v in event.items() if k != "near"},
                              separators=(",", ":")).encode()) for event in events]
    return {"per_second": len(events) / DEPTH_SECONDS, "median": statistics.median(sizes),
            "mean": statistics.mean(sizes), "p99": statistics.quantiles(sizes, n=100)[98],
            "max": max(sizes), "removed": sum(Decimal(qty) == 0 for _, qty in levels)
            / len(levels), "near": sum(event["near"] for event in events) / len(levels),
            "kb": statistics.mean(encoded) / 1000}


@pytest.mark.parametrize(("symbol", "steps"), [(BUSY, 3), (QUIET, 30), (BUSY, 700)])
def test_a_diff_turns_a_book_into_a_later_one(symbol: str, steps: int) -> None:
    """What a depth event carries: applied to the book of one step, the book of a later
    one, its update ids continuing the first book's. Over more than a minute of steps at
    Binance's pace (a connection that fell far behind), the difference of the two books."""
    market = SimulatedMarket(now=lambda: T0)
    start = market.step()
    book = market.book(symbol, 5000, start)
    diff = market.diff(symbol, start, start + steps)
    assert diff is not None and diff.first_update_id == book.last_update_id + 1
    sides = [dict(book.bids), dict(book.asks)]
    for levels, changes in zip(sides, (diff.bids, diff.asks)):
        for price, qty in changes:
            if qty:
                levels[price] = qty
            else:
                levels.pop(price, None)
    later = market.book(symbol, 5000, start + steps)
    assert diff.last_update_id == later.last_update_id
    assert sorted(sides[0].items(), reverse=True) == later.bids
    assert sorted(sides[1].items()) == later.asks
    assert market.diff(symbol, start + steps, start + steps) is None


# -- requests -----------------------------------------------------------------------------


def test_subscribe_unsubscribe_and_list_subscriptions(sim: Sim) -> None:
    async def scenario() -> None:
        async with sim.connect() as ws:
            names = ["ethbtc@bookTicker", "bnbbtc@depth@100ms"]
            assert await request(ws, "SUBSCRIBE", *names, ident=7) == {"result": None, "id": 7}
            assert await request(ws, "LIST_SUBSCRIPTIONS") == {"result": names, "id": 1}
            assert await request(ws, "UNSUBSCRIBE", names[1], ident="a1") == {
                "result": None, "id": "a1"}
            assert await request(ws, "LIST_SUBSCRIPTIONS", ident=None) == {
                "result": names[:1], "id": None}
            assert sim.get("/_sim/stats")["streams"]["subscriptions"] == {names[0]: 1}
            await sim.advance(1)
            assert (await ws.receive_json(timeout=TIMEOUT))["stream"] == names[0]
            assert await request(ws, "LIST_SUBSCRIPTIONS") == {"result": names[:1], "id": 1}

    run(scenario)


def test_bad_requests_get_binances_errors_and_the_connection_stays(sim: Sim) -> None:
    async def scenario() -> None:
        async with sim.connect() as ws:
            async def error(text: str) -> Json:
                await ws.send_str(text)
                return await ws.receive_json(timeout=TIMEOUT)

            assert (await error("{nope"))["error"]["code"] == 3
            unknown = await error('{"method": "SUBSCRIBED", "params": [], "id": 4}')
            assert unknown["id"] == 4 and unknown["error"]["code"] == 2
            assert "unknown variant `SUBSCRIBED`" in unknown["error"]["msg"]
            assert (await error('{"method": "SUBSCRIBE", "params": ["x"], "id": 5}'))[
                "error"]["code"] == 2
            await sim.advance(1)  # five messages a second at most
            assert (await error('{"method": "LIST_SUBSCRIPTIONS", "id": true}')) == {
                "error": {"code": 2, "msg": "Invalid request: request ID must be an unsigned "
                                            "integer"}, "id": None}
            assert (await error('{"method": "GET_PROPERTY", "params": ["x"], "id": 1}'))[
                "error"] == {"code": 0, "msg": "Unknown property"}
            many = [f"s{index}usdt@bookTicker" for index in range(1025)]
            assert await request(ws, "SUBSCRIBE", *many) == {
                "error": {"code": 4, "msg": "Too many subscriptions"}, "id": 1}
            assert await request(ws, "LIST_SUBSCRIPTIONS") == {"result": [], "id": 1}

    run(scenario)


def test_more_than_five_messages_a_second_close_the_connection(sim: Sim) -> None:
    async def scenario() -> None:
        async with sim.connect() as ws:
            for _ in range(5):
                assert (await request(ws, "LIST_SUBSCRIPTIONS"))["result"] == []
            await sim.advance(1)  # a new second: five more
            for _ in range(5):
                await ws.send_json({"method": "LIST_SUBSCRIPTIONS", "id": 1})
            await ws.send_json({"method": "LIST_SUBSCRIPTIONS", "id": 6})
            replies = [await ws.receive_json(timeout=TIMEOUT) for _ in range(5)]
            assert all(reply["result"] == [] for reply in replies)
            close = await closed(ws)
            assert (close.type, close.data, close.extra) == (
                aiohttp.WSMsgType.CLOSE, 1008, "Too many requests")
        assert sim.get("/_sim/stats")["streams"]["closed"] == {"too_many_requests": 1}

    run(scenario)


# -- pings, age, shutdown -----------------------------------------------------------------


def test_pings_come_at_the_configured_interval_and_unanswered_ones_close() -> None:
    """Pings every --ws-ping-seconds from the connection's start; a client that answers
    none is closed three intervals after the first (Binance: 20 s and a minute)."""
    async def scenario(sim: Sim) -> None:
        async with sim.connect(autoping=False) as ws:
            pings = []
            for seconds in (4.9, 0.1, 5, 5, 4.9):
                await sim.advance(seconds)
                await ws.send_json({"method": "LIST_SUBSCRIPTIONS", "id": 1})
                message = await ws.receive(timeout=TIMEOUT)  # a ping due comes before
                if message.type is aiohttp.WSMsgType.PING:
                    pings.append((sim.clock() - T0, message.data))
                    message = await ws.receive(timeout=TIMEOUT)
                assert json.loads(message.data)["result"] == []
            assert pings == [(5.0, b"1"), (10.0, b"2"), (15.0, b"3")]
            await sim.advance(0.1)  # 15 s after the first ping
            close = await closed(ws)
            assert (close.type, close.data, close.extra) == (
                aiohttp.WSMsgType.CLOSE, 1008, "Pong timeout")

    with serving(StreamSettings(ping_seconds=5)) as sim:
        run(lambda: scenario(sim))


def test_a_client_that_answers_pings_stays_until_the_max_age() -> None:
    async def scenario(sim: Sim) -> None:
        async with sim.connect() as ws:  # aiohttp answers pings as it reads
            for _ in range(11):
                await sim.advance(5)
                assert (await request(ws, "LIST_SUBSCRIPTIONS"))["result"] == []
            await sim.advance(4.9)
            assert (await request(ws, "LIST_SUBSCRIPTIONS"))["result"] == []
            await sim.advance(0.1)
            close = await closed(ws)
            assert (close.type, close.data) == (aiohttp.WSMsgType.CLOSE, 1001)
        stats = sim.get("/_sim/stats")["streams"]
        assert stats["frames"]["pings_sent"] == 11 and stats["closed"] == {"max_age": 1}

    with serving(StreamSettings(ping_seconds=5, max_age=60)) as sim:
        run(lambda: scenario(sim))


def test_stopping_the_server_sends_server_shutdown_then_closes(sim: Sim) -> None:
    async def scenario() -> None:
        async with sim.connect(stream_query("ethbtc@bookTicker")) as ws:
            await asyncio.to_thread(sim.streams.stop)
            assert await ws.receive_json(timeout=TIMEOUT) == {
                "stream": "!serverShutdown", "data": {"e": "serverShutdown", "E": T0 * 1000}}
            close = await closed(ws)
            assert (close.type, close.data) == (aiohttp.WSMsgType.CLOSE, 1001)

    run(scenario)


# -- faults -------------------------------------------------------------------------------


def test_ws_gap_skips_one_depth_event(sim: Sim) -> None:
    """The event after a skipped one is always sent, so a client sees the gap: its U is
    not the previous u + 1. Its resync from REST then holds the REST book again."""
    async def scenario() -> None:
        async with sim.connect(stream_query("btcusdt@depth@100ms", "btcusdt@bookTicker")) as ws:
            await sim.advance(1)
            events = [json.loads(await text(ws)) for _ in range(2)]
            depth = next(event["data"] for event in events if "depth" in event["stream"])
            book = ModelBook(sim.get("/api/v3/depth?symbol=BTCUSDT&limit=1000"))
            sim.control.set_faults([{"name": "ws_gap", "streams": ["depth@100ms"]}])
            await sim.advance(1)  # this step's depth event is skipped, bookTicker still comes
            assert (await ws.receive_json(timeout=TIMEOUT))["stream"] == "btcusdt@bookTicker"
            skipped_to = sim.get("/api/v3/depth?symbol=BTCUSDT&limit=1")["lastUpdateId"]
            await sim.advance(1)
            after = [json.loads(await text(ws)) for _ in range(2)]
            gapped = next(event["data"] for event in after if "depth" in event["stream"])
            assert gapped["U"] == skipped_to + 1 > depth["u"] + 1
            with pytest.raises(Gap):
                book.apply(gapped)
            book = ModelBook(sim.get("/api/v3/depth?symbol=BTCUSDT&limit=5000"))  # resync
            sim.control.clear_faults()
            await sim.advance(1)
            after = [json.loads(await text(ws)) for _ in range(2)]
            book.apply(next(event["data"] for event in after if "depth" in event["stream"]))
            full = sim.get("/api/v3/depth?symbol=BTCUSDT&limit=5000")
            assert (book.levels("b"), book.levels("a")) == (full["bids"], full["asks"])

    run(scenario)


def test_ws_stall_sends_nothing_then_resumes_without_a_gap() -> None:
    """No events and no pings while stalled; afterwards one event spans the stall."""
    async def scenario(sim: Sim) -> None:
        async with sim.connect(stream_query("ethbtc@depth@100ms"), autoping=False) as ws:
            await sim.advance(1)
            last = (await ws.receive_json(timeout=TIMEOUT))["data"]
            ping = await ws.receive(timeout=TIMEOUT)
            assert ping.type is aiohttp.WSMsgType.PING
            await ws.pong(ping.data)
            sim.control.set_faults([{"name": "ws_stall"}])
            for _ in range(3):
                await sim.advance(1)
            sim.control.clear_faults()
            await sim.advance(1)
            resumed = await ws.receive_json(timeout=TIMEOUT)  # the stall sent nothing at all
            assert resumed["data"]["U"] == last["u"] + 1
            assert resumed["data"]["u"] == sim.get(
                "/api/v3/depth?symbol=ETHBTC&limit=1")["lastUpdateId"]
            assert (await ws.receive(timeout=TIMEOUT)).type is aiohttp.WSMsgType.PING

    with serving(StreamSettings(ping_seconds=1)) as sim:
        run(lambda: scenario(sim))


def test_ws_close_drops_the_connection_without_a_close_frame(sim: Sim) -> None:
    async def scenario() -> None:
        async with sim.connect(stream_query("ethbtc@bookTicker")) as ws:
            sim.control.set_faults([{"name": "ws_close"}])
            await sim.advance(1)
            message = await closed(ws)
            assert message.type is not aiohttp.WSMsgType.CLOSE  # no close frame: a reset
        assert sim.get("/_sim/stats")["streams"]["closed"] == {"abrupt": 1}

    run(scenario)


def test_ws_malformed_sends_one_message_that_is_not_json(sim: Sim) -> None:
    async def scenario() -> None:
        async with sim.connect(stream_query("ethbtc@bookTicker")) as ws:
            sim.control.set_faults([{"name": "ws_malformed", "streams": ["ethbtc@bookTicker"]}])
            await sim.advance(1)
            broken = await text(ws)
            with pytest.raises(ValueError):
                json.loads(broken)
            whole = await text(ws)
            assert whole.startswith(broken) and json.loads(whole)["stream"] == "ethbtc@bookTicker"

    run(scenario)


def test_ws_refuse_answers_the_upgrade_with_an_error_status(sim: Sim) -> None:
    async def scenario() -> None:
        sim.control.set_faults([{"name": "ws_refuse", "status": 429,
                                 "streams": ["btcusdt@depth@100ms"]}])
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            async with sim.connect(stream_query("btcusdt@depth@100ms")):
                pass
        assert refused.value.status == 429
        async with sim.connect(stream_query("ethbtc@bookTicker")) as ws:  # not targeted
            assert (await request(ws, "LIST_SUBSCRIPTIONS"))["result"] == ["ethbtc@bookTicker"]
        assert sim.get("/_sim/stats")["streams"]["connections"] == {"refused": 1, "accepted": 1}

    run(scenario)


def test_ws_no_pong_close_closes_a_client_that_does_answer() -> None:
    async def scenario(sim: Sim) -> None:
        sim.control.set_faults([{"name": "ws_no_pong_close"}])
        async with sim.connect() as ws:  # aiohttp answers every ping
            for _ in range(3):
                await sim.advance(5)
                assert (await request(ws, "LIST_SUBSCRIPTIONS"))["result"] == []
            await sim.advance(5)
            close = await closed(ws)
            assert (close.type, close.data, close.extra) == (
                aiohttp.WSMsgType.CLOSE, 1008, "Pong timeout")
        assert sim.get("/_sim/stats")["streams"]["frames"]["pongs_received"] == 3

    with serving(StreamSettings(ping_seconds=5)) as sim:
        run(lambda: scenario(sim))


def test_ws_shutdown_sends_server_shutdown_then_closes_after_seconds(sim: Sim) -> None:
    async def scenario() -> None:
        sim.control.set_faults([{"name": "ws_shutdown", "seconds": 2}])
        async with sim.connect(stream_query("ethbtc@bookTicker")) as ws:
            await sim.advance(1)
            assert await ws.receive_json(timeout=TIMEOUT) == {
                "stream": "!serverShutdown",
                "data": {"e": "serverShutdown", "E": (T0 + 1) * 1000}}
            assert (await ws.receive_json(timeout=TIMEOUT))["stream"] == "ethbtc@bookTicker"
            await sim.advance(1)
            assert (await ws.receive_json(timeout=TIMEOUT))["stream"] == "ethbtc@bookTicker"
            await sim.advance(1)
            close = await closed(ws)
            assert (close.type, close.data) == (aiohttp.WSMsgType.CLOSE, 1001)

    run(scenario)


def test_stream_faults_are_validated_and_kept_apart_from_rest_faults() -> None:
    """A typo in a scenario fails loudly; a stream fault never touches a REST request."""
    fault = Fault.parse("ws_gap:streams=btcusdt@depth@100ms+depth,rate=0.5")
    assert fault.to_json() == {"name": "ws_gap", "rate": 0.5,
                               "streams": ["btcusdt@depth@100ms", "depth"]}
    assert Fault.parse("ws_refuse").params == {"status": 503}
    for bad, message in (
            ({"name": "ws_close", "endpoints": ["/api/v3/depth"]}, "unknown parameter"),
            ({"name": "latency", "streams": ["depth"]}, "unknown parameter"),
            ({"name": "ws_stall", "streams": ["nopeusdt@depth"]}, "unknown symbol"),
            ({"name": "ws_stall", "streams": ["btcusdt@trade"]}, "invalid stream name"),
            ({"name": "ws_gap", "streams": ["bookTicker"]}, "only depth streams"),
            ({"name": "ws_refuse", "status": 500}, "must be one of")):
        with pytest.raises(FaultError, match=message):
            Fault.from_json(bad)
    faults = FaultSet([Fault("ws_close"), Fault.from_json({"name": "ws_stall",
                                                           "streams": ["ethbtc@depth"]})])
    assert not faults.draw("/api/v3/depth")
    assert [f.name for f in faults.draw_streams({"ws_close", "ws_stall"}, ["btcusdt@depth"])] \
        == ["ws_close"]
    assert len(faults.draw_streams({"ws_close", "ws_stall"}, ["ethbtc@depth"])) == 2


# -- the connection log -------------------------------------------------------------------


def test_the_connection_log_tells_when_each_connection_carried_which_streams(sim: Sim) -> None:
    """GET /_sim/connections: every upgrade request, refused ones too, and for each
    connection when it opened, when the server ended it (or saw it end) and why, the
    intervals of each subscription, and when it sent the events of which market step, on
    the simulator's clock. A harness checks with it that a client serves no value of a
    connection already gone (make soak); a reset of the stats keeps only the connections
    still open."""
    async def scenario() -> None:
        sim.control.set_faults([{"name": "ws_refuse", "streams": ["btcusdt@depth@100ms"]}])
        with pytest.raises(aiohttp.WSServerHandshakeError):
            async with sim.connect(stream_query("btcusdt@depth@100ms")):
                pass
        sim.control.clear_faults()
        # btcusdt: one of the busiest symbols, whose best bid/ask changes on every step
        async with sim.connect(stream_query("ethbtc@bookTicker")) as ws, \
                sim.connect(stream_query("btcusdt@bookTicker")) as other:
            await sim.advance(1)
            for method, name in (("SUBSCRIBE", "bnbbtc@depth@100ms"),
                                 ("UNSUBSCRIBE", "ethbtc@bookTicker")):
                await ws.send_json({"method": method, "params": [name], "id": 1})
                while "stream" in (reply := await ws.receive_json(timeout=TIMEOUT)):
                    pass  # the step's event, sent before the reply
                assert reply == {"result": None, "id": 1}
            sim.control.set_faults([{"name": "ws_close", "streams": ["bnbbtc@depth@100ms"]}])
            await sim.advance(1)
            await closed(ws)
            sim.control.clear_faults()
            log = sim.control.connections()
            assert log == [
                {"id": 1, "outcome": "refused", "status": 503, "at": T0, "closed_at": None,
                 "closed": None, "streams": {}, "sent": []},
                {"id": 2, "outcome": "accepted", "status": 101, "at": T0,
                 "closed_at": T0 + 2, "closed": "abrupt",
                 "streams": {"ethbtc@bookTicker": [[T0, T0 + 1]],
                             "bnbbtc@depth@100ms": [[T0 + 1, T0 + 2]]},
                 "sent": [[T0 + 1, T0 + 1]]},  # the step ws_close ends sends nothing
                {"id": 3, "outcome": "accepted", "status": 101, "at": T0, "closed_at": None,
                 "closed": None, "streams": {"btcusdt@bookTicker": [[T0, None]]},
                 "sent": [[T0 + 1, T0 + 1], [T0 + 2, T0 + 2]]}]
            sim.control.reset_stats()
            assert [entry["id"] for entry in sim.control.connections()] == [3]
            await sim.advance(1)
            await other.close()
        while not sim.control.connections()[0]["closed"]:  # the server sees the close
            await asyncio.sleep(0.01)
        assert sim.control.connections() == [
            {"id": 3, "outcome": "accepted", "status": 101, "at": T0, "closed_at": T0 + 3,
             "closed": "client", "streams": {"btcusdt@bookTicker": [[T0, T0 + 3]]},
             "sent": [[T0 + 1, T0 + 1], [T0 + 2, T0 + 2], [T0 + 3, T0 + 3]]}]

    run(scenario)


# -- the real process ---------------------------------------------------------------------


def test_stream_flags_map_onto_the_config() -> None:
    args = cli.build_parser().parse_args(
        "--ws-port 9443 --ws-ping-seconds 2.5 --ws-max-age 60 --ws-book-ticker-rate 200".split())
    assert args.ws_port == 9443
    assert cli.config_from_args(args).streams == StreamSettings(2.5, 60, 200)
    assert cli.config_from_args(cli.build_parser().parse_args([])).streams == StreamSettings(
        20, 86400, 50)


def test_the_book_ticker_rate_sets_the_moments_of_a_step() -> None:
    """--ws-book-ticker-rate 200: the busiest symbols' best levels move 20 times a step,
    each time a bookTicker event. Their ``u`` come from the book's update ids, which the
    depth events share: the ``u`` of a step's moments lie within the U..u of the depth
    event that ends the step, as on Binance."""
    async def scenario(sim: Sim) -> None:
        market = sim.market
        assert market.substeps == 20
        async with sim.connect(stream_query("btcusdt@bookTicker")) as ws:
            step = market.step()
            for moment in range(step * 20 + 1, step * 20 + 41):
                await sim.advance_to(moment)
                event = (await ws.receive_json(timeout=TIMEOUT))["data"]
                assert event == rest_book_ticker_event(sim, "BTCUSDT")
                ids.append(event["u"])
            assert sim.sent() == 40
        diff = market.diff("BTCUSDT", step, step + 1)
        assert diff is not None
        assert diff.first_update_id <= min(ids[:19]) and max(ids[:19]) < diff.last_update_id
        assert ids[19] == diff.last_update_id  # the next step's first moment ends the event

    ids: list[int] = []
    with serving(StreamSettings(book_ticker_rate=200), step_seconds=0.1) as sim:
        run(lambda: scenario(sim))


def test_the_console_script_serves_streams_at_the_url_it_prints() -> None:
    """Through the test kit: the streams' URL comes from the start-up output; events flow
    on the real clock; SIGTERM sends serverShutdown before the process exits. (Pings and
    closes are timed with the fake clock above.)"""
    async def scenario(sim: SimulatorProcess) -> None:
        async with aiohttp.ClientSession() as session, session.ws_connect(
                sim.stream_url + stream_query("ethbtc@bookTicker")) as ws:
            event = await ws.receive_json(timeout=TIMEOUT)
            assert event["stream"] == "ethbtc@bookTicker" and event["data"]["s"] == "ETHBTC"
            stats = sim.stats()["streams"]
            assert stats["connections_open"] == 1
            assert stats["subscriptions"] == {"ethbtc@bookTicker": 1}
            sim.process.send_signal(signal.SIGTERM)
            while "serverShutdown" not in event["stream"]:
                event = await ws.receive_json(timeout=TIMEOUT)
            assert event["data"]["e"] == "serverShutdown"
            assert (await closed(ws)).data == 1001

    with running_simulator("--step-seconds", "0.05") as sim:
        assert sim.stream_url.startswith("ws://127.0.0.1:")
        assert sim.stream_url.rsplit(":", 1)[1] != sim.url.rsplit(":", 1)[1]
        run(lambda: scenario(sim))
        assert sim.process.wait(TIMEOUT) == 0
