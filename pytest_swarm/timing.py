"""``measure``: time and count any code exactly like an HTTP request.

A block (or a decorated function) becomes one sample under its name: the same histograms,
failure grouping with a sample traceback, objectives and xdist merge as ``http.get``. This is
how a load test times what pytest-swarm has no client for: WebSocket round trips, Redis or SQL
queries, gRPC calls, or a transaction spanning several requests.

Example:
    >>> from pytest_swarm import measure
    >>> with measure("redis GET") as m:       # outside a load test: timed, not recorded
    ...     pass
    >>> m.elapsed >= 0
    True
    >>> @measure("checkout")
    ... def checkout():
    ...     return "order-1"
    >>> checkout()
    'order-1'

Rules:

- An exception inside the block records a failure with that error and propagates. The
  iteration fails because of it, but is not counted a second time (``catch_response``'s rule).
- ``m.success()`` and ``m.failure(reason)`` decide explicitly (a failure without an exception,
  or a success despite one); the last call wins.
- Nested blocks record each level: a transaction and the steps inside it.
- ``m.size = n`` gives the response size in bytes for the reports' content-size figures.
- Outside a load test (a functional test calling a shared helper) the block is timed
  (``m.elapsed``) and nothing is recorded.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from time import perf_counter
from types import TracebackType
from typing import ParamSpec, TypeVar

from .clients.common import error_message
from .stats.recorder import Recorder

P = ParamSpec("P")
R = TypeVar("R")

MAX_NAME = 200  # characters: names are table rows and wire keys, never unbounded

# The recorder of the load test running in this process. One per process (every user of a
# load test shares it), set by the engine for the duration of the load; None otherwise.
_active: Recorder | None = None


@contextmanager
def recording(recorder: Recorder) -> Iterator[None]:
    """Make ``measure`` blocks record into ``recorder`` while the load runs (engine use)."""
    global _active
    previous, _active = _active, recorder
    try:
        yield
    finally:
        _active = previous


class Measurement:
    """One timed block. Made by :func:`measure`; usable once as a ``with`` block, or any
    number of times as a decorator (each call is then a block of its own)."""

    __slots__ = ("_entered", "_start", "_verdict", "elapsed", "name", "size")

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"measure(name={name!r}): the name must be a non-empty string")
        self.name = name if len(name) <= MAX_NAME else name[: MAX_NAME - 1] + "…"
        self.elapsed = 0.0
        self.size: int | None = None
        self._verdict: BaseException | str | bool | None = None
        self._entered = False
        self._start = 0.0

    def success(self) -> None:
        """Count this block as a success, whatever happens in it."""
        self._verdict = True

    def failure(self, reason: BaseException | str) -> None:
        """Count this block as a failure with ``reason`` (a message or an exception)."""
        if not isinstance(reason, BaseException | str):
            raise TypeError(f"measure({self.name!r}).failure() takes a message or an exception")
        self._verdict = reason

    def __enter__(self) -> Measurement:
        if self._entered:
            # Two greenlets in one block object would share its clock and verdict.
            raise RuntimeError(
                f"measure({self.name!r}) was entered twice: call measure() for each block"
            )
        self._entered = True
        self._start = perf_counter()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.elapsed = elapsed = perf_counter() - self._start
        recorder = _active
        if recorder is None:
            return
        verdict, name = self._verdict, self.name
        if verdict is True:
            recorder.record(name, elapsed)
        elif isinstance(verdict, BaseException):
            recorder.record_failure(
                name, elapsed, type(verdict).__name__, error_message(verdict), verdict
            )
        elif isinstance(verdict, str):
            recorder.record_failure(name, elapsed, "Failure", verdict[:200])
        elif exc is None:
            recorder.record(name, elapsed)
        elif isinstance(exc, Exception):
            recorder.record_failure(name, elapsed, type(exc).__name__, error_message(exc), exc)
        else:
            # GreenletExit, KeyboardInterrupt, SystemExit: the user was stopped inside the
            # block, which never finished; a sample would pass an unfinished block off as
            # measured.
            return
        if exc is not None and isinstance(exc, Exception):
            # Recorded here: the iteration fails with it, but counts once.
            exc._swarm_recorded = True  # type: ignore[attr-defined]

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        name = self.name

        @functools.wraps(func)
        def timed(*args: P.args, **kwargs: P.kwargs) -> R:
            with Measurement(name):
                return func(*args, **kwargs)

        return timed


def measure(name: str) -> Measurement:
    """Time the block (or each call of the decorated function) as one sample named ``name``.

    Example:
        >>> with measure("redis GET"):
        ...     pass
    """
    return Measurement(name)


def is_recording() -> bool:
    """Whether ``measure`` blocks record now (a load test is running in this process)."""
    return _active is not None


__all__ = ["Measurement", "is_recording", "measure", "recording"]
