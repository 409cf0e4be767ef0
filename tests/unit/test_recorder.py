"""Unit tests for pytest_swarm.stats.recorder: the per-process hot path."""

from __future__ import annotations

import doctest
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pytest_swarm.stats.recorder as recorder_module
from pytest_swarm.stats.histogram import Histogram
from pytest_swarm.stats.recorder import (
    MAX_ERROR_GROUPS,
    MAX_RECORDED_NAMES,
    OTHER_ERRORS,
    OTHER_NAME,
    Recorder,
    RequestNamesFolded,
)
from pytest_swarm.stats.snapshot import MAX_ERRORS, MAX_NAMES, Snapshot


def test_module_doctests() -> None:
    assert doctest.testmod(recorder_module).failed == 0


def test_record_converts_seconds_to_whole_microseconds() -> None:
    rec = Recorder()
    rec.record("GET /", 0.012)
    rec.record("GET /", 0.0000019)  # truncated, not rounded
    rec.record("GET /", 0.0)
    snap = rec.drain()
    hist = snap.entries["GET /"].hist
    assert (hist.total, hist.min_us, hist.max_us, hist.sum_us) == (3, 0, 12_000, 12_001)
    assert snap.entries["GET /"].failures == 0
    assert snap.errors == {}


def test_record_failure_counts_a_request_a_failure_and_an_error() -> None:
    rec = Recorder()
    rec.record("GET /", 0.001)
    rec.record_failure("GET /", 0.002, "HTTPError", "500 Server Error")
    rec.record_failure("GET /", 0.003, "HTTPError", "500 Server Error")
    rec.record_failure("POST /", 0.004, "ConnectionError", "refused")
    snap = rec.drain()
    assert snap.entries["GET /"].hist.total == 3
    assert snap.entries["GET /"].failures == 2
    assert snap.entries["POST /"].hist.total == 1
    assert snap.entries["POST /"].failures == 1
    assert {k: g.count for k, g in snap.errors.items()} == {
        ("GET /", "HTTPError", "500 Server Error"): 2,
        ("POST /", "ConnectionError", "refused"): 1,
    }


def test_add_error_does_not_count_a_request() -> None:
    rec = Recorder()
    rec.add_error("test_x", "SetupError", "fixture broke")
    snap = rec.drain()
    assert snap.entries == {}
    assert snap.errors[("test_x", "SetupError", "fixture broke")].count == 1
    assert not snap.empty


def _raised(message: str) -> ValueError:
    try:
        raise ValueError(message)
    except ValueError as exc:
        return exc


def test_sample_traceback_is_kept_for_the_first_of_a_group_only() -> None:
    rec = Recorder()
    rec.record_failure("n", 0.1, "ValueError", "boom", _raised("first"))
    rec.record_failure("n", 0.1, "ValueError", "boom", _raised("second"))
    rec.add_error("m", "K", "no exception")
    snap = rec.drain()
    sample = snap.errors[("n", "ValueError", "boom")].sample
    assert "Traceback" in sample and "ValueError: first" in sample
    assert "second" not in sample
    assert snap.errors[("m", "K", "no exception")].sample == ""


def test_drain_resets_everything_but_the_users_level() -> None:
    rec = Recorder()
    rec.users = 7
    rec.iterations = 3
    rec.setup_failures = 1
    rec.record("a", 0.001)
    rec.record_failure("a", 0.001, "K", "m")
    first = rec.drain()
    assert (first.iterations, first.setup_failures, first.users) == (3, 1, 7)
    assert first.entries["a"].hist.total == 2
    second = rec.drain()
    assert second.entries == {} and second.errors == {}
    assert (second.iterations, second.setup_failures, second.users) == (0, 0, 7)
    assert second.empty
    assert (rec.iterations, rec.setup_failures, rec.users) == (0, 0, 7)
    # The drained snapshot is no longer referenced by the recorder.
    rec.record_failure("a", 0.001, "K", "m")
    assert first.entries["a"].hist.total == 2
    assert first.errors[("a", "K", "m")].count == 1


