"""Text the user reads in the terminal after a load test: the headline, the per-request table,
the errors, the generator's health, the verdict (the live line is ``report/live.py``).

Pure formatting: functions take results and return strings, so the same text goes to the
terminal, into the report sections that travel through xdist, and into JUnit failure messages;
:func:`line_markup` says how pytest's terminal writer colours each line when it prints them.

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
    from ..stats.result import EntryResult, RunResult

MAX_ERRORS_SHOWN = 10
SAMPLE_LINES = 12  # the end of a traceback says where it failed


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


def users_text(result: RunResult) -> str:
    """The users of a run as the headline says them: the shortfall when some never started;
    in the open model and under a shape (users built only as they are needed) the most that
    ran at once beside the most allowed, since ``max_users`` is a bound, not the load. The
    model is read from ``result.load`` (the settings that defined the load).

    Example:
        >>> from pytest_swarm.stats.result import RunResult, TimelinePoint
        >>> from pytest_swarm.stats.snapshot import Snapshot
        >>> points = [TimelinePoint(0, 4, 20, 0, 0.01, 0.02), TimelinePoint(1, 7, 20, 0, 0, 0)]
        >>> result = RunResult(Snapshot(), 3.0, users=50, timeline=points)
        >>> users_text(result)
        '50 users'
        >>> result.load = {"model": "open", "shape": False}
        >>> users_text(result)
        'up to 50 users, 7 used'
    """
    users = f"{result.users} user{'s' if result.users != 1 else ''}"
    load = getattr(result, "load", None) or {}
    if load.get("model") == "open" or load.get("shape"):
        if not result.timeline:
            return f"up to {users}"
        used = max(p.users for p in result.timeline)
        return users if used >= result.users else f"up to {users}, {used:,} used"
    if result.started < result.users:
        # The shortfall first: "10 users" would claim load that never ran.
        return f"{result.started} of {users} started"
    return users


def headline(name: str, result: RunResult) -> str:
    """The first line of a load test's summary (the only one with ``-q``)."""
    t = result.total
    workers = f" on {result.workers} workers" if result.workers > 1 else ""
    users = users_text(result)
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


# How each line of a summary is coloured: (the start of the line, pytest's markup). Objective
# lines start with their status (objectives.Verdict.table), problems with ERROR.
_MARKUP: tuple[tuple[str, dict[str, bool]], ...] = (
    ("  met ", {"green": True}),
    ("  MISSED ", {"red": True, "bold": True}),
    ("  STOPPED ", {"yellow": True}),
    ("  ERROR ", {"red": True}),
)


def line_markup(line: str) -> dict[str, bool]:
    """pytest's terminal markup for one line of :func:`full_report`: green for a met
    objective, red for a missed one and for problems, yellow for warnings (a saturated load
    generator, a load stopped early). The terminal writer applies it only when its markup is
    on (a TTY, ``--color=yes``; never with ``--color=no``).

    Example:
        >>> line_markup("  MISSED  p95 < 300ms  measured 412ms")
        {'red': True, 'bold': True}
        >>> line_markup("  met     p95 < 300ms  measured 41ms"), line_markup("Name  Requests")
        ({'green': True}, {})
    """
    for start, markup in _MARKUP:
        if line.startswith(start) or line == start.rstrip():
            return dict(markup)
    if "WARNING: " in line:
        return {"yellow": True}
    return {}
