"""A made-up load test as the feed publishes it, for the dashboard's unit tests: events
built from real RunResults (real histograms), with no engine and no network."""

from __future__ import annotations

import random

from pytest_swarm.feed import LoadFinished, LoadStarted, Progress
from pytest_swarm.report.files import result_document
from pytest_swarm.stats.result import RunResult, TimelinePoint
from pytest_swarm.stats.snapshot import ErrorGroup, Snapshot

TEST = "tests/test_shop.py::test_checkout"
NAMES = ("GET /items", "GET /cart", "POST /checkout")


def started(test: str = TEST, duration: float = 30.0) -> LoadStarted:
    return LoadStarted(
        test,
        test.split("::")[-1],
        duration,
        users=40,
        workers=2,
        settings={
            "load": f"40 users @ 10/s for {duration:g}s",
            "objectives": ["p95 < 250ms", "[POST /checkout] p99 < 400ms", "error_rate < 1%"],
            "abort": [],
        },
    )


def result_at(second: int, seed: int = 1, failing: bool = False) -> RunResult:
    """The running aggregate after ``second`` seconds: latencies drift up, users ramp."""
    rng = random.Random(seed)
    snap = Snapshot()
    timeline = []
    for t in range(1, second + 1):
        users = min(40, 10 * t)
        requests = failures = 0
        p50 = p95 = 0.0
        for i, name in enumerate(NAMES):
            base = (20 + 40 * i + 3 * t) * 1000
            values = [int(base * rng.lognormvariate(0, 0.35)) for _ in range(users * 3 // (i + 1))]
            snap.entry(name).hist.record_values(values)
            requests += len(values)
            values.sort()
            p50, p95 = values[len(values) // 2] / 1e6, values[int(len(values) * 0.95)] / 1e6
        if failing or t % 4 == 0:
            snap.entry("POST /checkout").failures += 2
            group = snap.errors.setdefault(
                ("POST /checkout", "HTTPError", "503 Service Unavailable"),
                ErrorGroup("POST /checkout", "HTTPError", "503 Service Unavailable"),
            )
            group.count += 2
            failures = 2
        timeline.append(TimelinePoint(float(t), users, requests, failures, p50, p95))
    return RunResult(snap, duration=float(second), users=40, timeline=timeline, workers=2)


def progress(second: int, test: str = TEST, duration: float = 30.0) -> Progress:
    workers = {
        "gw0": {"cpu": 35.0 + second, "lag": 0.002, "users": 20},
        "gw1": {"cpu": 41.0 + second, "lag": 0.004, "users": 20},
    }
    return Progress(test, test.split("::")[-1], float(second), duration, result_at(second),
                    workers=workers, stage="stage 1/1: 40 users")  # fmt: skip


def finished(test: str = TEST, second: int = 30, outcome: str = "failed") -> LoadFinished:
    result = result_at(second)
    reason = "MISSED error_rate < 1% measured 1.2%" if outcome == "failed" else ""
    document = result_document(test, result, None)
    return LoadFinished(test, test.split("::")[-1], outcome, result, reason, document)
