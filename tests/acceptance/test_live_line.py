"""The terminal's live line in real runs (one process, ``-n 2``, and on a real pseudo-terminal):
a subscriber of the session's feed, printed exactly as often as the feed's Progress events
call for, with the test's short name and figures, never twice, redrawn in place on a TTY and
never wider than the terminal; the summary's objectives coloured only when pytest's writer has
markup on.

Each project gets a conftest that records, in the aggregating process, every Progress the
feed publishes: the expected count of lines is computed from those, not from the clock.
"""

from __future__ import annotations

import math
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytest_swarm.demo.server import DemoServer

from .harness import RUN_TIMEOUT, RunSwarm

EVERY = 2.0  # report/live.py EVERY: seconds of the load between lines without a TTY

RECORDER = """
import os

from pytest_swarm.feed import Progress
from pytest_swarm.stash import get_feed


def pytest_configure(config):
    if hasattr(config, "workerinput"):
        return  # the aggregating process publishes: this one, or the xdist controller
    path = os.path.join(str(config.rootpath), "progress.log")

    def record(event):
        if isinstance(event, Progress):
            with open(path, "a") as log:
                log.write(f"{event.name} {event.elapsed!r} {event.result.total.count}\\n")

    get_feed(config).subscribe(record)
"""

LOAD = """
import pytest

@pytest.mark.load(users=3, rate=100, duration="{duration}", wait=0.05)
@pytest.mark.slo("p95 < 60s", "p50 < 1us")
def test_live(http):
    http.get("/")
"""

PASSING = """
import pytest

@pytest.mark.load(users=3, rate=100, duration="5s", wait=0.05)
def test_live(http):
    http.get("/")
"""

LIVE = re.compile(r"^\[swarm\] test_live  (\d+)s/(\S+)s  (.*)$")


def _progress(path: Path) -> list[tuple[str, float, int]]:
    rows = []
    for line in (path / "progress.log").read_text().splitlines():
        name, elapsed, count = line.split()
        rows.append((name, float(elapsed), int(count)))
    return rows


def _expected_lines(progress: list[tuple[str, float, int]]) -> int:
    """Without a TTY: the first Progress in each EVERY-second bucket, from the second on."""
    return len({b for _, t, _ in progress if (b := math.floor(t / EVERY)) >= 1})


def _check_figures(figures: str) -> None:
    m = re.fullmatch(r"3 users  ([\d,]+) req/s  p95 \S+  (\d+) failures?", figures)
    assert m, figures
    assert int(m.group(1).replace(",", "")) > 0  # figures from the first line on: no zeros


@pytest.mark.slow
@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one-process", "xdist"])
def test_without_a_tty_a_line_per_bucket_of_the_feed(
    pytester: pytest.Pytester, swarm_pytest: RunSwarm, workers: list[str]
) -> None:
    pytester.makeconftest(RECORDER)
    pytester.makepyfile(test_live=PASSING)  # a failure's summary is shown again, by pytest
    run = swarm_pytest(*workers)
    run.result.assert_outcomes(passed=1)
    out = run.result.outlines
    lines = [line for line in out if line.startswith("[swarm]")]
    progress = _progress(pytester.path)
    assert progress and {name for name, _, _ in progress} == {"test_live"}
    assert len(lines) == _expected_lines(progress) >= 1, (lines, progress)
    for line in lines:
        m = LIVE.match(line)
        assert m, line  # the short name, not the node id
        assert m.group(2) == "5"
        _check_figures(m.group(3))
    assert "\r" not in run.result.stdout.str()
    # Nothing printed twice: one headline, one objectives block.
    assert sum(line.startswith("test_live: 3 users") for line in out) == 1
    assert sum(line == "Objectives:" for line in out) == 1
    assert "\x1b[" not in "\n".join(out)  # no TTY, no --color: no markup


