"""Unit tests for pytest_swarm.stats.snapshot: exact, associative merging and a validated wire
form."""

from __future__ import annotations

import doctest
from collections import Counter
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from merge_implementations import merge_implementation  # noqa: F401  (autouse)

import pytest_swarm.stats.snapshot as snapshot_module
from pytest_swarm.stats.histogram import HIGHEST_US, Histogram, pack
from pytest_swarm.stats.snapshot import (
    MAX_ERRORS,
    MAX_NAMES,
    MAX_TEXT,
    OTHER_KEY,
    OTHER_NAME,
    Entry,
    Snapshot,
)

NAMES = ["GET /", "POST /cart", "GET /items/:id", "test_browse"]
KINDS = ["HTTPError", "ConnectionError", "Failure"]
MESSAGES = ["500 Internal Server Error", "refused", ""]

latency = st.one_of(st.integers(0, 5_000_000), st.sampled_from([0, HIGHEST_US, HIGHEST_US + 1]))


@st.composite
def snapshots(draw: Any) -> tuple[Snapshot, dict[str, list[int]]]:
    """A random snapshot and, per name, the raw values it was built from."""
    snap = Snapshot()
    raw: dict[str, list[int]] = {}
    for name in draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=3)):
        values = draw(st.lists(latency, max_size=8))
        entry = snap.entry(name)
        entry.hist.record_values(values)
        entry.failures = draw(st.integers(0, len(values)))
        raw[name] = values
    for _ in range(draw(st.integers(0, 4))):
        snap.add_error(
            draw(st.sampled_from(NAMES)),
            draw(st.sampled_from(KINDS)),
            draw(st.sampled_from(MESSAGES)),
            draw(st.sampled_from(["", "Traceback A", "Traceback B"])),
            draw(st.integers(1, 5)),
        )
    for name in snap.entries:
        snap.entries[name].size = draw(st.integers(0, 10**12))
    snap.iterations = draw(st.integers(0, 100))
    snap.iteration.record_values(draw(st.lists(latency, max_size=8)))
    snap.dropped = draw(st.integers(0, 100))
    snap.late = draw(st.integers(0, 100))
    snap.users = draw(st.integers(0, 50))
    snap.setup_failures = draw(st.integers(0, 3))
    return snap, raw


def merged(*snaps: Snapshot) -> Snapshot:
    out = Snapshot()
    for s in snaps:
        out.merge(s)
    return out


def wire_copy(snap: Snapshot) -> Snapshot:
    return Snapshot.from_wire(snap.to_wire())


def test_module_doctests() -> None:
    assert doctest.testmod(snapshot_module).failed == 0


# -- merging --------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(st.lists(snapshots(), min_size=1, max_size=5))
def test_merge_is_exact(items: list[tuple[Snapshot, dict[str, list[int]]]]) -> None:
    snaps = [s for s, _ in items]
    before = [s.to_wire() for s in snaps]
    total = merged(*snaps)
    # Each name's histogram is the histogram of all its values; failures add up.
    for name in {n for _, raw in items for n in raw}:
        expected = Histogram()
        expected.record_values([v for _, raw in items for v in raw.get(name, [])])
        assert total.entries[name].hist == expected
        assert total.entries[name].failures == sum(
            s.entries[name].failures for s in snaps if name in s.entries
        )
    assert set(total.entries) == {n for s in snaps for n in s.entries}
    # Error counts add up per (name, kind, message); the first non-empty sample is kept.
    counts: Counter[tuple[str, str, str]] = Counter()
    for s in snaps:
        for key, group in s.errors.items():
            counts[key] += group.count
    assert {k: g.count for k, g in total.errors.items()} == dict(counts)
    for key, group in total.errors.items():
        samples = [s.errors[key].sample for s in snaps if key in s.errors]
        assert group.sample == next((x for x in samples if x), "")
        assert group.key == key
    assert total.iterations == sum(s.iterations for s in snaps)
    assert total.setup_failures == sum(s.setup_failures for s in snaps)
    assert total.users == snaps[-1].users  # a level: the latest wins
    # The inputs are not modified, nor shared with the result.
    assert [s.to_wire() for s in snaps] == before
    for entry in total.entries.values():
        entry.hist.record_values([1])
        entry.failures += 1
    for group in total.errors.values():
        group.count += 1
    assert [s.to_wire() for s in snaps] == before


