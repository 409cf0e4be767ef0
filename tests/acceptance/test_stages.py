"""Ramp stages in real pytest runs: the swarm as a whole follows the profile (one process and
-n 2), user indices stay unique, every user's fixtures are torn down."""

from __future__ import annotations

import json

import pytest

from .harness import EventLog, RunSwarm

PROJECT = """
import pytest
from events import log

@pytest.fixture
def visitor(http, swarm_user):
    log("setup", swarm_user.index)
    yield http
    log("teardown", swarm_user.index)

@pytest.mark.load(stages=[("1s", 4), ("1500ms", 4), ("1s", 0)], wait=0.05)
def test_ramp(visitor):
    visitor.get("/items")
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one-process", "xdist"])
def test_the_swarm_follows_the_stages(
    pytester: pytest.Pytester, swarm_pytest: RunSwarm, event_log: EventLog, workers: list[str]
) -> None:
    pytester.makepyfile(test_ramp=PROJECT)
    json_path = pytester.path / "r.json"
    run = swarm_pytest(*workers, f"--swarm-json={json_path}")
    run.result.assert_outcomes(passed=1)
    setups = sorted(int(w[0]) for w in event_log.words("setup"))
    teardowns = sorted(int(w[0]) for w in event_log.words("teardown"))
    # Four users in all, whatever the number of workers: unique indices, each torn down.
    assert setups == teardowns == [0, 1, 2, 3]
    [doc] = json.loads(json_path.read_text())["load_tests"]
    users = [p["users"] for p in doc["timeline"]]
    assert max(users) == 4
    # Up, hold, down: the peak is neither at the start nor at the end.
    peak = users.index(4)
    assert users[0] < 4 and users[-1] < 4 and peak > 0
