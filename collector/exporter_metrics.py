"""The exporter's own health as metrics: client_python's process, platform and GC collectors.

:class:`WithExporterMetrics` is a :class:`~collector.exporter.BinanceCollector` whose every
collection ends with one more group, collected anew on each scrape (never kept): the
families of the client library's own ``GCCollector`` (``python_gc_*``), ``PlatformCollector``
(``python_info``) and ``ProcessCollector`` (``process_*``: memory, CPU time, start time,
file descriptors), in the order client_python's default registry serves them, and under
the same conditions (the GC families on CPython only, the process families where
``/proc`` can be read)::

    python_gc_objects_collected_total{generation="0"} 613.0
    python_info{implementation="CPython",major="3",minor="11",patchlevel="7",version="3.11.7"} 1.0
    process_resident_memory_bytes 4.9e+07
    process_cpu_seconds_total 1.25
    process_open_fds 9.0

``--web.disable-exporter-metrics`` leaves them out: the wiring then builds a plain
``BinanceCollector``. The collectors live in a registry of their own, never the global one.
"""

from __future__ import annotations

from typing import Iterable

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.metrics_core import Metric

from collector.exporter import BinanceCollector, Group
from collector.source import Source


def exporter_registry() -> CollectorRegistry:
    """A registry of the client library's GC, platform and process collectors, as its
    default registry holds them (each decides, as there, whether it has anything to say)."""
    registry = CollectorRegistry(auto_describe=False)
    GCCollector(registry=registry)
    PlatformCollector(registry=registry)
    ProcessCollector(registry=registry)
    return registry


class WithExporterMetrics(BinanceCollector):
    """BinanceCollector's groups, then the families of ``registry`` (by default
    :func:`exporter_registry`'s) as one more per-scrape group."""

    def __init__(self, source: Source, registry: CollectorRegistry | None = None) -> None:
        super().__init__(source)
        self._own = exporter_registry() if registry is None else registry

    def describe(self) -> Iterable[Metric]:
        """BinanceCollector's families, then the exporter's own (collected: the client
        library's collectors describe themselves no other way)."""
        return [*super().describe(), *self._own.collect()]

    def collect_groups(self) -> list[Group]:
        return [*super().collect_groups(), self._group()]

    def collect_cached(self) -> list[Group] | None:
        groups = super().collect_cached()
        return None if groups is None else [*groups, self._group()]

    def _group(self) -> Group:
        return tuple(self._own.collect())
