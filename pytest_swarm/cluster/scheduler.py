"""The xdist scheduler: ordinary tests load-balanced, load tests broadcast to every worker.

Returned by ``pytest_xdist_make_scheduler`` for ``--dist load`` (what ``-n N`` implies). The
controller never collects, so it learns which node ids are load tests from the workers' hello
(sent, and acknowledged, before xdist's own collection message).

Order of work on each worker: its share of the ordinary tests (handed out in small chunks as
workers finish, like xdist's ``LoadScheduling``), then, once no ordinary test is left to hand
out, *all* load tests in collection order followed by shutdown. The same order everywhere plus
the start barrier means workers run each load test together. xdist starts item i only once it
has item i+1 or a shutdown, which the trailing shutdown guarantees.

A crashed worker's pending ordinary tests are re-queued; its share of a load test is never
re-run elsewhere (the load test ends as an error instead, reported by another worker).

Only imported when pytest-xdist is active.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol


class NodeLike(Protocol):
    """The slice of xdist's ``WorkerController`` the scheduler uses."""

    gateway: Any

    @property
    def shutting_down(self) -> bool: ...  # a read-only property on xdist's WorkerController

    def send_runtest_some(self, indices: Sequence[int]) -> None: ...

    def shutdown(self) -> None: ...


def node_name(node: NodeLike) -> str:
    return str(node.gateway.id)


class SwarmScheduling:
    """xdist ``Scheduling`` protocol implementation (see ``xdist/scheduler/protocol.py``)."""

    def __init__(
        self,
        numnodes: int,
        load_tests: Callable[[], set[str]],
        expect: Callable[[str], None],
        log: Callable[..., None] | None = None,
    ) -> None:
        self.numnodes = numnodes
        self._load_tests = load_tests
        self._expect = expect
        self.log = log or (lambda *args: None)
        self.node2collection: dict[NodeLike, list[str]] = {}
        self.node2pending: dict[NodeLike, list[int]] = {}
        self.pending: list[int] = []  # ordinary tests not yet handed out
        self.load_indices: list[int] = []
        self.collection: list[str] | None = None
        self.got_load: set[NodeLike] = set()

    # -- protocol -------------------------------------------------------------------------
    @property
    def nodes(self) -> list[NodeLike]:
        return list(self.node2pending)

    @property
    def collection_is_completed(self) -> bool:
        return len(self.node2collection) >= self.numnodes

    @property
    def tests_finished(self) -> bool:
        if not self.collection_is_completed or self.collection is None or self.pending:
            return False
        if self.load_indices and any(n not in self.got_load for n in self.node2pending):
            return False
        return all(len(p) < 2 for p in self.node2pending.values())

    @property
    def has_pending(self) -> bool:
        return bool(self.pending) or any(self.node2pending.values())

    def add_node(self, node: NodeLike) -> None:
        assert node not in self.node2pending
        self.node2pending[node] = []

    def add_node_collection(self, node: NodeLike, collection: Sequence[str]) -> None:
        assert node in self.node2pending
        if self.collection is not None and list(collection) != self.collection:
            self.log(f"worker {node_name(node)} collected different tests; ignored")
            return
        self.node2collection[node] = list(collection)

    def mark_test_complete(self, node: NodeLike, item_index: int, duration: float = 0) -> None:
        self.node2pending[node].remove(item_index)
        self._refill(node)

    def mark_test_pending(self, item: str) -> None:
        assert self.collection is not None
        self.pending.insert(0, self.collection.index(item))
        for node in self.nodes:
            self._refill(node)

    def remove_pending_tests_from_node(self, node: NodeLike, indices: Sequence[int]) -> None:
        raise NotImplementedError()

    def remove_node(self, node: NodeLike) -> str | None:
        """A worker left (finished or crashed). Returns the test it was running, if any, so
        xdist reports the crash — except for a load test this worker does not report: the
        reporting worker's result already names the lost worker."""
        pending = self.node2pending.pop(node)
        self.got_load.discard(node)
        if not pending or self.collection is None:
            return None
        running = pending[0]
        loads = set(self.load_indices)
        # Ordinary tests it had not started go back to the queue; load test shares never do.
        self.pending.extend(i for i in pending[1:] if i not in loads)
        for other in self.nodes:
            self._refill(other)
        nodeid = self.collection[running]
        if running in loads and any(n in self.got_load for n in self.node2pending):
            # Another worker still runs this load test and will report it, naming this one
            # as lost: a crash report here would count the test twice.
            return None
        return nodeid

    def schedule(self) -> None:
        assert self.collection_is_completed
        if self.collection is not None:
            for node in self.nodes:
                self._refill(node)
            return
        collections = list(self.node2collection.values())
        if any(c != collections[0] for c in collections[1:]):
            self.log("**Different tests collected, aborting run**")
            return
        self.collection = collections[0]
        load_ids = self._load_tests()
        self.load_indices = [i for i, t in enumerate(self.collection) if t in load_ids]
        loads = set(self.load_indices)
        self.pending = [i for i in range(len(self.collection)) if i not in loads]
        if not self.collection:
            return
        nodes = self.nodes
        # Small first chunks keep the balance good; workers come back for more.
        chunk = max(1, min(len(self.pending) // (4 * len(nodes)), 50)) if nodes else 1
        for node in nodes:
            self._send(node, self.pending[:chunk])
            del self.pending[:chunk]
        for node in nodes:
            self._refill(node)

    # -- internals ------------------------------------------------------------------------
    def _refill(self, node: NodeLike) -> None:
        if node.shutting_down or node in self.got_load or node not in self.node2pending:
            return
        pending = self.node2pending[node]
        if self.pending:
            if len(pending) < 2:
                chunk = max(1, min(len(self.pending) // (4 * max(len(self.nodes), 1)), 50))
                self._send(node, self.pending[:chunk])
                del self.pending[:chunk]
            return
        self._hand_out_load_tests()

    def _hand_out_load_tests(self) -> None:
        """Nothing ordinary is left to hand out: every worker gets the load tests, in order,
        then shutdown. All are registered with the barrier before any is sent, so no worker
        can be released alone."""
        nodes = [n for n in self.nodes if n not in self.got_load and not n.shutting_down]
        if self.load_indices:
            for node in nodes:
                self._expect(node_name(node))
        for node in nodes:
            self.got_load.add(node)
            self._send(node, list(self.load_indices))
            node.shutdown()

    def _send(self, node: NodeLike, indices: list[int]) -> None:
        if indices:
            self.node2pending[node].extend(indices)
            node.send_runtest_some(indices)
