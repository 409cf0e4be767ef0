"""Unit tests for pytest_swarm.spec."""

from __future__ import annotations

import doctest
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import pytest_swarm.spec
from pytest_swarm.spec import (
    LoadSpec,
    SpecError,
    SpecOverrides,
    build_spec,
    format_duration,
    parse_duration,
    parse_wait,
    split_users,
)

NO_OVERRIDES = SpecOverrides()


def test_doctests() -> None:
    assert doctest.testmod(pytest_swarm.spec).failed == 0


# --------------------------------------------------------------------------- parse_duration


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (20, 20.0),
        (1.5, 1.5),
        (0.001, 0.001),
        ("20", 20.0),
        ("1.5", 1.5),
        (".5", 0.5),
        ("500ms", 0.5),
        ("300ms", 0.3),
        ("20s", 20.0),
        ("2m", 120.0),
        ("1h30m", 5400.0),
        ("1h", 3600.0),
        ("1.5s", 1.5),
        ("2m30s", 150.0),
        ("250us", 0.00025),
        ("250µs", 0.00025),
        ("  20s ", 20.0),
        ("1h 30m", 5400.0),
        ("20 s", 20.0),
        ("1h2m3s4ms5us", 3723.004005),
        ("0.5m", 30.0),
        ("0s1ms", 0.001),
    ],
)
def test_parse_duration_accepts(value: str | float, expected: float) -> None:
    assert parse_duration(value) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "abc",
        "-1s",
        "-1",
        "0",
        "0s",
        "0ms0us",
        0,
        0.0,
        -1,
        -0.5,
        math.nan,
        math.inf,
        -math.inf,
        "nan",
        "inf",
        "1e3",
        True,
        False,
        "5x",
        "s",
        "ms",
        "30s2m",
        "1s1s",
        "1m1h",
        "1 h m",
        "1..5s",
        "9" * 400,
        None,
        [1],
        b"20s",
    ],
)
def test_parse_duration_rejects(value: Any) -> None:
    with pytest.raises(SpecError) as info:
        parse_duration(value)
    message = str(info.value)
    assert message.startswith(f"load(duration={value!r}): duration must be")
    assert "'20s'" in message  # says what is expected


def test_parse_duration_error_names_argument() -> None:
    with pytest.raises(SpecError, match=r"^load\(stop_timeout='abc'\): stop_timeout must be"):
        parse_duration("abc", argument="stop_timeout")


def test_parse_duration_error_names_option() -> None:
    with pytest.raises(SpecError, match=r"^--swarm-duration='1x': --swarm-duration must be"):
        parse_duration("1x", argument="--swarm-duration")


def test_spec_error_is_value_error() -> None:
    assert issubclass(SpecError, ValueError)


UNITS = [("h", 3600.0), ("m", 60.0), ("s", 1.0), ("ms", 1e-3), ("us", 1e-6)]


@given(
    st.lists(
        st.tuples(
            st.sampled_from(range(len(UNITS))), st.decimals(min_value=0, max_value=1000, places=3)
        ),
        min_size=1,
        max_size=5,
        unique_by=lambda c: c[0],
    ),
    st.sampled_from(["", " "]),
)
def test_parse_duration_components_sum(components: list[Any], sep: str) -> None:
    components.sort(key=lambda c: c[0])
    expected = sum(float(number) * UNITS[i][1] for i, number in components)
    text = sep.join(f"{number}{UNITS[i][0]}" for i, number in components)
    if expected <= 0:
        with pytest.raises(SpecError):
            parse_duration(text)
    else:
        assert parse_duration(text) == pytest.approx(expected, rel=1e-9, abs=1e-12)


@given(st.floats(min_value=1e-6, max_value=1e7, allow_nan=False))
def test_format_duration_round_trips(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds, rel=1e-5)


@given(st.floats(min_value=1e-9, max_value=1e9) | st.integers(min_value=1, max_value=10**9))
def test_parse_duration_numbers_are_seconds(value: float) -> None:
    assert parse_duration(value) == float(value)
    text = repr(float(value))
    if "e" not in text:  # the string grammar has no exponents
        assert parse_duration(text) == float(value)


# --------------------------------------------------------------------------- parse_wait


