"""Unit tests for pytest_swarm.report.junit: the figures a testcase carries."""

from __future__ import annotations

from pytest_swarm.report.junit import properties
from pytest_swarm.stats.result import RunResult
from pytest_swarm.stats.snapshot import Snapshot


def test_the_open_models_figures_are_junit_properties() -> None:
    # Issue 10: the iteration row and the dropped / late counts reach CI through JUnit too.
    snap = Snapshot(dropped=3, late=7)
    snap.entry("GET /").hist.record_values([2_000] * 10)
    snap.iteration.record_values([5_000] * 98 + [900_000] * 2)
    props = dict(properties(RunResult(snap, duration=10.0)))
    assert props["swarm_iterations"] == 100
    assert 890 <= float(str(props["swarm_iteration_p99_ms"])) <= 910
    assert (props["swarm_dropped"], props["swarm_late"]) == (3, 7)
    assert props["swarm_requests"] == 10
