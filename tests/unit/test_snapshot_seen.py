"""Error groups carry when (first/last seen, wall clock) and where (the nodes) they occurred:
recorded cheaply by the Recorder, merged min/max/union by snapshots and the aggregator in any
order, carried by the wire (protocol 4) within its bounds, through the controller to the
reporting worker."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from merge_implementations import merge_implementation  # noqa: F401  (autouse)

from pytest_swarm import PROTOCOL_VERSION
from pytest_swarm.cluster.controller_state import Control
from pytest_swarm.cluster.limits import MAX_ELEMENTS, MAX_FRAME
from pytest_swarm.cluster.wire import count_elements, decode, encode
from pytest_swarm.stats.aggregator import Aggregator
from pytest_swarm.stats.recorder import Recorder
from pytest_swarm.stats.snapshot import (
    MAX_ERRORS,
    MAX_NAMES,
    MAX_NODE_TEXT,
    MAX_NODES,
    MAX_TRACKED_NODES,
    ErrorGroup,
    Snapshot,
    check_wire,
    node_order,
)

KEY = ("GET /", "HTTPError", "500 Server Error")


class Clock:
    """A wall clock that says how often it was read."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.now


# -- the recorder: exact first seen, last seen at the drain, no clock read per failure ----------


def test_first_seen_is_the_first_failure_and_last_seen_the_drain() -> None:
    clock = Clock()
    rec = Recorder(wall_clock=clock)
    clock.now = 1_700_000_000.25
    rec.record_failure("GET /", 0.01, "HTTPError", "500 Server Error")
    clock.now = 1_700_000_000.5
    for _ in range(999):
        rec.record_failure("GET /", 0.01, "HTTPError", "500 Server Error")
    clock.now = 1_700_000_001.0
    group = rec.drain().errors[KEY]
    assert group.count == 1000
    assert (group.first, group.last) == (1_700_000_000.25, 1_700_000_001.0)
    # One read when the group was made, one at the drain: none per failure.
    assert clock.reads == 2
    assert group.nodes == set()  # the aggregator names the node, not the recorder


def test_a_drain_without_errors_does_not_read_the_clock() -> None:
    clock = Clock()
    rec = Recorder(wall_clock=clock)
    rec.record("GET /", 0.01)
    rec.drain()
    assert clock.reads == 0


def test_last_seen_is_never_before_first_seen_when_the_clock_steps_back() -> None:
    clock = Clock(2_000.0)
    rec = Recorder(wall_clock=clock)
    rec.add_error("setup: t", "RuntimeError", "boom")
    clock.now = 1_000.0  # NTP stepped the clock back before the drain
    group = rec.drain().errors[("setup: t", "RuntimeError", "boom")]
    assert group.first == group.last == 2_000.0


def test_groups_over_several_intervals_merge_to_the_first_and_last() -> None:
    clock = Clock()
    rec = Recorder(wall_clock=clock)
    total = Snapshot()
    for second in range(3):
        clock.now = 1_000.0 + second + 0.3
        rec.record_failure("GET /", 0.01, "HTTPError", "500 Server Error")
        clock.now = 1_000.0 + second + 1.0
        total.merge(rec.drain())
    group = total.errors[KEY]
    assert (group.count, group.first, group.last) == (3, 1_000.3, 1_003.0)


def test_the_real_recorder_stamps_wall_clock_times() -> None:
    import time

    before = time.time()
    rec = Recorder()
    rec.record_failure("GET /", 0.01, "HTTPError", "500 Server Error")
    group = rec.drain().errors[KEY]
    after = time.time()
    assert before <= group.first <= group.last <= after


# -- merging: min, max, union, in any order ------------------------------------------------------

NODE = st.sampled_from([f"gw{i}" for i in range(100)] + ["main", "host-a"])
TIME = st.one_of(st.just(0.0), st.floats(1.0, 2e9, allow_nan=False))


@st.composite
def parts(draw: st.DrawFn) -> tuple[int, float, float, set[str]]:
    first = draw(TIME)
    last = draw(TIME)
    if first and last and first > last:
        first, last = last, first
    return draw(st.integers(1, 50)), first, last, draw(st.sets(NODE, max_size=80))


def _group(count: int, first: float, last: float, nodes: set[str]) -> Snapshot:
    snap = Snapshot()
    snap.add_error(*KEY, "", count, first, last, sorted(nodes))
    return snap


