"""Micro-benchmark: what recording one request costs on a load generator.

Nanoseconds per request, net of what the same loop costs without the recording, as the
median over ``--rounds`` rounds. Each round runs every row once, in turn, so that a noisy
neighbour slows all rows of a round alike; a row's figure is the median of its per-round
differences with its own baseline (the empty loop, or the same calls unrecorded), and a ratio
is the median of the per-round ratios. Rows are timed in this thread's CPU time (time spent
descheduled on a shared machine is not the code's). Every row uses a fresh
:class:`Recorder`, the same three request names equally often, and ``time.perf_counter`` as
the recording clock.

- ``Recorder.record`` alone (what a client calls per request), the same plus its share of the
  per-interval fold into the HDR histogram, ``hdrh``'s ``record_value`` (a naive HDR
  integration), and a bare ``perf_counter`` pair, for scale;
- the recording lines of ``http``'s request path (``HttpSession.request`` in
  ``pytest_swarm/clients/http.py``: clock pair, ``catch_response`` test, ``_size(response)``,
  status test, ``self.recorder.record(name, elapsed, size)``) and of ``fast_http``'s
  (``clients/fast.py``), each net of the same method without them; and the least any recording
  can do: a clock pair and a ``record`` call through local names;
- ``with measure(name): pass`` (the C block where it was built, and the pure-Python one),
  the same setting ``m.size``, and a ``@measure(name)``
  function (net of calling the undecorated function; one with named parameters, and one
  taking ``*args, **kwargs``, which gets the generic wrapper).

``--breakdown`` adds where a pure-Python block's nanoseconds go: the same block
built up step by step from an empty ``with`` on a fresh object.

Run:  python benchmarks/recording.py [--requests 50000] [--rounds 15] [--breakdown]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from types import TracebackType

import requests
from hdrh.histogram import HdrHistogram

from pytest_swarm import measure, timing
from pytest_swarm.clients.fast import FastResponse
from pytest_swarm.clients.http import _size
from pytest_swarm.stats.recorder import Recorder
from pytest_swarm.timing import PyMeasurement, recording

# Which implementation ``measure`` is here: the C one (pytest_swarm/_speedups.c) where it was
# built, else the pure-Python class (SWARM_PURE_PYTHON=1 also asks for it).
BLOCK = "C" if timing.ACCELERATED else "pure Python"

NAMES = ("GET /", "GET /items", "POST /cart")
BODY = b"x" * 100


class HttpShape:
    """The lines of ``HttpSession.request`` that time and record a request that succeeded, around
    a request that takes no time (keep in step with clients/http.py)."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def request(
        self, name: str, response: requests.Response, catch_response: bool = False
    ) -> object:
        start = time.perf_counter()
        elapsed = time.perf_counter() - start
        if catch_response:
            raise AssertionError
        size = _size(response)
        if response.status_code >= 400:
            raise AssertionError
        self.recorder.record(name, elapsed, size)
        return response

    def unrecorded(
        self, name: str, response: requests.Response, catch_response: bool = False
    ) -> object:
        return response