def test_failure_count_does_not_leak_into_the_next_interval() -> None:
    rec = Recorder()
    rec.record_failure("a", 0.001, "K", "m")
    rec.drain()
    rec.record("a", 0.001)
    snap = rec.drain()
    assert snap.entries["a"].failures == 0


def test_error_groups_are_capped_with_one_overflow_group() -> None:
    rec = Recorder()
    for i in range(MAX_ERROR_GROUPS):
        rec.record_failure("GET /items", 0.001, "HTTPError", f"404 item {i}")
    for i in range(50):
        rec.record_failure("GET /items", 0.001, "HTTPError", f"404 other {i}", _raised("x"))
    rec.record_failure("GET /items", 0.001, "HTTPError", "404 item 3")  # existing: still counted
    snap = rec.drain()
    assert len(snap.errors) == MAX_ERROR_GROUPS + 1
    other = snap.errors[(OTHER_NAME, "Error", OTHER_ERRORS)]
    assert other.count == 50
    assert "ValueError: x" in other.sample
    assert snap.errors[("GET /items", "HTTPError", "404 item 3")].count == 2
    # Nothing is lost: every failure is in exactly one group, and every request is counted.
    assert sum(g.count for g in snap.errors.values()) == MAX_ERROR_GROUPS + 51
    assert snap.entries["GET /items"].failures == MAX_ERROR_GROUPS + 51
    assert snap.entries["GET /items"].hist.total == MAX_ERROR_GROUPS + 51


def test_error_groups_stay_bounded_when_names_vary_too() -> None:
    # Default request names carry the path, so ids in URLs make names unbounded as well.
    rec = Recorder()
    for i in range(3 * MAX_ERROR_GROUPS):
        rec.add_error(f"GET /items/{i}", "HTTPError", f"404 for {i}")
    snap = rec.drain()
    assert len(snap.errors) == MAX_ERROR_GROUPS + 1 <= MAX_ERRORS
    assert sum(g.count for g in snap.errors.values()) == 3 * MAX_ERROR_GROUPS
    # The delta still crosses the wire.
    assert Snapshot.from_wire(snap.to_wire()) == snap


def test_the_cap_applies_per_interval() -> None:
    rec = Recorder()
    for i in range(MAX_ERROR_GROUPS + 5):
        rec.add_error("n", "K", f"m{i}")
    rec.drain()
    rec.add_error("n", "K", "fresh")
    snap = rec.drain()
    assert list(snap.errors) == [("n", "K", "fresh")]


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c"]),
            st.floats(min_value=0, max_value=100, allow_nan=False),
            st.booleans(),
        ),
        max_size=40,
    ),
    st.integers(1, 5),
)
def test_drains_add_up_to_everything_recorded(
    calls: list[tuple[str, float, bool]], every: int
) -> None:
    rec = Recorder()
    total = Snapshot()
    for i, (name, elapsed, failed) in enumerate(calls):
        if failed:
            rec.record_failure(name, elapsed, "K", name)
        else:
            rec.record(name, elapsed)
        if i % every == 0:
            total.merge(rec.drain())
    total.merge(rec.drain())
    for name in {c[0] for c in calls}:
        expected = Histogram()
        expected.record_values([int(e * 1_000_000) for n, e, _ in calls if n == name])
        assert total.entries[name].hist == expected
        assert total.entries[name].failures == sum(1 for n, _, f in calls if n == name and f)
    assert sum(g.count for g in total.errors.values()) == sum(1 for c in calls if c[2])


# Row 28: thousands of distinct request names (ids in URLs, no name=).


