"""Derive the simulator's bundled market data from the recorded Binance responses.

One-off developer script, not part of the installed package.  The recorded
responses live outside the project (``../shared/fixtures/binance`` next to the
checkout) and the project must never read them at run or test time, so this
script copies what the simulator needs into ``binance_simulator/data/``:

* ``exchange_info.json`` -- from ``exchangeInfo_binance_com_2023-09-08.json``:
  the top-level ``timezone``, ``serverTime``, ``rateLimits`` and
  ``exchangeFilters``, and every symbol trimmed to the fields the exporter
  reads (``symbol``, ``status``, ``baseAsset``, ``baseAssetPrecision``,
  ``quoteAsset``, ``quotePrecision``, ``quoteAssetPrecision``,
  ``isSpotTradingAllowed``, ``permissions``).  Filters, order types and the
  like are dropped: they make up most of the 3.7 MB and nothing uses them.
* ``ticker_24hr.json`` -- ``ticker_24hr_all_binance_com_2024-03-10.json``
  unchanged (all 2,519 tickers, dead ones included).

* one synthetic listing added to both, ``币安人生USDT`` (base asset
  ``币安人生``): the recordings predate Binance's non-ASCII symbols
  (CHANGELOG 2025-12-02), so it is modelled on ``DOGEUSDT``'s recorded figures
  with 1,700,000 trades, which puts it third among the USDT pairs by trades
  (Q2) and makes every Q2 request carry a Unicode symbol.

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
DEFAULT_DEST = REPO_ROOT / "binance_simulator" / "data"

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


UNICODE_SYMBOL = "币安人生USDT"
UNICODE_BASE = "币安人生"
UNICODE_MODEL = "DOGEUSDT"
UNICODE_TRADES = 1_700_000


def add_unicode_listing(exchange_info: dict[str, Any], tickers: list[dict[str, Any]]) -> None:
    """Append the synthetic non-ASCII symbol (see the module docstring) to both recordings."""
    model = next(ticker for ticker in tickers if ticker["symbol"] == UNICODE_MODEL)
    tickers.append({**model, "symbol": UNICODE_SYMBOL, "count": UNICODE_TRADES})
    listing = next(s for s in exchange_info["symbols"] if s["symbol"] == UNICODE_MODEL)
    exchange_info["symbols"].append({**listing, "symbol": UNICODE_SYMBOL,
                                     "baseAsset": UNICODE_BASE})


def write_compact(path: Path, payload: Any) -> None:
    """Write JSON without whitespace (the shape Binance itself sends)."""
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    path.write_text(text + "\n", encoding="utf-8")


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
    add_unicode_listing(trimmed, tickers)
    write_compact(args.dest / "exchange_info.json", trimmed)
    write_compact(args.dest / "ticker_24hr.json", tickers)
    print(f"exchange_info.json: {len(trimmed['symbols'])} symbols")
    print(f"ticker_24hr.json: {len(tickers)} tickers")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
