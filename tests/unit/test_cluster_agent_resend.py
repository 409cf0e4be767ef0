"""A worker's Agent against a real Coordinator (ROUTER thread, ipc socket) in one process, with
a fault-injecting shim that drops chosen frames on either side (issue 8, section 1; RELIABILITY
rows 9, 10 and 32): every request of the protocol (hello, ready, stats, final, result?, claim)
and every answer (welcome, go, ack, result, reporter) may be lost once, and the load test still
ends with every request counted and no problem; a delta lost for good is named with its count.

The Agent runs on gevent's hub in this (unpatched) test process; the Coordinator in its own
thread. Every wait is bounded by a ``gevent.Timeout``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import gevent
import msgpack
import pytest
from merge_implementations import merge_implementation  # noqa: F401  (autouse)

from pytest_swarm.cluster import agent as agent_module
from pytest_swarm.cluster.agent import Agent, AgentLink, LinkError
from pytest_swarm.cluster.controller_link import Coordinator
from pytest_swarm.cluster.limits import MAX_FRAME
from pytest_swarm.cluster.wire import decode
from pytest_swarm.engine.runner import Tick
from pytest_swarm.spec import LoadSpec
from pytest_swarm.stats.snapshot import Snapshot

GUARD = 60.0  # seconds: a hung protocol fails the test instead of hanging it
TEST = "t.py::test_load"


class Dropper:
    """Drops the first ``n`` frames of each named kind passing through ``send``."""

    def __init__(self, send: Callable[[bytes], Any], drop: dict[str, int]) -> None:
        self.send, self.left = send, dict(drop)
        self.dropped: Counter[str] = Counter()
        self.passed: Counter[str] = Counter()

    def __call__(self, frame: bytes) -> Any:
        kind = decode(frame).kind
        if self.left.get(kind, 0) > 0:
            self.left[kind] -= 1
            self.dropped[kind] += 1
            return None
        self.passed[kind] += 1
        return self.send(frame)


@pytest.fixture
def coordinator() -> Iterator[Coordinator]:
    made = Coordinator(interval=0.2, heartbeat_timeout=5.0)
    try:
        yield made
    finally:
        made.close()


def make_agent(coordinator: Coordinator, drop: dict[str, int]) -> tuple[Agent, Dropper]:
    coordinator.expect("gw0")
    agent = Agent(coordinator.endpoint.to_dict(), "gw0", heartbeat=0.2, resend=0.2)
    dropper = Dropper(agent.transmit, drop)
    agent.transmit = dropper
    return agent, dropper


def spec(users: int) -> LoadSpec:
    return LoadSpec(users=users, rate=10.0, duration=1.0, wait=lambda: 0.0, stop_timeout=1.0)


def delta(values: list[int]) -> Snapshot:
    snap = Snapshot(users=1, iterations=len(values))
    snap.entry("GET /").hist.record_values(values)
    return snap


def run_test(agent: Agent, ticks: int) -> Any:
    """One load test of ``ticks`` deltas of 3 requests each, then the final one of 1."""
    link = AgentLink(agent, TEST)
    agent.hello([TEST])
    share = link.begin(TEST, spec(2))
    assert share.indices == [0, 1]
    for seq in range(ticks):
        link.publish(Tick(seq, delta([1000, 2000, 3000]), False, 10.0, 0.001))
    link.publish(Tick(ticks, delta([4000]), True, 10.0, 0.001))
    result = link.finish()
    return result, agent.claim(TEST)


@pytest.mark.parametrize(
    "worker_drops",
    [{"hello": 1}, {"ready": 1}, {"stats": 2}, {"final": 1}, {"result?": 1}, {"claim": 1}],
    ids=lambda d: "lost " + next(iter(d)),
)
def test_a_request_lost_once_is_resent(
    coordinator: Coordinator, worker_drops: dict[str, int]
) -> None:
    agent, dropper = make_agent(coordinator, worker_drops)
    try:
        with gevent.Timeout(GUARD):
            result, reporter = run_test(agent, ticks=3)
    finally:
        agent.close()
    assert sum(dropper.dropped.values()) == sum(worker_drops.values())
    assert result.snapshot.total().hist.total == 3 * 3 + 1  # served = reported
    assert result.problems == []
    assert reporter is True


@pytest.mark.parametrize(
    "controller_drops",
    [{"welcome": 1}, {"go": 1}, {"ack": 3}, {"result": 1}, {"reporter": 1}],
    ids=lambda d: "lost " + next(iter(d)),
)
def test_an_answer_lost_once_is_asked_for_again(
    coordinator: Coordinator, controller_drops: dict[str, int]
) -> None:
    kind, n = next(iter(controller_drops.items()))
    real = coordinator._send
    left = {"n": n}

    def send(out: list[tuple[str, bytes]]) -> None:
        kept = []
        for worker, frame in out:
            if decode(frame).kind == kind and left["n"] > 0:
                left["n"] -= 1
                continue
            kept.append((worker, frame))
        real(kept)

    coordinator._send = send  # type: ignore[method-assign]
    agent, _ = make_agent(coordinator, {})
    try:
        with gevent.Timeout(GUARD):
            result, reporter = run_test(agent, ticks=3)
    finally:
        agent.close()
    assert left["n"] == 0  # the answer really was dropped
    assert result.snapshot.total().hist.total == 10
    assert result.problems == []
    assert reporter is True


def test_a_delta_never_acknowledged_is_named_with_its_request_count(
    coordinator: Coordinator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(agent_module, "FINAL_DEADLINE", 1.0)
    agent, dropper = make_agent(coordinator, {"stats": 10**6})  # every stats delta lost
    try:
        with gevent.Timeout(GUARD):
            result, _ = run_test(agent, ticks=2)
    finally:
        agent.close()
    assert dropper.dropped["stats"] >= 2
    assert result.snapshot.total().hist.total == 1  # only the final delta arrived
    assert any("worker gw0: 6 request(s) lost" in p for p in result.problems), result.problems
    assert any("missing deltas 0, 1" in p for p in result.problems), result.problems


def test_a_final_delta_never_acknowledged_is_an_error_naming_it(
    coordinator: Coordinator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(agent_module, "FINAL_DEADLINE", 1.0)
    agent, _ = make_agent(coordinator, {"final": 10**6})
    link = AgentLink(agent, TEST)
    try:
        with gevent.Timeout(GUARD):
            agent.hello([TEST])
            link.begin(TEST, spec(1))
            with pytest.raises(LinkError, match=r"no 'ack'.*final statistics of .* were lost"):
                link.publish(Tick(0, delta([1000]), True, 1.0, 0.0))
    finally:
        agent.close()


# -- RELIABILITY row 20: clocks differ between hosts ----------------------------------------


def test_a_skewed_wall_clock_does_not_enter_durations_or_the_timeline(
    coordinator: Coordinator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker (here: the whole process) whose wall clock is days off and jumps an hour at
    every reading gives the same figures: durations come from monotonic clocks, the timeline
    from the controller's own monotonic clock; no wall-clock time crosses the wire."""
    import time as time_module

    readings = iter(range(10**6))
    monkeypatch.setattr(time_module, "time", lambda: 1e9 - 3 * 86400 + 3600 * next(readings))
    agent, _ = make_agent(coordinator, {})
    try:
        with gevent.Timeout(GUARD):
            result, _ = run_test(agent, ticks=3)
    finally:
        agent.close()
    assert result.snapshot.total().hist.total == 10
    assert 0 <= result.duration < GUARD
    assert result.timeline and all(0 <= p.t < GUARD for p in result.timeline)
    assert sum(p.requests for p in result.timeline) == 10
    # No field of any message carries a timestamp a peer's clock could skew.
    from pytest_swarm.cluster.wire import SCHEMA

    fields = {f for body in SCHEMA.values() for f in body}
    assert not fields & {"time", "timestamp", "ts", "now", "started", "sent_at"}


