"""``measure``: time and count any code exactly like an HTTP request.

A block (or a decorated function) becomes one sample under its name: the same histograms,
failure grouping with a sample traceback, objectives and xdist merge as ``http.get``. This is
how a load test times what pytest-swarm has no client for: WebSocket round trips, Redis or SQL
queries, gRPC calls, or a transaction spanning several requests.

Example:
    >>> from pytest_swarm import measure
    >>> with measure("redis GET") as m:       # outside a load test: timed, not recorded
    ...     m.size = 42                       # bytes received, for the content-size figures
    >>> m.elapsed >= 0, m.size
    (True, 42)
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

- A decorated function takes the parameters of the function it wraps: a call that does not
  fit them raises ``TypeError`` before anything is timed, and is no sample (nothing ran).

Cost (``python benchmarks/recording.py --breakdown``): a block is one object, two clock reads
and one ``Recorder.record`` call, about 0.7x what ``http``'s request path spends recording a
request. That holds for the C block (``pytest_swarm/_speedups.c``), which ``measure`` is where
the optional extension was compiled: in pure Python (:class:`PyMeasurement`, the fallback)
CPython's price for a ``with`` on a fresh object (allocating it, and three calls into Python
code: ``__init__``, ``__enter__``, ``__exit__``) makes a block about 1.4x. Both share the
uncommon cases (a verdict, an exception: :func:`_settle`), the checks and the decorator, which
builds no block object: its wrapper is compiled once per parameter list with the function's
own parameters, so a call through it is a plain call.
"""

from __future__ import annotations

import functools
import inspect
import keyword
import linecache
import operator
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from time import perf_counter
from types import TracebackType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

from .clients.common import error_message
from .native import pure_python
from .stats.recorder import MAX_NAME_LENGTH, Recorder

P = ParamSpec("P")
R = TypeVar("R")

# Characters: names are table rows and wire keys, never unbounded. The recorder cuts longer
# names (ending with "…") the same way as request names, once per name and interval.
MAX_NAME = MAX_NAME_LENGTH
# Bytes of one block's content: far above any real response, far below what a report
# interval's sum of them could overflow in the wire's unsigned 64-bit integers.
MAX_SIZE = 1 << 40

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


