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
  they are never retried and the client never sleeps for them. A 403 is the
  WAF's limit, which "can indicate a rate limit violation" (rest-api.md): it
  is treated the same way, with ``Retry-After`` when sent, else 60 s doubling
  with each consecutive 403 up to 10 minutes;
* 451 (restricted location) and other 4xx become typed errors;
* symbols are sent as UTF-8, percent-encoded (they may be non-ASCII);
* exchangeInfo and the 24 h ticker ask only for ``TRADING`` symbols and no
  permission sets: what the product would discard anyway;
* the last ``X-MBX-USED-WEIGHT-1M`` header, the ``REQUEST_WEIGHT`` limit
  exchangeInfo announces, and the count of attempts per endpoint and HTTP
  status are kept for the exporter to publish.

Retries are a small loop here rather than urllib3's ``Retry`` so that every
attempt is counted by status and no attempt starts after the deadline.
"""

from __future__ import annotations

import http.client
import json
import math
import re
import ssl
import threading
import time
from collections import Counter
from typing import Any, Callable, Mapping, Sequence

import requests
from urllib3.exceptions import (
    ConnectTimeoutError,
    IncompleteRead,
    NameResolutionError,
    NewConnectionError,
    ReadTimeoutError,
)

from collector import models
from collector.records import BookTop, OrderBook, SymbolInfo, Ticker24h
from collector.errors import (
    TLS_FAILED_HINT,
    TLS_UNTRUSTED_HINT,
    ApiError,
    BadResponse,
    NotAttempted,
    RateLimited,
    RestrictedLocation,
    UpstreamUnavailable,
)

DEFAULT_BASE_URL = "https://api.binance.com"
# used when a 429/418/403 carries no usable Retry-After: Binance's limits are per minute
DEFAULT_COOL_DOWN = 60.0
MAX_WAF_COOL_DOWN = 600.0  # consecutive 403s without Retry-After double up to this
# Binance's IP bans last 2 minutes to 3 days; a longer (or infinite) Retry-After is a bad header
MAX_COOL_DOWN = 3 * 86400.0
RETRY_STATUSES = frozenset({500, 502, 503, 504})

# request weights of the calls this client makes (Binance's rest-api.md)
EXCHANGE_INFO_WEIGHT = 20
TICKER_24H_ALL_WEIGHT = 80  # every symbol; 2/40 only for lists of up to 20/100
BOOK_TICKERS_WEIGHT = 4  # any list of symbols
WEIGHT_LIMIT = 6000  # per minute and IP: exchangeInfo's REQUEST_WEIGHT limit until one is seen

# what the product discards anyway: other statuses, and permission sets (~40 % of the bytes)
EXCHANGE_INFO_PARAMS = {"symbolStatus": "TRADING", "showPermissionSets": "false"}
TICKER_24H_PARAMS = {"type": "MINI", "symbolStatus": "TRADING"}  # MINI: half the bytes


DEPTH_WEIGHTS = ((100, 5), (500, 25), (1000, 50))  # (up to this many levels, weight)
DEPTH_WEIGHT_MAX = 250  # 1001 to 5000 levels


def depth_weight(limit: int) -> int:
    """The weight of one order book of ``limit`` levels."""
    return next((weight for most, weight in DEPTH_WEIGHTS if limit <= most), DEPTH_WEIGHT_MAX)


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
        pool_size: int = 16,
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
        self._session = session or _new_session(pool_size)
        self._lock = threading.Lock()
        self._preferred = 0  # index of the base URL that last connected
        self._cool_down_until = 0.0
        self._waf_cool_down = 0.0  # the last 403 cool-down without Retry-After
        self.used_weight: int | None = None
        self.weight_limit = WEIGHT_LIMIT
        self._weight_minute = -1
        self.requests: Counter[tuple[str, str]] = Counter()

    # -- the endpoints -------------------------------------------------------

    def exchange_info(self, deadline: float | None = None) -> Mapping[str, SymbolInfo]:
        """The TRADING symbols with status and quote asset (weight 20).

        Also notes the ``REQUEST_WEIGHT`` limit per minute that the answer announces.
        """
        payload = self.get(models.EXCHANGE_INFO, EXCHANGE_INFO_PARAMS, deadline)
        infos = models.parse_exchange_info(payload)
        limit = models.parse_weight_limit(payload)
        if limit is not None:
            self.weight_limit = limit
        return infos

    def tickers_24h(self, deadline: float | None = None) -> tuple[Ticker24h, ...]:
        """24 h statistics of every TRADING symbol (weight 80)."""
        return models.parse_tickers(self.get(models.TICKER_24H, TICKER_24H_PARAMS, deadline))

    def order_book(
        self, symbol: str, limit: int, deadline: float | None = None
    ) -> OrderBook:
        """Top ``limit`` levels per side (weight 5/25/50/250 by limit)."""
        payload = self.get(models.DEPTH, {"symbol": symbol, "limit": limit}, deadline)
        return models.parse_order_book(payload, symbol)

    def book_tickers(
        self, symbols: Sequence[str] | None, deadline: float | None = None
    ) -> Mapping[str, BookTop]:
        """Best bid/ask of several symbols in ONE call (weight 4); None: of every symbol
        (weight 4 too)."""
        if symbols is None:  # the body as read: decoded typed
            return models.parse_book_tickers(self.get_body(models.BOOK_TICKER, {}, deadline))
        # compact, and UTF-8 rather than \\u escapes: requests percent-encodes it
        param = json.dumps(sorted(symbols), separators=(",", ":"), ensure_ascii=False)
        tops = models.parse_book_tickers(
            self.get_body(models.BOOK_TICKER, {"symbols": param}, deadline))
        for symbol in symbols:
            if symbol not in tops:  # Binance answers -1121 rather than leave one out
                raise BadResponse(models.BOOK_TICKER, f"symbol {symbol}", "missing from the answer")
        return tops

    # -- state for the exporter ----------------------------------------------

    def cool_down_remaining(self) -> float:
        """Seconds until calls are allowed again after a 429/418/403 (0 when allowed)."""
        return max(0.0, self._cool_down_until - self._clock())

    def used_weight_this_minute(self) -> int | None:
        """The weight Binance reported for this clock minute; None if nothing was sent in it."""
        with self._lock:
            if self._weight_minute != int(self._wall() // 60):
                return None
            return self.used_weight

    def request_counts(self) -> dict[tuple[str, str], int]:
        """A copy of attempts by (endpoint, status code or ``error``)."""
        with self._lock:
            return dict(self.requests)

    # -- the transport -------------------------------------------------------

    def get(self, endpoint: str, params: Mapping[str, Any], deadline: float | None = None) -> Any:
        """GET ``endpoint`` and return its decoded JSON, or raise a ``BinanceError``."""
        body = self.get_body(endpoint, params, deadline)
        try:
            return json.loads(body)
        except ValueError:
            raise BadResponse(endpoint, "body", "not valid JSON") from None

    def get_body(self, endpoint: str, params: Mapping[str, Any],
                 deadline: float | None = None) -> bytes:
        """As :meth:`get`, the answer's body undecoded (for :mod:`collector.models`'
        typed decoding)."""
        attempt, result = 0, None
        while True:
            self._check_cool_down(endpoint)
            try:
                result = self._attempt(endpoint, params, deadline)
            except NotAttempted:
                if not isinstance(result, _Failure):
                    raise  # nothing was sent at all
                # earlier attempts were sent: this is their failure, not "nothing sent"
                raise UpstreamUnavailable(endpoint, f"{result.reason} (after {attempt} attempts)",
                                          unreachable=result.no_connection,
                                          hint=result.hint) from None
            if not isinstance(result, _Failure):
                return result
            attempt += 1
            pause = self.backoff * 2 ** (attempt - 1)
            out_of_time = deadline is not None and self._clock() + pause >= deadline
            if attempt > self.retries or out_of_time:
                raise UpstreamUnavailable(endpoint, f"{result.reason} (after {attempt} attempts)",
                                          unreachable=result.no_connection, hint=result.hint)
            self._sleep(pause)

    def _check_cool_down(self, endpoint: str) -> None:
        remaining = self.cool_down_remaining()
        if remaining > 0:
            reason = f"rate-limit cool-down, {remaining:.0f} s left; no request sent"
            raise RateLimited(endpoint, reason, remaining)

    def _attempt(self, endpoint: str, params: Mapping[str, Any], deadline: float | None
                 ) -> bytes | _Failure:
        """One attempt: the preferred base URL, then the next ones while no connection is made.

        Moving to another base URL is not a retry: nothing reached Binance.
        """
        first = self._preferred
        result: bytes | _Failure = _Failure("no base URL tried")  # there is at least one
        for offset in range(len(self.base_urls)):
            index = (first + offset) % len(self.base_urls)
            last = offset == len(self.base_urls) - 1
            try:
                result = self._request(endpoint, params, index, deadline)
            except RestrictedLocation:  # this host refuses us; another may not
                if last:
                    raise
                result = _Failure("HTTP 451", no_connection=True)
            except NotAttempted:  # no time left for the next base URL
                if offset == 0:
                    raise
                return result  # the failure of the ones tried
            if not (isinstance(result, _Failure) and result.no_connection):
                return result
            with self._lock:
                if self._preferred == index:
                    self._preferred = (index + 1) % len(self.base_urls)
        return result

    def _request(
        self, endpoint: str, params: Mapping[str, Any], index: int, deadline: float | None
    ) -> bytes | _Failure:
        """One HTTP request to base URL ``index``: the body, a retryable _Failure, or raise."""
        base = self.base_urls[index]
        timeout = self.timeout
        if deadline is not None:
            timeout = min(timeout, deadline - self._clock())
            if timeout <= 0:
                raise NotAttempted(endpoint, "no time left in this refresh's budget")
        try:
            response = self._session.get(
                base + endpoint, params=params, timeout=(timeout, timeout), stream=True
            )
        except requests.RequestException as exc:
            self._count(endpoint, "error")
            return _failure_of(exc, base, timeout)
        with response:
            self._count(endpoint, str(response.status_code))
            self._note_weight(response)
            self._raise_for_status(endpoint, response, base)
            if response.status_code in RETRY_STATUSES:
                return _Failure(f"HTTP {response.status_code}")
            try:
                body = _read_body(response, self._clock, deadline)
            except requests.RequestException as exc:
                return _failure_of(exc, base, timeout)
        if body is None:
            return _Failure("the answer did not arrive within the refresh budget")
        if response.status_code < 300:
            self._waf_cool_down = 0.0  # Binance answers again: the next 403 starts at 60 s
        return body

    def _raise_for_status(self, endpoint: str, response: requests.Response, base: str) -> None:
        """Turn 429/418/403, 451 and other 4xx into typed errors (none of them is retried)."""
        status = response.status_code
        if status in (418, 429, 403):
            retry_after = _retry_after(response)
            if retry_after is None and status == 403:  # the WAF rarely says: back off harder
                with self._lock:
                    # double once per cool-down, not once per parallel answer inside it
                    if self._clock() >= self._cool_down_until:
                        self._waf_cool_down = min(MAX_WAF_COOL_DOWN,
                                                  2 * self._waf_cool_down or DEFAULT_COOL_DOWN)
                    retry_after = self._waf_cool_down
            if retry_after is None:
                retry_after = DEFAULT_COOL_DOWN
            with self._lock:
                self._cool_down_until = max(self._cool_down_until, self._clock() + retry_after)
                remaining = self._cool_down_until - self._clock()
            what = "blocked by Binance's WAF" if status == 403 else "rate limited"
            reason = f"HTTP {status}, {what}; cooling down {remaining:.0f} s"
            raise RateLimited(endpoint, reason, remaining)
        if status == 451:
            raise RestrictedLocation(
                endpoint, f"HTTP 451: Binance refuses this location at {base}")
        if 400 <= status < 500:
            code, msg = _binance_error(response)
            if code is None:  # not Binance's answer: its body is some server's page
                msg = response.reason or msg
            raise ApiError(endpoint, status, code, msg)

    def _count(self, endpoint: str, code: str) -> None:
        with self._lock:
            self.requests[(endpoint, code)] += 1

    def _note_weight(self, response: requests.Response) -> None:
        """Keep the highest weight reported in this clock minute.

        Parallel answers arrive in any order, so the last one read may carry an
        older count; Binance's counter only grows within its one-minute window.
        """
        header = response.headers.get("X-MBX-USED-WEIGHT-1M")
        if header is None or not (header.isascii() and header.isdecimal()):
            return
        minute = int(self._wall() // 60)
        with self._lock:
            if minute != self._weight_minute or self.used_weight is None:
                self._weight_minute, self.used_weight = minute, int(header)
            else:
                self.used_weight = max(self.used_weight, int(header))


def _new_session(pool_size: int) -> requests.Session:
    session = requests.Session()
    # parallel book fetches share this session: one pooled connection each
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=pool_size,
                                            max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = "binance-exporter"
    return session


class _Failure:
    """A retryable failure of one request; ``no_connection`` when nothing reached the server;
    ``hint``: what the user can do about it, if there is something."""

    def __init__(self, reason: str, no_connection: bool = False, hint: str | None = None) -> None:
        self.reason = reason
        self.no_connection = no_connection
        self.hint = hint


def _failure_of(exc: requests.RequestException, base: str, timeout: float) -> _Failure:
    """A retryable failure, classified by the types of the exceptions ``exc`` wraps."""
    causes = _causes(exc)
    if _has(causes, NewConnectionError):  # no connection made: DNS, refused
        return _Failure(f"connection to {base} failed: {_describe(exc, causes)}",
                        no_connection=True)
    if isinstance(exc, requests.ConnectTimeout) or _has(causes, ConnectTimeoutError):
        return _Failure(f"connection to {base} failed: connect timed out", no_connection=True)
    if isinstance(exc, requests.Timeout) or _has(causes, ReadTimeoutError):  # mid-body too
        return _Failure(f"timed out after {timeout:.1f} s")
    tls = [cause for cause in causes if isinstance(cause, ssl.SSLError)]
    if tls:  # requests' own message is urllib3's, cut off before the cause
        untrusted = isinstance(tls[0], ssl.SSLCertVerificationError)
        return _Failure(f"connection to {base} failed: {_tls_gist(tls[0])}",
                        hint=TLS_UNTRUSTED_HINT if untrusted else TLS_FAILED_HINT)
    if isinstance(exc, (requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        return _Failure(f"connection to {base} failed: {_describe(exc, causes)}")
    return _Failure(f"request failed: {_short(exc)}")


def _read_body(
    response: requests.Response, clock: Callable[[], float], deadline: float | None
) -> bytes | None:
    """The whole body, or None if the deadline passes first (a trickling answer).

    requests' read timeout bounds each socket read, not the whole body, so the
    refresh budget is enforced here, between chunks.
    """
    chunks = []
    for chunk in response.iter_content(chunk_size=64 * 1024):
        chunks.append(chunk)
        if deadline is not None and clock() > deadline:
            return None
    return b"".join(chunks)


def _retry_after(response: requests.Response) -> float | None:
    """``Retry-After`` in seconds, bounded; None when absent or unusable."""
    value = response.headers.get("Retry-After", "")
    try:
        seconds = float(value)
    except ValueError:
        return None
    if math.isnan(seconds) or seconds <= 0:
        return None
    return min(seconds, MAX_COOL_DOWN)


def _binance_error(response: requests.Response) -> tuple[int | None, str]:
    try:
        body = response.json()
    except ValueError:
        return None, response.text[:100] or response.reason
    except requests.RequestException:  # the body broke off: the status says enough
        return None, response.reason or ""
    if isinstance(body, dict):
        code = body.get("code")
        return (code if isinstance(code, int) else None), str(body.get("msg", ""))[:200]
    return None, str(body)[:100]


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it wraps: requests wraps urllib3's errors (``reason`` of a
    MaxRetryError, or an argument), which wrap the socket's and http.client's."""
    found: list[BaseException] = []
    todo = [exc]
    while todo and len(found) < 20:
        current = todo.pop(0)
        if any(current is seen for seen in found):
            continue
        found.append(current)
        linked = [getattr(current, "reason", None), current.__cause__, current.__context__,
                  *current.args]
        todo += [item for item in linked if isinstance(item, BaseException)]
    return found