# -- RELIABILITY rows 3 and 33: liveness judged by the side that can see it ------------------


def test_a_starved_worker_does_not_blame_a_live_controller(coordinator: Coordinator) -> None:
    """The worker's loop is blocked (a CPU-bound body, or SIGSTOP) for longer than the
    heartbeat timeout while the controller keeps answering: when the loop runs again, the
    worker must not conclude "controller silent", and it reports the lag it measured."""
    import time as time_module

    coordinator.expect("gw0")
    agent = Agent(coordinator.endpoint.to_dict(), "gw0", heartbeat=0.2, heartbeat_timeout=1.0)
    stops: list[str] = []
    try:
        with gevent.Timeout(GUARD):
            agent.hello([TEST])
            agent.on_stop(TEST, stops.append)
            time_module.sleep(2.5)  # the fault: no greenlet runs for 2.5 s (> the 1 s timeout)
            gevent.sleep(1.0)  # the loop runs again for a few heartbeats
            assert not agent.controller_silent()
            assert stops == []
            deadline = time_module.monotonic() + GUARD
            while coordinator.control.workers["gw0"].lag < 1.0:
                assert time_module.monotonic() < deadline
                gevent.sleep(0.05)
    finally:
        agent.close()


def test_a_silent_controller_is_still_detected_while_the_worker_listens(
    coordinator: Coordinator,
) -> None:
    coordinator.expect("gw0")
    agent = Agent(coordinator.endpoint.to_dict(), "gw0", heartbeat=0.2, heartbeat_timeout=1.0)
    stops: list[str] = []
    try:
        with gevent.Timeout(GUARD):
            agent.hello([TEST])
            agent.on_stop(TEST, stops.append)
            coordinator.close()  # the controller is gone (kill -9)
            while not stops:
                gevent.sleep(0.05)
            assert "silent" in stops[0] and "was running and listening" in stops[0]
            with pytest.raises(LinkError, match="stopped answering"):
                agent.claim(TEST)
    finally:
        agent.close()


