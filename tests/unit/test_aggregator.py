"""Unit tests for pytest_swarm.stats.aggregator: merging the deltas of every worker."""

from __future__ import annotations

import doctest
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from merge_implementations import merge_implementation  # noqa: F401  (autouse)

import pytest_swarm.stats.aggregator as aggregator_module
from pytest_swarm.stats.aggregator import Aggregator
from pytest_swarm.stats.histogram import Histogram
from pytest_swarm.stats.recorder import MAX_ERROR_GROUPS, Recorder
from pytest_swarm.stats.result import Health
from pytest_swarm.stats.snapshot import MAX_ERRORS, Snapshot

START = 100.0


def delta(
    values: list[int] | None = None,
    name: str = "GET /",
    failures: int = 0,
    users: int = 0,
    iterations: int = 0,
) -> Snapshot:
    snap = Snapshot(users=users, iterations=iterations)
    if values is not None:
        entry = snap.entry(name)
        entry.hist.record_values(values)
        entry.failures = failures
    return snap


def test_module_doctests() -> None:
    assert doctest.testmod(aggregator_module).failed == 0


def test_duplicates_are_merged_once() -> None:
    # RELIABILITY row 8: a resent delta must not count twice.
    agg = Aggregator(start=START)
    d = delta([1000, 2000], failures=1, iterations=2)
    assert agg.add("gw0", 0, d, now=START + 0.1) is True
    assert agg.add("gw0", 0, d, now=START + 0.2) is False
    assert agg.add("gw0", 0, delta([5]), now=START + 0.3, final=True) is False
    assert agg.duplicates == 2
    result = agg.result(duration=1.0)
    assert result.total.count == 2
    assert result.total.failures == 1
    assert result.snapshot.iterations == 2
    assert sum(p.requests for p in result.timeline) == 2
    # The same seq from another source is not a duplicate.
    assert agg.add("gw1", 0, d, now=START + 0.4) is True
    assert agg.result(duration=1.0).total.count == 4


@settings(max_examples=50, deadline=None)
@given(st.permutations(list(range(6))), st.lists(st.integers(0, 5), max_size=4))
def test_out_of_order_and_duplicated_deltas_give_the_same_totals(
    order: list[int], dupes: list[int]
) -> None:
    deltas = [delta([1000 * (i + 1)] * (i + 1), failures=i % 2, iterations=1) for i in range(6)]
    agg = Aggregator(start=START)
    arrivals = [*order, *dupes]
    for seq in arrivals:
        agg.add("gw0", seq, deltas[seq], now=START + 1.5, final=seq == 5)
    assert agg.complete(["gw0"])
    assert agg.gaps() == {}
    assert agg.duplicates == len(dupes)
    expected = Snapshot()
    for d in deltas:
        expected.merge(d)
    result = agg.result(duration=6.0)
    assert result.snapshot.entries == expected.entries
    assert result.snapshot.iterations == 6
    assert result.problems == []


def test_gaps_are_reported_naming_the_source() -> None:
    # RELIABILITY row 9: lost statistics make the result an error, not a silent undercount.
    agg = Aggregator(start=START)
    for seq in (0, 1, 3, 6):
        agg.add("gw1", seq, delta([1000]), now=START + seq)
    agg.add("gw0", 0, delta([1000]), now=START, final=True)
    assert agg.gaps() == {"gw1": [2, 4, 5]}
    problems = agg.result(duration=7.0).problems
    assert len(problems) == 1
    assert "gw1" in problems[0] and "2, 4, 5" in problems[0]
    assert "gw0" not in problems[0]


def test_a_missing_seq_below_the_final_one_is_a_gap() -> None:
    agg = Aggregator(start=START)
    agg.add("gw0", 2, delta([1]), now=START, final=True)
    assert agg.gaps() == {"gw0": [0, 1]}
    assert not agg.complete(["gw0"])


