"""Load specs for custom shapes (closed model) and the open model: validation and overrides.

``load(shape=fn)`` and ``load(arrival_rate=..., max_users=...)`` end up here from
:func:`pytest_swarm.spec.build_spec`. Every argument is bounded and each error names it.

Example:
    >>> from pytest_swarm.spec import SpecOverrides, build_spec
    >>> spec = build_spec(arrival_rate=[("30s", 50), ("2m", 200)], max_users=40,
    ...                   overrides=SpecOverrides())
    >>> spec.describe(), spec.open_model.profile.at(15.0)
    ('arrival rate in 2 stages up to 200/s (evenly spaced), up to 40 users for 2m30s', 25.0)
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass

from ..spec import (
    MAX_USERS_PER_PROCESS,
    LoadSpec,
    SpecError,
    SpecOverrides,
    _check_bound,
    _error,
    build_spec,
    parse_duration,
)
from .arrivals import constant
from .shape import ShapeFn, shape_name
from .stages import Profile, Stage, parse_stages

SHAPE_MAX_USERS = 1000
"""The most users a shape may ask for when the test does not say (``max_users=``): the
users are numbered in advance so each worker knows its own, and a bound turns a runaway shape
(``lambda t: 10**9``) into a clear error instead of a process that never starts them."""

MAX_ARRIVAL_RATE = 100_000.0
"""The highest arrival rate (iterations per second) one process may be asked for: about ten
times what one core sustains with ``fast_http`` (benchmarks/open_model.py); more is a typo."""

ARRIVALS = ("even", "poisson")


@dataclass(frozen=True)
class OpenModel:
    """The open model's schedule: the swarm's arrival rate over time and how gaps are drawn."""

    profile: Profile  # iterations per second over time (a constant rate is one held stage)
    poisson: bool = False
    staged: bool = False

    def describe(self) -> str:
        spacing = "Poisson arrivals" if self.poisson else "evenly spaced"
        if self.staged:
            stages = len(self.profile.stages)
            peak = _number(self.profile.peak)
            return f"arrival rate in {stages} stage{'s' * (stages != 1)} up to {peak}/s ({spacing})"
        return f"{_number(self.profile.peak)} iterations/s ({spacing})"


def _number(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


def model_spec(
    *,
    closed: dict[str, object],
    shape: object,
    arrival_rate: object,
    max_users: object,
    arrivals: object,
    duration: str | int | float | None,
    stop_timeout: str | int | float | None,
    overrides: SpecOverrides,
) -> LoadSpec:
    """A spec for ``shape=`` or ``arrival_rate=`` (see :func:`pytest_swarm.spec.build_spec`)."""
    if shape is not None and arrival_rate is not None:
        raise SpecError(
            "load(shape=..., arrival_rate=...): shape (users over time, closed model) and "
            "arrival_rate (iterations over time, open model) cannot be combined"
        )
    if shape is not None:
        return _shape_spec(closed, shape, max_users, arrivals, duration, stop_timeout, overrides)
    if arrival_rate is None:
        which = "max_users" if max_users is not None else "arrivals"
        raise SpecError(
            f"load({which}=...): {which} belongs to the open model (arrival_rate=) or, for "
            "max_users, to shape=; give one of them"
        )
    return _open_spec(closed, arrival_rate, max_users, arrivals, duration, stop_timeout, overrides)


def _refuse(model: str, closed: dict[str, object], allowed: tuple[str, ...], why: str) -> None:
    given = [name for name, value in closed.items() if value is not None and name not in allowed]
    if given:
        raise SpecError(f"load({model}=...): {model} and {', '.join(given)} together: {why}")


def _max_users(value: object, default: int | None, model: str, overrides: SpecOverrides) -> int:
    if value is None:
        if default is None:
            raise SpecError(
                f"load({model}=...): max_users is required: the most users the pool may grow "
                f"to (each with its own fixtures), e.g. max_users=50"
            )
        value = default
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise _error("max_users", value, "an integer >= 1")
    n = int(value)
    limit = MAX_USERS_PER_PROCESS * overrides.processes
    if n > limit:
        raise _error(
            "max_users",
            value,
            f"at most {MAX_USERS_PER_PROCESS:,} per process ({limit:,} with "
            f"{overrides.processes} process(es)): more could not even start",
        )
    if n < overrides.processes:
        raise _error(
            "max_users",
            value,
            f"at least the number of processes ({overrides.processes} xdist workers): each "
            "worker runs its own users",
        )
    return n


def _shape_spec(
    closed: dict[str, object],
    shape: object,
    max_users: object,
    arrivals: object,
    duration: str | int | float | None,
    stop_timeout: str | int | float | None,
    overrides: SpecOverrides,
) -> LoadSpec:
    if not callable(shape):
        raise _error(
            "shape", shape, "a callable shape(elapsed_seconds) -> users | (users, rate) | None"
        )
    if arrivals is not None:
        raise SpecError("load(arrivals=...): arrivals belongs to the open model (arrival_rate=)")
    _refuse(
        "shape",
        closed,
        ("wait", "iterations"),
        "the shape gives the users over time (and their spawn rate)",
    )
    bound = _max_users(max_users, SHAPE_MAX_USERS, "shape", overrides)
    base = build_spec(
        users=bound,
        duration=duration,
        wait=closed["wait"],  # type: ignore[arg-type]
        iterations=closed["iterations"],  # type: ignore[arg-type]
        stop_timeout=stop_timeout,
        overrides=dataclasses.replace(overrides, users=None, rate=None, scale=None),
    )
    fn: ShapeFn = shape
    if overrides.scale is not None:
        fn = _Scaled(shape, overrides.scale)
        bound = max(1, math.ceil(bound * overrides.scale))
        _check_bound(bound, bound, overrides)
    return dataclasses.replace(base, users=bound, rate=float(bound), shape=fn)


@dataclass(frozen=True)
class _Scaled:
    """``--swarm-scale`` applied to a shape: users and rate multiplied."""

    fn: ShapeFn
    factor: float

    @property
    def shape_name(self) -> str:
        return f"{shape_name(self.fn)} x{self.factor:g}"

    def __call__(self, elapsed: float) -> object:
        answer = self.fn(elapsed)
        if isinstance(answer, tuple | list) and len(answer) == 2:
            users, rate = answer
            if _real(users) and _real(rate):
                return users * self.factor, rate * self.factor
        elif _real(answer):
            return answer * self.factor  # type: ignore[operator]
        return answer  # checked (and refused, if bad) by the follower


def _real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _open_spec(
    closed: dict[str, object],
    arrival_rate: object,
    max_users: object,
    arrivals: object,
    duration: str | int | float | None,
    stop_timeout: str | int | float | None,
    overrides: SpecOverrides,
) -> LoadSpec:
    _refuse(
        "arrival_rate",
        closed,
        (),
        "in the open model iterations start on the arrival schedule, not per user (no users, "
        "rate, stages, wait or iterations)",
    )
    if arrivals is None:
        arrivals = "even"
    if arrivals not in ARRIVALS:
        raise _error("arrivals", arrivals, "'even' (evenly spaced) or 'poisson' (exponential gaps)")
    staged = isinstance(arrival_rate, list | tuple)
    if staged:
        if duration is not None:
            raise SpecError(
                "load(arrival_rate=[...], duration=...): the stages give the duration (their "
                "sum); drop duration="
            )
        profile = parse_stages(arrival_rate, argument="arrival_rate")
    else:
        rate = arrival_rate
        if (
            isinstance(rate, bool)
            or not isinstance(rate, numbers.Real)
            or not (math.isfinite(float(rate)) and float(rate) > 0)
        ):
            raise _error(
                "arrival_rate",
                rate,
                "a number of iterations per second > 0, or stages [(duration, rate), ...]",
            )
        seconds = overrides.default_duration if duration is None else parse_duration(duration)
        profile = constant(float(rate), seconds)
    pool = _max_users(max_users, None, "arrival_rate", overrides)
    if overrides.users is not None:
        pool = overrides.users
    if overrides.scale is not None:
        profile = profile.scaled(overrides.scale)
        pool = max(1, math.ceil(pool * overrides.scale))
    if overrides.duration is not None:
        if staged:
            stretch = overrides.duration / profile.duration
            profile = Profile(tuple(Stage(s.duration * stretch, s.target) for s in profile.stages))
        else:
            profile = constant(profile.peak, overrides.duration)
    limit = MAX_ARRIVAL_RATE * overrides.processes
    if profile.peak > limit:
        where = f"{overrides.processes} processes" if overrides.processes > 1 else "one process"
        raise _error(
            "arrival_rate",
            arrival_rate,
            f"at most {MAX_ARRIVAL_RATE:,.0f} iterations/s per process ({limit:,.0f} with {where}"
            f"; this asks for {profile.peak:,.6g}/s)",
        )
    _check_bound(pool, pool, overrides)
    if pool < overrides.processes:
        raise _error("max_users", pool, f"at least the number of processes ({overrides.processes})")
    base = build_spec(
        users=pool,
        duration=profile.duration,
        stop_timeout=stop_timeout,
        overrides=SpecOverrides(stop_timeout=overrides.stop_timeout, processes=overrides.processes),
    )
    model = OpenModel(profile, poisson=arrivals == "poisson", staged=staged)
    return dataclasses.replace(base, open_model=model)