def test_parse_wait_none_is_zero() -> None:
    assert parse_wait(None)() == 0.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, 0.0), (0.0, 0.0), (2, 2.0), (0.25, 0.25), ("500ms", 0.5), ("0", 0.0), ("1s", 1.0)],
)
def test_parse_wait_constant(value: Any, expected: float) -> None:
    wait = parse_wait(value)
    assert [wait() for _ in range(3)] == [expected] * 3


@pytest.mark.parametrize("pair", [(0.1, 0.3), [0.1, 0.3], ("100ms", "300ms"), (0.1, "0.3s")])
def test_parse_wait_range(pair: Any) -> None:
    wait = parse_wait(pair)
    values = [wait() for _ in range(200)]
    assert all(0.1 <= v <= 0.3 for v in values)
    assert len(set(values)) > 1


def test_parse_wait_degenerate_range_is_constant() -> None:
    assert parse_wait((1, 1))() == 1.0
    assert parse_wait((0, 0))() == 0.0


def test_parse_wait_callable_is_checked() -> None:
    values = iter([0.5, 0, 2])
    wait = parse_wait(lambda: next(values))
    assert [wait(), wait(), wait()] == [0.5, 0.0, 2.0]


@pytest.mark.parametrize("bad", [-0.1, "1s", None, math.nan, math.inf, True])
def test_parse_wait_callable_bad_return_raises_at_call_time(bad: Any) -> None:
    wait = parse_wait(lambda: bad)  # no error yet
    with pytest.raises(SpecError) as info:
        wait()
    message = str(info.value)
    assert message.startswith("load(wait=")
    assert f"returned {bad!r}" in message
    assert "wait function" in message


@pytest.mark.parametrize(
    "value",
    [
        -1,
        -0.001,
        math.nan,
        math.inf,
        True,
        "abc",
        "-1s",
        (2, 1),
        ("1s", "500ms"),
        (1,),
        (1, 2, 3),
        [],
        (-1, 1),
        (0, "x"),
        (None, 1),
        {"low": 1},
        object(),
    ],
)
def test_parse_wait_rejects(value: Any) -> None:
    with pytest.raises(SpecError) as info:
        parse_wait(value)
    assert str(info.value).startswith(f"load(wait={value!r}): wait must be")


# --------------------------------------------------------------------------- build_spec


def spec(**kwargs: Any) -> LoadSpec:
    kwargs.setdefault("overrides", NO_OVERRIDES)
    return build_spec(**kwargs)


def test_build_spec_defaults() -> None:
    s = spec(users=5)
    assert (s.users, s.rate, s.duration, s.stop_timeout, s.iterations) == (5, 5.0, 10.0, 5.0, None)
    assert s.wait() == 0.0


def test_build_spec_all_arguments() -> None:
    s = spec(users=50, rate=10, duration="20s", wait=(1, 2), iterations=3, stop_timeout="2s")
    assert (s.users, s.rate, s.duration, s.stop_timeout, s.iterations) == (50, 10.0, 20.0, 2.0, 3)
    assert 1 <= s.wait() <= 2
    assert isinstance(s.rate, float)


def test_build_spec_uses_override_defaults() -> None:
    s = build_spec(users=1, overrides=SpecOverrides(default_duration=3.0, stop_timeout=1.0))
    assert (s.duration, s.stop_timeout) == (3.0, 1.0)


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"users": 0}, "users"),
        ({"users": -3}, "users"),
        ({"users": True}, "users"),
        ({"users": 2.0}, "users"),
        ({"users": "10"}, "users"),
        ({"users": 1, "rate": 0}, "rate"),
        ({"users": 1, "rate": -1}, "rate"),
        ({"users": 1, "rate": True}, "rate"),
        ({"users": 1, "rate": math.inf}, "rate"),
        ({"users": 1, "rate": math.nan}, "rate"),
        ({"users": 1, "rate": "10"}, "rate"),
        ({"users": 1, "duration": "abc"}, "duration"),
        ({"users": 1, "duration": 0}, "duration"),
        ({"users": 1, "iterations": 0}, "iterations"),
        ({"users": 1, "iterations": 1.5}, "iterations"),
        ({"users": 1, "iterations": False}, "iterations"),
        ({"users": 1, "stop_timeout": "-1s"}, "stop_timeout"),
        ({"users": 1, "stop_timeout": 0}, "stop_timeout"),
        ({"users": 1, "wait": (3, 1)}, "wait"),
    ],
)
def test_build_spec_rejects(kwargs: dict[str, Any], argument: str) -> None:
    with pytest.raises(SpecError) as info:
        spec(**kwargs)
    value = kwargs[argument]
    assert str(info.value).startswith(f"load({argument}={value!r}): {argument} must be")


