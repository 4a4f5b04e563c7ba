"""Q3 from ``<symbol>@depth@100ms``: the local order books, their resyncs and depth limits.

:class:`Books` keeps a :class:`~collector.order_book.LocalBook` per symbol followed,
from a REST snapshot and the diff stream per Binance's rules; a book that is not
synced is not published. Every change of a book goes through :meth:`Books._changing`,
which notes the book's state (synced, last update, depth) in a
:class:`~collector.tracked.TrackedMap`, so the published notionals are summed again
only when a book changed. No I/O, no lock: the stream state's lock guards it.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from types import MappingProxyType
from typing import Iterator, Mapping, Sequence

from collector.costs import DepthLimits
from collector.errors import NotSynced
from collector.order_book import CROSSED, GAP, ONE_SIDED, STALE, THIN, LocalBook
from collector.records import DepthUpdate, Notional, OrderBook, Outcome
from collector.tracked import TrackedMap

log = logging.getLogger("collector.stream.state")

DISCONNECT = "disconnect"  # a resync reason of its own: the connection was lost
BAND = "band"  # the snapshot stopped short of the widest --depth-bands edge: a deeper one
RESYNC_REASONS = (GAP, THIN, STALE, ONE_SIDED, CROSSED, DISCONNECT)

_BookState = tuple[bool, "int | None"]  # (synced, last update id)


class Books:  # pylint: disable=too-many-instance-attributes
    """The local books followed, their resync counts and the depth their snapshots need."""

    def __init__(self, levels: int, snapshot_limit: int, bands: Sequence[str] = ()) -> None:
        self._levels = levels
        self._limit = snapshot_limit
        self._bands = tuple(bands)
        self.limits = DepthLimits(snapshot_limit, bands)  # the loop thread's
        self.reasons = RESYNC_REASONS + ((BAND,) if bands else ())
        self._books: dict[str, LocalBook] = {}
        self.states: TrackedMap[str, _BookState] = TrackedMap()
        self.resyncs: TrackedMap[tuple[str, str], int] = TrackedMap()
        self._notionals: tuple[int, Outcome[Mapping[str, Notional]]] | None = None

    @property
    def symbols(self) -> list[str]:
        """The books followed, in order."""
        return list(self._books)

    def get(self, symbol: str) -> LocalBook | None:
        """The book of ``symbol`` if followed."""
        return self._books.get(symbol)

    def follow(self, symbols: Sequence[str]) -> None:
        """Follow ``symbols``' books (those already kept stay); resync counts of the others
        go, the new ones' start at 0."""
        self._books = {s: self._books.get(s) or LocalBook(s, self._levels, self._limit,
                                                          bands=self._bands)
                       for s in symbols}
        self.states.replace({s: self._state(b) for s, b in self._books.items()})
        self.resyncs.replace({(s, r): self.resyncs.get((s, r)) or 0
                              for s in symbols for r in self.reasons})

    @contextmanager
    def _changing(self, symbol: str) -> Iterator[LocalBook | None]:
        """The one way a book is changed: its state is noted afterwards."""
        book = self._books.get(symbol)
        try:
            yield book
        finally:
            if book is not None and self._books.get(symbol) is book:
                self.states[symbol] = self._state(book)

    @staticmethod
    def _state(book: LocalBook) -> _BookState:
        return book.synced, book.update_id

    def reset(self, symbols: Sequence[str], reason: str) -> None:
        """Drop these books (a lost connection, a lost event): they resync; a synced one
        counts a resync for ``reason``."""
        for symbol in symbols:
            with self._changing(symbol) as book:
                if book is not None:
                    if book.synced:
                        self.resyncs.add((symbol, reason))
                    book.reset()

    def on_event(self, symbol: str, event: DepthUpdate) -> LocalBook | None:
        """One diff event applied; the book, if it now waits for a snapshot."""
        with self._changing(symbol) as book:
            if book is None:
                return None
            reason = book.on_event(event)
            if reason is not None:
                self.resyncs.add((symbol, reason))
                log.info("order book %s resyncs (%s)", symbol, reason)
            return book if not book.synced and book.first_buffered is not None else None

    def on_snapshot(self, book: LocalBook, snapshot: OrderBook, limit: int | None) -> str | None:
        """A REST snapshot asked with ``limit`` levels, applied unless ``book`` is no longer
        followed; the reason it could not be used, if any. One that stops short of the
        widest ``--depth-bands`` edge is dropped for a deeper one (:data:`BAND`)."""
        symbol = snapshot.symbol
        if self._books.get(symbol) is not book:
            return None  # no longer followed
        with self._changing(symbol):
            limit = limit or self._limit
            reason = book.on_snapshot(snapshot, limit)
            notional = book.notional() if reason is None and self._bands else None
            if notional is not None and self.limits.learn(symbol, limit, notional) > limit:
                book.reset()
                reason = BAND
            if reason is not None:
                self.resyncs.add((symbol, reason))
        if reason is None and book.synced:
            log.info("order book %s synced at update %d", symbol, snapshot.last_update_id)
        elif reason is not None:
            log.info("order book %s: snapshot not usable (%s)", symbol, reason)
        return reason

    def synced(self) -> dict[str, bool]:
        """Whether each book followed is synced."""
        return {s: state[0] for s, state in self.states.items()}

    def notionals(self) -> Outcome[Mapping[str, Notional]]:
        """Q3 of the synced books (the error names the others), summed again only when a
        book changed."""
        kept = self._notionals
        if kept is not None and kept[0] == self.states.version:
            return kept[1]
        notionals = {}
        for symbol, book in self._books.items():
            notional = book.notional()
            if notional is not None:
                notionals[symbol] = notional
        missing = [s for s in self._books if s not in notionals]
        error = NotSynced("stream", "order book not synced: " + " ".join(missing)) \
            if missing else None
        outcome: Outcome[Mapping[str, Notional]] = Outcome(MappingProxyType(notionals), error)
        self._notionals = (self.states.version, outcome)
        return outcome
