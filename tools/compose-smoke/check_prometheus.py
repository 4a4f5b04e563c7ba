"""The checks of ``tools/compose_smoke.sh``, against the Prometheus that compose started.

    python tools/compose-smoke/check_prometheus.py http://127.0.0.1:PORT prometheus/alerts.yml

Each check is retried once a second until it holds or ``--wait`` seconds have passed; the
first that never holds ends the run with exit 1 and what Prometheus last answered.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Callable

import yaml

JOB = "binance"
# (service name, as Prometheus' DNS discovery found it; instance label after relabelling)
EXPORTERS = [("exporter", "exporter:8080"), ("exporter-offline", "exporter-offline:8080")]
OFFLINE = "exporter-offline:8080"  # fed by the simulator: binance_up 1 without internet


def get(url: str) -> Any:
    """The ``data`` of a Prometheus API answer."""
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.load(answer)["data"]


def status(url: str) -> int:
    """The HTTP status of a GET."""
    with urllib.request.urlopen(url, timeout=5) as answer:
        return int(answer.status)


def wait_for(what: str, seconds: float, probe: Callable[[], Any],
             holds: Callable[[Any], bool]) -> Any:
    """``probe()`` once a second until ``holds`` its result; the result, or exit 1."""
    deadline = time.monotonic() + seconds
    last: Any = None
    while True:
        try:
            last = probe()
            if holds(last):
                print(f"ok: {what}: {last}")
                return last
        except (OSError, urllib.error.URLError, ValueError, KeyError) as exc:
            last = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            print(f"FAIL: {what} (waited {seconds:g} s); last: {last}", file=sys.stderr)
            sys.exit(1)
        time.sleep(1)


def main() -> int:
    """Ready; both exporters scraped by service name; offline data; every rule loaded."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("prometheus", help="base URL, e.g. http://127.0.0.1:49153")
    parser.add_argument("alerts", type=Path, help="prometheus/alerts.yml")
    parser.add_argument("--wait", type=float, default=120, help="seconds per check")
    args = parser.parse_args()
    api = args.prometheus.rstrip("/")

    wait_for("Prometheus is ready", args.wait,
             lambda: status(f"{api}/-/ready"),
             lambda status: status == 200)

    def targets() -> list[tuple[str, str, str, str]]:
        return sorted((t["discoveredLabels"]["__meta_dns_name"], t["labels"]["instance"],
                       t["labels"]["job"], t["health"])
                      for t in get(f"{api}/api/v1/targets")["activeTargets"])
    wait_for("both exporters found by service name and scraped", args.wait, targets,
             lambda found: found == [(name, instance, JOB, "up")
                                     for name, instance in EXPORTERS])

    def binance_up() -> list[tuple[str, str]]:
        query = urllib.parse.quote("binance_up")
        return sorted((r["metric"]["instance"], r["value"][1])
                      for r in get(f"{api}/api/v1/query?query={query}")["result"])
    wait_for(f"binance_up 1 from {OFFLINE}", args.wait, binance_up,
             lambda found: (OFFLINE, "1") in found)

    groups = yaml.safe_load(args.alerts.read_text(encoding="utf-8"))["groups"]
    expected = sorted((group["name"], rule.get("alert") or rule.get("record"))
                      for group in groups for rule in group["rules"])

    def rules() -> list[tuple[str, str]]:
        return sorted((group["name"], rule["name"])
                      for group in get(f"{api}/api/v1/rules")["groups"]
                      for rule in group["rules"])
    wait_for(f"the {len(expected)} rules of {args.alerts} are loaded", args.wait, rules,
             lambda loaded: loaded == expected)
    wait_for("every rule evaluates", args.wait,
             lambda: sorted({rule["health"] for group in get(f"{api}/api/v1/rules")["groups"]
                             for rule in group["rules"]}),
             lambda health: health == ["ok"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
