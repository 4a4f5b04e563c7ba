"""The stream state's records, made from what changed since the last ones.

A :class:`Publication` holds the records a view last gave and, for each
:class:`~collector.tracked.TrackedMap` they were made of, the version read. Under the
state's lock, :meth:`Publication.read` copies only the entries changed since then
(:class:`ViewParts`); outside it, :func:`build_view` applies them to the
:class:`~collector.chunked.ChunkedMap` objects of the last records, so a new record
shares every chunk that did not change, and is the very same record when nothing in it
did. Pure: no I/O, no lock of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from collector import answers
from collector.chunked import ABSENT, ChunkedMap, Layout
from collector.errors import NotAttempted, NotSynced, StreamUnavailable
from collector.q5 import SpreadMap
from collector.records import Notional, Outcome, Spreads, StreamHealth
from collector.tracked import TrackedMap

if TYPE_CHECKING:
    from collector.stream_books import Books
    from collector.stream_connections import Connections
    from collector.stream_tops import Tops

# the whole-market maps (a layout's worth of symbols or streams) and the small ones
_LARGE = ("tops", "extremes", "updates", "messages")
_SMALL = ("reconnects", "resyncs", "states")

Changes = dict[Any, Any] | None  # changed key → value (ABSENT: dropped); None: all anew

UNRANKED: Outcome[Any] = Outcome(None, NotAttempted("stream",
                                                     "no ranking yet to pick symbols from"))
DOWN: Outcome[Any] = Outcome(None, StreamUnavailable("stream", "not connected"))


@dataclass(frozen=True, slots=True)
class StreamView:
    """What the streams give a snapshot."""

    spreads: Outcome[Spreads]
    books: Outcome[Mapping[str, Notional]]
    health: StreamHealth


@dataclass(slots=True)
class ViewParts:
    """What changed since the last view, copied under the state's lock."""

    layouts: tuple[Layout, Layout]  # (the symbols followed, their streams)
    large: dict[str, tuple[int, Changes, dict[Any, Any] | None]]  # name → (version, ...)
    small: dict[str, tuple[int, dict[Any, Any]]]  # name → (version, every item) if changed


@dataclass(slots=True)
class Publication:  # pylint: disable=too-many-instance-attributes
    """The last records and the versions of the maps they were made of."""

    layouts: tuple[Layout, Layout] | None = None
    versions: dict[str, int] = field(default_factory=dict)
    maps: dict[str, ChunkedMap[Any]] = field(default_factory=dict)
    small: dict[str, dict[Any, Any]] = field(default_factory=dict)
    deltas: tuple[object, ChunkedMap[Any]] | None = None  # (Q5's deltas, as a map)
    spreads: Spreads | None = None
    health: StreamHealth | None = None
    all_up: bool = False
    kept_outcome: tuple[Spreads | None, list[str], Outcome[Spreads]] = (None, [], DOWN)

    def outcome(self, spreads: Spreads, required: Sequence[str]) -> Outcome[Spreads]:
        """The spreads' outcome: an error names the ``required`` symbols still missing; the
        same record while the same (readers compare by identity)."""
        missing = [s for s in required if s not in spreads.tops]
        kept = self.kept_outcome
        if kept[0] is not spreads or kept[1] != missing:
            error = NotSynced("stream", "no best bid/ask pushed yet for " + " ".join(missing)) \
                if missing else None
            kept = self.kept_outcome = (spreads, missing, Outcome(spreads, error))
        return kept[2]

    def read(self, layouts: tuple[Layout, Layout], tops: Tops, links: Connections,
             books: Books) -> ViewParts:
        """What changed since the last view: under the state's lock, costing what changed."""
        if layouts is not self.layouts:
            self.versions.clear()  # a new set of symbols: everything anew
        tracked: dict[str, TrackedMap[Any, Any]] = {
            "tops": tops.tops, "extremes": tops.extremes, "updates": tops.updates,
            "messages": links.messages, "reconnects": links.reconnects,
            "resyncs": books.resyncs, "states": books.states}
        large = {}
        for name in _LARGE:
            source, seen = tracked[name], self.versions.get(name, -1)
            if source.version != seen:
                changes = source.changes_since(seen)
                large[name] = (source.version, changes,
                               source.copy() if changes is None else None)
        small = {name: (tracked[name].version, tracked[name].copy()) for name in _SMALL
                 if tracked[name].version != self.versions.get(name, -1)}
        return ViewParts(layouts, large, small)