@settings(max_examples=30, deadline=None)
@given(snapshots(), snapshots(), snapshots())
def test_merge_is_associative(a: Any, b: Any, c: Any) -> None:
    (a, _), (b, _), (c, _) = a, b, c
    left = merged(merged(a, b), c)
    bc = merged(b, c)
    right = merged(a, bc)
    assert left == right
    assert left == merged(a, b, c)


@settings(max_examples=30, deadline=None)
@given(st.lists(snapshots(), min_size=2, max_size=4), st.randoms(use_true_random=False))
def test_merge_order_does_not_change_counts(items: list[Any], rnd: Any) -> None:
    snaps = [s for s, _ in items]
    shuffled = list(snaps)
    rnd.shuffle(shuffled)
    one, other = merged(*snaps), merged(*shuffled)
    # Everything but the users level (latest wins) and the kept sample (first wins) commutes.
    assert one.entries == other.entries
    assert {k: g.count for k, g in one.errors.items()} == {
        k: g.count for k, g in other.errors.items()
    }
    assert (one.iterations, one.setup_failures) == (other.iterations, other.setup_failures)


@settings(max_examples=40, deadline=None)
@given(snapshots())
def test_copy_and_total(item: Any) -> None:
    snap, raw = item
    clone = snap.copy()
    assert clone == snap
    clone.entry("new").hist.record_values([1])
    clone.iterations += 1
    assert "new" not in snap.entries
    expected = Histogram()
    expected.record_values([v for values in raw.values() for v in values])
    total = snap.total()
    assert total.hist == expected
    assert total.failures == sum(e.failures for e in snap.entries.values())


def test_empty() -> None:
    assert Snapshot().empty
    s = Snapshot()
    s.users = 5
    assert s.empty  # a users level alone carries no statistics
    s.iterations = 1
    assert not s.empty
    e = Snapshot()
    e.add_error("x", "K", "m", "")
    assert not e.empty


def test_add_error_keeps_first_non_empty_sample() -> None:
    s = Snapshot()
    s.add_error("n", "K", "m", "")
    s.add_error("n", "K", "m", "first")
    s.add_error("n", "K", "m", "second", count=3)
    group = s.errors[("n", "K", "m")]
    assert (group.count, group.sample) == (5, "first")


# -- wire form ------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(snapshots())
def test_wire_round_trip(item: Any) -> None:
    snap, _ = item
    assert wire_copy(snap) == snap
    packed = msgpack.unpackb(msgpack.packb(snap.to_wire()))
    assert Snapshot.from_wire(packed) == snap


def test_wire_truncates_long_samples() -> None:
    # A traceback can carry a whole response body: only MAX_TEXT of it is sent.
    s = Snapshot()
    s.add_error("n", "K", "m", "x" * (MAX_TEXT * 100))
    wire = s.to_wire()
    assert len(wire["x"][0][4]) == MAX_TEXT
    assert Snapshot.from_wire(wire).errors[("n", "K", "m")].sample == "x" * MAX_TEXT
    # ... and a peer that sends more is truncated on receipt.
    wire["x"][0][4] = "y" * (MAX_TEXT + 1)
    assert Snapshot.from_wire(wire).errors[("n", "K", "m")].sample == "y" * MAX_TEXT


def test_wire_accepts_the_bounds_exactly() -> None:
    s = Snapshot()
    for i in range(MAX_NAMES):
        s.entry(f"n{i}")
    for i in range(MAX_ERRORS):
        s.add_error("n", "K", f"m{i}", "")
    s.add_error("x" * MAX_TEXT, "K" * MAX_TEXT, "m" * MAX_TEXT, "")
    s.errors.pop(("n", "K", "m0"))
    assert wire_copy(s) == s


def test_to_wire_folds_too_many_names_keeping_every_count() -> None:
    # Default names carry the path: ids in URLs can make them unbounded. The receiver rejects
    # more than MAX_NAMES, so the sender folds the least busy ones instead of being refused.
    s = Snapshot()
    for i in range(MAX_NAMES + 10):
        e = s.entry(f"GET /items/{i}")
        e.hist.record_values([i + 1] * (1 + i % 3))
        e.failures = i % 2
    s.entry(OTHER_NAME).hist.record_values([7])  # an existing fold is merged into, not lost
    wire = s.to_wire()
    back = Snapshot.from_wire(wire)
    assert len(back.entries) == MAX_NAMES
    assert back.total() == s.total()
    # The busiest names are the ones kept.
    kept = [e.hist.total for n, e in back.entries.items() if n != OTHER_NAME]
    assert min(kept) >= max(e.hist.total for n, e in s.entries.items() if n not in back.entries)
    assert len(s.entries) == MAX_NAMES + 11  # to_wire does not modify the snapshot


