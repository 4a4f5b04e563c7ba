"""A web configuration served: TLS and mutual TLS against a CA the test makes, basic auth,
headers, the rate limit, and files that change (or break) while the server runs.

Every client here is Python's own: ``ssl`` and ``http.client`` on loopback, port 0."""

from __future__ import annotations

import base64
import http.client
import logging
import socket
import ssl
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import bcrypt
import pytest
import responses
from pki import CA

from binance_simulator.testkit import running_exporter, running_simulator

from collector import exporter_cli
from collector.config import parse_args
from collector.exposition import Body, Request
from collector.server import LANDING, MetricsServer
from collector.web_access import Credentials, RateLimiter, basic_credentials
from collector.web_config import RateLimit, WebConfigFile

# fixed (test ids must be the same in every pytest-xdist worker); cost 4: fast tests
HASH = "$2b$04$N6v2kKbxDfJ82wuSXzZYkeCE.ZErfDBakKI3k8k5g/QbY9Yp2LZQ2"  # "secret"
OTHER = "$2b$04$LbHwt0FYXN1BGe6eTKuL/.Ei9SJINuQz/ge50MexI9XVh7U999Txi"  # "renewed"
TLS = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
MTLS = TLS + "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n"
REFUSED = (ssl.SSLError, ConnectionError, http.client.RemoteDisconnected)
Answer = tuple[int, dict[str, str], bytes]


class Fixed:
    """An exposition that answers ``metrics``, with no Binance behind it."""

    def cached(self, _: Request) -> Body:
        return Body(b"metrics\n", "text/plain; version=0.0.4; charset=utf-8")

    def fresh(self, request: Request) -> Body:
        return self.cached(request)


