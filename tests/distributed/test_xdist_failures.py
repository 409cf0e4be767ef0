"""What a distributed run must survive (RELIABILITY.md rows 1, 3 and 24), with real processes:

- ``kill -9`` of one xdist worker in the middle of a load test: the run ends soon after, the
  load test is an ERROR naming the lost worker, the exit code is not 0;
- ``kill -9`` of the controller: the workers stop within a bounded time, no orphan is left;
- the aggregator's port already taken: a clear error naming the address, non-zero exit, no hang.

The load test bodies write their worker's pid to ``pid-<worker>`` in the project directory (once,
atomically); the tests wait for those files with a bounded deadline and signal exactly those
pids, never by name.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import time
import xml.etree.ElementTree as ET

import pytest
from xdist_support import PID_BODY, alive, wait_gone

from pytest_swarm.demo.server import DemoServer
from pytest_swarm.report.junit import figures

pytestmark = pytest.mark.slow


def _project(pytester: pytest.Pytester, duration: str) -> None:
    pytester.makepyfile(
        test_long=PID_BODY.format(root=str(pytester.path))
        + f"""
import pytest

@pytest.mark.load(users=4, rate=100, duration="{duration}", wait=0.05)
def test_long(http):
    _note_pid()
    http.get("/")
"""
    )


# -- RELIABILITY 1: a worker is killed ---------------------------------------------------------


@pytest.mark.parametrize("victim", ["gw0", "gw1"])
def test_worker_killed_mid_load_test(
    pytester: pytest.Pytester, served: DemoServer, spawn, victim: str
) -> None:
    _project(pytester, "15s")
    junit = pytester.path / "junit.xml"
    run = spawn("-n", "2", f"--junitxml={junit}")
    run.wait_pid_files(pytester.path, ["gw0", "gw1"])
    survivor = "gw1" if victim == "gw0" else "gw0"
    killed_at = time.monotonic()
    os.kill(run.worker_pids[victim], signal.SIGKILL)
    # Detection: the load test's error naming the lost worker is printed.
    lost = re.compile(rf"worker {victim} (was )?lost")
    deadline = killed_at + 30
    while not lost.search(run.output) and run.proc.poll() is None:
        assert time.monotonic() < deadline, f"no loss reported 30s after the kill:\n{run.output}"
        time.sleep(0.05)  # bounded polling of the run's output file
    detected = time.monotonic() - killed_at
    ret = run.wait(timeout=60)
    ended = time.monotonic() - killed_at
    output = run.output
    print(
        f"kill -9 {victim}: loss reported after {detected:.2f}s, "
        f"run ended {ended:.2f}s after the kill (exit {ret})"
    )
    print(output)
    assert ret is not None, f"the run did not end within 60s of the kill:\n{output}"
    assert ret != 0
    assert lost.search(output), output
    assert detected < 10.0, detected
    # The load test had about 15 s left: the run ended sooner (xdist first boots a
    # replacement worker, which is told the test already started and runs nothing).
    assert ended < 15.0, ended
    assert re.search(r"\b1 error\b", output), output
    assert not re.search(r"\d+ (passed|failed)", output), output
    testcases = list(ET.parse(junit).getroot().iter("testcase"))
    assert [tc.get("name") for tc in testcases] == ["test_long"]
    error = testcases[0].find("error")
    assert error is not None, ET.tostring(testcases[0]).decode()
    text = error.get("message", "") + (error.text or "")
    assert lost.search(text), text
    # The survivor stopped its users early instead of running the whole 15 s.
    props = figures(ET.parse(junit).getroot(), "test_long")
    assert float(props["swarm_duration_s"]) < 10.0, props
    assert props["swarm_workers"] == "2", props
    # The surviving worker is gone too (the controller shut it down): no orphan.
    assert wait_gone([run.worker_pids[survivor]], 20) == []
    assert served.stats()["total"] > 0


# -- RELIABILITY 3: the controller is killed --------------------------------------------------


def test_controller_killed_workers_exit(pytester: pytest.Pytester, spawn) -> None:
    _project(pytester, "30s")
    run = spawn("-n", "2")
    run.wait_pid_files(pytester.path, ["gw0", "gw1"])
    pids = list(run.worker_pids.values())
    assert all(alive(p) for p in pids)
    killed_at = time.monotonic()
    os.kill(run.proc.pid, signal.SIGKILL)
    assert run.wait(timeout=10) == -signal.SIGKILL
    left = wait_gone(pids, 20)
    gone_after = time.monotonic() - killed_at
    print(f"controller killed: workers {pids} gone after {gone_after:.2f}s; still alive: {left}")
    print(run.output)
    assert left == [], f"workers {left} outlived their controller by 20s"


# -- RELIABILITY 24: the aggregator port is taken -----------------------------------------


def test_busy_aggregator_port(pytester: pytest.Pytester, served: DemoServer, xrun) -> None:
    _project(pytester, "1s")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        run = xrun("-n", "2", "--swarm-bind", f"tcp://127.0.0.1:{port}", timeout=90, junit=False)
    print(f"busy port: exit {run.ret} after {run.seconds:.2f}s")
    print(run.output)
    assert run.ret != 0
    assert f"tcp://127.0.0.1:{port}" in run.output
    assert re.search(r"cannot bind|in use", run.output, re.I), run.output
    assert "Traceback" not in run.output and "INTERNALERROR" not in run.output
    assert served.stats()["total"] == 0  # nothing ran
