"""Custom load shapes: a callable ``shape(elapsed_seconds)`` that says how many users should run.

The callable returns ``users``, ``(users, rate)`` or ``None`` (the load ends), like Locust's
``LoadTestShape.tick``. :class:`ShapeFollower` turns its answers into the swarm's user level:
``users`` are the swarm's target; ``rate`` (users per second, swarm-wide) bounds how fast the
level moves towards it, up and down; without a rate the level jumps. Every answer is checked:
user code is hostile until bounded, and a bad answer is a :class:`ShapeError` whose message
names the argument and the value, never an exception escaping a greenlet.

The level is a pure function of the answers and the elapsed times the runner passes, so every
xdist worker, asking its own copy of the shape at about the same instant, computes the same
level and runs its own share of it (the users numbered below the level, see ``stages.py``).

Example:
    >>> follow = ShapeFollower(lambda t: (10, 5.0) if t < 10 else None, max_users=100)
    >>> follow.level(0.0), follow.level(1.0), follow.level(3.0), follow.level(10.0)
    (0.0, 5.0, 10.0, None)
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable

ShapeFn = Callable[[float], object]

MAX_SHAPE_RATE = 1_000_000.0
"""The largest ``rate`` a shape may return (users per second): far above any spawn rate a
process sustains, low enough that nonsense (``1e300``) is refused."""


class ShapeError(ValueError):
    """The shape returned (or raised) something the runner cannot follow."""


def shape_name(fn: object) -> str:
    """How messages and reports name a shape: its name (``--swarm-scale`` adds the factor),
    else its repr."""
    return str(getattr(fn, "shape_name", None) or getattr(fn, "__name__", None) or repr(fn))


def check_answer(
    answer: object, *, max_users: int, fn: object = None
) -> tuple[float, float | None] | None:
    """A shape's answer -> ``(users, rate or None)`` or ``None`` (the load ends).

    >>> check_answer(3, max_users=10), check_answer((4, 2), max_users=10)
    ((3.0, None), (4.0, 2.0))
    >>> try:
    ...     check_answer(-1, max_users=10)
    ... except ShapeError as exc:
    ...     print(exc)
    load(shape=None): shape returned -1: users must be a number >= 0
    """
    where = f"load(shape={shape_name(fn) if fn is not None else None})"
    if answer is None:
        return None
    rate: float | None = None
    users_value: object = answer
    if isinstance(answer, tuple | list):
        if len(answer) != 2:
            raise ShapeError(
                f"{where}: shape returned {answer!r}: it must return users, (users, rate) or None"
            )
        users_value, rate_value = answer
        if (
            isinstance(rate_value, bool)
            or not isinstance(rate_value, numbers.Real)
            or not math.isfinite(float(rate_value))
            or not 0 < float(rate_value) <= MAX_SHAPE_RATE
        ):
            raise ShapeError(
                f"{where}: shape returned {answer!r}: rate must be a number of users per "
                f"second > 0 and <= {MAX_SHAPE_RATE:g}"
            )
        rate = float(rate_value)
    if (
        isinstance(users_value, bool)
        or not isinstance(users_value, numbers.Real)
        or not math.isfinite(float(users_value))
        or float(users_value) < 0
    ):
        raise ShapeError(
            f"{where}: shape returned {answer!r}: users must be a number >= 0"
            if isinstance(answer, numbers.Real) and not isinstance(answer, bool)
            else f"{where}: shape returned {answer!r}: it must return users (a number >= 0), "
            "(users, rate) or None"
        )
    users = float(users_value)
    if users > max_users:
        raise ShapeError(
            f"{where}: shape returned {answer!r}: more than max_users={max_users} users; "
            "raise max_users= if the shape really needs them"
        )
    return users, rate


class ShapeFollower:
    """The swarm's user level over time, following a shape (pure: the caller passes times).

    ``level(elapsed)`` asks the shape, checks the answer and returns the level (a float: the
    users numbered below it run), or None once the shape said the load ends (then always
    None: the load does not restart)."""

    def __init__(self, fn: ShapeFn, *, max_users: int) -> None:
        self.fn = fn
        self.max_users = max_users
        self._level = 0.0
        self._last: float | None = None
        self._ended = False

    def level(self, elapsed: float) -> float | None:
        if self._ended:
            return None
        try:
            answer = self.fn(elapsed)
        except Exception as exc:
            raise ShapeError(
                f"load(shape={shape_name(self.fn)}): shape({elapsed:.3g}) raised "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        checked = check_answer(answer, max_users=self.max_users, fn=self.fn)
        if checked is None:
            self._ended = True
            return None
        target, rate = checked
        since = 0.0 if self._last is None else max(elapsed - self._last, 0.0)
        self._last = elapsed
        if rate is None:
            self._level = target
        else:
            step = rate * since
            if target > self._level:
                self._level = min(target, self._level + step)
            else:
                self._level = max(target, self._level - step)
        return self._level
