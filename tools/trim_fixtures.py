"""Derive the test fixtures in tests/fixtures/ from the recorded Binance responses.

Run once by a developer (tests never read ../shared):

    python tools/trim_fixtures.py ../shared/fixtures/binance tests/fixtures

It keeps the real records of a few dozen symbols (the real top of each ranking
plus realistic traps) and adds the traps the recordings lack, each listed in
tests/fixtures/README.md. Order books are not recorded, so depth answers are
built around each symbol's recorded bid/ask with a fixed, documented recipe.
"""

from __future__ import annotations

import json
import sys
from decimal import Decimal
from pathlib import Path

TICKER_SYMBOLS = [
    # BTC-quoted: the real top 7 by quoteVolume, and the top 3 by base volume
    "ETHBTC", "DOGEBTC", "FETBTC", "SOLBTC", "WLDBTC", "BNBBTC", "RNDRBTC", "LINABTC", "GALABTC",
    "WBTCBTC",
    # USDT-quoted: the real top 7 by count
    "FLOKIUSDT", "WLDUSDT", "BTCUSDT", "SHIBUSDT", "PEPEUSDT", "DOGEUSDT", "FDUSDUSDT",
    # spelling traps: contain BTC but are not quoted in BTC
    "BTCDOWNUSDT", "WBTCETH", "BTCTUSD", "BTCEUR",
    # absent from this exchangeInfo (listed after it was recorded)
    "PIXELUSDT", "PIXELBTC",
    # not TRADING in exchangeInfo
    "FTTUSDT", "XEMBTC",
]
INFO_FIELDS = ("symbol", "status", "baseAsset", "quoteAsset")
# traps the recordings do not have: a BREAK symbol outranking everything
EDITS = {"XEMBTC": {"quoteVolume": "99999.00000000", "volume": "999999999.00000000",
                    "count": 9999999},
         "FTTUSDT": {"count": 9999999}}
# depth levels built per side (SOLBTC is a thin book on the bid side)
BOOK_LEVELS = {"ETHBTC": (200, 200), "DOGEBTC": (250, 250), "FETBTC": (200, 200),
               "SOLBTC": (37, 200), "WLDBTC": (200, 200)}


def tick_of(*prices: str) -> Decimal:
    """The smallest power of ten both prices are multiples of."""
    places = max(-Decimal(p).normalize().as_tuple().exponent for p in prices)  # type: ignore
    return Decimal(1).scaleb(-max(places, 0))


def book(ticker: dict, bids: int, asks: int) -> dict:
    """Levels one tick apart; quantities a fixed pattern of the recorded quantity."""
    tick = tick_of(ticker["bidPrice"], ticker["askPrice"])
    bid, ask = Decimal(ticker["bidPrice"]), Decimal(ticker["askPrice"])
    bid_qty, ask_qty = Decimal(ticker["bidQty"]), Decimal(ticker["askQty"])

    def fmt(value: Decimal) -> str:
        return f"{value:.8f}"

    return {
        "lastUpdateId": 1000,
        "bids": [[fmt(bid - i * tick), fmt(bid_qty * (1 + i % 7) / 4)] for i in range(bids)],
        "asks": [[fmt(ask + i * tick), fmt(ask_qty * (1 + i % 5) / 4)] for i in range(asks)],
    }


def main(source: Path, target: Path) -> None:
    """Write the trimmed fixtures."""
    tickers = {t["symbol"]: t for t in json.loads((source / "ticker_24hr_all_binance_com_2024-03-10.json").read_text())}
    info = json.loads((source / "exchangeInfo_binance_com_2023-09-08.json").read_text())
    chosen = [dict(tickers[s], **EDITS.get(s, {})) for s in TICKER_SYMBOLS]
    (target / "ticker_24hr.json").write_text(json.dumps(chosen, indent=1) + "\n")
    symbols = [{k: s[k] for k in INFO_FIELDS} for s in info["symbols"] if s["symbol"] in TICKER_SYMBOLS]
    trimmed = {"timezone": info["timezone"], "serverTime": info["serverTime"],
               "rateLimits": info["rateLimits"], "exchangeFilters": [], "symbols": symbols}
    (target / "exchange_info.json").write_text(json.dumps(trimmed, indent=1) + "\n")
    books = target / "depth"
    books.mkdir(exist_ok=True)
    for symbol, (bids, asks) in BOOK_LEVELS.items():
        (books / f"{symbol}.json").write_text(json.dumps(book(tickers[symbol], bids, asks)) + "\n")
    top5 = ["FLOKIUSDT", "WLDUSDT", "BTCUSDT", "SHIBUSDT", "PEPEUSDT"]
    fields = ("symbol", "bidPrice", "bidQty", "askPrice", "askQty")
    tops = [{k: tickers[s][k] for k in fields} for s in top5]
    (target / "book_ticker.json").write_text(json.dumps(tops, indent=1) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
