"""One symbol's order book, kept from a REST snapshot and ``<symbol>@depth`` events.

Pure: no I/O, exact ``Decimal``. The caller feeds what arrives (:meth:`LocalBook.on_event`,
:meth:`LocalBook.on_snapshot`) and fetches a snapshot when told to; the book follows
Binance's "How to manage a local order book correctly" (web-socket-streams.md):

1. Until synced, events are buffered, at most ``max_buffer`` of them and
   ``max_buffered_levels`` levels in all (the oldest go first; the newest event is always
   kept, whatever its size). The buffer stays contiguous: an event that does not continue
   the last one (its ``U`` is not the last ``u`` + 1) replaces everything buffered, which
   could no longer be applied.
   Once :attr:`LocalBook.first_buffered` is set, a snapshot may be fetched.
2. A snapshot drops the buffered events with ``u`` <= its ``lastUpdateId``. The first one
   left must continue the snapshot: ``lastUpdateId`` + 1 within its [``U``, ``u``]. If its
   ``U`` is later, the snapshot is older than the stream: :data:`STALE`, fetch another
   (the buffer is kept). Binance's step 4 ("go back if lastUpdateId < U") would reject
   ``lastUpdateId`` == ``U`` - 1, a snapshot taken just before the event, which is exactly
   what the simulator serves; ``lastUpdateId`` + 1 in [``U``, ``u``] is the rule its step 5
   and update procedure imply, so that is the one applied. With no event left, the book is
   synced at ``lastUpdateId`` and the next event must satisfy the same rule.
3. Synced, an event with ``u`` <= the book's id is ignored (old or repeated); the first one
   after the snapshot must span the book's id + 1, and every later one must start right
   after the previous one (``U`` == previous ``u`` + 1). Anything else is a :data:`GAP`:
   the book is discarded and the event that showed the gap is buffered as the first of a
   new sync. Levels are set to the event's quantity; quantity 0 removes the level.

Binance warns that a snapshot only tells the levels it lists. A side that came with
``snapshot_limit`` levels is known only up to its worst price, the *boundary*: deeper
levels are not stored (an event may set one, but the levels around it stay unknown). A
side with fewer levels is the whole side and has no boundary. A side never holds more than
``snapshot_limit`` levels: past that, its boundary moves in to the last level kept. When
events leave a bounded side with fewer than ``levels`` known levels, the book is
:data:`THIN`: discarded, the event buffered, and a new snapshot needed. So memory stays
bounded whatever the message rate and size: ``snapshot_limit`` levels a side (or the limit
a snapshot was asked with), ``max_buffer`` events of ``max_buffered_levels`` levels.

With ``bands`` (``--depth-bands``), :meth:`LocalBook.notional` also sums the depth within
each band of the mid price over every level known; a bounded side whose known levels end
before a band's edge gives only a floor (``complete`` False).

A book is only ever synced on what a matching engine can hold. A snapshot with an empty
side is :data:`ONE_SIDED` and one whose best bid is at or above its best ask is
:data:`CROSSED`: both are refused, the buffer kept, and another snapshot is needed. Events
carry only the levels that change, so nothing would repair such a book before its next
resync. An event that leaves the book crossed drops it (:data:`CROSSED`) like a gap.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from decimal import Decimal
from typing import Sequence

from collector.answers import book_notional
from collector.records import DepthUpdate, Level, Notional, OrderBook

# what a book buffers while waiting for a snapshot: events (~100 s of a busy symbol's), and
# their levels in all, so that large events cannot grow memory either (~260 bytes a parsed
# level: ~13 MB a book; Binance's busiest send ~20 levels an event, p99 ~100)
MAX_BUFFER = 1000
MAX_BUFFERED_LEVELS = 50_000

GAP = "gap"  # an event does not continue the book: events were missed
THIN = "thin"  # a bounded side has fewer than ``levels`` known levels left
STALE = "stale"  # the snapshot is older than the first buffered event
ONE_SIDED = "one_sided"  # the snapshot has no level on a side
CROSSED = "crossed"  # the best bid is at or above the best ask


class _Side:
    """One side's known levels: quantity by rank, and the ranks sorted best first.

    A rank is the price for asks and the negated price for bids, so that on both sides the
    best level has the lowest rank. Levels ranked after ``boundary`` are unknown (None:
    every level is known).
    """

    __slots__ = ("negate", "qty", "ranks", "boundary")

    def __init__(self, levels: tuple[Level, ...], negate: bool, limit: int) -> None:
        self.negate = negate
        self.qty = {price.copy_negate() if negate else price: qty for price, qty in levels}
        self.ranks = sorted(self.qty)
        self.boundary = self.ranks[-1] if len(levels) >= limit else None
        self.trim(limit)

    def set(self, price: Decimal, qty: Decimal) -> None:
        """Apply one level of an event; a level past the boundary is not stored."""
        rank = price.copy_negate() if self.negate else price
        if self.boundary is not None and rank > self.boundary:
            return
        if qty:
            if rank not in self.qty:
                insort(self.ranks, rank)
            self.qty[rank] = qty
        elif self.qty.pop(rank, None) is not None:
            del self.ranks[bisect_left(self.ranks, rank)]

    def trim(self, limit: int) -> None:
        """Keep the best ``limit`` levels; the boundary moves in to the last one kept."""
        if len(self.ranks) > limit:
            for rank in self.ranks[limit:]:
                del self.qty[rank]
            del self.ranks[limit:]
            self.boundary = self.ranks[-1]

    def best(self) -> Decimal | None:
        """The best level's rank, None for an empty side."""
        return self.ranks[0] if self.ranks else None

    def thin(self, levels: int) -> bool:
        """Fewer than ``levels`` known levels, and more may exist past the boundary."""
        return self.boundary is not None and len(self.ranks) < levels

    def top(self, levels: int) -> tuple[Level, ...]:
        """The best ``levels`` levels, best first, as (price, quantity)."""
        return tuple((rank.copy_negate() if self.negate else rank, self.qty[rank])
                     for rank in self.ranks[:levels])


