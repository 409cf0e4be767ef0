"""A page whose stream drops reconnects by itself with the id of the last event it had and
catches up on what it missed, in real Chromium, against a server fed by hand (no load run)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pytest_swarm.feed import Feed, LoadFinished, LoadStarted, Progress
from pytest_swarm.stats.result import RunResult, TimelinePoint
from pytest_swarm.stats.snapshot import Snapshot
from pytest_swarm.web.server import DashboardServer
from pytest_swarm.web.service import Dashboard

from .chromium import Page, artifacts, chromium, page

TEST = "t.py::test_shop"


def started() -> LoadStarted:
    return LoadStarted(TEST, "test_shop", 60.0, users=2, settings={"objectives": ["p95 < 1s"]})


def progress(second: int) -> Progress:
    snap = Snapshot()
    snap.entry("GET /").hist.record_values([1000 * (10 + i % 7) for i in range(100 * second)])
    timeline = [TimelinePoint(float(t), 2, 100, 0, 0.012, 0.016) for t in range(1, second + 1)]
    result = RunResult(snap, float(second), users=2, timeline=timeline)
    return Progress(TEST, "test_shop", float(second), 60.0, result)


def finished() -> LoadFinished:
    return LoadFinished(TEST, "test_shop", "failed", progress(5).result, "MISSED p95 < 1s")


__all__ = ["artifacts", "chromium", "page"]

WAIT_MS = 90_000


@pytest.fixture
def dashboard() -> Iterator[tuple[Feed, Dashboard, DashboardServer]]:
    feed = Feed()
    board = Dashboard(feed)
    board.start()
    server = DashboardServer(board, "127.0.0.1", 0)
    server.start()
    try:
        yield feed, board, server
    finally:
        server.stop(30)
        board.close()


def _last_event(page: Page) -> str:
    return str(page.page.evaluate("() => document.body.dataset.lastEvent"))


def test_a_dropped_page_reconnects_and_catches_up(
    dashboard: tuple[Feed, Dashboard, DashboardServer], page: Page
) -> None:
    feed, board, server = dashboard
    feed.publish(started())
    feed.publish(progress(1))
    assert board.drain(30)
    page.open(server.url)
    page.page.wait_for_function(
        f"() => document.body.dataset.lastEvent === '{board.history.last_id}'", timeout=WAIT_MS
    )
    seen = board.history.last_id
    assert server.wait_until(lambda s: len(s.streams) == 1, 30)
    first = server.streams[0]
    assert server.drop_streams() == 1
    assert server.wait_until(lambda s: first not in s.streams, 30)
    for second in range(2, 6):  # published while the page is away
        feed.publish(progress(second))
        assert board.drain(30)
    feed.publish(finished())
    assert board.drain(30)
    page.page.wait_for_function(
        f"() => document.body.dataset.lastEvent === '{board.history.last_id}'", timeout=WAIT_MS
    )
    (again,) = server.streams
    assert again.resumed_from == seen  # the browser's own Last-Event-ID
    assert again.events == board.history.last_id - seen  # exactly the missed events, no state
    assert page.page.locator("#session .verdict.failed").count() == 1
    assert page.console_errors in ([], ["Failed to load resource: net::ERR_EMPTY_RESPONSE"])
