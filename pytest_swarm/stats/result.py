"""The aggregated result of one load test, as users and objectives read it.

Times are in seconds (floats); percentiles are HDR bucket upper bounds (see
``docs/numbers.md``), capped at the exact maximum.

Example:
    >>> from pytest_swarm.stats.snapshot import Snapshot
    >>> snap = Snapshot(); snap.entry("items").hist.record_values([200_000, 250_000])
    >>> result = RunResult(snap, duration=2.0)
    >>> result["items"].count, result["items"].rps, result["items"].max
    (2, 1.0, 0.25)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .histogram import Histogram
from .snapshot import Entry, ErrorGroup, Snapshot

US = 1_000_000


class EntryResult:
    """Figures of one request name (or of the total). Times in seconds.

    Example:
        >>> e = EntryResult(Entry(), duration=1.0)
        >>> e.count, e.error_ratio, e.p95
        (0, 0.0, 0.0)
    """

    __slots__ = ("_entry", "duration", "name")

    def __init__(self, entry: Entry, duration: float, name: str = "Total") -> None:
        self._entry = entry
        self.duration = duration
        self.name = name

    @property
    def hist(self) -> Histogram:
        return self._entry.hist

    @property
    def count(self) -> int:
        """Requests (or iterations) recorded, failed ones included."""
        return self._entry.hist.total

    @property
    def failures(self) -> int:
        return self._entry.failures

    @property
    def size(self) -> int:
        """Bytes of content received in all (0 when the client did not say)."""
        return self._entry.size

    @property
    def avg_size(self) -> float:
        """Mean content bytes per request (Locust's "Average Content Size")."""
        return self._entry.size / self.count if self.count else 0.0

    @property
    def error_ratio(self) -> float:
        """failures / count (0.0 when nothing was recorded)."""
        return self.failures / self.count if self.count else 0.0

    @property
    def rps(self) -> float:
        """count / load duration."""
        return self.count / self.duration if self.duration > 0 else 0.0

    @property
    def overflow(self) -> int:
        """Samples above the histogram's range (1 h): counted, reported, never dropped."""
        return self._entry.hist.overflow

    @property
    def min(self) -> float:
        return self._entry.hist.min_us / US

    @property
    def max(self) -> float:
        return self._entry.hist.max_us / US

    @property
    def mean(self) -> float:
        return self._entry.hist.mean_us / US

    def percentile(self, q: float) -> float:
        """Latency at percentile ``q`` (0 < q <= 100) in seconds."""
        if not 0 < q <= 100:
            raise ValueError(f"percentile must be in (0, 100], got {q!r}")
        return self._entry.hist.percentile(q) / US

    @property
    def median(self) -> float:
        return self.percentile(50)

    @property
    def p50(self) -> float:
        return self.percentile(50)

    @property
    def p90(self) -> float:
        return self.percentile(90)

    @property
    def p95(self) -> float:
        return self.percentile(95)

    @property
    def p99(self) -> float:
        return self.percentile(99)

    def __repr__(self) -> str:
        return (
            f"<{self.name}: {self.count} requests, {self.failures} failed, "
            f"p50={self.p50 * 1000:.1f}ms p95={self.p95 * 1000:.1f}ms>"
        )


@dataclass(frozen=True, slots=True)
class Cumulative:
    """A series' figures from the start of the run up to the end of a timeline point (Locust's
    "Total ..." columns of ``stats_history.csv``). Times in seconds, from coarse histograms."""

    requests: int = 0
    failures: int = 0
    median: float = 0.0
    mean: float = 0.0
    min: float = 0.0
    max: float = 0.0
    avg_size: float = 0.0


@dataclass(frozen=True, slots=True)
class TimelinePoint:
    """One second of the run (``span`` seconds on long runs, see ``stats/timeline.py``) on
    the controller's clock. Latencies in seconds, from coarse histograms (1.6-3.1 %).

    Example:
        >>> p = TimelinePoint(t=3.0, users=10, requests=50, failures=1, p50=0.01, p95=0.02)
        >>> p.rps, p.p99, p.span
        (50.0, 0.0, 1.0)
    """

    t: float  # seconds since the start barrier
    users: int  # the most users running during the point (a request name's points: 0)
    requests: int
    failures: int
    p50: float
    p95: float
    p99: float = 0.0
    span: float = 1.0  # seconds the point covers
    size: int = 0  # content bytes
    percentiles: tuple[float, ...] = ()  # at stats.timeline.LEVELS (Locust's columns)
    cumulative: Cumulative | None = None

    @property
    def rps(self) -> float:
        return self.requests / self.span if self.span > 0 else 0.0

    @property
    def fps(self) -> float:
        """Failures per second."""
        return self.failures / self.span if self.span > 0 else 0.0


@dataclass(frozen=True)
class Health:
    """How loaded the generator itself was: saturated generators inflate latencies."""

    cpu_max: float = 0.0  # percent of one core, highest sample of any worker
    lag_max: float = 0.0  # seconds, worst event-loop lag seen
    saturated: bool = False


@dataclass
class RunResult:
    """What ``swarm.run`` returns and objectives are evaluated on.

    Example:
        >>> r = RunResult(Snapshot(), duration=1.0)
        >>> r.total.count, r.names, "x" in r
        (0, [], False)
    """

    snapshot: Snapshot
    duration: float
    users: int = 0
    timeline: list[TimelinePoint] = field(default_factory=list)
    # Per request name (at most MAX_TIMELINE_NAMES of them, see stats/aggregator.py).
    timeline_requests: dict[str, list[TimelinePoint]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # infrastructure errors, not SLO misses
    health: Health = field(default_factory=Health)
    workers: int = 1
    interrupted: str = ""  # why the run was interrupted (Ctrl-C, SIGTERM), "" if it was not
    # The settings that defined the load, as the JSON documents carry them (see
    # report.compare.load_settings); set where the spec is known, {} otherwise.
    load: dict[str, Any] = field(default_factory=dict)

    def _stop_notes(self, prefix: str, kind: str) -> int:
        """The count of the runner's notes of one kind (they travel as error groups)."""
        return sum(
            g.count
            for g in self.snapshot.errors.values()
            if g.kind == kind and g.name.startswith(prefix)
        )

    @property
    def cut_off(self) -> int:
        """Iterations still in flight ``stop_timeout`` after the stop, killed: their requests
        in flight were never measured."""
        return self._stop_notes("stop: ", "Killed")

    @property
    def abandoned(self) -> int:
        """Users whose fixture teardown had to be interrupted at the stop."""
        return sum(
            int(g.message.split(" ", 1)[0])
            for g in self.snapshot.errors.values()
            if g.kind == "Abandoned" and g.name.startswith("stop: ") and g.message[:1].isdigit()
        )

    @property
    def not_started(self) -> int:
        """Users never spawned: the load ended before the spawn rate reached them."""
        return self._stop_notes("start: ", "NotStarted")

    @property
    def started(self) -> int:
        """Users that started and set up their fixtures."""
        return max(self.users - self.not_started - self.snapshot.setup_failures, 0)

    @property
    def total(self) -> EntryResult:
        return EntryResult(self.snapshot.total(), self.duration)

    @property
    def iterations(self) -> EntryResult:
        """Iterations and their durations: the body's own in the closed model; from each
        iteration's due start in the open model, so a stalled target shows (coordinated
        omission corrected, see ``docs/workload.md``).

        Example:
            >>> snap = Snapshot(); snap.iteration.record_values([5_000, 900_000])
            >>> RunResult(snap, duration=1.0).iterations.count
            2
        """
        return EntryResult(Entry(self.snapshot.iteration), self.duration, "iterations")

    @property
    def dropped(self) -> int:
        """Open model: iterations never run because no user was free within the bound."""
        return self.snapshot.dropped

    @property
    def late(self) -> int:
        """Open model: iterations that started late (past the lateness bound) for want of a
        free user; they ran, and ``iterations`` counts their wait."""
        return self.snapshot.late

    def __getitem__(self, name: str) -> EntryResult:
        entry = self.snapshot.entries.get(name)
        if entry is None:
            known = ", ".join(repr(n) for n in self.names) or "none"
            raise KeyError(f"no request named {name!r} was recorded (recorded: {known})")
        return EntryResult(entry, self.duration, name)

    def get(self, name: str) -> EntryResult | None:
        entry = self.snapshot.entries.get(name)
        return EntryResult(entry, self.duration, name) if entry is not None else None

    def __contains__(self, name: object) -> bool:
        return name in self.snapshot.entries

    def __iter__(self) -> Iterator[EntryResult]:
        for name in self.names:
            yield self[name]

    @property
    def names(self) -> list[str]:
        return sorted(self.snapshot.entries)

    @property
    def error_ratio(self) -> float:
        return self.total.error_ratio

    @property
    def errors(self) -> list[ErrorGroup]:
        """Failures grouped by (name, kind, message), most frequent first."""
        return sorted(self.snapshot.errors.values(), key=lambda g: -g.count)