def _huge_delta(names: int) -> Snapshot:
    """A legitimate delta beyond one frame: long names, each with a wide latency spread."""
    values = [int(1.004**k) + k for k in range(0, 5500, 2)]  # 1 us .. ~1 h, ~2,750 buckets
    snap = Snapshot(users=2, iterations=names)
    for i in range(names):
        snap.entry(f"GET /name/{i:04d}/" + "x" * 150).hist.record_values(values)
    return snap


def test_a_delta_beyond_one_frame_is_split_and_nothing_is_lost(
    coordinator: Coordinator,
) -> None:
    """Issue 8: encoding a worker delta over 8 MiB raised FrameTooLarge inside publish (the
    runner's tick), killing the load test; it goes as several deltas, each acknowledged."""
    huge = _huge_delta(300)
    assert len(msgpack.packb(huge.to_wire())) > MAX_FRAME
    # The production resend interval: a 6 MB part costs the controller ~0.2 s to check, so the
    # tests' 0.2 s resends would only measure a resend storm.
    coordinator.expect("gw0")
    agent = Agent(coordinator.endpoint.to_dict(), "gw0", heartbeat=0.2)
    dropper = Dropper(agent.transmit, {})
    agent.transmit = dropper
    try:
        with gevent.Timeout(GUARD):
            link = AgentLink(agent, TEST)
            agent.hello([TEST])
            link.begin(TEST, spec(2))
            link.publish(Tick(0, huge, False, 10.0, 0.001))
            link.publish(Tick(1, delta([4000]), True, 10.0, 0.001))
            link.finish()
    finally:
        agent.close()
    assert dropper.passed["stats"] >= 2  # split
    assert link.lost_requests == 0
    run = coordinator.control.runs[TEST]
    assert run.aggregator is not None
    assert (
        run.aggregator.requests == 300 * huge.entries["GET /name/0000/" + "x" * 150].hist.total + 1
    )
    assert run.aggregator.totals.iterations == 300 + 1
    assert not run.aggregator.gaps()