@pytest.mark.slow
def test_objectives_are_coloured_when_markup_is_on(
    pytester: pytest.Pytester, swarm_pytest: RunSwarm
) -> None:
    pytester.makepyfile(test_live=LOAD.format(duration="1s"))
    coloured = swarm_pytest("--color=yes", junit=False).result.stdout.str()
    assert "\x1b[32m  met     p95 < 60s" in coloured
    assert "\x1b[31m\x1b[1m  MISSED  p50 < 1us" in coloured
    plain = swarm_pytest("--color=no", junit=False).result.stdout.str()
    assert "  MISSED  p50 < 1us" in plain and "\x1b[" not in plain


def _run_on_a_pty(args: list[str], cwd: Path, columns: int) -> str:
    """pytest on a pseudo-terminal ``columns`` wide: its whole output, bounded in time."""
    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": str(columns), "TERM": "xterm"}
    for name in ("PYTEST_ADDOPTS", "PY_COLORS", "NO_COLOR", "FORCE_COLOR"):  # pytester sets some
        env.pop(name, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", *args],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
        env=env,
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + RUN_TIMEOUT
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        proc.wait(timeout=max(deadline - time.monotonic(), 1.0))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.slow
def test_on_a_tty_the_line_is_redrawn_in_place(
    pytester: pytest.Pytester, served: DemoServer
) -> None:
    pytester.makeconftest(RECORDER)
    pytester.makepyfile(test_live=LOAD.format(duration="4s"))
    columns = 60
    text = _run_on_a_pty(
        ["-p", "no:cacheprovider", "-p", "no:hypothesispytest", f"--swarm-host={served.url}"],
        pytester.path,
        columns,
    )
    progress = _progress(pytester.path)
    draws = [s for s in re.split(r"[\r\n]", text) if s.startswith("[swarm]")]
    # One draw when the load starts ("starting"), then one per Progress of the feed.
    assert len(draws) == 1 + len(progress), (draws, progress)
    assert draws[0] == "[swarm] test_live  0s/4s  starting"
    assert all(len(d.rstrip()) < columns and len(d) < columns for d in draws), draws
    # Redrawn in place: carriage returns between the draws, not newlines.
    first, last = text.index("[swarm] test_live"), text.rindex("[swarm] test_live")
    assert "\n" not in text[first:last] and text[first:last].count("\r") == len(draws) - 1
    # The last draw stays, and what follows starts on a fresh line.
    tail = text[last:]
    assert re.match(r"\[swarm\] test_live  \d+s/4s  [^\r\n]* failures *\r?\n", tail), tail
    assert re.search(r"(?m)^test_live: 3 users, ", text.replace("\r", "")), text
    # Markup on (a TTY): the objectives in colour.
    assert "\x1b[32m  met     p95 < 60s" in text and "\x1b[31m\x1b[1m  MISSED" in text, repr(text)


OPEN = """
import pytest

@pytest.mark.load(arrival_rate=20, max_users=50, duration="3s")
def test_open(http):
    http.get("/")
"""


@pytest.mark.slow
@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one-process", "xdist"])
def test_open_model_shows_arrivals_and_the_users_used(
    pytester: pytest.Pytester,
    swarm_pytest: RunSwarm,
    monkeypatch: pytest.MonkeyPatch,
    workers: list[str],
) -> None:
    monkeypatch.setenv("COLUMNS", "120")  # room for every figure
    pytester.makepyfile(test_open=OPEN)
    run = swarm_pytest(*workers)
    run.result.assert_outcomes(passed=1)
    lines = [line for line in run.result.outlines if line.startswith("[swarm]")]
    assert lines, run.result.outlines
    for line in lines:
        m = re.fullmatch(
            r"\[swarm\] test_open  \d+s/3s  (\d+) users?  ([\d,]+) arrivals/s  .*", line
        )
        assert m, line
        assert 0 < int(m.group(1)) < 50 and int(m.group(2)) > 0
    # 50 is the bound, not the load: the headline says how many users it took.
    heads = [line for line in run.result.outlines if line.startswith("test_open: ")]
    assert len(heads) == 1, run.result.outlines
    m = re.match(r"test_open: up to 50 users, (\d+) used[, ]", heads[0])
    assert m and 0 < int(m.group(1)) < 50, heads
