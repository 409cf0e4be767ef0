"""Pure logic of the workload model: stage interpolation, rescaling, the split of users across
workers, and open-model arrival schedules (spacing, interleaving, totals). No clock, no sleep."""

from __future__ import annotations

import itertools
import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_swarm.spec import SpecError, SpecOverrides, build_spec
from pytest_swarm.workload.arrivals import constant, due_times
from pytest_swarm.workload.pool import Pool
from pytest_swarm.workload.shape import ShapeError, ShapeFollower
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


def test_inverse_integral_of_a_subnormal_area_on_a_ramp_from_zero() -> None:
    # Found by Hypothesis: the root's denominator underflowed to 0 (ZeroDivisionError).
    p = parse_stages([("2s", 0.5), ("1s", 0)])
    t = p.inverse_integral(5e-324)
    assert t is not None and 0.0 <= t < 1e-100


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


# -- custom shapes -----------------------------------------------------------------------------


def test_a_shape_sets_the_level_and_none_ends_it_for_good() -> None:
    answers = {0.0: 5, 1.0: (0, 2.0), 2.0: None, 3.0: 7}
    follow = ShapeFollower(answers.__getitem__, max_users=10)
    assert follow.level(0.0) == 5.0
    assert follow.level(1.0) == 3.0  # down at 2 users/s: 5 -> 3 in one second
    assert follow.level(2.0) is None
    assert follow.level(3.0) is None  # the load does not restart


@given(st.lists(st.tuples(st.integers(0, 50), st.floats(0.5, 20.0)), min_size=1, max_size=20))
def test_a_shapes_rate_bounds_how_fast_the_level_moves(answers: list[tuple[int, float]]) -> None:
    calls = iter(answers)
    follow = ShapeFollower(lambda t: next(calls), max_users=50)
    level, t = 0.0, 0.0
    for users, rate in answers:
        t += 0.1
        new = follow.level(t)
        assert new is not None
        assert abs(new - level) <= rate * 0.1 + 1e-9 or level == 0.0 == t - 0.1
        assert min(level, users) - 1e-9 <= new <= max(level, users) + 1e-9
        level = new


@pytest.mark.parametrize(
    ("answer", "fragment"),
    [
        ("5", "it must return users (a number >= 0), (users, rate) or None"),
        (True, "it must return users"),
        (-1, "users must be a number >= 0"),
        (float("nan"), "users must be a number >= 0"),
        (float("inf"), "users must be a number >= 0"),
        (11, "more than max_users=10"),
        (10**100, "more than max_users=10"),
        ((5,), "it must return users, (users, rate) or None"),
        ((5, 0), "rate must be a number of users per second > 0"),
        ((5, float("nan")), "rate must be"),
        ((5, 1e300), "rate must be"),
        ((5, "fast"), "rate must be"),
        (("5", 1), "it must return users"),
    ],
)
def test_a_bad_shape_answer_is_an_error_naming_shape_and_the_value(
    answer: object, fragment: str
) -> None:
    def my_shape(elapsed: float) -> object:
        return answer

    with pytest.raises(ShapeError) as caught:
        ShapeFollower(my_shape, max_users=10).level(0.5)
    assert str(caught.value).startswith("load(shape=")
    assert "my_shape" in str(caught.value) and fragment in str(caught.value)