def test_to_wire_folds_too_many_error_groups_keeping_every_count() -> None:
    # Error groups add up over intervals and workers: a run's totals can exceed what one
    # message may carry.
    s = Snapshot()
    for i in range(MAX_ERRORS + 20):
        s.add_error("GET /", "HTTPError", f"404 item {i}", f"tb {i}" if i % 5 else "", 1 + i % 4)
    s.add_error(*OTHER_KEY, "", count=5)
    back = Snapshot.from_wire(s.to_wire())
    assert len(back.errors) == MAX_ERRORS
    assert sum(g.count for g in back.errors.values()) == sum(g.count for g in s.errors.values())
    # The most frequent groups are the ones kept by message.
    kept = [g for k, g in back.errors.items() if k != OTHER_KEY]
    assert min(g.count for g in kept) >= max(
        g.count for k, g in s.errors.items() if k not in back.errors
    )
    assert back.errors[OTHER_KEY].sample.startswith("tb ")
    assert len(s.errors) == MAX_ERRORS + 21


def test_fold_errors_in_place() -> None:
    s = Snapshot()
    for i in range(MAX_ERRORS):
        s.add_error("n", "K", f"m{i}", "", count=2)
    s.fold_errors()
    assert len(s.errors) == MAX_ERRORS and OTHER_KEY not in s.errors  # within bounds: no-op
    s.add_error("n", "K", "one more", "tb")
    s.fold_errors()
    assert len(s.errors) == MAX_ERRORS
    assert ("n", "K", "one more") not in s.errors  # the least frequent went
    assert s.errors[OTHER_KEY].count == 2 + 1
    assert sum(g.count for g in s.errors.values()) == 2 * MAX_ERRORS + 1


def _valid() -> dict[str, Any]:
    s = Snapshot()
    s.entry("GET /").hist.record_values([1000, 2000])
    s.entry("GET /").failures = 1
    s.add_error("GET /", "HTTPError", "500", "tb")
    s.iterations, s.users, s.setup_failures = 2, 3, 0
    return s.to_wire()


def _set(key: str, value: Any) -> dict[str, Any]:
    wire = _valid()
    wire[key] = value
    return wire


def _blob(*hists: Histogram) -> bytes:
    """The histograms of a delta's entries, then their coarse total and the (empty) iteration
    histogram, as the wire packs them."""
    total = Histogram()
    for h in hists:
        total.merge(h)
    return pack([*hists, total.coarse(), Histogram()])


def _entry(failures: Any = 0, name: Any = "GET /") -> dict[str, Any]:
    return _set("e", [[name], [failures], _blob(HIST), [0]])


def _group(item: Any) -> dict[str, Any]:
    return _set("x", [item])


def _names(n: int) -> dict[str, Any]:
    return _set("e", [[f"n{i}" for i in range(n)], [0] * n, _blob(*[Histogram()] * n), [0] * n])


def _groups(n: int) -> dict[str, Any]:
    return _set("x", [["n", "K", f"m{i}", 1, ""] for i in range(n)])


HIST = Histogram()
HIST.record_values([1000, 2000])


def _scaled_total(**figures: int) -> Histogram:
    """HIST's coarse total with some figure changed (still a valid histogram on its own)."""
    total = HIST.coarse()
    for name, value in figures.items():
        setattr(total, name, value)
    return total


def _total_with(**figures: int) -> dict[str, Any]:
    return _set("e", [["GET /"], [0], pack([HIST, _scaled_total(**figures), Histogram()]), [0]])


OTHER = Histogram()
OTHER.record_values([3000])
LONG = "x" * (MAX_TEXT + 1)

