"""Issue 3's contract with real ``pytest -n N`` runs: scheduling, one result per load test,
users split across workers, the start barrier, exact counting, the live line, consistency with
a one-process run, CURVE, failures counted once, ``swarm.run`` under xdist, and a run without
load tests left to plain xdist.

Each test writes a project with ``pytester`` and runs it in a subprocess against the counting
demo target; the request names in the generated bodies carry the worker id
(``PYTEST_XDIST_WORKER``) or the user index, so the merged request table shows who did what.
"""

from __future__ import annotations

import re
from collections import Counter

import pytest

from pytest_swarm.demo.server import DemoServer

pytestmark = pytest.mark.slow

T = 120  # timeout of one run: a guard against a hang, not a measurement


def _passed_on(output: str) -> dict[str, str]:
    """``-v`` lines ``[gwN] [ x%] PASSED path::test`` -> {test id: worker}."""
    found = {}
    for match in re.finditer(r"^\[(gw\d+)\] \[\s*\d+%\] PASSED (\S+)", output, re.M):
        found[match.group(2)] = match.group(1)
    return found


# -- 1. scheduling -------------------------------------------------------------------------

SCHEDULING = """
import os
import pytest

@pytest.mark.parametrize("i", range(5))
def test_plain(i):
    pass

@pytest.mark.load(users=3, rate=100, duration="1s", wait=0.05)
def test_load_a(http):
    http.get("/", name=f"GET / {os.environ['PYTEST_XDIST_WORKER']}")

@pytest.mark.load(users=3, rate=100, duration="1s", wait=0.05)
def test_load_b(http):
    http.get("/items", name=f"GET /items {os.environ['PYTEST_XDIST_WORKER']}")
"""


def test_scheduling_counts_each_test_once_and_broadcasts_load_tests(
    pytester: pytest.Pytester, xrun
) -> None:
    pytester.makepyfile(test_sched=SCHEDULING)
    run = xrun("-n", "3", "-v", timeout=T)
    assert run.ret == 0, run.output
    run.result.assert_outcomes(passed=7)
    assert "7 passed" in run.output and "9 passed" not in run.output
    # JUnit: exactly 7 testcases, one per test.
    names = Counter(tc.get("name") for tc in run.testcases())
    assert sum(names.values()) == 7, names
    assert names["test_load_a"] == names["test_load_b"] == 1
    # The ordinary tests were spread over the workers (the scheduler hands out one test per
    # worker first, so every worker gets at least one).
    plain = {t: w for t, w in _passed_on(run.output).items() if "test_plain" in t}
    assert len(plain) == 5, plain
    assert set(plain.values()) == {"gw0", "gw1", "gw2"}, plain
    # Every worker ran each load test: its requests are in the merged table.
    for test, path in (("test_load_a", "GET /"), ("test_load_b", "GET /items")):
        table = run.table(test)
        assert set(table) == {f"{path} gw{k}" for k in range(3)}, table
        assert all(row.count > 0 for row in table.values()), table
        assert run.prop(test, "swarm_workers") == 3


# -- 2. one result per load test -------------------------------------------------------------

ONE_RESULT = """
import pytest

@pytest.mark.load(users=4, rate=100, duration="1s", wait=0.05)
def test_first(http):
    http.get("/")

@pytest.mark.load(users=2, rate=100, duration="1s", wait=0.05)
def test_second(http):
    http.get("/items")
"""


def test_one_junit_testcase_per_load_test_with_solo_properties(
    pytester: pytest.Pytester, xrun
) -> None:
    pytester.makepyfile(test_one=ONE_RESULT)
    solo = xrun(timeout=T)
    assert solo.ret == 0, solo.output
    dist = xrun("-n", "3", timeout=T)
    assert dist.ret == 0, dist.output
    dist.result.assert_outcomes(passed=2)
    assert len(dist.testcases()) == 2
    for test, users in (("test_first", 4), ("test_second", 2)):
        props = dist.properties(test)  # asserts exactly one testcase of that name
        assert list(props) == list(solo.properties(test)), (props, solo.properties(test))
        for key in ("swarm_users", "swarm_requests", "swarm_p95_ms", "swarm_workers"):
            assert key in props
        assert dist.prop(test, "swarm_workers") == 3
        assert solo.prop(test, "swarm_workers") == 1
        assert dist.prop(test, "swarm_users") == users
        # Each figure once (not one set per worker), in the suite's one <properties> block.
        assert dist.junit is not None
        (suite,) = dist.junit.iter("testsuite")
        assert len(suite.findall("properties")) == 1
        names = Counter(p.get("name") for p in suite.iter("property"))
        assert names.most_common(1)[0][1] == 1
        assert sum(1 for n in names if str(n).endswith(f"::{test}::swarm_requests")) == 1


