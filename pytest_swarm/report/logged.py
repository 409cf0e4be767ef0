"""What a load test leaves in pytest's reports: the text section, the JSON document, and the
report pytest never makes for an interrupted test.

pytest makes no report for a test interrupted by Ctrl-C (``KeyboardInterrupt`` passes through
its runner): the terminal, JUnit and ``--swarm-json`` would then know nothing of the figures
measured until the interrupt. :func:`log_interrupted` logs one report for such a test through
the ordinary ``pytest_runtest_logreport`` hook, so every reporter (the summary printer, JUnit,
the JSON collector) gets it like any other, marked interrupted. The same function serves the
one-process run (the item is at hand) and the xdist controller (which has only the node id).

Example:
    >>> from pytest_swarm.stats.snapshot import Snapshot
    >>> from pytest_swarm.stats.result import RunResult
    >>> r = RunResult(Snapshot(), duration=1.0, users=2, interrupted="SIGTERM")
    >>> doc = document("t.py::test_home", r, None)
    >>> doc["interrupted"], doc["users_started"], doc["cut_off"]
    ('SIGTERM', 2, 0)
"""

from __future__ import annotations

from typing import Any, Literal

import pytest

from ..objectives import Verdict
from ..stats.result import RunResult

SECTION = "swarm"


def document(key: str, result: RunResult, verdict: Verdict | None) -> dict[str, Any]:
    """The JSON document of one load run, with what the run did not measure: users that
    never started, iterations cut off at the stop, and the interruption, if any."""
    from .files import result_document

    doc = result_document(key, result, verdict)
    doc["users_started"] = result.started
    doc["users_not_started"] = result.not_started
    doc["cut_off"] = result.cut_off
    doc["interrupted"] = result.interrupted
    return doc


def log_interrupted(
    config: pytest.Config,
    nodeid: str,
    location: tuple[str, int | None, str],
    runs: list[tuple[str, str, RunResult]],
    when: Literal["setup", "call"] = "setup",
    user_properties: list[tuple[str, object]] | None = None,
) -> None:
    """Log a failed report for an interrupted load test: ``runs`` are (label, key, result)
    of its load runs. In the terminal it counts as an error (a setup report) or a failure
    (``when="call"``), never as a pass; JUnit gets the testcase with its properties, the JSON
    file the documents marked interrupted."""
    from .junit import properties
    from .terminal import full_report, headline

    props = list(user_properties or [])
    if not props:
        for i, (_, _, result) in enumerate(runs):
            props.extend(properties(result, "swarm" if i == 0 else f"swarm{i + 1}"))
    reasons = sorted({r.interrupted for _, _, r in runs if r.interrupted}) or ["interrupted"]
    text = "\n\n".join("INTERRUPTED " + full_report(label, r, None) for label, _, r in runs)
    first = "\n".join("INTERRUPTED " + headline(label, r) for label, _, r in runs)
    report = pytest.TestReport(
        nodeid=nodeid,
        location=location,
        keywords={},
        outcome="failed",
        longrepr=f"load test interrupted ({', '.join(reasons)}): the figures cover the run "
        "until the interrupt\n" + first,
        when=when,
        sections=[(SECTION, text)],
        duration=max((r.duration for _, _, r in runs), default=0.0),
        user_properties=props,
    )
    report.swarm_json = [document(key, r, None) for _, key, r in runs]  # type: ignore[attr-defined]
    config.hook.pytest_runtest_logreport(report=report)
    # JUnit writes a testcase's properties, and closes it, on its teardown report.
    teardown = pytest.TestReport(
        nodeid=nodeid,
        location=location,
        keywords={},
        outcome="passed",
        longrepr=None,
        when="teardown",
        user_properties=props,
    )
    config.hook.pytest_runtest_logreport(report=teardown)


def location_of(nodeid: str) -> tuple[str, int | None, str]:
    """A report location from a node id alone (the xdist controller has no items)."""
    path, _, name = nodeid.partition("::")
    return path, None, name or path


def interrupted_reports(
    config: pytest.Config,
    results: list[tuple[str, RunResult]],
    reason: str,
    reported: set[str],
) -> None:
    """In the xdist controller: one report per interrupted load test not reported yet, from
    (test key, merged result) pairs; keys are node ids, ``#k`` added for ``swarm.run``."""
    by_item: dict[str, list[tuple[str, str, RunResult]]] = {}
    for key, result in results:
        nodeid, _, number = key.partition("#")
        if nodeid in reported:
            continue
        result.interrupted = result.interrupted or reason
        label = location_of(nodeid)[2] + (f" [swarm.run #{number}]" if number else "")
        by_item.setdefault(nodeid, []).append((label, key, result))
    for nodeid, runs in by_item.items():
        when: Literal["setup", "call"] = "call" if "#" in runs[0][1] else "setup"
        log_interrupted(config, nodeid, location_of(nodeid), runs, when=when)
