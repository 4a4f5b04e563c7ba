"""HTTP client for Binance's public Spot REST API (no API key needed).

What it knows about Binance, so nothing else has to:

* one ``requests.Session`` (connection reuse, a pool big enough for parallel
  calls) and a connect/read timeout on every call;
* base URLs tried in order when a connection cannot be made
  (``api.binance.com``, ``data-api.binance.vision``, ...);
* 5xx answers, timeouts and connection errors are retried a few times with
  exponential backoff, each attempt counted; a ``deadline`` keeps the whole
  call inside a caller's budget (the scrape timeout);
* 429/418 set a cool-down from ``Retry-After`` during which *every* call is
  refused locally without a request (Binance limits by IP, not endpoint);
  they are never retried and the client never sleeps for them;
* 451 (restricted location) and other 4xx become typed errors;
* the last ``X-MBX-USED-WEIGHT-1M`` header and the count of attempts per
  endpoint and HTTP status are kept for the exporter to publish.

Retries are a small loop here rather than urllib3's ``Retry`` so that every
attempt is counted by status and no attempt starts after the deadline.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from typing import Any, Callable, Mapping, Sequence

import requests

from collector import models
from collector.errors import (
    ApiError,
    BadResponse,
    RateLimited,
    RestrictedLocation,
    UpstreamUnavailable,
)

DEFAULT_BASE_URL = "https://api.binance.com"
# used when a 429/418 carries no usable Retry-After: Binance's limits are per minute
DEFAULT_COOL_DOWN = 60.0
RETRY_STATUSES = frozenset({500, 502, 503, 504})


class BinanceClient:  # pylint: disable=too-many-instance-attributes
    """Typed access to the four market-data endpoints the product uses."""

    def __init__(  # pylint: disable=too-many-arguments
        self,
        base_urls: Sequence[str] = (DEFAULT_BASE_URL,),
        *,
        timeout: float = 3.0,
        retries: int = 1,
        backoff: float = 0.2,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not base_urls:
            raise ValueError("at least one base URL is needed")
        self.base_urls = tuple(url.rstrip("/") for url in base_urls)
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._clock = clock
        self._wall = wall
        self._sleep = sleep
        self._session = session or _new_session()
        self._lock = threading.Lock()
        self._preferred = 0  # index of the base URL that last connected
        self._cool_down_until = 0.0
        self.used_weight: int | None = None
        self._weight_minute = -1
        self.requests: Counter[tuple[str, str]] = Counter()

    # -- the endpoints -------------------------------------------------------

    def exchange_info(self, deadline: float | None = None) -> Mapping[str, models.SymbolInfo]:
        """All symbols with status and quote asset (weight 20)."""
        return models.parse_exchange_info(self.get(models.EXCHANGE_INFO, {}, deadline))

    def tickers_24h(self, deadline: float | None = None) -> tuple[models.Ticker24h, ...]:
        """24 h statistics of every symbol (weight 80). MINI: same weight, a third of the bytes."""
        return models.parse_tickers(self.get(models.TICKER_24H, {"type": "MINI"}, deadline))

    def order_book(
        self, symbol: str, limit: int, deadline: float | None = None
    ) -> models.OrderBook:
        """Top ``limit`` levels per side (weight 5/25/50/250 by limit)."""
        payload = self.get(models.DEPTH, {"symbol": symbol, "limit": limit}, deadline)
        return models.parse_order_book(payload, symbol)

    def book_tickers(
        self, symbols: Sequence[str], deadline: float | None = None
    ) -> Mapping[str, models.BookTop]:
        """Best bid/ask of several symbols in ONE call (weight 4)."""
        param = json.dumps(sorted(symbols), separators=(",", ":"))
        payload = self.get(models.BOOK_TICKER, {"symbols": param}, deadline)
        return models.parse_book_tickers(payload)

    # -- state for the exporter ----------------------------------------------

    def cool_down_remaining(self) -> float:
        """Seconds until calls are allowed again after a 429/418 (0 when allowed)."""
        return max(0.0, self._cool_down_until - self._clock())

    def request_counts(self) -> dict[tuple[str, str], int]:
        """A copy of attempts by (endpoint, status code or ``error``)."""
        with self._lock:
            return dict(self.requests)

    # -- the transport -------------------------------------------------------

    def get(self, endpoint: str, params: Mapping[str, Any], deadline: float | None = None) -> Any:
        """GET ``endpoint`` and return its decoded JSON, or raise a ``BinanceError``."""
        attempt = 0
        while True:
            self._check_cool_down(endpoint)
            timeout = self.timeout
            if deadline is not None:
                timeout = min(timeout, deadline - self._clock())
                if timeout <= 0:
                    raise UpstreamUnavailable(endpoint, "no time left in this refresh's budget")
            failure = self._attempt(endpoint, params, timeout)
            if isinstance(failure, requests.Response):
                return _decode(endpoint, failure)
            attempt += 1
            pause = self.backoff * 2 ** (attempt - 1)
            out_of_time = deadline is not None and self._clock() + pause >= deadline
            if attempt > self.retries or out_of_time:
                raise UpstreamUnavailable(endpoint, f"{failure} (after {attempt} attempts)")
            self._sleep(pause)

    def _check_cool_down(self, endpoint: str) -> None:
        remaining = self.cool_down_remaining()
        if remaining > 0:
            reason = f"rate-limit cool-down, {remaining:.0f} s left; no request sent"
            raise RateLimited(endpoint, reason, remaining)

    def _attempt(
        self, endpoint: str, params: Mapping[str, Any], timeout: float
    ) -> requests.Response | str:
        """One request; the response if usable, else a retryable reason as text."""
        base_index = self._preferred
        url = self.base_urls[base_index] + endpoint
        try:
            response = self._session.get(url, params=params, timeout=timeout)
        except requests.ConnectionError as exc:
            self._count(endpoint, "error")
            if isinstance(exc, requests.ConnectTimeout) or _is_connect_failure(exc):
                self._rotate(base_index)
            return f"connection to {self.base_urls[base_index]} failed: {_describe(exc)}"
        except requests.Timeout:
            self._count(endpoint, "error")
            return f"timed out after {timeout:.1f} s"
        except requests.RequestException as exc:
            self._count(endpoint, "error")
            return f"request failed: {_short(exc)}"
        self._count(endpoint, str(response.status_code))
        self._note_weight(response)
        status = response.status_code
        if status in RETRY_STATUSES:
            return f"HTTP {status}"
        if status in (418, 429):
            retry_after = _retry_after(response)
            with self._lock:
                self._cool_down_until = max(self._cool_down_until, self._clock() + retry_after)
            reason = f"HTTP {status}, rate limited; cooling down {retry_after:.0f} s"
            raise RateLimited(endpoint, reason, retry_after)
        if status == 451:
            raise RestrictedLocation(
                endpoint,
                f"HTTP 451: Binance refuses this location at {self.base_urls[base_index]}; "
                "try another --base-url such as https://api.binance.us",
            )
        if status >= 400:
            code, msg = _binance_error(response)
            raise ApiError(endpoint, status, code, msg)
        return response

    def _rotate(self, failed_index: int) -> None:
        with self._lock:
            if self._preferred == failed_index:
                self._preferred = (failed_index + 1) % len(self.base_urls)

    def _count(self, endpoint: str, code: str) -> None:
        with self._lock:
            self.requests[(endpoint, code)] += 1

    def _note_weight(self, response: requests.Response) -> None:
        """Keep the highest weight reported in this clock minute.

        Parallel answers arrive in any order, so the last one read may carry an
        older count; Binance's counter only grows within its one-minute window.
        """
        header = response.headers.get("X-MBX-USED-WEIGHT-1M")
        if header is None or not header.isdigit():
            return
        minute = int(self._wall() // 60)
        with self._lock:
            if minute != self._weight_minute or self.used_weight is None:
                self._weight_minute, self.used_weight = minute, int(header)
            else:
                self.used_weight = max(self.used_weight, int(header))


def _new_session() -> requests.Session:
    session = requests.Session()
    # parallel book fetches share this session: one pooled connection each
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=16, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = "binance-exporter"
    return session


def _decode(endpoint: str, response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise BadResponse(endpoint, "body", "not valid JSON") from None


def _retry_after(response: requests.Response) -> float:
    value = response.headers.get("Retry-After", "")
    try:
        seconds = float(value)
    except ValueError:
        return DEFAULT_COOL_DOWN
    return seconds if seconds > 0 else DEFAULT_COOL_DOWN


def _binance_error(response: requests.Response) -> tuple[int | None, str]:
    try:
        body = response.json()
    except ValueError:
        return None, response.text[:100] or response.reason
    if isinstance(body, dict):
        code = body.get("code")
        return (code if isinstance(code, int) else None), str(body.get("msg", ""))[:200]
    return None, str(body)[:100]


def _is_connect_failure(exc: requests.ConnectionError) -> bool:
    """True when no connection was made (refused, DNS): worth trying the next base URL."""
    text = str(exc)
    return any(word in text for word in ("NewConnectionError", "NameResolutionError", "refused"))


# urllib3's messages run to hundreds of characters; a log line needs the gist
_GISTS = (
    ("NameResolutionError", "cannot resolve the host name"),
    ("refused", "connection refused"),
    ("reset by peer", "connection reset"),
    ("RemoteDisconnected", "connection closed without an answer"),
    ("IncompleteRead", "connection closed in the middle of the answer"),
    ("ConnectTimeout", "connect timed out"),
)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    for marker, gist in _GISTS:
        if marker in text:
            return gist
    return _short(exc)


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= 160 else text[:157] + "..."
