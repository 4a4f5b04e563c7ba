"""The simulator proper: turns one HTTP request into a reply, minus the sockets.

``Simulator.handle`` decides everything -- weight and rate limit, faults,
payload, statistics -- and returns a plain description of what to send
(``Reply``) or how to drop the connection (``Hangup``).  Keeping the socket
work in ``server.py`` makes this logic easy to read and to test.

The control API under ``/_sim/`` is neither rate-limited nor counted:

* ``GET /_sim/faults`` lists the active faults; ``POST /_sim/faults`` with
  ``{"faults": [...]}`` replaces them; ``DELETE /_sim/faults`` clears them.
* ``GET /_sim/stats`` returns request counts per path and status, weights,
  the start time and, under ``streams``, the WebSocket figures (connections
  open and by outcome, messages sent by kind, closes by reason, current
  subscriptions); ``POST /_sim/stats/reset`` zeroes the counters and lifts any
  rate limit or ban, so every test or benchmark starts clean.
* ``GET /_sim/connections`` lists the stream connection attempts, when each
  connection opened and ended and what it was subscribed to when
  (``connection_log``); a reset of the stats forgets all but the open ones.
* ``POST /_sim/shutdown`` asks the process to exit cleanly.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from . import mutations
from .api import Api, ErrorAnswer, DataFaults
from .connection_log import ConnectionLog
from .faults import Fault, FaultSet, faults_from_body
from .market import STEP_SECONDS, SimulatedMarket
from .stream_stats import StreamStats
from .streams import StreamSettings
from .weights import ENDPOINTS, Admission, WeightLimiter, request_weight

JSON_TYPE = "application/json;charset=UTF-8"
WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1M"

Headers = Sequence[tuple[str, str]]

# Binance's bodies for server-side failures (502 comes from the CDN, as HTML).
ERROR_5XX_BODIES: dict[int, tuple[str, bytes]] = {
    500: (
        JSON_TYPE,
        b'{"code":-1001,"msg":"Internal error; unable to process your request. '
        b'Please try again."}',
    ),
    502: (
        "text/html",
        b"<html><head><title>502 Bad Gateway</title></head><body>502 Bad Gateway</body></html>",
    ),
    503: (
        JSON_TYPE,
        b'{"code":-1008,"msg":"Server is currently overloaded with other requests. '
        b'Please try again in a few minutes."}',
    ),
    504: (
        JSON_TYPE,
        b'{"code":-1007,"msg":"Timeout waiting for response from backend server. '
        b'Send status unknown; execution status unknown."}',
    ),
}

# the WAF's answer is a CDN page, not Binance's JSON
WAF_BODY = b"<html><head><title>403 Forbidden</title></head><body>403 Forbidden</body></html>"

RESTRICTED_LOCATION_MSG = (
    "Service unavailable from a restricted location according to 'b. Eligibility' in "
    "https://www.binance.com/en/terms. Please contact customer service if you believe you "
    "received this message in error."
)


def dumps(payload: Any) -> bytes:
    """Compact JSON, as Binance sends it."""
    return json.dumps(payload, separators=(",", ":")).encode()


@dataclass(frozen=True)
class SimulatorConfig:
    """Start-up settings other than the address (see ``cli`` for the flags)."""

    seed: int = 1
    latency_ms: int = 0
    weight_limit: int = 6000
    step_seconds: float = STEP_SECONDS
    faults: tuple[Fault, ...] = ()
    verbose: bool = False
    streams: StreamSettings = StreamSettings()


@dataclass(frozen=True)
class Reply:
    """An HTTP answer.  ``delay`` is waited first; ``cut_after`` (the ``reset``
    fault) sends only that many body bytes, then aborts the connection."""

    status: int
    body: bytes
    headers: Headers = ()
    content_type: str = JSON_TYPE
    delay: float = 0.0
    cut_after: int | None = None


@dataclass(frozen=True)
class Hangup:
    """Close without answering after ``delay`` seconds: with a TCP reset when
    ``abrupt`` (``close_immediately``), else an orderly close (``timeout``)."""

    delay: float
    abrupt: bool


Delivery = Reply | Hangup


class Stats:  # pylint: disable=too-many-instance-attributes
    """Request counters for tests and benchmarks (thread-safe); ``streams`` counts the
    WebSocket side, ``connections`` logs its connections."""

    def __init__(self, now: Callable[[], float]) -> None:
        self.streams = StreamStats()
        self.connections = ConnectionLog()
        self._now = now
        self._lock = threading.Lock()
        self._requests: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self._requests_total = 0
        self._weight_total = 0
        self._started_at = now()

    def reset(self) -> None:
        """Zero every counter and restart the clock."""
        self.streams.reset()
        self.connections.reset()
        with self._lock:
            self._requests.clear()
            self._requests_total = self._weight_total = 0
            self._started_at = self._now()

    def record(self, path: str, outcome: str, weight: int = 0) -> None:
        """Count one API request: its outcome (status or hang-up kind) and charged weight."""
        with self._lock:
            self._requests[path][outcome] += 1
            self._requests_total += 1
            self._weight_total += weight

    def snapshot(self, weight_current_minute: int) -> dict[str, Any]:
        """The ``GET /_sim/stats`` answer."""
        with self._lock:
            return {
                "requests": {path: dict(counts) for path, counts in self._requests.items()},
                "requests_total": self._requests_total,
                "weight_total": self._weight_total,
                "weight_current_minute": weight_current_minute,
                "started_at": self._started_at,
                "streams": self.streams.snapshot(),
            }


def rate_limit_reply(admission: Admission, limit: int, headers: Headers) -> Reply:
    """Binance's 429 (over the weight limit) or 418 (banned) answer."""
    if admission.status == 429:
        msg = (
            f"Too much request weight used; current limit is {limit} request weight per "
            "1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API."
        )
    else:
        msg = (
            "Way too much request weight used; IP banned until "
            f"{admission.banned_until_ms}. Please use WebSocket Streams for live updates "
            "to avoid bans."
        )
    retry_after = ("Retry-After", str(admission.retry_after))
    return Reply(admission.status, dumps({"code": -1003, "msg": msg}), [*headers, retry_after])


