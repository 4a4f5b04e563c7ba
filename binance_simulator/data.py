"""The recorded Binance responses bundled with the simulator.

``tools/trim_simulator_data.py`` derives both files from real recordings:
an exchangeInfo from 2023-09-08 and a ticker/24hr dump from 2024-03-10.  They
are six months apart, so some ticker symbols are missing from the
exchangeInfo; the simulator keeps that mismatch because real listings change
between refreshes too.  Files are parsed once and cached; callers must treat
the returned objects as read-only.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

_PACKAGE = "binance_simulator"


def _load(name: str) -> Any:
    return json.loads((resources.files(_PACKAGE) / "data" / name).read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def exchange_info() -> dict[str, Any]:
    """The trimmed ``GET /api/v3/exchangeInfo`` recording (2,292 symbols + 1 synthetic)."""
    loaded: dict[str, Any] = _load("exchange_info.json")
    return loaded


@lru_cache(maxsize=1)
def tickers() -> list[dict[str, Any]]:
    """The ``GET /api/v3/ticker/24hr`` recording (2,519 tickers, dead ones included, + 1)."""
    loaded: list[dict[str, Any]] = _load("ticker_24hr.json")
    return loaded
