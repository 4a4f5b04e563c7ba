"""``--web.config.file``: the exporter-toolkit's web configuration, read strictly, kept current.

The format and its meaning are those of every official exporter (the toolkit's
``docs/web-configuration.md``); relative paths are relative to the file's folder::

    tls_server_config:
      cert_file: tls.crt
      key_file: tls.key
      client_auth_type: RequireAndVerifyClientCert   # mutual TLS
      client_ca_file: ca.crt
    basic_auth_users:                                # bcrypt hashes
      prometheus: $2y$10$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhC7zG
    http_server_config:
      headers:
        X-Content-Type-Options: nosniff

Parsing is as strict as the toolkit's (Go's ``yaml.UnmarshalStrict``): an unknown or
repeated key, a value of the wrong kind, a header the toolkit does not allow, each is an
error that names its line. :func:`check` adds what the toolkit checks before it serves (the
hashes are bcrypt's; the certificate and key load; the client CA reads). Python's ``ssl``
cannot do three things Go's TLS does; each is refused with a reason rather than served
differently: ``RequireAnyClientCert`` (an unverified certificate required),
``curve_preferences`` of more than one curve, and inline ``cert``/``key`` without Linux's
``memfd_create``. ``http2`` is accepted and has no effect (HTTP/1.1 only), and
``RequestClientCert`` asks for no certificate (none would be refused either way).

:class:`WebConfigFile` reads the file again whenever asked (every request) and parses it
again when its bytes changed; :class:`TLSContexts` builds the ``ssl.SSLContext`` for a new
connection from it, again only when the file or a certificate, key or CA it names changed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import logging
import os
import re
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import yaml

log = logging.getLogger("collector.web_config")

# the toolkit's names (Go's tls.CipherSuites()) → OpenSSL's, for TLS 1.2 and below; Go
# cannot configure the TLS 1.3 suites and Python's ssl neither: those names are accepted
# and change nothing, as there
CIPHER_SUITES = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
}
TLS13_SUITES = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                "TLS_CHACHA20_POLY1305_SHA256")
CURVES = {"CurveP256": "prime256v1", "CurveP384": "secp384r1", "CurveP521": "secp521r1",
          "X25519": "X25519"}
TLS_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
                "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
# client_auth_type → what the server asks of a client; None: refused (see the docstring)
CLIENT_AUTH: dict[str, ssl.VerifyMode | None] = {
    "": ssl.CERT_NONE, "NoClientCert": ssl.CERT_NONE, "RequestClientCert": ssl.CERT_NONE,
    "RequireAnyClientCert": None, "RequireClientCert": None,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
# the response headers the toolkit lets a file set, and the values it allows (None: any)
HEADERS: dict[str, tuple[str, ...] | None] = {
    "Strict-Transport-Security": None, "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"), "X-XSS-Protection": None,
    "Content-Security-Policy": None,
}
_BCRYPT = re.compile(r"\$(?P<major>[0-9])(?P<minor>[^$])?\$(?P<cost>[0-9]{2})\$")
_DURATION = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0,
                 "m": 60.0, "h": 3600.0}
_NULL = "tag:yaml.org,2002:null"


class WebConfigError(ValueError):
    """A web configuration file that cannot be served: the message says where and why."""


@dataclass(frozen=True)
class TLSSettings:  # pylint: disable=too-many-instance-attributes  # the toolkit's fields
    """``tls_server_config``, as written (paths already joined to the file's folder)."""

    cert_file: str = ""
    cert: str = ""
    key_file: str = ""
    key: str = ""
    client_ca_file: str = ""
    client_ca: str = ""
    client_auth_type: str = ""
    client_allowed_sans: tuple[str, ...] | None = None  # None: unset; (): nobody matches
    min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    max_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3
    cipher_suites: tuple[str, ...] = ()
    prefer_server_cipher_suites: bool = True
    curve_preferences: tuple[str, ...] = ()

    @property
    def enabled(self) -> bool:
        """Whether the file asks for TLS at all (the toolkit's ``IsEnabled``)."""
        return any((self.cert_file, self.cert, self.key_file, self.key, self.client_ca_file,
                    self.client_ca, self.client_auth_type))


@dataclass(frozen=True)
class RateLimit:
    """``rate_limit``: a token bucket of ``burst`` requests, one more each ``interval``."""

    interval: float = 0.0  # seconds; 0 (or less): no limit
    burst: int = 0


@dataclass(frozen=True)
class WebConfig:
    """One reading of the file."""

    tls: TLSSettings = TLSSettings()
    users: dict[str, str] = field(default_factory=dict)  # user → bcrypt hash
    headers: dict[str, str] = field(default_factory=dict)
    http2: bool = True
    rate_limit: RateLimit = RateLimit()


# -- parsing, from YAML nodes: their text and lines, as Go's yaml.v2 sees them -------------

Node = yaml.Node


def _where(node: Node) -> str:
    return f"line {node.start_mark.line + 1}"


def _fail(node: Node, message: str) -> WebConfigError:
    return WebConfigError(f"{_where(node)}: {message}")


def _is_null(node: Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == _NULL


def _mapping(node: Node, what: str, keys: tuple[str, ...] | None = None) -> list[tuple[str, Node]]:
    """The (key, value) pairs of a mapping; a null is an empty one. ``keys``: the only
    ones allowed (None: any)."""
    if _is_null(node):
        return []
    if not isinstance(node, yaml.MappingNode):
        raise _fail(node, f"{what} must be a mapping")
    pairs, seen = [], set()
    for key_node, value in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            raise _fail(key_node, f"{what}: a key must be a string")
        key = key_node.value
        if key in seen:
            raise _fail(key_node, f'{what}: key "{key}" already set')
        if keys is not None and key not in keys:
            raise _fail(key_node, f"field {key} not found in {what}")
        seen.add(key)
        pairs.append((key, value))
    return pairs


def _text(node: Node, what: str) -> str:
    """A scalar's text, whatever YAML resolves it to (a number is its digits); null: ''."""
    if not isinstance(node, yaml.ScalarNode):
        raise _fail(node, f"{what} must be a string")
    return "" if node.tag == _NULL else str(node.value)


def _texts(node: Node, what: str) -> tuple[str, ...]:
    if _is_null(node):
        return ()
    if not isinstance(node, yaml.SequenceNode):
        raise _fail(node, f"{what} must be a list")
    return tuple(_text(item, what) for item in node.value)


def _scalar(node: Node, tag: str) -> Any:
    """A plain scalar YAML resolved to ``tag`` (bool, int), as its text alone loads; None
    for any other node."""
    if isinstance(node, yaml.ScalarNode) and node.tag == f"tag:yaml.org,2002:{tag}":
        return yaml.safe_load(node.value)
    return None


def _bool(node: Node, what: str) -> bool:
    if _is_null(node):
        return False  # Go's yaml: a null sets the zero value
    value = _scalar(node, "bool")
    if not isinstance(value, bool):
        raise _fail(node, f"{what} must be true or false")
    return value


def _int(node: Node, what: str) -> int:
    if _is_null(node):
        return 0
    value = _scalar(node, "int")
    if not isinstance(value, int):
        raise _fail(node, f"{what} must be a whole number")
    return value


def duration(text: str) -> float:
    """A Go duration (``1s``, ``1m30s``, ``250ms``, ``0``) in seconds; ValueError if not one."""
    body = text[1:] if text.startswith(("+", "-")) else text
    sign = -1.0 if text.startswith("-") else 1.0
    if body == "0":
        return 0.0
    total, position = 0.0, 0
    for match in _DURATION.finditer(body):
        if match.start() != position or match.group(1) in ("", "."):
            raise ValueError(text)
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if position != len(body) or not body:
        raise ValueError(text)
    return sign * total


def _rate_limit(node: Node) -> RateLimit:
    values = dict(_mapping(node, "rate_limit", ("interval", "burst")))
    interval = 0.0
    if "interval" in values:
        given = values["interval"]
        if isinstance(given, yaml.ScalarNode) and given.tag == "tag:yaml.org,2002:int":
            interval = _int(given, "rate_limit.interval") * 1e-9  # nanoseconds, as Go reads it
        else:
            try:
                interval = duration(_text(given, "rate_limit.interval"))
            except ValueError:
                raise _fail(given, f"rate_limit.interval: {given.value!r} is not a duration "
                            "like 1s or 250ms") from None
    burst = _int(values["burst"], "rate_limit.burst") if "burst" in values else 0
    return RateLimit(interval, burst)


def _tls(node: Node, folder: Path) -> TLSSettings:  # pylint: disable=too-many-branches
    fields: dict[str, Any] = {}
    names = tuple(item.name for item in dataclasses.fields(TLSSettings))
    for key, value in _mapping(node, "tls_server_config", names):
        what = f"tls_server_config.{key}"
        if key in ("min_version", "max_version"):
            text = _text(value, what)
            if text and text not in TLS_VERSIONS:
                raise _fail(value, f"unknown TLS version: {text}")
            fields[key] = TLS_VERSIONS.get(text, getattr(TLSSettings(), key))
        elif key == "prefer_server_cipher_suites":
            fields[key] = _bool(value, what)
        elif key == "cipher_suites":
            fields[key] = _texts(value, what)
            for name in fields[key]:
                if name not in CIPHER_SUITES and name not in TLS13_SUITES:
                    raise _fail(value, f"unknown cipher: {name}")
        elif key == "curve_preferences":
            fields[key] = _texts(value, what)
            for name in fields[key]:
                if name not in CURVES:
                    raise _fail(value, f"unknown curve: {name}")
        elif key == "client_allowed_sans":
            fields[key] = None if _is_null(value) else _texts(value, what)
        else:
            fields[key] = _text(value, what)
    for key in ("cert_file", "key_file", "client_ca_file"):  # the toolkit's SetDirectory
        if fields.get(key):
            fields[key] = str(folder / fields[key])
    return TLSSettings(**fields)


def _headers(node: Node) -> dict[str, str]:
    headers = {}
    for key, value in _mapping(node, "http_server_config.headers"):
        text = _text(value, f"http_server_config.headers.{key}")
        if key not in HEADERS:
            raise _fail(value, f'HTTP header "{key}" can not be configured')
        allowed = HEADERS[key]
        if allowed is not None and text not in allowed:
            raise _fail(value, f"invalid value for {key}. Expected one of: "
                        f"{', '.join(allowed)}, but got: {text!r}")
        if text:  # the toolkit's documentation: unset if blank
            headers[key] = text
    return headers


def parse(text: bytes, path: str) -> WebConfig:
    """The configuration ``text`` (the file at ``path``) describes; WebConfigError if none."""
    try:
        root = next(yaml.compose_all(text, Loader=yaml.SafeLoader), None)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise WebConfigError(f"{where}not YAML: {problem}") from None
    if root is None:  # an empty file: plain HTTP, no authentication, as the toolkit's
        return WebConfig()
    sections = dict(_mapping(root, "the web configuration", (
        "tls_server_config", "http_server_config", "basic_auth_users", "rate_limit")))
    folder = Path(path).parent
    tls = _tls(sections["tls_server_config"], folder) if "tls_server_config" in sections \
        else TLSSettings()
    users = {user: _text(hashed, f"basic_auth_users.{user}")
             for user, hashed in _mapping(sections.get("basic_auth_users", _null()),
                                          "basic_auth_users")}
    http = dict(_mapping(sections.get("http_server_config", _null()), "http_server_config",
                         ("http2", "headers")))
    rate = _rate_limit(sections["rate_limit"]) if "rate_limit" in sections else RateLimit()
    return WebConfig(tls=tls, users=users,
                     headers=_headers(http["headers"]) if "headers" in http else {},
                     http2=_bool(http["http2"], "http_server_config.http2")
                     if "http2" in http else True, rate_limit=rate)


def _null() -> Node:
    return yaml.ScalarNode(_NULL, "")


# -- what the toolkit checks before serving ----------------------------------------------

def bcrypt_cost(hashed: str) -> int:
    """The cost of a bcrypt hash (``$2y$10$…``); ValueError when it is none, by the rules of
    Go's ``bcrypt.Cost``, which the toolkit applies to each user's at start."""
    if len(hashed) < 59:
        raise ValueError("too short to be a bcrypt hash")
    match = _BCRYPT.match(hashed)
    if match is None:
        raise ValueError("not a bcrypt hash ($2y$COST$...)")
    if match.group("major") > "2":
        raise ValueError(f"bcrypt version {match.group('major')} is newer than 2")
    cost = int(match.group("cost"))
    if not 4 <= cost <= 31:
        raise ValueError(f"bcrypt cost {cost} is outside 4-31")
    return cost


def check(config: WebConfig) -> None:
    """What the toolkit checks at start besides the syntax (``web.Validate``, which
    ``promtool check web-config`` runs): every hash is bcrypt's, and TLS, if asked for,
    loads. WebConfigError if not."""
    for user, hashed in config.users.items():
        try:
            bcrypt_cost(hashed)
        except ValueError as exc:
            raise WebConfigError(f"basic_auth_users: the password of {user!r}: {exc}") from None
    if config.tls.enabled:
        tls_context(config.tls, _read_pems(config.tls))


# -- TLS -------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Pems:
    """The PEM text a TLS configuration names, read at one moment."""

    cert: bytes
    key: bytes
    client_ca: bytes


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise WebConfigError(f"failed to read {what} ({path}): {exc.strerror or exc}") from None


def _read_pems(tls: TLSSettings) -> _Pems:
    if not (tls.cert_file or tls.cert):
        raise WebConfigError("tls_server_config: missing one of cert or cert_file")
    if not (tls.key_file or tls.key):
        raise WebConfigError("tls_server_config: missing one of key or key_file")
    cert = _read(tls.cert_file, "cert_file") if tls.cert_file else tls.cert.encode()
    key = _read(tls.key_file, "key_file") if tls.key_file else tls.key.encode()
    ca = _read(tls.client_ca_file, "client_ca_file") if tls.client_ca_file \
        else tls.client_ca.encode()
    return _Pems(cert, key, ca)


@contextlib.contextmanager
def _pem_files(tls: TLSSettings, pems: _Pems) -> Iterator[tuple[str, str]]:
    """Paths ``load_cert_chain`` can read the certificate and key from: the files named, or,
    for inline ones, anonymous memory files (Linux's memfd: never on a disk)."""
    opened: list[int] = []
    paths = []
    try:
        for name, given, text in (("cert", tls.cert_file, pems.cert),
                                  ("key", tls.key_file, pems.key)):
            if given:
                paths.append(given)
                continue
            if not hasattr(os, "memfd_create"):
                raise WebConfigError(f"tls_server_config.{name}: an inline {name} needs Linux "
                                     f"(memfd_create) here: use {name}_file")
            descriptor = os.memfd_create(f"web-config-{name}")
            opened.append(descriptor)
            with os.fdopen(os.dup(descriptor), "wb") as memory:
                memory.write(text)
            paths.append(f"/proc/self/fd/{descriptor}")
        yield paths[0], paths[1]
    finally:
        for descriptor in opened:
            os.close(descriptor)


def _no_passphrase() -> bytes:
    """The key's passphrase: none (the toolkit reads unencrypted keys only)."""
    return b""


def tls_context(tls: TLSSettings, pems: _Pems) -> ssl.SSLContext:  # pylint: disable=too-many-branches
    """A server context for ``tls``, with the certificate, key and client CA of ``pems``."""
    if tls.client_auth_type not in CLIENT_AUTH:
        raise WebConfigError(f"invalid ClientAuth: {tls.client_auth_type}")
    verify = CLIENT_AUTH[tls.client_auth_type]
    if verify is None:
        raise WebConfigError(
            f"client_auth_type {tls.client_auth_type}: requiring a client certificate that "
            "is not verified cannot be done with Python's ssl; use RequireAndVerifyClientCert "
            "with client_ca_file")
    if pems.client_ca and tls.client_auth_type in ("", "NoClientCert"):
        raise WebConfigError("client CA's have been configured without a Client Auth Policy")
    if tls.client_allowed_sans is not None and verify == ssl.CERT_NONE:
        raise WebConfigError("client_allowed_sans needs a verified client certificate: "
                             "client_auth_type RequireAndVerifyClientCert or "
                             "VerifyClientCertIfGiven")
    if len(tls.curve_preferences) > 1:
        raise WebConfigError("curve_preferences: Python's ssl sets one curve, not a list "
                             f"of {len(tls.curve_preferences)}")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version, context.maximum_version = tls.min_version, tls.max_version
    if not tls.prefer_server_cipher_suites:
        context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    if tls.cipher_suites:
        below13 = [CIPHER_SUITES[name] for name in tls.cipher_suites if name in CIPHER_SUITES]
        if below13:
            context.set_ciphers(":".join(below13))
        else:  # TLS 1.3 names only: TLS 1.2 has no suite left, as in Go
            context.minimum_version = ssl.TLSVersion.TLSv1_3
    if tls.curve_preferences:
        context.set_ecdh_curve(CURVES[tls.curve_preferences[0]])
    with _pem_files(tls, pems) as (cert, key):
        try:
            context.load_cert_chain(cert, key, password=_no_passphrase)
        except (ssl.SSLError, OSError) as exc:
            raise WebConfigError(f"failed to load X509KeyPair: {_reason(exc)}") from None
    context.verify_mode = verify
    if verify != ssl.CERT_NONE:
        try:
            if pems.client_ca:
                context.load_verify_locations(cadata=pems.client_ca.decode("ascii", "replace"))
            else:  # as Go, which then verifies against the system's roots
                context.load_default_certs(ssl.Purpose.CLIENT_AUTH)
        except (ssl.SSLError, ValueError) as exc:
            raise WebConfigError(f"client CA: no certificate could be read: {_reason(exc)}") \
                from None
    return context


def _reason(exc: Exception) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason).lower().replace("_", " ") if reason else str(exc)


def allowed_by_sans(peercert: Any, allowed: tuple[str, ...]) -> bool:
    """Whether a client certificate (``getpeercert()``) has a Subject Alternative Name
    (DNS, e-mail, IP address or URI) that is exactly one of ``allowed``."""
    names = []
    for kind, value in (peercert or {}).get("subjectAltName", ()):
        if kind == "IP Address":
            with contextlib.suppress(ValueError):
                value = str(ipaddress.ip_address(value.strip()))  # as Go writes it
        if kind in ("DNS", "email", "IP Address", "URI"):
            names.append(value)
    return any(name in allowed for name in names)


# -- the file, read again as requests and connections come ------------------------------

class WebConfigFile:
    """The file at ``path``: :meth:`current` reads it again each time (it is small) and
    parses it again only when its bytes changed. A file that has become invalid raises
    WebConfigError at each call until it is fixed (the toolkit's behaviour: requests get
    500, new TLS connections fail), logged once per content; a change that parses is
    logged too."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._seen: bytes | str | None = None  # the bytes last parsed, or why none could be
        self._parsed: WebConfig | WebConfigError = WebConfigError("not read yet")
        # what was checked at start: whether to serve TLS, and the rate limit, are decided
        # from it once, as the toolkit decides them when it starts serving
        self.initial: WebConfig | None = None

    @classmethod
    def at_start(cls, path: str) -> "WebConfigFile":
        """The file, checked as the toolkit checks it before serving; WebConfigError (one
        line) if it cannot be served."""
        file = cls(path)
        config = file.current()
        check(config)
        file.initial = config
        return file

    def started(self) -> WebConfig:
        """The configuration checked at start (or, if none was, the file's now)."""
        return self.initial if self.initial is not None else self.current()

    def current(self) -> WebConfig:
        """The configuration as the file says now."""
        try:
            data: bytes | str = Path(self.path).read_bytes()
        except OSError as exc:
            data = f"cannot read it: {exc.strerror or exc}"
        with self._lock:
            if data != self._seen:
                first = self._seen is None
                self._seen = data
                try:
                    self._parsed = parse(data, self.path) if isinstance(data, bytes) \
                        else WebConfigError(data)
                except WebConfigError as exc:
                    self._parsed = exc
                if isinstance(self._parsed, WebConfigError):
                    log.error("web config %s: %s; refusing requests (500) and new TLS "
                              "connections until it is fixed", self.path, self._parsed)
                elif not first:
                    log.info("web config %s changed: read again", self.path)
            parsed = self._parsed
        if isinstance(parsed, WebConfigError):
            raise parsed
        return parsed


class TLSContexts:
    """The SSL context for a new connection: built from the file's TLS settings and the PEM
    files they name, all read again at each :meth:`current`, and rebuilt only when one of
    them changed (a failure is remembered, and logged once, the same way)."""

    def __init__(self, file: WebConfigFile) -> None:
        self.file = file
        self._lock = threading.Lock()
        self._key: tuple[TLSSettings, _Pems | str] | None = None  # settings, what they name
        self._built: tuple[ssl.SSLContext, TLSSettings] | WebConfigError | None = None

    def current(self) -> tuple[ssl.SSLContext, TLSSettings]:
        """The context and the settings it was made from; WebConfigError if the file, or
        what it names, cannot give one now."""
        tls = self.file.current().tls
        if not tls.enabled:
            raise WebConfigError("the file no longer configures TLS (TLS is on or off from "
                                 "start: restart to serve plain HTTP)")
        try:
            pems: _Pems | WebConfigError = _read_pems(tls)
        except WebConfigError as exc:  # a file it names is missing: remembered as it is
            pems = exc
        key = (tls, pems if isinstance(pems, _Pems) else str(pems))
        with self._lock:
            if self._key != key or self._built is None:
                try:
                    if isinstance(pems, WebConfigError):
                        raise pems
                    self._built = (tls_context(tls, pems), tls)
                except WebConfigError as exc:
                    log.error("web config %s: %s; refusing new TLS connections until it is "
                              "fixed", self.file.path, exc)
                    self._built = exc
                self._key = key
            built = self._built
        if isinstance(built, WebConfigError):
            raise built
        return built
