"""The terminal's live line (report/live.py) and the coloured summary (report/screen.py,
report/terminal.py line_markup): pure logic against pytest's own TerminalWriter writing into a
StringIO that says it is a TTY (or not), and the feed the aggregators publish on."""

from __future__ import annotations

import io
import re
from types import SimpleNamespace
from typing import Any

from _pytest._io import TerminalWriter
from hypothesis import given
from hypothesis import strategies as st

from pytest_swarm.engine.link import LocalLink
from pytest_swarm.engine.runner import Tick
from pytest_swarm.feed import Feed, LoadFinished, LoadStarted, Progress, SessionFinished
from pytest_swarm.report.live import EVERY, LiveLine, LiveStatus, live_line, status_of
from pytest_swarm.report.screen import print_summary
from pytest_swarm.report.terminal import full_report, headline, line_markup
from pytest_swarm.spec import LoadSpec, SpecOverrides, build_spec, parse_wait
from pytest_swarm.stats.result import Health, RunResult, TimelinePoint
from pytest_swarm.stats.snapshot import Snapshot

TEST = "tests/test_shop.py::TestShop::test_cart"


class _Out(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def _reporter(tty: bool, width: int = 80, markup: bool = False) -> Any:
    out = _Out(tty)
    tw = TerminalWriter(out)
    tw.fullwidth = width
    tw.hasmarkup = markup
    return SimpleNamespace(_tw=tw, isatty=tty, currentfspath=None, out=out)


def _result(requests: int, failures: int = 0, iterations: int = 0, ms: int = 40) -> RunResult:
    snap = Snapshot()
    entry = snap.entry("GET /cart")
    entry.hist.record_values([ms * 1000] * requests)
    entry.failures = failures
    snap.iteration.record_values([ms * 1000] * iterations)
    return RunResult(snap, duration=1.0)


def _progress(elapsed: float, requests: int, users: int = 5, **kw: Any) -> Progress:
    workers = {"gw0": {"cpu": 5.0, "lag": 0.0, "users": users / 2},
               "gw1": {"cpu": 5.0, "lag": 0.0, "users": users / 2}}  # fmt: skip
    return Progress(TEST, "test_cart", elapsed, 10.0, _result(requests, **kw), workers)


def _segments(text: str) -> list[str]:
    """What a terminal shows: each carriage return or newline starts a fresh draw."""
    return [s for s in re.split(r"[\r\n]", text) if s]


# -- the line ------------------------------------------------------------------------------------


def test_live_line_reads_at_a_glance() -> None:
    s = LiveStatus("test_cart", 12.3, 30, 50, 1234.5, 0.041, 2, 9000)
    assert live_line(s) == "[swarm] test_cart  12s/30s  50 users  1,234 req/s  p95 41ms  2 failures"
    opened = LiveStatus("test_cart", 12.3, 30, 7, 1234.5, 0.041, 0, 9000, arrivals=200.4)
    assert live_line(opened, 100) == (
        "[swarm] test_cart  12s/30s  7 users  200 arrivals/s  1,234 req/s  p95 41ms  0 failures"
    )
    # Too wide for 80 columns: the users are left off first, the failures stay.
    assert live_line(opened, 79) == (
        "[swarm] test_cart  12s/30s  200 arrivals/s  1,234 req/s  p95 41ms  0 failures"
    )
    assert live_line(opened, 40) == "[swarm] test_cart  12s/30s  0 failures"


@given(
    name=st.text(min_size=1, max_size=300),
    elapsed=st.floats(0, 1e7),
    duration=st.floats(0.001, 1e7),
    users=st.integers(0, 10**7),
    rps=st.floats(0, 1e9),
    p95=st.floats(0, 3600),
    failures=st.integers(0, 10**12),
    arrivals=st.none() | st.floats(0, 1e9),
    width=st.integers(1, 400),
)
def test_live_line_never_wider_than_the_terminal(
    name: str,
    elapsed: float,
    duration: float,
    users: int,
    rps: float,
    p95: float,
    failures: int,
    arrivals: float | None,
    width: int,
) -> None:
    s = LiveStatus(name, elapsed, duration, users, rps, p95, failures, 1, arrivals)
    line = live_line(s, width)
    assert len(line) <= width
    if width >= 80 and len(name) <= 20 and failures < 10**6 and users < 10**6:
        assert "failure" in line and name in line  # the figures that matter most stay


# -- figures from the feed's Progress ----------------------------------------------------------


def test_rates_cover_the_last_seconds_and_p95_the_run_so_far() -> None:
    live = LiveLine(lambda: None)
    live.on_event(LoadStarted(TEST, "test_cart", 10.0, users=4))
    track = live._tracks[TEST]
    first = status_of(_progress(1.0, 100, users=4), track)
    assert (first.rps, first.users, first.requests, first.p95) == (100.0, 4, 100, 0.04)
    status_of(_progress(2.0, 300), track)
    status_of(_progress(3.0, 600), track)
    later = status_of(_progress(4.0, 1000, failures=3), track)
    # From the sample 3 s before (t=1: 100 requests) to now: 900 requests in 3 s.
    assert later.rps == 300.0 and later.failures == 3
    assert later.arrivals is None  # the closed model


def test_open_model_shows_the_arrival_rate() -> None:
    live = LiveLine(lambda: None)
    spec = build_spec(arrival_rate=20, max_users=50, duration="10s", overrides=SpecOverrides())
    link = LocalLink(feed=Feed(), key=TEST)
    started: list[LoadStarted] = []
    link.feed.subscribe(lambda e: started.append(e) if isinstance(e, LoadStarted) else None)  # type: ignore[union-attr]
    link.begin("test_cart", spec)
    live.on_event(started[0])
    s = status_of(_progress(2.0, 40, users=3, iterations=40), live._tracks[TEST])
    assert s.arrivals == 20.0 and s.users == 3


# -- drawing -----------------------------------------------------------------------------------


def test_on_a_tty_the_line_is_redrawn_in_place_and_never_wraps() -> None:
    reporter = _reporter(tty=True, width=60)
    reporter._tw.write("test_shop.py ")  # pytest's file name is on the current line
    reporter.currentfspath = "tests/test_shop.py"
    live = LiveLine(lambda: reporter)
    live.on_event(LoadStarted(TEST, "test_cart", 10.0, users=5))
    for t in range(1, 6):
        live.on_event(_progress(float(t), 100 * t))
    live.end_line()
    text = reporter.out.getvalue()
    assert text.startswith("test_shop.py \n[swarm] test_cart  0s/10s  starting\r")
    assert text.count("\r") == 5 and text.endswith(" failures\n")
    assert all(len(s) < 60 for s in _segments(text))  # never the last column
    assert _segments(text)[-1].startswith("[swarm] test_cart  5s/10s  100 req/s  p95 40ms")
    assert live.lines == 6 and reporter.currentfspath is None
    # The summary then starts on a fresh line.
    reporter.write_line = lambda line, **markup: reporter._tw.line(line, **markup)
    print_summary(reporter, "test_cart: 5 users, 10.0s")
    assert reporter.out.getvalue().endswith(" failures\n\ntest_cart: 5 users, 10.0s\n")


def test_a_shorter_redraw_blanks_what_the_longer_one_left() -> None:
    reporter = _reporter(tty=True, width=120)
    live = LiveLine(lambda: reporter)
    live.on_event(LoadStarted(TEST, "test_cart", 10.0))
    live.on_event(_progress(1.0, 10**6, failures=10**5))
    live.on_event(_progress(2.0, 10**6 + 1))
    first, second = _segments(reporter.out.getvalue())[1:]
    assert len(second) == len(first) and second.rstrip() != second  # padded with spaces


def test_an_outcome_ends_the_redrawn_line_once() -> None:
    reporter = _reporter(tty=True)
    live = LiveLine(lambda: reporter)
    live.on_event(LoadStarted(TEST, "test_cart", 10.0))
    live.on_event(_progress(1.0, 10))
    live.on_event(LoadFinished(TEST, "test_cart", "passed", None))
    live.end_line()
    live.on_event(SessionFinished())
    assert reporter.out.getvalue().endswith("failures\n")
    assert not reporter.out.getvalue().endswith("\n\n")


def test_another_writer_ends_the_line_first() -> None:
    # e.g. the dashboard's URL or a warning, written with pytest's ensure_newline().
    reporter = _reporter(tty=True)
    live = LiveLine(lambda: reporter)
    live.on_event(LoadStarted(TEST, "test_cart", 10.0))
    assert reporter.currentfspath == -2
    reporter._tw.line()  # what TerminalReporter.ensure_newline does when currentfspath is set
    reporter.currentfspath = None
    live.end_line()
    assert reporter.out.getvalue().endswith("starting\n")


def test_without_a_tty_a_line_every_few_seconds_of_the_load() -> None:
    reporter = _reporter(tty=False)
    reporter._tw.write(".")  # xdist's progress dots share no line with ours
    live = LiveLine(lambda: reporter)
    live.on_event(LoadStarted(TEST, "test_cart", 10.0, users=5))
    for t in (1.0, 1.9, 2.05, 3.0, 3.99, 4.0, 5.2, 6.5, 9.0, 9.9):
        live.on_event(_progress(t, int(100 * t)))
    lines = reporter.out.getvalue().splitlines()
    assert lines[0] == "."
    shown = [re.match(r"\[swarm\] test_cart  (\d+)s/10s  5 users", line) for line in lines[1:]]
    assert all(shown), lines  # the short name, figures from the first line on
    # One per EVERY-second bucket, from the second on: at 2.05, 4.0, 6.5, 9.0.
    assert [m.group(1) for m in shown if m] == ["2", "4", "6", "9"]
    assert EVERY == 2.0 and "\r" not in reporter.out.getvalue()


def test_no_terminal_nothing_drawn() -> None:
    live = LiveLine(lambda: None)
    live.on_event(LoadStarted(TEST, "test_cart", 10.0))
    live.on_event(_progress(3.0, 10))
    live.end_line()
    assert live.lines == 0


def test_the_feed_drives_the_line_from_a_local_link() -> None:
    """One process: LocalLink publishes, the live line prints (the link itself prints
    nothing: it has no terminal callback any more)."""
    reporter = _reporter(tty=True)  # a draw per Progress: as many as the link published
    feed = Feed()
    live = LiveLine(lambda: reporter)
    feed.subscribe(live.on_event)
    link = LocalLink(feed=feed, key=TEST)
    link.begin("test_cart", LoadSpec(2, 10.0, 30.0, parse_wait(None), 5.0))
    for seq in range(3):
        delta = Snapshot(users=2)
        delta.entry("GET /").hist.record_values([1000] * 5)
        link.publish(Tick(seq, delta, False, cpu=1.0, lag=0.0))
    live.end_line()
    assert not feed.errors
    draws = _segments(reporter.out.getvalue())
    assert draws[0] == "[swarm] test_cart  0s/30s  starting"
    assert len(draws) == live.lines == 4  # LoadStarted, then one per Progress
    assert all(" 2 users " in d and d.startswith("[swarm] test_cart  ") for d in draws[1:])


# -- the final report ----------------------------------------------------------------------------


def test_open_model_headline_says_the_users_used() -> None:
    points = [TimelinePoint(0, 3, 20, 0, 0.01, 0.02), TimelinePoint(1, 7, 20, 0, 0.01, 0.02)]
    result = RunResult(Snapshot(), 3.0, users=50, timeline=points)
    result.load = {"model": "open", "shape": False}
    assert headline("test_open", result).startswith("test_open: up to 50 users, 7 used, 3.0s")
    result.load = {"model": "closed", "shape": True}
    assert headline("test_shape", result).startswith("test_shape: up to 50 users, 7 used,")
    result.load = {"model": "closed", "shape": False}
    assert headline("test_closed", result).startswith("test_closed: 50 users, 3.0s")
    result.load = {"model": "open", "shape": False}
    result.timeline = [TimelinePoint(0, 50, 20, 0, 0.01, 0.02)]
    assert headline("test_open", result).startswith("test_open: 50 users, 3.0s")


def test_objectives_met_and_missed_are_coloured_only_with_markup() -> None:
    from pytest_swarm.objectives import evaluate, parse_objective

    snap = Snapshot()
    snap.entry("GET /").hist.record_values([50_000] * 10)
    result = RunResult(snap, 1.0, users=1, health=Health(95.0, 0.2, saturated=True))
    verdict = evaluate([parse_objective("p95 < 1s"), parse_objective("p50 < 1ms")], result)
    text = full_report("test_x", result, verdict)
    for markup, expect_escapes in ((True, True), (False, False)):
        reporter = _reporter(tty=True, markup=markup)
        reporter.write_line = lambda line, _tw=reporter._tw, **m: _tw.line(line, **m)
        print_summary(reporter, text)
        out = reporter.out.getvalue()
        assert ("\x1b[" in out) is expect_escapes
        if markup:
            assert "\x1b[32m  met     p95 < 1s" in out
            assert "\x1b[31m\x1b[1m  MISSED  p50 < 1ms" in out
            assert re.search(r"\x1b\[33mGenerator: .*WARNING: the load generator", out)
    assert line_markup("Name     Requests") == {}


def test_the_next_load_of_a_test_keeps_the_last_ones_figures() -> None:
    # swarm.run: several loads in one test, no report between them.
    reporter = _reporter(tty=True)
    live = LiveLine(lambda: reporter)
    for key in (f"{TEST}#1", f"{TEST}#2"):
        name = f"test_cart#{key[-1]}"
        live.on_event(LoadStarted(key, name, 10.0))
        live.on_event(Progress(key, name, 1.0, 10.0, _result(10)))
    live.end_line()
    lines = reporter.out.getvalue().split("\n")
    assert lines[0].endswith("[swarm] test_cart#1  1s/10s  0 users  10 req/s  p95 40ms  0 failures")
    assert lines[1].startswith("[swarm] test_cart#2  0s/10s  starting\r")


def test_a_progress_after_the_end_of_its_test_is_not_drawn() -> None:
    reporter = _reporter(tty=True)
    live = LiveLine(lambda: reporter)
    live.on_event(LoadStarted(TEST, "test_cart", 10.0))
    live.on_event(LoadFinished(TEST, "test_cart", "passed", None))
    live.on_event(_progress(9.0, 10))
    assert live.lines == 1
    live.on_event(LoadStarted(TEST, "test_cart", 10.0))  # run again (a rerun plugin)
    live.on_event(_progress(1.0, 10))
    assert live.lines == 3
