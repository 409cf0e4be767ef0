"""The terminal's live progress line: a subscriber of the session's live feed.

The process that aggregates (the one pytest process, or the xdist controller) publishes a
:class:`~pytest_swarm.feed.Progress` per report interval; :class:`LiveLine` turns each into one
line a person reads at a glance, the same figures whichever process merged them::

    [swarm] test_home  12s/30s  50 users  1,234 req/s  p95 41ms  2 failures

On a TTY the line is redrawn in place at every Progress (a carriage return, then the line,
then spaces over what is left of the previous one; never as wide as the terminal, so it never
wraps). Without a TTY (CI logs) a line is printed every :data:`EVERY` seconds of the load.
The reading of the figures: requests/s over the last :data:`RATE_WINDOW` seconds (the rate
now, not the average since the start), p95 and failures of the run so far (what the
objectives judge at the end), users running now. In the open model the arrival rate comes
after the users: the iterations that arrived per second (run or dropped), over the same window.

It reads only the feed's events (results, never the engine), and writes through pytest's own
terminal writer (``terminalreporter._tw``): its width, and whether its file is a TTY.

Example:
    >>> import io
    >>> from types import SimpleNamespace
    >>> from _pytest._io import TerminalWriter
    >>> from pytest_swarm.feed import LoadStarted, Progress
    >>> from pytest_swarm.stats.result import RunResult
    >>> from pytest_swarm.stats.snapshot import Snapshot
    >>> out = io.StringIO()
    >>> reporter = SimpleNamespace(_tw=TerminalWriter(out), isatty=False, currentfspath=None)
    >>> live = LiveLine(lambda: reporter)
    >>> live.on_event(LoadStarted("t.py::test_home", "test_home", 30.0, users=5))
    >>> snap = Snapshot(); snap.entry("GET /").hist.record_values([41_000] * 300)
    >>> workers = {"main": {"cpu": 5.0, "lag": 0.001, "users": 5.0}}
    >>> live.on_event(Progress("t.py::test_home", "test_home", 2.0, 30.0, RunResult(snap, 2.0),
    ...                        workers))
    >>> print(out.getvalue(), end="")
    [swarm] test_home  2s/30s  5 users  150 req/s  p95 41ms  0 failures
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import pytest

from ..feed import Event, LoadFinished, LoadStarted, Progress, SessionFinished
from ..objectives import format_seconds
from .terminal import fit_name

__all__ = ["EVERY", "RATE_WINDOW", "LiveLine", "LiveStatus", "live_line", "status_of"]

EVERY = 2.0  # seconds of the load between two lines without a TTY
RATE_WINDOW = 3.0  # seconds the live rates cover
NAME_KEPT = 24  # a longer test name is shortened to this before figures are left off
MIN_NAME = 8  # and to this at the most
PREFIX = "[swarm]"


@dataclass(frozen=True)
class LiveStatus:
    """The figures of one live line.

    ``arrivals`` is the open model's arrival rate (iterations/s), ``None`` in the closed model.
    """

    name: str  # the test's short name (``test_cart``, ``test_x#2`` for a swarm.run)
    elapsed: float
    duration: float
    users: int
    rps: float
    p95: float
    failures: int
    requests: int
    arrivals: float | None = None


# The order in which figures are left off when the line does not fit: the first first. The
# open model's arrival rate outlives its users (what it sets, beside what that took); the
# failures and the p95 (what objectives judge most often) stay longest.
_DROP_ORDER = ("users", "arrivals", "rps", "p95")


def _figures(s: LiveStatus) -> list[tuple[str, str]]:
    if not s.requests and not s.users:
        # Before the first statistics arrive (xdist: the workers' first delta): no zeros.
        return [("state", "starting")]
    parts = [("users", f"{s.users:,} user{'s' if s.users != 1 else ''}")]
    if s.arrivals is not None:
        parts.append(("arrivals", f"{s.arrivals:,.0f} arrivals/s"))
    parts.append(("rps", f"{s.rps:,.0f} req/s"))
    parts.append(("p95", f"p95 {format_seconds(s.p95)}"))
    parts.append(("failures", f"{s.failures:,} failure{'s' if s.failures != 1 else ''}"))
    return parts


def live_line(s: LiveStatus, width: int = 80) -> str:
    """One progress line, at most ``width`` columns: the test's short name, elapsed / total,
    users (and arrivals/s in the open model), requests/s, p95, failures. When it does not fit,
    a long name is shortened in the middle to :data:`NAME_KEPT` characters, then figures are
    left off (the users, the arrival rate, the rate, the p95: the failures stay as long as
    anything does), then the name is shortened further, and at last the line is cut.

    Example:
        >>> s = LiveStatus("test_home", 12.3, 30, 50, 1234.5, 0.041, 2, 9000)
        >>> print(live_line(s))
        [swarm] test_home  12s/30s  50 users  1,234 req/s  p95 41ms  2 failures
        >>> print(live_line(s, width=64))
        [swarm] test_home  12s/30s  1,234 req/s  p95 41ms  2 failures
        >>> print(live_line(LiveStatus("test_home", 0.4, 30, 0, 0.0, 0.0, 0, 0)))
        [swarm] test_home  0s/30s  starting
    """
    clock = f"{s.elapsed:.0f}s/{s.duration:g}s"
    figures = _figures(s)
    drop = [name for name in _DROP_ORDER if any(name == f for f, _ in figures)]
    want = min(len(s.name), NAME_KEPT)  # a name shortened more than this loses a figure first
    while True:
        tail = "  ".join([clock, *(text for _, text in figures)])
        room = width - len(f"{PREFIX}   {tail}")
        if room >= want or not drop:
            break
        gone = drop.pop(0)
        figures = [f for f in figures if f[0] != gone]
    line = f"{PREFIX} {fit_name(s.name, max(room, MIN_NAME))}  {tail}"
    if len(line) > width:
        line = line[: max(width - 1, 0)] + "…" if width > 0 else ""
    return line


class _Track:
    """What the live line keeps of one running load test: recent samples for the rates."""

    __slots__ = ("arrivals", "bucket", "name", "samples")

    def __init__(self, name: str, arrivals: bool) -> None:
        self.name = name
        self.arrivals = arrivals  # the open model: show the arrival rate
        # (elapsed, requests, arrivals): the run's start, then the latest Progress events,
        # bounded by the window (and by maxlen, whatever the report interval).
        self.samples: deque[tuple[float, int, int]] = deque([(0.0, 0, 0)], maxlen=64)
        self.bucket = 0  # the last EVERY-second bucket a line was printed in (no TTY)


def _users(event: Progress) -> int:
    if event.workers:
        return int(sum(max(w.get("users", 0.0), 0.0) for w in event.workers.values()))
    timeline = event.result.timeline
    return timeline[-1].users if timeline else 0


def _sample(event: Progress, samples: deque[tuple[float, int, int]]) -> tuple[float, int, int]:
    """(elapsed, requests, arrivals) of ``event``, kept in ``samples`` for the rates (cheap:
    counts only, no histogram merged), with one sample a window old or more at the front."""
    result = event.result
    now = max(event.elapsed, 0.0)
    requests = sum(entry.count for entry in result)
    arrived = result.iterations.count + result.dropped
    if now > samples[-1][0]:
        samples.append((now, requests, arrived))
    while len(samples) > 2 and samples[1][0] <= now - RATE_WINDOW:
        samples.popleft()
    return now, requests, arrived


def status_of(event: Progress, track: _Track | None = None) -> LiveStatus:
    """The live figures of ``event``; with a ``track`` (the test's earlier samples), the rates
    cover the last :data:`RATE_WINDOW` seconds, else the run so far.

    Example:
        >>> from pytest_swarm.stats.result import RunResult
        >>> from pytest_swarm.stats.snapshot import Snapshot
        >>> snap = Snapshot(); snap.entry("GET /").hist.record_values([2_000] * 40)
        >>> s = status_of(Progress("t.py::test_a", "test_a", 4.0, 10.0, RunResult(snap, 4.0)))
        >>> s.requests, s.rps, s.p95, s.arrivals
        (40, 10.0, 0.002, None)
    """
    result = event.result
    samples = track.samples if track is not None else deque([(0.0, 0, 0)])
    now, requests, arrived = _sample(event, samples)
    total = result.total  # every name's histogram merged: only for a line that is shown
    base_t, base_requests, base_arrived = samples[0]
    span = now - base_t
    rps = (requests - base_requests) / span if span > 0 else 0.0
    arrivals = None
    if track is not None and track.arrivals:
        arrivals = (arrived - base_arrived) / span if span > 0 else 0.0
    return LiveStatus(
        name=event.name or event.test.rpartition("::")[2] or event.test,
        elapsed=now,
        duration=event.duration,
        users=_users(event),
        rps=max(rps, 0.0),
        p95=total.p95,
        failures=total.failures,
        requests=requests,
        arrivals=None if arrivals is None else max(arrivals, 0.0),
    )


class Reporter(Protocol):
    """What the live line needs of pytest's ``TerminalReporter``."""

    currentfspath: Any

    @property
    def _tw(self) -> Any: ...  # _pytest._io.TerminalWriter: write(), fullwidth, width_of_...


def _is_tty(reporter: Reporter) -> bool:
    return bool(getattr(reporter, "isatty", False))


class LiveLine:
    """The live line as a feed subscriber.

    ``reporter()`` gives pytest's terminal reporter (``None``: no terminal, nothing shown);
    ``guard()`` gives the context to write in (the capture manager's, in the one process: the
    load runs inside a test whose output pytest captures). Events come from the aggregating
    thread; :meth:`end_line` from pytest's hooks in the main thread: a lock keeps their writes
    whole.
    """

    def __init__(
        self,
        reporter: Callable[[], Reporter | None],
        guard: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
        every: float = EVERY,
    ) -> None:
        self._reporter = reporter
        self._guard = guard
        self.every = every
        self._lock = threading.Lock()
        self._tracks: dict[str, _Track] = {}
        self._open = ""  # the test whose redrawn line is on the terminal's current line
        self._drawn = 0  # its length, to blank what a shorter redraw leaves
        self._done: deque[str] = deque(maxlen=16)  # finished tests: a late Progress is stale
        self.lines = 0  # lines printed or redrawn: tests and the docs' figures

    # -- the feed ---------------------------------------------------------------------------
    def on_event(self, event: Event) -> None:
        """The feed's subscriber (called in the aggregating thread)."""
        if isinstance(event, LoadStarted):
            settings = event.settings if isinstance(event.settings, dict) else {}
            arrivals = settings.get("arrival_rate") is not None
            self._tracks[event.test] = _Track(event.name, arrivals)
            if event.test in self._done:  # run again (a rerun plugin): live again
                self._done.remove(event.test)
            if len(self._tracks) > 1000:  # tests that never finished (bounded all the same)
                self._tracks.pop(next(iter(self._tracks)))
            reporter = self._reporter()
            if reporter is not None and _is_tty(reporter):
                starting = LiveStatus(event.name, 0.0, event.duration, 0, 0, 0, 0, 0)
                self._draw(reporter, event.test, starting)
        elif isinstance(event, Progress):
            self._progress(event)
        elif isinstance(event, LoadFinished):
            self._tracks.pop(event.test, None)
            self._done.append(event.test)
            self.end_line()
        elif isinstance(event, SessionFinished):
            self._tracks.clear()
            self.end_line()

    def _progress(self, event: Progress) -> None:
        track = self._tracks.get(event.test)
        if track is None and event.test in self._done:
            return
        if track is None:  # no LoadStarted seen (subscribed late): still a line, no arrivals
            track = self._tracks[event.test] = _Track(event.name, False)
        reporter = self._reporter()
        if reporter is None:
            return
        if _is_tty(reporter):
            self._draw(reporter, event.test, status_of(event, track))
            return
        # No TTY: the first Progress in each EVERY-second bucket of the load, from the second
        # bucket on (a line at 0 s would show the ramp's first zeros).
        bucket = math.floor(max(event.elapsed, 0.0) / self.every) if self.every > 0 else 1
        if bucket < 1 or bucket <= track.bucket:
            _sample(event, track.samples)  # every event: the rates' window stays current
            return
        track.bucket = bucket
        self._print(reporter, status_of(event, track))

    # -- writing ----------------------------------------------------------------------------
    def _print(self, reporter: Reporter, status: LiveStatus) -> None:
        tw = reporter._tw
        with self._lock, self._guard():
            line = live_line(status, max(tw.fullwidth - 1, 20))
            if tw.width_of_current_line:  # e.g. xdist's progress dots: a line of its own
                tw.write("\n")
            tw.write(line + "\n", flush=True)
            reporter.currentfspath = None  # the next test's file name starts a new line
            self.lines += 1

    def _draw(self, reporter: Reporter, test: str, status: LiveStatus) -> None:
        tw = reporter._tw
        with self._lock, self._guard():
            # Never the last column: some terminals wrap there.
            line = live_line(status, max(tw.fullwidth - 1, 20))
            ended = reporter.currentfspath != -2  # another writer's ensure_newline() ended it
            if self._open and (self._open != test or ended):
                if not ended:  # the next load of a test (swarm.run): the last figures stay
                    tw.write("\n")
                self._open = ""
            if not self._open:
                if tw.width_of_current_line:
                    tw.write("\n")
                tw.write(line, flush=True)
            else:
                tw.write("\r" + line + " " * max(self._drawn - len(line), 0), flush=True)
            self._open, self._drawn = test, len(line)
            # Another writer's ensure_newline() (the summary, a warning) ends this line first.
            reporter.currentfspath = -2
            self.lines += 1

    def end_line(self) -> None:
        """End a redrawn line (its last figures stay): before anything else is printed."""
        if not self._open:
            return
        reporter = self._reporter()
        with self._lock, self._guard():
            # -2: nobody ended it meanwhile (see _draw)
            if self._open and reporter is not None and reporter.currentfspath == -2:
                reporter._tw.write("\n", flush=True)
                reporter.currentfspath = None
            self._open = ""


class LivePlugin:
    """Registers the live line with pytest: the end of a redrawn line before pytest prints a
    test's outcome, the session's end or an interrupt."""

    def __init__(self, config: Any) -> None:
        self.config = config
        self.live = LiveLine(self._reporter, self._guard)

    def _reporter(self) -> Reporter | None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        return reporter if reporter is not None and hasattr(reporter, "_tw") else None

    def _guard(self) -> contextlib.AbstractContextManager[Any]:
        # Capture is suspended around each write in the one process (the load runs inside a
        # captured test, in the main thread); the xdist controller's aggregator thread must
        # not toggle it (process-wide) and captures nothing then.
        if threading.current_thread() is threading.main_thread():
            capman = self.config.pluginmanager.get_plugin("capturemanager")
            if capman is not None:
                return capman.global_and_fixture_disabled()  # type: ignore[no-any-return]
        return contextlib.nullcontext()

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: Any) -> None:
        self.live.end_line()

    @pytest.hookimpl(tryfirst=True)
    def pytest_keyboard_interrupt(self, excinfo: Any) -> None:
        self.live.end_line()

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: Any) -> None:
        self.live.end_line()
