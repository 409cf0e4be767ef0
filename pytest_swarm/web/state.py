"""What the dashboard shows, built from the feed's events: pure bookkeeping, no threads.

:class:`DashboardState` turns each :mod:`pytest_swarm.feed` event into the JSON message the
page applies (``started``, ``progress``, ``finished``, ``session``), and keeps the state a
page that connects late starts from (:meth:`DashboardState.snapshot`). Figures come from
:func:`pytest_swarm.report.files.result_document`, the document the HTML report renders, so
the dashboard and the report never disagree; objectives are judged so far with
:func:`pytest_swarm.objectives.evaluate`, as the verdict will be at the end.

A ``progress`` message carries the current table, objectives and workers whole, but only the
timeline points the page has not had yet (the last one again: the aggregator may still be
filling it), so a long run does not resend its whole history every second.

Example:
    >>> from pytest_swarm.feed import LoadStarted, Progress
    >>> from pytest_swarm.stats.result import RunResult
    >>> from pytest_swarm.stats.snapshot import Snapshot
    >>> state = DashboardState()
    >>> settings = {"objectives": ["p95 < 1s"]}
    >>> state.apply(LoadStarted("t.py::test_a", "test_a", 10.0, settings=settings))[0][0]
    'started'
    >>> snap = Snapshot(); snap.entry("GET /").hist.record_values([1500, 2500])
    >>> event = Progress("t.py::test_a", "test_a", 1.0, 10.0, RunResult(snap, 1.0))
    >>> name, message = state.apply(event)[0]
    >>> message["total"]["count"], [(o["objective"], o["met"]) for o in message["objectives"]]
    (2, [('p95 < 1s', True), ('failures = 0', True)])
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from ..feed import Event, LoadFinished, LoadStarted, Progress, SessionFinished
from ..objectives import Objective, ObjectiveError, evaluate, format_measured, parse_objective
from ..report.distribution import result_curves
from ..report.files import result_document
from ..stats.result import RunResult

__all__ = ["DashboardState", "Message", "json_safe"]

Message = tuple[str, dict[str, Any]]

MAX_NAMES = 200  # request rows sent per progress (the busiest): a table longer is unreadable
MAX_WORKERS = 256
MAX_ERRORS = 5
MAX_FINISHED = 1000  # load tests listed; older ones are counted, not kept
MAX_TEXT = 2000  # characters of any one string from the run (names, messages, settings)
MAX_SETTINGS = 24


def json_safe(value: Any, depth: int = 0) -> Any:
    """``value`` with non-finite floats as None, strings bounded, unknown types as text:
    the page parses strict JSON, and NaN is not JSON.

    Example:
        >>> json_safe({"a": float("nan"), "b": [1, "x" * 3], 3: (True, None)})
        {'a': None, 'b': [1, 'xxx'], '3': [True, None]}
    """
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return value[:MAX_TEXT]
    if depth > 8:
        return None
    if isinstance(value, dict):
        return {str(k)[:MAX_TEXT]: json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v, depth + 1) for v in value]
    return str(value)[:MAX_TEXT]


def _objectives(settings: dict[str, Any]) -> list[Objective] | None:
    """The test's objectives from ``LoadStarted.settings["objectives"]`` (canonical texts or
    Objective objects); None when the publisher gave none (``swarm.run``: plain asserts)."""
    given = settings.get("objectives")
    if not isinstance(given, list | tuple):
        return None
    out = []
    for item in given:
        if isinstance(item, Objective):
            out.append(item)
            continue
        try:
            out.append(parse_objective(str(item)))
        except ObjectiveError:
            continue  # validated at collection already; a stray one must not break the view
    return out


def _strip(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k != "hdr_histogram_us"}


class DashboardState:
    """The state of the session as the page shows it; :meth:`apply` each event in order."""

    def __init__(self) -> None:
        self.started: dict[str, dict[str, Any]] = {}  # test -> its started message
        self.running: dict[str, dict[str, Any]] = {}  # test -> latest progress, whole timeline
        self.finished: deque[dict[str, Any]] = deque(maxlen=MAX_FINISHED)
        self.finished_total = 0
        self.session_finished = False
        self._objectives: dict[str, list[Objective] | None] = {}
        self._last_t: dict[str, float] = {}

    def apply(self, event: Event, stoppable: bool = False) -> list[Message]:
        """The messages ``event`` adds (the state is updated too)."""
        if isinstance(event, LoadStarted):
            return [self._started(event, stoppable)]
        if isinstance(event, Progress):
            return [self._progress(event, stoppable)]
        if isinstance(event, LoadFinished):
            return [self._finished(event)]
        if isinstance(event, SessionFinished):
            self.session_finished = True
            return [("session", {"finished": True})]
        return []

    def _started(self, event: LoadStarted, stoppable: bool) -> Message:
        settings = dict(list(event.settings.items())[:MAX_SETTINGS])
        self._objectives[event.test] = _objectives(event.settings)
        self._last_t.pop(event.test, None)
        message = json_safe(
            {
                "test": event.test,
                "name": event.name,
                "duration": event.duration,
                "users": event.users,
                "worker_count": event.workers,
                "settings": {k: v for k, v in settings.items() if k != "objectives"},
                "objectives": [str(o) for o in self._objectives[event.test] or []],
                "stoppable": stoppable,
            }
        )
        self.started[event.test] = message
        self.running[event.test] = {**message, "timeline": [], "timeline_requests": {}}
        while len(self.started) > MAX_FINISHED:  # tests that started and never finished
            self.started.pop(next(iter(self.started)))
        return "started", message

    def figures(self, test: str, result: RunResult) -> dict[str, Any]:
        """The figures of ``result`` as the page's tables and charts read them."""
        doc = result_document(test, result, None)
        requests = doc.get("requests", {})
        busiest = sorted(requests, key=lambda n: -int(requests[n].get("count", 0)))[:MAX_NAMES]
        objectives = self._objectives.get(test)
        outcomes = []
        if objectives is not None:
            for o in evaluate(objectives, result).outcomes:
                shown = o.detail
                if o.measured is not None:
                    shown = format_measured(o.objective.metric, o.measured)
                outcomes.append(
                    {"objective": o.label(), "measured": shown, "met": o.met,
                     "implicit": o.objective.implicit}
                )  # fmt: skip
        return {
            "users": doc.get("users"),
            "total": _strip(doc.get("total", {})),
            "requests": {n: _strip(requests[n]) for n in sorted(busiest)},
            "names": len(requests),
            "errors": [
                {k: g.get(k) for k in ("name", "kind", "message", "count")}
                for g in doc.get("errors", [])[:MAX_ERRORS]
            ],
            "generator": doc.get("generator", {}),
            "problems": doc.get("problems", [])[:MAX_ERRORS],
            "objectives": outcomes,
            # Drawn from the running histograms (the document's are base64 for files).
            "distribution": result_curves(result),
            "timeline": doc.get("timeline", []),
            "timeline_requests": {
                n: pts for n, pts in (doc.get("timeline_requests") or {}).items() if n in busiest
            },
        }

    def _progress(self, event: Progress, stoppable: bool) -> Message:
        figures = self.figures(event.test, event.result)
        last = self._last_t.get(event.test, -math.inf)
        timeline, per_name = figures.pop("timeline"), figures.pop("timeline_requests")
        fresh = [p for p in timeline if p.get("t", 0) >= last]
        fresh_names = {n: [p for p in pts if p.get("t", 0) >= last] for n, pts in per_name.items()}
        if timeline:
            self._last_t[event.test] = max(p.get("t", 0) for p in timeline)
        workers = dict(list(event.workers.items())[:MAX_WORKERS])
        message = json_safe(
            {
                "test": event.test,
                "name": event.name,
                "elapsed": event.elapsed,
                "duration": event.duration,
                "stage": event.stage,
                "workers": workers,
                "stoppable": stoppable,
                **figures,
            }
        )
        whole = json_safe({**message, "timeline": timeline, "timeline_requests": per_name})
        self.running[event.test] = {**self.started.get(event.test, {}), **whole}
        message["timeline"] = json_safe(fresh)
        message["timeline_requests"] = json_safe(fresh_names)
        return "progress", message

    def _finished(self, event: LoadFinished) -> Message:
        self.running.pop(event.test, None)
        self.started.pop(event.test, None)
        self._last_t.pop(event.test, None)
        objectives = self._objectives.pop(event.test, None)
        doc = event.document or {}
        total = doc.get("total") or {}
        if not total and event.result is not None:
            total = _strip(result_document(event.test, event.result, None)["total"])
        shown = [
            {"objective": o.get("objective"), "met": o.get("met"),
             "measured": o.get("measured")}
            for o in doc.get("objectives", [])
        ]  # fmt: skip
        message = json_safe(
            {
                "test": event.test,
                "name": event.name,
                "outcome": event.outcome,
                "reason": event.reason,
                "total": {k: total.get(k) for k in ("count", "failures", "rps", "p50_ms",
                                                     "p95_ms", "p99_ms", "error_ratio")},
                "objectives": [_measured_text(o) for o in shown] if shown else [],
                "judged": objectives is not None,
            }
        )  # fmt: skip
        self.finished.append(message)
        self.finished_total += 1
        return "finished", message

    def snapshot(self) -> dict[str, Any]:
        """Everything a page needs to start from (it then applies the messages after it)."""
        return {
            "running": list(self.running.values()),
            "finished": list(self.finished),
            "finished_omitted": self.finished_total - len(self.finished),
            "session_finished": self.session_finished,
        }


def _measured_text(o: dict[str, Any]) -> dict[str, Any]:
    value = o.get("measured")
    text = "not measured"
    if isinstance(value, int | float):
        try:
            text = format_measured(parse_objective(str(o.get("objective"))).metric, float(value))
        except ObjectiveError:
            text = f"{value:g}"
    return {"objective": o.get("objective"), "met": o.get("met"), "measured": text}