MALFORMED: dict[str, Any] = {
    "not a dict": [1, 2],
    "None": None,
    "missing field": {k: v for k, v in _valid().items() if k != "s"},
    "extra field": {**_valid(), "z": 0},
    "entries as a dict": _set("e", {"GET /": [HIST.to_wire(), 0]}),
    "entries of 3": _set("e", [["GET /"], [0], _blob(HIST)]),
    "names not a list": _set("e", [("GET /",), [0], _blob(HIST), [0]]),
    "fewer failures than names": _set("e", [["GET /", "b"], [0], _blob(HIST, HIST), [0, 0]]),
    "too many names": _names(MAX_NAMES + 1),
    "errors not a list": _set("x", {}),
    "too many error groups": _groups(MAX_ERRORS + 1),
    "negative iterations": _set("i", -1),
    "float users": _set("u", 1.0),
    "bool setup failures": _set("s", True),
    "string iterations": _set("i", "2"),
    "non-string name": _entry(name=5),
    "long name": _entry(name=LONG),
    "histograms not bytes": _set("e", [["GET /"], [0], "hist", [0]]),
    "bad histogram blob": _set("e", [["GET /"], [0], bytes(8), [0]]),
    "no total in the blob": _set("e", [["GET /"], [0], pack([HIST, Histogram()]), [0]]),
    "no iteration histogram": _set("e", [["GET /"], [0], pack([HIST, HIST.coarse()]), [0]]),
    "total of other values": _set("e", [["GET /"], [0], pack([HIST, OTHER, Histogram()]), [0]]),
    "one histogram too many": _set("e", [["GET /"], [0], _blob(HIST, HIST), [0]]),
    "failures above count": _entry(3),
    "negative failures": _entry(-1),
    "float failures": _entry(1.0),
    "bool failures": _entry(True),
    "group not a list": _group(("n", "K", "m", 1, "")),
    "group of 4": _group(["n", "K", "m", 1]),
    "long group name": _group([LONG, "K", "m", 1, ""]),
    "long kind": _group(["n", LONG, "m", 1, ""]),
    "long message": _group(["n", "K", LONG, 1, ""]),
    "non-string kind": _group(["n", None, "m", 1, ""]),
    "non-string sample": _group(["n", "K", "m", 1, None]),
    "zero count": _group(["n", "K", "m", 0, ""]),
    "negative count": _group(["n", "K", "m", -2, ""]),
    "float count": _group(["n", "K", "m", 1.5, ""]),
    "bool count": _group(["n", "K", "m", True, ""]),
    # Content sizes (one per entry) and the open model's dropped count.
    "no sizes": _set("e", [["GET /"], [0], _blob(HIST), []]),
    "sizes not a list": _set("e", [["GET /"], [0], _blob(HIST), 0]),
    "negative size": _set("e", [["GET /"], [0], _blob(HIST), [-1]]),
    "float size": _set("e", [["GET /"], [0], _blob(HIST), [1.0]]),
    "negative dropped": _set("d", -1),
    "bool dropped": _set("d", False),
    "negative late": _set("l", -3),
    "string late": _set("l", "1"),
    # Issue 8 (wire validation): a name twice would be merged twice into one row.
    "duplicate names": _set("e", [["GET /", "GET /"], [0, 0], _blob(HIST, HIST), [0, 0]]),
    # The coarse total checked by every figure, not by its count only.
    "total with another sum": _total_with(sum_us=3001),
    "total with another min": _total_with(min_us=1001),
    "total with another max": _total_with(max_us=2001),
}


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
def test_from_wire_rejects_malformed(data: Any) -> None:
    with pytest.raises(ValueError, match=r"snapshot|histogram"):
        Snapshot.from_wire(data)


def test_sizes_iterations_and_dropped_travel_and_merge() -> None:
    # What the reports' content-size column and the open model's figures are built from.
    a, b = Snapshot(), Snapshot()
    a.entry("GET /").hist.record_values([1000])
    a.entry("GET /").size = 120
    a.iteration.record_values([5000])
    a.dropped = 2
    a.late = 4
    b.entry("GET /").hist.record_values([2000])
    b.entry("GET /").size = 80
    b.iteration.record_values([900_000])
    b.dropped = 1
    both = wire_copy(a)
    both.merge_wire(snapshot_module.check_wire(b.to_wire()))
    assert both.entries["GET /"].size == 200
    assert both.iteration.total == 2 and both.iteration.max_us >= 900_000
    assert both.dropped == 3 and both.late == 4
    assert not Snapshot(dropped=1).empty and not b.copy().empty


def test_valid_fixture_is_valid() -> None:
    snap = Snapshot.from_wire(_valid())
    assert snap.entries["GET /"].failures == 1
    assert snap.entries["GET /"] == Entry(HIST, 1)


junk = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=3)),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.sampled_from(["e", "x", "i", "u", "s", "d", "l", "GET /"]), children)
    ),
    max_leaves=25,
)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["e", "x", "i", "u", "s", "d", "l"]), junk)
def test_from_wire_on_mutated_wire_raises_only_value_error(key: str, value: Any) -> None:
    try:
        snap = Snapshot.from_wire(_set(key, value))
    except ValueError:
        return
    assert wire_copy(snap) == snap
