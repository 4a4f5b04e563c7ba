"""How each symbol's order book moves: a deterministic function of (seed, symbol, moment).

Nothing evolves in the background and nothing depends on what was asked before, so two
simulators with the same seed agree, and a test can compute any moment's book.  What is
computed is cached per symbol and step, and only for the symbols asked about.

Time.  The clock is cut into steps (``--step-seconds``; Binance's 100 ms at the default)
and each step into ``substeps`` moments.  A symbol changes only on its *active* steps:
every step for the busiest (``symbols.BUSIEST``), else ``active_steps`` of every
``BLOCK_STEPS``, at places drawn anew for each block.  ``index(step)`` counts a symbol's
active steps; every change is keyed by it, so a quiet symbol's book simply stands still
between two of its active steps, and spends no update id.

Best prices.  On each active step (every ``PRICE_EVERY``-th for all but the busiest) a
SHAKE-256 digest of ``seed|symbol|key`` moves the mid up to three ticks either way from
the recorded mid, and draws a spread of one to five ticks.  Prices never go <= 0.

Levels.  Each side is a fixed *ladder* of levels one to three ticks apart, from the best
price the side can ever reach outwards, quantities as the recording's (``SideSpec``): one
level per recorded trade, 20 to 4,900 (``SLACK`` short of Binance's 5,000, for the levels
added near the best).  Past the first ``REACH`` levels the gaps widen evenly, so that a
full ladder reaches ``DEPTH_SPAN`` (5 %) from its start: Binance's busiest books, one
cent a level at the top, hold liquidity well past ±2 % of the price in their 5,000
levels; a thin book (20 levels) stays within a fraction of a per cent.  The best level
is the best price with a quantity of its own, drawn anew on each active step and, for
the busiest symbols, on one side at every moment
(their bookTicker).  Levels between the best price and the ladder's start are hidden.  On
each active step a few levels near the best (within ``REACH`` ladder levels, most within
six) change for 1 to ``LIFETIME`` active steps, then are what they were: a new quantity,
a level removed, or a level added between two of the ladder's.  For the busiest a step
brings one to four such changes, and one step in six or seven a burst of 20 to 139,
which is what Binance's busiest books do (see ``events`` for the events it makes); for
the others none to two.  Past ``REACH``, the ladder never changes.

Update ids.  Each moment that changes a symbol's book gets an id ``UID_STRIDE`` or so
above the last: busiest symbols, every moment; the others, every active step.
"""

from __future__ import annotations

import hashlib
from array import array
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from itertools import product

from .symbols import BLOCK_STEPS, MAX_LEVELS, Level, SymbolSpec

LIFETIME = 50  # active steps a change of a level lasts at most
REACH = 200  # ladder levels from a side's start within which levels change
PRICE_EVERY = 3  # active steps per move of the best prices, but for the busiest
UID_STRIDE = 16
MOVES, SPREADS = range(-3, 4), range(1, 6)  # in ticks
# changes a step brings, busiest symbols: 1 to CALM levels, or on BURST_SHARE steps of 256
# a burst of BURST_MIN to BURST_MIN + BURST_SPAN - 1 (tuned to Binance's BTCUSDT events)
CALM_SPAN, BURST_SHARE, BURST_MIN, BURST_SPAN = 4, 40, 20, 120
SLACK = 100  # levels a side keeps free of 5,000, for the levels added near the best
DEPTH_SPAN = 0.05  # how far from its start a full ladder (4,900 levels) reaches, at least
LONG_SPAN = 600  # steps: a longer diff compares two books, not every step between


def digest(*parts: object, size: int) -> bytes:
    """SHAKE-256 of ``parts`` joined by "|": a longer digest starts with a shorter one."""
    return hashlib.shake_256("|".join(map(str, parts)).encode()).digest(size)


