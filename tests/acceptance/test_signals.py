"""Signals and interruptions (RELIABILITY rows 4 and 25): real pytest runs, in one process and
under ``-n 2``, signalled by pid while their load test runs.

What a user must see after Ctrl-C or SIGTERM (what CI sends on cancel): the users stopped and
their fixture teardowns run (the demo target counts every logout), the figures measured until
then in the terminal, the JUnit testcase and the ``--swarm-json`` document, marked interrupted,
and pytest's exit code for an interrupted session (2). A second Ctrl-C stops waiting.

Each run is synchronised on files its users write (``started-<worker>`` once a user of that
process has done a few iterations), never on sleeps.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_swarm.demo.server import DemoServer
from pytest_swarm.report.junit import figures

from .harness import RunSwarm

# Guards against a hung run, not measurements.
START_TIMEOUT = 90.0
EXIT_TIMEOUT = 60.0

BODY = """
import os
import pytest

def _mark(swarm_user):
    if swarm_user.iteration == 3:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        open(f"started-{worker}", "w").close()

@pytest.fixture
def shopper(http, swarm_user):
    http.post("/login", json={"user": f"u{swarm_user.index}"})
    yield http
    http.post("/logout")

@pytest.mark.load(users=6, rate=100, duration="120s", wait=0.02)
def test_long(shopper, swarm_user):
    shopper.get("/items")
    _mark(swarm_user)
"""


@dataclass
class Run:
    proc: subprocess.Popen[bytes]
    root: Path
    log: Path

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_started(self, workers: list[str]) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not all((self.root / f"started-{w}").exists() for w in workers):
            assert self.proc.poll() is None, f"the run ended early:\n{self.output}"
            assert time.monotonic() < deadline, f"no users started:\n{self.output}"
            time.sleep(0.05)  # bounded polling for the files the users write

    def signal(self, sig: int, group: bool = False) -> None:
        if group:
            os.killpg(self.proc.pid, sig)  # a terminal's Ctrl-C reaches the whole group
        else:
            self.proc.send_signal(sig)

    def wait(self) -> int:
        return self.proc.wait(timeout=EXIT_TIMEOUT)

    def junit(self) -> ET.Element:
        return ET.parse(self.root / "junit.xml").getroot()

    def properties(self, name: str) -> dict[str, str]:
        cases = [tc for tc in self.junit().iter("testcase") if tc.get("name") == name]
        assert len(cases) == 1, f"expected one testcase {name!r}:\n{self.output}"
        return figures(self.junit(), name)

    def documents(self) -> list[dict[str, object]]:
        docs: list[dict[str, object]] = json.loads((self.root / "swarm.json").read_text())[
            "load_tests"
        ]
        return docs


@pytest.fixture
def start(pytester: pytest.Pytester, served: DemoServer) -> Iterator[object]:
    """Start pytest (in its own process group) on the pytester project; kills what is left
    of it, by pid, at the end."""
    runs: list[Run] = []

    def run(*args: str) -> Run:
        log = pytester.path / f"run-{len(runs)}.log"
        with open(log, "wb") as handle:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    "-p",
                    "no:cacheprovider",
                    "-p",
                    "no:hypothesispytest",
                    f"--swarm-host={served.url}",
                    f"--junitxml={pytester.path / 'junit.xml'}",
                    f"--swarm-json={pytester.path / 'swarm.json'}",
                    *args,
                ],
                cwd=pytester.path,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        runs.append(Run(proc, pytester.path, log))
        return runs[-1]

    yield run
    for r in runs:
        if r.proc.poll() is None:
            os.killpg(r.proc.pid, signal.SIGKILL)
            r.proc.wait(timeout=30)


def _assert_interrupted(run: Run, served: DemoServer, reason: str, workers: int) -> None:
    code = run.wait()
    output = run.output
    assert code == pytest.ExitCode.INTERRUPTED, output
    stats = served.stats()
    # Every user's teardown ran: as many logouts as logins.
    assert stats["logins"] == stats["logouts"] == 6, (stats, output)
    assert "INTERRUPTED test_long:" in output
    assert " passed" not in output.splitlines()[-1], output
    props = run.properties("test_long")
    assert props["swarm_interrupted"] == "True"
    assert int(props["swarm_workers"]) == workers
    # What was measured until the interrupt is what the target served.
    assert int(props["swarm_requests"]) == stats["total"] > 0
    (doc,) = run.documents()
    assert doc["interrupted"] == reason
    # Every process's final statistics arrived in time: under xdist the controller told the
    # workers to stop (they did not run on until their heartbeats noticed it gone).
    assert not [p for p in doc["problems"] if "never arrived" in p], doc["problems"]  # type: ignore[attr-defined]
    assert doc["total"]["count"] == stats["total"]  # type: ignore[index]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_one_process_interrupt_reports_everywhere_and_tears_down(
    pytester: pytest.Pytester, served: DemoServer, start: object, sig: signal.Signals
) -> None:
    pytester.makepyfile(test_sig=BODY)
    run = start("test_sig.py")  # type: ignore[operator]
    run.wait_started(["main"])
    run.signal(sig)
    _assert_interrupted(run, served, sig.name, workers=1)


@pytest.mark.parametrize(
    ("sig", "group", "reason"),
    [
        (signal.SIGTERM, False, "SIGTERM"),
        (signal.SIGINT, False, "SIGINT"),
        (signal.SIGINT, True, "SIGINT"),
    ],
    ids=["SIGTERM-controller", "SIGINT-controller-alone", "ctrl-c-process-group"],
)
def test_xdist_interrupt_reports_everywhere_and_tears_down(
    pytester: pytest.Pytester,
    served: DemoServer,
    start: object,
    sig: signal.Signals,
    group: bool,
    reason: str,
) -> None:
    pytester.makepyfile(test_sig=BODY)
    run = start("-n", "2", "test_sig.py")  # type: ignore[operator]
    run.wait_started(["gw0", "gw1"])
    run.signal(sig, group=group)
    # Signalled alone, the controller stops the workers' users itself: the run ends long
    # before the 120 s duration, with every teardown done.
    _assert_interrupted(run, served, reason, workers=2)


HANGING_TEARDOWN = """
import os
import gevent
import pytest

