"""Load-test parameters: parsing, validation, overrides and per-worker shares.

Everything here is pure logic.  A :class:`SpecError` message always names the
argument it is about (``load(duration='abc'): duration must be ...``); the caller
prefixes the test name.

>>> spec = build_spec(users=50, rate=10, duration="20s", overrides=SpecOverrides())
>>> spec.describe()
'50 users @ 10/s for 20s'
>>> split_users(10, 10.0, workers=3, worker_index=1)
([1, 4, 7], 3.0)
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from .workload.models import OpenModel
    from .workload.shape import ShapeFn
    from .workload.stages import Profile

WaitFn: TypeAlias = Callable[[], float]
"""A think-time function: called between iterations, returns seconds (>= 0)."""

WaitSpec: TypeAlias = (
    "int | float | str | tuple[float | str, float | str] | list[float | str] | WaitFn | None"
)

_rng = random.Random()

_NUM = r"(?:\d+(?:\.\d*)?|\.\d+)"
_NUMBER_RE = re.compile(_NUM)
_COMPONENT_RE = re.compile(rf"\s*({_NUM})\s*(h|ms|us|µs|m|s)")
# unit -> (multiplier, divisor, rank); sub-second units divide so "300ms" == 0.3 exactly.
_UNITS: dict[str, tuple[float, float, int]] = {
    "h": (3600.0, 1.0, 0),
    "m": (60.0, 1.0, 1),
    "s": (1.0, 1.0, 2),
    "ms": (1.0, 1e3, 3),
    "us": (1.0, 1e6, 4),
    "µs": (1.0, 1e6, 4),
}
_DURATION_HINT = "a duration like '20s', '500ms', '2m30s' or '1h' (units h, m, s, ms, us)"
_MIN_RATE = 1e-3
"""Smallest spawn rate ``scale`` may produce (one user every ~17 minutes)."""

MAX_USERS_PER_PROCESS = 100_000
"""The most users one process may run. A sleeping user costs ~6 KiB (docs/numbers.md), so this
is ~600 MiB, and starting that many already takes seconds; far more never starts at all
(``users=10**9`` ran forever with no request, ``users=10**6`` used 747 MiB in a 2 s test still
running at 15 s). Under xdist the bound is per worker: ``-n N`` allows ``N`` times this."""


LOAD_ARGUMENTS = (
    "users",
    "rate",
    "duration",
    "wait",
    "iterations",
    "stop_timeout",
    "stages",
    "shape",
    "arrival_rate",
    "max_users",
    "arrivals",
)
"""Every argument ``load(...)`` and ``swarm.run`` take; the marker refuses any other. One of
``users``, ``stages``, ``shape`` or ``arrival_rate`` says which model runs."""


class SpecError(ValueError):
    """An invalid load-test parameter; the message names the argument or option."""


def _error(argument: str, value: object, expected: str, func: str = "load") -> SpecError:
    """``load(users=0): users must be ...``; options and ini keys stand alone:
    ``--swarm-users=0: --swarm-users must be ...``."""
    where = f"{argument}={value!r}"
    if argument.isidentifier() and not argument.startswith("swarm_"):
        where = f"{func}({where})"
    return SpecError(f"{where}: {argument} must be {expected}")


def _as_float(value: object) -> float | None:
    """``float(value)`` for real numbers other than bools, else None."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    return None


def _parse_text(text: str) -> float | None:
    """Seconds in a duration string, or None when it is not one."""
    text = text.strip()
    if _NUMBER_RE.fullmatch(text):
        return float(text)
    total, pos, last_rank = 0.0, 0, -1
    while pos < len(text):
        match = _COMPONENT_RE.match(text, pos)
        if match is None:
            return None
        mul, div, rank = _UNITS[match.group(2)]
        if rank <= last_rank:
            return None
        total += float(match.group(1)) * mul / div
        pos, last_rank = match.end(), rank
    return total if last_rank >= 0 else None


def _seconds(value: object, argument: str, *, allow_zero: bool, shown: object = None) -> float:
    shown = value if shown is None else shown
    if allow_zero:
        expected = f"a number of seconds >= 0 or {_DURATION_HINT}"
    else:
        expected = f"a positive number of seconds or {_DURATION_HINT}"
    seconds = _parse_text(value) if isinstance(value, str) else _as_float(value)
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        raise _error(argument, shown, expected)
    if seconds == 0 and not allow_zero:
        raise _error(argument, shown, expected)
    return seconds


