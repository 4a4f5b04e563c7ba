"""Every example web configuration file, checked by promtool and by the exporter (``make lint``).

    python tools/web_configs.py [ROOT]   # exit 1, naming each problem

The examples are the ``*.yml`` of ``deploy/web-config`` and the web configurations the
Kubernetes overlays put in Secrets (``deploy/kubernetes/overlays/*/web-config.yml``). Each
names its certificate, key and CA by paths relative to itself, as a deployment lays them
beside it; so each is copied into a scratch folder with a throwaway CA, certificate and key
(made by ``openssl``, never kept) at the paths it names, then checked there by
``promtool check web-config`` (the toolkit's own validation) and by the exporter's start-up
check, which must agree.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from collector.web_config import WebConfigError, WebConfigFile

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ("deploy/web-config/*.yml", "deploy/kubernetes/overlays/*/web-config.yml")


def examples(root: Path) -> list[Path]:
    """The example files under ``root``."""
    return sorted(path for pattern in EXAMPLES for path in root.glob(pattern))


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def lay_out_pems(config: Path) -> None:
    """A CA, and a certificate and key it signed, at the paths ``config`` names (beside it)."""
    tls = (yaml.safe_load(config.read_text(encoding="utf-8")) or {}).get(
        "tls_server_config") or {}
    folder = config.parent
    ca_key, ca_cert = folder / "scratch-ca.key", folder / "scratch-ca.crt"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", str(ca_key), "-out", str(ca_cert), "-days", "1",
             "-subj", "/CN=scratch CA")
    cert, key = folder / tls.get("cert_file", "tls.crt"), folder / tls.get("key_file", "tls.key")
    request = folder / "scratch.csr"
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(key), "-out", str(request), "-subj", "/CN=binance-exporter")
    _openssl("x509", "-req", "-in", str(request), "-CA", str(ca_cert), "-CAkey", str(ca_key),
             "-CAcreateserial", "-out", str(cert), "-days", "1")
    if tls.get("client_ca_file"):
        shutil.copy(ca_cert, folder / tls["client_ca_file"])


def check(root: Path) -> list[str]:
    """The problems of the examples under ``root`` (none: all is well)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        return ["promtool not found (apt-get install prometheus)"]
    found = examples(root)
    if not found:
        return [f"no example web configuration under {root}"]
    problems = []
    for example in found:
        name = example.relative_to(root)
        with tempfile.TemporaryDirectory(prefix="web-config-") as scratch:
            config = Path(scratch) / example.name
            shutil.copy(example, config)
            lay_out_pems(config)
            checked = subprocess.run([promtool, "check", "web-config", str(config)],
                                     capture_output=True, text=True, timeout=60, check=False)
            if checked.returncode != 0:
                problems.append(f"{name}: promtool check web-config: "
                                f"{(checked.stdout + checked.stderr).strip()}")
            try:
                WebConfigFile.at_start(str(config))
            except WebConfigError as exc:
                problems.append(f"{name}: the exporter refuses it: {exc}")
    return problems


def main(argv: list[str]) -> int:
    """Check the examples; exit 0, or 1 with each problem on a line."""
    root = Path(argv[0]) if argv else ROOT
    problems = check(root)
    for problem in problems:
        print(f"web config: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"web config: {len(examples(root))} example files pass promtool check web-config")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
