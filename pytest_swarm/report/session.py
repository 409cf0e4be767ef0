"""What the session's reports say about each load test beyond its figures: its outcome and why,
the run's context, the failure line pytest shows, and the GitHub step summary.

Called by the plugin's hooks with what they have at hand (the item, its report); everything
here reads results and documents, never the engine.

Example:
    >>> doc = {"test": "t.py::test_home", "total": {"count": 10, "failures": 0, "rps": 5.0,
    ...        "p95_ms": 12.0}, "objectives": [], "users": 2, "duration_s": 2.0}
    >>> doc.update(outcome="passed", reason="")
    >>> print(step_summary([doc]).splitlines()[4])
    | ✅ passed | `t.py::test_home` | 2 | 10 | 0 | 5.0 | 12.0 ms |  |
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .. import __version__
from ..objectives import format_measured

if TYPE_CHECKING:
    from ..objectives import Verdict
    from ..options import SwarmOptions
    from ..stats.result import RunResult

START_KEY = pytest.StashKey[float]()  # when the phase that ran the load began (Unix seconds)
MAX_REASON = 1000
MAX_SUMMARY_BYTES = 1_000_000  # GitHub refuses step summaries above 1 MiB


def note_phase(item: pytest.Item, when: str, start: float) -> None:
    """Remember when the phase that runs a load began: setup for the marker form (its users
    start in setup), call for ``swarm.run``."""
    if when == "setup" or START_KEY not in item.stash:
        item.stash[START_KEY] = start


def reason(result: RunResult, verdict: Verdict | None, limit: int = 3) -> str:
    """One line saying why a load test failed: the missed objectives with their measured
    values, then the most frequent error groups.

    Example:
        >>> from pytest_swarm.stats.snapshot import Snapshot
        >>> from pytest_swarm.stats.result import RunResult
        >>> from pytest_swarm.objectives import evaluate
        >>> snap = Snapshot(); snap.entry("GET /").hist.record_values([1000] * 425)
        >>> snap.entry("GET /").failures = 425
        >>> snap.add_error("GET /", "ConnectionError", "refused", "", 425)
        >>> r = RunResult(snap, duration=1.0)
        >>> reason(r, evaluate([], r))
        'MISSED failures = 0 (measured 425); 425 x [GET /] ConnectionError: refused'
    """
    parts = []
    for o in verdict.missed if verdict is not None else ():
        shown = (
            f"measured {format_measured(o.objective.metric, o.measured)}"
            if o.measured is not None
            else o.detail or "not measured"
        )
        parts.append(f"MISSED {o.label()} ({shown})")
    for g in result.errors[:limit]:
        message = f": {g.message}" if g.message else ""
        parts.append(f"{g.count:,} x [{g.name}] {g.kind}{message}")
    if result.problems:
        parts.insert(0, result.problems[0])
    text = "; ".join(parts)
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"


def outcome(report: pytest.TestReport, result: RunResult, stopped: str = "") -> str:
    """passed / failed / error / interrupted / aborted, as the JSON and the reports say it."""
    if stopped:
        return "aborted"
    if result.interrupted:
        return "interrupted"
    if report.failed:
        return "error" if report.when == "setup" or result.problems else "failed"
    return "passed" if report.passed else str(report.outcome)


def context(config: pytest.Config, start: float | None, workers: int) -> dict[str, Any]:
    """The run's context of one load test: when it started, against what, from where."""
    from ..stash import get_options

    args = " ".join(config.invocation_params.args)
    doc: dict[str, Any] = {
        "start_unix": round(start, 6) if start else None,
        "started": (
            datetime.fromtimestamp(start, timezone.utc).isoformat(timespec="seconds")
            if start
            else None
        ),
        "target": get_options(config).host or "",
        "pytest_swarm_version": __version__,
        "python": sys.version.split()[0],
        "command": f"pytest {args}".strip(),
        "host": socket.gethostname(),
        "workers": workers,
    }
    return doc


def annotate(
    docs: list[dict[str, Any]],
    item: pytest.Item,
    report: pytest.TestReport,
    results: list[tuple[str, str, RunResult, Verdict | None]],
    stopped: str = "",
) -> None:
    """Add outcome, reason and context to the documents of one report (in place)."""
    start = item.stash.get(START_KEY, None)
    for doc, (_, _, result, verdict) in zip(docs, results, strict=True):
        state = outcome(report, result, stopped)
        doc["outcome"] = state
        why = ""
        if state == "aborted":
            why = f"stopped early: {stopped}"
        elif state == "interrupted":
            why = f"interrupted ({result.interrupted})"
        elif state != "passed":
            why = reason(result, verdict) or _first_line(report)
        doc["reason"] = why
        doc["context"] = context(item.config, start, result.workers)


