"""The end of each load test on the live feed, read from pytest's reports.

The verdict of a load test is decided where its test runs (this process, or an xdist worker)
and reaches the aggregating process as a pytest report: ``pytest_runtest_logreport`` there
turns it into :class:`~pytest_swarm.feed.LoadFinished` events (one per load run of the report:
the marker form has one, ``swarm.run`` one per call) carrying the JSON document the report
files are written from.

Example:
    >>> import pytest
    >>> where = ("t.py", 1, "test_a")
    >>> report = pytest.TestReport("t.py::test_a", where, {}, "passed", None, "call")
    >>> report.swarm_json = [{"test": "t.py::test_a", "interrupted": ""}]
    >>> [(e.test, e.name, e.outcome) for e in finished_events(report)]
    [('t.py::test_a', 'test_a', 'passed')]
"""

from __future__ import annotations

from typing import Any

import pytest

from .engine.link import short_name
from .feed import LoadFinished

# The report attribute saying a load was stopped on request, and why (see plugin.py).
STOPPED_ATTR = "swarm_stopped"


def outcome_of(report: pytest.TestReport, doc: dict[str, Any]) -> tuple[str, str]:
    """(outcome, reason): passed / failed / error / interrupted / aborted, and the first line
    of why it did not pass ("" when it passed)."""
    stopped = str(getattr(report, STOPPED_ATTR, "") or "")
    text = report.longreprtext if report.failed else ""
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if doc.get("interrupted"):
        return "interrupted", f"interrupted ({doc['interrupted']})"
    if stopped:
        return "aborted", stopped
    if report.passed:
        return "passed", ""
    if report.when == "setup":
        return "error", first
    return "failed", first


def finished_events(report: pytest.TestReport) -> list[LoadFinished]:
    """The LoadFinished events of one report ([] for a report about no load run)."""
    docs = getattr(report, "swarm_json", None) or []
    events = []
    for doc in docs:
        if not isinstance(doc, dict):
            continue
        test = str(doc.get("test", report.nodeid))
        outcome, reason = outcome_of(report, doc)
        events.append(LoadFinished(test, short_name(test), outcome, None, reason, doc))
    return events