class Site:
    """A folder with a CA, a server certificate, a client certificate and web.yml."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.ca = CA(folder)
        self.ca.issue("server")
        self.client = self.ca.issue("client", client=True)
        self.config = folder / "web.yml"

    def write(self, text: str) -> None:
        """Replace web.yml as an editor or a Kubernetes Secret does: a new file renamed in."""
        staged = self.folder / "web.yml.new"
        staged.write_text(text)
        staged.replace(self.config)

    def context(self, cert: tuple[Path, Path] | None = None, **options: object) -> ssl.SSLContext:
        """A client context that trusts the CA, presenting ``cert`` if given."""
        context = ssl.create_default_context(cafile=str(self.ca.path))
        if cert is not None:
            context.load_cert_chain(*map(str, cert))
        for name, value in options.items():
            setattr(context, name, value)
        return context


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return Site(tmp_path)


@contextmanager
def serving(site: Site, text: str) -> Iterator[MetricsServer]:
    site.write(text)
    server = MetricsServer("127.0.0.1", 0, Fixed(),  # type: ignore[arg-type]
                           web_config=WebConfigFile.at_start(str(site.config))).start()
    try:
        yield server
    finally:
        server.stop()


def auth(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def get(server: MetricsServer, path: str = "/metrics", headers: dict[str, str] | None = None,
        context: ssl.SSLContext | None = None) -> Answer:
    """One request on a new connection (HTTPS when the server serves it)."""
    if server.scheme == "https":
        assert context is not None
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            "127.0.0.1", server.port, context=context, timeout=10)
    else:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request("GET", path, headers=headers or {})
        answer = connection.getresponse()
        return answer.status, dict(answer.headers), answer.read()
    finally:
        connection.close()


# -- TLS ------------------------------------------------------------------------------------

def test_tls_serves_every_path_to_a_client_that_verifies_it(site: Site, elsewhere: Site) -> None:
    with serving(site, TLS) as server:
        assert server.scheme == "https"
        context = site.context()
        assert get(server, "/", context=context)[::2] == (200, LANDING.encode())
        assert get(server, context=context)[::2] == (200, b"metrics\n")
        assert get(server, "/nowhere", context=context)[0] == 404
        with pytest.raises(REFUSED):  # plain HTTP on the TLS port gets no answer
            get_plain(server.port)
        with pytest.raises(ssl.SSLCertVerificationError):  # a client that trusts another CA
            get(server, context=elsewhere.context())


def get_plain(port: int) -> Answer:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/")
        answer = connection.getresponse()
        return answer.status, dict(answer.headers), answer.read()
    finally:
        connection.close()


@pytest.fixture
def elsewhere(site: Site) -> Site:
    folder = site.folder / "elsewhere"
    folder.mkdir()
    return Site(folder)


def test_mutual_tls_refuses_a_client_without_a_certificate_and_answers_one_with(
        site: Site, elsewhere: Site) -> None:
    with serving(site, MTLS) as server:
        with pytest.raises(REFUSED):
            get(server, context=site.context())
        with pytest.raises(REFUSED):  # a certificate the CA did not sign
            get(server, context=site.context(elsewhere.client))
        assert get(server, context=site.context(site.client))[::2] == (200, b"metrics\n")
        assert get(server, "/", context=site.context(site.client))[0] == 200


def test_verify_client_cert_if_given_lets_a_client_without_one_in(
        site: Site, elsewhere: Site) -> None:
    with serving(site, TLS + "  client_auth_type: VerifyClientCertIfGiven\n"
                 "  client_ca_file: ca.crt\n") as server:
        assert get(server, context=site.context())[0] == 200
        assert get(server, context=site.context(site.client))[0] == 200
        with pytest.raises(REFUSED):
            get(server, context=site.context(elsewhere.client))


def test_client_allowed_sans(site: Site) -> None:
    prometheus = site.ca.issue("prometheus", client=True, sans=("prometheus.monitoring",))
    with serving(site, MTLS + "  client_allowed_sans: [prometheus.monitoring]\n") as server:
        assert get(server, context=site.context(prometheus))[0] == 200
        with pytest.raises(REFUSED):  # signed by the CA, but for other names
            get(server, context=site.context(site.client))


def negotiated(server: MetricsServer, context: ssl.SSLContext) -> tuple[str | None, str]:
    """The TLS version and cipher suite of a handshake with ``context``."""
    connection = http.client.HTTPSConnection("127.0.0.1", server.port, context=context,
                                             timeout=10)
    try:
        connection.connect()
        sock = connection.sock
        assert isinstance(sock, ssl.SSLSocket)
        cipher = sock.cipher()
        assert cipher is not None
        return sock.version(), cipher[0]
    finally:
        connection.close()


def test_versions_and_cipher_suites(site: Site) -> None:
    with serving(site, TLS + "  max_version: TLS12\n  cipher_suites:\n"
                 "    - TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384\n") as server:
        assert negotiated(server, site.context()) == ("TLSv1.2", "ECDHE-ECDSA-AES256-GCM-SHA384")
    with serving(site, TLS + "  min_version: TLS13\n") as server:
        assert negotiated(server, site.context())[0] == "TLSv1.3"
        with pytest.raises(ssl.SSLError):
            negotiated(server, site.context(maximum_version=ssl.TLSVersion.TLSv1_2))
    with serving(site, TLS + "  cipher_suites: [TLS_AES_128_GCM_SHA256]\n") as server:
        # TLS 1.3 suites only: TLS 1.2 has none left (Go's behaviour)
        assert negotiated(server, site.context())[0] == "TLSv1.3"
        with pytest.raises(ssl.SSLError):
            negotiated(server, site.context(maximum_version=ssl.TLSVersion.TLSv1_2))


def test_curve_preferences_of_one_curve(site: Site) -> None:
    with serving(site, TLS + "  curve_preferences: [CurveP384]\n") as server:
        p384, p256 = site.context(), site.context()
        p384.set_ecdh_curve("secp384r1")
        p256.set_ecdh_curve("prime256v1")
        assert negotiated(server, p384)[0] == "TLSv1.3"
        with pytest.raises(ssl.SSLError):
            negotiated(server, p256)


# -- basic auth and headers -----------------------------------------------------------------

@pytest.mark.parametrize("tls", [False, True])
def test_basic_auth_on_every_path(site: Site, tls: bool) -> None:
    """401 with WWW-Authenticate: Basic for missing, malformed or wrong credentials and an
    unknown user, on the landing page and unknown paths too; over TLS or plain HTTP."""
    text = (TLS if tls else "") + f"basic_auth_users:\n  prometheus: {HASH}\n"
    with serving(site, text) as server:
        context = site.context() if tls else None
        for headers in ({}, auth("prometheus", "wrong"), auth("someone", "secret"),
                        {"Authorization": "Bearer secret"},
                        {"Authorization": "Basic not-base64!"},
                        {"Authorization": "Basic " + base64.b64encode(b"nocolon").decode()}):
            for path in ("/metrics", "/", "/nowhere"):
                status, answer, body = get(server, path, headers, context)
                assert (status, answer["WWW-Authenticate"], body) == (
                    401, "Basic", b"Unauthorized\n"), (headers, path)
        good = auth("prometheus", "secret")
        assert get(server, "/metrics", good, context)[::2] == (200, b"metrics\n")
        assert get(server, "/", {"authorization": "basic " + good["Authorization"][6:]},
                   context)[0] == 200  # the scheme in any case, as Go reads it
        assert get(server, "/nowhere", good, context)[0] == 404


def test_verified_credentials_are_cached_so_a_scrape_pays_bcrypt_once(site: Site) -> None:
    with serving(site, f"basic_auth_users:\n  prometheus: {HASH}\n") as server:
        for _ in range(5):
            assert get(server, headers=auth("prometheus", "secret"))[0] == 200
            assert get(server, headers=auth("prometheus", "wrong"))[0] == 401
        assert server_credentials(server).checks == 2


def server_credentials(server: MetricsServer) -> Credentials:
    guard = server._guard  # pylint: disable=protected-access
    assert guard is not None
    return guard.credentials


def test_the_credentials_cache_is_bounded_and_a_user_unknown_costs_a_bcrypt_too() -> None:
    """Past its size the oldest outcomes go; an unknown user is checked against a fixed hash
    (the time does not tell whether the user exists), and never let in."""
    credentials = Credentials(kept=3)
    users = {"prometheus": HASH}

    async def check(user: bytes, password: bytes) -> bool:
        return await credentials.verify(users, user, password)

    import asyncio  # pylint: disable=import-outside-toplevel

    try:
        assert asyncio.run(check(b"prometheus", b"secret"))
        assert not asyncio.run(check(b"nobody", b"fakepassword"))  # the fixed hash's password
        assert credentials.checks == 2
        for n in range(4):
            assert not asyncio.run(check(b"prometheus", str(n).encode()))
        assert credentials.checks == 6
        assert asyncio.run(check(b"prometheus", b"secret"))  # evicted: checked again
        assert credentials.checks == 7
        long = b"x" * 100  # bcrypt reads 72 bytes; so does Go's
        users["long"] = bcrypt.hashpw(long[:72], bcrypt.gensalt(4)).decode()
        assert asyncio.run(check(b"long", long))
    finally:
        credentials.close()


def test_basic_credentials_read_as_go_reads_them() -> None:
    encoded = base64.b64encode(b"user:pa:ss").decode()
    assert basic_credentials(f"Basic {encoded}") == (b"user", b"pa:ss")
    assert basic_credentials(f"BASIC {encoded}") == (b"user", b"pa:ss")
    assert basic_credentials(encoded) is None and basic_credentials("") is None
    assert basic_credentials("Basic " + base64.b64encode(b":").decode()) == (b"", b"")


def test_configured_headers_are_on_every_answer(site: Site) -> None:
    with serving(site, f"basic_auth_users:\n  prometheus: {HASH}\nhttp_server_config:\n"
                 "  headers:\n    X-Frame-Options: deny\n    X-Content-Type-Options: nosniff\n"
                 "    Strict-Transport-Security: max-age=31536000\n") as server:
        for path, headers in (("/metrics", auth("prometheus", "secret")), ("/", {}),
                              ("/nowhere", auth("prometheus", "secret"))):
            _, answer, _ = get(server, path, headers)
            assert (answer["X-Frame-Options"], answer["X-Content-Type-Options"],
                    answer["Strict-Transport-Security"]) == ("deny", "nosniff",
                                                             "max-age=31536000")


def test_the_rate_limit_answers_429_past_its_burst(site: Site) -> None:
    with serving(site, "rate_limit:\n  interval: 1h\n  burst: 2\n") as server:
        assert [get(server, "/")[0] for _ in range(4)] == [200, 200, 429, 429]


def test_the_token_bucket_refills_one_token_an_interval() -> None:
    now = [0.0]
    limiter = RateLimiter(RateLimit(interval=2.0, burst=2), clock=lambda: now[0])
    assert [limiter.allow() for _ in range(3)] == [True, True, False]
    now[0] = 1.0
    assert not limiter.allow()
    now[0] = 2.0
    assert limiter.allow() and not limiter.allow()
    now[0] = 100.0
    assert [limiter.allow() for _ in range(3)] == [True, True, False]  # never above the burst
    assert not RateLimiter(RateLimit(interval=1.0, burst=0)).allow()  # Go's: allows nothing


# -- files that change while serving --------------------------------------------------------

def test_a_changed_password_and_new_users_apply_without_a_restart(site: Site) -> None:
    with serving(site, f"basic_auth_users:\n  prometheus: {HASH}\n") as server:
        assert get(server, headers=auth("prometheus", "secret"))[0] == 200
        site.write(f"basic_auth_users:\n  prometheus: {OTHER}\n  grafana: {HASH}\n")
        assert get(server, headers=auth("prometheus", "secret"))[0] == 401
        assert get(server, headers=auth("prometheus", "renewed"))[0] == 200
        assert get(server, headers=auth("grafana", "secret"))[0] == 200
        site.write("")  # no users: no authentication
        assert get(server)[0] == 200


def presented(server: MetricsServer, context: ssl.SSLContext) -> bytes:
    connection = http.client.HTTPSConnection("127.0.0.1", server.port, context=context,
                                             timeout=10)
    try:
        connection.connect()
        assert isinstance(connection.sock, ssl.SSLSocket)
        cert = connection.sock.getpeercert(binary_form=True)
        assert cert is not None
        return cert
    finally:
        connection.close()


def test_a_renewed_certificate_and_ca_serve_the_next_connection(site: Site) -> None:
    """Renewed in place (same paths, as cert-manager renews a Secret): the next handshake
    presents the new certificate; a kept-alive connection goes on with the old one."""
    with serving(site, MTLS) as server:
        client = site.context(site.client)
        kept = http.client.HTTPSConnection("127.0.0.1", server.port, context=client, timeout=10)
        kept.request("GET", "/")
        assert kept.getresponse().read() == LANDING.encode()
        before = presented(server, client)
        renewed = CA(site.folder)  # a new CA, at ca.crt; it signs a new server.crt and client
        renewed.issue("server")
        client_after = renewed.issue("client-2", client=True)
        after = site.context(client_after)
        after.load_verify_locations(cafile=str(renewed.path))
        assert presented(server, after) != before
        assert get(server, context=after)[0] == 200
        with pytest.raises(REFUSED):  # the old client certificate's CA is no longer trusted
            get(server, context=site.context(site.client))
        kept.request("GET", "/")  # the connection made before the change still serves
        assert kept.getresponse().status == 200
        kept.close()


def test_a_file_that_becomes_invalid_refuses_until_fixed(
        site: Site, caplog: pytest.LogCaptureFixture) -> None:
    """The toolkit's behaviour: every request gets 500, new TLS connections fail, nothing
    is served with the configuration it had; the error is logged once; once the file is
    fixed, all is served again."""
    caplog.set_level(logging.INFO, "collector.web_config")
    with serving(site, MTLS + f"basic_auth_users:\n  prometheus: {HASH}\n") as server:
        client, good = site.context(site.client), auth("prometheus", "secret")
        kept = http.client.HTTPSConnection("127.0.0.1", server.port, context=client, timeout=10)
        kept.request("GET", "/metrics", headers=good)
        assert kept.getresponse().read() == b"metrics\n"
        site.write(MTLS + "  cert_filse: typo\n")
        for _ in range(3):
            kept.request("GET", "/metrics", headers=good)
            answer = kept.getresponse()
            assert (answer.status, answer.read()) == (500, b"Internal Server Error\n")
            with pytest.raises(REFUSED):
                get(server, headers=good, context=client)
        errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1 and "field cert_filse not found" in errors[0]
        site.write(MTLS + f"basic_auth_users:\n  prometheus: {HASH}\n")
        assert get(server, headers=good, context=client)[0] == 200
        kept.request("GET", "/metrics", headers=good)
        assert kept.getresponse().status == 200
        kept.close()
        (site.folder / "server.key").unlink()  # valid YAML, but the key it names is gone
        with pytest.raises(REFUSED):
            get(server, headers=good, context=client)
        assert "failed to read key_file" in caplog.text


def test_a_file_that_drops_tls_refuses_new_connections(site: Site) -> None:
    """TLS is on or off from start (the toolkit decides it once): a file that no longer asks
    for TLS does not turn a TLS port into a plain one."""
    with serving(site, TLS) as server:
        site.write(f"basic_auth_users:\n  prometheus: {HASH}\n")
        with pytest.raises(REFUSED):
            get(server, context=site.context())
        with pytest.raises(REFUSED):
            get_plain(server.port)
        site.write(TLS)
        assert get(server, context=site.context())[0] == 200


def test_a_hash_that_breaks_while_serving_matches_nothing(site: Site) -> None:
    """Hashes are checked at start only, as the toolkit's: a broken one later is a 401 for
    that user (bcrypt refuses it), not a 500 for everyone."""
    with serving(site, f"basic_auth_users:\n  prometheus: {HASH}\n  grafana: {OTHER}\n") \
            as server:
        site.write(f"basic_auth_users:\n  prometheus: plaintext\n  grafana: {OTHER}\n")
        assert get(server, headers=auth("prometheus", "plaintext"))[0] == 401
        assert get(server, headers=auth("grafana", "renewed"))[0] == 200


def test_stop_ends_a_handshake_that_never_comes(site: Site) -> None:
    """A client that connects and sends nothing holds no shutdown: the pending handshake is
    cancelled and its connection closed."""
    with serving(site, TLS) as server:
        sites = server._runner.sites  # pylint: disable=protected-access
        assert [site.name for site in sites] == [f"https://127.0.0.1:{server.port}"]
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as silent:
            assert get(server, "/", context=site.context())[0] == 200  # it waits, others don't
            stopper = threading.Thread(target=server.stop)
            stopper.start()
            stopper.join(30)
            assert not stopper.is_alive()
            assert silent.recv(1) == b""  # closed by the server


def test_a_file_deleted_while_serving_is_500_until_it_is_back(site: Site) -> None:
    with serving(site, "") as server:
        site.config.unlink()
        assert get(server)[::2] == (500, b"Internal Server Error\n")
        site.write("")
        assert get(server)[0] == 200


# -- the exporter --------------------------------------------------------------------------

def test_the_exporter_serves_metrics_over_tls_with_basic_auth(
        site: Site, market_mock: responses.RequestsMock) -> None:
    """exporter_cli.serve with --web.config.file: the CLI's own server, on Binance's mock."""
    del market_mock
    site.write(MTLS + f"basic_auth_users:\n  prometheus: {HASH}\n")
    args = parse_args(exporter_cli.build_parser(), [
        "--listen-address", "127.0.0.1", "--port", "0", "--web.config.file", str(site.config)])
    stop, ready, servers, codes = threading.Event(), threading.Event(), [], []

    def on_ready(server: MetricsServer) -> None:
        servers.append(server)
        ready.set()

    thread = threading.Thread(target=lambda: codes.append(
        exporter_cli.serve(args, stop, on_ready=on_ready)))
    thread.start()
    try:
        assert ready.wait(10)
        client = site.context(site.client)
        status, _, body = get(servers[0], headers=auth("prometheus", "secret"), context=client)
        assert status == 200 and b"binance_up 1.0" in body and b"process_cpu_seconds" in body
        assert get(servers[0], "/", context=client)[0] == 401
    finally:
        stop.set()
        thread.join(10)
    assert codes == [0]


def test_stream_mode_behind_tls_and_basic_auth(site: Site) -> None:
    """The other mode, as processes: the exporter in stream mode, reached over HTTPS."""
    site.write(TLS + f"basic_auth_users:\n  prometheus: {HASH}\n")
    with running_simulator() as sim, running_exporter(
            sim.url, "--source", "stream", "--stream-url", sim.stream_url,
            "--web.config.file", str(site.config)) as exporter:
        assert exporter.url.startswith("https://127.0.0.1:")
        port = int(exporter.url.rsplit(":", 1)[1])
        context = site.context()
        connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
        try:
            connection.request("GET", "/metrics")
            answer = connection.getresponse()
            assert (answer.status, answer.read()) == (401, b"Unauthorized\n")
            connection.request("GET", "/metrics", headers=auth("prometheus", "secret"))
            answer = connection.getresponse()
            body = answer.read()
            assert answer.status == 200 and b"binance_stream_connected" in body
        finally:
            connection.close()
