"""The controller's merge path (issue 13): a validated wire delta is merged into the run's
totals and its timeline seconds without building Histograms per request name, with exactly the
figures of the one-process path (Snapshots merged as they are).

What each test catches:
- the pooled merges (``Histogram.merge_pooled``, ``Accumulator.merge(checked, pooled)``)
  giving other counts, extremes or sums than ``merge(from_checked(...).coarse())``;
- the wire path of ``Aggregator.add`` filing a delta elsewhere than the Snapshot path does
  (untracked names, long report intervals, late deltas, empty entries);
- the hot path building Histograms per request name again (the old code built two per name
  and one for the total: 41 for a 20-name delta).
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from merge_implementations import merge_implementation  # noqa: F401  (autouse)

import pytest_swarm.stats.aggregator as aggregator_module
import pytest_swarm.stats.histogram as histogram_module
from pytest_swarm.stats.aggregator import Aggregator
from pytest_swarm.stats.histogram import HIGHEST_US, Accumulator, Histogram, check_wire
from pytest_swarm.stats.snapshot import Snapshot
from pytest_swarm.stats.snapshot import check_wire as check_delta

# Latencies from 0 to beyond the range (overflow), dense enough to share buckets and pools.
value = st.one_of(
    st.integers(0, 3000),
    st.integers(0, 10_000_000),
    st.integers(HIGHEST_US - 10, HIGHEST_US + 10**6),
)


def hist_of(values: list[int]) -> Histogram:
    h = Histogram()
    h.record_values(values)
    return h


@settings(max_examples=200, deadline=None)
@given(st.lists(value, max_size=40), st.lists(value, max_size=40))
def test_merge_pooled_equals_merging_the_coarse_copy(before: list[int], added: list[int]) -> None:
    h = hist_of(added)
    expected, pooled = hist_of(before).coarse(), hist_of(before).coarse()
    expected.merge(Histogram.from_checked(check_wire(h.to_wire())).coarse())
    pooled.merge_pooled(check_wire(h.to_wire()))
    assert pooled == expected


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.lists(value, max_size=30), min_size=1, max_size=6),
    st.booleans(),
)
def test_accumulator_merge_with_a_pooled_second_equals_the_two_merges(
    deltas: list[list[int]], dense: bool
) -> None:
    fused, alone, second, expected_second = Accumulator(), Accumulator(), Histogram(), Histogram()
    if dense:  # past DENSE_AT buckets the counts live in a list: both layouts take part
        fused._densify()
        alone._densify()
    for values in deltas:
        checked = check_wire(hist_of(values).to_wire())
        fused.merge(checked, second)
        alone.merge(checked)
        expected_second.merge_pooled(checked)
    assert fused.histogram() == alone.histogram() == hist_of([v for d in deltas for v in d])
    assert second == expected_second


# (worker, arrival time, {name: values}, failures of the first name)
arrival = st.tuples(
    st.sampled_from(["gw0", "gw1", "gw2"]),
    st.floats(min_value=0, max_value=12, allow_nan=False),
    st.dictionaries(
        st.sampled_from([f"GET /{i}" for i in range(5)]),
        st.lists(value, max_size=8),
        max_size=5,
    ),
    st.integers(0, 3),
)


@settings(max_examples=120, deadline=None)
@given(
    st.lists(arrival, max_size=25),
    st.sampled_from([0.5, 1.0, 3.0]),
)
def test_the_wire_path_files_every_delta_as_the_snapshot_path_does(
    arrivals: list[tuple[str, float, dict[str, list[int]], int]], interval: float
) -> None:
    # Three names with a timeline of their own, the others in the total only; intervals
    # above a second spread a delta over several seconds; arrivals out of order make late
    # deltas; an entry may hold a size and no request.
    local, remote = Aggregator(0.0, interval), Aggregator(0.0, interval)
    seqs: dict[str, int] = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(aggregator_module, "MAX_TIMELINE_NAMES", 3)
        for worker, now, names, failures in sorted(arrivals, key=lambda a: a[1]):
            snap = Snapshot(users=len(names))
            for i, (name, values) in enumerate(sorted(names.items())):
                entry = snap.entry(name)
                entry.hist.record_values(values)
                entry.failures = min(failures, len(values)) if i == 0 else 0
                entry.size = 10 * len(values) + i
            seq = seqs[worker] = seqs.get(worker, -1) + 1
            local.add(worker, seq, snap, now)
            remote.add(worker, seq, check_delta(snap.to_wire()), now)
    a, b = local.result(duration=12.0), remote.result(duration=12.0)
    assert a.timeline == b.timeline
    assert a.timeline_requests == b.timeline_requests
    assert a.snapshot.entries == b.snapshot.entries
    assert (local.requests, local.failures) == (remote.requests, remote.failures)


def test_a_wire_delta_builds_no_histogram_per_request_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = random.Random(13)

    def wire_delta() -> Any:
        snap = Snapshot(users=10)
        for i in range(20):
            snap.entry(f"GET /{i}").hist.record_values(
                [int(rng.lognormvariate(9.9, 0.5)) for _ in range(10)]
            )
        return check_delta(snap.to_wire())

    agg = Aggregator(start=0.0)
    agg.add("gw0", 0, wire_delta(), now=0.9)  # opens this second's buckets (a Histogram each)
    second = wire_delta()
    built = 0
    original = histogram_module.Histogram.__init__

    def counting(self: Histogram) -> None:
        nonlocal built
        built += 1
        original(self)

    monkeypatch.setattr(histogram_module.Histogram, "__init__", counting)
    agg.add("gw1", 0, second, now=0.95)  # the same second: every bucket is open already
    assert built == 0
    monkeypatch.undo()
    assert agg.result(duration=1.0).total.count == 400
