"""``binance-report``: Q1–Q4 once, then the Q5 spread/delta log, on stdout.

Exit codes: 0 done (``--count`` ticks, or Ctrl-C); 1 Binance could not be
reached or answered badly for Q1–Q4 (one line on stderr), or any Q5 tick
failed; 2 bad usage. A failed Q5 tick is one line in the log (one JSON
object in JSON Lines) and the log goes on at the next interval: an
open-ended report is a log people leave running.

Text output, abridged::

    Q1  Top 5 BTC-quoted symbols by 24 h volume (ranked by quoteVolume, in BTC)
      #  symbol   quote volume  volume
      1  ETHBTC   1159.60641773  20251.6576
    ...
    Q5  Spreads every 10 s; delta = |spread - previous spread|
    2026-01-01T00:00:00Z  FLOKIUSDT  spread 0.00000001  delta -

``--format json`` prints Q1–Q4 as one JSON object, then one object per tick
(JSON Lines); decimals are strings so no digit is lost.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import logging
import math
import os
import signal
import sys
import threading
import time
import unicodedata
from datetime import datetime, timezone
from decimal import Decimal
from types import FrameType
from typing import Any, Callable, Iterator, Mapping, Sequence, TextIO

from collector import __version__, config, wiring
from collector.answers import plain, relative_spread
from collector.config import (
    EXIT_OK,
    EXIT_FAILURE,
    Parser,
    check_weight_budget,
    parse_args,
    settings_from,
)
from collector.errors import BinanceError
from collector.records import STREAM, Notional, Outcome, Snapshot, Spreads
from collector.source import Source

log = logging.getLogger("collector.report")


def utc(unix: float) -> str:
    """``2026-01-01T00:00:10Z``."""
    return datetime.fromtimestamp(unix, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def answers_json(snapshot: Snapshot, market: bool = False) -> dict[str, Any]:
    """Q1–Q4 in the documented JSON shape; then ``--symbols``, and with ``market`` every
    symbol's spread (``--spreads all``)."""
    rankings, books, spreads = _values(snapshot)
    q1 = {t.symbol for t in rankings.by_volume}
    q2 = [t.symbol for t in rankings.by_trades]
    answers = {
        "top_btc_by_volume": [
            {"symbol": t.symbol, "volume": plain(t.volume), "quote_volume": plain(t.quote_volume)}
            for t in rankings.by_volume
        ],
        "top_usdt_by_trades": [
            {"symbol": t.symbol, "trades": t.trades} for t in rankings.by_trades
        ],
        "order_book_notional": {
            n.symbol: _notional_json(n) for n in books.values() if n.symbol in q1
        },
        "spreads": {symbol: plain(spreads.spreads.get(symbol)) for symbol in q2},
    }
    if snapshot.followed:
        answers["symbols"] = {
            symbol: {"followed": False} if not followed else {
                "followed": True, "quote_asset": snapshot.quote_asset(symbol),
                "spread": plain(spreads.spreads.get(symbol)),
                "order_book_notional": _notional_json(books.get(symbol)),
            }
            for symbol, followed in snapshot.followed.items()
        }
    if market:
        answers["market"] = [{"symbol": symbol, "quote_asset": snapshot.quote_asset(symbol),
                              "spread": plain(value), "spread_ratio": plain(ratio)}
                             for symbol, value, ratio in _by_ratio(spreads)]
    return answers


def _notional_json(notional: Notional | None) -> dict[str, Any] | None:
    """Q3 of one book, with its ``--depth-bands`` when there are any."""
    if notional is None:
        return None
    found: dict[str, Any] = {"bids": plain(notional.bids), "asks": plain(notional.asks),
                             "bid_levels": notional.bid_levels,
                             "ask_levels": notional.ask_levels}
    if notional.bands:
        found["bands"] = {band: {"bids": plain(d.bids), "asks": plain(d.asks),
                                 "bid_levels": d.bid_levels, "ask_levels": d.ask_levels,
                                 "bids_complete": d.bids_complete,
                                 "asks_complete": d.asks_complete}
                          for band, d in notional.bands.items()}
    return found


def _by_ratio(spreads: Spreads) -> list[tuple[str, Decimal | None, Decimal | None]]:
    """Every symbol's spread and spread ratio, tightest first (by symbol on ties); those
    with no spread last."""
    rows = []
    for symbol, value in spreads.spreads.items():
        top = spreads.tops.get(symbol)
        rows.append((symbol, value, relative_spread(top) if top is not None else None))
    return sorted(rows, key=lambda row: (row[2] is None, row[2] or 0, row[0]))


