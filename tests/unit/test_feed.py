"""Unit tests for pytest_swarm.feed: ordered delivery, a broken subscriber contained, stops."""

from __future__ import annotations

import doctest
import threading

import pytest_swarm.feed as feed_module
from pytest_swarm.feed import Feed, LoadStarted, SessionFinished


def test_module_doctests() -> None:
    assert doctest.testmod(feed_module).failed == 0


def test_a_raising_subscriber_is_dropped_and_the_others_still_served() -> None:
    feed = Feed()
    seen: list[object] = []

    def broken(event: object) -> None:
        raise RuntimeError("view crashed")

    feed.subscribe(broken)
    feed.subscribe(seen.append)
    feed.publish(LoadStarted("a", "a", 1.0))
    feed.publish(SessionFinished())
    assert len(seen) == 2
    assert len(feed.errors) == 1 and "view crashed" in feed.errors[0]


def test_stop_from_another_thread_reaches_the_registered_stopper() -> None:
    feed = Feed()
    stopped = threading.Event()
    reasons: list[str] = []

    def stop(reason: str) -> None:
        reasons.append(reason)
        stopped.set()

    feed.register_stop("t::x", stop)
    assert feed.running == ["t::x"]
    worker = threading.Thread(target=feed.request_stop, args=("t::x", "dashboard"))
    worker.start()
    assert stopped.wait(10)
    worker.join(10)
    feed.unregister_stop("t::x")
    assert reasons == ["dashboard"] and feed.running == []
    assert feed.request_stop("t::x", "late") is False