@settings(max_examples=200, deadline=None)
@given(st.lists(parts(), min_size=1, max_size=8), st.randoms(use_true_random=False))
def test_merges_in_any_order_and_grouping_give_min_max_and_union(
    pieces: list[tuple[int, float, float, set[str]]], rnd: Any
) -> None:
    # Left to right, one by one...
    left = Snapshot()
    for piece in pieces:
        left.merge(_group(*piece))
    # ...and shuffled, as pairs merged first, then through the wire.
    shuffled = pieces[:]
    rnd.shuffle(shuffled)
    pairs = []
    for a, b in itertools.zip_longest(shuffled[::2], shuffled[1::2]):
        pair = _group(*a)
        if b is not None:
            pair.merge(_group(*b))
        pairs.append(Snapshot.from_wire(pair.to_wire()))
    right = Snapshot()
    for pair in pairs:
        right.merge(pair)

    # A part knowing one of its times counts it as both (ErrorGroup.see).
    firsts = [f or la for _, f, la, _ in pieces if f or la]
    lasts = [la or f for _, f, la, _ in pieces]
    union = set().union(*(n for *_, n in pieces))
    for snap in (left, right):
        g = snap.errors[KEY]
        assert g.count == sum(c for c, *_ in pieces)
        assert g.first == (min(firsts) if firsts else 0.0)
        assert g.last == max(lasts)
        assert not g.first or g.first <= g.last
        # The names kept are the first MAX_NODES of the true union, whatever the order.
        assert g.node_list == sorted(union, key=node_order)[:MAX_NODES]
        # The count of the others is a lower bound, exact while nothing was dropped.
        total = len(g.node_list) + g.nodes_hidden
        assert len(g.nodes) + g.nodes_more == total
        assert max(len(n) for *_, n in pieces) <= total <= len(union)
        if len(union) <= MAX_NODES or snap is left:
            assert total == len(union)


def test_nodes_past_the_bound_are_counted_not_named() -> None:
    g = ErrorGroup(*KEY, 1)
    for i in range(100):  # one worker's delta after another, as the aggregator merges them
        g.see(0.0, 0.0, [f"gw{i}"])
    assert g.node_list == [f"gw{i}" for i in range(MAX_NODES)]
    assert g.nodes_hidden == 100 - MAX_NODES  # exact: the aggregator tracks more names
    g.see(0.0, 0.0, ["gw3"])  # seen before: nothing changes
    assert g.nodes_hidden == 100 - MAX_NODES
    wire = ErrorGroup(*KEY, 1)
    wire.see(0.0, 0.0, g.node_list, g.nodes_hidden)  # what the wire carries
    assert (wire.node_list, wire.nodes_hidden) == (g.node_list, g.nodes_hidden)


def test_past_the_tracked_names_the_count_is_a_lower_bound() -> None:
    g = ErrorGroup(*KEY, 1)
    g.see(0.0, 0.0, [f"gw{i}" for i in range(MAX_TRACKED_NODES + 5)])
    assert (len(g.nodes), g.nodes_more) == (MAX_TRACKED_NODES, 5)
    # A name past the bound cannot be told from one already counted: the count is a lower
    # bound then (documented), never more than the truth.
    g.see(0.0, 0.0, ["zz"])
    assert (len(g.nodes), g.nodes_more) == (MAX_TRACKED_NODES, 5)
    small = ErrorGroup(*KEY, 1)
    small.see(0.0, 0.0, ["x" * 500, ""])  # a long name is cut, an empty one ignored
    assert small.nodes == {"x" * MAX_NODE_TEXT} and small.nodes_more == 0


def test_a_part_knowing_one_time_counts_it_as_both() -> None:
    g = ErrorGroup(*KEY, 1)
    g.see(0.0, 1.0)
    g.see(2.0, 0.0)
    assert (g.first, g.last) == (1.0, 2.0)


def test_folding_many_groups_keeps_the_times_and_nodes_of_the_folded() -> None:
    snap = Snapshot()
    for i in range(MAX_ERRORS + 10):
        snap.add_error("GET /", "E", f"message {i}", "", 1, 100.0 + i, 200.0 + i, [f"gw{i % 3}"])
    before = dict(snap.errors)
    snap.fold_errors()
    assert len(snap.errors) == MAX_ERRORS
    other_key = ("(other)", "Error", "(other errors: too many distinct messages)")
    other = snap.errors[other_key]
    folded = [g for k, g in before.items() if k not in snap.errors]
    assert other.count == len(folded) == 11
    assert other.first == min(g.first for g in folded)
    assert other.last == max(g.last for g in folded)
    assert other.nodes == set().union(*(g.nodes for g in folded))


# -- the aggregator names the source; the controller's result carries it ------------------------


def _failed_delta(first: float, last: float, claimed: tuple[str, ...] = ()) -> Snapshot:
    snap = Snapshot(users=1)
    snap.entry("GET /").hist.record_values([1000])
    snap.entry("GET /").failures = 1
    snap.add_error(*KEY, "Traceback ...", 1, first, last, claimed)
    return snap


def test_the_aggregator_attributes_groups_to_their_source_in_one_process_and_over_the_wire() -> (
    None
):
    agg = Aggregator(start=0.0)
    agg.add("gw1", 0, check_wire(_failed_delta(105.0, 109.0).to_wire()), now=1.0)
    # What a delta claims about nodes does not count: the source that delivered it does.
    agg.add("gw0", 0, _failed_delta(101.0, 107.0, claimed=("gw7",)), now=1.0)
    agg.add("main", 0, _failed_delta(103.0, 104.0), now=1.0)
    group = agg.result(duration=1.0).snapshot.errors[KEY]
    assert (group.count, group.first, group.last) == (3, 101.0, 109.0)
    assert group.node_list == ["gw0", "gw1", "main"]