def parse_duration(value: str | int | float, *, argument: str = "duration") -> float:
    """Parse a positive duration into seconds.

    Numbers are seconds; strings are either numbers or unit components in
    decreasing order (``h``, ``m``, ``s``, ``ms``, ``us``).

    >>> parse_duration("2m30s"), parse_duration("500ms"), parse_duration(" 20 ")
    (150.0, 0.5, 20.0)
    >>> try:
    ...     parse_duration("5x", argument="stop_timeout")
    ... except SpecError as exc:
    ...     print(exc)  # doctest: +ELLIPSIS
    load(stop_timeout='5x'): stop_timeout must be a positive number of seconds or ...
    """
    return _seconds(value, argument, allow_zero=False)


def format_duration(seconds: float) -> str:
    """Render seconds compactly, in the syntax :func:`parse_duration` accepts.

    >>> format_duration(20), format_duration(90), format_duration(0.25), format_duration(5400)
    ('20s', '1m30s', '250ms', '1h30m')
    """
    if not math.isfinite(seconds) or seconds <= 0:
        return f"{seconds:g}s"
    if seconds < 1e-3:
        return f"{seconds * 1e6:g}us"
    if seconds < 1:
        return f"{seconds * 1e3:g}ms"
    if seconds < 60:
        return f"{seconds:g}s"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours:.0f}h" if hours else "", f"{minutes:.0f}m" if minutes else ""]
    parts.append(f"{secs:g}s" if round(secs, 6) else "")
    return "".join(parts)


@dataclass(frozen=True)
class _ConstantWait:
    seconds: float

    def __call__(self) -> float:
        return self.seconds


@dataclass(frozen=True)
class _UniformWait:
    low: float
    high: float

    def __call__(self) -> float:
        return _rng.uniform(self.low, self.high)


@dataclass(frozen=True)
class _CheckedWait:
    fn: Callable[[], float]

    def __call__(self) -> float:
        result: object = self.fn()
        seconds = _as_float(result)
        if seconds is None or not math.isfinite(seconds) or seconds < 0:
            raise SpecError(
                f"load(wait={self.fn!r}): wait function returned {result!r}; "
                "it must return a number of seconds >= 0"
            )
        return seconds


def parse_wait(value: WaitSpec) -> WaitFn:
    """Turn the ``wait`` argument into a think-time function.

    ``None`` -> no wait; a number or duration string -> constant; ``(low, high)``
    -> uniformly random in that range; a callable is checked on every call.

    >>> parse_wait(None)(), parse_wait("500ms")(), parse_wait((1, 1))()
    (0.0, 0.5, 1.0)
    >>> 0.1 <= parse_wait(("100ms", "1s"))() <= 1.0
    True
    """
    if value is None:
        return _ConstantWait(0.0)
    if isinstance(value, (tuple, list)):
        expected = f"a pair (low, high) with 0 <= low <= high, each seconds or {_DURATION_HINT}"
        if len(value) != 2:
            raise _error("wait", value, expected)
        low = _seconds(value[0], "wait", allow_zero=True, shown=value)
        high = _seconds(value[1], "wait", allow_zero=True, shown=value)
        if low > high:
            raise _error("wait", value, expected)
        return _ConstantWait(low) if low == high else _UniformWait(low, high)
    if _as_float(value) is not None or isinstance(value, str):
        return _ConstantWait(_seconds(value, "wait", allow_zero=True))
    if callable(value):
        return _CheckedWait(value)
    raise _error(
        "wait",
        value,
        f"None, a number of seconds >= 0, {_DURATION_HINT}, a (low, high) pair or a callable",
    )


