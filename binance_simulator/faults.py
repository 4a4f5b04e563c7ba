"""Fault specifications: names, parameters, validation and per-request draws.

A fault is a name plus parameters, e.g. ``{"name": "error_5xx", "status":
503, "rate": 0.5, "endpoints": ["/api/v3/depth"]}``.  The same shape is
accepted from the control API (JSON) and from ``--fault`` on the command line
(``error_5xx:status=503,rate=0.5,endpoints=/api/v3/depth+/api/v3/time``), so
a failure scenario can be set up either way.  Everything is validated up
front: a typo in a test's fault list should fail loudly, not silently test
nothing.

``rate`` is the share of matching requests a fault fires on.  The draws come
from a generator seeded with ``--seed``, so a sequence of requests meets the
same faults on every run.  Several faults may be active at once.

The ``ws_`` faults act on the WebSocket streams instead (``streams.py``).  In
place of ``endpoints`` they take ``streams``: stream names
(``btcusdt@depth@100ms``) or kinds (``bookTicker``, ``depth@100ms``, ``depth``)
a connection must be subscribed to for the fault to touch it; none means every
connection.  They are drawn once a step for each connection (``ws_gap``: once a
depth event; ``ws_refuse``: once a connection attempt; ``ws_no_pong_close``:
once a pong), from a generator of their own, so streams never shift the draws
of REST requests.

=====================  ===========================================================
name (parameters)      effect on a matching request
=====================  ===========================================================
latency (ms=1000)      answer after ``ms`` more milliseconds
error_5xx (status=500) 500/502/503/504 with Binance's body (502: the CDN's HTML)
timeout (seconds=30)   hold the connection, then close it without answering
reset                  send headers and half the body, then a TCP reset
close_immediately      TCP reset before any answer (like a refused connection)
malformed_json         200 with the JSON body cut in half
wrong_type             a list becomes its first object, an object a one-item list
missing_field (field)  ``field`` removed from every object
non_numeric_price      every price string becomes "abc" (quantities stay)
negative_price         every non-zero price gets a minus sign
zero_price             every price becomes zero, e.g. "0.00000000"
empty_book_side        (side=bid|ask) no levels on that side in depth, "0.00000000"
                       price and quantity in bookTicker and ticker/24hr
crossed_book           best bid above best ask in depth, bookTicker and ticker/24hr
status (status,        451 (restricted location), 429 or 418 with Binance's bodies
retry_after=60)        and ``Retry-After``; 403, the WAF's HTML page (with
                       ``Retry-After`` only when retry_after > 0)
unknown_symbol         requests naming ``symbol`` (symbol= or symbols=) get -1121
(symbol)
drop_symbol (symbol)   ``symbol`` vanishes from the list answers of ticker/24hr and
                       bookTicker (all or symbols=); symbol= still answers
ws_gap                 a depth event is not sent: the next one's U is not the
                       previous u + 1 (the event after a skipped one is always sent)
ws_stall               nothing is sent (no event, ping or reply) until a step
                       without it; events then resume without a gap
ws_close               the connection ends with a TCP reset, no close frame
ws_malformed           an extra message in a step's events: a copy of the next one,
                       cut in half (not JSON)
ws_refuse (status=503) connection attempts are answered 503 (or 429, 403), no upgrade
ws_no_pong_close       pongs are ignored, so the connection is closed (1008) once a
                       ping has gone unanswered for 3 ping intervals
ws_shutdown            ``serverShutdown`` is sent, and the connection closed (1001)
(seconds=0)            ``seconds`` later
=====================  ===========================================================
"""

from __future__ import annotations

import random
import threading
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .stream_names import BOOK_TICKER, StreamNameError, check_target, target_matches
from .weights import ENDPOINTS


class FaultError(ValueError):
    """An invalid fault specification."""


_REQUIRED = object()


@dataclass(frozen=True)
class Param:
    """One fault parameter: its type, default (or required) and allowed values."""

    kind: type
    default: object = _REQUIRED
    choices: tuple[object, ...] = ()
    minimum: float | None = None