def test_overrides_replace_values() -> None:
    o = SpecOverrides(users=7, rate=2.0, duration=30.0)
    s = build_spec(users=50, rate=10, duration="20s", overrides=o)
    assert (s.users, s.rate, s.duration) == (7, 2.0, 30.0)


def test_overridden_users_keep_implicit_rate_following() -> None:
    s = build_spec(users=50, overrides=SpecOverrides(users=7))
    assert (s.users, s.rate) == (7, 7.0)


def test_explicit_rate_survives_users_override() -> None:
    s = build_spec(users=50, rate=10, overrides=SpecOverrides(users=7))
    assert (s.users, s.rate) == (7, 10.0)


@pytest.mark.parametrize(
    ("users", "rate", "scale", "expected_users", "expected_rate"),
    [
        (10, 4.0, 2.0, 20, 8.0),
        (10, None, 2.0, 20, 20.0),
        (10, None, 0.25, 3, 3.0),  # 2.5 rounds half up
        (10, 4.0, 0.05, 1, 0.2),  # 0.5 -> 1
        (10, 4.0, 0.01, 1, 0.04),  # at least one user
        (3, 0.001, 0.0001, 1, 1e-3),  # rate floored at a small positive value
        (1, None, 1e-9, 1, 1.0),
    ],
)
def test_scale(
    users: int, rate: float | None, scale: float, expected_users: int, expected_rate: float
) -> None:
    s = build_spec(users=users, rate=rate, overrides=SpecOverrides(scale=scale))
    assert s.users == expected_users
    assert s.rate == pytest.approx(expected_rate)
    assert s.rate > 0


def test_scale_applies_after_overrides() -> None:
    s = build_spec(users=100, rate=50, overrides=SpecOverrides(users=10, rate=4.0, scale=0.5))
    assert (s.users, s.rate) == (5, 2.0)


def test_absurd_scale_is_rejected() -> None:
    with pytest.raises(SpecError, match=r"^--swarm-scale=1e\+300: --swarm-scale must be"):
        build_spec(users=10, overrides=SpecOverrides(scale=1e300))


@pytest.mark.parametrize(
    ("field", "value", "option"),
    [
        ("users", 0, "--swarm-users"),
        ("users", True, "--swarm-users"),
        ("users", 1.5, "--swarm-users"),
        ("rate", 0.0, "--swarm-rate"),
        ("rate", -1.0, "--swarm-rate"),
        ("rate", math.inf, "--swarm-rate"),
        ("duration", 0.0, "--swarm-duration"),
        ("duration", math.nan, "--swarm-duration"),
        ("scale", 0.0, "--swarm-scale"),
        ("scale", -2.0, "--swarm-scale"),
        ("default_duration", 0.0, "swarm_duration"),
        ("stop_timeout", -1.0, "--swarm-stop-timeout"),
    ],
)
def test_overrides_are_validated(field: str, value: Any, option: str) -> None:
    with pytest.raises(SpecError) as info:
        SpecOverrides(**{field: value})
    assert str(info.value).startswith(f"{option}={value!r}: {option} must be")


def test_ini_key_is_not_shown_as_load_argument() -> None:
    with pytest.raises(SpecError, match=r"^swarm_duration='x': swarm_duration must be"):
        parse_duration("x", argument="swarm_duration")


def test_spec_is_frozen() -> None:
    s = spec(users=1)
    with pytest.raises(AttributeError):
        s.users = 2  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"users": 50, "rate": 10, "duration": "20s"}, "50 users @ 10/s for 20s"),
        ({"users": 1, "rate": 0.5, "duration": 90}, "1 user @ 0.5/s for 1m30s"),
        ({"users": 3, "duration": "500ms"}, "3 users @ 3/s for 500ms"),
        ({"users": 2, "rate": 1 / 3, "duration": "1h"}, "2 users @ 0.333/s for 1h"),
        (
            {"users": 2000, "duration": "2m30s", "iterations": 5},
            "2000 users @ 2000/s for 2m30s, max 5 iterations/user",
        ),
    ],
)
def test_describe(kwargs: dict[str, Any], text: str) -> None:
    assert spec(**kwargs).describe() == text


