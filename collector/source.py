"""The one interface through which front ends get what is published: :class:`Source`.

Two implementations: :class:`~collector.rest_source.RestSource` (the default: spreads
and books fetched when asked for, cached per data group) and
:class:`~collector.stream_source.StreamSource` (spreads and books kept live from
Binance's WebSocket streams). Both rank Q1/Q2 from REST
(:class:`~collector.upstream.Upstream`) and take Q5's samples with
:class:`~collector.q5.Q5Sampler`. Front ends read :class:`~collector.records.Snapshot`
records and never ask which source they have, but where a metric family or a column
exists in one mode alone (``settings.source``).
"""

from __future__ import annotations

from typing import Callable, Iterator, Protocol

from collector.records import Outcome, Settings, Snapshot, Spreads


class Source(Protocol):
    """What the exporter's collector and the report read."""

    settings: Settings

    def snapshot(self) -> Snapshot:
        """The current answers; REST refreshes what is due first (pull-on-scrape)."""

    def cached_snapshot(self) -> Snapshot | None:
        """The snapshot :meth:`snapshot` would give without waiting on I/O; else None."""

    def settled_snapshot(self, sleep: Callable[[float], None], clock: Callable[[], float],
                         patience: float = 30.0) -> Snapshot:
        """The first snapshot worth printing: once every answer is known, or ``patience``
        seconds on (then its errors say what is missing)."""

    def q5_ticks(self, first: Snapshot, interval: float, sleep: Callable[[float], None],
                 clock: Callable[[], float]) -> Iterator[Outcome[Spreads]]:
        """Q5's samples, one every ``interval`` seconds, forever, after ``first``."""

    def close(self) -> None:
        """Stop every thread and connection."""
