"""Custom shapes in real pytest runs (one process and -n 2): the swarm follows the shape, a
ramp-down tears the most recent users down then, user indices stay unique, ``None`` ends the
load early, and a shape's bad answer is an error naming the test and the shape."""

from __future__ import annotations

import json

import pytest

from .harness import EventLog, RunSwarm

PROJECT = """
import json
import pytest
from events import log

@pytest.fixture
def visitor(http, swarm_user):
    log("setup", swarm_user.index)
    yield http
    log("teardown", swarm_user.index)

def browse(visitor):
    visitor.get("/items")

def steps(elapsed):
    if elapsed < 1.5:
        return 4
    if elapsed < 3.0:
        return 2
    return None          # ends the load at 3 s, well before its 30 s bound

def test_shape(swarm):
    result = swarm.run(browse, shape=steps, max_users=6, duration="30s", wait=0.05)
    with open("figures.json", "w") as handle:
        json.dump({"users": [p.users for p in result.timeline], "took": result.duration}, handle)
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one-process", "xdist"])
def test_the_swarm_follows_the_shape_and_none_ends_it(
    pytester: pytest.Pytester, swarm_pytest: RunSwarm, event_log: EventLog, workers: list[str]
) -> None:
    pytester.makepyfile(test_shape=PROJECT)
    run = swarm_pytest(*workers)
    run.result.assert_outcomes(passed=1)
    setups = [int(w[0]) for w in event_log.words("setup")]
    teardowns = [int(w[0]) for w in event_log.words("teardown")]
    # Four users (unique indices across the workers), every one torn down once.
    assert sorted(setups) == sorted(teardowns) == [0, 1, 2, 3]
    # The ramp-down to 2 stopped users 3 and 2 (the most recent) before the end of the load:
    # their teardowns come before those of 0 and 1.
    assert set(teardowns[:2]) == {2, 3}
    figures = json.loads((pytester.path / "figures.json").read_text())
    assert max(figures["users"]) == 4 and 2 in figures["users"]
    assert figures["took"] < 30  # None ended it: not the 30 s bound


BAD = """
def browse(http):
    http.get("/items")

def test_bad_shape(swarm):
    swarm.run(browse, shape=lambda elapsed: {answer}, duration="5s")
"""


@pytest.mark.parametrize(
    ("answer", "fragment"),
    [
        ("'many'", "shape returned 'many': it must return users"),
        ("float('nan')", "shape returned nan: users must be a number >= 0"),
        ("10**9", "more than max_users=1000"),
        ("(5, -1)", "rate must be a number of users per second > 0"),
        ("1 / 0", "raised ZeroDivisionError"),
    ],
)
def test_a_bad_shape_answer_is_an_error_naming_the_test_and_shape(
    pytester: pytest.Pytester, swarm_pytest: RunSwarm, answer: str, fragment: str
) -> None:
    pytester.makepyfile(test_bad=BAD.format(answer=answer))
    run = swarm_pytest()
    run.result.assert_outcomes(failed=1)
    assert "test_bad_shape" in run.output and "load(shape=<lambda>)" in run.output
    assert fragment in run.output


MARKER = """
import pytest

def steps(elapsed):
    return 2 if elapsed < 1.0 else None

@pytest.mark.load(shape=steps, max_users=2, duration="5s", wait=0.05)
def test_marker_shape(http):
    http.get("/items")
"""


def test_the_marker_form_follows_a_shape_and_refuses_it_with_users(
    pytester: pytest.Pytester, swarm_pytest: RunSwarm
) -> None:
    pytester.makepyfile(test_marker=MARKER)
    swarm_pytest().result.assert_outcomes(passed=1)
    pytester.makepyfile(test_marker=MARKER.replace("max_users=2", "users=2"))
    run = swarm_pytest()
    assert run.result.ret == 2 and "shape and users together" in run.output
