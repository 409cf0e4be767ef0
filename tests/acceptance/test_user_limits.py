"""Issue 8, section 2: what cannot start is refused at collection, naming the test and the
argument (``users=10**9`` ran forever with no request; ``users=10**6`` used 747 MiB in a 2 s test
still running at 15 s). The bound is per process: ``-n N`` allows N times as many users
(tests/unit/test_spec.py::test_the_user_bound_is_per_process, and the worker count read from
xdist in tests/unit/test_spec.py::test_processes_come_from_the_xdist_worker_count)."""

from __future__ import annotations

import pytest

from pytest_swarm.demo.server import DemoServer

from .harness import RunSwarm

BODY = """
import pytest

@pytest.mark.load(users={users}, duration="2s")
def test_crowd(http):
    http.get("/")
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one-process", "xdist"])
def test_a_billion_users_is_a_collection_error_naming_test_and_argument(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm, workers: list[str]
) -> None:
    pytester.makepyfile(BODY.format(users=10**9))
    run = swarm_pytest(*workers)
    run.result.assert_outcomes(errors=1)
    run.result.stdout.fnmatch_lines(
        ["*test_crowd*load(users=1000000000): users must be at most 100,000 per process*"]
    )
    assert "Traceback" not in run.output and "INTERNALERROR" not in run.output
    assert served.stats()["total"] == 0