# --------------------------------------------------------------------------- split_users


def test_split_users_example() -> None:
    shares = [split_users(10, 10.0, 3, k) for k in range(3)]
    assert [indices for indices, _ in shares] == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    assert [rate for _, rate in shares] == pytest.approx([4.0, 3.0, 3.0])


def test_split_users_single_worker() -> None:
    assert split_users(4, 2.0, 1, 0) == ([0, 1, 2, 3], 2.0)


def test_split_users_more_workers_than_users() -> None:
    shares = [split_users(2, 4.0, 4, k) for k in range(4)]
    assert shares == [([0], 2.0), ([1], 2.0), ([], 0.0), ([], 0.0)]


@pytest.mark.parametrize(
    ("args", "argument"),
    [
        ((10, 1.0, 0, 0), "workers"),
        ((10, 1.0, 3, 3), "worker_index"),
        ((10, 1.0, 3, -1), "worker_index"),
        ((10, 1.0, 3, True), "worker_index"),
        ((-1, 1.0, 3, 0), "users"),
        ((10, -1.0, 3, 0), "rate"),
        ((10, math.nan, 3, 0), "rate"),
    ],
)
def test_split_users_rejects(args: tuple[Any, ...], argument: str) -> None:
    with pytest.raises(SpecError, match=rf"^split_users\({argument}=.*\): {argument} must be"):
        split_users(*args)


@given(
    users=st.integers(min_value=0, max_value=500),
    workers=st.integers(min_value=1, max_value=40),
    rate=st.floats(min_value=0.001, max_value=1e6),
)
def test_split_users_partition(users: int, workers: int, rate: float) -> None:
    shares = [split_users(users, rate, workers, k) for k in range(workers)]
    sizes = [len(indices) for indices, _ in shares]
    assert sum(sizes) == users
    assert max(sizes) - min(sizes) <= 1
    assert sorted(i for indices, _ in shares for i in indices) == list(range(users))
    for k, (indices, share_rate) in enumerate(shares):
        assert indices == sorted(indices)
        assert all(i % workers == k for i in indices)
        assert share_rate >= 0
        if not indices:
            assert share_rate == 0.0
    if users:
        assert math.isclose(sum(r for _, r in shares), rate, rel_tol=1e-9)


# Issue 8, section 2: users=10**9 ran forever with no request; users=10**6 used 747 MiB in a 2 s
# test still running at 15 s. What cannot start is refused, naming the argument.


def test_absurd_user_counts_are_refused_naming_the_argument() -> None:
    from pytest_swarm.spec import MAX_USERS_PER_PROCESS

    assert build_spec(users=MAX_USERS_PER_PROCESS, overrides=NO_OVERRIDES).users == 100_000
    for users in (MAX_USERS_PER_PROCESS + 1, 10**6, 10**9):
        with pytest.raises(
            SpecError, match=r"^load\(users=\d+\): users must be at most 100,000 per process"
        ):
            build_spec(users=users, overrides=NO_OVERRIDES)
    with pytest.raises(SpecError, match=r"^--swarm-users=1000000: --swarm-users must be at most"):
        build_spec(users=5, overrides=SpecOverrides(users=10**6))
    with pytest.raises(SpecError, match=r"^--swarm-scale=1000000.0: --swarm-scale must be at"):
        build_spec(users=5, overrides=SpecOverrides(scale=1e6))


def test_the_user_bound_is_per_process() -> None:
    spec = build_spec(users=10**6, overrides=SpecOverrides(processes=10))
    assert spec.users == 10**6
    with pytest.raises(SpecError, match=r"1,000,000 with 10 processes.*-n"):
        build_spec(users=10**6 + 1, overrides=SpecOverrides(processes=10))


def test_processes_come_from_the_xdist_worker_count() -> None:
    from types import SimpleNamespace

    from pytest_swarm.options import _processes

    assert _processes(SimpleNamespace()) == 1  # type: ignore[arg-type]
    worker = SimpleNamespace(workerinput={"workerid": "gw0", "workercount": 3})
    assert _processes(worker) == 3  # type: ignore[arg-type]
    assert _processes(SimpleNamespace(workerinput={})) == 1  # type: ignore[arg-type]
