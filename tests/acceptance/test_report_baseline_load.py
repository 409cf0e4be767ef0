"""Baselines compare the open model's arrival rate end to end: the saved document carries the
load's settings (in one process and under xdist, where the reporting worker writes it), and a
run at another arrival rate is reported invalid, never failed."""

from __future__ import annotations

import json

import pytest

from .harness import RunSwarm

TEST = """
import os
import pytest

@pytest.mark.load(arrival_rate=float(os.environ["RATE"]), max_users=4, duration="2s")
def test_open(http):
    http.get("/delay?ms=" + os.environ["DELAY_MS"], name="GET /delay")
"""


@pytest.mark.parametrize("args", [(), ("-n", "2")])
def test_another_arrival_rate_is_reported_invalid_and_does_not_fail(
    pytester: pytest.Pytester,
    swarm_pytest: RunSwarm,
    monkeypatch: pytest.MonkeyPatch,
    args: tuple[str, ...],
) -> None:
    pytester.makepyfile(test_o=TEST)
    monkeypatch.setenv("RATE", "10")
    monkeypatch.setenv("DELAY_MS", "5")
    swarm_pytest(*args, "--swarm-save=main").result.assert_outcomes(passed=1)
    (stored,) = (pytester.path / ".swarm").iterdir()
    (saved,) = json.loads(stored.read_text())["load_tests"]
    assert saved["load_settings"]["model"] == "open"
    assert saved["load_settings"]["arrival_rate"] == 10.0

    # The same users and duration, another arrival rate, and much slower: not a regression.
    monkeypatch.setenv("RATE", "20")
    monkeypatch.setenv("DELAY_MS", "50")
    run = swarm_pytest(
        *args, "--swarm-compare=main", "--swarm-compare-fail=p95:10%", "--swarm-json=b.json"
    )
    run.result.assert_outcomes(passed=1)
    run.result.stdout.fnmatch_lines(["*INVALID: the load differs: arrival rate 10 vs 20*"])
    (doc,) = json.loads((pytester.path / "b.json").read_text())["load_tests"]
    assert not doc["comparison"]["valid"] and doc["comparison"]["exceeded"] == []
    assert doc["comparison"]["load_settings_compared"]