def tick_json(spreads: Spreads) -> dict[str, Any]:
    """One Q5 tick in the documented JSON shape (stream mode adds ``min`` and ``max``)."""
    tick = {
        "time": utc(spreads.at),
        "spreads": {s: plain(v) for s, v in spreads.spreads.items()},
        "deltas": {s: plain(v) for s, v in spreads.deltas.items()},
    }
    if spreads.minimum:
        tick["min"] = {s: plain(spreads.minimum.get(s)) for s in spreads.spreads}
        tick["max"] = {s: plain(spreads.maximum.get(s)) for s in spreads.spreads}
    return tick


def error_json(at: float, error: BinanceError) -> dict[str, Any]:
    """A failed Q5 tick in the documented JSON shape."""
    return {"time": utc(at), "error": str(error)}


def width(text: str) -> int:
    """Columns ``text`` takes in a terminal: CJK characters take two (symbols may be any
    Unicode)."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def table(rows: Sequence[Sequence[str]], right: Sequence[bool],
          widths: Sequence[int] | None = None) -> list[str]:
    """Aligned columns; numbers right-aligned so their digits line up. ``widths``: at least
    these (a log keeps its columns from one block to the next)."""
    widths = table_widths(rows, widths or ())
    lines = []
    for row in rows:
        cells = [
            " " * (size - width(cell)) + cell if align else cell + " " * (size - width(cell))
            for cell, size, align in zip(row, widths, right)
        ]
        lines.append("  " + "  ".join(cells).rstrip())
    return lines


def answers_text(snapshot: Snapshot, rank_by: str, depth: int, market: bool = False) -> str:
    """Q1–Q4 as readable tables; then ``--symbols``, and with ``market`` every symbol's
    spread (``--spreads all``)."""
    rankings, books, spreads = _values(snapshot)
    ranked_field = "quoteVolume, in BTC" if rank_by == "quote" else "volume, in the base asset"
    out = [f"Q1  Top {len(rankings.by_volume)} BTC-quoted symbols by 24 h volume "
           f"(ranked by {ranked_field})"]
    rows = [["#", "symbol", "quote volume (BTC)", "volume (base)"]]
    rows += [[str(i), t.symbol, plain(t.quote_volume) or "", plain(t.volume) or ""]
             for i, t in enumerate(rankings.by_volume, 1)]
    out += table(rows, [True, False, True, True])
    out += ["", f"Q2  Top {len(rankings.by_trades)} USDT-quoted symbols by 24 h number of trades"]
    rows = [["#", "symbol", "trades"]]
    rows += [[str(i), t.symbol, str(t.trades)] for i, t in enumerate(rankings.by_trades, 1)]
    out += table(rows, [True, False, True])
    out += ["", f"Q3  Notional (sum of price x quantity, in BTC) of the top {depth} levels of "
            "each Q1 book"]
    rows = [["symbol", "bids", "bid levels", "asks", "ask levels"]]
    q1 = {t.symbol for t in rankings.by_volume}
    rows += [[n.symbol, plain(n.bids) or "", str(n.bid_levels), plain(n.asks) or "",
              str(n.ask_levels)] for n in books.values() if n.symbol in q1]
    out += table(rows, [False, True, True, True, True])
    out += ["", "Q4  Bid/ask spread (best ask - best bid) of each Q2 symbol"]
    rows = [["symbol", "best bid", "best ask", "spread"]]
    rows += [_spread_row(symbol, spreads) for symbol in (t.symbol for t in rankings.by_trades)]
    out += table(rows, [False, True, True, True])
    out += _chosen_text(snapshot, books, spreads, depth)
    out += _bands_text(snapshot, books)
    if market:
        out += _market_text(snapshot, spreads)
    return "\n".join(out)


def _chosen_text(snapshot: Snapshot, books: Mapping[str, Notional], spreads: Spreads,
                 depth: int) -> list[str]:
    """``--symbols``: each one's spread and notional, then those left out."""
    if not snapshot.followed:
        return []
    out = ["", f"Your symbols (--symbols): spread, and notional of the top {depth} levels, "
           "in the quote asset"]
    rows = [["symbol", "quote", "best bid", "best ask", "spread", "bids", "asks"]]
    for symbol in (s for s, followed in snapshot.followed.items() if followed):
        name, bid, ask, spread = _spread_row(symbol, spreads)
        notional = books.get(symbol)
        sums = (plain(notional.bids), plain(notional.asks)) if notional else (None, None)
        rows.append([name, snapshot.quote_asset(symbol), bid, ask, spread,
                     sums[0] or "-", sums[1] or "-"])
    out += table(rows, [False, False, True, True, True, True, True])
    left_out = [symbol for symbol, followed in snapshot.followed.items() if not followed]
    if left_out:
        out.append("  left out, not a TRADING symbol of Binance: " + " ".join(left_out))
    return out