# -- 3. users split across workers -------------------------------------------------------

USERS_SPLIT = """
import os
import pytest

@pytest.fixture
def logged_in(http, swarm_user):
    http.post("/login", json={"user": f"u{swarm_user.index}"}, name="login")
    yield
    http.post("/logout", name="logout")

@pytest.mark.load(users=10, rate=100, duration="2s", wait=0.05)
def test_split(http, swarm_user, logged_in):
    if swarm_user.iteration == 0:
        worker = os.environ["PYTEST_XDIST_WORKER"]
        http.get("/", name=f"user {swarm_user.index} on {worker}")
    http.get("/", name="GET /")
"""


def test_users_split_4_3_3_with_unique_indices(
    pytester: pytest.Pytester, served: DemoServer, xrun
) -> None:
    pytester.makepyfile(test_split=USERS_SPLIT)
    run = xrun("-n", "3", timeout=T)
    assert run.ret == 0, run.output
    run.result.assert_outcomes(passed=1)
    stats = served.stats()
    assert stats["logins"] == 10, stats  # one per-user fixture per user, no extra instance
    assert stats["logouts"] == 10, stats
    table = run.table("test_split")
    firsts = {}
    for name, row in table.items():
        match = re.fullmatch(r"user (\d+) on (gw\d+)", name)
        if match:
            assert row.count == 1, (name, row)  # each user's first iteration, once
            firsts[int(match.group(1))] = match.group(2)
    assert sorted(firsts) == list(range(10)), firsts
    sizes = Counter(firsts.values())
    assert sorted(sizes.values()) == [3, 3, 4], sizes
    assert set(sizes) == {"gw0", "gw1", "gw2"}
    assert table["login"].count == 10 and table["logout"].count == 10, table
    assert run.prop("test_split", "swarm_users") == 10
    assert run.prop("test_split", "swarm_workers") == 3


# -- 4. start barrier ----------------------------------------------------------------------

BARRIER = """
import os
import time
import pytest

DONE = os.path.join({root!r}, "slow.done")

def test_slow():
    time.sleep(3)  # the scenario: one worker is busy with a long ordinary test
    with open(DONE, "w") as handle:
        handle.write("done")

def test_quick_1():
    pass

def test_quick_2():
    pass

@pytest.mark.load(users=4, rate=100, duration="2s", wait=0.05)
def test_after_slow(http):
    # Released only once every worker reached the barrier, so after test_slow ended.
    after = os.path.exists(DONE)
    http.get("/", name=f"GET / {{os.environ['PYTEST_XDIST_WORKER']}} after_slow={{after}}")
"""


def test_barrier_waits_for_the_slow_worker(pytester: pytest.Pytester, xrun) -> None:
    pytester.makepyfile(test_barrier=BARRIER.format(root=str(pytester.path)))
    run = xrun("-n", "2", timeout=T)
    assert run.ret == 0, run.output
    run.result.assert_outcomes(passed=4)
    assert run.prop("test_after_slow", "swarm_workers") == 2
    table = run.table("test_after_slow")
    # Both workers made requests, and not one before the slow test had finished.
    assert set(table) == {"GET / gw0 after_slow=True", "GET / gw1 after_slow=True"}, table
    duration = run.prop("test_after_slow", "swarm_duration_s")
    print(f"swarm_duration_s = {duration} for duration='2s' after a 3 s ordinary test")
    assert duration >= 1.95, duration  # measured from the release (lower bound only)


# -- 6. counting: served == reported -------------------------------------------------------

COUNTING = """
import pytest

@pytest.fixture
def account(http, swarm_user):
    http.post("/login", json={"user": f"u{swarm_user.index}"})
    yield
    http.post("/logout")

@pytest.mark.load(users=7, rate=100, duration="2s", wait=0.02)
def test_count(http, account):
    http.get("/")
    http.get("/items")
"""


