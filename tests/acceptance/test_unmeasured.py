"""Never pass what was not measured (RELIABILITY rows 18 and 30): iterations cut off at the
stop, users that never started. Real pytest runs against the demo target; what is judged is
what a user reads: the outcome, the headline, the JUnit properties and the JSON document."""

from __future__ import annotations

import json

import pytest

from pytest_swarm.demo.server import DemoServer

from .harness import RunSwarm

CUT_OFF = """
import pytest

@pytest.fixture
def shopper(http, swarm_user):
    http.post("/login", json={"user": f"u{swarm_user.index}"})   # measured: a sample
    yield http
    http.post("/logout")

@pytest.mark.load(users=3, rate=100, duration="1s", stop_timeout="200ms")
def test_slow(shopper):
    shopper.get("/delay?ms=3000")   # still in flight at the stop, every time
"""


def test_a_body_whose_requests_were_all_in_flight_at_the_stop_does_not_pass(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    pytester.makepyfile(CUT_OFF)
    run = swarm_pytest(f"--swarm-json={pytester.path / 'swarm.json'}")
    # The logins are samples, so "no sample at all" does not apply: the cut-off does.
    run.result.assert_outcomes(errors=1)
    message = run.message("test_slow", "error")
    assert "no iteration of the body completed: 3 were cut off" in message
    assert run.prop("test_slow", "swarm_cut_off") == 3
    assert "3 iterations cut off at the stop" in run.output
    (doc,) = json.loads((pytester.path / "swarm.json").read_text())["load_tests"]
    assert doc["cut_off"] == 3
    # The cut-off users still tore down (and then were gone: the counting target agrees).
    stats = served.stats()
    assert stats["logins"] == stats["logouts"] == 3


SHORTFALL = """
import pytest

@pytest.mark.load(users=10, rate=2, duration="2s", wait=0.05)
def test_ramp(http):
    http.get("/")
"""


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["one-process", "xdist"])
def test_users_that_never_started_are_shown_and_warned_about(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm, xdist: list[str]
) -> None:
    pytester.makepyfile(SHORTFALL)
    run = swarm_pytest(*xdist, f"--swarm-json={pytester.path / 'swarm.json'}")
    run.result.assert_outcomes(passed=1)
    # Collection warns: 10 users at 2/s need 5 s, the test lasts 2 s.
    assert "need 5s to start, longer than the 2s duration: only about 4 will start" in run.output
    started = int(run.prop("test_ramp", "swarm_users_started"))
    assert 1 <= started < 10
    assert f"test_ramp: {started} of 10 users started" in run.output
    assert f"{10 - started} never started" in run.output
    assert run.prop("test_ramp", "swarm_users") == 10
    (doc,) = json.loads((pytester.path / "swarm.json").read_text())["load_tests"]
    assert doc["users_started"] == started
    assert doc["users_not_started"] == 10 - started
