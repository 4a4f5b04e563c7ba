"""Who gets an answer, by the web configuration: TLS per connection, then per request the
toolkit's checks in its order.

Per request (:class:`Guard`, an aiohttp middleware in front of every path, the landing
page and 404s included), as the toolkit's handler does:

1. the file is read again; if it has become invalid: ``500 Internal Server Error``;
2. ``rate_limit`` (fixed at start, as the toolkit's): ``429 Too Many Requests`` past it;
3. ``http_server_config.headers`` are set on the answer, whatever it is;
4. with ``basic_auth_users``: ``401`` with ``WWW-Authenticate: Basic`` unless the request's
   credentials match a user's bcrypt hash.

bcrypt costs tens of milliseconds by design, so :class:`Credentials` keeps the outcome of
each (user, hash, password) already checked, as the toolkit does, in a bounded cache keyed
by a keyed digest (HMAC-SHA256 under a random per-process key: the cache holds no password,
and a lookup compares digests, never the password itself). bcrypt runs on one thread of its
own, off the event loop, one check at a time as in the toolkit; an unknown user is checked
against a fixed hash, so that the time taken does not tell which users exist.

Per connection (:class:`TLSSite`): the TLS handshake is made with the context
:class:`~collector.web_config.TLSContexts` gives at that moment (the file and the
certificates it names read again), so a renewed certificate or CA serves the next
connection with no restart; an invalid file, or one that no longer configures TLS, refuses
new connections. ``client_allowed_sans`` is checked once the handshake is done.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
import os
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Awaitable, Callable

import bcrypt
from aiohttp import web
from cachetools import LRUCache

from collector.web_config import (
    RateLimit,
    TLSContexts,
    WebConfigError,
    WebConfigFile,
    allowed_by_sans,
)

log = logging.getLogger("collector.web_access")

CREDENTIALS_KEPT = 100  # the toolkit's cache size: (user, hash, password) outcomes
BCRYPT_MAX_BYTES = 72  # bcrypt reads no further (Go's as the Python library's)
# the toolkit's own: the bcrypt hash of "fakepassword", checked for a user that does not exist
FAKE_HASH = b"$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi"
HANDSHAKE_TIMEOUT = 10.0  # seconds a client gets to finish its TLS handshake
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def basic_credentials(header: str) -> tuple[bytes, bytes] | None:
    """(user, password) of an ``Authorization: Basic`` header, as Go's ``Request.BasicAuth``
    reads it (the scheme in any case, strict base64, split at the first colon); None if the
    header is no such thing."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None
    user, colon, password = decoded.partition(b":")
    return (user, password) if colon else None


class Credentials:
    """bcrypt checks, their outcomes kept (see the module docstring)."""

    def __init__(self, kept: int = CREDENTIALS_KEPT) -> None:
        self._key = os.urandom(32)
        self._outcomes: LRUCache[bytes, bool] = LRUCache(maxsize=kept)
        self._lock = threading.Lock()
        self._bcrypt = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bcrypt")
        self.checks = 0  # bcrypt computations made (the cache's misses)

    def _digest(self, user: bytes, hashed: bytes, password: bytes) -> bytes:
        message = b"\0".join(base64.b64encode(part) for part in (user, hashed, password))
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def _bcrypt_matches(self, password: bytes, hashed: bytes) -> bool:
        self.checks += 1
        try:
            return bcrypt.checkpw(password[:BCRYPT_MAX_BYTES], hashed)
        except ValueError:  # not a bcrypt hash: it matches nothing
            return False

    async def verify(self, users: dict[str, str], user: bytes, password: bytes) -> bool:
        """Whether ``user`` is one of ``users`` and ``password`` matches its hash."""
        known = {name.encode(): hashed.encode() for name, hashed in users.items()}
        hashed = known.get(user)
        valid_user = hashed is not None
        hashed = FAKE_HASH if hashed is None else hashed
        digest = self._digest(user, hashed, password)
        with self._lock:
            outcome = self._outcomes.get(digest)
        if outcome is None:
            matches = await asyncio.get_running_loop().run_in_executor(
                self._bcrypt, self._bcrypt_matches, password, hashed)
            outcome = valid_user and matches
            with self._lock:
                self._outcomes[digest] = outcome
        return outcome

    def close(self) -> None:
        """Stop the bcrypt thread."""
        self._bcrypt.shutdown(wait=False, cancel_futures=True)


