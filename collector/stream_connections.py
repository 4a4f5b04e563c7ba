"""The streams' connections and their health: which deliver, attempts, events counted.

:class:`Connections` keeps, per connection (numbered from 0; Binance allows 1,024
streams on one), whether it delivers; the connection attempts by reason; the events
received per stream; and when the last one came. Counts sit in
:class:`~collector.tracked.TrackedMap` objects, so a reader learns what changed since
it last looked. No I/O, no lock: the stream state's lock guards it.
"""

from __future__ import annotations

from typing import Iterable

from collector.stream_client import REASONS
from collector.tracked import TrackedMap


class Connections:
    """Up or down per connection, reconnects by reason, events by stream."""

    def __init__(self) -> None:
        self.up: TrackedMap[int, bool] = TrackedMap()
        self.up[0] = False
        # every label of a counter exists from the start, at 0: Prometheus' increase() does
        # not count a series' first sample, so a counter born at 1 would hide its first event
        self.reconnects: TrackedMap[str, int] = TrackedMap()
        self.reconnects.replace(dict.fromkeys(REASONS, 0))
        self.messages: TrackedMap[str, int] = TrackedMap()
        self.last_message: float | None = None  # monotonic time of the last event
        self.bad_logged = False  # an unreadable message was logged since the last connect

    @property
    def any_up(self) -> bool:
        """Some connection delivers."""
        return any(self.up.values())

    @property
    def all_up(self) -> bool:
        """Every connection delivers."""
        return bool(self.up) and all(self.up.values())

    def count(self, connections: int) -> None:
        """The streams are spread over ``connections``, numbered from 0."""
        self.up.replace({n: bool(self.up.get(n)) for n in range(connections)})

    def streams(self, names: Iterable[str]) -> None:
        """The streams followed: counts of the others go, the new ones' start at 0."""
        self.messages.replace({n: self.messages.get(n) or 0 for n in sorted(names)})

    def connected(self, connection: int) -> None:
        """Values arrive on ``connection`` from now on."""
        self.up[connection] = True
        self.bad_logged = False

    def disconnected(self, connection: int) -> None:
        """``connection`` delivers no more."""
        self.up[connection] = False

    def message(self, stream: str | None, now: float) -> None:
        """An event came at ``now`` on ``stream`` (None: one not followed)."""
        if stream is not None:
            self.messages.add(stream)
        self.last_message = now