class _Buffer:
    """Events waiting for a snapshot, oldest first: contiguous, and bounded by count and by
    levels in all. Past either bound the oldest go (dropping from the front keeps the rest
    contiguous); the newest event stays, whatever its size."""

    __slots__ = ("events", "levels", "_max_events", "_max_levels")

    def __init__(self, max_events: int, max_levels: int) -> None:
        self.events: deque[DepthUpdate] = deque()
        self.levels = 0  # levels of the events held
        self._max_events = max_events
        self._max_levels = max_levels

    def append(self, event: DepthUpdate) -> None:
        """Hold ``event`` last; the oldest go while over a bound."""
        self.events.append(event)
        self.levels += len(event.bids) + len(event.asks)
        while len(self.events) > 1 and (len(self.events) > self._max_events
                                        or self.levels > self._max_levels):
            self.pop_oldest()

    def pop_oldest(self) -> None:
        """Drop the oldest event."""
        oldest = self.events.popleft()
        self.levels -= len(oldest.bids) + len(oldest.asks)

    def clear(self) -> None:
        """Drop every event."""
        self.events.clear()
        self.levels = 0


class _Synced:
    """A synced book: its sides, its update id, and the notional while it holds."""

    __slots__ = ("bids", "asks", "limit", "update_id", "spanning", "notional")

    def __init__(self, snapshot: OrderBook, limit: int) -> None:
        self.bids = _Side(snapshot.bids, True, limit)
        self.asks = _Side(snapshot.asks, False, limit)
        self.limit = limit
        self.update_id = snapshot.last_update_id
        self.spanning = True  # no event applied yet: the next one must span update_id + 1
        self.notional: Notional | None = None