def _has(causes: Sequence[BaseException], kind: type[BaseException]) -> bool:
    return any(isinstance(cause, kind) for cause in causes)


# what a log line needs of a connection failure, by the type of its cause; first match wins,
# so subclasses come first (urllib3: NameResolutionError < NewConnectionError)
# (urllib3's own messages run to hundreds of characters)
_GISTS: tuple[tuple[type[BaseException], str], ...] = (
    (NameResolutionError, "cannot resolve the host name"),
    (ConnectionRefusedError, "connection refused"),
    (NewConnectionError, "cannot connect"),
    (http.client.RemoteDisconnected, "connection closed without an answer"),  # a reset, too
    (ConnectionResetError, "connection reset"),
    (http.client.IncompleteRead, "connection closed in the middle of the answer"),
    (IncompleteRead, "connection closed in the middle of the answer"),
)


def _describe(exc: BaseException, causes: Sequence[BaseException]) -> str:
    for kind, gist in _GISTS:
        if _has(causes, kind):
            return gist
    return _short(exc)


def _tls_gist(error: ssl.SSLError) -> str:
    """``TLS: certificate verify failed: self-signed certificate`` out of
    ``[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate
    (_ssl.c:1006)``."""
    if isinstance(error, ssl.SSLCertVerificationError) and error.verify_message:
        return f"TLS: certificate verify failed: {error.verify_message}"
    text = str(error.args[-1]) if error.args else "handshake failed"
    text = re.sub(r"^\[\w+: \w+\] | \(_ssl\.c:\d+\)$", "", text)
    return f"TLS: {text}"


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= 160 else text[:157] + "..."