def _format_number(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


@dataclass(frozen=True)
class LoadSpec:
    """Validated parameters of one load test.

    ``rate`` is users started per second; ``duration`` and ``stop_timeout`` are
    seconds; ``iterations`` caps iterations per user (None = unbounded).
    """

    users: int
    rate: float
    duration: float
    wait: WaitFn
    stop_timeout: float
    iterations: int | None = None
    # Ramp stages (closed model): the swarm's users follow this profile; ``users`` is then
    # its peak and ``duration`` its length.
    profile: Profile | None = None
    # A custom shape (closed model): the users follow ``shape(elapsed)``; ``users`` is then
    # the most it may ask for (max_users) and ``duration`` the longest the load may last.
    shape: ShapeFn | None = None
    # The open model: iterations start on a schedule; ``users`` is the pool's bound
    # (max_users) and ``duration`` the schedule's length.
    open_model: OpenModel | None = None

    def describe(self) -> str:
        """One line for reports.

        >>> LoadSpec(1, 0.5, 90, parse_wait(None), 5.0, iterations=3).describe()
        '1 user @ 0.5/s for 1m30s, max 3 iterations/user'
        """
        noun = "user" if self.users == 1 else "users"
        if self.open_model is not None:
            return f"{self.open_model.describe()}, up to {self.users} {noun} for " + (
                format_duration(self.duration)
            )
        if self.shape is not None:
            from .workload.shape import shape_name

            name = shape_name(self.shape)
            return f"shape {name}, up to {self.users} {noun} for {format_duration(self.duration)}"
        if self.profile is not None:
            stages = len(self.profile.stages)
            text = f"up to {self.users} {noun} in {stages} stage{'s' * (stages != 1)}"
            text += f" for {format_duration(self.duration)}"
            if self.iterations is not None:
                text += f", max {self.iterations} iterations/user"
            return text
        text = f"{self.users} {noun} @ {_format_number(self.rate)}/s"
        text += f" for {format_duration(self.duration)}"
        if self.iterations is not None:
            text += f", max {self.iterations} iterations/user"
        return text


def _check_int(value: object, argument: str, minimum: int, func: str = "load") -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise _error(argument, value, f"an integer >= {minimum}", func)
    return int(value)


def _check_positive(value: object, argument: str) -> float:
    number = _as_float(value)
    if number is not None and math.isfinite(number) and number > 0:
        return number
    raise _error(argument, value, "a finite number > 0")


@dataclass(frozen=True)
class SpecOverrides:
    """Command-line overrides and defaults; validated on construction.

    Errors name the option: ``--swarm-users``, ``--swarm-rate``, ``--swarm-duration``,
    ``--swarm-scale``, ``--swarm-stop-timeout``, or the ini key ``swarm_duration``
    (where ``default_duration`` comes from).
    """

    users: int | None = None
    rate: float | None = None
    duration: float | None = None
    scale: float | None = None
    default_duration: float = 10.0
    stop_timeout: float = 5.0
    processes: int = 1  # processes the users are spread over (xdist workers), for the bound

    def __post_init__(self) -> None:
        _check_int(self.processes, "processes", 1, "SpecOverrides")
        if self.users is not None:
            _check_int(self.users, "--swarm-users", 1)
        for value, option in (
            (self.rate, "--swarm-rate"),
            (self.duration, "--swarm-duration"),
            (self.scale, "--swarm-scale"),
        ):
            if value is not None:
                _check_positive(value, option)
        _check_positive(self.default_duration, "swarm_duration")
        _check_positive(self.stop_timeout, "--swarm-stop-timeout")


def build_spec(
    *,
    users: int | None = None,
    rate: float | None = None,
    duration: str | int | float | None = None,
    wait: WaitSpec = None,
    iterations: int | None = None,
    stop_timeout: str | int | float | None = None,
    stages: object = None,
    shape: object = None,
    arrival_rate: object = None,
    max_users: object = None,
    arrivals: object = None,
    overrides: SpecOverrides,
) -> LoadSpec:
    """Validate the ``load(...)`` arguments and apply the overrides.

    ``rate=None`` means "all users within about one second" (rate = users), and
    keeps following the final user count after ``--swarm-users``/``--swarm-scale``.
    ``shape=`` and ``arrival_rate=`` (the open model) are built in ``workload/models.py``.

    >>> build_spec(users=10, overrides=SpecOverrides(scale=2.5)).describe()
    '25 users @ 25/s for 10s'
    >>> build_spec(users=10, rate=4, overrides=SpecOverrides(users=3, scale=0.5)).describe()
    '2 users @ 2/s for 10s'
    >>> open_model = build_spec(arrival_rate=200, max_users=50, duration="1m",
    ...                         overrides=SpecOverrides())
    >>> open_model.describe()
    '200 iterations/s (evenly spaced), up to 50 users for 1m'
    """
    closed = {"users": users, "rate": rate, "stages": stages, "wait": wait}
    closed["iterations"] = iterations
    if shape is not None or arrival_rate is not None or max_users is not None or arrivals:
        from .workload.models import model_spec

        return model_spec(
            closed=closed,
            shape=shape,
            arrival_rate=arrival_rate,
            max_users=max_users,
            arrivals=arrivals,
            duration=duration,
            stop_timeout=stop_timeout,
            overrides=overrides,
        )
    if stages is not None:
        given = [a for a, v in (("users", users), ("rate", rate), ("duration", duration)) if v]
        if given:
            raise SpecError(
                f"load(stages=...): stages and {', '.join(given)} together: the stages give "
                "the users over time and the duration (their sum)"
            )
        return _staged_spec(stages, wait, iterations, stop_timeout, overrides)
    if users is None:
        raise SpecError(
            "load(): 'users' (or 'stages', 'shape', 'arrival_rate') is required, e.g. "
            "load(users=50)"
        )
    n_users = _check_int(users, "users", 1)
    spawn_rate = None if rate is None else _check_positive(rate, "rate")
    seconds = overrides.default_duration if duration is None else parse_duration(duration)
    wait_fn = parse_wait(wait)
    max_iterations = None if iterations is None else _check_int(iterations, "iterations", 1)
    if stop_timeout is None:
        stop = overrides.stop_timeout
    else:
        stop = parse_duration(stop_timeout, argument="stop_timeout")

    if overrides.users is not None:
        n_users = overrides.users
    if overrides.rate is not None:
        spawn_rate = overrides.rate
    if overrides.duration is not None:
        seconds = overrides.duration
    if overrides.scale is not None:
        scaled = n_users * overrides.scale
        if not math.isfinite(scaled) or scaled > 2**53:
            raise _error("--swarm-scale", overrides.scale, f"small enough for {n_users} users")
        n_users = max(1, math.floor(scaled + 0.5))
        if spawn_rate is not None:
            spawn_rate = max(_MIN_RATE, spawn_rate * overrides.scale)
    _check_bound(n_users, users, overrides)
    return LoadSpec(
        users=n_users,
        rate=float(n_users) if spawn_rate is None else spawn_rate,
        duration=seconds,
        wait=wait_fn,
        stop_timeout=stop,
        iterations=max_iterations,
    )


def _staged_spec(
    stages: object,
    wait: WaitSpec,
    iterations: int | None,
    stop_timeout: str | int | float | None,
    overrides: SpecOverrides,
) -> LoadSpec:
    """A closed-model spec whose users follow ramp stages. ``--swarm-scale`` multiplies every
    target, ``--swarm-users=N`` rescales the stages so their peak is N, ``--swarm-duration``
    stretches them to that total; ``--swarm-rate`` does not apply (the stages set the pace)."""
    from .workload.stages import Stage, parse_stages

    profile = parse_stages(stages)
    if overrides.users is not None:
        profile = profile.with_peak(float(overrides.users))
    if overrides.scale is not None:
        profile = profile.scaled(overrides.scale)
    if overrides.duration is not None:
        stretch = overrides.duration / profile.duration
        profile = type(profile)(
            tuple(Stage(s.duration * stretch, s.target) for s in profile.stages)
        )
    peak = max(1, math.ceil(profile.peak - 1e-9))
    _check_bound(peak, peak, overrides)
    base = build_spec(
        users=peak,
        duration=profile.duration,
        wait=wait,
        iterations=iterations,
        stop_timeout=stop_timeout,
        overrides=SpecOverrides(stop_timeout=overrides.stop_timeout, processes=overrides.processes),
    )
    return dataclasses.replace(base, profile=profile)


def _check_bound(n_users: int, users: int, overrides: SpecOverrides) -> None:
    """Refuse what cannot start: more users than :data:`MAX_USERS_PER_PROCESS` per process.
    The error names what asked for them: ``users``, ``--swarm-users`` or ``--swarm-scale``."""
    limit = MAX_USERS_PER_PROCESS * overrides.processes
    if n_users <= limit:
        return
    if overrides.scale is not None:
        argument, value = "--swarm-scale", overrides.scale
    elif overrides.users is not None:
        argument, value = "--swarm-users", overrides.users
    else:
        argument, value = "users", users
    where = f"{overrides.processes} processes" if overrides.processes > 1 else "one process"
    raise _error(
        argument,
        value,
        f"at most {MAX_USERS_PER_PROCESS:,} per process ({limit:,} with {where}; this asks "
        f"for {n_users:,}): more could not even start, let alone within the duration; spread "
        "them over more processes with pytest-xdist (-n)",
    )


def split_users(
    users: int, rate: float, workers: int, worker_index: int
) -> tuple[list[int], float]:
    """One worker's share of a distributed run: its global user indices and spawn rate.

    Indices are interleaved (worker ``k`` runs ``k, k + workers, ...``) and rates
    are proportional to share size, so the rates sum to ``rate``.  For users to
    start in exact global order, a worker may schedule user ``i`` at ``i / rate``
    (that is, delay its first user by ``indices[0] / rate``).

    >>> [split_users(10, 5.0, 3, k) for k in range(3)]
    [([0, 3, 6, 9], 2.0), ([1, 4, 7], 1.5), ([2, 5, 8], 1.5)]
    >>> split_users(2, 4.0, 3, 2)
    ([], 0.0)
    """
    _check_int(users, "users", 0, "split_users")
    _check_int(workers, "workers", 1, "split_users")
    if _check_int(worker_index, "worker_index", 0, "split_users") >= workers:
        raise _error("worker_index", worker_index, f"< workers ({workers})", "split_users")
    number = _as_float(rate)
    if number is None or not math.isfinite(number) or number < 0:
        raise _error("rate", rate, "a finite number >= 0", "split_users")
    indices = list(range(worker_index, users, workers))
    share = number * len(indices) / users if indices else 0.0
    return indices, share
