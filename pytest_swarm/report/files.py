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

import contextlib
import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from ..objectives import Verdict
from ..stats.result import EntryResult, RunResult, TimelinePoint
from ..stats.timeline import LEVELS

FORMAT_VERSION = 2  # 2: outcome, context, Locust's percentiles, per-name timeline, iterations
PERCENTILES = (50, 66, 75, 80, 90, 95, 98, 99, 99.9, 99.99, 100)  # Locust's CSV columns too


def ms(seconds: float) -> float:
    """Seconds as milliseconds rounded to the microsecond (the histograms' unit).

    >>> ms(0.0123456789)
    12.346
    """
    return round(seconds * 1000, 3)


def rate(value: float) -> float:
    """A rate or ratio rounded to 6 decimals: more digits would be noise, not precision."""
    return round(value, 6)


def percentile_key(q: float) -> str:
    """The document's key of a percentile: ``p99_9_ms`` for 99.9.

    >>> percentile_key(50), percentile_key(99.99)
    ('p50_ms', 'p99_99_ms')
    """
    return f"p{q:g}_ms".replace(".", "_")


def _entry(e: EntryResult, with_histogram: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "count": e.count,
        "failures": e.failures,
        "error_ratio": rate(e.error_ratio),
        "rps": rate(e.rps),
        "fps": rate(e.failures / e.duration if e.duration > 0 else 0.0),
        "min_ms": ms(e.min),
        "mean_ms": ms(e.mean),
        "max_ms": ms(e.max),
        "overflow": e.overflow,
        "size_bytes": e.size,
        "avg_size_bytes": rate(e.avg_size),
    }
    values = e.hist.percentiles(PERCENTILES) if e.count else dict.fromkeys(PERCENTILES, 0)
    for q in PERCENTILES:
        doc[percentile_key(q)] = ms(min(values[q] / 1e6, e.max))
    if with_histogram:
        doc["hdr_histogram_us"] = e.hist.encode()
    return doc


def _point(p: TimelinePoint) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "t": p.t,
        "span_s": p.span,
        "users": p.users,
        "requests": p.requests,
        "failures": p.failures,
        "rps": rate(p.rps),
        "fps": rate(p.fps),
        "size_bytes": p.size,
        "p50_ms": ms(p.p50),
        "p95_ms": ms(p.p95),
        "p99_ms": ms(p.p99),
    }
    if p.percentiles:
        doc["percentiles_ms"] = {
            f"{q:g}": ms(v) for q, v in zip(LEVELS, p.percentiles, strict=True)
        }
    c = p.cumulative
    if c is not None:
        doc["cumulative"] = {
            "requests": c.requests,
            "failures": c.failures,
            "median_ms": ms(c.median),
            "mean_ms": ms(c.mean),
            "min_ms": ms(c.min),
            "max_ms": ms(c.max),
            "avg_size_bytes": rate(c.avg_size),
        }
    return doc


def result_document(nodeid: str, result: RunResult, verdict: Verdict | None) -> dict[str, Any]:
    """Everything about one load test's result, JSON-ready. Times in milliseconds rounded to
    the microsecond; ``outcome`` and ``context`` are added by the plugin where it knows them
    (see :mod:`pytest_swarm.report.logged`)."""
    h = result.health
    its = result.iterations
    return {
        "format": FORMAT_VERSION,
        "test": nodeid,
        "users": result.users,
        "workers": result.workers,
        "duration_s": round(result.duration, 6),
        "total": _entry(result.total, with_histogram=True),
        "requests": {name: _entry(result[name], with_histogram=True) for name in result.names},
        "iterations": _entry(its, with_histogram=True),
        "dropped": result.dropped,
        "late": result.late,
        "errors": [
            {
                "name": g.name,
                "kind": g.kind,
                "message": g.message,
                "count": g.count,
                "sample_traceback": g.sample,
                # Wall clock, Unix seconds (None: unknown); see stats/recorder.py.
                "first_seen_unix": round(g.first, 3) if g.first else None,
                "last_seen_unix": round(g.last, 3) if g.last else None,
                "nodes": g.node_list,  # xdist worker ids, "main" in one process
                "nodes_more": g.nodes_hidden,
            }
            for g in result.errors
        ],
        # What defined the load (report/compare.py's load_settings), {} when not known.
        "load_settings": dict(result.load),
        "setup_failures": result.snapshot.setup_failures,
        "timeline": [_point(p) for p in result.timeline],
        "timeline_requests": {
            name: [_point(p) for p in points] for name, points in result.timeline_requests.items()
        },
        "generator": {
            "cpu_max_percent": round(h.cpu_max, 3),
            "lag_max_ms": ms(h.lag_max),
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


class ReportFileError(Exception):
    """A report file could not be written; the message names the file and the cause."""


def write_json(path: str | Path, documents: list[dict[str, Any]]) -> Path:
    """Write all load tests of the run to ``path`` (one object: {"load_tests": [...]}),
    atomically (see :func:`write_report_file`)."""
    text = json.dumps({"format": FORMAT_VERSION, "load_tests": documents}, indent=1)
    return write_report_file(path, text, what="--swarm-json")


def write_report_file(path: str | Path, text: str, *, what: str = "report") -> Path:
    """Write ``text`` to ``path`` so that a reader sees the earlier file or the new one, whole,
    never a part: a temporary file in the same directory (a rename is atomic only within one
    file system), written, flushed to disk, then renamed over ``path``. On any error (disk
    full, no permission, a path through a file) the temporary file is removed, the earlier
    file is left as it was, and :class:`ReportFileError` says what happened, in one line.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> write_report_file(d / "out.json", "{}").read_text(), sorted(p.name for p in d.iterdir())
        ('{}', ['out.json'])
    """
    target = Path(path)
    data = text.encode("utf-8")
    tmp: str | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            _write_fd(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
        tmp = None
        _sync_directory(target.parent)
    except OSError as exc:
        raise ReportFileError(_describe(what, target, exc)) from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return target


def _write_fd(fd: int, data: bytes) -> None:
    """All of ``data`` to ``fd`` (``os.write`` may write less than asked)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _sync_directory(directory: Path) -> None:
    """Make the rename itself durable (best effort: not every file system can sync one)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _describe(what: str, target: Path, exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    if exc.errno == errno.ENOSPC:
        reason = "no space left on the device"
    elif exc.errno == errno.EDQUOT:
        reason = "disk quota exceeded"
    named = str(exc.filename or "")
    # The temporary file's name means nothing to the user; another path (a parent that is a
    # file, say) does.
    where = f" ({named})" if named and named != str(target) and not named.endswith(".tmp") else ""
    earlier = " (the earlier file is unchanged)" if target.exists() else ""
    return f"{what}: could not write {target}: {reason}{where}{earlier}"
