"""The library's own errors: every upstream failure becomes one of these.

Callers (the exporter, the report) catch :class:`BinanceError` and nothing
else, so a bad answer from Binance can never surface as ``KeyError`` or
``TypeError``. Each error names the endpoint it came from; ``kind`` is a short
stable word used as a metric label and in one-line messages.
"""

from __future__ import annotations


class BinanceError(Exception):
    """Base class: something went wrong talking to Binance."""

    kind = "error"
    hint: str | None = None  # what the user can do about it, said once per outage

    def __init__(self, endpoint: str, reason: str) -> None:
        super().__init__(f"{endpoint}: {reason}")
        self.endpoint = endpoint
        self.reason = reason


UNREACHABLE_HINT = (
    "Binance cannot be reached from here: try another --base-url, e.g. "
    "https://data-api.binance.vision (market data only) or https://api1.binance.com; "
    "or try it offline: `make demo` runs a simulated Binance and an exporter reading it, "
    "on port 8080 like `make run`, so stop a running `make run` first (Ctrl-C) or give the "
    "demo a free port, e.g. `make demo PORT=9100`")

NOT_BINANCE_HINT = (
    "the server at --base-url does not answer as Binance's API does: give the scheme and "
    "host only, e.g. https://api.binance.com, without /api/v3")

TLS_UNTRUSTED_HINT = (
    "the server's TLS certificate is not trusted here: if a proxy intercepts TLS, give its "
    "CA certificate in the REQUESTS_CA_BUNDLE environment variable")

TLS_FAILED_HINT = (
    "no TLS with the server at --base-url: does it speak https? A plain-HTTP server (such "
    "as the simulator) takes an http:// URL")

RESTRICTED_HINT = (
    "try another --base-url, e.g. https://data-api.binance.vision (Binance's market data "
    "only). https://api.binance.us is Binance.US, a separate exchange with other listings "
    "and figures, not this market")


class UpstreamUnavailable(BinanceError):
    """No usable answer: connection refused or reset, timeout, or 5xx after retries.

    ``unreachable`` when no connection could be made to any base URL (DNS,
    refused, connect timeout): then the hint suggests what to try instead.
    """

    kind = "unavailable"

    def __init__(self, endpoint: str, reason: str, unreachable: bool = False,
                 hint: str | None = None) -> None:
        super().__init__(endpoint, reason)
        self.unreachable = unreachable
        self.hint = UNREACHABLE_HINT if unreachable else hint


class NotAttempted(BinanceError):
    """Nothing was sent: no ranking yet to pick symbols from, or the refresh budget ran out."""

    kind = "not_attempted"


class RateLimited(BinanceError):
    """HTTP 429/418/403, or a call refused locally while the cool-down lasts.

    ``retry_after``: seconds from now until the cool-down ends.
    """

    kind = "rate_limited"

    def __init__(self, endpoint: str, reason: str, retry_after: float) -> None:
        super().__init__(endpoint, reason)
        self.retry_after = retry_after


class RestrictedLocation(BinanceError):
    """HTTP 451: Binance refuses this machine's location; another base URL may work."""

    kind = "restricted"
    hint = RESTRICTED_HINT


class ApiError(BinanceError):
    """Any other 4xx with Binance's ``{"code": ..., "msg": ...}`` body, e.g. -1121.

    Without an error code the answer is not Binance's (a web server's 404 page, a
    --base-url with a path): ``msg`` is then the HTTP reason, and the hint says what
    --base-url takes.
    """

    kind = "api_error"

    def __init__(self, endpoint: str, status: int, code: int | None, msg: str) -> None:
        if code is None:
            reason = f"HTTP {status} {msg} (not a Binance API answer: no error code)"
        else:
            reason = f"HTTP {status}, Binance error {code}: {msg}"
        super().__init__(endpoint, reason)
        self.status = status
        self.code = code
        self.msg = msg
        self.hint = NOT_BINANCE_HINT if code is None else None


class BadResponse(BinanceError):
    """A 200 answer whose body is not what the API documents (names the field)."""

    kind = "bad_response"

    def __init__(self, endpoint: str, field: str, problem: str) -> None:
        super().__init__(endpoint, f"field {field}: {problem}")
        self.field = field
        self.problem = problem


STREAM_HINT = (
    "Binance's streams cannot be reached from here: try another --stream-url, e.g. "
    "wss://stream.binance.com:9443, or the REST mode (--source rest); or try offline: "
    "`make demo STREAM=1` runs a simulated Binance with its streams")


class StreamUnavailable(BinanceError):
    """Stream mode: no connection delivers the streams now, so nothing live is published."""

    kind = "stream_down"
    hint = STREAM_HINT


class NotSynced(BinanceError):
    """Stream mode: a local order book or best bid/ask is not (yet, or no longer) known."""

    kind = "not_synced"
