"""Unit tests for pytest_swarm.cluster.scheduler with mock xdist nodes (in the manner of
pytest-xdist's testing/test_dsession.py): ordinary tests load-balanced, load tests sent to every
node after its ordinary share, then shutdown."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from pytest_swarm.cluster.scheduler import SwarmScheduling

Log = list[tuple[str, str, list[int] | None]]  # ("send" | "shutdown" | "expect", node, indices)


@dataclass
class MockGateway:
    id: str


class MockNode:
    def __init__(self, name: str, log: Log | None = None) -> None:
        self.gateway = MockGateway(name)
        self.sent: list[int] = []
        self._shutdown = False
        self.log = log if log is not None else []

    def send_runtest_some(self, indices: Sequence[int]) -> None:
        assert not self._shutdown, "tests sent after shutdown"
        self.sent.extend(indices)
        self.log.append(("send", self.gateway.id, list(indices)))

    def shutdown(self) -> None:
        self._shutdown = True
        self.log.append(("shutdown", self.gateway.id, None))

    @property
    def shutting_down(self) -> bool:
        return self._shutdown

    def __repr__(self) -> str:
        return f"MockNode({self.gateway.id})"


@dataclass
class Setup:
    sched: SwarmScheduling
    nodes: list[MockNode]
    collection: list[str]
    loads: set[str]
    log: Log = field(default_factory=list)

    def load_indices(self) -> list[int]:
        return [i for i, t in enumerate(self.collection) if t in self.loads]

    def ordinary_sent(self, node: MockNode) -> list[int]:
        loads = set(self.load_indices())
        return [i for i in node.sent if i not in loads]

    def finish(self, node: MockNode, index: int) -> None:
        self.sched.mark_test_complete(node, index, 0.01)


def make(n_nodes: int, n_tests: int, load_at: Sequence[int] = (), *, start: bool = True) -> Setup:
    collection = [f"test_mod.py::test_{i}" for i in range(n_tests)]
    loads = {collection[i] for i in load_at}
    log: Log = []

    def expect(worker: str) -> None:
        log.append(("expect", worker, None))

    sched = SwarmScheduling(n_nodes, load_tests=lambda: set(loads), expect=expect)
    nodes = [MockNode(f"gw{i}", log) for i in range(n_nodes)]
    setup = Setup(sched, nodes, collection, loads, log)
    if start:
        for node in nodes:
            sched.add_node(node)
        for node in nodes:
            sched.add_node_collection(node, collection)
        assert sched.collection_is_completed
        sched.schedule()
    return setup


def test_collection_completes_when_every_node_reported() -> None:
    s = make(2, 4, start=False)
    for node in s.nodes:
        s.sched.add_node(node)
    assert not s.sched.collection_is_completed
    s.sched.add_node_collection(s.nodes[0], s.collection)
    assert not s.sched.collection_is_completed
    assert not s.sched.tests_finished
    s.sched.add_node_collection(s.nodes[1], s.collection)
    assert s.sched.collection_is_completed


def test_without_load_tests_it_is_plain_load_balancing() -> None:
    s = make(2, 20)
    expected_calls = [e for e in s.log if e[0] == "expect"]
    assert expected_calls == []
    # Work is spread over both nodes, nobody is shut down while tests remain.
    assert all(node.sent for node in s.nodes)
    assert not any(node.shutting_down for node in s.nodes)
    assert s.sched.has_pending
    # Run everything: each node finishes its oldest test, in order, until nothing is left.
    while any(s.sched.node2pending[n] for n in s.nodes):
        for node in s.nodes:
            pending = s.sched.node2pending[node]
            if pending:
                s.finish(node, pending[0])
    ran = sorted(s.nodes[0].sent + s.nodes[1].sent)
    assert ran == list(range(20))  # each test exactly once
    assert s.sched.tests_finished
    assert not s.sched.has_pending
    # Shutdown is then xdist's business (DSession.triggershutdown), as with LoadScheduling.
    assert all(node.shutting_down for node in s.nodes)


def test_ordinary_tests_are_balanced() -> None:
    s = make(3, 60)
    # Chunks are small; workers come back for more as they finish.
    first = [len(node.sent) for node in s.nodes]
    assert max(first) - min(first) <= max(first) // 2 + 1
    assert all(0 < n < 60 // 3 for n in first)
    # One fast node finishing everything it gets keeps getting work.
    fast = s.nodes[0]
    for _ in range(10):
        fast_pending = list(s.sched.node2pending[fast])
        for index in fast_pending:
            s.finish(fast, index)
    assert len(fast.sent) > len(s.nodes[1].sent)


def test_load_tests_go_to_every_node_after_its_ordinary_share_then_shutdown() -> None:
    s = make(2, 8, load_at=(1, 4, 6))
    loads = s.load_indices()
    assert loads == [1, 4, 6]
    # Drain the ordinary tests.
    for _ in range(20):
        for node in s.nodes:
            pending = [i for i in s.sched.node2pending[node] if i not in loads]
            if pending:
                s.finish(node, pending[0])
    for node in s.nodes:
        assert node.shutting_down
        ordinary = s.ordinary_sent(node)
        # Load tests, in collection order, come after every ordinary test of that node.
        assert node.sent == ordinary + loads
        # Shutdown right after the load tests were sent to that node.
        sends = [i for i, e in enumerate(s.log) if e[:2] == ("send", node.gateway.id)]
        assert s.log[sends[-1] + 1] == ("shutdown", node.gateway.id, None)
    # Every ordinary test ran exactly once.
    assert sorted(s.ordinary_sent(s.nodes[0]) + s.ordinary_sent(s.nodes[1])) == [0, 2, 3, 5, 7]


def test_every_node_is_expected_before_any_load_test_is_sent() -> None:
    s = make(3, 6, load_at=(0, 5))
    loads = set(s.load_indices())
    # Finish ordinary tests until load tests appear.
    for _ in range(20):
        if any(loads & set(n.sent) for n in s.nodes):
            break
        for node in s.nodes:
            pending = s.sched.node2pending[node]
            if pending:
                s.finish(node, pending[0])
    first_load_send = next(
        i for i, e in enumerate(s.log) if e[0] == "send" and loads & set(e[2] or ())
    )
    expected = {e[1] for e in s.log[:first_load_send] if e[0] == "expect"}
    assert expected == {"gw0", "gw1", "gw2"}
    assert all(loads <= set(n.sent) for n in s.nodes)


def test_only_load_tests_are_broadcast_at_once() -> None:
    s = make(3, 2, load_at=(0, 1))
    assert [e[0] for e in s.log[:3]] == ["expect"] * 3
    for node in s.nodes:
        assert node.sent == [0, 1]
        assert node.shutting_down


def test_mark_test_complete_refills() -> None:
    s = make(2, 40)
    node = s.nodes[0]
    before = len(node.sent)
    for index in list(s.sched.node2pending[node]):
        s.finish(node, index)
    assert len(node.sent) > before
    assert s.sched.node2pending[node]  # got fresh work


def test_tests_finished_semantics() -> None:
    s = make(2, 5, load_at=(3,))
    assert not s.sched.tests_finished
    loads = s.load_indices()
    # While ordinary tests remain unsent, or a node holds two or more pending, not finished.
    for _ in range(20):
        for node in s.nodes:
            pending = [i for i in s.sched.node2pending[node] if i not in loads]
            if pending:
                s.finish(node, pending[0])
    # Now each node holds exactly the load test: xdist may consider the run finished.
    for node in s.nodes:
        assert s.sched.node2pending[node] == loads
    assert s.sched.tests_finished
    assert s.sched.has_pending


def test_tests_finished_waits_for_every_node_to_get_the_load_tests() -> None:
    s = make(2, 1, load_at=(0,), start=False)
    a, b = s.nodes
    s.sched.add_node(a)
    s.sched.add_node(b)
    s.sched.add_node_collection(a, s.collection)
    s.sched.add_node_collection(b, s.collection)
    s.sched.schedule()
    assert s.sched.tests_finished
    # A replacement node that joins late has not received the load tests yet.
    c = MockNode("gw2", s.log)
    s.sched.add_node(c)
    assert not s.sched.tests_finished
    s.sched.add_node_collection(c, s.collection)
    s.sched.schedule()
    assert c.sent == [0] and c.shutting_down
    assert ("expect", "gw2", None) in s.log
    assert s.sched.tests_finished


def test_remove_node_requeues_pending_ordinary_tests_but_not_load_tests() -> None:
    s = make(2, 12, load_at=(11,))
    crashed, survivor = s.nodes
    pending = list(s.sched.node2pending[crashed])
    assert len(pending) >= 2
    running, queued = pending[0], pending[1:]
    assert s.sched.remove_node(crashed) == s.collection[running]
    assert crashed not in s.sched.nodes
    # The tests it had not started are handed out again (to the survivor, or queued).
    handed = set(survivor.sent) | set(s.sched.pending)
    assert set(queued) - {11} <= handed
    assert running not in handed


def test_remove_node_never_requeues_a_load_test() -> None:
    s = make(2, 3, load_at=(1, 2))
    crashed, survivor = s.nodes
    loads = s.load_indices()
    # Run the ordinary test 0 on whoever has it; then every node holds both load tests.
    for node in s.nodes:
        if 0 in s.sched.node2pending[node]:
            s.finish(node, 0)
    assert s.sched.node2pending[crashed] == loads
    sent_before = list(survivor.sent)
    # crashed dies while running load test 1; the survivor runs it too and reports it.
    assert s.sched.remove_node(crashed) is None
    assert survivor.sent == sent_before
    assert s.sched.pending == []
    assert 1 in s.sched.node2pending[survivor]
    # The survivor dies too while running load test 1: now it was the last one.
    assert s.sched.remove_node(survivor) == s.collection[1]
    assert s.sched.pending == []


def test_remove_node_of_a_finished_node() -> None:
    s = make(2, 2)
    node = s.nodes[0]
    for index in list(s.sched.node2pending[node]):
        s.finish(node, index)
    assert s.sched.remove_node(node) is None


def test_remove_node_running_its_last_ordinary_test_returns_it() -> None:
    s = make(2, 4, load_at=(3,))
    node = s.nodes[0]
    first = s.sched.node2pending[node][0]
    assert first != 3
    assert s.sched.remove_node(node) == s.collection[first]


def test_different_collections_schedule_nothing() -> None:
    logged: list[str] = []
    collection = ["a.py::test_1", "a.py::test_2"]
    sched = SwarmScheduling(
        2, load_tests=set, expect=lambda w: None, log=lambda *a: logged.append(" ".join(a))
    )
    a, b = MockNode("gw0"), MockNode("gw1")
    sched.add_node(a)
    sched.add_node(b)
    sched.add_node_collection(a, collection)
    sched.add_node_collection(b, [*collection, "a.py::test_3"])
    sched.schedule()
    assert a.sent == [] and b.sent == []
    assert not a.shutting_down and not b.shutting_down
    assert not sched.tests_finished
    assert any("Different" in line for line in logged)


def test_replacement_node_with_a_different_collection_is_ignored() -> None:
    s = make(1, 3)
    late = MockNode("gw1")
    s.sched.add_node(late)
    s.sched.add_node_collection(late, ["other.py::test_x"])
    assert late not in s.sched.node2collection


def test_mark_test_pending_puts_the_test_first() -> None:
    s = make(1, 30)
    node = s.nodes[0]
    s.finish(node, node.sent[0])
    s.sched.mark_test_pending(s.collection[0])
    assert s.sched.pending[0] == 0 or 0 in s.sched.node2pending[node][1:]


def test_remove_pending_tests_from_node_is_not_supported() -> None:
    s = make(1, 2)
    with pytest.raises(NotImplementedError):
        s.sched.remove_pending_tests_from_node(s.nodes[0], [0])


def test_replacement_node_picks_up_requeued_tests_then_the_load_tests() -> None:
    # The survivor already got the load tests and its shutdown, so the crashed node's queue
    # waits for the replacement xdist starts (DSession._clone_node).
    s = make(2, 6, load_at=(5,))
    crashed, survivor = s.nodes
    for _ in range(10):  # the survivor works through everything it is given
        for index in [i for i in s.sched.node2pending[survivor] if i != 5]:
            s.finish(survivor, index)
    assert survivor.shutting_down
    queued = [i for i in s.sched.node2pending[crashed] if i != 5][1:]
    assert queued
    s.sched.remove_node(crashed)
    assert s.sched.pending == queued
    assert not s.sched.tests_finished
    replacement = MockNode("gw2", s.log)
    s.sched.add_node(replacement)
    s.sched.add_node_collection(replacement, s.collection)
    s.sched.schedule()
    assert replacement.sent[: len(queued)] == queued
    for index in queued:
        s.finish(replacement, index)
    assert replacement.sent == [*queued, 5]
    assert replacement.shutting_down
    assert ("expect", "gw2", None) in s.log