def test_many_gaps_are_shortened() -> None:
    agg = Aggregator(start=START)
    agg.add("gw3", 30, delta([1]), now=START, final=True)
    (problem,) = agg.result(duration=1.0).problems
    assert "gw3" in problem and "0, 1, 2" in problem and problem.endswith("…)")
    assert "29" not in problem


def test_earlier_problems_are_kept() -> None:
    agg = Aggregator(start=START)
    agg.problems.append("worker gw0 crashed")
    assert agg.result(duration=1.0).problems == ["worker gw0 crashed"]


def test_complete_needs_the_final_delta_and_every_earlier_one() -> None:
    agg = Aggregator(start=START)
    assert not agg.complete(["gw0"])  # nothing yet
    assert agg.complete([])
    agg.add("gw0", 1, delta([1]), now=START, final=True)
    assert not agg.complete(["gw0"])  # seq 0 missing
    agg.add("gw0", 0, delta([1]), now=START)
    assert agg.complete(["gw0"])
    assert not agg.complete(["gw0", "gw1"])  # gw1 never reported
    agg.add("gw1", 0, delta([1]), now=START)
    assert not agg.complete(["gw0", "gw1"])  # not final yet
    agg.add("gw1", 1, delta(), now=START, final=True)
    assert agg.complete(["gw0", "gw1"])
    assert agg.gaps() == {}


def test_users_are_a_level_per_source_summed() -> None:
    agg = Aggregator(start=START)
    agg.add("gw0", 0, delta([1], users=5), now=START + 1.0)
    agg.add("gw1", 0, delta([1], users=3), now=START + 1.0)
    assert agg.users == 8
    agg.add("gw0", 1, delta([1], users=10), now=START + 2.0)
    assert agg.users == 13
    # A late (older) delta does not roll the level back.
    agg.add("gw1", 2, delta([1], users=1), now=START + 2.1)
    agg.add("gw1", 1, delta([1], users=99), now=START + 2.2)
    assert agg.users == 11
    assert agg.totals.users == 11
    timeline = agg.timeline()
    # A point shows the most users that ran during its second: 13 ran before the late 1.
    assert [p.users for p in timeline] == [8, 13]


def test_timeline_has_one_point_per_second() -> None:
    # A delta arrives at the end of the interval it covers: one arriving at start + 1.0 (or a
    # little later) holds second 0.
    agg = Aggregator(start=START)
    agg.add("gw0", 0, delta([1000, 3000], failures=1), now=START + 1.0)
    agg.add("gw1", 0, delta([2000]), now=START + 1.3)
    agg.add("gw0", 1, delta([10_000] * 4), now=START + 3.1)
    agg.add("gw1", 1, delta(), now=START + 3.2)  # an empty delta still marks the second
    agg.add("gw1", 2, delta([7]), now=START - 5)  # clock before the start: second 0
    points = agg.timeline()
    assert [p.t for p in points] == [0.0, 2.0]
    first, third = points
    assert (first.requests, first.failures) == (4, 1)
    # The timeline's percentiles come from coarse histograms (one process and xdist alike):
    # the pooled bucket's upper bound, high by at most 3.2 %, never low, capped at the max.
    assert 0.001 <= first.p50 <= 0.001 * 1.032 and first.p95 == 0.003
    assert (third.requests, third.failures, third.p50, third.p95) == (4, 0, 0.01, 0.01)
    assert sum(p.requests for p in points) == agg.result(duration=3.0).total.count


def test_recent_covers_the_last_complete_seconds() -> None:
    agg = Aggregator(start=0.0)
    assert agg.recent(now=0.0) == (0.0, 0, 0, 0.0, 0.0)
    agg.add("gw0", 0, delta([1000] * 4, failures=1), now=1.0)
    # During the first second, show what there is.
    assert agg.recent(now=1.2) == (4.0, 4, 1, 0.001, 0.001)
    agg.add("gw0", 1, delta([2000] * 2), now=2.0)
    agg.add("gw0", 2, delta([3000] * 6), now=3.0)
    agg.add("gw0", 3, delta([9000] * 100), now=3.6)  # the current second: not shown yet
    rps, requests, failures, p50, p95 = agg.recent(now=3.6)
    assert (rps, requests, failures) == (12 / 3, 12, 1)
    assert 0.002 <= p50 <= 0.002 * 1.032 and p95 == 0.003
    # A two-second window over seconds 2 and 3.
    assert agg.recent(now=4.6, window=2)[:3] == (106 / 2, 106, 0)
    # Seconds before the start do not dilute the rate.
    assert agg.recent(now=1.7)[:3] == (4.0, 4, 1)