@pytest.mark.parametrize("workers", [2, 3])
def test_requests_served_equal_requests_reported(
    pytester: pytest.Pytester, served: DemoServer, xrun, workers: int
) -> None:
    pytester.makepyfile(test_count=COUNTING)
    run = xrun("-n", str(workers), timeout=T)
    assert run.ret == 0, run.output
    stats = served.stats()
    reported = int(run.prop("test_count", "swarm_requests"))
    print(f"-n {workers}: served {stats['total']}, reported {reported}")
    assert stats["logins"] == 7 and stats["logouts"] == 7, stats
    assert reported == stats["total"], (reported, stats)
    table = run.table("test_count")
    assert table["POST /login"].count == 7 and table["POST /logout"].count == 7, table
    assert table["GET /"].count == stats["paths"]["/"], (table, stats)
    assert table["GET /items"].count == stats["paths"]["/items"], (table, stats)
    assert run.prop("test_count", "swarm_workers") == workers


# -- 7. live line --------------------------------------------------------------------------

LIVE = """
import pytest

@pytest.mark.load(users=4, rate=100, duration="3s", wait=0.05)
def test_live(http):
    http.get("/")
"""


def test_controller_prints_live_lines(pytester: pytest.Pytester, xrun) -> None:
    pytester.makepyfile(test_live=LIVE)
    run = xrun("-n", "2", timeout=T)
    assert run.ret == 0, run.output
    lines = [line for line in run.result.outlines if line.startswith("[swarm] ")]
    assert lines, run.output
    # The short test name, as one process shows it (report/terminal.py live_line).
    assert all(line.startswith("[swarm] test_live  ") for line in lines), lines
    counts = [
        int(m.group(1).replace(",", ""))
        for m in (re.search(r"([\d,]+) req/s", line) for line in lines)
        if m
    ]
    # At least one line during the run shows requests being made.
    assert max(counts, default=0) > 0, lines


# -- 11. consistency with a one-process run ----------------------------------------------

CONSISTENCY = """
import pytest

@pytest.mark.load(users=4, rate=100, duration="2s", wait=0.05)
def test_mix(http, swarm_user):
    http.get("/", name="home")
    if swarm_user.iteration % 2 == 0:
        http.get("/items", name="items")
"""


def test_solo_and_distributed_agree(pytester: pytest.Pytester, xrun) -> None:
    pytester.makepyfile(test_mix=CONSISTENCY)
    solo = xrun(timeout=T)
    dist = xrun("-n", "2", timeout=T)
    assert solo.ret == 0, solo.output
    assert dist.ret == 0, dist.output
    solo.result.assert_outcomes(passed=1)
    dist.result.assert_outcomes(passed=1)
    solo_table, dist_table = solo.table("test_mix"), dist.table("test_mix")
    assert set(solo_table) == set(dist_table) == {"home", "items"}
    for name in ("home", "items"):
        a, b = solo_table[name].count, dist_table[name].count
        print(f"{name}: solo {a}, -n 2 {b}")
        assert a / 2 <= b <= a * 2, (name, a, b)
    a, b = solo.prop("test_mix", "swarm_requests"), dist.prop("test_mix", "swarm_requests")
    assert a / 2 <= b <= a * 2, (a, b)
    assert solo.prop("test_mix", "swarm_users") == dist.prop("test_mix", "swarm_users") == 4


# -- 12. CURVE over TCP ---------------------------------------------------------------------


def test_curve_tcp_bind(pytester: pytest.Pytester, served: DemoServer, xrun) -> None:
    pytester.makepyfile(test_curve=LIVE.replace('"3s"', '"1s"'))
    run = xrun("-n", "2", "--swarm-bind", "tcp://127.0.0.1:0", timeout=T)
    assert run.ret == 0, run.output
    run.result.assert_outcomes(passed=1)
    assert run.prop("test_live", "swarm_workers") == 2
    assert run.prop("test_live", "swarm_requests") == served.stats()["total"]


# -- 13. failures counted once ---------------------------------------------------------------

FAILING = """
import pytest

@pytest.mark.load(users=4, rate=100, duration="2s", wait=0.05)
@pytest.mark.slo("failures < 1", "requests > 1")
def test_fails(http, swarm_user):
    http.get("/")
    if swarm_user.index == 0 and swarm_user.iteration == 0:
        raise ValueError("boom once")  # user 0 lives on one worker only: one failure overall
"""