SCHEMAS: dict[str, dict[str, Param]] = {
    "latency": {"ms": Param(int, 1000, minimum=0)},
    "error_5xx": {"status": Param(int, 500, choices=(500, 502, 503, 504))},
    "timeout": {"seconds": Param(float, 30.0, minimum=0)},
    "reset": {},
    "close_immediately": {},
    "malformed_json": {},
    "wrong_type": {},
    "missing_field": {"field": Param(str)},
    "non_numeric_price": {},
    "negative_price": {},
    "zero_price": {},
    "empty_book_side": {"side": Param(str, "bid", choices=("bid", "ask"))},
    "crossed_book": {},
    "status": {
        "status": Param(int, choices=(451, 429, 418, 403)),
        "retry_after": Param(int, 60, minimum=0),
    },
    "unknown_symbol": {"symbol": Param(str)},
    "drop_symbol": {"symbol": Param(str)},
    "ws_gap": {},
    "ws_stall": {},
    "ws_close": {},
    "ws_malformed": {},
    "ws_refuse": {"status": Param(int, 503, choices=(503, 429, 403))},
    "ws_no_pong_close": {},
    "ws_shutdown": {"seconds": Param(float, 0.0, minimum=0)},
}

FAULT_NAMES = tuple(SCHEMAS)
STREAM_FAULTS = frozenset(name for name in SCHEMAS if name.startswith("ws_"))


def _coerce(where: str, param: Param, value: object) -> object:
    """Check ``value`` against ``param``; strings (from the CLI) are converted."""
    if isinstance(value, bool):
        raise FaultError(f"{where}: expected {param.kind.__name__}, got a boolean")
    try:
        if isinstance(value, str) and param.kind is not str:
            value = param.kind(value)
        elif param.kind is float and isinstance(value, int):
            value = float(value)
    except ValueError as exc:
        raise FaultError(f"{where}: expected {param.kind.__name__}, got {value!r}") from exc
    if not isinstance(value, param.kind) or value == "":
        raise FaultError(f"{where}: expected a non-empty {param.kind.__name__}, got {value!r}")
    if param.choices and value not in param.choices:
        raise FaultError(f"{where}: must be one of {', '.join(map(str, param.choices))}")
    if param.minimum is not None and isinstance(value, (int, float)) and value < param.minimum:
        raise FaultError(f"{where}: must be >= {param.minimum:g}")
    return value


def _endpoints(value: object) -> tuple[str, ...]:
    paths = value.split("+") if isinstance(value, str) else value
    if not isinstance(paths, list | tuple) or not all(isinstance(path, str) for path in paths):
        raise FaultError("endpoints: expected a list of paths")
    unknown = [path for path in paths if path not in ENDPOINTS]
    if unknown:
        known = ", ".join(ENDPOINTS)
        raise FaultError(f"endpoints: unknown path(s) {', '.join(unknown)}; known: {known}")
    return tuple(paths)


def _streams(name: str, value: object) -> tuple[str, ...]:
    targets = value.split("+") if isinstance(value, str) else value
    if not isinstance(targets, list | tuple) or not all(isinstance(item, str) for item in targets):
        raise FaultError("streams: expected a list of stream names or kinds")
    try:
        checked = tuple(check_target(target) for target in targets)
    except StreamNameError as error:
        raise FaultError(f"streams: {error}") from None
    if name == "ws_gap" and any(target == BOOK_TICKER or target.endswith("@" + BOOK_TICKER)
                                for target in checked):
        raise FaultError("ws_gap.streams: only depth streams have update ids to skip")
    return checked


