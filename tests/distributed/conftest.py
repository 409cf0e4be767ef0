"""Helpers for the real multi-process (xdist) tests of the distributed mode.

Every test here writes a small project with ``pytester`` and runs real ``pytest -n N`` in a
subprocess against the counting demo target (``served`` from ``tests/conftest.py``), then judges
the run by what a user sees: outcome counts, exit code, terminal output (the request table of
each load test), the JUnit XML, and the requests the target counted.

Fixtures:
    xrun: run pytest (``-p no:cacheprovider``, ``--swarm-host``, JUnit XML) in a subprocess and
        return a :class:`XRun`.
    spawn: start pytest with ``subprocess.Popen`` (for tests that signal processes while the run
        is going) and return a :class:`Spawned`.

Example:
    >>> def test_x(pytester, served, xrun):  # doctest: +SKIP
    ...     pytester.makepyfile(BODY)
    ...     run = xrun("-n", "2")
    ...     assert run.prop("test_home", "swarm_workers") == 2
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from xdist_support import Spawned, alive

from pytest_swarm.demo.server import DemoServer
from pytest_swarm.report.junit import figures

# A guard against a hung run, not a measurement: runs here last a few seconds.
RUN_TIMEOUT = 180.0

# "<name>   <requests> <fails> <req/s> <p50> <p90> <p95> <p99> <max>" (terminal.request_table)
_ROW = re.compile(
    # Req/s may be shortened (12.2k, 1.5M).
    r"^(?P<name>\S.*?)\s{2,}(?P<count>[\d,]+)\s+(?P<fails>[\d,]+)\s+[\d.,]+[kM]?"
    r"(?:\s+\S+){5}\s*$"
)


@dataclass
class Row:
    count: int
    fails: int


@dataclass
class XRun:
    """One finished pytest run: the pytester result and its parsed JUnit XML."""

    result: pytest.RunResult
    junit: ET.Element | None
    seconds: float

    @property
    def output(self) -> str:
        return "\n".join(self.result.outlines + self.result.errlines)

    @property
    def ret(self) -> int:
        return int(self.result.ret)

    def testcases(self) -> list[ET.Element]:
        assert self.junit is not None, "this run wrote no JUnit XML"
        return list(self.junit.iter("testcase"))

    def testcase(self, name: str) -> ET.Element:
        found = [tc for tc in self.testcases() if tc.get("name") == name]
        names = [tc.get("name") for tc in self.testcases()]
        assert len(found) == 1, f"expected exactly one testcase {name!r}, got {names}"
        return found[0]

    def properties(self, name: str) -> dict[str, str]:
        """The figures of testcase ``name`` (in the suite's properties by default)."""
        self.testcase(name)  # exactly one testcase of that name
        assert self.junit is not None
        return figures(self.junit, name)

    def prop(self, name: str, key: str) -> float:
        props = self.properties(name)
        assert key in props, f"{name}: no property {key!r} in {sorted(props)}"
        return float(props[key])

    def table(self, test: str) -> dict[str, Row]:
        """The request table printed after load test ``test`` (``Total`` row excluded)."""
        return request_table(self.result.outlines, test)


def request_table(lines: list[str], test: str) -> dict[str, Row]:
    starts = [i for i, line in enumerate(lines) if line.startswith(f"{test}: ")]
    # A failed test shows its summary twice (live, and in its report section): take the first.
    assert starts, f"no summary headline for {test}"
    i = starts[0] + 1
    assert lines[i].startswith("Name") and "Requests" in lines[i], lines[i]
    rows: dict[str, Row] = {}
    for line in lines[i + 1 :]:
        match = _ROW.match(line)
        if match is None:
            break
        name = match.group("name")
        if name == "Total":
            break
        count = int(match.group("count").replace(",", ""))
        fails = int(match.group("fails").replace(",", ""))
        rows[name] = Row(count, fails)
    assert rows, f"no request table rows after the headline of {test}"
    return rows


@pytest.fixture
def xrun(pytester: pytest.Pytester, served: DemoServer) -> Callable[..., XRun]:
    """Run pytest in a subprocess on the pytester project against the demo target."""

    def run(*args: str, timeout: float = RUN_TIMEOUT, junit: bool = True) -> XRun:
        xml = pytester.path / "junit.xml"
        if xml.exists():
            xml.unlink()
        extra = [f"--junitxml={xml}"] if junit else []
        start = time.monotonic()
        result = pytester.runpytest_subprocess(
            "-p",
            "no:cacheprovider",
            f"--swarm-host={served.url}",
            *extra,
            *args,
            timeout=timeout,
        )
        seconds = time.monotonic() - start
        root = ET.parse(xml).getroot() if junit and xml.exists() else None
        return XRun(result, root, seconds)

    return run


@pytest.fixture
def spawn(pytester: pytest.Pytester, served: DemoServer) -> Iterator[Callable[..., Spawned]]:
    """Start pytest with Popen in the pytester directory. At the end, every process this test
    started and still running (the run itself, the workers whose pids it learnt) is killed
    by pid, so a failed test leaves nothing behind."""
    runs: list[Spawned] = []

    def start(*args: str) -> Spawned:
        out = pytester.path / f"run-{len(runs)}.log"
        with open(out, "wb") as handle:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    "-p",
                    "no:cacheprovider",
                    f"--swarm-host={served.url}",
                    *args,
                ],
                cwd=pytester.path,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
            )
        spawned = Spawned(proc, out, time.monotonic())
        runs.append(spawned)
        return spawned

    yield start
    for spawned in runs:
        if spawned.proc.poll() is None:
            spawned.proc.kill()
            spawned.proc.wait(timeout=30)
        for pid in spawned.worker_pids.values():
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