def _send(control: Control, source: str, kind: str, now: float, **body: Any) -> list[Any]:
    out = control.on_message(source, decode(encode(kind, **body)), now)
    return [(w, decode(frame)) for w, frame in out]


def test_the_controllers_result_carries_first_last_seen_and_both_workers() -> None:
    test = "t.py::test_x"
    control = Control(interval=1.0)
    for worker in ("gw0", "gw1"):
        _send(control, worker, "hello", 0.0, worker=worker, version="0.1.0", load_tests=[test])
        control.expect(worker)
    for worker in ("gw0", "gw1"):
        _send(control, worker, "ready", 0.0, test=test, users=2, duration=1.0, settings={})
    times = {"gw0": (1_700_000_000.5, 1_700_000_002.0), "gw1": (1_700_000_000.2, 1_700_000_001)}
    out: list[Any] = []
    for worker, (first, last) in times.items():
        wire = _failed_delta(first, last).to_wire()
        _send(control, worker, "final", 2.0, test=test, seq=0, delta=wire, cpu=1.0, lag=0.0, lost=0)
        out += _send(control, worker, "result?", 2.0, test=test)
    (body,) = [m.body for _, m in out if m.kind == "result"][:1]
    group = Snapshot.from_wire(body["snapshot"]).errors[KEY]
    assert (group.first, group.last) == (1_700_000_000.2, 1_700_000_002.0)
    assert group.node_list == ["gw0", "gw1"]


# -- the wire: protocol 4, validated, within its bounds -------------------------------------------


def test_the_protocol_changed_with_the_error_groups_fields() -> None:
    assert PROTOCOL_VERSION == 4


def _wire_with(**fields: Any) -> dict[str, Any]:
    wire = _failed_delta(10.0, 20.0).to_wire()
    item = wire["x"][0]
    order = ["name", "kind", "message", "count", "sample", "first", "last", "nodes", "more"]
    for key, value in fields.items():
        item[order.index(key)] = value
    return wire


def test_a_group_round_trips_the_wire() -> None:
    snap = Snapshot()
    snap.add_error(*KEY, "tb", 4, 10.5, 20.25, ["gw1", "gw0"], 3)
    group = Snapshot.from_wire(snap.to_wire()).errors[KEY]
    assert (group.first, group.last, group.node_list, group.nodes_more) == (
        10.5,
        20.25,
        ["gw0", "gw1"],
        3,
    )


@pytest.mark.parametrize(
    "fields",
    [
        {"first": 30.0},  # first seen after last seen
        {"first": -1.0},
        {"last": math.inf},
        {"last": math.nan},
        {"first": "10"},
        {"first": True},
        {"nodes": "gw0"},
        {"nodes": ["gw0", "gw0"]},
        {"nodes": [1]},
        {"nodes": [""]},
        {"nodes": ["x" * (MAX_NODE_TEXT + 1)]},
        {"nodes": [f"gw{i}" for i in range(MAX_NODES + 1)]},
        {"more": -1},
        {"more": 1.5},
    ],
)
def test_malformed_seen_fields_are_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="snapshot: "):
        check_wire(_wire_with(**fields))


def test_a_protocol_3_error_group_is_refused() -> None:
    wire = _failed_delta(10.0, 20.0).to_wire()
    wire["x"][0] = wire["x"][0][:5]  # [name, kind, message, count, sample]
    with pytest.raises(ValueError, match="bad error group"):
        check_wire(wire)


def test_a_snapshot_at_every_bound_fits_one_frame() -> None:
    # The worst a worker or the controller may send: every name, every error group, each
    # with its full list of long node names (limits.py's MAX_ELEMENTS is sized by this).
    snap = Snapshot(users=1)
    for i in range(MAX_NAMES):
        snap.entry(f"GET /{i}").hist.record_values([1000])
    nodes = [f"worker-{i:03d}-" + "x" * (MAX_NODE_TEXT - 11) for i in range(MAX_NODES)]
    for i in range(MAX_ERRORS):
        snap.add_error("GET /0", "HTTPError", f"m{i}", "", 1, 1.0, 2.0, nodes, 1000)
    frame = encode("stats", test="t", seq=0, delta=snap.to_wire(), cpu=0.0, lag=0.0)
    assert len(frame) <= MAX_FRAME
    assert count_elements(frame) <= MAX_ELEMENTS
    back = Snapshot.from_wire(decode(frame).body["delta"])
    assert len(back.errors) == MAX_ERRORS
    assert all(len(g.nodes) == MAX_NODES for g in back.errors.values())
