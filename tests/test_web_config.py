"""--web.config.file: the exporter-toolkit's format read as strictly as the toolkit reads it,
and a file that cannot be served refused at start (exit 2, one line) before listening."""

from __future__ import annotations

import ssl
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from e2e_support import BIN, promtool
from pki import CA

from collector import exporter_cli
from collector.config import parse_args
from collector.web_config import (
    CIPHER_SUITES,
    TLSContexts,
    WebConfigError,
    WebConfigFile,
    allowed_by_sans,
    bcrypt_cost,
    duration,
    parse,
)

# fixed: test ids must be the same in every pytest-xdist worker
HASH = "$2b$04$N6v2kKbxDfJ82wuSXzZYkeCE.ZErfDBakKI3k8k5g/QbY9Yp2LZQ2"  # "secret", cost 4
TLS = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
# Go's tls.CipherSuites() names and their IANA numbers, which OpenSSL's names must have
IANA = {"TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": 0xC009,
        "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": 0xC00A,
        "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": 0xC013, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": 0xC014,
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": 0xC02B,
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": 0xC02C,
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": 0xC02F,
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": 0xC030,
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": 0xCCA8,
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": 0xCCA9}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A folder with a CA (ca.crt), a server's certificate and key (server.crt, .key)."""
    CA(tmp_path).issue("server")
    return tmp_path


def write(folder: Path, text: str, name: str = "web.yml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_the_toolkits_own_sample_reads_as_it_says(folder: Path) -> None:
    """docs/web-config.yml of the exporter-toolkit (its hashes; the rate limit as given):
    relative paths are the file's folder's."""
    path = write(folder, TLS + "basic_auth_users:\n"
                 "  alice: $2y$10$mDwo.lAisC94iLAyP81MCesa29IzH37oigHC/42V2pdJlUprsJPze\n"
                 "  bob: $2y$10$hLqFl9jSjoAAy95Z/zw8Ye8wkdMBM8c5Bn1ptYqP/AXyV0.oy0S8m\n"
                 'rate_limit:\n  interval: "1s"\n  burst: 20\n')
    config = WebConfigFile.at_start(str(path)).current()
    assert config.tls.cert_file == str(folder / "server.crt") and config.tls.enabled
    assert sorted(config.users) == ["alice", "bob"]
    assert (config.rate_limit.interval, config.rate_limit.burst) == (1.0, 20)
    assert config.http2 and not config.headers


def test_an_empty_file_is_plain_http_without_authentication(tmp_path: Path) -> None:
    config = WebConfigFile.at_start(str(write(tmp_path, ""))).current()
    assert not config.tls.enabled and not config.users and not config.headers


@pytest.mark.parametrize("text, error", [
    ("tls_server_config:\n  cert_filse: x\n", "line 2: field cert_filse not found in "
     "tls_server_config"),
    ("basic_auth_user:\n  a: b\n", "line 1: field basic_auth_user not found in the web "
     "configuration"),
    ("http_server_config:\n  http3: true\n", "field http3 not found"),
    (TLS + "  cert_file: other.crt\n", 'line 4: tls_server_config: key "cert_file" already set'),
    ("tls_server_config: [a]\n", "line 1: tls_server_config must be a mapping"),
    ("tls_server_config:\n  cert_file: [a, b]\n", "cert_file must be a string"),
    ("basic_auth_users: [alice]\n", "basic_auth_users must be a mapping"),
    ("http_server_config:\n  http2: sometimes\n", "http2 must be true or false"),
    ("rate_limit:\n  burst: many\n", "rate_limit.burst must be a whole number"),
    ("rate_limit:\n  interval: 1 second\n", "is not a duration"),
    ("tls_server_config:\n  min_version: TLS111\n", "unknown TLS version: TLS111"),
    ("tls_server_config:\n  cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n", "unknown cipher"),
    ("tls_server_config:\n  curve_preferences: [CurveP999]\n", "unknown curve: CurveP999"),
    ("http_server_config:\n  headers:\n    Content-Type: foo\n",
     'HTTP header "Content-Type" can not be configured'),
    ("http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
     "invalid value for X-Frame-Options"),
    ("just words\n", "the web configuration must be a mapping"),
    ("tls_server_config:\n  cert_file: [\n", "not YAML"),
    ("\tbad: tab\n", "not YAML"),
    ("? [a, b]\n: c\n", "a key must be a string"),
    ("tls_server_config:\n  cipher_suites: TLS_AES_128_GCM_SHA256\n", "must be a list"),
])
def test_strict_parsing_names_the_line_and_the_problem(text: str, error: str) -> None:
    """As the toolkit's yaml.UnmarshalStrict: a typo in a key is an error, never ignored (a
    misspelt client_auth_type would otherwise serve without mutual TLS)."""
    with pytest.raises(WebConfigError) as raised:
        parse(text.encode(), "/etc/web.yml")
    assert error in str(raised.value) and "\n" not in str(raised.value)


def test_values_read_as_gos_yaml_reads_them() -> None:
    config = parse(b"tls_server_config:\n  cert_file: 123\n  prefer_server_cipher_suites: no\n"
                   b"  min_version:\n  client_allowed_sans: []\n"
                   b"basic_auth_users:\n  42: x\nhttp_server_config:\n  headers:\n"
                   b"    Content-Security-Policy: ''\n  http2: off\n"
                   b"rate_limit:\n  interval: 1500000000\n", "/etc/x/web.yml")
    assert config.tls.cert_file == "/etc/x/123"  # a number is its text
    assert not config.tls.prefer_server_cipher_suites
    assert config.tls.min_version == ssl.TLSVersion.TLSv1_2  # null: the default
    assert config.tls.client_allowed_sans == ()  # set and empty: nobody matches
    assert config.users == {"42": "x"} and not config.headers and not config.http2
    assert config.rate_limit.interval == 1.5  # an integer is nanoseconds


@pytest.mark.parametrize("text, seconds", [("1s", 1), ("1m30s", 90), ("250ms", 0.25),
                                           ("0", 0), ("1.5h", 5400), ("-2s", -2), ("1us", 1e-6)])
def test_go_durations(text: str, seconds: float) -> None:
    assert duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "1", "s", "1x", "1s2", "--1s", "1 s"])
