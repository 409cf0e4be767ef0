"""Real ``pytest -n 2`` runs for the distributed path's faults of issue 8, section 1:

- a merged result over 1 MiB (16 request names over a 1 ms to 1 s spread): passed once, no
  hang (the decoder used to cap binary fields at 1 MiB while the encoder allowed 8 MiB);
- a worker stopped (SIGSTOP) for 10 s during a load test, then resumed (RELIABILITY row 33):
  an ERROR naming that worker, never the controller, no INTERNALERROR, one testcase;
- a worker running another pytest-swarm version (row 23): refused at the handshake, and the
  run fails naming the worker and both versions.
"""

from __future__ import annotations

import os
import re
import signal
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

import pytest
from xdist_support import PID_BODY

from pytest_swarm import __version__
from pytest_swarm.demo.server import DemoServer

pytestmark = pytest.mark.slow

WIDE = """
import pytest
from pytest_swarm import timing

_recorded = []

@pytest.mark.load(users=2, rate=100, duration="2s", wait=0.05)
def test_wide(http):
    if not _recorded:
        # Once per worker: 16 names with a latency in every bucket from 1 ms to 1 s, so the
        # delta and the merged result carry ~2.5 MB of histograms.
        _recorded.append(1)
        for i in range(16):
            for us in range(1_000, 1_000_000, 80):
                timing._active.record(f"op {i}", us / 1e6)
    http.get("/")
"""


def test_a_merged_result_over_1_mib_does_not_hang(
    pytester: pytest.Pytester, served: DemoServer, xrun: Callable[..., Any]
) -> None:
    pytester.makepyfile(test_wide=WIDE)
    run = xrun("-n", "2", timeout=120)
    print(f"wide result: exit {run.ret} after {run.seconds:.1f}s")
    print(run.output)
    assert run.ret == 0, run.output
    assert re.search(r"\b1 passed\b", run.output), run.output
    table = run.table("test_wide")
    assert table["op 0"].count == 2 * len(range(1_000, 1_000_000, 80))
    assert table["GET /"].count == served.stats()["total"]  # served = reported
    assert run.prop("test_wide", "swarm_workers") == 2


def test_a_stopped_worker_is_named_not_the_controller(
    pytester: pytest.Pytester, served: DemoServer, spawn: Callable[..., Any]
) -> None:
    pytester.makepyfile(
        test_long=PID_BODY.format(root=str(pytester.path))
        + """
import pytest

@pytest.mark.load(users=4, rate=100, duration="20s", wait=0.05)
def test_long(http):
    _note_pid()
    http.get("/")
"""
    )
    junit = pytester.path / "junit.xml"
    run = spawn("-n", "2", f"--junitxml={junit}")
    run.wait_pid_files(pytester.path, ["gw0", "gw1"])
    victim = run.worker_pids["gw1"]
    os.kill(victim, signal.SIGSTOP)
    try:
        time.sleep(10.0)  # the fault itself: the worker stays stopped for 10 s
    finally:
        os.kill(victim, signal.SIGCONT)
    ret = run.wait(timeout=90)
    output = run.output
    print(output)
    assert ret is not None, f"the run did not end within 90s of SIGCONT:\n{output}"
    assert ret != 0
    assert "INTERNALERROR" not in output
    assert not re.search(r"controller .*silent", output), output
    assert re.search(r"worker gw1 was lost during the test \(no heartbeat", output), output
    testcases = list(ET.parse(junit).getroot().iter("testcase"))
    assert [tc.get("name") for tc in testcases] == ["test_long"]
    error = testcases[0].find("error")
    assert error is not None, ET.tostring(testcases[0]).decode()
    assert "worker gw1 was lost" in (error.get("message", "") + (error.text or ""))


def test_a_worker_of_another_version_fails_the_run_naming_it(
    pytester: pytest.Pytester, served: DemoServer, xrun: Callable[..., Any]
) -> None:
    pytester.makeconftest(
        """
import os
import pytest_swarm

def pytest_configure(config):
    if os.environ.get("PYTEST_XDIST_WORKER") == "gw1":
        pytest_swarm.__version__ = "0.0.0-other"
"""
    )
    pytester.makepyfile(
        test_v="""
import pytest

@pytest.mark.load(users=2, rate=100, duration="1s", wait=0.05)
def test_v(http):
    http.get("/")
"""
    )
    run = xrun("-n", "2", timeout=120)
    print(run.output)
    assert run.ret != 0
    assert "INTERNALERROR" not in run.output
    assert not re.search(r"\d+ passed", run.output), run.output
    assert re.search(
        rf"worker gw1 runs pytest-swarm 0\.0\.0-other, the controller {re.escape(__version__)}",
        run.output,
    ), run.output
    # One error for the test (the accepted worker's, naming gw1), not one more from gw1 itself.
    assert re.search(r"\b1 error\b", run.output) and "2 errors" not in run.output, run.output


def test_every_worker_refused_is_one_clear_session_error(
    pytester: pytest.Pytester, served: DemoServer, xrun: Callable[..., Any]
) -> None:
    pytester.makeconftest(
        """
import pytest_swarm

def pytest_configure(config):
    if hasattr(config, "workerinput"):
        pytest_swarm.__version__ = "0.0.0-other"
"""
    )
    pytester.makepyfile(
        test_v="""
import pytest

@pytest.mark.load(users=2, rate=100, duration="1s", wait=0.05)
def test_v(http):
    http.get("/")
"""
    )
    run = xrun("-n", "2", timeout=120)
    assert run.ret == 1, run.output
    assert "INTERNALERROR" not in run.output
    assert not re.search(r"\d+ passed", run.output), run.output
    assert "swarm: ERROR: no load test ran: the controller refused the workers (gw0: " in run.output
    assert served.stats()["total"] == 0


def test_a_report_interval_beyond_the_heartbeat_timeout_runs_its_whole_duration(
    pytester: pytest.Pytester, served: DemoServer, xrun: Callable[..., Any]
) -> None:
    """docs/distributed.md once said workers took a 6 s report interval for a dead controller
    (a 14 s test ran 11 s and passed): the controller's heartbeats go out every second
    whatever the interval, so the load runs its duration and every request is counted."""
    pytester.makepyfile(
        test_long_interval="""
import pytest

@pytest.mark.load(users=2, rate=100, duration="7s", wait=0.1)
def test_long_interval(http):
    http.get("/")
"""
    )
    run = xrun("-n", "2", "--swarm-report-interval=6s", timeout=120)
    assert run.ret == 0, run.output
    assert run.prop("test_long_interval", "swarm_duration_s") >= 7.0
    assert run.prop("test_long_interval", "swarm_requests") == served.stats()["total"]
    assert "stopped early" not in run.output