def best_prices(spec: SymbolSpec, move: int, spread: int) -> tuple[int, int]:
    """Best bid and ask in units for a mid ``move`` and a ``spread`` in ticks; 0 for an
    empty side."""
    tick, bid, ask = spec.tick, spec.bid.best, spec.ask.best
    if bid and ask:
        doubled_mid = bid // tick + ask // tick + 2 * move
        best_bid = max(1, (doubled_mid - spread) // 2)
        return best_bid * tick, (best_bid + spread) * tick
    if bid:
        return max(1, bid // tick + move) * tick, 0
    if ask:
        return 0, max(1, ask // tick + move) * tick
    return 0, 0


class ActiveSteps:
    """When each symbol's book changes: on which steps, counted by ``index``."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._positions = lru_cache(maxsize=4096)(self._make_positions)

    def index(self, spec: SymbolSpec, step: int) -> int:
        """How many active steps ``spec``'s symbol has had up to ``step`` (from an origin
        of its own): its book is the same at two steps of the same index."""
        if spec.busy:
            return step
        if not spec.active_steps:
            return 0
        block, place = divmod(step, BLOCK_STEPS)
        positions = self._positions(spec.symbol, block, spec.active_steps)
        return block * spec.active_steps + bisect_right(positions, place)

    def _make_positions(self, symbol: str, block: int, count: int) -> tuple[int, ...]:
        """The places of a block's active steps: ``count`` of ``BLOCK_STEPS``, drawn."""
        draws = digest(self.seed, symbol, "active", block, size=BLOCK_STEPS)
        return tuple(sorted(sorted(range(BLOCK_STEPS), key=draws.__getitem__)[:count]))


class BestLevels:
    """Every symbol's best bid and ask at every moment, and its update id: cheap enough
    to answer for all symbols at once (``ticker/24hr``, ``bookTicker``)."""

    def __init__(self, seed: int, substeps: int, active: ActiveSteps) -> None:
        self.seed, self.substeps, self.active = seed, substeps, active
        self._busy = lru_cache(maxsize=1024)(self._make_busy)

    def prices(self, spec: SymbolSpec, index: int) -> tuple[int, int]:
        """Best bid and ask prices in units at active step ``index``; 0: an empty side."""
        key = index if spec.busy else index // PRICE_EVERY
        move_byte, spread_byte = digest(self.seed, spec.symbol, key, size=2)
        return best_prices(spec, move_byte % 7 - 3, 1 + spread_byte % 5)

    def qtys(self, spec: SymbolSpec, index: int, substep: int = 0) -> tuple[int, int]:
        """Best bid and ask quantities at a moment of active step ``index``."""
        if spec.busy:
            bid_qty, ask_qty, _ = self._busy(spec, index)[substep]
            return bid_qty, ask_qty
        draws = digest(self.seed, spec.symbol, index, "top", size=5)
        return spec.bid.qty(draws[0] << 8 | draws[1]), spec.ask.qty(draws[2] << 8 | draws[3])

    def update_id(self, spec: SymbolSpec, step: int, substep: int) -> int:
        """The book's last update id at a moment."""
        origin = int.from_bytes(digest(spec.symbol, size=4), "big")
        if spec.busy:
            moment = step * self.substeps + substep
            return origin + UID_STRIDE * moment + self._busy(spec, step)[substep][2]
        index = self.active.index(spec, step)
        return origin + UID_STRIDE * index + digest(
            self.seed, spec.symbol, index, "top", size=5)[4] % UID_STRIDE

    def _make_busy(self, spec: SymbolSpec, step: int) -> tuple[tuple[int, int, int], ...]:
        """(bid qty, ask qty, id jitter) at each moment of a busiest symbol's step: both
        quantities drawn at the first, then one side's anew at each, always a change (but
        for a symbol whose recording allows a single quantity)."""
        draws = digest(self.seed, spec.symbol, step, "top", size=4 + 4 * self.substeps)
        qtys = [spec.bid.qty(draws[0] << 8 | draws[1]), spec.ask.qty(draws[2] << 8 | draws[3])]
        moments = [(qtys[0], qtys[1], draws[4] % UID_STRIDE)]
        for substep in range(1, self.substeps):
            jitter, which, high, low = draws[4 + 4 * substep: 8 + 4 * substep]
            slot = 0 if which & 1 else 1  # the bid's quantity, or the ask's
            side = spec.side(is_bid=slot == 0)
            qty = side.qty(high << 8 | low)
            if qty == qtys[slot]:
                qty = side.qty_step * (1 + qty // side.qty_step % side.qty_span)
            qtys[slot] = qty
            moments.append((qtys[0], qtys[1], jitter % UID_STRIDE))
        return tuple(moments)


def depth(busy: bool, burst: bool, draws: bytes) -> int:
    """How many ladder levels below the best a change falls, from 3 bytes of digest:
    within 6 mostly, within 30 (60 in a burst) often, within 150 now and then, and
    within 10 for all but the busiest symbols."""
    spread, high, low = draws
    if not busy:
        return low % 10
    if spread < (60 if burst else 150):
        return low % 6
    if spread < 230:
        return low % (60 if burst else 30)
    return (high << 8 | low) % 150


@dataclass(frozen=True)
class Ladder:
    """One side's standing levels.  Levels are kept as *offsets*: ticks from ``anchor``
    (the best price the side can reach) away from the spread, so both sides sort the same
    way.  Levels from index ``reach`` on never change."""

    anchor: int
    step: int  # units per offset: -tick for bids, +tick for asks
    offsets: array[int]
    qtys: array[int]
    reach: int

    def price(self, offset: int) -> int:
        """The price at ``offset``."""
        return self.anchor + offset * self.step

    def offset(self, price: int) -> int:
        """The offset of ``price``."""
        return (price - self.anchor) // self.step

    def tail(self, count: int) -> list[tuple[int, int]]:
        """The first ``count`` (offset, qty) of the levels that never change."""
        end = min(len(self.offsets), self.reach + max(0, count))
        return list(zip(self.offsets[self.reach:end], self.qtys[self.reach:end]))


@dataclass(frozen=True)
class Change:
    """A level of one side set to ``qty`` (0: removed) from its active step until the
    active step ``until``."""

    is_bid: bool
    offset: int
    qty: int
    until: int


class Ladders:
    """Each side's ladder, and the changes made to it near the best levels."""

    def __init__(self, seed: int, best: BestLevels) -> None:
        self.seed, self.best = seed, best
        self.ladder = lru_cache(maxsize=64)(self._make_ladder)
        self.changes = lru_cache(maxsize=16384)(self._make_changes)
        self.near = lru_cache(maxsize=256)(self._make_near)

    def _make_ladder(self, spec: SymbolSpec, is_bid: bool) -> Ladder:
        bests = [best_prices(spec, move, spread) for move, spread in product(MOVES, SPREADS)]
        anchor = max(bid for bid, _ in bests) if is_bid else min(ask for _, ask in bests)
        step = -spec.tick if is_bid else spec.tick
        count = min(spec.max_levels, MAX_LEVELS - SLACK)
        draws = digest(self.seed, spec.symbol, "bids" if is_bid else "asks", size=3 * count)
        offsets, qtys = array("q"), array("q")
        offset = 0
        # past REACH, gaps widen evenly so that a full ladder ends DEPTH_SPAN from its start
        stretch = max(1.0, anchor * DEPTH_SPAN / spec.tick / (2 * max(1, count - REACH)))
        for index in range(0, 3 * count, 3):
            if index:
                gap = 1 + draws[index] % 3
                offset += gap if index < 3 * REACH else max(gap, round(gap * stretch))
            if anchor + offset * step <= 0:
                break
            offsets.append(offset)
            qtys.append(spec.side(is_bid).qty(draws[index + 1] << 8 | draws[index + 2]))
        return Ladder(anchor, step, offsets, qtys, min(len(offsets), REACH))

    def _make_changes(self, spec: SymbolSpec, index: int) -> tuple[Change, ...]:
        """The changes that start at active step ``index``, nearest the best levels."""
        head = digest(self.seed, spec.symbol, index, "changes", size=2)
        burst = spec.busy and head[0] < BURST_SHARE
        if burst:
            count = BURST_MIN + head[1] % BURST_SPAN
        else:
            count = 1 + head[1] % CALM_SPAN if spec.busy else head[1] % 3
        body = digest(self.seed, spec.symbol, index, "changes", size=2 + 8 * count)[2:]
        bests = self.best.prices(spec, index)
        changes = (self._change(spec, index, bests, burst, body[at: at + 8])
                   for at in range(0, 8 * count, 8))
        return tuple(change for change in changes if change is not None)

    def _change(self, spec: SymbolSpec, index: int, bests: tuple[int, int], burst: bool,
                draws: bytes) -> Change | None:
        """One change, from its 8 bytes of digest: which side, how deep, what, how long."""
        is_bid = not draws[0] & 1
        best = bests[0 if is_bid else 1]
        ladder = self.ladder(spec, is_bid) if best else None
        if ladder is None:
            return None
        top = ladder.offset(best)
        first = bisect_right(ladder.offsets, top)
        if first >= ladder.reach:
            return None
        place = first + depth(spec.busy, burst, draws[1:4]) % (ladder.reach - first)
        offset, qty = ladder.offsets[place], spec.side(is_bid).qty(draws[5] << 8 | draws[6])
        if draws[4] % 3 == 0:
            qty = 0  # removed
        elif draws[4] % 3 == 1:
            above = ladder.offsets[place - 1] if place else -1
            if offset - 1 > max(above, top):
                offset -= 1  # added between two levels
        return Change(is_bid, offset, qty, index + 1 + draws[7] % LIFETIME)

    def _make_near(self, spec: SymbolSpec, index: int) -> tuple[list[tuple[int, int]], ...]:
        """Each side's levels between its best and its ladder's ``reach``, as (offset, qty)
        sorted outwards: the ladder's, with the changes still on at ``index``."""
        changed: tuple[dict[int, int], dict[int, int]] = ({}, {})
        for start in range(index - LIFETIME + 1, index + 1):
            for change in self.changes(spec, start):
                if change.until > index:
                    changed[0 if change.is_bid else 1][change.offset] = change.qty
        bests = self.best.prices(spec, index)
        return (self._near_side(spec, True, bests[0], changed[0]),
                self._near_side(spec, False, bests[1], changed[1]))

    def _near_side(self, spec: SymbolSpec, is_bid: bool, best: int,
                   changed: dict[int, int]) -> list[tuple[int, int]]:
        if not best:
            return []
        ladder = self.ladder(spec, is_bid)
        top = ladder.offset(best)
        first, end = bisect_right(ladder.offsets, top), ladder.reach
        levels = dict(zip(ladder.offsets[first:end], ladder.qtys[first:end]))
        for offset, qty in changed.items():
            if offset > top:
                if qty:
                    levels[offset] = qty
                else:
                    levels.pop(offset, None)
        return sorted(levels.items())


class BookModel:
    """Every symbol's book at every moment; read-only but for its caches (thread-safe)."""

    def __init__(self, seed: int, substeps: int) -> None:
        self.active = ActiveSteps(seed)
        self.best = BestLevels(seed, substeps, self.active)
        self.ladders = Ladders(seed, self.best)
        self._changed = lru_cache(maxsize=4096)(self._make_changed)

    def update_id(self, spec: SymbolSpec, step: int, substep: int) -> int:
        """The book's last update id at a moment."""
        return self.best.update_id(spec, step, substep)

    def levels(self, spec: SymbolSpec, step: int, substep: int,
               limit: int) -> tuple[list[Level], list[Level]]:
        """Bids best (highest) first and asks best (lowest) first, ``limit`` at most."""
        index = self.active.index(spec, step)
        tops = list(zip(self.best.prices(spec, index), self.best.qtys(spec, index, substep)))
        if limit == 1:
            return ([tops[0]] if tops[0][0] else [], [tops[1]] if tops[1][0] else [])
        near = self.ladders.near(spec, index) if tops[0][0] or tops[1][0] else ([], [])
        sides: list[list[Level]] = []
        for is_bid, (best, qty), levels in zip((True, False), tops, near):
            ladder = self.ladders.ladder(spec, is_bid) if best else None
            if ladder is None:
                sides.append([])
                continue
            shown = [(ladder.offset(best), qty), *levels[:limit - 1]]
            shown += ladder.tail(limit - len(shown))
            sides.append([(ladder.price(offset), qty) for offset, qty in shown])
        return sides[0], sides[1]

    def _shown(self, spec: SymbolSpec, index: int, is_bid: bool) -> dict[int, int]:
        """{offset: qty} of a side's levels that may change, at active step ``index``."""
        best = self.best.prices(spec, index)[0 if is_bid else 1]
        if not best:
            return {}
        ladder = self.ladders.ladder(spec, is_bid)
        qty = self.best.qtys(spec, index)[0 if is_bid else 1]
        return {ladder.offset(best): qty,
                **dict(self.ladders.near(spec, index)[0 if is_bid else 1])}

    def _difference(self, spec: SymbolSpec, old: int, new: int) -> set[tuple[bool, int]]:
        """The (side, offset) of every level that differs between two active steps."""
        keys = set()
        for is_bid in (True, False):
            before, after = self._shown(spec, old, is_bid), self._shown(spec, new, is_bid)
            keys |= {(is_bid, offset) for offset in before.keys() | after.keys()
                     if before.get(offset, 0) != after.get(offset, 0)}
        return keys

    def _make_changed(self, spec: SymbolSpec, index: int) -> frozenset[tuple[bool, int]]:
        """The levels active step ``index`` touches: those that differ from the step
        before, and for the busiest the best levels of the step before, whose quantities
        moved at every moment since."""
        keys = self._difference(spec, index - 1, index)
        if spec.busy:
            for is_bid, best in zip((True, False), self.best.prices(spec, index - 1)):
                if best:
                    keys.add((is_bid, self.ladders.ladder(spec, is_bid).offset(best)))
        return frozenset(keys)

    def diff(self, spec: SymbolSpec, since: int, step: int
             ) -> tuple[list[Level], list[Level]] | None:
        """The levels touched after the first moment of step ``since`` up to the first
        of ``step``, each with its quantity then (0: gone), bids best first and asks best
        first; None when the symbol had no active step in between (no update id was
        used)."""
        old, new = self.active.index(spec, since), self.active.index(spec, step)
        if new <= old:
            return None
        keys: Iterable[tuple[bool, int]]
        if new - old > LONG_SPAN:
            keys = self._difference(spec, old, new) | self._changed(spec, old + 1)
        else:
            keys = set().union(*(self._changed(spec, index) for index in range(old + 1, new + 1)))
        sides: tuple[list[Level], list[Level]] = ([], [])
        for is_bid, side in zip((True, False), sides):
            offsets = sorted(offset for key_side, offset in keys if key_side == is_bid)
            if offsets:
                ladder = self.ladders.ladder(spec, is_bid)
                shown = self._shown(spec, new, is_bid)
                side.extend((ladder.price(offset), shown.get(offset, 0)) for offset in offsets)
        return sides
