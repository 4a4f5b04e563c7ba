"""Stream names: what the simulator serves, parsed and matched against fault targets.

A stream name is a lower-cased symbol and a kind: ``btcusdt@bookTicker``,
``btcusdt@depth@100ms``, ``btcusdt@depth``.  The stream side (``streams``) and
the fault specifications (``faults``, whose ``ws_`` faults name streams or
kinds) both read names through this module, which imports neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from . import data

BOOK_TICKER = "bookTicker"
DEPTH_100MS, DEPTH_1S = "depth@100ms", "depth"
DEPTH_KINDS = (DEPTH_100MS, DEPTH_1S)
KINDS = (BOOK_TICKER, *DEPTH_KINDS)


class StreamNameError(ValueError):
    """A stream name the simulator does not serve."""


@lru_cache(maxsize=1)
def symbols_by_stream_name() -> dict[str, str]:
    """{"btcusdt": "BTCUSDT", ...}: the symbols a stream name may carry."""
    return {ticker["symbol"].lower(): ticker["symbol"] for ticker in data.tickers()}


@dataclass(frozen=True)
class Stream:
    """A parsed stream name; ``symbol`` is None for a symbol the market lacks (such a
    stream is accepted and stays silent, as on Binance)."""

    name: str
    symbol: str | None
    kind: str


def parse_stream(name: str) -> Stream:
    """``<lower-case symbol>@<kind>`` -> :class:`Stream`, else :class:`StreamNameError`."""
    symbol, at, kind = name.partition("@")
    if not at or not symbol or kind not in KINDS or symbol != symbol.lower():
        raise StreamNameError(f"invalid stream name {name!r}: expected <lower-case symbol>@"
                              f"{'|'.join(KINDS)}")
    return Stream(name, symbols_by_stream_name().get(symbol), kind)


def check_target(target: str) -> str:
    """A fault's stream target: a kind (all streams of that kind) or a known stream."""
    if target in KINDS:
        return target
    if parse_stream(target).symbol is None:
        raise StreamNameError(f"unknown symbol in stream {target!r}")
    return target


def target_matches(target: str, name: str) -> bool:
    """Whether a fault target (a stream name or a kind) covers stream ``name``."""
    return target in (name, name.partition("@")[2])
