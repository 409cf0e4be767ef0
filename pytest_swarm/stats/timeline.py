"""The run's timeline: one point per second for the total, and per request name, in bounded memory.

A :class:`Series` is one line of the timeline (the total, or one request name). Deltas are filed
into *open* buckets (a coarse histogram, counts, sizes and users per second); a bucket some
seconds older than the newest delta can receive nothing more and is *frozen* into a
:class:`~pytest_swarm.stats.result.TimelinePoint`: its own percentiles at Locust's levels, and
the series' cumulative figures up to that point (what Locust's ``stats_history.csv`` calls
"Total ..."). Only the open window keeps histograms.

Memory stays bounded on long runs: when a series reaches ``budget`` frozen points, adjacent
pairs are merged (counts and sizes add up exactly; a merged percentile is the higher of the
two, an upper bound that never reads low) and its buckets widen to twice as many seconds. A
point says how many seconds it covers (``span``).

Example:
    >>> from pytest_swarm.stats.histogram import Histogram
    >>> s = Series(budget=4)
    >>> for sec in range(10):
    ...     h = Histogram(); h.record_values([1000 * (sec + 1)])
    ...     s.add(sec, h, requests=1, failures=0, size=10, users=2)
    ...     s.freeze_before(sec - 1)  # as a run does: a few seconds behind the newest
    >>> [(p.t, p.span, p.requests) for p in s.points()]  # the last two still open
    [(0.0, 4.0, 4), (4.0, 2.0, 2), (6.0, 2.0, 2), (8.0, 2.0, 2)]
    >>> s.points()[-1].cumulative.requests, s.points()[-1].p99
    (10, 0.01)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .histogram import CheckedWire, Histogram
from .result import US, Cumulative, TimelinePoint

LEVELS = (50.0, 66.0, 75.0, 80.0, 90.0, 95.0, 98.0, 99.0, 99.9, 99.99, 100.0)  # Locust's columns
_WANTED = tuple(sorted(set(LEVELS)))


@dataclass
class _Bucket:
    hist: Histogram = field(default_factory=Histogram)
    requests: int = 0
    failures: int = 0
    size: int = 0
    users: int = 0
    width: int = 1  # seconds this bucket covers (the series' step when it opened)


class Series:
    """One line of the timeline; see the module docstring."""

    __slots__ = ("_cum", "_open", "_points", "_totals", "budget", "frozen_until", "newest", "step")

    def __init__(self, budget: int = 100_000) -> None:
        self.budget = max(budget, 2)
        self.step = 1  # seconds per bucket; doubles each time the points are thinned
        self.frozen_until = 0  # every second before this one is frozen
        self.newest = -1  # the latest second filed
        self._open: dict[int, _Bucket] = {}
        self._points: list[TimelinePoint] = []
        self._cum = Histogram()  # coarse, like the buckets
        self._totals = (0, 0, 0)  # cumulative requests, failures, content bytes of the frozen

    def add(
        self,
        sec: int,
        hist: Histogram | None,
        requests: int,
        failures: int,
        size: int,
        users: int,
        pooled: CheckedWire | None = None,
    ) -> None:
        """File one delta's part for second ``sec``. A second already frozen (a delta later
        than the freezing lag allows) goes to the earliest open bucket: counts stay exact.
        ``pooled`` is a validated wire histogram merged in its coarse form (what the
        controller has, without building a Histogram for it: see Histogram.merge_pooled)."""
        bucket = self.take(sec, requests, failures, size, users)
        if hist is not None:
            bucket.merge(hist)
        if pooled is not None:
            bucket.merge_pooled(pooled)

    def take(self, sec: int, requests: int, failures: int, size: int, users: int) -> Histogram:
        """File one delta's counts as :meth:`add` does, and return the (coarse) histogram of
        the bucket they went to, for the caller to merge the delta's latencies into (the
        controller does it in the same pass as its totals: see Accumulator.merge)."""
        if sec < self.frozen_until:
            sec = self.frozen_until
        if sec > self.newest:
            self.newest = sec
        bucket = self._open.get(sec)
        if bucket is None:
            bucket = self.bucket_of(sec)
        if bucket is None:
            # A new bucket starts at its first second and never overlaps the next open one
            # (buckets opened before the step doubled keep their width).
            above = [k for k in self._open if k > sec]
            width = min(self.step, min(above) - sec) if above else self.step
            bucket = self._open[sec] = _Bucket(width=width)
        bucket.requests += requests
        bucket.failures += failures
        bucket.size += size
        if users > bucket.users:
            bucket.users = users
        return bucket.hist

    def bucket_of(self, sec: int) -> _Bucket | None:
        """The open bucket holding second ``sec``, if any (few are open: the freezing lag)."""
        bucket = self._open.get(sec)
        if bucket is None and self.step > 1:
            for key, b in self._open.items():
                if key <= sec < key + b.width:
                    return b
        return bucket

    def freeze_before(self, sec: int) -> None:
        """Freeze every open bucket that ends at or before second ``sec``, in time order."""
        # Called after every delta: almost always nothing to freeze (a bucket is at least a
        # second wide, so none ends by ``sec`` when none starts before it).
        if not self._open or min(self._open) >= sec:
            return
        for key in sorted(k for k, b in self._open.items() if k + b.width <= sec):
            bucket = self._open.pop(key)
            point, self._totals = self._freeze(key, bucket, self._cum, self._totals)
            self._points.append(point)
            self.frozen_until = max(self.frozen_until, key + bucket.width)
            if len(self._points) >= self.budget:
                self._thin()

    def _freeze(
        self,
        key: int,
        b: _Bucket,
        cum: Histogram,
        totals: tuple[int, int, int],
        span: int | None = None,
    ) -> tuple[TimelinePoint, tuple[int, int, int]]:
        """The bucket's point, with ``cum`` (merged into) and ``totals`` (requests, failures,
        bytes) the series' cumulative figures before it; returns the totals after it."""
        p = b.hist.percentiles(_WANTED)
        cum.merge(b.hist)
        requests, failures, size = (
            totals[0] + b.requests,
            totals[1] + b.failures,
            totals[2] + b.size,
        )
        point = TimelinePoint(
            t=float(key),
            users=b.users,
            requests=b.requests,
            failures=b.failures,
            p50=p[50.0] / US,
            p95=p[95.0] / US,
            p99=p[99.0] / US,
            span=float(b.width if span is None else span),
            size=b.size,
            percentiles=tuple(p[q] / US for q in LEVELS),
            cumulative=Cumulative(
                requests=requests,
                failures=failures,
                median=cum.percentile(50) / US,
                mean=cum.mean_us / US,
                min=cum.min_us / US,
                max=cum.max_us / US,
                avg_size=size / requests if requests else 0.0,
            ),
        )
        return point, (requests, failures, size)

    def _thin(self) -> None:
        """Merge adjacent pairs of points and double the bucket width (see the module doc)."""
        pts, merged = self._points, []
        for i in range(0, len(pts) - 1, 2):
            merged.append(_merge(pts[i], pts[i + 1]))
        if len(pts) % 2:
            merged.append(pts[-1])
        self._points = merged
        self.step *= 2

    def points(self) -> list[TimelinePoint]:
        """The frozen points, then the open buckets' (computed, not frozen: the run goes on)."""
        out = list(self._points)
        if self._open:
            cum, totals = self._cum.copy(), self._totals
            for key in sorted(self._open):
                # An open bucket covers the seconds seen so far, not its whole width yet.
                b = self._open[key]
                span = max(min(b.width, self.newest + 1 - key), 1)
                point, totals = self._freeze(key, b, cum, totals, span)
                out.append(point)
        return out


def _merge(a: TimelinePoint, b: TimelinePoint) -> TimelinePoint:
    return replace(
        b,
        t=a.t,
        span=a.span + b.span,
        users=max(a.users, b.users),
        requests=a.requests + b.requests,
        failures=a.failures + b.failures,
        size=a.size + b.size,
        p50=max(a.p50, b.p50),
        p95=max(a.p95, b.p95),
        p99=max(a.p99, b.p99),
        percentiles=tuple(map(max, a.percentiles, b.percentiles)),
    )
