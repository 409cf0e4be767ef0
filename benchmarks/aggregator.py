"""Aggregator simulator: many fake workers feed the real controller over real ZeroMQ sockets.

The controller side is pytest-swarm's own :class:`Coordinator` (its thread, its ROUTER socket,
its Control and Aggregator). The workers are DEALER sockets in separate processes (so they do
not share the controller's GIL), each saying hello, joining one load test's barrier, then
sending one delta per second with ``--names`` request names of realistic sparse histograms,
and a final delta. The script reports the controller thread's CPU per second and per merged
(worker, request name) and checks the merged percentiles against a reference histogram built
from exactly the same values.

Run:  python benchmarks/aggregator.py [--workers 500 --names 20 --seconds 10]
      (SWARM_PURE_PYTHON=1 measures the pure-Python merge loop where the C one was built)

It also measures what the merge costs xdist's own event loop: a thread standing in for it calls
into the coordinator (``has_hello``, as the controller's hooks call its small lock-protected
methods) every 10 ms during the run and records how long each call waited (for the
coordinator's lock and for the GIL): the merge runs in the coordinator's thread, so a hook
only ever waits for the message being merged, never for a whole interval's worth.

The fake workers speak the wire protocol by hand. The controller drops a message that does not
match its schema (counted, never answered), so every wait of a fake worker has a deadline
(:data:`ANSWER_TIMEOUT`) and the script fails naming the step and the controller's count of
dropped messages, instead of waiting out its whole timeout as it did when its ``ready`` lacked
a field the protocol had gained.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import random
import threading
import time
from queue import Empty
from typing import Any

import zmq

from pytest_swarm import __version__
from pytest_swarm.cluster.controller_link import Coordinator
from pytest_swarm.cluster.wire import decode, encode
from pytest_swarm.feed import Feed, Progress
from pytest_swarm.stats import histogram
from pytest_swarm.stats.histogram import Histogram
from pytest_swarm.stats.snapshot import Snapshot

TEST = "sim.py::test_load"
ANSWER_TIMEOUT = 60.0  # seconds a fake worker waits for any one answer of the controller


def _expect(sock: Any, kind: str, wid: str) -> None:
    """Read ``sock`` until a ``kind`` message (pongs and acks of earlier deltas pass)."""
    deadline = time.monotonic() + ANSWER_TIMEOUT
    while time.monotonic() < deadline:
        waiting = int(max(deadline - time.monotonic(), 0) * 1000)
        if sock.poll(waiting) and decode(sock.recv()).kind == kind:
            return
    raise SystemExit(f"{wid}: no {kind!r} from the controller within {ANSWER_TIMEOUT:g}s")


def make_delta(rng: random.Random, names: int, requests: int) -> Snapshot:
    """One worker's interval: ``requests`` samples spread over ``names`` request names, with
    lognormal latencies around 20 ms (a typical sparse interval: tens of buckets per name)."""
    snap = Snapshot(users=10)
    per_name = max(requests // names, 1)
    for i in range(names):
        values = [int(rng.lognormvariate(9.9, 0.5)) for _ in range(per_name)]
        entry = snap.entry(f"GET /endpoint/{i}")
        entry.hist.record_values(values)
        entry.failures = int(rng.random() < 0.05)
    return snap


def worker_process(args: tuple[str, list[str], int, int, int, int, mp.Queue]) -> None:  # type: ignore[type-arg]
    address, ids, names, requests, seconds, seed, out = args
    rng = random.Random(seed)
    ctx = zmq.Context()
    socks = {}
    try:
        for wid in ids:
            s = ctx.socket(zmq.DEALER)
            s.setsockopt(zmq.IDENTITY, wid.encode())
            s.setsockopt(zmq.LINGER, 5000)
            s.connect(address)
            s.send(encode("hello", worker=wid, version=__version__, load_tests=[TEST]))
            socks[wid] = s
        # Everything is encoded before the clock starts, so the fake workers only move bytes
        # and do not compete with the controller for the CPU during the measured phase.
        reference = Histogram()
        sent = 0
        frames: list[list[bytes]] = []
        for second in range(seconds + 1):
            kind = "final" if second == seconds else "stats"
            row = []
            for _ in socks:
                delta = make_delta(rng, names, requests)
                for e in delta.entries.values():
                    reference.merge(e.hist)
                extra = {"lost": 0} if kind == "final" else {}
                body = {"seq": second, "delta": delta.to_wire(), "cpu": 10.0, "lag": 0.001}
                row.append(encode(kind, test=TEST, **body, **extra))
                sent += len(delta.entries)
            frames.append(row)
        for wid, s in socks.items():
            _expect(s, "welcome", wid)
            s.send(
                encode(
                    "ready",
                    test=TEST,
                    users=10 * len(socks),
                    duration=float(seconds),
                    settings={},
                )
            )
        for wid, s in socks.items():
            _expect(s, "go", wid)
        start = time.monotonic()
        for second, row in enumerate(frames):
            for s, frame in zip(socks.values(), row, strict=True):
                s.send(frame)
            # one interval per second, like real workers
            pause = start + second + 1 - time.monotonic()
            if pause > 0 and second < seconds:
                time.sleep(pause)
        for wid, s in socks.items():
            _expect(s, "ack", wid)
        out.put((reference.to_wire(), sent))
    finally:
        for s in socks.values():
            s.close(linger=0)
        ctx.term()


def _get(queue: Any, procs: list[Any], timeout: float) -> Any:
    """Next result, or an error as soon as a worker process died without one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return queue.get(timeout=0.5)
        except Empty:
            dead = [p for p in procs if p.exitcode not in (None, 0)]
            if dead:
                code = dead[0].exitcode
                raise SystemExit(f"a fake-worker process failed (exit code {code})") from None
    raise SystemExit("fake workers timed out")