class FastShape:
    """The same for ``FastHttpSession.request`` (clients/fast.py)."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def request(self, name: str, response: FastResponse, catch_response: bool = False) -> object:
        start = time.perf_counter()
        elapsed = time.perf_counter() - start
        response.elapsed = elapsed
        if catch_response:
            raise AssertionError
        if response.status_code >= 400:
            raise AssertionError
        self.recorder.record(name, elapsed, len(response.content))
        return response

    def unrecorded(self, name: str, response: FastResponse, catch_response: bool = False) -> object:
        return response


def run(
    rows: list[tuple[str, Callable[[], object], Callable[[], object]]], n: int, rounds: int
) -> dict[str, list[float]]:
    """label -> per round, (row - its baseline) in ns per item."""
    baselines = {id(base): base for _, _, base in rows}
    diffs: dict[str, list[float]] = {label: [] for label, _, _ in rows}
    for _ in range(rounds):
        took: dict[int, float] = {}
        for key, base in baselines.items():
            took[key] = timed_ns(base, n)
        for label, fn, base in rows:
            diffs[label].append(timed_ns(fn, n) - took[id(base)])
    return diffs


def ratio(rounds: dict[str, list[float]], row: str, against: str) -> float:
    """The median over rounds of row / against within each round (a slow round slows both)."""
    return statistics.median(a / b for a, b in zip(rounds[row], rounds[against], strict=True))


def timed_ns(fn: Callable[[], object], n: int) -> float:
    # This thread's CPU time, not the wall clock: on a shared machine the time spent
    # descheduled while other processes run is not the code's cost.
    t0 = time.thread_time_ns()
    fn()
    return (time.thread_time_ns() - t0) / n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=50_000)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument(
        "--interval-requests",
        type=int,
        default=10_000,
        help="requests per report interval, folded together (a worker at 10,000 req/s)",
    )
    ap.add_argument("--breakdown", action="store_true", help="where a measure block's ns go")
    args = ap.parse_args()
    n = args.requests - args.requests % len(NAMES)  # every name as often as the others
    rng = random.Random(1)
    # Latencies like a real interval: lognormal around 5 ms, in seconds.
    samples = [rng.lognormvariate(-5.3, 0.6) for _ in range(n)]
    names = [NAMES[i % len(NAMES)] for i in range(n)]
    pairs = list(zip(names, samples, strict=True))
    interval = args.interval_requests

    def empty_loop() -> None:
        for _name, _s in pairs:
            pass

    def perf_counter_pair() -> None:
        pc = time.perf_counter
        for _ in pairs:
            pc()
            pc()

    def swarm_record() -> None:
        record = Recorder().record
        for name, s in pairs:
            record(name, s)

    def swarm_record_and_fold() -> None:
        # A drain per report interval of ``interval`` requests, as a worker does once a second.
        rec = Recorder()
        record = rec.record
        for start in range(0, n, interval):
            for name, s in pairs[start : start + interval]:
                record(name, s)
            rec.drain()

    def hdrh_record() -> None:
        rv = HdrHistogram(1, 3_600_000_000, 3).record_value
        for _, s in pairs:
            rv(int(s * 1_000_000))

    response = requests.Response()
    response._content = BODY
    response.status_code = 200
    fast_response = FastResponse(200, "OK", {}, BODY, "http://127.0.0.1/")

    def http_path() -> None:
        request = HttpShape(Recorder()).request
        for name, _s in pairs:
            request(name, response)

    def http_unrecorded() -> None:
        request = HttpShape(Recorder()).unrecorded
        for name, _s in pairs:
            request(name, response)

    def fast_path() -> None:
        request = FastShape(Recorder()).request
        for name, _s in pairs:
            request(name, fast_response)

    def fast_unrecorded() -> None:
        request = FastShape(Recorder()).unrecorded
        for name, _s in pairs:
            request(name, fast_response)

    def floor_path() -> None:
        record = Recorder().record
        pc = time.perf_counter
        for name, _s in pairs:
            start = pc()
            record(name, pc() - start)

    def measure_block() -> None:
        with recording(Recorder()):  # as inside a load test: every block records
            for name, _s in pairs:
                with measure(name):
                    pass

    def py_measure_block() -> None:
        with recording(Recorder()):
            for name, _s in pairs:
                with PyMeasurement(name):
                    pass

    def measure_block_sized() -> None:
        with recording(Recorder()):
            for name, _s in pairs:
                with measure(name) as m:
                    m.size = 100

    # Three functions under the three names, each called from its own call site, as in a
    # user's code (one call site calling three functions would defeat CPython's call
    # specialisation for both the plain and the decorated calls).
    def op0(x: object) -> object:
        return x

    def op1(x: object) -> object:
        return x

    def op2(x: object) -> object:
        return x

    def any0(*args: object, **kwargs: object) -> object:
        return args

    def any1(*args: object, **kwargs: object) -> object:
        return args

    def any2(*args: object, **kwargs: object) -> object:
        return args

    thirds = range(n // len(NAMES))
    t0, t1, t2 = (measure(name)(op) for name, op in zip(NAMES, (op0, op1, op2), strict=True))
    a0, a1, a2 = (measure(name)(op) for name, op in zip(NAMES, (any0, any1, any2), strict=True))

    def calls_plain() -> None:
        for _ in thirds:
            op0(1)
            op1(1)
            op2(1)

    def calls_timed() -> None:
        with recording(Recorder()):
            for _ in thirds:
                t0(1)
                t1(1)
                t2(1)

    def calls_plain_any() -> None:
        for _ in thirds:
            any0(1)
            any1(1)
            any2(1)

    def calls_timed_any() -> None:
        with recording(Recorder()):
            for _ in thirds:
                a0(1)
                a1(1)
                a2(1)

    rows: list[tuple[str, Callable[[], object], Callable[[], object]]] = [
        ("perf_counter pair (timing, for scale)", perf_counter_pair, empty_loop),
        ("Recorder.record", swarm_record, empty_loop),
        ("Recorder.record + fold (drain) share", swarm_record_and_fold, empty_loop),
        ("hdrh HdrHistogram.record_value", hdrh_record, empty_loop),
        ("http request path's recording", http_path, http_unrecorded),
        ("fast_http request path's recording", fast_path, fast_unrecorded),
        ("floor: clock pair + record, local names", floor_path, empty_loop),
        (f"with measure(name): pass [{BLOCK}]", measure_block, empty_loop),
        ("with measure(name): pass [pure Python]", py_measure_block, empty_loop),
        ("with measure(name) as m: m.size = 100", measure_block_sized, empty_loop),
        ("@measure(name) def f(x), net of the call", calls_timed, calls_plain),
        ("@measure(name) def f(*args, **kwargs), net", calls_timed_any, calls_plain_any),
    ]
    if args.breakdown:
        rows += breakdown_rows(pairs)
    per_round = run(rows, n, args.rounds)
    net = {label: statistics.median(d) for label, d in per_round.items()}
    http = "http request path's recording"
    print(
        f"ns per request, net of the same loop without recording (CPU time); medians of "
        f"{args.rounds} rounds of {n:,}"
    )
    print(f"{'':<46} {'ns':>7} {'vs http':>8}")
    for label, ns in net.items():
        print(f"{label:<46} {ns:>7.0f} {ratio(per_round, label, http):>7.2f}x")
    target = 500
    fold = net["Recorder.record + fold (drain) share"]
    print(f"pytest-swarm recording incl. fold: {fold:.0f} ns per request (target <= {target} ns)")
    against = [
        ("http's request path", http),
        ("fast_http's", "fast_http request path's recording"),
        ("the floor", "floor: clock pair + record, local names"),
    ]
    for what, label in [
        (f"a measure block [{BLOCK}]", f"with measure(name): pass [{BLOCK}]"),
        ("a measure block [pure Python]", "with measure(name): pass [pure Python]"),
        ("a measure block with m.size", "with measure(name) as m: m.size = 100"),
        ("a measured call", "@measure(name) def f(x), net of the call"),
    ]:
        ratios = ", ".join(f"{ratio(per_round, label, row):.2f}x {who}" for who, row in against)
        print(f"{what} costs {ratios}")


# --breakdown: the pure-Python block built up step by step. The last step is PyMeasurement as
# it stands; the steps before it are copies cut short (keep them in step with
# pytest_swarm/timing.py). The C block has no such steps to show: it is one C call per step.


class _Empty:
    """``with`` on a fresh object: allocation, a one-line __init__, empty __enter__/__exit__."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> _Empty:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None


