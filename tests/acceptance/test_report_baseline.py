"""Baselines: --swarm-autosave stores a run, --swarm-compare-fail fails a slower one saying by
how much; the change is in the terminal and the JSON; a different load is not compared."""

from __future__ import annotations

import json

import pytest

from .harness import RunSwarm

TEST = """
import os
import pytest

@pytest.mark.load(users=int(os.environ.get("USERS", "2")), rate=100, duration="2s")
def test_delay(http):
    http.get("/delay?ms=" + os.environ["DELAY_MS"], name="GET /delay")
"""


def test_a_slower_second_run_fails_saying_by_how_much(
    pytester: pytest.Pytester, swarm_pytest: RunSwarm, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_b=TEST)
    monkeypatch.setenv("DELAY_MS", "5")
    first = swarm_pytest("--swarm-autosave")
    first.result.assert_outcomes(passed=1)
    stored = sorted(p.name for p in (pytester.path / ".swarm").iterdir())
    assert len(stored) == 1 and stored[0].startswith("0001_")

    monkeypatch.setenv("DELAY_MS", "50")
    second = swarm_pytest("--swarm-compare-fail=p95:10%", "--swarm-json=b.json", "-rf")
    second.result.assert_outcomes(failed=1)
    message = second.message("test_delay")
    assert message.startswith("regression against baseline 0001_")
    assert "p95:10%: Total p95:" in message and "worse, beyond noise" in message
    change = float(message.split("(+")[1].split("%")[0])
    assert change > 100  # 5 ms -> 50 ms: several times slower
    second.result.stdout.fnmatch_lines(["Change against baseline 0001_*", "*Total p95: *"])
    doc = json.loads((pytester.path / "b.json").read_text())["load_tests"][0]
    assert doc["comparison"]["valid"] and doc["comparison"]["exceeded"]
    assert doc["outcome"] == "failed"


def test_a_different_load_is_reported_invalid_and_does_not_fail(
    pytester: pytest.Pytester, swarm_pytest: RunSwarm, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_b=TEST)
    monkeypatch.setenv("DELAY_MS", "5")
    swarm_pytest("--swarm-save=main").result.assert_outcomes(passed=1)
    monkeypatch.setenv("DELAY_MS", "50")
    monkeypatch.setenv("USERS", "3")
    run = swarm_pytest("--swarm-compare=main", "--swarm-compare-fail=p95:10%")
    run.result.assert_outcomes(passed=1)
    run.result.stdout.fnmatch_lines(["*INVALID: the load differs: users 2 vs 3*"])
