"""Row 28: thousands of distinct request names (ids in URLs, no ``name=``).

Before: one row per URL (20,912 rows in the terminal, 476 MiB in one process); under xdist a
fold into 2,000 + "(other)" on the wire only, and 7 KB paths made a 9 MB delta that killed the
test. Now the recorder folds at the source, the same way in one process and in every worker,
warns once with the fix, and cuts a name at 200 characters.
"""

from __future__ import annotations

import json

import pytest

from pytest_swarm.demo.server import DemoServer
from pytest_swarm.stats.recorder import CUT_MARK, MAX_NAME_LENGTH
from pytest_swarm.stats.snapshot import MAX_NAMES, OTHER_NAME

from .harness import RunSwarm

# 50 users x 2 iterations x 50 requests: 5,000 distinct URLs, every one a 200 from the demo
# target (/items/<id> with ids 1..1000 and leading zeros: /items/01 is /items/1 to the target,
# another name to the client). Each user also makes one request with a 7 KB path, accepted.
DISTINCT_URLS = """
import pytest

@pytest.mark.load(users=50, rate=1000, duration="60s", iterations=2)
def test_ids(http, swarm_user):
    base = (swarm_user.index * 2 + swarm_user.iteration) * 50
    for j in range(50):
        k = base + j
        http.get("/items/" + "0" * (k // 1000) + str(k % 1000 + 1)).raise_for_status()
    with http.get("/" + "p" * 7000 + str(swarm_user.index), catch_response=True) as r:
        r.success()
"""

ROWS = 50 * 2 * (50 + 1)


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one-process", "xdist"])
def test_thousands_of_request_names_fold_the_same_way_everywhere(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm, workers: list[str]
) -> None:
    pytester.makepyfile(DISTINCT_URLS)
    out = pytester.path / "swarm.json"
    run = swarm_pytest(*workers, f"--swarm-json={out}")
    run.result.assert_outcomes(passed=1)
    (doc,) = json.loads(out.read_text())["load_tests"]
    requests = doc["requests"]
    # Bounded: 1,999 names and "(other)", every request still counted.
    assert len(requests) == MAX_NAMES
    assert requests[OTHER_NAME]["count"] > 0
    assert sum(r["count"] for r in requests.values()) == doc["total"]["count"] == ROWS
    assert served.stats()["total"] == ROWS
    assert all(len(name) <= MAX_NAME_LENGTH for name in requests)
    cut = [name for name in requests if name.endswith(CUT_MARK)]
    assert all(len(name) == MAX_NAME_LENGTH for name in cut)
    # The terminal table: no more rows than the JSON (a row per URL before).
    rows = [line for line in run.result.outlines if line.startswith("GET /")]
    assert len(rows) <= MAX_NAMES
    # Warned once, with the fix.
    assert run.output.count("distinct request names") == 1, run.output[-3000:]
    assert "name=" in run.output