def _checked_name(name: object) -> str:
    """The slow path of the name check: a ``str`` subclass, or a clear error."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"measure(name={name!r}): the name must be a non-empty string")
    return str(name)  # a plain str: a subclass could hash or compare in surprising ways


def _checked_size(name: str, size: object) -> int:
    """``size`` as a bounded byte count, or a clear error naming the block."""
    if isinstance(size, bool) or not hasattr(size, "__index__"):
        raise TypeError(f"measure({name!r}).size takes a number of bytes (an int), not {size!r}")
    try:
        n = operator.index(size)  # int, or an int-like such as numpy's
    except TypeError:
        raise TypeError(
            f"measure({name!r}).size takes a number of bytes (an int), not {size!r}"
        ) from None
    if not 0 <= n <= MAX_SIZE:
        raise ValueError(f"measure({name!r}).size must be between 0 and {MAX_SIZE:,} bytes: {n}")
    return n


def _settle(
    recorder: Recorder,
    name: str,
    elapsed: float,
    size: int,
    verdict: BaseException | str | bool | None,
    exc: BaseException | None,
) -> None:
    """Record a block that has a verdict or ended with an exception (the uncommon cases)."""
    if verdict is True:
        recorder.record(name, elapsed, size)
    elif isinstance(verdict, BaseException):
        recorder.record_failure(
            name, elapsed, type(verdict).__name__, error_message(verdict), verdict, size
        )
    elif isinstance(verdict, str):
        recorder.record_failure(name, elapsed, "Failure", verdict[:200], None, size)
    elif exc is None:
        recorder.record(name, elapsed, size)
    elif isinstance(exc, Exception):
        recorder.record_failure(name, elapsed, type(exc).__name__, error_message(exc), exc, size)
    else:
        # GreenletExit, KeyboardInterrupt, SystemExit: the user was stopped inside the
        # block, which never finished; a sample would pass an unfinished block off as
        # measured.
        return
    if isinstance(exc, Exception):
        # Recorded here: the iteration fails with it, but counts once.
        exc._swarm_recorded = True  # type: ignore[attr-defined]


class PyMeasurement:
    """One timed block: ``measure(name)``. Usable once as a ``with`` block, or as a decorator
    (each call of the decorated function is then a block of its own).

    This is the pure-Python implementation; :data:`Measurement` is the C one from
    ``pytest_swarm._speedups`` where it was built (the same behaviour, at about half the cost),
    and this class otherwise.

    Example:
        >>> with measure("query") as m:
        ...     rows = [1, 2, 3]
        ...     if not rows:
        ...         m.failure("no rows")
        >>> m.name, m.elapsed > 0
        ('query', True)
    """

    __slots__ = ("_size", "_start", "_verdict", "elapsed", "name")

    def __init__(self, name: str) -> None:
        # The plain-str test is the cheap one (an attribute load); the rest is the slow path.
        if name.__class__ is not str or not name:
            name = _checked_name(name)
        self.name = name
        self.elapsed = 0.0
        self._size = 0
        self._verdict: BaseException | str | bool | None = None
        self._start = 0.0  # 0.0: not entered yet (perf_counter() is never 0 once running)

    @property
    def size(self) -> int:
        """Bytes of content the block received (0 unless set), for the content-size figures."""
        return self._size

    @size.setter
    def size(self, size: int) -> None:
        if size.__class__ is int and 0 <= size <= MAX_SIZE:  # the common case: no call
            self._size = size
        else:
            self._size = _checked_size(self.name, size)

    def success(self) -> None:
        """Count this block as a success, whatever happens in it."""
        self._verdict = True

    def failure(self, reason: BaseException | str) -> None:
        """Count this block as a failure with ``reason`` (a message or an exception)."""
        if not isinstance(reason, BaseException | str):
            raise TypeError(f"measure({self.name!r}).failure() takes a message or an exception")
        self._verdict = reason

    def __enter__(self) -> PyMeasurement:
        if self._start:
            # Two greenlets in one block object would share its clock and verdict.
            raise RuntimeError(
                f"measure({self.name!r}) was entered twice: call measure() for each block"
            )
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
        if kind is None and self._verdict is None:  # the common case: one test, one call
            recorder.record(self.name, elapsed, self._size)
        else:
            _settle(recorder, self.name, elapsed, self._size, self._verdict, exc)

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        """Decorate ``func``: each call is one block. No block object is made per call (the
        function cannot reach one anyway), only the clock pair and the record."""
        if self._start:
            raise RuntimeError(f"measure({self.name!r}) is a block in use, not a decorator")
        return _decorate(self.name, func)


def _decorate(name: str, func: Callable[P, R]) -> Callable[P, R]:
    """``func`` timed as a block named ``name`` per call (both implementations' decorator)."""
    params, call = _signature_of(func)
    timed = _wrapper_factory(params, call)(func, name, perf_counter, _settle)
    if params != _ANY:
        # The wrapper takes func's parameters by name: the same defaults make it bind a
        # call exactly as func would (the same objects, so mutable defaults stay shared).
        timed.__defaults__ = func.__defaults__
        timed.__kwdefaults__ = func.__kwdefaults__
    return cast("Callable[P, R]", functools.wraps(func)(timed))


# The decorator's wrapper, compiled once per parameter list. A wrapper taking
# ``(*args, **kwargs)`` builds a tuple and a dict per call and calls func through
# ``func(*args, **kwargs)``, which CPython 3.11 runs in a new interpreter loop: about a fifth
# of the decorator's cost (benchmarks/recording.py). With func's own parameters it is a plain
# call. Every name the wrapper uses itself starts with ``_swarm_`` (or is in _OWN_NAMES), so a
# function with such a parameter gets the generic wrapper.
_WRAPPER = """\
def _swarm_make(_swarm_func, _swarm_name, _swarm_clock, _swarm_settle):
    def timed({params}):
        _swarm_start = _swarm_clock()
        try:
            _swarm_result = _swarm_func({call})
        except BaseException as _swarm_exc:
            _swarm_elapsed = _swarm_clock() - _swarm_start
            _swarm_recorder = _active
            if _swarm_recorder is not None:
                _swarm_settle(_swarm_recorder, _swarm_name, _swarm_elapsed, 0, None, _swarm_exc)
            raise
        _swarm_elapsed = _swarm_clock() - _swarm_start
        _swarm_recorder = _active
        if _swarm_recorder is not None:
            _swarm_recorder.record(_swarm_name, _swarm_elapsed)
        return _swarm_result
    return timed
"""
_ANY = "*args, **kwargs"
_OWN_NAMES = frozenset({"_active", "BaseException"})  # the wrapper's other free names
_VARIADIC = inspect.CO_VARARGS | inspect.CO_VARKEYWORDS
# Distinct parameter lists compiled; past this, functions get the generic wrapper (a program
# generating functions must not grow this cache, nor linecache, without bound).
MAX_WRAPPERS = 256


def _signature_of(func: Callable[..., object]) -> tuple[str, str]:
    """The wrapper's parameter list and the call it makes: ``func``'s own for a plain Python
    function with named parameters, else ``*args, **kwargs``."""
    code = getattr(func, "__code__", None)
    if type(func) is not types.FunctionType or code is None or code.co_flags & _VARIADIC:
        return _ANY, _ANY
    positional = code.co_argcount
    names = code.co_varnames[: positional + code.co_kwonlyargcount]
    if not all(_passable(n) for n in names):
        return _ANY, _ANY
    params = list(names[:positional])
    if code.co_posonlyargcount:
        params.insert(code.co_posonlyargcount, "/")
    keyword_only = names[positional:]
    if keyword_only:
        params.append("*")
        params.extend(keyword_only)
    call = [*names[:positional], *(f"{n}={n}" for n in keyword_only)]
    signature = ", ".join(params)
    if signature not in _compiled and len(_compiled) >= MAX_WRAPPERS:
        return _ANY, _ANY
    return signature, ", ".join(call)


def _passable(name: str) -> bool:
    """Whether the wrapper can take a parameter of this name: an identifier (a code object
    built by hand can name its variables anything) that is none of the wrapper's own."""
    return (
        name.isidentifier()
        and not keyword.iskeyword(name)
        and not name.startswith("_swarm_")
        and name not in _OWN_NAMES
    )


_compiled: dict[str, Callable[..., types.FunctionType]] = {}


def _wrapper_factory(params: str, call: str) -> Callable[..., types.FunctionType]:
    """``_swarm_make(func, name, clock, settle)`` for this parameter list, compiled once."""
    make = _compiled.get(params)
    if make is None:
        source = _WRAPPER.format(params=params, call=call)
        filename = f"<measure wrapper ({params})>"
        # Tracebacks through the wrapper show its lines, as for any other source.
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        namespace: dict[str, Callable[..., types.FunctionType]] = {}
        # Globals are this module's: the wrapper reads _active as it is at each call.
        exec(compile(source, filename, "exec"), globals(), namespace)
        make = _compiled[params] = namespace["_swarm_make"]
    return make


def _accelerated() -> type[Any] | None:
    """The C implementation, bound to this module's functions, or None where it was not built
    (or ``SWARM_PURE_PYTHON=1`` asks for the pure-Python one)."""
    if pure_python():
        return None
    try:
        from . import _speedups
    except ImportError:
        return None
    # It reads _active from this module's globals at each block, as the decorator does.
    _speedups.bind(globals(), _settle, _checked_name, _checked_size, _decorate, MAX_SIZE)
    return _speedups.Measurement


_fast = _accelerated()
ACCELERATED = _fast is not None
"""Whether ``measure`` blocks run in C (``pytest_swarm._speedups`` was built and is used)."""
if TYPE_CHECKING:
    Measurement = PyMeasurement
else:
    Measurement = _fast or PyMeasurement

measure = Measurement
"""Time the block (or each call of the decorated function) as one sample named ``name``:
``with measure("redis GET"): ...`` (the class itself: calling it is the cheapest way to make a
block)."""


def is_recording() -> bool:
    """Whether ``measure`` blocks record now (a load test is running in this process)."""
    return _active is not None


__all__ = [
    "ACCELERATED",
    "MAX_SIZE",
    "Measurement",
    "PyMeasurement",
    "is_recording",
    "measure",
    "recording",
]
