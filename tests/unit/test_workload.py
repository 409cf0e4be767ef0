"""Pure logic of the workload model: stage interpolation, rescaling, the split of users across
workers, and open-model arrival schedules (spacing, interleaving, totals). No clock, no sleep."""

from __future__ import annotations

import itertools
import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_swarm.spec import SpecError
from pytest_swarm.workload.arrivals import constant, due_times
from pytest_swarm.workload.stages import Profile, Stage, parse_stages, worker_share

stage = st.builds(
    Stage,
    duration=st.floats(0.1, 100.0),
    target=st.one_of(st.just(0.0), st.floats(0.01, 500.0)),
)
profiles = (
    st.lists(stage, min_size=1, max_size=6)
    .map(lambda s: Profile(tuple(s)))
    .filter(lambda p: p.peak > 0)
)


def test_ramp_hold_ramp_down() -> None:
    p = parse_stages([("30s", 100), ("2m", 100), ("30s", 0)])
    assert p.duration == 180.0
    assert [p.at(t) for t in (0, 15, 30, 100, 150, 165, 180, 999)] == [
        0.0, 50.0, 100.0, 100.0, 100.0, 50.0, 0.0, 0.0,
    ]  # fmt: skip


@given(profiles)
def test_each_stage_reaches_its_target_at_its_end(p: Profile) -> None:
    end = 0.0
    for s in p.stages:
        end += s.duration
        assert math.isclose(p.at(end - 1e-9), s.target, rel_tol=1e-6, abs_tol=1e-3)
    for t in (0.0, p.duration / 3, p.duration / 2, p.duration):
        assert 0.0 <= p.at(t) <= p.peak + 1e-9


@given(profiles, st.floats(0.0, 1.0))
def test_inverse_integral_inverts_integral(p: Profile, fraction: float) -> None:
    area = p.integral(p.duration) * fraction
    t = p.inverse_integral(area)
    assert t is not None
    assert math.isclose(p.integral(t), area, rel_tol=1e-6, abs_tol=1e-6)


def test_inverse_integral_beyond_the_profile_is_none() -> None:
    p = parse_stages([("10s", 10)])  # 50 arrivals in all
    assert p.inverse_integral(50.0) == pytest.approx(10.0)
    assert p.inverse_integral(50.5) is None


@given(profiles, st.floats(0.1, 10.0))
def test_scaled_and_with_peak(p: Profile, factor: float) -> None:
    assert math.isclose(p.scaled(factor).peak, p.peak * factor, rel_tol=1e-9)
    assert math.isclose(p.with_peak(250.0).peak, 250.0, rel_tol=1e-9)
    assert p.with_peak(250.0).duration == p.duration


@given(st.integers(0, 10_000), st.integers(1, 64))
def test_worker_shares_sum_to_the_total_and_indices_stay_unique(total: int, n: int) -> None:
    shares = [worker_share(total, workers=n, worker_index=w) for w in range(n)]
    assert sum(shares) == total
    assert max(shares) - min(shares) <= 1
    indices = {j * n + w for w in range(n) for j in range(shares[w])}
    assert indices == set(range(total))


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("30s", "list of (duration, target) pairs"),
        ([], "at least one stage"),
        ([("30s",)], "stage 1 must be a (duration, target) pair"),
        ([("abc", 10)], "stage 1"),
        ([("10s", -1)], "stage 1 target must be a number >= 0"),
        ([("10s", 5), ("10s", float("nan"))], "stage 2 target"),
        ([("10s", 0)], "every stage has target 0"),
        ([("1s", 1)] * 1001, "at most 1000 stages"),
    ],
)
def test_bad_stages_name_the_argument_and_the_stage(value: object, fragment: str) -> None:
    with pytest.raises(SpecError, match="stages") as info:
        parse_stages(value)
    assert fragment in str(info.value)


def test_constant_rate_is_evenly_spaced_from_time_zero() -> None:
    due = list(due_times(constant(200.0, 1.0), workers=1, worker_index=0))
    assert len(due) == 200
    gaps = {round(b - a, 9) for a, b in itertools.pairwise(due)}
    assert gaps == {0.005}


small_profiles = st.lists(
    st.builds(Stage, duration=st.floats(0.1, 10.0), target=st.floats(0.0, 50.0)),
    min_size=1,
    max_size=6,
).map(lambda s: Profile(tuple(s)))


@given(small_profiles, st.integers(1, 8))
def test_workers_interleave_into_the_one_process_schedule(p: Profile, n: int) -> None:
    whole = list(due_times(p, workers=1, worker_index=0))
    split = sorted(t for w in range(n) for t in due_times(p, workers=n, worker_index=w))
    assert split == whole
    # The total is the area under the rate profile, to within the one arrival at time 0.
    assert abs(len(whole) - p.integral(p.duration)) <= 1.0 + 1e-6


def test_ramping_rate_arrives_faster_as_the_rate_grows() -> None:
    p = parse_stages([("10s", 100)])  # 0 -> 100/s linearly: 500 arrivals
    due = list(due_times(p, workers=1, worker_index=0))
    assert len(due) == 500
    first_half = sum(1 for t in due if t < 5.0)
    assert first_half == 125  # the area under the first half of the ramp


def test_poisson_arrivals_have_the_rate_on_average() -> None:
    rate, duration = 200.0, 50.0
    counts = [
        len(list(due_times(constant(rate, duration), workers=2, worker_index=w, poisson=True,
                           rng=random.Random(seed))))
        for seed, w in ((1, 0), (2, 1))
    ]  # fmt: skip
    expected = rate * duration
    # 10,000 expected arrivals: a standard deviation of 100; 5 of them is far beyond chance.
    assert abs(sum(counts) - expected) < 500
    gaps = list(due_times(constant(rate, duration), workers=1, worker_index=0, poisson=True,
                          rng=random.Random(3)))  # fmt: skip
    deltas = [b - a for a, b in itertools.pairwise(gaps)]
    # Exponential gaps: the standard deviation equals the mean (even spacing would give 0).
    mean = sum(deltas) / len(deltas)
    sd = math.sqrt(sum((d - mean) ** 2 for d in deltas) / len(deltas))
    assert 0.8 < sd / mean < 1.2
