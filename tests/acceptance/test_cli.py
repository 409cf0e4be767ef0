"""Command line and ini (contract item 9): ``--swarm-users``, ``--swarm-rate``,
``--swarm-duration``, ``--swarm-scale`` and their ini twins, bad values, and ``-p no:swarm``.
The number of users is read from the target's login counter and from ``swarm_users``."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_swarm.demo.server import DemoServer

from .harness import RunSwarm, SwarmRun

LOGIN_TEST = """
import pytest

@pytest.fixture
def shopper(http):
    http.post("/login", json={{"user": "u"}})
    yield http
    http.post("/logout")

@pytest.mark.load({load})
def test_shop(shopper):
    shopper.get("/")
"""


def _users(run: SwarmRun, served: DemoServer) -> int:
    """The configured user count the report shows, once it is checked that the users the
    report says started are the users the target saw log in (and out)."""
    stats = served.stats()
    assert stats["logins"] == stats["logouts"]
    assert int(run.prop("test_shop", "swarm_users_started")) == stats["logins"]
    return int(run.prop("test_shop", "swarm_users"))


@pytest.mark.parametrize(
    ("args", "ini", "expected"),
    [
        (["--swarm-users=3"], "", 3),
        ([], "swarm_users = 3", 3),
        (["--swarm-scale=0.5"], "", 5),
        ([], "swarm_scale = 0.5", 5),
        (["--swarm-scale=0.2", "--swarm-users=5"], "", 1),
        (["--swarm-users=4"], "swarm_users = 2", 4),
    ],
    ids=["users", "ini-users", "scale", "ini-scale", "users-then-scale", "cli-wins"],
)
def test_user_count_overrides(
    pytester: pytest.Pytester,
    served: DemoServer,
    swarm_pytest: RunSwarm,
    args: list[str],
    ini: str,
    expected: int,
) -> None:
    if ini:
        pytester.makeini(f"[pytest]\n{ini}\n")
    # Every user starts however busy the machine: two iterations end the run, not a short
    # duration (on a busy machine 500 ms once ended it before the last users had started).
    pytester.makepyfile(
        LOGIN_TEST.format(load='users=10, rate=100, duration="60s", iterations=2, wait=0.05')
    )
    run = swarm_pytest(*args)
    run.result.assert_outcomes(passed=1)
    assert _users(run, served) == expected
    assert served.stats()["logins"] == expected


@pytest.mark.parametrize(
    ("args", "ini"),
    [(["--swarm-rate=100"], ""), ([], "swarm_rate = 100")],
    ids=["cli", "ini"],
)
def test_rate_override(
    pytester: pytest.Pytester,
    served: DemoServer,
    swarm_pytest: RunSwarm,
    args: list[str],
    ini: str,
) -> None:
    # At the marker's rate of one user per second only the first user would start within
    # 600 ms (see test_marker.py::test_rate_spreads_user_starts); at 100/s all four do.
    if ini:
        pytester.makeini(f"[pytest]\n{ini}\n")
    pytester.makepyfile(LOGIN_TEST.format(load='users=4, rate=1, duration="600ms", wait=0.05'))
    run = swarm_pytest(*args)
    run.result.assert_outcomes(passed=1)
    assert _users(run, served) == 4
    assert served.stats()["logins"] == 4


def test_scale_scales_the_rate_too(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    # users=8 rate=4 scaled by 0.25: 2 users at 1/s; within 600 ms only the first starts.
    pytester.makepyfile(LOGIN_TEST.format(load='users=8, rate=4, duration="600ms", wait=0.05'))
    run = swarm_pytest("--swarm-scale=0.25")
    run.result.assert_outcomes(passed=1)
    assert _users(run, served) == 2
    assert served.stats()["logins"] == 1
    assert "1 of 2 users started" in run.output


@pytest.mark.parametrize(
    ("args", "ini"),
    [(["--swarm-duration=1s"], ""), (["--swarm-duration", "800ms"], "swarm_duration = 1h")],
    ids=["cli", "cli-over-ini-default"],
)
def test_duration_override(
    pytester: pytest.Pytester,
    served: DemoServer,
    swarm_pytest: RunSwarm,
    args: list[str],
    ini: str,
) -> None:
    # The marker asks for an hour: the run only finishes (within the harness's guard) if the
    # command line shortened it.
    if ini:
        pytester.makeini(f"[pytest]\n{ini}\n")
    pytester.makepyfile(LOGIN_TEST.format(load='users=2, rate=100, duration="1h", wait=0.05'))
    run = swarm_pytest(*args)
    run.result.assert_outcomes(passed=1)
    assert run.prop("test_shop", "swarm_duration_s") >= 0.75
    assert _users(run, served) == 2


@pytest.mark.slow
def test_ini_duration_is_the_default_for_tests_without_one(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    # The live line shows the planned duration ("elapsed/planned"); it appears after 2 s.
    pytester.makeini("[pytest]\nswarm_duration = 2500ms\n")
    pytester.makepyfile(LOGIN_TEST.format(load="users=2, rate=100, wait=0.05"))
    run = swarm_pytest()
    run.result.assert_outcomes(passed=1)
    run.result.stdout.fnmatch_lines(["[[]swarm[]] test_shop *s/2.5s *"])
    assert run.prop("test_shop", "swarm_duration_s") >= 2.4


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--swarm-users=0"], "--swarm-users"),
        (["--swarm-users=many"], "--swarm-users"),
        (["--swarm-scale=-1"], "--swarm-scale"),
        (["--swarm-duration=soon"], "--swarm-duration"),
        (["--swarm-slo", "p95 <"], "--swarm-slo"),
        (["--swarm-timeout=0"], "--swarm-timeout"),
    ],
    ids=["users-zero", "users-text", "scale", "duration", "slo", "timeout"],
)
def test_bad_option_is_a_usage_error(
    pytester: pytest.Pytester,
    served: DemoServer,
    swarm_pytest: RunSwarm,
    args: list[str],
    option: str,
) -> None:
    pytester.makepyfile(LOGIN_TEST.format(load='users=2, duration="500ms"'))
    run = swarm_pytest(*args)
    assert run.result.ret == pytest.ExitCode.USAGE_ERROR
    assert option in run.output
    assert "Traceback" not in run.output
    assert served.stats()["total"] == 0


def test_plugin_disabled_with_p_no_swarm(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    pytester.makepyfile(
        test_load=LOGIN_TEST.format(load='users=2, duration="500ms"'),
        test_plain="""
        import socket
        import sys

        def test_untouched():
            assert "gevent.monkey" not in sys.modules
            assert socket.socket.__module__ == "socket"
            assert "pytest_swarm.plugin" not in sys.modules
        """,
    )
    run = swarm_pytest("-p", "no:swarm", "test_plain.py", host=False)
    run.result.assert_outcomes(passed=1)
    assert run.result.ret == 0
    # The options are gone with the plugin.
    run = swarm_pytest("-p", "no:swarm", "test_plain.py")
    assert run.result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--swarm-host" in run.output
    assert served.stats()["total"] == 0


def test_the_quickstarts_smoke_command_passes_its_own_asserts(
    pytester: pytest.Pytester, swarm_pytest: RunSwarm
) -> None:
    # docs/quickstart.md section 5, as written there, under section 6's smoke command (its
    # `rps > 50` once failed at --swarm-scale=0.1: 2 users cannot make 50 requests/s).
    doc = (Path(__file__).parents[2] / "docs" / "quickstart.md").read_text(encoding="utf-8")
    section = doc.split("## 5.", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    pytester.makepyfile(test_quick=code)
    run = swarm_pytest("--swarm-scale=0.1", "--swarm-duration=5s")
    run.result.assert_outcomes(passed=1)
