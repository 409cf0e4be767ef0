"""The merged timeline on its way from the controller to the reporting worker.

Under xdist the reports are built on the worker that reports the test, from the result the
controller sends it, so the timeline must travel whole: the total's points and each request
name's (``RunResult.timeline_requests``), with p99, Locust's percentile levels and the running
totals that ``stats_history.csv`` shows, not only p50 and p95.

A point is 28 little-endian float64s (one blob per series rather than thousands of msgpack
arrays: see ``limits.MAX_ELEMENTS``). A very long run has more points than a frame holds, so
:func:`fit` merges adjacent points pairwise until every series is within its budget: counts,
spans and sizes add up exactly, users and latencies keep the larger of the two (an upper bound:
a merged point never hides a slow second), the running totals are the later point's.

Example:
    >>> from pytest_swarm.stats.result import TimelinePoint
    >>> points = [TimelinePoint(float(t), 5, 10, 1, 0.01, 0.02, 0.03) for t in range(4)]
    >>> unpack(pack(points)) == points
    True
    >>> [(p.t, p.requests, p.span) for p in fit(points, 2)]
    [(0.0, 20, 2.0), (2.0, 20, 2.0)]
"""

from __future__ import annotations

import math
import sys
from array import array
from collections.abc import Iterable, Sequence

from ..stats.result import Cumulative, TimelinePoint
from ..stats.timeline import LEVELS
from .wire import WireError

__all__ = ["FIELDS", "NAMES_BUDGET", "TOTAL_BUDGET", "fit", "pack", "unpack"]

_HEAD = 9  # t, users, requests, failures, p50, p95, p99, span, size
_CUMULATIVE = 8  # present flag, requests, failures, median, mean, min, max, avg_size
FIELDS = _HEAD + len(LEVELS) + _CUMULATIVE
# Points per message: 224 bytes each, so both budgets together take ~5.4 MiB of a frame at
# most, leaving the rest for the snapshot. A result that still does not fit is sent again
# with halved budgets (controller_state) before it becomes an error result.
TOTAL_BUDGET = 12_000
NAMES_BUDGET = 12_000  # shared by every request name's series


def _floats(p: TimelinePoint) -> list[float]:
    levels = list(p.percentiles[: len(LEVELS)])
    levels += [0.0] * (len(LEVELS) - len(levels))
    c = p.cumulative
    tail = (
        [1.0, c.requests, c.failures, c.median, c.mean, c.min, c.max, c.avg_size]
        if c is not None
        else [0.0] * _CUMULATIVE
    )
    head = [p.t, p.users, p.requests, p.failures, p.p50, p.p95, p.p99, p.span, p.size]
    return [float(v) for v in (*head, *levels, *tail)]


def pack(points: Iterable[TimelinePoint]) -> bytes:
    values = array("d")
    for point in points:
        values.extend(_floats(point))
    if sys.byteorder != "little":
        values.byteswap()
    return values.tobytes()


def unpack(blob: bytes) -> list[TimelinePoint]:
    """Inverse of :func:`pack`; raises :class:`WireError` on a malformed blob."""
    if not isinstance(blob, bytes) or len(blob) % (8 * FIELDS):
        raise WireError("result: timeline blob is not whole points")
    values = array("d")
    values.frombytes(blob)
    if sys.byteorder != "little":
        values.byteswap()
    floats = values.tolist()
    if not all(map(math.isfinite, floats)) or min(floats, default=0.0) < 0:
        raise WireError("result: timeline values must be finite and non-negative")
    points = []
    n = len(LEVELS)
    for i in range(0, len(floats), FIELDS):
        f = floats[i : i + FIELDS]
        t, users, requests, failures, p50, p95, p99, span, size = f[:_HEAD]
        c = f[_HEAD + n :]
        cumulative = (
            Cumulative(int(c[1]), int(c[2]), c[3], c[4], c[5], c[6], c[7]) if c[0] else None
        )
        points.append(
            TimelinePoint(
                t,
                int(users),
                int(requests),
                int(failures),
                p50,
                p95,
                p99,
                span,
                int(size),
                tuple(f[_HEAD : _HEAD + n]) if any(f[_HEAD : _HEAD + n]) else (),
                cumulative,
            )
        )
    return points


def _merge(a: TimelinePoint, b: TimelinePoint) -> TimelinePoint:
    levels = tuple(map(max, a.percentiles, b.percentiles)) or b.percentiles or a.percentiles
    return TimelinePoint(
        a.t,
        max(a.users, b.users),
        a.requests + b.requests,
        a.failures + b.failures,
        max(a.p50, b.p50),
        max(a.p95, b.p95),
        max(a.p99, b.p99),
        a.span + b.span,
        a.size + b.size,
        levels,
        b.cumulative if b.cumulative is not None else a.cumulative,
    )


def fit(points: Sequence[TimelinePoint], budget: int) -> list[TimelinePoint]:
    """``points`` merged pairwise (oldest first) until at most ``budget`` remain."""
    out = list(points)
    budget = max(budget, 1)
    while len(out) > budget:
        merged = [_merge(out[i], out[i + 1]) for i in range(0, len(out) - 1, 2)]
        if len(out) % 2:
            merged.append(out[-1])
        out = merged
    return out
