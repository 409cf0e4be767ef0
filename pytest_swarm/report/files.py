"""Machine-readable results: one JSON document per load test, written with ``--swarm-json``.

Each document holds everything the terminal shows and more: per request name the counts,
rates and percentiles *and* the full latency histogram in the standard compressed HDR
format (``HdrHistogram.decode`` of any HdrHistogram library reads it, at microsecond unit),
the grouped errors with their sample tracebacks, the per-second timeline on the controller's
clock, the generator health, the objectives with their measured values, and any problem.

The document travels from the worker that reports a test to the process that writes the file
as an attribute of the test report (xdist serialises report attributes), so the file is written
by the controller under xdist.

Example:
    >>> from pytest_swarm.stats.snapshot import Snapshot
    >>> from pytest_swarm.stats.result import RunResult
    >>> snap = Snapshot(); snap.entry("GET /").hist.record_values([1500, 2500])
    >>> doc = result_document("t.py::test_home", RunResult(snap, duration=1.0, users=2), None)
    >>> doc["requests"]["GET /"]["count"], doc["total"]["p50_ms"]
    (2, 1.5)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..objectives import Verdict
from ..stats.result import EntryResult, RunResult

FORMAT_VERSION = 1
PERCENTILES = (50, 75, 90, 95, 99, 99.9)


def _entry(e: EntryResult, with_histogram: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "count": e.count,
        "failures": e.failures,
        "error_ratio": e.error_ratio,
        "rps": e.rps,
        "min_ms": e.min * 1000,
        "mean_ms": e.mean * 1000,
        "max_ms": e.max * 1000,
        "overflow": e.overflow,
    }
    for q in PERCENTILES:
        doc[f"p{q:g}_ms".replace(".", "_")] = e.percentile(q) * 1000
    if with_histogram:
        doc["hdr_histogram_us"] = e.hist.encode()
    return doc


def result_document(nodeid: str, result: RunResult, verdict: Verdict | None) -> dict[str, Any]:
    """Everything about one load test's result, JSON-ready."""
    h = result.health
    return {
        "format": FORMAT_VERSION,
        "test": nodeid,
        "users": result.users,
        "workers": result.workers,
        "duration_s": result.duration,
        "total": _entry(result.total, with_histogram=True),
        "requests": {name: _entry(result[name], with_histogram=True) for name in result.names},
        "errors": [
            {
                "name": g.name,
                "kind": g.kind,
                "message": g.message,
                "count": g.count,
                "sample_traceback": g.sample,
            }
            for g in result.errors
        ],
        "setup_failures": result.snapshot.setup_failures,
        "timeline": [
            {
                "t": p.t,
                "users": p.users,
                "requests": p.requests,
                "failures": p.failures,
                "p50_ms": p.p50 * 1000,
                "p95_ms": p.p95 * 1000,
            }
            for p in result.timeline
        ],
        "generator": {
            "cpu_max_percent": h.cpu_max,
            "lag_max_ms": h.lag_max * 1000,
            "saturated": h.saturated,
        },
        "objectives": [
            {
                "objective": str(o.objective),
                "measured": o.measured,
                "met": o.met,
                "implicit": o.objective.implicit,
                "detail": o.detail,
            }
            for o in (verdict.outcomes if verdict is not None else ())
        ],
        "problems": list(result.problems),
    }


def write_json(path: str | Path, documents: list[dict[str, Any]]) -> Path:
    """Write all load tests of the run to ``path`` (one object: {"load_tests": [...]})."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(target.suffix + ".tmp")
    tmp.write_text(json.dumps({"format": FORMAT_VERSION, "load_tests": documents}, indent=1))
    tmp.replace(target)
    return target