def test_distinct_names_are_folded_at_the_source_and_warned_once() -> None:
    from pytest_swarm.stats.recorder import MAX_RECORDED_NAMES, RequestNamesFolded

    rec = Recorder()
    for i in range(5_000):
        rec.record(f"GET /items/{i}", 0.001)
    rec.record_failure("GET /items/99999", 0.002, "HTTPError", "404 Not Found")
    # Names are bounded at the drain (once per name and interval), off the request path.
    with pytest.warns(RequestNamesFolded, match=r"name=") as caught:
        snap = rec.drain()
    assert len(caught) == 1
    assert len(snap.entries) == MAX_RECORDED_NAMES + 1 == MAX_NAMES
    assert snap.entries[OTHER_NAME].hist.total == 5_001 - MAX_RECORDED_NAMES
    assert snap.entries[OTHER_NAME].failures == 1
    assert [g.name for g in snap.errors.values()] == [OTHER_NAME]
    assert sum(e.hist.total for e in snap.entries.values()) == 5_001
    assert rec.folded == 5_001 - MAX_RECORDED_NAMES
    # The names a load kept stay kept across drains; no new name gets in later, no new warning.
    rec.record("GET /items/0", 0.001)
    rec.record("GET /items/new", 0.001)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        snap = rec.drain()
    assert set(snap.entries) == {"GET /items/0", OTHER_NAME}
    # What a worker sends stays within what the controller accepts, folded by nobody else.
    Snapshot.from_wire(snap.to_wire())


def test_a_new_load_starts_with_no_names() -> None:
    rec = Recorder()
    rec.record("GET /a", 0.001)
    assert set(Recorder().drain().entries) == set()
    assert set(rec.drain().entries) == {"GET /a"}


def test_long_names_are_cut_with_a_mark() -> None:
    from pytest_swarm.stats.recorder import CUT_MARK, MAX_NAME_LENGTH, RequestNamesFolded

    rec = Recorder()
    long = "GET /" + "x" * 7_000
    for _ in range(3):
        rec.record(long, 0.001)
    rec.record_failure(long + "y", 0.001, "HTTPError", "404")  # the same cut form
    rec.add_error("setup: " + "z" * 7_000, "ValueError", "bad")
    snap = rec.drain()
    (name,) = snap.entries
    assert len(name) == MAX_NAME_LENGTH and name.endswith(CUT_MARK)
    assert name.startswith("GET /xxx")
    assert snap.entries[name].hist.total == 4 and snap.entries[name].failures == 1
    assert all(len(g.name) <= MAX_NAME_LENGTH for g in snap.errors.values())
    # 2,000 names of 7 KB: the wire form stays small (9 MB before).
    rec = Recorder()
    for i in range(2_000):
        rec.record(f"GET /{i}/" + "x" * 7_000, 0.001)
    with pytest.warns(RequestNamesFolded):
        assert len(repr(rec.drain().to_wire())) < 1_000_000


def test_warning_as_error_does_not_break_the_drain() -> None:
    rec = Recorder()
    for i in range(2_100):
        rec.record(f"GET /{i}", 0.001)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        snap = rec.drain()
    assert sum(e.hist.total for e in snap.entries.values()) == 2_100


def test_sizes_iterations_and_dropped_are_drained_per_interval() -> None:
    rec = Recorder()
    rec.record("GET /", 0.001, 100)
    rec.record("GET /", 0.001)  # size unknown: counted as a request, adds no bytes
    rec.record_failure("GET /", 0.002, "HTTPError", "500", size=30)
    rec.record_iteration(0.004)
    rec.record_iteration(0.9)
    rec.dropped += 3
    snap = rec.drain()
    assert snap.entries["GET /"].size == 130
    assert (snap.iterations, snap.iteration.total, snap.dropped) == (2, 2, 3)
    assert 890_000 <= snap.iteration.max_us <= 910_000
    again = rec.drain()
    assert (again.iterations, again.iteration.total, again.dropped) == (0, 0, 0)
    assert "GET /" not in again.entries


def test_sizes_follow_a_folded_name() -> None:
    # A name past the bound is counted under OTHER_NAME: its bytes go there too.
    rec = Recorder()
    rec._names = {f"n{i}": f"n{i}" for i in range(MAX_RECORDED_NAMES)}
    with pytest.warns(RequestNamesFolded):
        rec.record("one too many", 0.001, 7)
        snap = rec.drain()
    assert snap.entries[OTHER_NAME].size == 7