def test_a_shape_that_raises_is_a_shape_error_with_the_elapsed_time() -> None:
    def broken(elapsed: float) -> int:
        raise KeyError("stage")

    with pytest.raises(ShapeError, match=r"shape\(1\.5\) raised KeyError: 'stage'"):
        ShapeFollower(broken, max_users=10).level(1.5)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"shape": 5}, "load(shape=5): shape must be a callable"),
        ({"shape": len, "users": 5}, "shape and users together"),
        ({"shape": len, "stages": [("1s", 2)]}, "shape and stages together"),
        ({"shape": len, "arrival_rate": 5}, "cannot be combined"),
        ({"shape": len, "max_users": 0}, "max_users=0): max_users must be an integer >= 1"),
        ({"shape": len, "arrivals": "poisson"}, "arrivals belongs to the open model"),
        ({"arrival_rate": 10}, "max_users is required"),
        ({"arrival_rate": 10, "max_users": 5, "users": 5}, "arrival_rate and users together"),
        ({"arrival_rate": 10, "max_users": 5, "wait": 1}, "arrival_rate and wait together"),
        ({"arrival_rate": 0, "max_users": 5}, "arrival_rate=0): arrival_rate must be"),
        ({"arrival_rate": -3, "max_users": 5}, "arrival_rate must be"),
        ({"arrival_rate": float("nan"), "max_users": 5}, "arrival_rate must be"),
        ({"arrival_rate": True, "max_users": 5}, "arrival_rate must be"),
        ({"arrival_rate": "fast", "max_users": 5}, "arrival_rate must be"),
        ({"arrival_rate": 1e9, "max_users": 5}, "at most 100,000 iterations/s per process"),
        ({"arrival_rate": [("1s", 1e9)], "max_users": 5}, "at most 100,000 iterations/s"),
        ({"arrival_rate": [("1s", -1)], "max_users": 5}, "stage 1 target must be"),
        ({"arrival_rate": [], "max_users": 5}, "needs at least one stage"),
        ({"arrival_rate": [("1s", 5)], "max_users": 5, "duration": "5s"}, "drop duration="),
        (
            {"arrival_rate": 5, "max_users": 10**9},
            "max_users=1000000000): max_users must be at most 100,000",
        ),
        ({"arrival_rate": 5, "max_users": 5, "arrivals": "burst"}, "'even' (evenly spaced)"),
        ({"max_users": 5}, "max_users belongs to the open model"),
    ],
)
def test_bad_shape_and_open_model_arguments_are_refused_naming_them(
    kwargs: dict[str, object], fragment: str
) -> None:
    with pytest.raises(SpecError) as caught:
        build_spec(**kwargs, overrides=SpecOverrides())  # type: ignore[arg-type]
    assert fragment in str(caught.value)


def test_max_users_below_the_worker_count_is_refused() -> None:
    with pytest.raises(SpecError, match=r"at least the number of processes \(4"):
        build_spec(arrival_rate=10, max_users=3, overrides=SpecOverrides(processes=4))


def test_open_model_overrides() -> None:
    plain = build_spec(arrival_rate=200, max_users=50, overrides=SpecOverrides())
    assert (plain.users, plain.duration) == (50, 10.0)  # the ini's default duration
    assert plain.open_model is not None and plain.open_model.profile.at(3.0) == 200.0
    half = build_spec(arrival_rate=200, max_users=50, overrides=SpecOverrides(scale=0.5))
    assert half.users == 25 and half.open_model is not None
    assert half.open_model.profile.at(0.0) == 100.0
    staged = build_spec(
        arrival_rate=[("30s", 50), ("2m", 200)],
        max_users=40,
        arrivals="poisson",
        overrides=SpecOverrides(duration=15.0),
    )
    assert staged.duration == 15.0 and staged.open_model is not None
    assert staged.open_model.poisson and staged.open_model.profile.at(3.0) == 50.0
    assert staged.describe() == (
        "arrival rate in 2 stages up to 200/s (Poisson arrivals), up to 40 users for 15s"
    )


def test_scale_applies_to_a_shape() -> None:
    spec = build_spec(shape=lambda t: (10, 4), max_users=10, overrides=SpecOverrides(scale=0.5))
    assert spec.users == 5 and spec.shape is not None
    assert spec.shape(0.0) == (5.0, 2.0)
    assert spec.describe() == "shape <lambda> x0.5, up to 5 users for 10s"


# -- the open model's pool and queue (pure: every time is passed in) -----------------------------


