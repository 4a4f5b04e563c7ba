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
    "or try offline: `make demo` runs a simulated Binance on http://127.0.0.1:8090, "
    "to give as --base-url")

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

    def __init__(self, endpoint: str, reason: str, unreachable: bool = False) -> None:
        super().__init__(endpoint, reason)
        self.unreachable = unreachable
        self.hint = UNREACHABLE_HINT if unreachable else None


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
    """Any other 4xx with Binance's ``{"code": ..., "msg": ...}`` body, e.g. -1121."""

    kind = "api_error"

    def __init__(self, endpoint: str, status: int, code: int | None, msg: str) -> None:
        super().__init__(endpoint, f"HTTP {status}, Binance error {code}: {msg}")
        self.status = status
        self.code = code
        self.msg = msg


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
