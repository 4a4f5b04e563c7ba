"""The requests a stream connection may send, parsed and checked as Binance does.

``{"method": "SUBSCRIBE", "params": ["btcusdt@bookTicker"], "id": 1}`` becomes a
:class:`Request`; anything Binance would refuse raises :class:`RequestError`, whose
:meth:`~RequestError.payload` is Binance's answer::

    {"error": {"code": 2, "msg": "Invalid request: missing field `method`"}, "id": 1}

Carrying a request out (what is subscribed, whether events are wrapped) is the
session's business; this module holds no state.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .stream_names import Stream, StreamNameError, parse_stream

SUBSCRIBE, UNSUBSCRIBE = "SUBSCRIBE", "UNSUBSCRIBE"
LIST_SUBSCRIPTIONS = "LIST_SUBSCRIPTIONS"
SET_PROPERTY, GET_PROPERTY = "SET_PROPERTY", "GET_PROPERTY"
METHODS = (SUBSCRIBE, UNSUBSCRIBE, LIST_SUBSCRIPTIONS, SET_PROPERTY, GET_PROPERTY)
COMBINED = "combined"  # the one property there is


class RequestError(Exception):
    """A request answered with Binance's ``{"error": {...}, "id": ...}``; ``ident`` is the
    request's id when it was a valid one, else None."""

    def __init__(self, code: int, msg: str, ident: Any = None) -> None:
        super().__init__(msg)
        self.code, self.msg, self.ident = code, msg, ident

    def payload(self) -> dict[str, Any]:
        """Binance's error answer."""
        return {"error": {"code": self.code, "msg": self.msg}, "id": self.ident}


@dataclass(frozen=True)
class Request:
    """A valid request: ``streams`` to subscribe, ``names`` to unsubscribe, ``value`` to
    set ``combined`` to."""

    ident: Any
    method: str
    streams: tuple[Stream, ...] = ()
    names: tuple[str, ...] = ()
    value: bool | None = None


def valid_id(ident: object) -> bool:
    """Binance's ids: a 64-bit integer, up to 36 alphanumeric characters, or null."""
    if isinstance(ident, bool):
        return False
    if isinstance(ident, int):
        return -(2**63) <= ident < 2**63
    return ident is None or (isinstance(ident, str) and len(ident) <= 36 and ident.isalnum())


def parse_request(text: str) -> Request:
    """A message from the client -> :class:`Request`, else :class:`RequestError`."""
    try:
        request = json.loads(text)
    except ValueError as error:
        raise RequestError(3, f"Invalid JSON: {error}") from None
    if not isinstance(request, dict):
        raise RequestError(2, "Invalid request: expected a JSON object")
    ident = request.get("id")
    if not valid_id(ident):
        raise RequestError(2, "Invalid request: request ID must be an unsigned integer")
    try:
        return _checked(request, ident)
    except RequestError as error:
        error.ident = ident
        raise


def _checked(request: dict[str, Any], ident: Any) -> Request:
    if set(request) - {"method", "params", "id"}:
        raise RequestError(2, "Invalid request: too many parameters")
    method, params = request.get("method"), request.get("params", [])
    if method is None:
        raise RequestError(2, "Invalid request: missing field `method`")
    if method not in METHODS:
        expected = ", ".join(f"`{name}`" for name in METHODS)
        raise RequestError(2, f"Invalid request: unknown variant `{method}`, "
                              f"expected one of {expected}")
    if method == SUBSCRIBE:
        try:
            streams = tuple(parse_stream(name) for name in _names(params))
        except StreamNameError as error:
            raise RequestError(2, f"Invalid request: {error}") from None
        return Request(ident, method, streams=streams)
    if method == UNSUBSCRIBE:
        return Request(ident, method, names=tuple(_names(params)))
    if method == LIST_SUBSCRIPTIONS:
        return Request(ident, method)
    return _property(ident, method, params)


def _names(params: object) -> list[str]:
    if not isinstance(params, list) or not all(isinstance(name, str) for name in params):
        raise RequestError(2, "Invalid request: params must be a list of stream names")
    return params


def _property(ident: Any, method: str, params: object) -> Request:
    if not isinstance(params, list) or not params or not isinstance(params[0], str):
        raise RequestError(2, "Invalid request: property name must be a string")
    if params[0] != COMBINED:
        raise RequestError(0, "Unknown property")
    if method == GET_PROPERTY:
        return Request(ident, method)
    if len(params) != 2 or not isinstance(params[1], bool):
        raise RequestError(1, "Invalid value type: expected Boolean")
    return Request(ident, method, value=params[1])
