"""The whole market's maps: chunks shared between versions, and changes recorded by
construction (``collector.chunked``, ``collector.tracked``)."""

from __future__ import annotations

import pytest

from collector.chunked import ABSENT, CHUNK, ChunkedMap, Layout, chunked
from collector.tracked import TrackedMap

KEYS = [f"S{n}" for n in range(CHUNK * 2 + 3)]


def test_a_chunked_map_is_an_ordinary_read_only_mapping() -> None:
    layout = Layout(KEYS)
    values = {key: n for n, key in enumerate(KEYS) if n % 3}
    held = ChunkedMap.of(layout, values)
    assert held == values and dict(held) == values and len(held) == len(values)
    assert list(held) == [k for k in KEYS if k in values]  # the layout's order
    assert held["S1"] == 1 and "S0" not in held and held.get("S0") is None
    with pytest.raises(KeyError):
        _ = held["S0"]  # in the layout, not held
    with pytest.raises(KeyError):
        _ = held["nope"]  # not in the layout
    assert repr(ChunkedMap.of(Layout(["A"]), {"A": 1})) == "ChunkedMap({'A': 1})"
    assert list(held.chunk_items(2)) == [(k, values[k]) for k in KEYS[CHUNK * 2:]
                                         if k in values]


def test_an_update_copies_the_chunks_it_touches_and_shares_the_others() -> None:
    layout = Layout(KEYS)
    first = ChunkedMap.of(layout, dict.fromkeys(KEYS, 0))
    later = first.updated({KEYS[-1]: 1, "not in the layout": 5})
    assert [a is b for a, b in zip(first.chunks, later.chunks)] == [True, True, False]
    assert later[KEYS[-1]] == 1 and first[KEYS[-1]] == 0 and len(later) == len(KEYS)
    dropped = later.updated({KEYS[0]: ABSENT})
    assert KEYS[0] not in dropped and len(dropped) == len(KEYS) - 1
    assert later.updated({KEYS[-1]: 1}) is later  # the same value: no change, no copy
    assert later.updated({}) is later


def test_chunked_keeps_a_map_of_its_layout_and_converts_others() -> None:
    held = ChunkedMap.of(Layout(["A", "B"]), {"A": 1})
    assert chunked(held) is held and chunked(held, held.layout) is held
    other = chunked(held, Layout(["B", "A"]))
    assert other is not held and list(other.layout.keys) == ["B", "A"] and other == {"A": 1}
    assert list(chunked({"B": 2, "A": 1})) == ["B", "A"]


def test_a_tracked_map_notes_each_change_once_and_only_changes() -> None:
    tracked: TrackedMap[str, int] = TrackedMap()
    tracked.replace({"A": 0, "B": 0})
    start = tracked.version
    assert tracked.changes_since(start - 1) is None  # the reset: everything may have changed
    assert tracked.changes_since(start) == {}
    tracked["A"] = 0  # the value it held: no change
    assert tracked.version == start
    tracked.add("A")
    tracked["C"] = 5
    tracked.add("A", 2)
    del tracked["B"]
    assert tracked.changes_since(start) == {"B": ABSENT, "A": 3, "C": 5}  # latest first
    middle = tracked.version - 1
    assert tracked.changes_since(middle) == {"B": ABSENT}
    assert tracked.copy() == {"A": 3, "C": 5} and len(tracked) == 2 and "C" in tracked
    assert tracked.pop("C") == 5 and tracked.changes_since(tracked.version - 1) == {"C": ABSENT}
