"""binance-healthcheck, the image's HEALTHCHECK and the TLS overlay's probes, against a real
server in each mode a web configuration gives it."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest
from e2e_support import BIN
from test_web_access import HASH, MTLS, TLS, Site, serving

from collector import healthcheck


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return Site(tmp_path)


def check(monkeypatch: pytest.MonkeyPatch, port: int, config: Path | None = None,
          address: str = "::") -> int:
    monkeypatch.setenv("BINANCE_LISTEN_ADDRESS", address)
    monkeypatch.setenv("BINANCE_LISTEN_PORT", str(port))
    if config is None:
        monkeypatch.delenv("BINANCE_WEB_CONFIG_FILE", raising=False)
    else:
        monkeypatch.setenv("BINANCE_WEB_CONFIG_FILE", str(config))
    return healthcheck.main()


@pytest.mark.parametrize("text", [
    "", f"basic_auth_users:\n  prometheus: {HASH}\n", TLS,
    TLS + f"basic_auth_users:\n  prometheus: {HASH}\n", MTLS])
def test_an_exporter_that_answers_is_healthy(site: Site, text: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A page, a 401 for want of a password, or a TLS 1.3 handshake completed and the
    connection then refused for want of a client certificate."""
    with serving(site, text) as server:
        assert check(monkeypatch, server.port, site.config) == 0
        assert check(monkeypatch, server.port, site.config, "127.0.0.1") == 0


def test_under_mutual_tls_12_the_probe_cannot_tell(site: Site,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The documented limit: TLS 1.2 judges the client certificate inside the handshake, so
    a refused probe looks like a failed one (keep TLS 1.3, the default, or probe by TCP)."""
    with serving(site, MTLS + "  max_version: TLS12\n") as server:
        assert check(monkeypatch, server.port, site.config) == 1


def test_no_exporter_is_unhealthy(monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # bound, not listening: refused
        assert check(monkeypatch, port) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"binance-healthcheck: http://127.0.0.1:{port}/: ")
    assert err.count("\n") == 1


@pytest.mark.parametrize("text", ["", TLS])
def test_a_file_that_became_invalid_is_unhealthy(
        site: Site, text: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Plain HTTP then answers 500 and TLS refuses new connections: a restart (which exits 2
    on such a file) is what makes the problem seen."""
    with serving(site, text) as server:
        site.write(text + "unknown_key: 1\n")
        assert check(monkeypatch, server.port, site.config) == 1
        assert "field unknown_key not found" in capsys.readouterr().err
        if text:
            site.write(text)
            (site.folder / "server.key").unlink()  # valid, but its key is gone
            assert check(monkeypatch, server.port, site.config) == 1
            assert "https://127.0.0.1" in capsys.readouterr().err


def test_the_console_script_is_installed_and_speaks_tls(site: Site) -> None:
    with serving(site, MTLS) as server:
        done = subprocess.run([str(BIN / "binance-healthcheck")], capture_output=True,
                              text=True, timeout=30, check=False,
                              env={"BINANCE_LISTEN_PORT": str(server.port),
                                   "BINANCE_WEB_CONFIG_FILE": str(site.config)})
        assert (done.returncode, done.stderr) == (0, "")
