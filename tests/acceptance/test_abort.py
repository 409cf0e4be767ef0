"""Abort on a clear miss (issue 10 section 3): ``slo(..., abort=True, abort_grace=...)``.

Real pytest runs (one process and ``-n 2``) against the demo target. The body turns the target
failing (or slow) after a few iterations per user; the load is meant to last a minute. That the
abort ended it early is judged by the requests the target served against the most the full
duration allows (users x duration / wait), never by the wall clock.
"""

from __future__ import annotations

import json

import pytest

from pytest_swarm.demo.server import DemoServer

from .harness import RunSwarm

USERS, DURATION, WAIT = 2, 60, 0.05
# The most requests the whole duration can give: each user waits WAIT after each request.
FULL_RUN = USERS * DURATION / WAIT

MODES = [pytest.param((), id="one-process"), pytest.param(("-n", "2"), id="xdist")]


@pytest.mark.parametrize("mode", MODES)
def test_a_load_that_turns_failing_aborts_early_and_fails(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm, mode: tuple[str, ...]
) -> None:
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.load(users={USERS}, rate=100, duration="{DURATION}s", wait={WAIT})
        @pytest.mark.slo("error_rate < 5%", abort=True, abort_grace="1s")
        def test_turns_failing(http, swarm_user):
            http.get("/" if swarm_user.iteration < 3 else "/status/500")
        """
    )
    run = swarm_pytest(*mode, "--swarm-json=out.json")
    run.result.assert_outcomes(failed=1)
    assert run.result.ret == 1
    served_total = served.stats()["total"]
    # Aborted about a second in: a small fraction of what the minute would have sent.
    assert 0 < served_total < FULL_RUN / 4, (served_total, FULL_RUN)
    case = run.testcase("test_turns_failing")
    assert case.find("failure") is not None and case.find("error") is None
    message = run.message("test_turns_failing")
    assert "load stopped before its end" in message
    assert "STOPPED aborted " in message and "s into the load: error_rate < 5% missed" in message
    assert "(limit < 5%)" in message
    document = json.loads((pytester.path / "out.json").read_text())["load_tests"][0]
    assert document["stopped"].startswith("aborted ")


def test_a_load_that_turns_slow_aborts_on_its_percentile(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.load(users={USERS}, rate=100, duration="{DURATION}s", wait={WAIT})
        @pytest.mark.slo("p95 < 300ms", abort=True, abort_grace="1s")
        def test_turns_slow(http, swarm_user):
            http.get("/" if swarm_user.iteration < 3 else "/delay?ms=500")
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(failed=1)
    served_total = served.stats()["total"]
    assert 0 < served_total < FULL_RUN / 4, (served_total, FULL_RUN)
    message = run.message("test_turns_slow")
    assert "s into the load: p95 < 300ms missed, measured " in message
    assert "(limit < 300ms)" in message


@pytest.mark.parametrize("mode", MODES)
def test_a_met_objective_with_abort_runs_to_the_end_and_passes(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm, mode: tuple[str, ...]
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.load(users=2, rate=100, duration="2s", wait=0.05)
        @pytest.mark.slo("error_rate < 50%", "p99 < 10s", abort=True, abort_grace="200ms")
        def test_fine(http):
            http.get("/")
        """
    )
    run = swarm_pytest(*mode)
    run.result.assert_outcomes(passed=1)
    # The load ran its whole duration (an abort would end it before).
    assert run.prop("test_fine", "swarm_duration_s") >= 2.0
    assert run.prop("test_fine", "swarm_requests") == served.stats()["total"]


@pytest.mark.parametrize(
    ("marks", "expected"),
    [
        ('"p95 < 1s", abort="yes"', "slo(abort='yes'): expected True or False"),
        ('"p95 < 1s", abort=True, abort_grace="soon"', "slo(abort_grace='soon'): expected"),
        ('"p95 < 1s", abort_grace="5s"', "slo(abort_grace=...): only meaningful with abort=True"),
        ('"p95 < 1s", scope="requests"', "slo(scope='requests'): expected scope='iterations'"),
    ],
)
def test_bad_abort_arguments_are_collection_errors_naming_test_and_argument(
    pytester: pytest.Pytester,
    served: DemoServer,
    swarm_pytest: RunSwarm,
    marks: str,
    expected: str,
) -> None:
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.load(users=1, duration="1s")
        @pytest.mark.slo({marks})
        def test_bad(http):
            http.get("/")
        """
    )
    run = swarm_pytest(junit=False)
    assert run.result.ret != 0
    run.result.stdout.fnmatch_lines([f"*test_bad*{expected}*"])
    assert served.stats()["total"] == 0


def test_iteration_scope_and_open_model_counts_reach_the_verdict(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.load(users=2, rate=100, duration="1s", wait=0.05)
        @pytest.mark.slo("p99 < 10s", "requests >= 1", scope="iterations")
        @pytest.mark.slo("dropped = 0", "late < 10")
        def test_scoped(http):
            http.get("/")
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(passed=1)
    run.result.stdout.fnmatch_lines(
        [
            "*met     dropped = 0*measured 0",
            "*met     late < 10*measured 0",
            "*met     iterations: p99 < 10s*measured *",
            "*met     iterations: requests >= 1*measured *",
        ]
    )
