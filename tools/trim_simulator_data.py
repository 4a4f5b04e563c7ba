"""Derive the simulator's bundled market data from the recorded Binance responses.

One-off developer script, not part of the installed package.  The recorded
responses live outside the project (``../shared/fixtures/binance`` next to the
checkout) and the project must never read them at run or test time, so this
script copies what the simulator needs into ``collector/simulator/data/``:

* ``exchange_info.json`` -- from ``exchangeInfo_binance_com_2023-09-08.json``:
  the top-level ``timezone``, ``serverTime``, ``rateLimits`` and
  ``exchangeFilters``, and every symbol trimmed to the fields the exporter
  reads (``symbol``, ``status``, ``baseAsset``, ``baseAssetPrecision``,
  ``quoteAsset``, ``quotePrecision``, ``quoteAssetPrecision``,
  ``isSpotTradingAllowed``, ``permissions``).  Filters, order types and the
  like are dropped: they make up most of the 3.7 MB and nothing uses them.
* ``ticker_24hr.json`` -- ``ticker_24hr_all_binance_com_2024-03-10.json``
  unchanged (all 2,519 tickers, dead ones included).

Both are written with compact separators.  The two recordings are six months
apart, so some ticker symbols (e.g. ``PIXELUSDT``) are absent from the
exchangeInfo; that mismatch is kept on purpose because it is realistic.

Usage (from the repository root)::

    python tools/trim_simulator_data.py [--source DIR] [--dest DIR]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = REPO_ROOT.parent / "shared" / "fixtures" / "binance"
DEFAULT_DEST = REPO_ROOT / "collector" / "simulator" / "data"

EXCHANGE_INFO_SOURCE = "exchangeInfo_binance_com_2023-09-08.json"
TICKER_SOURCE = "ticker_24hr_all_binance_com_2024-03-10.json"

TOP_LEVEL_KEYS = ("timezone", "serverTime", "rateLimits", "exchangeFilters")
SYMBOL_KEYS = (
    "symbol",
    "status",
    "baseAsset",
    "baseAssetPrecision",
    "quoteAsset",
    "quotePrecision",
    "quoteAssetPrecision",
    "isSpotTradingAllowed",
    "permissions",
)


def trim_exchange_info(raw: dict[str, Any]) -> dict[str, Any]:
    """Keep the top-level metadata and the exporter-relevant symbol fields."""
    trimmed: dict[str, Any] = {key: raw[key] for key in TOP_LEVEL_KEYS}
    trimmed["symbols"] = [{key: symbol[key] for key in SYMBOL_KEYS} for symbol in raw["symbols"]]
    return trimmed


def write_compact(path: Path, payload: Any) -> None:
    """Write JSON without whitespace (the shape Binance itself sends)."""
    path.write_text(json.dumps(payload, separators=(",", ":")) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Read the recordings from ``--source`` and write the trimmed files to ``--dest``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST)
    args = parser.parse_args(argv)

    exchange_info = json.loads((args.source / EXCHANGE_INFO_SOURCE).read_text(encoding="utf-8"))
    tickers = json.loads((args.source / TICKER_SOURCE).read_text(encoding="utf-8"))

    args.dest.mkdir(parents=True, exist_ok=True)
    trimmed = trim_exchange_info(exchange_info)
    write_compact(args.dest / "exchange_info.json", trimmed)
    write_compact(args.dest / "ticker_24hr.json", tickers)
    print(f"exchange_info.json: {len(trimmed['symbols'])} symbols")
    print(f"ticker_24hr.json: {len(tickers)} tickers")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
