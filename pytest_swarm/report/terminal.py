"""Text the user reads in the terminal: the live line, the per-request table, the verdict.

Pure formatting: functions take results and return strings, so the same text goes to the
terminal, into the report sections that travel through xdist, and into JUnit failure messages.

Example:
    >>> from pytest_swarm.stats.snapshot import Snapshot
    >>> from pytest_swarm.stats.result import RunResult
    >>> snap = Snapshot(); snap.entry("GET /").hist.record_values([12_000, 15_000])
    >>> print(request_table(RunResult(snap, duration=1.0)).splitlines()[0])
    Name     Requests  Fails  Req/s     p50     p90     p95     p99     Max
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..objectives import Verdict, format_seconds

if TYPE_CHECKING:
    from ..engine.link import LiveStatus
    from ..stats.result import EntryResult, RunResult

MAX_ERRORS_SHOWN = 10
SAMPLE_LINES = 12  # the end of a traceback says where it failed


def live_line(s: LiveStatus, width: int = 80) -> str:
    """One progress line while a load test runs, at most ``width`` columns: the test's short
    name (a node id's part after ``::``), elapsed / total, users, requests/s, p95, failures.

    Example:
        >>> from pytest_swarm.engine.link import LiveStatus
        >>> print(live_line(LiveStatus("t.py::test_home", 12.3, 30, 50, 1234.5, 0.01, 0.041, 2,
        ...                            9000)))
        [swarm] test_home  12s/30s  50 users  1,234 req/s  p95 41ms  2 failures
        >>> print(live_line(LiveStatus("t.py::test_home", 0.4, 30, 0, 0.0, 0.0, 0.0, 0, 0)))
        [swarm] test_home  0s/30s  starting
    """
    name = s.test.rpartition("::")[2] or s.test
    clock = f"{s.elapsed:.0f}s/{s.duration:g}s"
    if not s.requests and not s.users:
        # Before the first statistics arrive (xdist: the workers' first delta): no zeros.
        figures = "starting"
    else:
        fails = f"{s.failures:,} failure{'s' if s.failures != 1 else ''}"
        figures = f"{s.users:,} users  {s.rps:,.0f} req/s  p95 {format_seconds(s.p95)}  {fails}"
    room = width - len(f"[swarm]   {clock}  {figures}")
    return f"[swarm] {fit_name(name, max(room, 8))}  {clock}  {figures}"


TABLE_WIDTH = 80  # the table fits a standard terminal and CI logs without wrapping
_FIGURES_WIDTH = 63  # the columns after the name: counts, rate and five latencies
MAX_NAME = TABLE_WIDTH - _FIGURES_WIDTH


def fit_name(name: str, width: int = MAX_NAME) -> str:
    """``name`` shortened in the middle to ``width`` characters: both its method and its last
    path segment stay readable.

    >>> fit_name("GET /api/v1/catalogue/items/{id}", 17)
    'GET /api…ems/{id}'
    """
    if len(name) <= width:
        return name
    head = (width - 1) // 2
    return name[:head] + "…" + name[len(name) - (width - 1 - head) :]


def _rate(value: float) -> str:
    # Digits only (scripts parse the table): one decimal while it fits the column.
    return f"{value:6.1f}" if value < 10_000 else f"{value:6.0f}"


def _row(name: str, e: EntryResult, width: int) -> str:
    return f"{fit_name(name, width):<{width}} {e.count:>9,} {e.failures:>6,} {_rate(e.rps):>6} " + (
        " ".join(f"{format_seconds(v):>7}" for v in (e.p50, e.p90, e.p95, e.p99, e.max))
    )


def request_table(result: RunResult) -> str:
    """The per-request table with a Total row, at most 80 columns wide (long names are
    shortened in the middle), then the iterations' line."""
    names = result.names
    longest = max([len("Name"), len("Total"), *map(len, names)]) + 2
    width = min(longest, MAX_NAME)
    if len({fit_name(n, width) for n in names}) < len(names):
        width = longest  # shortened names would look alike: wider, but never ambiguous
    header = f"{'Name':<{width}} {'Requests':>9} {'Fails':>6} {'Req/s':>6} " + " ".join(
        f"{h:>7}" for h in ("p50", "p90", "p95", "p99", "Max")
    )
    lines = [header]
    lines.extend(_row(name, result[name], width) for name in names)
    if len(names) != 1:
        lines.append(_row("Total", result.total, width))
    overflow = result.total.overflow
    if overflow:
        lines.append(f"{overflow:,} samples above the histogram range (1 h) counted as overflow")
    extra = iterations_line(result)
    if extra:
        lines.append(extra)
    return "\n".join(lines)


def iterations_line(result: RunResult) -> str:
    """Iterations and their durations (from each due start in the open model), with the
    iterations that started late or were dropped when there were any.

    Example:
        >>> from pytest_swarm.stats.snapshot import Snapshot
        >>> from pytest_swarm.stats.result import RunResult
        >>> snap = Snapshot(); snap.iteration.record_values([20_000, 30_000]); snap.late = 1
        >>> iterations_line(RunResult(snap, duration=1.0))
        'Iterations: 2, p50 20ms, p95 30ms, p99 30ms, max 30ms; late 1, dropped 0'
    """
    it = result.iterations
    if not it.count and not result.dropped and not result.late:
        return ""
    text = (
        f"Iterations: {it.count:,}, p50 {format_seconds(it.p50)}, p95 {format_seconds(it.p95)}, "
        f"p99 {format_seconds(it.p99)}, max {format_seconds(it.max)}"
    )
    if result.dropped or result.late:
        text += f"; late {result.late:,}, dropped {result.dropped:,}"
    return text


def errors_table(result: RunResult) -> str:
    """Failures grouped by error, most frequent first, with the count."""
    groups = result.errors
    if not groups:
        return ""
    lines = ["Errors:"]
    for g in groups[:MAX_ERRORS_SHOWN]:
        message = f": {g.message}" if g.message else ""
        lines.append(f"  {g.count:>7,} x  [{g.name}] {g.kind}{message}")
    if len(groups) > MAX_ERRORS_SHOWN:
        rest = sum(g.count for g in groups[MAX_ERRORS_SHOWN:])
        lines.append(f"  {rest:>7,} x  ({len(groups) - MAX_ERRORS_SHOWN} more kinds)")
    sampled = next((g for g in groups if g.sample), None)
    if sampled is not None:
        tail = sampled.sample.rstrip().splitlines()[-SAMPLE_LINES:]
        lines.append(f"Sample traceback, {sampled.kind} in {sampled.name}:")
        lines.extend("    " + line for line in tail)
    return "\n".join(lines)


def health_line(result: RunResult) -> str:
    h = result.health
    text = f"Generator: CPU max {h.cpu_max:.0f}%, event-loop lag max {format_seconds(h.lag_max)}"
    if h.saturated:
        text += (
            "  WARNING: the load generator was saturated (CPU > 90 % or lag > 50 ms); "
            "latencies include its own queueing and are unreliable. Use more workers (-n) "
            "or fewer users per worker."
        )
    return text


def headline(name: str, result: RunResult) -> str:
    t = result.total
    workers = f" on {result.workers} workers" if result.workers > 1 else ""
    users = f"{result.users} user{'s' if result.users != 1 else ''}"
    if result.started < result.users:
        # The shortfall first: "10 users" would claim load that never ran.
        users = f"{result.started} of {users} started"
    cut = f", {result.cut_off:,} iterations cut off at the stop" if result.cut_off else ""
    return (
        f"{name}: {users}{workers}, {result.duration:.1f}s, {t.count:,} requests, "
        f"{t.failures:,} failures, {t.rps:,.1f} req/s, p95 {format_seconds(t.p95)}{cut}"
    )


def setup_line(result: RunResult) -> str:
    failed = result.snapshot.setup_failures
    never = result.not_started
    if not failed and not never:
        return ""
    parts = [f"Users: {result.started} of {result.users} started"]
    if failed:
        parts.append(f"{failed} failed to set up their fixtures (see Errors)")
    if never:
        parts.append(
            f"{never} never started: the load ended before the spawn rate reached them "
            "(users / rate exceeds the duration)"
        )
    return "; ".join(parts)


def full_report(name: str, result: RunResult, verdict: Verdict | None) -> str:
    """Everything shown after a load test."""
    parts = [headline(name, result), request_table(result)]
    for extra in (errors_table(result), setup_line(result)):
        if extra:
            parts.append(extra)
    parts.append(health_line(result))
    if result.problems:
        parts.append("Problems:\n" + "\n".join(f"  ERROR  {p}" for p in result.problems))
    if verdict is not None:
        parts.append("Objectives:\n" + verdict.table())
    return "\n".join(parts)