@pytest.mark.parametrize(
    ("samples", "saturated"),
    [
        ({}, False),
        ({"gw0": [(50.0, 0.001)] * 5}, False),
        ({"gw0": [(90.0, 0.050)] * 5}, False),  # at the limits: not over them
        ({"gw0": [(99.0, 0.001)]}, False),  # one hiccup does not condemn a run
        ({"gw0": [(95.0, 0.001)] * 2}, True),
        ({"gw0": [(10.0, 0.2)] * 2 + [(10.0, 0.001)] * 18}, True),  # 2 of 20 = 10 %
        ({"gw0": [(10.0, 0.2)] * 2 + [(10.0, 0.001)] * 19}, False),  # 2 of 21 < 10 %
        ({"gw0": [(99.0, 0.0)], "gw1": [(99.0, 0.0)]}, False),  # counted per worker
        ({"gw0": [(1.0, 0.0)] * 3, "gw1": [(99.0, 0.0)] * 3}, True),  # the worst worker counts
    ],
)
def test_health_saturated_flag(
    samples: dict[str, list[tuple[float, float]]], saturated: bool
) -> None:
    agg = Aggregator(start=START)
    for source, pairs in samples.items():
        for cpu, lag in pairs:
            agg.set_health(source, cpu, lag)
    health = agg.health()
    assert health.saturated is saturated
    assert agg.result(duration=1.0).health == health


def test_health_keeps_the_worst_sample() -> None:
    agg = Aggregator(start=START)
    agg.set_health("gw0", 95.0, 0.01)
    agg.set_health("gw0", 20.0, 0.30)
    agg.set_health("gw1", 30.0, 0.02)
    assert agg.health() == Health(cpu_max=95.0, lag_max=0.30, saturated=True)
    assert Aggregator(start=START).health() == Health()


def test_result_is_a_snapshot_copy() -> None:
    agg = Aggregator(start=START)
    agg.add("gw0", 0, delta([1000]), now=START)
    agg.add("gw1", 0, delta([1000]), now=START)
    result = agg.result(duration=2.0, users=4)
    assert (result.users, result.workers, result.duration) == (4, 2, 2.0)
    agg.add("gw0", 1, delta([1000]), now=START + 1)
    assert result.total.count == 2
    assert result["GET /"].rps == 1.0


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["gw0", "gw1", "gw2"]),
            st.lists(st.integers(0, 10_000_000), max_size=5),
            st.floats(min_value=0, max_value=10, allow_nan=False),
        ),
        max_size=20,
    )
)
def test_totals_equal_the_merge_of_all_deltas(arrivals: list[tuple[str, list[int], float]]) -> None:
    agg = Aggregator(start=0.0)
    seqs: dict[str, int] = {}
    all_values: list[int] = []
    for source, values, now in arrivals:
        seq = seqs.get(source, 0)
        seqs[source] = seq + 1
        agg.add(source, seq, delta(values), now=now)
        all_values.extend(values)
    expected = Histogram()
    expected.record_values(all_values)
    result: Any = agg.result(duration=10.0)
    assert result.total.hist == expected
    assert sum(p.requests for p in result.timeline) == len(all_values)
    named = result.timeline_requests.get("GET /", [])
    assert sum(p.requests for p in named) == len(all_values)
    if result.timeline:
        last = result.timeline[-1].cumulative
        assert last is not None and last.requests == len(all_values)
        assert (last.min, last.max) == (expected.min_us / 1e6, expected.max_us / 1e6)
    assert result.problems == []


