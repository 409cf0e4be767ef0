"""Merging the delta snapshots of every worker into one run.

The aggregator is pure bookkeeping (no sockets, no clocks of its own: the caller passes the
controller's monotonic time), so the one-process mode and the distributed controller use the
same object. Each source (worker) numbers its deltas 0, 1, 2, …; a duplicate is merged once, a
gap is remembered and turns the result into an error, and the result is only complete once
every source has delivered its final delta.

Example:
    >>> from pytest_swarm.stats.snapshot import Snapshot
    >>> agg = Aggregator(start=0.0)
    >>> d = Snapshot(); d.entry("GET /").hist.record_values([1000]); d.users = 3
    >>> agg.add("gw0", 0, d, now=0.5, final=True)
    True
    >>> agg.add("gw0", 0, d, now=0.6)   # a duplicate: ignored
    False
    >>> agg.result(duration=1.0).total.count, agg.complete(["gw0"])
    (1, True)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from .histogram import Accumulator, CheckedWire, Histogram
from .result import Health, RunResult, TimelinePoint
from .snapshot import Entry, Snapshot, WireDelta
from .timeline import Series

# The timeline's memory bound (see stats/timeline.py; a point takes about 0.5 KB): per-second
# points for the total (14 hours of them before they widen to 2 s, 4 s, ...), and for the first
# MAX_TIMELINE_NAMES request names an hour of per-second points each before theirs widen. Later
# names count in the total only. At most about 60 MB whatever the run's length.
TOTAL_POINTS = 50_000
MAX_TIMELINE_NAMES = 20
NAME_POINTS = 3_600


@dataclass
class SourceState:
    """What the aggregator knows about one worker."""

    next_seq: int = 0
    seen: set[int] = field(default_factory=set)
    last_arrival: float | None = None  # when its previous delta arrived (the aggregator's clock)
    users: int = 0
    final_seq: int | None = None
    cpu: float = 0.0
    lag: float = 0.0
    samples: int = 0
    hot: int = 0  # intervals over the CPU or lag limit

    @property
    def finished(self) -> bool:
        """The final delta and everything before it arrived."""
        return self.final_seq is not None and all(s in self.seen for s in range(self.final_seq + 1))

    def missing(self) -> list[int]:
        top = self.final_seq if self.final_seq is not None else max(self.seen, default=-1)
        return [s for s in range(top + 1) if s not in self.seen]


class Aggregator:
    """Merges deltas from named sources; keeps totals and a per-second timeline."""

    def __init__(self, start: float, interval: float = 1.0) -> None:
        self.start = start
        self.interval = interval
        # A delta arrives at the end of the interval it covers: file it half an interval back,
        # so the timeline's second k holds what happened during second k. An interval longer
        # than a second is spread over the seconds it covers (see _seconds_of).
        self.shift = interval / 2 if interval <= 1 else 0.5
        self._last_second = -1
        # The run's totals per request name: accumulators (dense once large), turned into a
        # Snapshot only when asked (see totals). Errors, iterations and setup failures in _rest.
        self._hists: dict[str, Accumulator] = {}
        self._failures: dict[str, int] = {}
        self._sizes: dict[str, int] = {}
        self._iteration = Accumulator()
        self._rest = Snapshot()
        self.sources: dict[str, SourceState] = {}
        self._total = Series(TOTAL_POINTS)
        self._series: dict[str, Series] = {}
        # A second can still receive deltas until every source's next one has arrived: at
        # most one interval (and a little lateness) after it ended.
        self._lag = math.ceil(max(interval, 1.0)) + 3
        self.problems: list[str] = []
        self.duplicates = 0
        self._users = 0
        # Running totals for the live line: merging every name's histogram to count would cost
        # milliseconds per line with hundreds of workers.
        self.requests = 0
        self.failures = 0

    def source(self, name: str) -> SourceState:
        state = self.sources.get(name)
        if state is None:
            state = self.sources[name] = SourceState()
        return state

    def add(
        self,
        source: str,
        seq: int,
        delta: Snapshot | WireDelta,
        now: float,
        final: bool = False,
    ) -> bool:
        """Merge one delta (a Snapshot, or a validated wire delta straight off the socket);
        returns False for a duplicate (already merged)."""
        state = self.source(source)
        if seq in state.seen:
            self.duplicates += 1
            return False
        state.seen.add(seq)
        before = self._users
        if seq >= state.next_seq:
            state.next_seq = seq + 1
            self._users += delta.users - state.users  # a running sum: 500 workers, 1 Hz
            state.users = delta.users
        # The seconds this delta covers ran with the users before it and after it (a final
        # delta says 0 users, but its requests ran with the users it stopped).
        users = max(before, self._users)
        if final:
            state.final_seq = seq
        keys = self._seconds_of(state, now)
        self._last_second = max(self._last_second, keys[-1])
        hists, fails, sizes, rest = self._hists, self._failures, self._sizes, self._rest
        # (name, coarse histogram, requests, failures, bytes) for the timeline
        parts: list[tuple[str, Histogram, int, int, int]] = []
        lag = self._lag
        total: Histogram | None
        if isinstance(delta, WireDelta):
            # The controller's hot path (every request name of every worker's delta): each
            # name's histogram is merged twice, exactly into the run's totals and pooled into
            # its timeline second (Histogram.merge_pooled), with no Histogram built for it.
            series_of = self._series
            key = keys[0] if len(keys) == 1 else None
            for (name, checked, failed), size in zip(delta.entries, delta.sizes, strict=True):
                acc = hists.get(name)
                if acc is None:
                    acc = hists[name] = Accumulator()
                    fails[name] = sizes[name] = 0
                fails[name] += failed
                sizes[name] += size
                series = series_of.get(name)
                if series is None and checked[2] and self._tracked(name):
                    series = series_of[name]
                if series is None or not checked[2]:
                    acc.merge(checked)
                elif key is not None:  # one pass over the buckets for both (the usual case)
                    acc.merge(checked, series.take(key, checked[2], failed, size, 0))
                else:
                    acc.merge(checked)
                    _spread(series, keys, None, checked[2], failed, size, 0, lag, checked)
            self._iteration.merge(delta.iteration)
            total = None  # delta.total, coarse already (the sender's), is filed pooled below
            failures = delta.failures
            requests = delta.total[2]
            size_sum = sum(delta.sizes)
        else:
            total = Histogram()
            requests = failures = size_sum = 0
            for name, entry in delta.entries.items():
                acc = hists.get(name)
                if acc is None:
                    acc = hists[name] = Accumulator()
                    fails[name] = sizes[name] = 0
                acc.merge_histogram(entry.hist)
                fails[name] += entry.failures
                sizes[name] += entry.size
                # The same coarse form as the wire's, so one process and xdist draw the same
                # timeline.
                coarse = entry.hist.coarse()
                total.merge(coarse)
                if entry.hist.total and self._tracked(name):
                    parts.append((name, coarse, entry.hist.total, entry.failures, entry.size))
                requests += entry.hist.total
                failures += entry.failures
                size_sum += entry.size
            self._iteration.merge_histogram(delta.iteration)
        # Error groups are attributed to the source that delivered them (the node).
        rest.merge_errors(delta, node=source)
        self.requests += requests
        self.failures += failures
        pooled = delta.total if isinstance(delta, WireDelta) else None
        _spread(self._total, keys, total, requests, failures, size_sum, users, lag, pooled)
        for name, hist, n, failed, size in parts:
            _spread(self._series[name], keys, hist, n, failed, size, 0, lag)
        horizon = self._last_second - self._lag
        self._total.freeze_before(horizon)
        for series in self._series.values():
            series.freeze_before(horizon)
        rest.iterations += delta.iterations
        rest.setup_failures += delta.setup_failures
        rest.dropped += delta.dropped
        rest.late += delta.late
        rest.fold_errors()  # each delta is bounded, their sum over a long run is not
        return True

    def _tracked(self, name: str) -> bool:
        """Whether ``name`` has a timeline series of its own (the first MAX_TIMELINE_NAMES)."""
        if name in self._series:
            return True
        if len(self._series) >= MAX_TIMELINE_NAMES:
            return False
        self._series[name] = Series(NAME_POINTS)
        return True

    def _seconds_of(self, state: SourceState, now: float) -> list[int]:
        """The timeline seconds a delta arriving at ``now`` covers. With intervals of up to a
        second, one: ``int(arrival - start - interval / 2)``. With longer intervals, every
        second from the source's previous arrival (or the start) to this one, so a point
        stays one second of the run (a 5 s interval gives five points of a fifth each)."""
        previous, state.last_arrival = state.last_arrival, now
        last = max(int(now - self.start - self.shift), 0)
        if self.interval <= 1:
            return [last]
        begin = self.start if previous is None else previous
        first = min(max(int(begin - self.start + 0.5), 0), last)
        return list(range(first, last + 1))

    CPU_LIMIT = 90.0  # percent of one core
    LAG_LIMIT = 0.050  # seconds

    def set_health(self, source: str, cpu: float, lag: float) -> None:
        state = self.source(source)
        state.cpu = max(state.cpu, cpu)
        state.lag = max(state.lag, lag)
        state.samples += 1
        if cpu > self.CPU_LIMIT or lag > self.LAG_LIMIT:
            state.hot += 1

    @property
    def totals(self) -> Snapshot:
        """Everything merged so far, as a new Snapshot."""
        snap = Snapshot(
            entries={
                n: Entry(a.histogram(), self._failures[n], self._sizes[n])
                for n, a in self._hists.items()
            },
            iterations=self._rest.iterations,
            users=self.users,
            setup_failures=self._rest.setup_failures,
            dropped=self._rest.dropped,
            late=self._rest.late,
            iteration=self._iteration.histogram(),
        )
        snap.merge_errors(self._rest)
        return snap

    @property
    def users(self) -> int:
        """Users running now: the latest level reported by each source, summed."""
        return self._users

    def complete(self, expected: Iterable[str]) -> bool:
        return all(name in self.sources and self.sources[name].finished for name in expected)

    def gaps(self) -> dict[str, list[int]]:
        """Sequence numbers that never arrived, per source."""
        return {n: m for n, s in self.sources.items() if (m := s.missing())}

    def recent(self, now: float, window: int = 3) -> tuple[float, int, int, float, float]:
        """(requests/s, requests, failures, p50 s, p95 s) over the last ``window`` seconds:
        the live line."""
        current = int(now - self.start - self.shift)
        if self.interval > 1:
            # A long interval fills its seconds at once, up to the one just ended.
            current = self._last_second + 1
        hist, requests, failures = Histogram(), 0, 0
        span = 0
        seen: set[int] = set()  # buckets wider than a second on long runs: count each once

        def take(sec: int) -> None:
            nonlocal requests, failures
            bucket = self._total.bucket_of(sec)
            if bucket is not None and id(bucket) not in seen:
                seen.add(id(bucket))
                hist.merge(bucket.hist)
                requests += bucket.requests
                failures += bucket.failures

        for sec in range(current - window, current):
            if sec >= 0:
                span += 1
                take(sec)
        if span == 0:  # the first second: show what there is
            take(current)
            span = 1
        p = hist.percentiles((50, 95))
        return requests / span, requests, failures, p[50] / 1e6, p[95] / 1e6

    def timeline(self) -> list[TimelinePoint]:
        """The total's points so far (frozen ones, then the open window's)."""
        return self._total.points()

    def timeline_requests(self) -> dict[str, list[TimelinePoint]]:
        """Per request name (the first MAX_TIMELINE_NAMES names), points as :meth:`timeline`."""
        return {name: series.points() for name, series in sorted(self._series.items())}

    def health(self) -> Health:
        """Worst CPU and lag of any worker. *Saturated* when a worker spent at least two
        intervals, and at least 10 % of them, over a limit: a single hiccup (start-up
        imports, a GC pause) does not condemn a run, a sustained overload does."""
        cpu = max((s.cpu for s in self.sources.values()), default=0.0)
        lag = max((s.lag for s in self.sources.values()), default=0.0)
        saturated = any(s.hot >= 2 and s.hot >= 0.1 * s.samples for s in self.sources.values())
        return Health(cpu, lag, saturated)

    def result(self, duration: float, users: int = 0) -> RunResult:
        problems = list(self.problems)
        for name, missing in self.gaps().items():
            shown = ", ".join(map(str, missing[:10])) + (" …" if len(missing) > 10 else "")
            problems.append(f"worker {name}: statistics lost (missing deltas {shown})")
        return RunResult(
            snapshot=self.totals,
            duration=duration,
            users=users,
            timeline=self.timeline(),
            timeline_requests=self.timeline_requests(),
            problems=problems,
            health=self.health(),
            workers=len(self.sources),
        )


def _spread(
    series: Series,
    keys: list[int],
    hist: Histogram | None,
    requests: int,
    failures: int,
    size: int,
    users: int,
    lag: int,
    pooled: CheckedWire | None = None,
) -> None:
    """File a delta over the seconds it covers: the histogram into each (for the seconds'
    percentiles), counts split exactly (the remainder to the earliest), so the timeline's
    counts add up to the totals whatever the report interval. A delta covering many seconds
    (a worker silent for long) freezes as it goes, so few buckets are ever open."""
    n = len(keys)
    for i, key in enumerate(keys):
        if n > lag:
            series.freeze_before(key - lag)
        series.add(
            key,
            hist,
            requests // n + (1 if i < requests % n else 0),
            failures // n + (1 if i < failures % n else 0),
            size // n + (1 if i < size % n else 0),
            users,
            pooled,
        )
