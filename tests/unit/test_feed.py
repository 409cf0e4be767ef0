"""Unit tests for pytest_swarm.feed: ordered delivery, a broken subscriber contained, stops; the
one-process publisher (LocalLink) and the abort rule (pytest_swarm.abort) on it."""

from __future__ import annotations

import doctest
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

import pytest_swarm.feed as feed_module
from pytest_swarm.abort import AbortRule, AbortWatch, rule_settings, rules_from_settings
from pytest_swarm.engine.link import LocalLink
from pytest_swarm.engine.runner import Tick
from pytest_swarm.feed import Feed, LoadFinished, LoadStarted, Progress, SessionFinished
from pytest_swarm.objectives import parse_objective
from pytest_swarm.spec import LoadSpec, parse_wait
from pytest_swarm.stats.result import RunResult
from pytest_swarm.stats.snapshot import Snapshot


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


# -- the one-process publisher (engine/link.py LocalLink) --------------------------------------


def _spec() -> LoadSpec:
    return LoadSpec(2, 10.0, 30.0, parse_wait(None), 5.0)


def _tick(seq: int, final: bool = False, requests: int = 1) -> Tick:
    delta = Snapshot(users=2)
    delta.entry("GET /").hist.record_values([1000] * requests)
    return Tick(seq, delta, final, cpu=12.5, lag=0.003)


def test_local_link_publishes_started_progress() -> None:
    # The terminal's live line is a subscriber of the feed too (report/live.py): the link
    # has no live callback of its own.
    feed = Feed()
    seen: list[object] = []
    feed.subscribe(seen.append)
    link = LocalLink(
        feed=feed,
        key="t.py::test_a",
        settings={"objectives": ["p95 < 1s"]},
    )
    link.begin("test_a", _spec())
    link.publish(_tick(0))
    link.publish(_tick(1, requests=3))
    link.publish(_tick(2, final=True))
    started, first, second = seen
    assert isinstance(started, LoadStarted)
    assert started.test == "t.py::test_a" and started.name == "test_a"
    assert started.settings == {"load": _spec().describe(), "objectives": ["p95 < 1s"]}
    assert isinstance(first, Progress) and isinstance(second, Progress)
    assert first.workers == {"main": {"cpu": 12.5, "lag": 0.003, "users": 2.0}}
    assert (first.result.total.count, second.result.total.count) == (1, 4)
    assert first.result is not second.result
    assert link.finish().total.count == 5  # the final tick had one more


def test_a_stop_requested_from_another_thread_runs_in_the_gevent_loop() -> None:
    import gevent
    from gevent.event import Event as GeventEvent

    feed = Feed()
    link = LocalLink(feed=feed, key="t.py::test_a")
    link.begin("test_a", _spec())
    stopped = GeventEvent()  # only the loop's thread may set it
    reasons: list[tuple[str, bool]] = []

    def stop(reason: str) -> None:
        reasons.append((reason, threading.current_thread() is threading.main_thread()))
        stopped.set()

    link.watch(stop)
    assert feed.running == ["t.py::test_a"]
    other = threading.Thread(target=feed.request_stop, args=("t.py::test_a", "dashboard"))
    other.start()
    assert stopped.wait(10)  # the loop runs the hop while this greenlet waits
    other.join(10)
    gevent.sleep(0)
    assert reasons == [("dashboard", True)] and link.stopped == "dashboard"
    link.publish(_tick(0, final=True))
    assert feed.running == []  # the users are gone: nothing left to stop


# -- the abort rule -----------------------------------------------------------------------------


def _progress(elapsed: float, failures: int, requests: int = 10) -> Progress:
    snap = Snapshot()
    if requests:
        entry = snap.entry("GET /")
        entry.hist.record_values([1000] * requests)
        entry.failures = failures
    return Progress("t::x", "x", elapsed, 60.0, RunResult(snap, elapsed))


def _watched(*objectives: str, grace: float = 5.0) -> tuple[Feed, list[str]]:
    feed, stops = Feed(), list[str]()
    feed.subscribe(AbortWatch(feed))
    rule = AbortRule(tuple(parse_objective(o) for o in objectives), grace)
    feed.publish(LoadStarted("t::x", "x", 60.0, settings={"abort": rule_settings([rule])}))
    feed.register_stop("t::x", stops.append)
    return feed, stops


def test_abort_waits_for_the_grace_then_stops_once_naming_time_and_figure() -> None:
    feed, stops = _watched("error_rate < 5%", grace=5.0)
    feed.publish(_progress(4.0, failures=10))  # missed, but within the grace
    assert stops == []
    feed.publish(_progress(5.0, failures=1))  # 10 %
    feed.publish(_progress(6.0, failures=1))  # already stopped: not again
    assert stops == [
        "aborted 5.0s into the load: error_rate < 5% missed, measured 10% (limit < 5%)"
    ]


def test_abort_never_fires_on_a_met_objective_or_on_nothing_measured() -> None:
    feed, stops = _watched("p95 < 1s", "error_rate < 50%", grace=0.5)
    feed.publish(_progress(1.0, failures=0, requests=0))  # no sample yet: not a clear miss
    feed.publish(_progress(2.0, failures=1))
    feed.publish(LoadFinished("t::x", "x", "passed", None))
    feed.publish(_progress(3.0, failures=10))  # after the end: the rule is gone
    assert stops == []


def test_unreadable_rules_are_kept_as_errors_not_raised() -> None:
    feed = Feed()
    watch = AbortWatch(feed)
    feed.subscribe(watch)
    feed.publish(LoadStarted("t::x", "x", 1.0, settings={"abort": [{"objectives": ["p95 <"]}]}))
    assert watch.errors and feed.errors == []


@given(
    st.lists(
        st.sampled_from(["p95 < 300ms", "error_rate <= 1%", "dropped = 0", "late < 10"]),
        min_size=1,
        max_size=5,
    ),
    st.floats(min_value=0, max_value=1e6, allow_nan=False),
)
def test_rules_survive_their_plain_data_form(texts: list[str], grace: float) -> None:
    rule = AbortRule(tuple(parse_objective(t) for t in texts), grace)
    assert rules_from_settings({"abort": rule_settings([rule])}) == [rule]


@pytest.mark.parametrize(
    "raw",
    [
        "not a list",
        [{"objectives": [], "grace": 1.0}],
        [{"objectives": ["p95 < 1s"], "grace": float("nan")}],
        [{"objectives": ["p95 < 1s"], "grace": True}],
        [{"objectives": ["x" * 2000], "grace": 1.0}],
        [{"objectives": ["p95 < 1s"], "grace": 1.0}] * 21,
    ],
)
def test_hostile_rules_are_refused(raw: object) -> None:
    with pytest.raises(ValueError, match="abort rule"):
        rules_from_settings({"abort": raw})