def test_the_pool_grows_only_when_no_user_is_free_and_never_past_its_capacity() -> None:
    pool = Pool(capacity=3)
    assert pool.due(0.0, now=0.0) == "grow"
    assert pool.due(0.1, now=0.1) == "grow"  # the first user is still being built
    assert pool.ready(0, now=0.15, built=True) == 0.0
    assert pool.ready(1, now=0.16, built=True) == 0.1
    assert pool.ready(0, now=0.17) is None  # done, nothing due: idle
    assert pool.due(0.2, now=0.2) == "run" and pool.woken() == 0
    assert pool.ready(0, now=0.2) == 0.2
    # Both built users busy: grow the third, then queue.
    assert pool.due(0.3, now=0.3) == "grow"
    assert pool.due(0.4, now=0.4) == "queued"
    assert pool.size == 3 and pool.dropped == 0


def test_a_one_second_stall_at_100_per_second_with_5_users_drops_nothing() -> None:
    pool = Pool(capacity=5)
    for user in range(5):
        assert pool.due(user / 100, now=user / 100) == "grow"
        assert pool.ready(user, now=user / 100, built=True) == user / 100
    # The five users are stuck for a second: a hundred arrivals queue up.
    for k in range(5, 105):
        assert pool.due(k / 100, now=k / 100) == "queued"
    # The target answers again: the users work the backlog off, oldest first.
    taken = [pool.ready(k % 5, now=1.05 + k * 1e-4) for k in range(100)]
    assert taken == [k / 100 for k in range(5, 105)]
    assert pool.dropped == 0 and pool.late == 100 and pool.started == 105


@given(st.floats(0.0, 60.0), st.floats(0.1, 30.0))
def test_an_iteration_is_dropped_only_past_the_queue_timeout(stall: float, timeout: float) -> None:
    pool = Pool(capacity=1, queue_timeout=timeout)
    assert pool.due(-1.0, now=-1.0) == "grow"
    pool.ready(0, now=-1.0, built=True)
    assert pool.due(0.0, now=0.0) == "queued"
    due = pool.ready(0, now=stall)
    if stall > timeout:
        assert due is None and pool.dropped == 1
    else:
        assert due == 0.0 and pool.dropped == 0


def test_the_queue_is_bounded_and_the_oldest_is_dropped_first() -> None:
    pool = Pool(capacity=1, max_queue=3)
    pool.due(0.0, now=0.0)
    pool.ready(0, now=0.0, built=True)
    for k in range(1, 6):
        pool.due(k * 0.001, now=k * 0.001)
    assert list(pool.queue) == [0.003, 0.004, 0.005] and pool.dropped == 2
    assert pool.close() == 3 and pool.dropped == 5  # never run by the end: dropped too


@pytest.mark.parametrize(("start", "late"), [(0.0, 0), (0.005, 0), (0.0051, 1), (2.0, 1)])
def test_lateness_is_the_start_past_the_due_time_beyond_5ms(start: float, late: int) -> None:
    pool = Pool(capacity=1)
    pool.due(1.0, now=1.0)
    assert pool.ready(0, now=1.0 + start, built=True) == 1.0
    assert pool.late == late


def test_a_failed_build_frees_its_slot_for_a_later_arrival() -> None:
    pool = Pool(capacity=1)
    assert pool.due(0.0, now=0.0) == "grow"
    pool.build_failed()
    assert pool.due(0.1, now=0.1) == "grow"  # the slot is free again, two iterations waiting
    assert pool.ready(0, now=0.1, built=True) == 0.0


@given(st.integers(1, 6), st.integers(1, 400))
def test_interleaved_workers_arrive_as_one_evenly_spaced_swarm(workers: int, rate: int) -> None:
    one = list(due_times(constant(float(rate), 2.0), workers=1, worker_index=0))
    parts = [
        list(due_times(constant(float(rate), 2.0), workers=workers, worker_index=w))
        for w in range(workers)
    ]
    assert sorted(itertools.chain(*parts)) == one
    assert len(one) == 2 * rate
    # Each worker's own gaps are workers / rate: its arrivals sit between the others'.
    for w, part in enumerate(parts):
        assert all(math.isclose(b - a, workers / rate) for a, b in itertools.pairwise(part))
        assert not part or math.isclose(part[0], w / rate)