def test_failing_objective_fails_once(pytester: pytest.Pytester, xrun) -> None:
    pytester.makepyfile(test_fail=FAILING)
    run = xrun("-n", "2", timeout=T)
    assert run.ret == 1, run.output
    run.result.assert_outcomes(failed=1)
    assert len(run.testcases()) == 1
    assert run.testcase("test_fails").find("failure") is not None
    # The verdict table, with the miss and the measured value.
    assert re.search(r"MISSED\s+failures < 1\s+measured 1\b", run.output), run.output
    assert re.search(r"met\s+requests > 1\b", run.output), run.output
    # The iteration failure is one entry named after the test, counted once overall.
    table = run.table("test_fails")
    assert table["test_fails"].count == 1 and table["test_fails"].fails == 1, table
    assert table["GET /"].fails == 0
    assert run.prop("test_fails", "swarm_failures") == 1
    assert run.prop("test_fails", "swarm_workers") == 2
    assert run.output.count("ValueError") >= 1


# -- 14. swarm.run under xdist --------------------------------------------------------------

SWARM_RUN = """
import os

def browse(http):
    http.get("/", name=f"GET / {os.environ['PYTEST_XDIST_WORKER']}")

def test_with_swarm(swarm):
    result = swarm.run(browse, users=4, rate=100, duration="2s", wait=0.05)
    # Every worker sees the merged result of the swarm, not its own share.
    assert result.workers == 2
    assert set(result.names) == {"GET / gw0", "GET / gw1"}
    assert result.total.count == sum(result[n].count for n in result.names)

def test_plain():
    pass
"""


def test_swarm_run_inside_a_test(pytester: pytest.Pytester, served: DemoServer, xrun) -> None:
    pytester.makepyfile(test_fixture=SWARM_RUN)
    run = xrun("-n", "2", timeout=T)
    assert run.ret == 0, run.output
    run.result.assert_outcomes(passed=2)
    assert len(run.testcases()) == 2
    assert run.prop("test_with_swarm", "swarm_workers") == 2
    assert run.prop("test_with_swarm", "swarm_users") == 4
    assert run.prop("test_with_swarm", "swarm_requests") == served.stats()["total"]


# -- 15. no load test: plain xdist ---------------------------------------------------------

PLAIN = """
import sys
import pytest

@pytest.mark.parametrize("i", range(5))
def test_plain(i):
    # The plugin stays out of a run without load tests: no gevent patching in the workers.
    if "gevent.monkey" in sys.modules:
        from gevent import monkey
        assert not monkey.is_module_patched("socket")
"""


def test_no_load_tests_is_plain_xdist(pytester: pytest.Pytester, xrun) -> None:
    pytester.makepyfile(test_plain=PLAIN)
    run = xrun("-n", "2", "-v", timeout=T)
    assert run.ret == 0, run.output
    run.result.assert_outcomes(passed=5)
    assert "scheduling tests via LoadScheduling" in run.output, run.output
    assert "SwarmScheduling" not in run.output
    assert len(run.testcases()) == 5
    assert not any(tc.find("properties") is not None for tc in run.testcases())
    assert set(_passed_on(run.output).values()) <= {"gw0", "gw1"}


# -- other --dist modes: xdist's own scheduler, each load test in one worker ---------------

OTHER_DIST = """
import pytest

def test_plain():
    pass

@pytest.mark.load(users=3, rate=100, duration="1s", wait=0.05)
def test_load(http):
    http.get("/")
"""


@pytest.mark.parametrize("mode", ["loadfile", "worksteal"])
def test_other_dist_modes_run_load_tests_in_one_worker(
    pytester: pytest.Pytester, served: DemoServer, xrun, mode: str
) -> None:
    # Regression: these modes keep xdist's scheduler, which never registers workers with the
    # start barrier; a worker used to wait for a release that never came (the run hung).
    pytester.makepyfile(test_other=OTHER_DIST)
    run = xrun("-n", "2", "--dist", mode, timeout=90)
    assert run.ret == 0, run.output
    run.result.assert_outcomes(passed=2)
    assert run.prop("test_load", "swarm_workers") == 1
    assert run.prop("test_load", "swarm_users") == 3
    assert run.prop("test_load", "swarm_requests") == served.stats()["total"]