@pytest.fixture
def stuck(swarm_user):
    yield
    open(f"teardown-{swarm_user.index}", "w").close()
    gevent.sleep(600)            # a teardown that would hold the run for 10 minutes

@pytest.mark.load(users=2, rate=100, duration="120s", wait=0.02)
def test_long(stuck, http, swarm_user):
    http.get("/items")
    if swarm_user.iteration == 3:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        open(f"started-{worker}", "w").close()
"""


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["one-process", "xdist"])
def test_a_second_ctrl_c_stops_waiting_for_teardowns(
    pytester: pytest.Pytester, served: DemoServer, start: object, xdist: list[str]
) -> None:
    pytester.makepyfile(test_sig=HANGING_TEARDOWN)
    run = start(*xdist, "test_sig.py")  # type: ignore[operator]
    run.wait_started(["gw0", "gw1"] if xdist else ["main"])
    run.signal(signal.SIGINT, group=True)  # a terminal's Ctrl-C reaches every process
    deadline = time.monotonic() + START_TIMEOUT
    # The first Ctrl-C began the teardowns (user 0 and user 1, on each worker under xdist).
    while not all((pytester.path / f"teardown-{i}").exists() for i in (0, 1)):
        assert time.monotonic() < deadline and run.proc.poll() is None, run.output
        time.sleep(0.05)
    run.signal(signal.SIGINT, group=True)
    # Without the second Ctrl-C the teardowns would hold the run for 10 s (TEARDOWN_TIMEOUT)
    # and then be interrupted; with it the run ends at once, still reporting.
    assert run.wait() == pytest.ExitCode.INTERRUPTED, run.output
    props = run.properties("test_long")
    assert props["swarm_interrupted"] == "True"
    # Given up because of the second Ctrl-C, not after the 10 s teardown timeout.
    assert "still in their teardown when the run was interrupted a second time" in run.output
    assert ("(users 0)" in run.output) if xdist else ("(users 0, 1)" in run.output), run.output


KEYBOARD_INTERRUPT_IN_BODY = """
import pytest

