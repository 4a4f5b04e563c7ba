"""A scrape renders only what changed, and its bytes are the client library's all the same.

The exposition keeps the rendered lines of unchanged series (``collector.parted``,
``collector.exposition``) and their compressed bytes. After any sequence of changes of
the stream state, each body must equal, byte for byte, what the client library's own
encoder renders from families built afresh, in the text format and in OpenMetrics, and
a gzip body must decompress to those same bytes.
"""

from __future__ import annotations

import zlib
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings, strategies as st
from prometheus_client.exposition import choose_encoder

from collector.errors import BadResponse
from collector.exporter import BinanceCollector
from collector.exposition import Exposition, Request
from collector.records import STREAM, Health, Outcome, Settings, Snapshot, SymbolInfo
from collector.stream_state import StreamState

# enough symbols for several chunks (collector.chunked.CHUNK) and gzip segments, any Unicode
SYMBOLS = [f"S{n}USDT" for n in range(70)] + ["币安币USDT", "ÆØÅ\"BTC"]
OPENMETRICS = "application/openmetrics-text; version=1.0.0"


class _Source:
    """A stream state behind the Source interface, with exchangeInfo that can change."""

    def __init__(self) -> None:
        self.now = 0.0
        self.settings = Settings(source=STREAM, all_spreads=True)
        self.state = StreamState(2, 4, window=10, clock=lambda: self.now, wall=lambda: self.now)
        self.state.ranked()
        self.state.follow([], SYMBOLS, SYMBOLS[:3])
        self.state.connected()
        self.deltas: dict[str, Decimal | None] = {}
        self.symbols = self.exchange_info("USDT")

    @staticmethod
    def exchange_info(quote: str) -> dict[str, SymbolInfo]:
        return {s: SymbolInfo(s, "TRADING", s[:2], quote if s.endswith("USDT") else "BTC")
                for s in SYMBOLS[::2]}  # every other symbol is unknown: no quote asset

    def snapshot(self) -> Snapshot:
        view = self.state.view(self.deltas)
        health = Health({}, {}, {}, None, 6000, 0.0, stream=view.health)
        return Snapshot(Outcome(None), view.books, view.spreads, Outcome(self.symbols), health,
                        self.symbols)

    def cached_snapshot(self) -> Snapshot:
        return self.snapshot()


def _push(source: _Source, update: int, symbol: str, bid: str, ask: str) -> None:
    source.state.message(f"{symbol.lower()}@bookTicker", {
        "u": update, "s": symbol, "b": bid, "B": "1.5", "a": ask, "A": "2"})


def _apply(source: _Source, step: tuple[Any, ...], update: int) -> None:
    kind = step[0]
    if kind == "push":
        _, symbol, bid, spread = step
        _push(source, update, symbol, str(bid), str(bid + spread) if spread >= 0 else "0")
    elif kind == "time":
        source.now += step[1]
    elif kind == "sample":
        current = source.state.current_spreads()
        source.deltas = {s: Decimal(step[1]) for s, v in current.items() if v is not None}
    elif kind == "disconnect":
        source.state.disconnected()
        source.state.connected()
    elif kind == "bad":
        source.state.bad_message(BadResponse("stream", "message", "x"))
    elif kind == "follow":
        source.state.follow([], SYMBOLS[step[1]:], SYMBOLS[step[1]:step[1] + 1])
    elif kind == "quote":
        source.symbols = source.exchange_info(step[1])


STEPS = st.one_of(
    st.tuples(st.just("push"), st.sampled_from(SYMBOLS), st.integers(1, 500),
              st.integers(-1, 5)),
    st.tuples(st.just("time"), st.sampled_from([0.5, 3.0, 11.0])),
    st.tuples(st.just("sample"), st.sampled_from(["0", "0.5", "1e-8"])),
    st.tuples(st.just("disconnect")),
    st.tuples(st.just("bad")),
    st.tuples(st.just("follow"), st.sampled_from([0, 0, 20])),
    st.tuples(st.just("quote"), st.sampled_from(["USDT", "FDUSD"])),
)


def _reference(source: _Source, accept: str) -> bytes:
    """What the client library renders from families built anew (no kept part)."""
    encoder, _ = choose_encoder(accept)
    return encoder(BinanceCollector(source, clock=lambda: 0.0))  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(STEPS, min_size=1, max_size=6), min_size=1, max_size=8))
def test_bodies_after_any_changes_are_the_client_library_s(scrapes: list[list[Any]]) -> None:
    source = _Source()
    exposition = Exposition(BinanceCollector(source, clock=lambda: 0.0))  # type: ignore[arg-type]
    update = 0
    for steps in scrapes:
        for step in steps:
            update += 1
            _apply(source, step, update)
        for accept in ("", OPENMETRICS):
            expected = _reference(source, accept)
            plain = exposition.fresh(Request(accept))
            zipped = exposition.fresh(Request(accept, accept_encoding="gzip"))
            assert plain.data == expected
            unzip = zlib.decompressobj(16 + zlib.MAX_WBITS)
            assert unzip.decompress(zipped.data) == expected
            assert unzip.eof and not unzip.unused_data


def test_a_scrape_between_events_renders_only_the_changed_series() -> None:
    """One best bid/ask pushed between two scrapes: the kept parts of every other chunk are
    the same objects, and the body still is the client library's."""
    source = _Source()
    for update, symbol in enumerate(SYMBOLS, 1):
        _push(source, update, symbol, "100", "101")
    collector = BinanceCollector(source, clock=lambda: 0.0)  # type: ignore[arg-type]
    before = collector.collect_groups()[0][0]
    _push(source, 1000, SYMBOLS[-1], "100", "102")
    after = collector.collect_groups()[0][0]
    shared = [a is b for a, b in zip(before.parts, after.parts)]  # type: ignore[attr-defined]
    assert shared == [True] * (len(shared) - 1) + [False]
    assert Exposition(collector).fresh(Request()).data == _reference(source, "")
