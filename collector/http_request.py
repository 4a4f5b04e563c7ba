"""Reading one HTTP/1.1 request head from a stream, strictly, for the metrics server.

The server needs the method, the path, a few headers and whether to keep the
connection; anything it cannot frame safely is a :class:`BadRequest` carrying
the status to answer before closing. Header values are copied into answers
(the Accept version becomes part of Content-Type), so control characters are
refused outright.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import urlsplit

MAX_HEAD = 16 * 1024  # request line and headers together; 431 beyond
MAX_BODY = 64 * 1024  # a GET with a body is odd but legal: read and ignored up to this size
BODY_TIMEOUT = 30.0
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # control characters but HTAB


class BadRequest(Exception):
    """A request we cannot frame: answer ``status`` and close."""

    def __init__(self, status: HTTPStatus, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True)
class Request:
    """One parsed request head."""

    method: str
    path: str
    query: str
    keep_alive: bool
    http10: bool
    headers: dict[str, str] = field(default_factory=dict)


async def read_head(reader: asyncio.StreamReader) -> list[str] | None:
    """The lines of one request head, or None when the client closed between requests.

    Lines may end in CRLF or a bare LF (RFC 9112 allows a server to accept
    both); empty lines before the request line are skipped. Over ``MAX_HEAD``
    bytes in all is a 431.
    """
    lines: list[str] = []
    size = 0
    while True:
        try:
            raw = await reader.readline()
        except ValueError:  # one line longer than the reader's limit
            raise BadRequest(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                             "request head too large") from None
        size += len(raw)
        if size > MAX_HEAD:
            raise BadRequest(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request head too large")
        if not raw.endswith(b"\n"):  # end of stream
            if not raw and not lines:
                return None
            raise asyncio.IncompleteReadError(raw, None)
        line = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1]
        if line:
            lines.append(line.decode("latin-1"))
        elif lines:
            return lines


def parse_head(lines: list[str]) -> Request:
    """The request line and headers of one request."""
    parts = lines[0].split(" ")
    if (len(parts) != 3 or not parts[0].isalpha() or not parts[2].startswith("HTTP/")
            or _CONTROL.search(parts[1])):
        raise BadRequest(HTTPStatus.BAD_REQUEST, "malformed request line")
    method, target, version = parts
    if version not in ("HTTP/1.0", "HTTP/1.1"):
        raise BadRequest(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, f"{version} not supported")
    headers = _headers(lines[1:])
    tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
    http10 = version == "HTTP/1.0"
    keep_alive = "keep-alive" in tokens if http10 else "close" not in tokens
    try:
        url = urlsplit(target)
    except ValueError:  # e.g. "http://[": an unclosed IPv6 literal
        raise BadRequest(HTTPStatus.BAD_REQUEST, "malformed request target") from None
    return Request(method, url.path or "/", url.query, keep_alive, http10, headers)


def _headers(lines: list[str]) -> dict[str, str]:
    """Header lines → {lower-case name: value}; a repeated header's values joined by commas.

    Control characters are refused: a value is copied into our answer's
    headers (the Accept version into Content-Type), so a stray CR or LF
    in it would let a client write headers of its own into the answer.
    """
    headers: dict[str, str] = {}
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip() or _CONTROL.search(line):
            raise BadRequest(HTTPStatus.BAD_REQUEST, "malformed header line")
        key = name.lower()
        headers[key] = f"{headers[key]},{value.strip()}" if key in headers else value.strip()
    return headers


async def skip_body(reader: asyncio.StreamReader, request: Request) -> None:
    """Read and drop a request body, or refuse one we will not read (chunked, too big)."""
    if "transfer-encoding" in request.headers:
        raise BadRequest(HTTPStatus.BAD_REQUEST, "request bodies are not accepted")
    length = request.headers.get("content-length", "0")
    if not (length.isascii() and length.isdigit()):  # "²".isdigit() is True
        raise BadRequest(HTTPStatus.BAD_REQUEST, "bad Content-Length")
    digits = length.lstrip("0")
    # int() refuses over 4300 digits: compare the length of the numeral first
    if len(digits) > len(str(MAX_BODY)) or int(digits or "0") > MAX_BODY:
        raise BadRequest(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "request body too large")
    if digits:
        await asyncio.wait_for(reader.readexactly(int(digits)), BODY_TIMEOUT)
