"""What the acceptance tests share: running pytest on a pytester project and reading the run.

See ``conftest.py`` for the fixtures built on it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_swarm.report.junit import figures

# A guard against a hung run, not a measurement: every run here lasts a few seconds.
RUN_TIMEOUT = 120.0

JUNIT_PROPERTIES = (
    "swarm_users",
    "swarm_duration_s",
    "swarm_requests",
    "swarm_failures",
    "swarm_rps",
    "swarm_p50_ms",
    "swarm_p95_ms",
    "swarm_p99_ms",
    "swarm_max_ms",
)

# Generated test files import this to log fixture events: one line per event, appended to a
# file in the project directory (the subprocess's working directory).
EVENT_LOG_MODULE = '''
"""Appends one line per event to events.log: a counter that survives the subprocess."""
import os

PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "events.log")


def log(*parts):
    with open(PATH, "a", encoding="utf-8") as handle:
        handle.write(" ".join(str(p) for p in parts) + "\\n")
'''


@dataclass
class SwarmRun:
    """One finished pytest run: the pytester result and its JUnit XML (if written)."""

    result: pytest.RunResult
    junit: ET.Element | None

    @property
    def output(self) -> str:
        return "\n".join(self.result.outlines + self.result.errlines)

    def testcase(self, name: str) -> ET.Element:
        """The ``<testcase>`` whose name is ``name`` (e.g. ``test_x`` or ``test_x[a]``)."""
        assert self.junit is not None, "this run wrote no JUnit XML"
        found = [tc for tc in self.junit.iter("testcase") if tc.get("name") == name]
        names = [tc.get("name") for tc in self.junit.iter("testcase")]
        assert len(found) == 1, f"expected one testcase {name!r}, got {names}"
        return found[0]

    def properties(self, name: str) -> dict[str, str]:
        """The figures of testcase ``name`` (in the suite's properties by default)."""
        self.testcase(name)  # exactly one testcase of that name
        assert self.junit is not None
        return figures(self.junit, name)

    def prop(self, name: str, key: str) -> float:
        """A numeric JUnit property of testcase ``name``."""
        props = self.properties(name)
        assert key in props, f"{name}: no property {key!r} in {sorted(props)}"
        return float(props[key])

    def message(self, name: str, kind: str = "failure") -> str:
        """The ``message`` of testcase ``name``'s ``<failure>`` (or ``<error>``) element."""
        element = self.testcase(name).find(kind)
        assert element is not None, f"{name}: no <{kind}> in the JUnit testcase"
        return element.get("message", "")

    def count(self, name: str) -> int:
        """``swarm_requests`` of testcase ``name``."""
        return int(self.prop(name, "swarm_requests"))


RunSwarm = Callable[..., SwarmRun]


@dataclass
class EventLog:
    """The lines the generated fixtures logged (see ``EVENT_LOG_MODULE``)."""

    path: Path

    def lines(self) -> list[str]:
        if not self.path.exists():
            return []
        return self.path.read_text(encoding="utf-8").splitlines()

    def count(self, prefix: str) -> int:
        return sum(1 for line in self.lines() if line.split()[0] == prefix)

    def words(self, prefix: str) -> list[list[str]]:
        """The remaining words of every line starting with ``prefix``."""
        return [line.split()[1:] for line in self.lines() if line.split()[0] == prefix]

    def counter(self) -> Counter[str]:
        return Counter(line.split()[0] for line in self.lines())