def distort(payload: Any, fired: Sequence[Fault]) -> Any:
    """Apply the payload faults among ``fired``, in the order they were given."""
    for fault in fired:
        if fault.name == "wrong_type":
            payload = mutations.wrong_type(payload)
        elif fault.name == "missing_field":
            payload = mutations.drop_field(payload, fault.params["field"])
        elif fault.name == "non_numeric_price":
            payload = mutations.map_prices(payload, mutations.non_numeric)
        elif fault.name == "negative_price":
            payload = mutations.map_prices(payload, mutations.negative)
        elif fault.name == "zero_price":
            payload = mutations.map_prices(payload, mutations.zero)
    return payload


class Simulator:
    """State shared by all connections: market, limiter, faults and stats."""

    def __init__(self, config: SimulatorConfig, now: Callable[[], float] = time.time) -> None:
        self.config = config
        self.api = Api(SimulatedMarket(config.seed, config.step_seconds, now,
                                       config.streams.book_ticker_rate))
        self.limiter = WeightLimiter(config.weight_limit, now)
        self.faults = FaultSet(config.faults, seed=config.seed)
        self.stats = Stats(now)
        self.stop_requested = threading.Event()
        self._control_routes: dict[tuple[str, str], Callable[[bytes], Reply]] = {
            ("GET", "/_sim/faults"): lambda body: self._faults_reply(),
            ("POST", "/_sim/faults"): self._set_faults,
            ("DELETE", "/_sim/faults"): self._clear_faults,
            ("GET", "/_sim/stats"): lambda body: self._stats_reply(),
            ("POST", "/_sim/stats/reset"): self._reset_stats,
            ("GET", "/_sim/connections"): lambda body: self._connections_reply(),
            ("POST", "/_sim/shutdown"): self._shutdown,
        }

    def handle(self, method: str, target: str, body: bytes = b"") -> Delivery:
        """Decide the answer to ``method target`` (the body matters for control calls only)."""
        url = urlsplit(target)
        if url.path.startswith("/_sim/"):
            return self.control(method, url.path, body)
        return self.api_request(method, url.path, parse_qs(url.query, keep_blank_values=True))

    # -- the Binance API -------------------------------------------------

    def api_request(self, method: str, path: str, params: Mapping[str, Sequence[str]]) -> Delivery:
        """Answer a Binance API request, rate limit and faults included."""
        if path not in ENDPOINTS or method != "GET":
            status = 404 if path not in ENDPOINTS else 405
            self.stats.record(path, str(status))
            return Reply(status, b"", [(WEIGHT_HEADER, str(self.limiter.used()))])
        weight = request_weight(path, params)
        admission = self.limiter.charge(weight)
        headers = [(WEIGHT_HEADER, str(admission.used))]
        if admission.status != 200:
            self.stats.record(path, str(admission.status))
            return rate_limit_reply(admission, self.limiter.limit, headers)
        fired = self.faults.draw(path)
        latency_ms = sum(fault.params["ms"] for fault in fired if fault.name == "latency")
        delay = (self.config.latency_ms + latency_ms) / 1000
        outcome, label = self._answer(path, params, fired, delay, headers)
        self.stats.record(path, label, weight)
        return outcome

    def _answer(
        self,
        path: str,
        params: Mapping[str, Sequence[str]],
        fired: Sequence[Fault],
        delay: float,
        headers: Headers,
    ) -> tuple[Delivery, str]:
        """The outcome of an admitted request and its label for the stats."""
        replaced = self._replacement(fired, delay, headers)
        if replaced is not None:
            return replaced
        try:
            payload = self.api.handle(path, params, DataFaults.from_faults(fired))
        except ErrorAnswer as error:
            reply = Reply(error.status, dumps(error.payload()), headers, delay=delay)
            return reply, str(error.status)
        names = {fault.name for fault in fired}
        body = dumps(distort(payload, fired))
        if "malformed_json" in names:
            body = body[: len(body) // 2]
        if "reset" in names:
            return Reply(200, body, headers, delay=delay, cut_after=len(body) // 2), "reset"
        return Reply(200, body, headers, delay=delay), "200"

    def _replacement(
        self, fired: Sequence[Fault], delay: float, headers: Headers
    ) -> tuple[Delivery, str] | None:
        """Faults that replace the answer entirely, the most drastic first."""
        named = {fault.name: fault.params for fault in fired}
        if "close_immediately" in named:
            return Hangup(delay, abrupt=True), "closed"
        if "timeout" in named:
            return Hangup(delay + named["timeout"]["seconds"], abrupt=False), "timeout"
        if "status" in named:
            status = named["status"]["status"]
            return self._status_reply(status, named["status"]["retry_after"], delay,
                                      headers), str(status)
        if "error_5xx" in named:
            status = named["error_5xx"]["status"]
            content_type, body = ERROR_5XX_BODIES[status]
            return Reply(status, body, headers, content_type, delay), str(status)
        return None

    def _status_reply(self, status: int, retry_after: int, delay: float,
                      headers: Headers) -> Reply:
        """The ``status`` fault's answer: 451, 403 (the WAF), or a 429/418 rate limit."""
        if status == 451:
            return Reply(451, dumps({"code": 0, "msg": RESTRICTED_LOCATION_MSG}), headers,
                         delay=delay)
        if status == 403:
            waf = [*headers, ("Retry-After", str(retry_after))] if retry_after else headers
            return Reply(403, WAF_BODY, waf, "text/html", delay)
        banned_until_ms = round((self.api.market.now() + retry_after) * 1000)
        admission = Admission(status, 0, retry_after, banned_until_ms)
        reply = rate_limit_reply(admission, self.limiter.limit, headers)
        return Reply(reply.status, reply.body, reply.headers, delay=delay)

    # -- the control API -------------------------------------------------

    def control(self, method: str, path: str, body: bytes) -> Reply:
        """Answer a ``/_sim/`` control call (not rate-limited, not counted)."""
        route = self._control_routes.get((method, path))
        if route is None:
            return Reply(404, dumps({"error": f"no control endpoint {method} {path}"}))
        return route(body)

    def _faults_reply(self) -> Reply:
        return Reply(200, dumps({"faults": [fault.to_json() for fault in self.faults.active()]}))

    def _set_faults(self, body: bytes) -> Reply:
        try:
            self.faults.replace(faults_from_body(json.loads(body or b"null")))
        except ValueError as error:  # bad JSON, bad UTF-8 or a FaultError
            return Reply(400, dumps({"error": str(error)}))
        return self._faults_reply()

    def _clear_faults(self, _body: bytes) -> Reply:
        self.faults.replace(())
        return self._faults_reply()

    def _stats_reply(self) -> Reply:
        return Reply(200, dumps(self.stats.snapshot(self.limiter.used())))

    def _connections_reply(self) -> Reply:
        return Reply(200, dumps({"connections": self.stats.connections.snapshot()}))

    def _reset_stats(self, _body: bytes) -> Reply:
        self.stats.reset()
        self.limiter.reset()
        return self._stats_reply()

    def _shutdown(self, _body: bytes) -> Reply:
        self.stop_requested.set()
        return Reply(200, dumps({"shutting_down": True}))
