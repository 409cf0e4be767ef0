"""Micro-benchmark: what recording one request costs on a load generator.

Compares, per request, in nanoseconds (best of several repeats, same process, same values):
- pytest-swarm ``Recorder.record`` alone (the hot path a client calls per request),
- the same plus its share of the per-interval fold into the HDR histogram (``drain`` every
  ``--interval-requests`` requests: a report interval of a worker at that request rate),
- ``hdrh.HdrHistogram.record_value`` (what a naive HDR integration pays per request),
- a bare ``perf_counter`` pair (the timing every client needs anyway), for scale,
- ``http``'s request path around the request (clock pair, status check, ``record``), beside
  a ``with measure(name):`` block around nothing and a ``@measure(name)`` function doing
  nothing (what timing any other protocol costs; the function call itself is subtracted).

Run:  python benchmarks/recording.py [--requests 200000]
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable

from hdrh.histogram import HdrHistogram

from pytest_swarm import measure
from pytest_swarm.stats.recorder import Recorder
from pytest_swarm.timing import recording


def best_ns(fn: Callable[[], object], n: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        fn()
        best = min(best, (time.perf_counter_ns() - t0) / n)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=200_000)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument(
        "--interval-requests",
        type=int,
        default=10_000,
        help="requests per report interval, folded together (a worker at 10,000 req/s)",
    )
    args = ap.parse_args()
    n = args.requests
    rng = random.Random(1)
    # Latencies like a real interval: lognormal around 5 ms, in seconds.
    samples = [rng.lognormvariate(-5.3, 0.6) for _ in range(n)]
    names = [("GET /", "GET /items", "POST /cart")[i % 3] for i in range(n)]
    pairs = list(zip(names, samples, strict=True))

    def swarm_record() -> None:
        rec = Recorder()
        record = rec.record
        for name, s in pairs:
            record(name, s)

    interval = args.interval_requests

    def swarm_record_and_fold() -> None:
        # A drain per report interval of ``interval`` requests, as a worker does once a second.
        rec = Recorder()
        record = rec.record
        for start in range(0, n, interval):
            for name, s in pairs[start : start + interval]:
                record(name, s)
            rec.drain()

    def hdrh_record() -> None:
        h = HdrHistogram(1, 3_600_000_000, 3)
        rv = h.record_value
        for _, s in pairs:
            rv(int(s * 1_000_000))

    def empty_loop() -> None:
        for _name, _s in pairs:
            pass

    def perf_counter_pair() -> None:
        pc = time.perf_counter
        for _ in pairs:
            pc()
            pc()

    def http_request_path() -> None:
        # What HttpSession.request adds around the request itself on success.
        rec = Recorder()
        record = rec.record
        pc = time.perf_counter
        status_code = 200
        for name, _s in pairs:
            start = pc()
            elapsed = pc() - start
            if status_code >= 400:
                raise AssertionError
            record(name, elapsed)

    def measure_block() -> None:
        rec = Recorder()
        with recording(rec):  # as inside a load test: every block records
            for name, _s in pairs:
                with measure(name):
                    pass

    def noop() -> None:
        pass

    timed_noop = measure("noop")(noop)

    def plain_calls() -> None:
        for _name, _s in pairs:
            noop()

    def measure_decorator() -> None:
        rec = Recorder()
        with recording(rec):
            for _name, _s in pairs:
                timed_noop()

    loop = best_ns(empty_loop, n, args.repeats)
    call = best_ns(plain_calls, n, args.repeats) - loop
    rows = [
        ("perf_counter pair (timing, for scale)", best_ns(perf_counter_pair, n, args.repeats)),
        ("pytest-swarm Recorder.record", best_ns(swarm_record, n, args.repeats)),
        (
            "pytest-swarm record + fold (drain) share",
            best_ns(swarm_record_and_fold, n, args.repeats),
        ),
        ("hdrh HdrHistogram.record_value", best_ns(hdrh_record, n, max(2, args.repeats // 2))),
        ("http request path (clock, status, record)", best_ns(http_request_path, n, args.repeats)),
        ("measure block (with measure(name): pass)", best_ns(measure_block, n, args.repeats)),
        (
            "measure decorator (@measure, net of the call)",
            best_ns(measure_decorator, n, args.repeats) - call,
        ),
    ]
    # Net of the benchmark's own loop, so each row is what the call itself costs.
    rows = [(label, max(ns - loop, 0.0)) for label, ns in rows]
    base = rows[3][1]
    print(f"(empty loop {loop:.0f} ns per item subtracted from every row)")
    print(f"{'per request, net':<44} {'ns':>8} {'vs hdrh':>8}")
    for label, ns in rows:
        print(f"{label:<44} {ns:>8.0f} {ns / base:>7.2f}x")
    target = 500
    net = rows[2][1]
    print(f"pytest-swarm recording incl. fold: {net:.0f} ns per request (target <= {target} ns)")
    http_ns, block_ns, decorator_ns = rows[4][1], rows[5][1], rows[6][1]
    print(f"a measure block costs {block_ns / http_ns:.2f}x http's request path recording")
    print(f"a measured call costs {decorator_ns / http_ns:.2f}x http's request path recording")


if __name__ == "__main__":
    main()