def test_a_result_with_many_error_groups_still_crosses_the_wire() -> None:
    # Each worker's delta holds at most MAX_ERROR_GROUPS + 1 groups, but the run's totals sum
    # them over workers and intervals; the result is sent back to the workers all the same.
    agg = Aggregator(start=START)
    for w in range(4):
        rec = Recorder()
        for i in range(MAX_ERROR_GROUPS):
            rec.record_failure("GET /items", 0.001, "HTTPError", f"404 for item {w}-{i}")
        agg.add(f"gw{w}", 0, rec.drain(), now=START + 1.0, final=True)
    result = agg.result(duration=1.0)
    assert len(result.snapshot.errors) <= MAX_ERRORS < 4 * MAX_ERROR_GROUPS
    assert sum(g.count for g in result.snapshot.errors.values()) == 4 * MAX_ERROR_GROUPS
    back = Snapshot.from_wire(result.snapshot.to_wire())
    assert back == result.snapshot
    assert back.total() == result.snapshot.total()


def test_error_groups_of_the_totals_stay_bounded_over_a_long_run() -> None:
    agg = Aggregator(start=START)
    rec = Recorder()
    for seq in range(20):
        rec.add_error("GET /", "HTTPError", "500")  # one frequent group, in every interval
        for i in range(MAX_ERROR_GROUPS):
            rec.add_error("GET /items", "HTTPError", f"404 for item {seq}-{i}")
        agg.add("gw0", seq, rec.drain(), now=START + seq + 1.0)
        assert len(agg.totals.errors) <= MAX_ERRORS
    groups = agg.totals.errors
    assert sum(g.count for g in groups.values()) == 20 * (MAX_ERROR_GROUPS + 1)
    assert groups[("GET /", "HTTPError", "500")].count == 20


def test_a_long_report_interval_still_gives_a_per_second_timeline() -> None:
    # A true 100 requests/s with a 5 s interval: deltas of 500 at 5 s and 10 s, and a final
    # one of 200 at 12 s. The timeline has one point per second of 100 requests each (it
    # once had three points of 500, 500 and 200), and the live rate reads 100/s (not 166.7).
    agg = Aggregator(start=0.0, interval=5.0)
    agg.add("main", 0, delta([1000] * 500, failures=5), now=5.02)
    rps = agg.recent(now=5.02)[0]
    assert rps == 100.0
    agg.add("main", 1, delta([2000] * 500), now=10.01)
    agg.add("main", 2, delta([3000] * 200), now=12.03, final=True)
    points = agg.timeline()
    assert [p.t for p in points] == [float(s) for s in range(12)]
    assert [p.requests for p in points] == [100] * 12
    assert sum(p.failures for p in points) == 5
    assert points[0].p50 == 0.001 and points[7].p50 == 0.002 and points[11].p50 == 0.003
    assert agg.recent(now=12.03)[0] == 100.0
    assert sum(p.requests for p in agg.result(duration=12.0).timeline) == 1200


@pytest.mark.parametrize("off_the_wire", [False, True], ids=["snapshot", "wire"])
def test_sizes_iterations_and_dropped_are_summed_over_sources(off_the_wire: bool) -> None:
    from pytest_swarm.stats.snapshot import check_wire

    agg = Aggregator(start=0.0)
    for seq, source in enumerate(["gw0", "gw1"]):
        rec = Recorder()
        rec.record("GET /", 0.001, 1000 * (seq + 1))
        rec.record_iteration(0.010 * (seq + 1))
        rec.dropped = seq + 1
        rec.late = 10
        delta = rec.drain()
        agg.add(source, 0, check_wire(delta.to_wire()) if off_the_wire else delta, 0.5, True)
    result = agg.result(duration=1.0)
    assert result["GET /"].size == 3000 and result["GET /"].avg_size == 1500
    assert result.iterations.count == 2 and 0.019 < result.iterations.max < 0.021
    assert result.dropped == 3 and result.late == 20


