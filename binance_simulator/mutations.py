"""Pure functions that corrupt order books and JSON payloads for the faults.

They never modify their input: the market shares its recorded dictionaries
between requests, so every fault builds new objects instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .market import Book

PRICE_KEYS = frozenset(
    {
        "price",
        "bidPrice",
        "askPrice",
        "lastPrice",
        "openPrice",
        "highPrice",
        "lowPrice",
        "prevClosePrice",
        "weightedAvgPrice",
    }
)


def cross_book(book: Book) -> Book:
    """Shift the bids up so the best bid sits one tick above the best ask."""
    if not book.bids or not book.asks:
        return book
    shift = book.asks[0][0] - book.bids[0][0] + book.tick
    return book.with_sides([(price + shift, qty) for price, qty in book.bids], book.asks)


def empty_side(book: Book, side: str) -> Book:
    """Remove every level of ``side`` ("bid" or "ask")."""
    return book.with_sides([], book.asks) if side == "bid" else book.with_sides(book.bids, [])


def wrong_type(payload: Any) -> Any:
    """An object where a list belongs (its first item) and a list where an object belongs."""
    if isinstance(payload, list):
        return payload[0] if payload else {}
    return [payload]


def drop_field(payload: Any, name: str) -> Any:
    """Remove key ``name`` from every object, however deeply nested."""
    if isinstance(payload, dict):
        return {key: drop_field(value, name) for key, value in payload.items() if key != name}
    if isinstance(payload, list):
        return [drop_field(item, name) for item in payload]
    return payload


def map_prices(payload: Any, change: Callable[[str], str]) -> Any:
    """Apply ``change`` to every price string: price fields and book level prices."""
    if isinstance(payload, list):
        return [map_prices(item, change) for item in payload]
    if not isinstance(payload, dict):
        return payload
    changed: dict[str, Any] = {}
    for key, value in payload.items():
        if key in PRICE_KEYS and isinstance(value, str):
            changed[key] = change(value)
        elif key in ("bids", "asks") and isinstance(value, list):
            changed[key] = [[change(level[0]), *level[1:]] for level in value]
        else:
            changed[key] = map_prices(value, change)
    return changed


def non_numeric(_price: str) -> str:
    """The ``non_numeric_price`` replacement."""
    return "abc"


def negative(price: str) -> str:
    """Negate a price; zero prices (Binance's "no price") stay as they are."""
    return price if set(price) <= {"0", "."} else "-" + price.lstrip("-")


def zero(price: str) -> str:
    """Zero a price, keeping its width: "0.05691000" -> "0.00000000"."""
    decimals = len(price.partition(".")[2])
    return "0." + "0" * decimals if decimals else "0"