@dataclass(frozen=True)
class Fault:
    """A validated fault: ``endpoints`` (``streams`` for a ``ws_`` fault) empty means
    every API endpoint (every stream connection)."""

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    endpoints: tuple[str, ...] = ()
    rate: float = 1.0
    streams: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, spec: object) -> Fault:
        """Validate one fault object as sent to ``POST /_sim/faults``."""
        if not isinstance(spec, Mapping):
            raise FaultError("each fault must be a JSON object")
        name = spec.get("name")
        if name not in SCHEMAS:
            raise FaultError(f"unknown fault {name!r}; known: {', '.join(FAULT_NAMES)}")
        schema = SCHEMAS[name]
        where = "streams" if name in STREAM_FAULTS else "endpoints"
        unknown = sorted(set(spec) - set(schema) - {"name", where, "rate"})
        if unknown:
            raise FaultError(f"{name}: unknown parameter(s) {', '.join(unknown)}")
        params: dict[str, Any] = {}
        for key, param in schema.items():
            if key in spec:
                params[key] = _coerce(f"{name}.{key}", param, spec[key])
            elif param.default is _REQUIRED:
                raise FaultError(f"{name}: parameter {key!r} is required")
            else:
                params[key] = param.default
        rate = _coerce(f"{name}.rate", Param(float, minimum=0), spec.get("rate", 1.0))
        assert isinstance(rate, float)
        if rate > 1:
            raise FaultError(f"{name}.rate: must be between 0 and 1")
        endpoints = _endpoints(spec["endpoints"]) if "endpoints" in spec else ()
        streams = _streams(name, spec["streams"]) if "streams" in spec else ()
        return cls(name, params, endpoints, rate, streams)

    @classmethod
    def parse(cls, text: str) -> Fault:
        """Parse a command-line spec: ``name[:key=value[,key=value...]]``."""
        name, _, rest = text.partition(":")
        spec: dict[str, object] = {"name": name.strip()}
        for item in filter(None, (part.strip() for part in rest.split(","))):
            key, equals, value = item.partition("=")
            if not equals:
                raise FaultError(f"{text!r}: expected key=value, got {item!r}")
            spec[key.strip()] = value.strip()
        return cls.from_json(spec)

    def applies_to(self, path: str) -> bool:
        """Whether this fault covers requests to ``path``."""
        return self.name not in STREAM_FAULTS and (not self.endpoints or path in self.endpoints)

    def applies_to_streams(self, names: Sequence[str]) -> bool:
        """Whether this fault covers a connection subscribed to ``names``."""
        return self.name in STREAM_FAULTS and (not self.streams or any(
            target_matches(target, name) for target in self.streams for name in names))

    def to_json(self) -> dict[str, Any]:
        """The canonical JSON form (defaults filled in), as listed by ``GET /_sim/faults``."""
        spec: dict[str, Any] = {"name": self.name, **self.params, "rate": self.rate}
        if self.endpoints:
            spec["endpoints"] = list(self.endpoints)
        if self.streams:
            spec["streams"] = list(self.streams)
        return spec


def faults_from_body(body: object) -> list[Fault]:
    """Validate a ``POST /_sim/faults`` body: ``{"faults": [...]}``."""
    if not isinstance(body, Mapping) or not isinstance(body.get("faults"), list):
        raise FaultError('expected a JSON object {"faults": [...]}')
    return [Fault.from_json(spec) for spec in body["faults"]]


class FaultSet:
    """The active faults, replaceable at run time, with seeded rate draws."""

    def __init__(self, faults: Iterable[Fault] = (), seed: int = 1) -> None:
        self._lock = threading.Lock()
        self._faults = tuple(faults)
        self._random = random.Random(seed)
        self._stream_random = random.Random(f"{seed}|streams")

    def replace(self, faults: Iterable[Fault]) -> None:
        """Make ``faults`` the active set (an empty iterable clears it)."""
        with self._lock:
            self._faults = tuple(faults)

    def active(self) -> tuple[Fault, ...]:
        """The active faults, in the order they were given."""
        with self._lock:
            return self._faults

    def draw(self, path: str) -> list[Fault]:
        """The faults that fire for one request to ``path``."""
        with self._lock:
            return [
                fault
                for fault in self._faults
                if fault.applies_to(path)
                and (fault.rate >= 1 or self._random.random() < fault.rate)
            ]

    def draw_streams(self, names: Collection[str], streams: Sequence[str]) -> list[Fault]:
        """The faults among ``names`` that fire for a connection subscribed to ``streams``."""
        with self._lock:
            return [
                fault
                for fault in self._faults
                if fault.name in names and fault.applies_to_streams(streams)
                and (fault.rate >= 1 or self._stream_random.random() < fault.rate)
            ]
