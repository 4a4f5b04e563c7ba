"""Benchmark 8: what Binance sends, from its raw text to the validated records, by decoder.

Three paths, in this process, from the simulator's own data (``--seed 1``, Binance's
sizes), each from the raw text to the records the exporter keeps:

* **bookTicker events**: one combined-stream message (``{"stream": ..., "data":
  {...}}``, a ``str`` as aiohttp hands it on) per ``TRADING`` symbol, at one moment: what
  ``--spreads all`` receives, about 6,500 a second at Binance's pace (section 7);
* **depth@100ms events**: ``STEPS`` steps (100 ms each) of Q1's five books (the books the
  exporter keeps by default), and of BTCUSDT, the busiest book, alone (``--symbols``);
* **the all-symbols bookTicker answer** of REST (``/api/v3/ticker/bookTicker``, bytes as
  read from the socket), what a REST ``--spreads all`` refresh decodes.

Each path is decoded by:

* **json + models**: ``json.loads``, then :mod:`collector.models`' validation of the
  decoded objects, as the product did before msgspec;
* **msgspec, strict**: ``msgspec.json.Decoder`` into typed ``Struct`` s whose prices and
  quantities are ``str``, then the same checks as ``models`` (every numeral plain ASCII
  digits with an optional fraction, as Binance writes them, so ``Decimal(text)`` is
  exact; every price > 0 in a book level), then the same records. This is the only
  msgspec decoding that keeps ``models``' semantics;
* **the exporter's path**: what the product runs now, :mod:`collector.stream_client`'s
  decoding of the message as far as its stream's name, then :mod:`collector.models`' parser
  of the raw event (the REST answer: the parser of its body). msgspec strict for
  bookTicker events and answers, where it pays (see the notes of 2026-12-08); depth events
  decoded untyped by msgspec, then checked by ``models`` field by field;
* **msgspec, Decimal fields** (for reference only): ``Struct`` s with ``Decimal`` fields,
  decoded by msgspec itself. Not admissible: msgspec's ``Decimal`` takes ``"+1"``,
  ``" 1"``, ``"1_000"``, ``"NaN"``, ``"1E+1000000"`` and JSON numbers, all of which
  ``models`` rejects, and a record cannot tell afterwards that it was given one.

Before timing, every decoder's records are checked to be those of json + models (digits
included). One round decodes each path's whole set once with each decoder, in turn
(the order rotates from round to round); a figure is the median over the rounds of the
CPU time per event, or per answer (the thread's CPU time: on a shared machine, the time
spent waiting for a core is left out, not the slowdown of sharing caches). The machine's
load average and the time this process waited for a core are given beside them.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import time
from dataclasses import dataclass
from decimal import Decimal
from itertools import chain
from typing import Annotated, Any, Callable, Iterable, Mapping, Sequence

import msgspec

from binance_simulator.events import EventFeed, dumps
from binance_simulator.market import SimulatedMarket

from collector import answers, models
from collector.records import BookTop, DepthUpdate
from collector.stream_client import decode_message

from bench.common import BenchError, median, run_queue_wait
from bench.cpu import served
from bench.figures import Figure
from bench.market import book_ticker_answer

SECTION = "8"
NOW = 1_710_000_000.0  # the simulator's clock, as in sections 4 and 7
STEPS = 100  # of depth events: 10 s of Binance's 100 ms steps
JSON, STRICT, LAX = "json + models", "msgspec, strict", "msgspec, Decimal fields"
EXPORTER = "the exporter's path"
DECODERS = (JSON, STRICT, EXPORTER, LAX)

Decoder = Callable[[Any], Any]

# -- the msgspec candidates --------------------------------------------------------------

Count = Annotated[int, msgspec.Meta(ge=0)]
Text = Annotated[str, msgspec.Meta(min_length=1)]
# plain numerals, each followed by a comma: a field holding a comma adds one (counted)
_NUMERALS = re.compile(r"(?:[0-9]+(?:\.[0-9]+)?,)*").fullmatch


class Message(msgspec.Struct, gc=False):
    """A combined-stream message, its event left undecoded."""

    stream: str
    data: msgspec.Raw


class BookTickerEvent(msgspec.Struct, gc=False):
    """A ``<symbol>@bookTicker`` event, its numerals as sent."""

    update_id: Count = msgspec.field(name="u")
    symbol: Text = msgspec.field(name="s")
    bid_price: str = msgspec.field(name="b")
    bid_qty: str = msgspec.field(name="B")
    ask_price: str = msgspec.field(name="a")
    ask_qty: str = msgspec.field(name="A")


class DepthEvent(msgspec.Struct, gc=False):
    """A ``<symbol>@depth`` event, its numerals as sent."""

    kind: str = msgspec.field(name="e")
    symbol: Text = msgspec.field(name="s")
    first: Count = msgspec.field(name="U")
    last: Count = msgspec.field(name="u")
    bids: list[tuple[str, str]] = msgspec.field(name="b")
    asks: list[tuple[str, str]] = msgspec.field(name="a")


class BookTickerEntry(msgspec.Struct, gc=False):
    """One entry of the all-symbols bookTicker answer, its numerals as sent."""

    symbol: Text
    bid_price: str = msgspec.field(name="bidPrice")
    bid_qty: str = msgspec.field(name="bidQty")
    ask_price: str = msgspec.field(name="askPrice")
    ask_qty: str = msgspec.field(name="askQty")


class LaxBookTicker(msgspec.Struct, gc=False):
    """As :class:`BookTickerEvent`, decoded by msgspec into ``Decimal`` (not admissible)."""

    update_id: Count = msgspec.field(name="u")
    symbol: Text = msgspec.field(name="s")
    bid_price: Decimal = msgspec.field(name="b")
    bid_qty: Decimal = msgspec.field(name="B")
    ask_price: Decimal = msgspec.field(name="a")
    ask_qty: Decimal = msgspec.field(name="A")


class LaxDepth(msgspec.Struct, gc=False):
    """As :class:`DepthEvent`, decoded by msgspec into ``Decimal`` (not admissible)."""

    kind: str = msgspec.field(name="e")
    symbol: Text = msgspec.field(name="s")
    first: Count = msgspec.field(name="U")
    last: Count = msgspec.field(name="u")
    bids: list[tuple[Decimal, Decimal]] = msgspec.field(name="b")
    asks: list[tuple[Decimal, Decimal]] = msgspec.field(name="a")


class LaxEntry(msgspec.Struct, gc=False):
    """As :class:`BookTickerEntry`, decoded by msgspec into ``Decimal`` (not admissible)."""

    symbol: Text
    bid_price: Decimal = msgspec.field(name="bidPrice")
    bid_qty: Decimal = msgspec.field(name="bidQty")
    ask_price: Decimal = msgspec.field(name="askPrice")
    ask_qty: Decimal = msgspec.field(name="askQty")


class LaxBookTickerMessage(msgspec.Struct, gc=False):
    """A whole bookTicker message in one pass (the ideal case: the kind known beforehand)."""

    stream: str
    data: LaxBookTicker


class LaxDepthMessage(msgspec.Struct, gc=False):
    """A whole depth message in one pass."""

    stream: str
    data: LaxDepth


_MESSAGE = msgspec.json.Decoder(Message)
_BOOK_TICKER = msgspec.json.Decoder(BookTickerEvent)
_DEPTH = msgspec.json.Decoder(DepthEvent)
_ENTRIES = msgspec.json.Decoder(list[BookTickerEntry])
_LAX_BOOK_TICKER = msgspec.json.Decoder(LaxBookTickerMessage)
_LAX_DEPTH = msgspec.json.Decoder(LaxDepthMessage)
_LAX_ENTRIES = msgspec.json.Decoder(list[LaxEntry])


def numerals(texts: Sequence[str]) -> list[Decimal]:
    """``Decimal`` of each text, each a plain non-negative numeral, as ``models`` takes them
    (a bad one raises: the bench only times valid input)."""
    joined = ",".join(texts) + ","
    if texts and (_NUMERALS(joined) is None or joined.count(",") != len(texts)):
        raise BenchError(f"not plain numerals: {texts[:4]}")
    return list(map(Decimal, texts))


def strict_book_ticker(text: str) -> tuple[int, BookTop]:
    """A bookTicker message → (u, BookTop), msgspec strict."""
    event = _BOOK_TICKER.decode(_MESSAGE.decode(text).data)
    bid, bid_qty, ask, ask_qty = numerals(
        (event.bid_price, event.bid_qty, event.ask_price, event.ask_qty))
    return event.update_id, BookTop(event.symbol, bid, bid_qty, ask, ask_qty)


def strict_depth(text: str) -> DepthUpdate:
    """A depth message → DepthUpdate, msgspec strict (both sides' numerals in one pass)."""
    event = _DEPTH.decode(_MESSAGE.decode(text).data)
    if event.kind != "depthUpdate" or event.first > event.last:
        raise BenchError(f"not a depth event: {text[:80]}")
    found = numerals(list(chain.from_iterable(event.bids + event.asks)))
    prices = found[0::2]
    if prices and min(prices) <= 0:
        raise BenchError("a level's price is not > 0")
    levels = tuple(zip(prices, found[1::2]))
    return DepthUpdate(event.symbol, event.first, event.last, levels[:len(event.bids)],
                       levels[len(event.bids):])


def strict_book_tickers(raw: bytes) -> dict[str, BookTop]:
    """The all-symbols answer → symbol → BookTop, msgspec strict."""
    entries = _ENTRIES.decode(raw)
    found = iter(numerals([text for e in entries
                           for text in (e.bid_price, e.bid_qty, e.ask_price, e.ask_qty)]))
    tops = {}
    for entry, bid, bid_qty, ask, ask_qty in zip(entries, found, found, found, found):
        tops[entry.symbol] = BookTop(entry.symbol, bid, bid_qty, ask, ask_qty)
    return tops


def lax_book_ticker(text: str) -> tuple[int, BookTop]:
    """A bookTicker message → (u, BookTop), Decimal fields (reference only)."""
    event = _LAX_BOOK_TICKER.decode(text).data
    return event.update_id, BookTop(event.symbol, event.bid_price, event.bid_qty,
                                    event.ask_price, event.ask_qty)


def lax_depth(text: str) -> DepthUpdate:
    """A depth message → DepthUpdate, Decimal fields (reference only)."""
    event = _LAX_DEPTH.decode(text).data
    return DepthUpdate(event.symbol, event.first, event.last, tuple(event.bids),
                       tuple(event.asks))


def lax_book_tickers(raw: bytes) -> dict[str, BookTop]:
    """The all-symbols answer, Decimal fields (reference only)."""
    return {e.symbol: BookTop(e.symbol, e.bid_price, e.bid_qty, e.ask_price, e.ask_qty)
            for e in _LAX_ENTRIES.decode(raw)}


def json_book_ticker(text: str) -> tuple[int, BookTop]:
    """A bookTicker message → (u, BookTop): json, then models."""
    message = json.loads(text)
    return models.parse_book_ticker_event(message["data"], message["stream"])


def json_depth(text: str) -> DepthUpdate:
    """A depth message → DepthUpdate: json, then models."""
    message = json.loads(text)
    return models.parse_depth_update(message["data"], message["stream"])


def json_book_tickers(raw: bytes) -> Any:
    """The all-symbols answer: json, then models."""
    return models.parse_book_tickers(json.loads(raw))


def exporter_book_ticker(text: str) -> tuple[int, BookTop]:
    """A bookTicker message → (u, BookTop), as the exporter reads it."""
    message = decode_message(text)
    return models.parse_book_ticker_event(message.data, message.stream)


def exporter_depth(text: str) -> DepthUpdate:
    """A depth message → DepthUpdate, as the exporter reads it."""
    message = decode_message(text)
    return models.parse_depth_update(message.data, message.stream)


def exporter_book_tickers(raw: bytes) -> Any:
    """The all-symbols answer, as the REST client hands its body on."""
    return models.parse_book_tickers(raw)


# -- the inputs --------------------------------------------------------------------------


@dataclass(frozen=True)
class Path:
    """One kind of input, its items and how each decoder reads one."""

    name: str
    items: Sequence[Any]  # str messages, or the bytes of an answer
    per: str  # "event" or "answer"
    about: str  # what the items are, for the table
    decoders: Mapping[str, Decoder]

    @property
    def unit(self) -> str:
        """µs per event, ms per answer."""
        return "µs/event" if self.per == "event" else "ms/answer"

    @property
    def scale(self) -> float:
        """Seconds → the unit."""
        return 1e6 if self.per == "event" else 1e3


def combined(stream: str, text: str) -> str:
    """The combined-stream message, as the simulator (and Binance) writes it."""
    return f'{{"stream":{dumps(stream)},"data":{text}}}'


def _book_tickers(market: SimulatedMarket, feed: EventFeed, symbols: Iterable[str]
                  ) -> list[str]:
    moment = market.moment()
    return [combined(f"{symbol.lower()}@bookTicker", feed.book_ticker(symbol, moment)[0])
            for symbol in symbols]


def _depths(market: SimulatedMarket, feed: EventFeed, symbols: Iterable[str]) -> list[str]:
    first, found = market.step(), []
    for symbol in symbols:
        for step in range(first, first + STEPS):
            text = feed.depth_update(symbol, step, step + 1)
            if text is not None:
                found.append(combined(f"{symbol.lower()}@depth@100ms", text))
    return found


def _levels(texts: Sequence[str]) -> str:
    counts = [len(event["b"]) + len(event["a"]) for event in
              (json.loads(text)["data"] for text in texts)]
    return (f"{len(texts):,} events, {statistics.mean(counts):.1f} levels on average "
            f"(median {median(counts):g}, max {max(counts)}), "
            f"{statistics.mean(len(text) for text in texts):.0f} bytes")


def paths() -> list[Path]:
    """The three paths' inputs (Q1 ranked from the simulator's own answers)."""
    market = SimulatedMarket(seed=1, now=lambda: NOW)
    feed = EventFeed(market)
    infos = models.parse_exchange_info(json.loads(served(models.EXCHANGE_INFO, {})))
    tickers = models.parse_tickers(json.loads(served(models.TICKER_24H, {})))
    q1 = [ticker.symbol for ticker in answers.top_by_volume(tickers, infos)]
    trading = sorted(symbol for symbol, info in infos.items() if info.trading)
    book_tickers = _book_tickers(market, feed, trading)
    q1_depths, busiest = _depths(market, feed, q1), _depths(market, feed, ["BTCUSDT"])
    answer = book_ticker_answer()
    events = {JSON: json_book_ticker, STRICT: strict_book_ticker,
              EXPORTER: exporter_book_ticker, LAX: lax_book_ticker}
    depths = {JSON: json_depth, STRICT: strict_depth, EXPORTER: exporter_depth,
              LAX: lax_depth}
    return [
        Path("bookTicker events", book_tickers, "event",
             f"{len(book_tickers):,} events, one per TRADING symbol, "
             f"{statistics.mean(len(text) for text in book_tickers):.0f} bytes", events),
        Path("depth@100ms events, Q1's books", q1_depths, "event",
             f"{', '.join(q1)}: {_levels(q1_depths)}", depths),
        Path("depth@100ms events, BTCUSDT", busiest, "event", _levels(busiest), depths),
        Path("all-symbols bookTicker answer", [answer], "answer",
             f"{answer.count(b'symbol'):,} entries, {len(answer):,} bytes",
             {JSON: json_book_tickers, STRICT: strict_book_tickers,
              EXPORTER: exporter_book_tickers, LAX: lax_book_tickers}),
    ]


# -- measuring ---------------------------------------------------------------------------


def check(path: Path) -> None:
    """Every decoder gives json + models' records, digits included."""
    expected = [repr(_plain(path.decoders[JSON](item))) for item in path.items]
    for name, decoder in path.decoders.items():
        found = [repr(_plain(decoder(item))) for item in path.items]
        if found != expected:
            raise BenchError(f"{path.name}: {name} does not give json + models' records")


def _plain(records: Any) -> Any:
    """A read-only mapping as a dict, so that its repr compares."""
    return dict(records) if hasattr(records, "items") else records


def timed(decoder: Decoder, items: Sequence[Any]) -> float:
    """CPU seconds (this thread's) to decode every item once: time spent waiting for a
    core while others run is left out."""
    started = time.thread_time()
    for item in items:
        decoder(item)
    return time.thread_time() - started


def rounds(path: Path, runs: int) -> dict[str, list[float]]:
    """Per decoder, the time per item of each round, in the path's unit."""
    found: dict[str, list[float]] = {name: [] for name in path.decoders}
    names = list(path.decoders)
    for run in range(runs):
        for name in names[run % len(names):] + names[:run % len(names)]:
            seconds = timed(path.decoders[name], path.items)
            found[name].append(seconds / len(path.items) * path.scale)
    return found


def measure(runs: int) -> tuple[list[Figure], str]:
    """Every path by every decoder, ``runs`` rounds; figures and a side-by-side table."""
    load_before, waited, started = os.getloadavg(), run_queue_wait(), time.monotonic()
    figures, lines = [], [
        "| path | input | " + " | ".join(DECODERS) + " |", "|---|---|---:|---:|---:|---:|"]
    for path in paths():
        check(path)
        found = rounds(path, runs)
        base = median(found[JSON])
        cells = []
        for name in DECODERS:
            middle = median(found[name])
            note = "" if name == JSON else f"{base / middle:.1f}× as fast as {JSON}"
            if name == LAX:
                note += "; not admissible (see the details)"
            figures.append(Figure(SECTION, f"{path.name}, {name}", tuple(found[name]),
                                  path.unit, note=note, digits=2))
            cells.append(f"{middle:.2f} {path.unit}" + ("" if name == JSON else
                                                        f" ({base / middle:.1f}×)"))
        lines.append(f"| {path.name} | {path.about} | " + " | ".join(cells) + " |")
    seconds = time.monotonic() - started
    load_after = os.getloadavg()
    lines += ["", f"Medians of {runs} rounds, in {seconds:.0f} s; load average "
              f"{load_before[0]:.2f} before, {load_after[0]:.2f} after "
              f"({os.cpu_count()} cores); this process waited "
              f"{run_queue_wait() - waited:.2f} s for a core meanwhile. In parentheses: "
              f"as many times as fast as {JSON}."]
    return figures, "\n".join(lines)