def _bands_text(snapshot: Snapshot, books: Mapping[str, Notional]) -> list[str]:
    """``--depth-bands``: each book's depth within each band, a floor marked ``>=``."""
    if not any(notional.bands for notional in books.values()):
        return []
    out = ["", "Depth within the band around the mid price (--depth-bands), in the quote "
           "asset; >= marks a floor (the levels known end inside the band)"]
    rows = [["symbol", "quote", "band", "bids", "asks"]]
    for symbol, notional in books.items():
        for band, depth in notional.bands.items():
            rows.append([symbol, snapshot.quote_asset(symbol), f"±{band} %",
                         ("" if depth.bids_complete else ">= ") + (plain(depth.bids) or ""),
                         ("" if depth.asks_complete else ">= ") + (plain(depth.asks) or "")])
    return out + table(rows, [False, False, True, True, True])


def _market_text(snapshot: Snapshot, spreads: Spreads) -> list[str]:
    """``--spreads all``: every symbol by spread ratio."""
    out = ["", f"Market (--spreads all): {len(spreads.spreads)} TRADING symbols by spread "
           "ratio (spread / mid price), tightest first"]
    rows = [["symbol", "quote", "spread", "ratio"]]
    rows += [[symbol, snapshot.quote_asset(symbol), plain(value) or "unavailable",
              f"{ratio:.3E}" if ratio is not None else "-"]
             for symbol, value, ratio in _by_ratio(spreads)]
    return out + table(rows, [False, False, True, True])


def _spread_row(symbol: str, spreads: Spreads) -> list[str]:
    """symbol, best bid, best ask, spread: ``-`` for an empty side."""
    top = spreads.tops.get(symbol)
    bid = plain(top.bid_price) if top and top.bid_price else None  # 0: empty side
    ask = plain(top.ask_price) if top and top.ask_price else None
    return [symbol, bid or "-", ask or "-", plain(spreads.spreads.get(symbol)) or "unavailable"]


def tick_rows(spreads: Spreads) -> list[list[str]]:
    """One Q5 tick's cells: a row per symbol with its UTC time."""
    stamp = utc(spreads.at)
    rows = [[stamp, symbol, "spread", plain(value) or "unavailable",
             "delta", plain(spreads.deltas.get(symbol)) or "-"]
            for symbol, value in spreads.spreads.items()]
    if spreads.minimum:  # stream mode: the lowest and highest spread since the last tick
        for row, symbol in zip(rows, spreads.spreads):
            row += ["min", plain(spreads.minimum.get(symbol)) or "-",
                    "max", plain(spreads.maximum.get(symbol)) or "-"]
    return rows


def tick_text(spreads: Spreads, widths: Sequence[int] | None = None) -> str:
    """One Q5 tick: a line per symbol with its UTC time, columns at least ``widths`` wide."""
    aligned = table(tick_rows(spreads), [False, False, False, True, False, True] + [
        False, True] * 2, widths)
    return "\n".join(line.lstrip() for line in aligned)


def _values(snapshot: Snapshot) -> tuple[Any, Mapping[str, Any], Spreads]:
    errors = snapshot.errors()
    if errors:
        raise errors[0]
    assert snapshot.rankings.value and snapshot.books.value is not None and snapshot.spreads.value
    return snapshot.rankings.value, snapshot.books.value, snapshot.spreads.value


