"""--swarm-csv's First Seen / Last Seen and Nodes are real: a run with failing requests (and a
fixture teardown that fails) against the demo target, in one process and under ``-n 2``, writes
failures.csv with both times inside the run's wall-clock window, and exceptions.csv naming the
node(s) that saw the error: ``main`` in one process, both workers under xdist."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import pytest

from .harness import RunSwarm

TESTS = """
import pytest

@pytest.fixture
def shopper(http):
    yield http
    raise RuntimeError("teardown boom")

@pytest.mark.load(users=4, rate=100, duration="2s")
def test_home(shopper):
    shopper.get("/")
    shopper.get("/missing")  # 404: a failure per iteration
"""


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize(("args", "nodes"), [((), "main"), (("-n", "2"), "gw0, gw1")])
def test_failures_have_first_and_last_seen_and_exceptions_their_nodes(
    pytester: pytest.Pytester, swarm_pytest: RunSwarm, args: tuple[str, ...], nodes: str
) -> None:
    pytester.makepyfile(test_t=TESTS)
    before = time.time()
    run = swarm_pytest(*args, "--swarm-csv=out/run", "--swarm-json=out/run.json")
    after = time.time()
    assert run.result.ret != 0, run.output  # the failures miss the implicit objective
    out = pytester.path / "out"

    (failure,) = _rows(out / "run_test_home_failures.csv")
    assert (failure["Method"], failure["Name"]) == ("GET", "/missing")
    first, last = float(failure["First Seen"]), float(failure["Last Seen"])
    assert before <= first <= last <= after

    (exception,) = _rows(out / "run_test_home_exceptions.csv")
    assert exception["Message"] == "[teardown: test_home] RuntimeError: teardown boom"
    assert exception["Nodes"] == nodes

    (doc,) = json.loads((out / "run.json").read_text())["load_tests"]
    groups = {g["name"]: g for g in doc["errors"]}
    missing = groups["GET /missing"]
    assert (missing["first_seen_unix"], missing["last_seen_unix"]) == (
        round(first, 3),
        round(last, 3),
    )
    assert ", ".join(missing["nodes"]) == nodes and missing["nodes_more"] == 0
    assert doc["load_settings"]["model"] == "closed" and doc["load_settings"]["users"] == 4