def test_not_go_durations(text: str) -> None:
    with pytest.raises(ValueError):
        duration(text)


@pytest.mark.parametrize("hashed, cost", [
    ("$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi", 10), (HASH, 4)])
def test_bcrypt_costs(hashed: str, cost: int) -> None:
    assert bcrypt_cost(hashed) == cost


@pytest.mark.parametrize("hashed", [
    "secret", "$2y$10$short", "$3y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi",
    "$2y$03$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi",
    "x2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi"])
def test_not_bcrypt_hashes(hashed: str) -> None:
    with pytest.raises(ValueError):
        bcrypt_cost(hashed)


def test_each_cipher_suite_name_is_the_openssl_suite_of_its_number() -> None:
    """The toolkit takes Go's names (IANA's); Python's ssl takes OpenSSL's."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.set_ciphers(":".join(CIPHER_SUITES.values()))
    numbers = {cipher["name"]: cipher["id"] & 0xFFFF for cipher in context.get_ciphers()}
    assert {name: numbers[openssl] for name, openssl in CIPHER_SUITES.items()} == IANA


def test_sans_match_as_gos_check_does() -> None:
    cert: dict[str, Any] = {"subjectAltName": (("DNS", "prometheus"), ("IP Address",
                                                                      "2001:DB8:0:0:0:0:0:1\n"),
                                               ("email", "ops@example.com"))}
    assert allowed_by_sans(cert, ("prometheus",))
    assert allowed_by_sans(cert, ("2001:db8::1",))  # written as Go writes an address
    assert allowed_by_sans(cert, ("other", "ops@example.com"))
    assert not allowed_by_sans(cert, ("Prometheus",)) and not allowed_by_sans(cert, ())
    assert not allowed_by_sans(None, ("prometheus",))


# -- what cannot be served: refused at start -------------------------------------------------

BAD_AT_START = [
    ("basic_auth_users:\n  alice: plaintext\n", "the password of 'alice': too short"),
    ("tls_server_config:\n  cert_file: missing.crt\n  key_file: server.key\n",
     "failed to read cert_file"),
    ("tls_server_config:\n  cert_file: server.crt\n", "missing one of key or key_file"),
    ("tls_server_config:\n  key_file: server.key\n", "missing one of cert or cert_file"),
    ("tls_server_config:\n  cert_file: server.crt\n  key_file: ca.crt\n",
     "failed to load X509KeyPair"),
    (TLS + "  client_ca_file: ca.crt\n", "client CA's have been configured without a Client "
     "Auth Policy"),
    (TLS + "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: server.key\n",
     "client CA"),
    (TLS + "  client_auth_type: Always\n", "invalid ClientAuth: Always"),
    (TLS + "  client_auth_type: RequireAnyClientCert\n", "cannot be done with Python's ssl"),
    (TLS + "  curve_preferences: [CurveP256, X25519]\n", "one curve, not a list of 2"),
    (TLS + "  client_allowed_sans: [prometheus]\n", "needs a verified client certificate"),
]


@pytest.mark.parametrize("text, error", BAD_AT_START)
def test_a_file_that_cannot_be_served_is_refused_at_start(
        folder: Path, text: str, error: str) -> None:
    with pytest.raises(WebConfigError) as raised:
        WebConfigFile.at_start(str(write(folder, text)))
    assert error in str(raised.value)


@pytest.mark.parametrize("make, error", [
    (lambda folder: str(folder / "absent.yml"), "cannot read it: No such file or directory"),
    (str, "cannot read it: Is a directory"),
    (lambda folder: str(write(folder, "tls_server_config:\n  cert_filse: x\n")),
     "field cert_filse not found"),
    (lambda folder: str(write(folder, "tls_server_config:\n  cert_file: nope.crt\n"
                              "  key_file: server.key\n")), "failed to read cert_file"),
])
def test_serve_exits_2_with_one_line_before_listening_or_starting_anything(
        folder: Path, make: Any, error: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    def never(*_: Any, **__: Any) -> Any:
        raise AssertionError("started")

    monkeypatch.setattr(exporter_cli, "MetricsServer", never)
    monkeypatch.setattr(exporter_cli.wiring, "exporter", never)  # no source, no stream
    path = make(folder)
    args = parse_args(exporter_cli.build_parser(), ["--web.config.file", path, "--port", "0"])
    assert exporter_cli.serve(args, threading.Event()) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"binance-exporter: error: --web.config.file {path}: ")
    assert error in err and err.count("\n") == 1


def test_the_process_exits_2_from_its_environment_variable(folder: Path) -> None:
    """The console script, configured as a container is: BINANCE_WEB_CONFIG_FILE."""
    path = write(folder, "basic_auth_users:\n  alice: plaintext\n")
    done = subprocess.run([str(BIN / "binance-exporter"), "--port", "0"], capture_output=True,
                          text=True, timeout=60, check=False,
                          env={"BINANCE_WEB_CONFIG_FILE": str(path), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (f"binance-exporter: error: --web.config.file {path}: "
                           "basic_auth_users: the password of 'alice': too short to be a "
                           "bcrypt hash\n")


# -- agreeing with promtool check web-config -------------------------------------------------

AGREED = [  # (file, valid): what promtool (the toolkit's web.Validate) says of each
    (TLS, True), ("", True),
    (f"basic_auth_users:\n  alice: {HASH}\nhttp_server_config:\n  headers:\n"
     "    X-Content-Type-Options: nosniff\n", True),
    (TLS + "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n"
     "  min_version: TLS13\n  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]\n"
     "  curve_preferences: [X25519]\n  prefer_server_cipher_suites: false\n", True),
    (TLS + "  client_auth_type: VerifyClientCertIfGiven\n", True),
    ("tls_server_config:\n  cert_filse: x\n", False),
    ("basic_auth_users:\n  alice: plaintext\n", False),
    (TLS + "  client_ca_file: ca.crt\n", False),
    ("tls_server_config:\n  cert_file: server.crt\n", False),
    (TLS + "  cert_file: server.crt\n", False),
    (TLS + "  min_version: TLS14\n", False),
    ("http_server_config:\n  headers:\n    X-Frame-Options: allow\n", False),
]


def test_start_up_agrees_with_promtool_check_web_config(folder: Path) -> None:
    """Every file promtool accepts starts; every file it refuses is refused (the features
    Debian's promtool knows: its toolkit predates rate_limit and inline certificates)."""
    for number, (text, valid) in enumerate(AGREED):
        path = write(folder, text, f"web-{number}.yml")
        checked = subprocess.run([promtool(), "check", "web-config", str(path)],
                                 capture_output=True, text=True, timeout=30, check=False)
        assert (checked.returncode == 0) == valid, (text, checked.stdout + checked.stderr)
        try:
            WebConfigFile.at_start(str(path))
            started = True
        except WebConfigError:
            started = False
        assert started == valid, text


def test_contexts_are_built_again_only_when_a_file_changes(folder: Path) -> None:
    path = write(folder, TLS)
    contexts = TLSContexts(WebConfigFile.at_start(str(path)))
    first, _ = contexts.current()
    assert contexts.current()[0] is first  # nothing changed: the same context
    CA(folder, "other").issue("server")  # a renewed certificate and key, same paths
    assert contexts.current()[0] is not first


def test_an_inline_certificate_and_key_load_from_memory(folder: Path) -> None:
    """cert and key given in the file itself: loaded through anonymous memory files, so
    nothing is written to a disk (a read-only root file system is fine)."""
    cert, key = (folder / "server.crt").read_text(), (folder / "server.key").read_text()
    indent = "\n    ".join
    path = write(folder, "tls_server_config:\n  cert: |\n    "
                 + indent(cert.splitlines()) + "\n  key: |\n    " + indent(key.splitlines())
                 + "\n")
    context, tls = TLSContexts(WebConfigFile.at_start(str(path))).current()
    assert tls.cert.startswith("-----BEGIN CERTIFICATE-----") and not tls.cert_file
    assert context.verify_mode == ssl.CERT_NONE


def test_without_memfd_an_inline_key_is_refused(folder: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr("os.memfd_create")
    key = (folder / "server.key").read_text()
    path = write(folder, "tls_server_config:\n  cert_file: server.crt\n  key: |\n    "
                 + "\n    ".join(key.splitlines()) + "\n")
    with pytest.raises(WebConfigError, match="an inline key needs Linux"):
        WebConfigFile.at_start(str(path))


def test_an_encrypted_key_is_refused_rather_than_prompting(folder: Path) -> None:
    """The toolkit reads unencrypted keys; OpenSSL would otherwise ask on the terminal."""
    from cryptography.hazmat.primitives import serialization  # pylint: disable=import-outside-toplevel

    key = serialization.load_pem_private_key((folder / "server.key").read_bytes(), None)
    (folder / "server.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase")))
    with pytest.raises(WebConfigError, match="failed to load X509KeyPair"):
        WebConfigFile.at_start(str(write(folder, TLS)))