def test_the_last_point_shows_the_users_that_made_its_requests() -> None:
    # The final delta says 0 users (they stopped) but carries the last second's requests:
    # that point once read users=0 beside them.
    agg = Aggregator(start=0.0)
    agg.add("main", 0, delta([1000] * 50, users=10), now=1.0)
    agg.add("main", 1, delta([1000] * 50, users=0), now=2.0, final=True)
    points = agg.timeline()
    assert [(p.users, p.requests) for p in points] == [(10, 50), (10, 50)]


def test_the_timeline_has_points_per_request_name_with_p99() -> None:
    agg = Aggregator(start=0.0)
    for sec in range(3):
        d = delta([1000] * 98 + [50_000] * 2, name="GET /", users=4)
        d.entry("POST /cart").hist.record_values([5000] * (sec + 1))
        d.entry("POST /cart").failures = 1
        d.entry("POST /cart").size = 300
        agg.add("main", sec, d, now=sec + 1.0, final=sec == 2)
    result = agg.result(duration=3.0)
    assert sorted(result.timeline_requests) == ["GET /", "POST /cart"]
    cart = result.timeline_requests["POST /cart"]
    assert [(p.t, p.requests, p.failures, p.size) for p in cart] == [
        (0.0, 1, 1, 300),
        (1.0, 2, 1, 300),
        (2.0, 3, 1, 300),
    ]
    home = result.timeline_requests["GET /"]
    assert [p.p99 for p in home] == [0.05] * 3
    assert all(0.001 <= p.p50 <= 0.001 * 1.032 for p in home)  # coarse: never low
    assert result.timeline[0].p99 == 0.05  # the total's p99 too
    last = cart[-1].cumulative
    assert last is not None and (last.requests, last.failures, last.avg_size) == (6, 3, 150.0)
    assert len(cart[-1].percentiles) == 11  # Locust's 50% ... 100% columns


def test_one_process_and_the_wire_give_the_same_timeline() -> None:
    # xdist merges validated wire deltas, one process merges snapshots: the same figures.
    from pytest_swarm.stats.snapshot import check_wire

    snaps = []
    for _ in range(4):
        d = delta([1000 + 37 * i for i in range(200)], name="GET /", users=5, failures=2)
        d.entry("GET /b").hist.record_values([20_000 + 991 * i for i in range(30)])
        d.entry("GET /b").size = 1234
        snaps.append(d)
    local, remote = Aggregator(start=0.0), Aggregator(start=0.0)
    for seq, d in enumerate(snaps):
        local.add("w", seq, d, now=seq + 1.0, final=seq == 3)
        remote.add("w", seq, check_wire(d.to_wire()), now=seq + 1.0, final=seq == 3)
    a, b = local.result(duration=4.0), remote.result(duration=4.0)
    assert a.timeline == b.timeline
    assert a.timeline_requests == b.timeline_requests


def test_the_per_name_timeline_stays_bounded_on_a_long_run(monkeypatch: pytest.MonkeyPatch) -> None:
    # Bounds scaled down (the real ones: 20 names, 3,600 points each): 8 names for 2,000
    # seconds, only the first MAX_TIMELINE_NAMES get series, each at most NAME_POINTS points
    # (widened), and the counts still add up exactly.
    monkeypatch.setattr(aggregator_module, "MAX_TIMELINE_NAMES", 5)
    monkeypatch.setattr(aggregator_module, "NAME_POINTS", 100)
    agg = Aggregator(start=0.0)
    names = [f"GET /{i:02d}" for i in range(8)]
    seconds = 2_000
    for sec in range(seconds):
        d = Snapshot(users=1)
        for name in names:
            d.entry(name).hist.record_values([1000])
        agg.add("main", sec, d, now=sec + 1.0, final=sec == seconds - 1)
    result = agg.result(duration=float(seconds))
    assert len(result.timeline_requests) == 5
    for points in result.timeline_requests.values():
        assert len(points) <= 100
        assert sum(p.requests for p in points) == seconds
        assert sum(p.span for p in points) == seconds
    assert len(result.timeline) == seconds  # the total: one point per second still
    assert sum(p.requests for p in result.timeline) == 8 * seconds