class HookProbe:
    """Calls into the coordinator every ``every`` seconds from a thread of its own (xdist's
    event loop calls the coordinator's hook methods the same way) and keeps how long each
    call took: the lock it waits for is held for one message at a time."""

    def __init__(self, coordinator: Coordinator, every: float = 0.010) -> None:
        self.coordinator = coordinator
        self.every = every
        self.waits: list[float] = []
        self.worst_at = 0.0  # when the longest wait began (time.monotonic)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hook-probe", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            t0 = time.perf_counter()
            self.coordinator.has_hello("gw0")
            wait = time.perf_counter() - t0
            if not self.waits or wait > max(self.waits):
                self.worst_at = time.monotonic() - wait
            self.waits.append(wait)

    def __enter__(self) -> HookProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def summary(self) -> str:
        if not self.waits:
            return "no call made"
        ordered = sorted(self.waits)
        p99 = ordered[min(int(len(ordered) * 0.99), len(ordered) - 1)]
        return (
            f"{len(ordered)} calls, median {ordered[len(ordered) // 2] * 1e3:.2f} ms, "
            f"p99 {p99 * 1e3:.1f} ms, max {ordered[-1] * 1e3:.1f} ms"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=500)
    ap.add_argument("--names", type=int, default=20)
    ap.add_argument("--requests", type=int, default=200, help="requests per worker per second")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--processes", type=int, default=4)
    ap.add_argument(
        "--feed",
        action="store_true",
        help="publish the live feed too (a merged result per second, as the dashboard needs)",
    )
    args = ap.parse_args()
    assert args.seconds <= 120, "bounded runs only"

    feed = Feed() if args.feed else None
    progress: list[float] = []
    if feed is not None:
        feed.subscribe(lambda e: progress.append(e.elapsed) if isinstance(e, Progress) else None)
    coordinator = Coordinator(interval=1.0, heartbeat_timeout=60.0, feed=feed)
    try:
        ids = [f"gw{i}" for i in range(args.workers)]
        for wid in ids:
            coordinator.expect(wid)
        # spawn, not fork: a forked child would inherit the controller's ZeroMQ context.
        spawn = mp.get_context("spawn")
        queue = spawn.Queue()
        chunks = [ids[i :: args.processes] for i in range(args.processes)]
        procs = [
            spawn.Process(
                target=worker_process,
                args=(
                    (
                        coordinator.endpoint.address,
                        chunk,
                        args.names,
                        args.requests,
                        args.seconds,
                        i,
                        queue,
                    ),
                ),
            )
            for i, chunk in enumerate(chunks)
        ]
        cpu0 = coordinator.cpu_seconds
        t0 = time.monotonic()
        for p in procs:
            p.start()
        reference = Histogram()
        merged_entries = 0
        probe = HookProbe(coordinator)
        with probe:
            for _ in procs:
                try:
                    wire, sent = _get(queue, procs, args.seconds + 300)
                except SystemExit as exc:
                    raise SystemExit(
                        f"{exc}; the controller dropped {coordinator.rejected} malformed or "
                        "unexpected message(s)"
                    ) from None
                reference.merge(Histogram.from_wire(wire))
                merged_entries += sent
        for p in procs:
            p.join(timeout=60)
        wall = time.monotonic() - t0
        # Let the coordinator finish what is queued, then read its CPU.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with coordinator._lock:
                run = coordinator.control.runs.get(TEST)
                done = run is not None and run.complete
            if done:
                break
            time.sleep(0.05)
        cpu = coordinator.cpu_seconds - cpu0
        with coordinator._lock:
            run = coordinator.control.runs[TEST]
            assert run.aggregator is not None
            merged = run.aggregator.totals.total().hist
        rejected = coordinator.rejected
    finally:
        coordinator.close()

    qs = (50, 90, 95, 99, 99.9, 100)
    ok = all(merged.percentile(q) == reference.percentile(q) for q in qs)
    ok = ok and merged.total == reference.total
    per_entry_us = cpu / merged_entries * 1e6
    load = cpu / args.seconds * 100
    print(
        f"workers {args.workers}, names {args.names}, {args.requests} req/worker/s, "
        f"{args.seconds}s (+ final), wall {wall:.1f}s"
    )
    print(f"merged (worker, name) deltas: {merged_entries:,}; requests merged: {merged.total:,}")
    print(f"controller thread CPU: {cpu:.2f}s = {load:.1f}% of one core over the run")
    loop = "C (pytest_swarm.stats._merge)" if histogram.ACCELERATED else "pure Python"
    print(f"merge loop: {loop}")
    print(f"messages the controller dropped: {rejected}")
    print(f"a hook's call into the coordinator (xdist's loop) waited: {probe.summary()}")
    print(f"  the longest began {probe.worst_at - t0:.1f}s into the run (wall {wall:.1f}s)")
    if feed is not None:
        print(f"live feed: {len(progress)} Progress events published (merged result each)")
    print(f"per (worker, name) delta: {per_entry_us:.1f} us (target <= 20 us)")
    print("merged percentiles equal the reference: " + ("yes" if ok else "NO"))
    for q in qs:
        print(
            f"  p{q:<5} merged {merged.percentile(q):>9} us   "
            f"reference {reference.percentile(q):>9} us"
        )
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