def build_view(kept: Publication, parts: ViewParts, deltas: SpreadMap, all_up: bool,
               at: float) -> tuple[Spreads, StreamHealth]:
    """The records of this view, the last ones' where nothing in them changed."""
    if parts.layouts is not kept.layouts:
        kept.layouts, kept.maps, kept.deltas = parts.layouts, {}, None
        kept.spreads = kept.health = None
    changed = _apply_changes(kept, parts, deltas)
    maps = kept.maps
    if kept.spreads is None or changed & {"tops", "extremes", "deltas"} \
            or kept.spreads.at != at:
        assert kept.deltas is not None
        kept.spreads = Spreads(tops=maps["tops"], spreads=maps["spreads"],
                               deltas=kept.deltas[1], at=at, minimum=maps["minimum"],
                               maximum=maps["maximum"])
    if kept.health is None or changed - {"tops", "extremes"} or kept.all_up != all_up:
        small = kept.small
        kept.all_up = all_up
        kept.health = StreamHealth(
            connected=all_up, reconnects=small["reconnects"], messages=maps["messages"],
            last_message_age=None,  # each view's own
            synced={s: state[0] for s, state in small["states"].items()},
            resyncs=small["resyncs"], updates=maps["updates"])
    return kept.spreads, kept.health


def _apply_changes(kept: Publication, parts: ViewParts, deltas: SpreadMap) -> set[str]:
    """The kept maps with what changed; the names of those that did."""
    symbols, streams = parts.layouts
    changed = set(parts.large) | set(parts.small)
    for name, (version, changes, everything) in parts.large.items():
        kept.versions[name] = version
        layout = streams if name == "messages" else symbols
        if name == "tops":
            _apply_tops(kept, layout, changes, everything)
        elif name == "extremes":
            _apply(kept, "minimum", layout, _part(changes, everything, 0), changes is None)
            _apply(kept, "maximum", layout, _part(changes, everything, 1), changes is None)
        else:
            _apply(kept, name, layout, changes if changes is not None else everything,
                   changes is None)
    for name, (version, items) in parts.small.items():
        kept.versions[name], kept.small[name] = version, items
    if kept.deltas is None or kept.deltas[0] is not deltas:
        values = {s: deltas.get(s) for s in symbols.keys}
        previous = kept.deltas[1] if kept.deltas is not None else ChunkedMap.of(symbols, {})
        kept.deltas = (deltas, previous.updated(values))
        if kept.deltas[1] is not previous:
            changed.add("deltas")
    return changed


def _part(changes: Changes, everything: dict[Any, Any] | None,
          index: int) -> Mapping[str, Any]:
    """One side of (minimum, maximum) pairs, changes or all."""
    items = changes if changes is not None else everything or {}
    return {s: v if v is ABSENT else v[index] for s, v in items.items()}


def _apply(kept: Publication, name: str, layout: Layout, values: Mapping[str, Any] | None,
           anew: bool = False) -> None:
    """The map ``name`` with ``values`` (every value when ``anew`` or not yet made)."""
    values = values or {}
    previous = kept.maps.get(name)
    if previous is None or anew:
        kept.maps[name] = ChunkedMap.of(layout, {k: v for k, v in values.items()
                                                 if v is not ABSENT})
    else:
        kept.maps[name] = previous.updated(values)


def _apply_tops(kept: Publication, layout: Layout, changes: Changes,
                everything: dict[Any, Any] | None) -> None:
    """The best bid/asks and their spreads (every symbol followed has one: None without)."""
    items = changes if changes is not None else everything or {}
    tops = {s: v if v is ABSENT else v[1] for s, v in items.items()}
    spreads: dict[str, Decimal | None] = {
        s: None if top is ABSENT else answers.spread(top) for s, top in tops.items()}
    if changes is None or "tops" not in kept.maps:
        kept.maps["tops"] = ChunkedMap.of(layout, tops)
        kept.maps["spreads"] = ChunkedMap.of(layout, {**dict.fromkeys(layout.keys), **spreads})
    else:
        kept.maps["tops"] = kept.maps["tops"].updated(tops)
        kept.maps["spreads"] = kept.maps["spreads"].updated(spreads)
