"""Helpers for the acceptance tests: real pytest runs (``pytester``, in a subprocess) against the
real demo target.

Every test here writes a small project with ``pytester``, runs pytest on it in a fresh process
(gevent patching is per process) and judges the run by what a user sees: the outcome counts, the
exit code, the terminal output, the JUnit XML, and the requests the demo target counted.

Fixtures:
    swarm_pytest: run pytest on the pytester project against the demo target; returns a
        :class:`SwarmRun` (the pytester result plus the parsed JUnit XML).
    event_log: a file the generated fixtures append lines to, and a reader for it, so tests can
        count fixture setups and teardowns that happened in the subprocess.

Example:
    >>> def test_counts(pytester, served, swarm_pytest):  # doctest: +SKIP
    ...     pytester.makepyfile(
    ...         '''
    ...         import pytest
    ...         @pytest.mark.load(users=2, duration="500ms")
    ...         def test_home(http):
    ...             http.get("/")
    ...         '''
    ...     )
    ...     run = swarm_pytest()
    ...     run.result.assert_outcomes(passed=1)
    ...     assert run.prop("test_home", "swarm_requests") == served.stats()["total"]
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pytest_swarm.demo.server import DemoServer

from .harness import EVENT_LOG_MODULE, RUN_TIMEOUT, EventLog, RunSwarm, SwarmRun


@pytest.fixture
def swarm_pytest(pytester: pytest.Pytester, served: DemoServer) -> RunSwarm:
    """Run pytest in a subprocess on the pytester project.

    Keyword arguments: ``host`` (default True: pass ``--swarm-host`` pointing at the demo
    target), ``junit`` (default True: write and parse JUnit XML). Positional arguments go to
    pytest as they are.
    """
    counter = iter(range(1_000_000))

    def run(*args: str, host: bool = True, junit: bool = True) -> SwarmRun:
        # hypothesis's pytest plugin costs ~1.5 s of start-up per run and plays no part here.
        extra = ["-p", "no:cacheprovider", "-p", "no:hypothesispytest"]
        xml_path: Path | None = None
        if host:
            extra.append(f"--swarm-host={served.url}")
        if junit:
            xml_path = pytester.path / f"junit-{next(counter)}.xml"
            extra.append(f"--junitxml={xml_path}")
        result = pytester.runpytest_subprocess(*extra, *args, timeout=RUN_TIMEOUT)
        tree = None
        if xml_path is not None and xml_path.exists():
            tree = ET.parse(xml_path).getroot()
        return SwarmRun(result, tree)

    return run


@pytest.fixture
def event_log(pytester: pytest.Pytester) -> EventLog:
    """Writes ``events.py`` (``from events import log``) into the project."""
    pytester.makepyfile(events=EVENT_LOG_MODULE)
    return EventLog(pytester.path / "events.log")
