"""Q5, defined once: a sample of the spreads, its delta from the sample before, its log line.

Both sources take Q5's samples here: REST at each refresh of the spreads (at most every
``--ttl-spreads``, on scrapes; every ``--interval`` in the report), streams on a clock of
their own at each multiple of 10 s of Unix time. A delta is the absolute change of a
symbol's spread from the sample before; none on a symbol's first sample, after a side
was empty, or, with ``max_gap``, when the sample before is too old to compare with (a
tick was missed). The exporter logs every sample (:func:`log_sample`); the report prints
them itself.
"""

from __future__ import annotations

import itertools
import logging
import threading
from decimal import Decimal
from typing import Callable, Mapping

from collector.answers import q5_line, spread_deltas

log = logging.getLogger("collector.q5")

SAMPLE_SECONDS = 10.0  # stream mode's Q5 clock, and the window of the spread's min/max

SpreadMap = Mapping[str, Decimal | None]
Listener = Callable[[SpreadMap, SpreadMap], None]


LOGGED_MOST = 20  # symbols in one log line: --spreads all samples the whole market


def log_sample(spreads: SpreadMap, deltas: SpreadMap) -> None:
    """Q5's log line: ``spreads: BTCUSDT=0.01 (delta 0) ...``; past ``LOGGED_MOST``
    symbols (the first are Q2's and ``--symbols``' unless the whole market is sampled),
    how many more there are, whose figures are on ``/metrics``."""
    shown = dict(itertools.islice(spreads.items(), LOGGED_MOST))
    more = len(spreads) - len(shown)
    log.info("spreads: %s%s", q5_line(shown, deltas),
             f" and {more} more on /metrics" if more else "")


class Q5Sampler:
    """The spreads' previous sample, and the deltas of the last one (thread-safe)."""

    def __init__(self, *, max_gap: float | None = None,
                 on_sample: Listener | None = None) -> None:
        self._max_gap = max_gap  # None: compare with the previous sample however old
        self._on_sample = on_sample
        self._lock = threading.Lock()
        self._previous: SpreadMap | None = None
        self._previous_at = 0.0
        self._deltas: SpreadMap = {}

    def sample(self, spreads: SpreadMap, at: float) -> SpreadMap:
        """Take ``spreads`` as the sample at ``at`` (seconds); their deltas."""
        with self._lock:
            previous = self._previous
            if self._max_gap is not None and at - self._previous_at > self._max_gap:
                previous = None
            deltas = spread_deltas(previous, spreads)
            self._previous, self._previous_at, self._deltas = spreads, at, deltas
        if spreads and self._on_sample is not None:
            self._on_sample(spreads, deltas)
        return deltas

    @property
    def deltas(self) -> SpreadMap:
        """The deltas of the last sample ({} before the first)."""
        with self._lock:
            return self._deltas
