"""``measure`` in real pytest runs: non-HTTP work timed and counted like requests, judged by
objectives, merged under xdist; a test that only measures is not an "no sample" error."""

from __future__ import annotations

import json

import pytest

from .harness import RunSwarm

PROJECT = """
import itertools
import gevent
import pytest
from pytest_swarm import measure

@pytest.fixture
def attempts():
    return itertools.count()

@pytest.mark.load(users=3, rate=100, iterations=4, duration="30s")
@pytest.mark.slo("[work] p99 < 5s", "[flow] requests >= 12", "error_rate < 50%")
def test_work(attempts, swarm_user):
    with measure("flow") as flow:
        with measure("work"):
            gevent.sleep(0.002)
        if next(attempts) == 0:
            flow.failure("first attempt of every user")

def job(measure, swarm_user):
    with measure("job") as m:
        gevent.sleep(0.001)
        m.size = 10 + swarm_user.index   # bytes "received": 10 and 11 for the two users

def test_fixture_form(swarm):
    result = swarm.run(job, users=2, rate=100, iterations=3, duration="30s")
    assert result["job"].count == 6
    assert result["job"].failures == 0
    # The sizes reach the result (merged over the workers under -n 2): 3 x 10 + 3 x 11.
    assert result["job"].size == 63
    assert result["job"].avg_size == 10.5
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one-process", "xdist"])
def test_measured_blocks_are_samples(
    pytester: pytest.Pytester, swarm_pytest: RunSwarm, workers: list[str]
) -> None:
    pytester.makepyfile(test_measure=PROJECT)
    json_path = pytester.path / "r.json"
    run = swarm_pytest(*workers, f"--swarm-json={json_path}", host=False)
    run.result.assert_outcomes(passed=2)
    doc = {d["test"]: d for d in json.loads(json_path.read_text())["load_tests"]}
    work = doc["test_measure.py::test_work"]["requests"]
    # 3 users x 4 iterations, whatever the number of workers; the first iteration of each
    # user is an explicit failure of the outer block only.
    assert (work["work"]["count"], work["work"]["failures"]) == (12, 0)
    assert (work["flow"]["count"], work["flow"]["failures"]) == (12, 3)
    assert work["work"]["p50_ms"] >= 2.0  # the block's own time, gevent.sleep(0.002) at least
    assert doc["test_measure.py::test_fixture_form#1"]["requests"]["job"]["count"] == 6