def run(  # pylint: disable=too-many-arguments
    source: Source,
    *,
    fmt: str,
    count: int | None,
    interval: float,
    out: TextIO,
    sleep: Callable[[float], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    wall: Callable[[], float] = time.time,
) -> bool:
    """Print Q1–Q4, then ``count`` Q5 ticks (forever if None); True if every tick succeeded.

    Raises BinanceError when Q1–Q4 cannot be answered. A failed tick prints its
    error in the log and the next tick comes at the next interval; the hint of
    an outage goes to stderr once, until a tick succeeds again.
    """
    sleep = sleep or time.sleep
    settings = source.settings
    snapshot = source.settled_snapshot(sleep, clock)
    if fmt == "json":  # symbols may be any Unicode: printed as they are
        print(json.dumps(answers_json(snapshot, settings.all_spreads), ensure_ascii=False),
              file=out, flush=True)
    else:
        print(answers_text(snapshot, settings.rank_by, settings.depth_levels,
                           settings.all_spreads),
              file=out, flush=True)
        if count != 0:
            extremes = "; min/max over the interval" if settings.source == STREAM else ""
            print(f"\nQ5  Spreads every {interval:g} s; delta = |spread - previous spread|"
                  f"{extremes}", file=out, flush=True)
    q5 = Q5Log(fmt, out)
    for outcome in itertools.islice(source.q5_ticks(snapshot, interval, sleep, clock), count):
        q5.write(outcome, wall())
    return q5.all_ok


class Q5Log:
    """The Q5 log: each tick's spreads or error on ``out``, the hint of an outage once on
    stderr; text columns only ever widen, so they line up from one tick to the next."""

    def __init__(self, fmt: str, out: TextIO) -> None:
        self.fmt, self.out = fmt, out
        self.all_ok = True  # every tick so far was answered
        self._hinted = False
        self._widths: list[int] = []

    def write(self, outcome: Outcome[Spreads], now: float) -> None:
        """One tick: the spreads, or the error of a failed refresh at ``now``."""
        print(self._line(outcome, now), file=self.out, flush=True)
        error = outcome.error
        self.all_ok = self.all_ok and error is None
        if error is None:
            self._hinted = False  # a good tick ends the outage
        elif error.hint and not self._hinted:
            self._hinted = True
            print(f"binance-report: {error.hint}", file=sys.stderr, flush=True)

    def _line(self, outcome: Outcome[Spreads], now: float) -> str:
        if outcome.value is not None:
            if self.fmt == "json":
                return json.dumps(tick_json(outcome.value), ensure_ascii=False)
            self._widths = tick_widths(tick_rows(outcome.value), self._widths)
            return tick_text(outcome.value, self._widths)
        assert outcome.error is not None
        if self.fmt == "json":
            return json.dumps(error_json(now, outcome.error), ensure_ascii=False)
        return f"{utc(now)}  error: {outcome.error}"


# the columns of a Q5 row holding an amount of the quote asset: spread, delta, min, max
SPREAD_COLUMN, AMOUNT_COLUMNS = 3, (5, 7, 9)


def tick_widths(rows: Sequence[Sequence[str]], at_least: Sequence[int]) -> list[int]:
    """The Q5 log's column widths: ``table_widths``, with the delta, min and max columns at
    least as wide as the spread column. The first tick has no delta ('-'), and a column
    sized to it would widen at the second tick, shifting every column after it; a delta
    or extreme is an amount of the same quote asset as the spread, so as wide, mostly."""
    widths = table_widths(rows, at_least)
    for column in AMOUNT_COLUMNS:
        if column < len(widths):
            widths[column] = max(widths[column], widths[SPREAD_COLUMN])
    return widths


def table_widths(rows: Sequence[Sequence[str]], at_least: Sequence[int]) -> list[int]:
    """The terminal width of each column of ``rows`` (its widest cell), never narrower than
    ``at_least``."""
    found = [max(width(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [max(a, b) for a, b in zip(found, list(at_least) + [0] * len(found))]


def build_parser() -> Parser:
    """The report's flags (:data:`collector.config.FLAGS`)."""
    return config.build_parser(
        config.REPORT, __version__,
        "Print Binance Spot answers Q1-Q4, then spreads and their deltas (Q5).")


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM ends the report like Ctrl-C, with exit 0 (``docker stop``, systemd)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    """Entry point of ``binance-report``."""
    parser = build_parser()
    args = parse_args(parser, argv)
    # Q1-Q3 are answered once; the Q5 ticks ask for nothing but the spreads
    settings = dataclasses.replace(
        settings_from(args), ttl_spreads=args.interval, ttl_books=math.inf,
        ttl_rankings=math.inf, ttl_exchange=math.inf)
    ticks = settings if args.count != 0 else dataclasses.replace(settings, ttl_spreads=math.inf)
    check_weight_budget(parser, ticks, args.weight_budget,
                        "raise --interval, or lower --top, --depth-levels or the number of "
                        "--symbols, or leave out --depth-bands")
    wiring.setup_logging(args.log_level)
    if args.log_level == "info":  # the report is the progress; the streams' is detail
        logging.getLogger("collector.stream").setLevel(logging.WARNING)
    # the Q5 ticks are the report's output: not logged besides
    source = wiring.source(args, settings, sample_every=args.interval, on_sample=None)
    try:
        with _sigterm_as_interrupt():
            all_ok = run(source, fmt=args.format, count=args.count, interval=args.interval,
                         out=out)
        if not all_ok:
            return EXIT_FAILURE
    except BinanceError as exc:
        if args.log_level == "debug":
            log.exception("upstream failure")
        print(f"binance-report: {exc}", file=sys.stderr)
        if exc.hint:
            print(f"binance-report: {exc.hint}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_OK
    except BrokenPipeError:  # e.g. | head: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    finally:
        source.close()
    return EXIT_OK