class RateLimiter:
    """``rate_limit``'s token bucket (Go's ``rate.Limiter``): ``burst`` requests at once,
    refilled at one each ``interval``; a burst of 0 allows nothing."""

    def __init__(self, limit: RateLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = 1.0 / limit.interval
        self._burst = float(limit.burst)
        self._tokens = self._burst
        self._clock = clock
        self._at = clock()

    def allow(self) -> bool:
        """Take a token if there is one (called on the event loop only)."""
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False


def _plain(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text + "\n")


class Guard:
    """The per-request checks (the module docstring's 1-4), as an aiohttp middleware."""

    def __init__(self, file: WebConfigFile, credentials: Credentials | None = None) -> None:
        self.file = file
        self.credentials = credentials or Credentials()
        limit = file.started().rate_limit  # fixed at start, as the toolkit's limiter
        self._limiter = RateLimiter(limit) if limit.interval > 0 else None

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Answer ``request`` by ``handler`` if the web configuration lets it through."""
        try:
            config = self.file.current()
        except WebConfigError:
            return _plain(500, "Internal Server Error")
        if self._limiter is not None and not self._limiter.allow():
            return _plain(429, "Too Many Requests")
        if config.users and not await self._authorized(request, config.users):
            answer: web.StreamResponse = _plain(401, "Unauthorized")
            answer.headers["WWW-Authenticate"] = "Basic"
        else:
            answer = await handler(request)
        answer.headers.update(config.headers)
        return answer

    async def _authorized(self, request: web.Request, users: dict[str, str]) -> bool:
        credentials = basic_credentials(request.headers.get("Authorization", ""))
        return credentials is not None and await self.credentials.verify(users, *credentials)


class _Handshake(asyncio.Protocol):
    """A connection just accepted: TLS with the context of this moment, then aiohttp."""

    def __init__(self, site: "TLSSite") -> None:
        self._site = site

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.pause_reading()  # the ClientHello waits for the TLS layer
        try:
            context, tls = self._site.contexts.current()
        except WebConfigError:  # logged once per content by the file or the contexts
            transport.abort()
            return
        task = asyncio.get_running_loop().create_task(
            self._site.upgrade(transport, context, tls.client_allowed_sans))
        self._site.handshakes.add(task)
        task.add_done_callback(self._site.handshakes.discard)


class TLSSite(web.BaseSite):
    """aiohttp's ``SockSite`` over TLS, with the context chosen per connection (a site's
    own ``ssl_context`` is fixed when it starts)."""

    __slots__ = ("_sock", "contexts", "handshakes")

    def __init__(self, runner: web.BaseRunner, sock: socket.socket, contexts: TLSContexts,
                 backlog: int) -> None:
        super().__init__(runner, backlog=backlog)
        self._sock = sock
        self.contexts = contexts
        self.handshakes: set[asyncio.Task[None]] = set()

    @property
    def name(self) -> str:
        host, port = self._sock.getsockname()[:2]
        return f"https://{host}:{port}"

    async def start(self) -> None:
        await super().start()
        self._server = await asyncio.get_running_loop().create_server(
            lambda: _Handshake(self), sock=self._sock, backlog=self._backlog)

    async def stop(self) -> None:
        for task in list(self.handshakes):  # connections not yet handed to aiohttp
            task.cancel()
        await super().stop()

    async def upgrade(self, transport: asyncio.Transport, context: ssl.SSLContext,
                      sans: tuple[str, ...] | None) -> None:
        """The handshake, then the connection to aiohttp's request handler."""
        factory = self._runner.server
        assert factory is not None
        handler = factory()
        try:
            tls = await asyncio.get_running_loop().start_tls(
                transport, handler, context, server_side=True,
                ssl_handshake_timeout=HANDSHAKE_TIMEOUT)
        except (OSError, ssl.SSLError, asyncio.TimeoutError) as exc:  # closed by start_tls
            log.debug("TLS handshake with %s failed: %s",
                      transport.get_extra_info("peername"), exc)
            return
        if tls is None:  # pragma: no cover  # closed during the handshake
            return
        if sans is not None and not allowed_by_sans(tls.get_extra_info("peercert"), sans):
            log.debug("client certificate of %s has none of the allowed SANs",
                      transport.get_extra_info("peername"))
            tls.abort()
            return
        handler.connection_made(tls)