def _first_line(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = getattr(crash, "message", None) or str(report.longrepr or "")
    return text.strip().splitlines()[0][:MAX_REASON] if text.strip() else ""


def explain(
    report: pytest.TestReport, results: list[tuple[str, str, RunResult, Verdict | None]]
) -> None:
    """Put the reason first in a failed report's crash message, which pytest's short summary
    line and JUnit's ``message`` attribute show: "MISSED p95 < 300ms (measured 412ms); 425 x
    [GET /] ConnectionError: ..." instead of the first line of the verdict table."""
    if not report.failed:
        return
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is None or not isinstance(getattr(crash, "message", None), str):
        return
    why = "; ".join(filter(None, (reason(r, v) for _, _, r, v in results)))
    if why and not crash.message.startswith(why):
        crash.message = f"{why}\n{crash.message}"


def _md(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def step_summary(documents: list[dict[str, Any]]) -> str:
    """The session's load tests as GitHub-flavoured Markdown (``GITHUB_STEP_SUMMARY``)."""
    icon = {"passed": "✅", "failed": "❌", "error": "💥", "interrupted": "⏹", "aborted": "⏹"}
    lines = [
        "| verdict | load test | users | requests | failures | req/s | p95 | why |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for d in documents:
        state = str(d.get("outcome", "?"))
        t = d.get("total") or {}
        lines.append(
            f"| {icon.get(state, '')} {state} | `{_md(d.get('test'))}` | {d.get('users', 0)} | "
            f"{t.get('count', 0):,} | {t.get('failures', 0):,} | {t.get('rps', 0):,.1f} | "
            f"{t.get('p95_ms', 0):,.1f} ms | {_md(d.get('reason', ''))} |"
        )
    details = []
    for d in documents:
        objectives = d.get("objectives") or []
        if not objectives:
            continue
        details.append(f"\n**{_md(d.get('test'))}**\n")
        for o in objectives:
            mark = "met" if o.get("met") else "**MISSED**"
            measured = o.get("measured")
            shown = f"measured {measured:g}" if isinstance(measured, int | float) else "—"
            details.append(f"- {mark} `{_md(o.get('objective'))}` ({shown})")
    text = "### pytest-swarm load tests\n\n" + "\n".join(lines + details) + "\n"
    return text if len(text.encode()) < MAX_SUMMARY_BYTES else "\n".join(lines[:200]) + "\n"


BASELINE_KEY = pytest.StashKey[tuple[str, dict[str, dict[str, Any]]] | str]()


def _baseline(config: pytest.Config) -> tuple[str, dict[str, dict[str, Any]]] | str:
    """(name, documents by key) of the baseline to compare with, or why there is none; read
    once per process."""
    from ..stash import get_options
    from .compare import CompareError, find, load

    cached = config.stash.get(BASELINE_KEY, None)
    if cached is None:
        options = get_options(config)
        try:
            path = find(options.storage, options.compare or "latest")
            cached = (path.stem, load(path))
        except CompareError as exc:
            cached = str(exc)
        config.stash[BASELINE_KEY] = cached
    return cached


def finish_report(
    item: pytest.Item,
    report: pytest.TestReport,
    results: list[tuple[str, str, RunResult, Verdict | None]],
    docs: list[dict[str, Any]],
    stopped: str = "",
) -> str:
    """After a load test's report is made: the comparison with a baseline (which may fail a
    passed test), outcome/reason/context in the documents, the reason first in the failure
    message. Returns text to add to the report's summary section."""
    from ..stash import get_options
    from .compare import compare, comparison_text

    options = get_options(item.config)
    extra = []
    if options.compare is not None:
        baseline = _baseline(item.config)
        regressions = []
        for doc in docs:
            if isinstance(baseline, str):
                doc["comparison"] = {"baseline": "", "valid": False, "invalid_because": baseline}
                extra.append(f"Change against baseline: none ({baseline})")
                continue
            name, stored = baseline
            old = stored.get(str(doc.get("test")))
            if old is None:
                doc["comparison"] = {
                    "baseline": name,
                    "valid": False,
                    "invalid_because": "not in the baseline",
                }
                extra.append(f"Change against baseline {name}: none (this load test is not in it)")
                continue
            comparison = compare(old, doc, options.compare_fail)
            doc["comparison"] = comparison
            extra.append(comparison_text(comparison))
            regressions += comparison["exceeded"]
        if regressions and report.passed and report.when == "call":
            report.outcome = "failed"
            report.longrepr = (
                f"regression against baseline {baseline[0] if isinstance(baseline, tuple) else ''}"
                ": " + "; ".join(regressions)
            )
    annotate(docs, item, report, results, stopped)
    if report.when == "call":  # a setup error's message is its problem already
        explain(report, results)
    return "\n".join(extra)


def session_files(
    options: SwarmOptions, documents: list[dict[str, Any]]
) -> list[tuple[str | None, Callable[[str], Path]]]:
    """(path, writer) of the files written at the end of the session besides JSON and HTML:
    the CSV sets, the baseline, the GitHub step summary. A writer returns the main path."""
    from .compare import save

    out: list[tuple[str | None, Callable[[str], Path]]] = []
    if documents:
        out.append((options.csv_prefix, lambda prefix: _write_csv(prefix, documents)))
    if options.save is not None and documents:
        name = options.save
        out.append((options.storage, lambda storage: save(storage, name, documents)))
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary and documents:
        out.append((summary, lambda path: _append_summary(path, documents)))
    return out


def _write_csv(prefix: str, documents: list[dict[str, Any]]) -> Path:
    """Every load test's four files; the path shown is their pattern, not the first file."""
    from .locust_csv import write_csv

    write_csv(prefix, documents)
    return Path(f"{prefix}_*.csv")


def _append_summary(path: str, documents: list[dict[str, Any]]) -> Path:
    from .files import ReportFileError

    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(step_summary(documents))
    except OSError as exc:
        raise ReportFileError(f"GITHUB_STEP_SUMMARY: could not append to {path}: {exc}") from None
    return Path(path)