class LocalBook:
    """One symbol's order book from a REST snapshot plus its ``@depth`` diff events.

    ``levels``: how many of the best levels a side sums in :meth:`notional`.
    ``snapshot_limit``: the ``limit`` the caller's depth snapshots ask for (it must be at
    least ``levels``). ``max_buffer`` and ``max_buffered_levels``: the events, and their
    levels in all, kept while waiting for a snapshot.
    The caller passes only this symbol's events and snapshots.
    """

    def __init__(self, symbol: str, levels: int, snapshot_limit: int = 500,  # pylint: disable=too-many-arguments
                 max_buffer: int = MAX_BUFFER, *, bands: Sequence[str] = (),
                 max_buffered_levels: int = MAX_BUFFERED_LEVELS) -> None:
        if not 1 <= levels <= snapshot_limit or max_buffer < 1 or max_buffered_levels < 1:
            raise ValueError(f"need 1 <= levels ({levels}) <= snapshot_limit "
                             f"({snapshot_limit}), max_buffer ({max_buffer}) >= 1 and "
                             f"max_buffered_levels ({max_buffered_levels}) >= 1")
        self.symbol = symbol
        self.levels = levels
        self.snapshot_limit = snapshot_limit
        self.bands = tuple(bands)
        self._buffer = _Buffer(max_buffer, max_buffered_levels)
        self._book: _Synced | None = None

    @property
    def synced(self) -> bool:
        """Whether the book follows the stream (else events are buffered)."""
        return self._book is not None

    @property
    def update_id(self) -> int | None:
        """The id of the last update applied; None unless synced."""
        return None if self._book is None else self._book.update_id

    @property
    def first_buffered(self) -> int | None:
        """``U`` of the first buffered event: a snapshot may be fetched once it is set."""
        events = self._buffer.events
        return events[0].first_update_id if events else None

    @property
    def buffered(self) -> tuple[int, int]:
        """(events, levels) buffered while waiting for a snapshot."""
        return len(self._buffer.events), self._buffer.levels

    def reset(self) -> None:
        """Forget the book and the buffer (e.g. on a disconnect)."""
        self._buffer.clear()
        self._book = None

    def on_event(self, event: DepthUpdate) -> str | None:
        """Buffer or apply ``event``; :data:`GAP` or :data:`THIN` if the book was dropped."""
        if self._book is not None:
            return self._apply(self._book, event)
        buffer = self._buffer
        if buffer.events:
            last = buffer.events[-1].last_update_id
            if event.last_update_id <= last:
                return None  # old or repeated
            if event.first_update_id != last + 1:
                buffer.clear()  # a gap: what was buffered can no longer be applied
        buffer.append(event)
        return None

    def on_snapshot(self, snapshot: OrderBook, limit: int | None = None) -> str | None:
        """Start from ``snapshot``, a depth answer asked with ``limit`` (at least
        ``levels``; default ``snapshot_limit``): a side with that many levels is bounded.

        None when synced; else :data:`ONE_SIDED`, :data:`CROSSED` or :data:`STALE` (fetch
        another; the buffer is kept), or :data:`THIN` or :data:`CROSSED` (the buffered
        events applied to it left a side thin or the book crossed; the event that did it
        and those after it stay buffered). The buffer is contiguous, so the events applied
        to a snapshot show no gap.
        """
        if not snapshot.bids or not snapshot.asks:
            return ONE_SIDED
        if max(price for price, _ in snapshot.bids) >= min(price for price, _ in snapshot.asks):
            return CROSSED
        buffer = self._buffer
        while buffer.events and buffer.events[0].last_update_id <= snapshot.last_update_id:
            buffer.pop_oldest()
        if buffer.events and buffer.events[0].first_update_id > snapshot.last_update_id + 1:
            return STALE
        book = self._book = _Synced(snapshot, max(limit or self.snapshot_limit, self.levels))
        pending = list(buffer.events)
        buffer.clear()
        for index, event in enumerate(pending):
            reason = self._apply(book, event)
            if reason is not None:
                for later in pending[index + 1:]:
                    buffer.append(later)
                return reason
        return None

    def _apply(self, book: _Synced, event: DepthUpdate) -> str | None:
        if event.last_update_id <= book.update_id:
            return None  # old or repeated
        first = event.first_update_id
        if first > book.update_id + 1 or (first != book.update_id + 1 and not book.spanning):
            return self._drop(event, GAP)
        bids, asks = book.bids, book.asks
        for price, qty in event.bids:
            bids.set(price, qty)
        for price, qty in event.asks:
            asks.set(price, qty)
        bids.trim(book.limit)
        asks.trim(book.limit)
        book.update_id = event.last_update_id
        book.spanning = False
        book.notional = None
        if bids.thin(self.levels) or asks.thin(self.levels):
            return self._drop(event, THIN)
        best_bid, best_ask = bids.best(), asks.best()
        if best_bid is not None and best_ask is not None and -best_bid >= best_ask:
            return self._drop(event, CROSSED)
        return None

    def _drop(self, event: DepthUpdate, reason: str) -> str:
        """Discard the book; ``event`` becomes the first one buffered."""
        self._book = None
        self._buffer.clear()
        self._buffer.append(event)
        return reason

    def notional(self) -> Notional | None:
        """Σ price × quantity of the best ``levels`` known levels a side; None unless synced.

        Computed by :func:`collector.answers.book_notional`, exactly, and kept until the
        next event is applied.
        """
        book = self._book
        if book is None:
            return None
        if book.notional is None:
            bids, asks = book.bids, book.asks
            depth = max(self.levels, len(bids.ranks), len(asks.ranks)) if self.bands \
                else self.levels
            known = OrderBook(self.symbol, bids.top(depth), asks.top(depth), book.update_id)
            book.notional = book_notional(known, self.levels, self.bands,
                                          (bids.boundary is None, asks.boundary is None))
        return book.notional
