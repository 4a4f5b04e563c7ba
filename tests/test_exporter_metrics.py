"""The exporter's own process and Python metrics: client_python's collectors, per scrape."""

from __future__ import annotations

import gzip
import subprocess
from pathlib import Path
from typing import Iterable, Iterator

import pytest
import responses
from conftest import FakeClock
from e2e_support import promtool
from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
from prometheus_client.registry import Collector

from collector import exporter_cli, wiring
from collector.binance import BinanceClient
from collector.config import parse_args
from collector.exporter import BinanceCollector
from collector.exporter_metrics import WithExporterMetrics, exporter_registry
from collector.exposition import Exposition, Request
from collector.rest_source import RestSource

OPENMETRICS = "application/openmetrics-text; version=1.0.0"
OWN = ("process_", "python_")


def families(body: bytes) -> list[str]:
    return [line.split()[2] for line in body.decode().splitlines() if line.startswith("# TYPE")]


@pytest.fixture
def source(market_mock: responses.RequestsMock, clock: FakeClock) -> Iterator[RestSource]:
    del market_mock
    running = RestSource(BinanceClient(clock=clock, wall=clock.wall), clock=clock,
                         wall=clock.wall)
    yield running
    running.close()


def test_the_wiring_serves_them_unless_disabled(source: RestSource,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """By default /metrics ends with python_gc_*, python_info and process_* (this is Linux:
    /proc is there); --web.disable-exporter-metrics, or its variable, leaves them out and the
    body is BinanceCollector's alone."""
    monkeypatch.setattr(wiring, "source", lambda *_: source)
    parser = exporter_cli.build_parser()
    _, served = wiring.exporter(parse_args(parser, []), exporter_cli.exporter_settings(
        parse_args(parser, [])))
    names = families(served.fresh(Request()).data)
    own = [name for name in names if name.startswith(OWN)]
    assert own == ["python_gc_objects_collected_total", "python_gc_objects_uncollectable_total",
                   "python_gc_collections_total", "python_info", "process_virtual_memory_bytes",
                   "process_resident_memory_bytes", "process_start_time_seconds",
                   "process_cpu_seconds_total", "process_open_fds", "process_max_fds"]
    assert names[-len(own):] == own  # the last group, after BinanceCollector's
    for argv, variable in ((["--web.disable-exporter-metrics"], None), ([], "true")):
        if variable:
            monkeypatch.setenv("BINANCE_WEB_DISABLE_EXPORTER_METRICS", variable)
        args = parse_args(exporter_cli.build_parser(), argv)
        _, plain = wiring.exporter(args, exporter_cli.exporter_settings(args))
        assert type(plain.collector) is BinanceCollector  # pylint: disable=unidiomatic-typecheck
        assert not [name for name in families(plain.fresh(Request()).data)
                    if name.startswith(OWN)]


def test_a_scrape_with_them_passes_promtool(source: RestSource) -> None:
    body = Exposition(WithExporterMetrics(source)).fresh(Request()).data
    assert b"\nprocess_resident_memory_bytes " in body and b"\npython_info{" in body
    checked = subprocess.run([promtool(), "check", "metrics"], input=body, capture_output=True,
                             timeout=30, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr


class Counting(Collector):
    """A counter that goes up by one at each collect(): what a scrape shows tells whether
    the collector was asked again."""

    def __init__(self) -> None:
        self.calls = 0

    def collect(self) -> Iterable[Metric]:
        self.calls += 1
        return [CounterMetricFamily("process_fake_calls", "Calls so far.", value=self.calls)]


@pytest.mark.parametrize("accept, zipped", [("", False), ("", True), (OPENMETRICS, False)])
def test_they_are_collected_anew_on_every_scrape_cached_or_not(
        source: RestSource, accept: str, zipped: bool) -> None:
    """The data groups are kept between scrapes; these never are: a scrape served from
    cache (nothing due) still asks the collectors, and its body shows their new values, in
    every format and gzipped."""
    registry = CollectorRegistry(auto_describe=False)
    counting = Counting()
    registry.register(counting)
    exposition = Exposition(WithExporterMetrics(source, registry))
    request = Request(accept, "gzip" if zipped else "")
    exposition.fresh(request)
    for calls in (2, 3):
        body = exposition.cached(request)
        assert body is not None and body.gzipped == zipped
        text = gzip.decompress(body.data) if zipped else body.data
        assert f"\nprocess_fake_calls_total {calls}.0\n".encode() in text
    assert counting.calls == 3


def fake_proc(root: Path) -> Path:
    """A /proc with one process, 42, whose figures never move."""
    (root / "42" / "fd").mkdir(parents=True)
    (root / "stat").write_text("cpu  1 2 3\nbtime 1767225600\n")
    fields = ["S"] + ["0"] * 50
    fields[11], fields[12], fields[19], fields[20], fields[21] = \
        "250", "125", "1000", "104857600", "12000"  # utime, stime, start, vsize, rss pages
    (root / "42" / "stat").write_text("42 (binance-export) " + " ".join(fields) + "\n")
    (root / "42" / "limits").write_text(
        "Limit                     Soft Limit           Hard Limit           Units\n"
        "Max open files            1024                 4096                 files\n")
    for fd in range(7):
        (root / "42" / "fd" / str(fd)).touch()
    return root


@pytest.mark.parametrize("accept", ["", OPENMETRICS])
def test_name_filters_give_what_the_client_library_gives(
        source: RestSource, tmp_path: Path, accept: str) -> None:
    """?name[]=... on these families, byte for byte the client library's restricted
    registry over the same collector (a fake /proc, so both see the same figures)."""
    process = ProcessCollector(pid=lambda: 42, proc=str(fake_proc(tmp_path)), registry=None)
    ours = CollectorRegistry(auto_describe=False)
    ours.register(process)
    exposition = Exposition(WithExporterMetrics(source, ours))
    library = CollectorRegistry(auto_describe=True)  # as its default registry
    library.register(process)
    render = openmetrics_latest if accept else generate_latest
    for names in (("process_cpu_seconds_total", "process_open_fds"),
                  ("process_cpu_seconds",),  # a counter's family name matches no sample
                  ("process_max_fds", "binance_nothing")):
        body = exposition.fresh(Request(accept, "", names)).data
        assert body == render(library.restricted_registry(names)), names
    assert b"process_cpu_seconds_total 3.75" in exposition.fresh(
        Request(accept, "", ("process_cpu_seconds_total",))).data


def test_the_registry_is_the_client_librarys_own_collectors() -> None:
    """Not the global registry: two exporters in one process (as in the tests) do not
    register the same collector twice."""
    first, second = exporter_registry(), exporter_registry()
    assert [m.name for m in first.collect()] == [m.name for m in second.collect()]
    assert len({m.name for m in first.collect()}) == 10


def test_describe_names_them_too(source: RestSource) -> None:
    """A registry learns the names from describe(): a client library's restricted registry
    over this collector finds these families as it finds ours."""
    names = [family.name for family in WithExporterMetrics(source).describe()]
    assert "binance_up" in names and "process_cpu_seconds" in names and "python_info" in names