class _Init:
    """+ Measurement.__init__: the name test and its five slots."""

    __slots__ = ("_size", "_start", "_verdict", "elapsed", "name")

    def __init__(self, name: str) -> None:
        if name.__class__ is not str or not name:
            raise ValueError(name)
        self.name = name
        self.elapsed = 0.0
        self._size = 0
        self._verdict: object = None
        self._start = 0.0

    def __enter__(self) -> _Init:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None


class _Enter(_Init):
    """+ Measurement.__enter__: the entered-twice test and the first clock read."""

    __slots__ = ()

    def __enter__(self) -> _Enter:
        if self._start:
            raise RuntimeError
        self._start = time.perf_counter()
        return self


class _Exit(_Enter):
    """+ Measurement.__exit__ up to the record: the second clock read, elapsed, the tests."""

    __slots__ = ()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.elapsed = elapsed = time.perf_counter() - self._start
        recorder = timing._active
        if recorder is None:
            return
        if kind is None and self._verdict is None and elapsed < 0:
            raise AssertionError  # never: keeps the tests without the record call


def breakdown_rows(
    pairs: list[tuple[str, float]],
) -> list[tuple[str, Callable[[], object], Callable[[], object]]]:
    def empty_loop() -> None:
        for _name, _s in pairs:
            pass

    def block_of(cls: type[_Empty] | type[_Init] | type[PyMeasurement]) -> Callable[[], None]:
        def blocks() -> None:
            with recording(Recorder()):
                for name, _s in pairs:
                    with cls(name):
                        pass

        return blocks

    def shared_object() -> None:
        block = _Empty("x")
        for _name, _s in pairs:
            with block:
                pass

    return [
        ("  with on one shared object (2 calls from C)", shared_object, empty_loop),
        ("  + a fresh object each time (alloc, __init__)", block_of(_Empty), empty_loop),
        ("  + __init__'s name test and 5 slots", block_of(_Init), empty_loop),
        ("  + __enter__: entered-twice test, clock", block_of(_Enter), empty_loop),
        ("  + __exit__: clock, elapsed, tests", block_of(_Exit), empty_loop),
        ("  + recorder.record = the pure-Python block", block_of(PyMeasurement), empty_loop),
    ]


if __name__ == "__main__":
    main()
