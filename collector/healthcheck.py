"""``binance-healthcheck``: does the exporter in this container answer? (Docker's HEALTHCHECK,
Kubernetes exec probes.)

It reads the exporter's own variables, ``BINANCE_LISTEN_ADDRESS``, ``BINANCE_LISTEN_PORT``
and ``BINANCE_WEB_CONFIG_FILE``, and asks for the landing page (``/``, which never calls
Binance) on loopback, over TLS when the web configuration asks for it. Exit 0 (healthy)
when the exporter answers:

* with any HTTP status below 500: 200, or 401 when the web configuration wants basic auth
  (the probe has no password: hashes cannot be reversed, and that is their point);
* or, under mutual TLS (the probe has no client certificate), by completing the TLS
  handshake and then closing the connection, refusing the probe: the handshake is the
  exporter's event loop at work, so it is as much an answer as a page. Only TLS 1.3 shows
  this (its handshake ends before the client's certificate is judged); with ``max_version:
  TLS12`` and a client certificate required, the probe cannot tell a refusal from a failure.

The server's certificate is not verified: the probe talks to its own container, as the
kubelet's HTTPS probes do. Exit 1 (unhealthy), with one line on stderr: no connection, no
answer within 4 s, a 5xx (a web configuration file that has become invalid answers 500),
or a connection closed unanswered (what new TLS connections get then).
"""

from __future__ import annotations

import http.client
import os
import ssl
import sys

from collector.web_config import TLSSettings, WebConfigError, WebConfigFile

TIMEOUT = 4.0  # under the image's HEALTHCHECK --timeout=5s and the probes' timeoutSeconds
REQUIRED = ("RequireAndVerifyClientCert",)  # the client_auth_type that refuses the probe
EVERY_INTERFACE = {"::": "127.0.0.1", "0.0.0.0": "127.0.0.1", "": "127.0.0.1"}


def probe(host: str, port: int, tls: bool = False, client_cert_required: bool = False,
          timeout: float = TIMEOUT) -> str | None:
    """None if the exporter at host:port answers (see the module docstring), else why not."""
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            host, port, timeout=timeout, context=context)
    else:
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.connect()  # TCP, and the TLS handshake when tls
        shaken = tls and isinstance(connection.sock, ssl.SSLSocket) \
            and connection.sock.version() == "TLSv1.3"
        try:
            connection.request("GET", "/")
            status = connection.getresponse().status
        except (OSError, http.client.HTTPException):
            if shaken and client_cert_required:  # refused for want of a certificate
                return None
            raise
    except ssl.SSLError as exc:
        return f"TLS: {exc}"
    except (OSError, http.client.HTTPException) as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        connection.close()
    return None if status < 500 else f"answered {status}"


def main() -> int:
    """Probe the exporter the environment describes; 0 healthy, 1 not (one line why)."""
    address = os.environ.get("BINANCE_LISTEN_ADDRESS", "::")
    host = EVERY_INTERFACE.get(address, address)
    port = os.environ.get("BINANCE_LISTEN_PORT") or "8080"
    path = os.environ.get("BINANCE_WEB_CONFIG_FILE", "")
    settings = TLSSettings()
    if path:
        try:
            settings = WebConfigFile(path).current().tls
        except WebConfigError as exc:
            print(f"binance-healthcheck: web config {path}: {exc}", file=sys.stderr)
            return 1
    tls = settings.enabled
    problem = probe(host, int(port), tls, settings.client_auth_type in REQUIRED)
    if problem is not None:
        scheme = "https" if tls else "http"
        shown = f"[{host}]" if ":" in host else host
        print(f"binance-healthcheck: {scheme}://{shown}:{port}/: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