@pytest.mark.load(users=4, rate=100, duration="120s", wait=0.02)
def test_long(http, swarm_user):
    http.get("/items")
    if swarm_user.index == 0 and swarm_user.iteration == 5:
        raise KeyboardInterrupt
"""


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["one-process", "xdist"])
def test_keyboard_interrupt_in_a_body_interrupts_the_run(
    pytester: pytest.Pytester, served: DemoServer, start: object, xdist: list[str]
) -> None:
    pytester.makepyfile(test_sig=KEYBOARD_INTERRUPT_IN_BODY)
    run = start(*xdist, "test_sig.py")  # type: ignore[operator]
    assert run.wait() == pytest.ExitCode.INTERRUPTED, run.output
    last = run.output.splitlines()[-1]
    assert "passed" not in last, run.output
    props = run.properties("test_long")
    assert props["swarm_interrupted"] == "True"
    assert int(props["swarm_requests"]) == served.stats()["total"] > 0


SYSTEM_EXIT_IN_BODY = """
import pytest

@pytest.mark.load(users=3, rate=100, duration="1s", wait=0.02)
@pytest.mark.slo("error_rate < 100%")
def test_exits(http, swarm_user):
    http.get("/items")
    if swarm_user.iteration == 2:
        raise SystemExit(3)
"""


def test_system_exit_in_a_body_is_an_iteration_failure(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    # As in a plain pytest test, SystemExit is a failure of that call: recorded with its
    # error, the users go on, the figures are kept and the objectives decide.
    pytester.makepyfile(test_sig=SYSTEM_EXIT_IN_BODY)
    run = swarm_pytest()
    run.result.assert_outcomes(passed=1)
    assert run.prop("test_exits", "swarm_failures") == 3  # once per user
    assert run.count("test_exits") == served.stats()["total"] + 3
    run.result.stdout.fnmatch_lines(["*3 x  ?test_exits? SystemExit: 3"])


FIXTURE_FORM = """
import os

def shop(http, swarm_user):
    http.get("/items")
    if swarm_user.iteration == 3 and swarm_user.users == 4:  # the second run only
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        open(f"started-{worker}", "w").close()

def test_runs(swarm):
    first = swarm.run(shop, users=2, rate=100, duration="300ms", wait=0.02)
    assert first.total.count > 0
    swarm.run(shop, users=4, rate=100, duration="120s", wait=0.02)
"""


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["one-process", "xdist"])
def test_an_interrupted_swarm_run_reports_every_run_of_the_test(
    pytester: pytest.Pytester, served: DemoServer, start: object, xdist: list[str]
) -> None:
    pytester.makepyfile(test_sig=FIXTURE_FORM)
    run = start(*xdist, "test_sig.py")  # type: ignore[operator]
    workers = ["gw0", "gw1"] if xdist else ["main"]
    run.wait_started(workers)  # the second run is under way
    run.signal(signal.SIGTERM)
    assert run.wait() == pytest.ExitCode.INTERRUPTED, run.output
    docs = run.documents()
    assert [d["test"] for d in docs][-1] == "test_sig.py::test_runs#2"
    assert docs[-1]["interrupted"] == "SIGTERM"
    assert "INTERRUPTED test_runs [swarm.run #2]" in run.output
    props = run.properties("test_runs")
    assert props["swarm2_interrupted"] == "True"
    assert int(props["swarm_requests"]) + int(props["swarm2_requests"]) == served.stats()["total"]
