"""Unit tests for pytest_swarm.cluster.controller_state: the controller's decisions, driven by plain
method calls with a fake clock (no socket, no thread)."""

from __future__ import annotations

from typing import Any

import pytest
from merge_implementations import merge_implementation  # noqa: F401  (autouse)

from pytest_swarm.cluster.controller_state import Control, Outbox, rank
from pytest_swarm.cluster.wire import Message, decode, encode
from pytest_swarm.feed import LoadStarted, Progress
from pytest_swarm.stats.snapshot import Snapshot

TEST = "t.py::test_load"


def msg(kind: str, /, **body: Any) -> Message:
    """A message as the coordinator hands it over: encoded and decoded."""
    return decode(encode(kind, **body))


def sent(out: Outbox) -> list[tuple[str, Message]]:
    return [(worker, decode(frame)) for worker, frame in out]


def kinds(out: Outbox) -> list[tuple[str, str]]:
    return [(worker, m.kind) for worker, m in sent(out)]


def delta(values: list[int] | None = None, failures: int = 0, users: int = 1) -> dict[str, Any]:
    snap = Snapshot(users=users, iterations=len(values or []))
    if values:
        entry = snap.entry("GET /")
        entry.hist.record_values(values)
        entry.failures = failures
    return snap.to_wire()


class Swarm:
    """A Control plus a fake clock and one-liners for each worker message."""

    def __init__(self, *workers: str, heartbeat_timeout: float = 5.0) -> None:
        self.now = 0.0
        self.control = Control(interval=1.0, heartbeat_timeout=heartbeat_timeout)
        self.workers = workers
        for worker in workers:
            out = self.hello(worker)
            assert kinds(out) == [(worker, "welcome")]
        for worker in workers:
            self.control.expect(worker)

    def send(self, worker: str, kind: str, /, **body: Any) -> Outbox:
        return self.control.on_message(worker, msg(kind, **body), self.now)

    def hello(self, worker: str, load_tests: list[str] | None = None) -> Outbox:
        tests = [TEST] if load_tests is None else load_tests
        return self.send(worker, "hello", worker=worker, version="0.1.0", load_tests=tests)

    def ready(self, worker: str, users: int = 4, test: str = TEST) -> Outbox:
        return self.send(worker, "ready", test=test, users=users, duration=2.0, settings={})

    def stats(self, worker: str, seq: int, d: dict[str, Any] | None = None, **kw: Any) -> Outbox:
        body = {"cpu": 10.0, "lag": 0.001, **kw}
        return self.send(
            worker, "stats", test=TEST, seq=seq, delta=delta() if d is None else d, **body
        )

    def final(self, worker: str, seq: int, d: dict[str, Any] | None = None, **kw: Any) -> Outbox:
        body = {"cpu": 10.0, "lag": 0.001, "lost": 0, **kw}
        return self.send(
            worker, "final", test=TEST, seq=seq, delta=delta() if d is None else d, **body
        )

    def ask(self, worker: str, test: str = TEST) -> Outbox:
        return self.send(worker, "result?", test=test)

    def release(self) -> None:
        out: Outbox = []
        for worker in self.workers:
            out += self.ready(worker)
        assert sorted(w for w, k in kinds(out) if k == "go") == sorted(self.workers)


def result_of(out: Outbox, worker: str) -> dict[str, Any]:
    found = [m.body for w, m in sent(out) if w == worker and m.kind == "result"]
    assert len(found) == 1, sent(out)
    return found[0]


# -- handshake ----------------------------------------------------------------------------------


def test_hello_gets_welcome_with_the_interval() -> None:
    control = Control(interval=0.5)
    out = control.on_message(
        "gw0", msg("hello", worker="gw0", version="0.1.0", load_tests=["a", "b"]), 0.0
    )
    [(worker, welcome)] = sent(out)
    assert worker == "gw0"
    assert welcome == Message("welcome", {"interval": 0.5})
    assert control.has_hello("gw0")
    assert control.load_tests() == {"a", "b"}
    assert control.rejected == 0


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        ("ready", {"test": TEST, "users": 1, "duration": 1.0, "settings": {}}),
        ("claim", {"test": TEST}),
        ("ping", {"lag": 0.0}),
        ("result?", {"test": TEST}),
        ("stats", {"test": TEST, "seq": 0, "delta": delta(), "cpu": 0.0, "lag": 0.0}),
    ],
)
def test_messages_before_hello_are_rejected(kind: str, body: dict[str, Any]) -> None:
    control = Control()
    control.expect("gw0")
    assert control.on_message("gw0", msg(kind, **body), 0.0) == []
    assert control.rejected == 1
    assert not control.has_hello("gw0")
    assert control.runs == {} and control.claims == {}


def test_hello_with_non_string_load_tests_is_refused() -> None:
    control = Control()
    out = control.on_message("gw0", msg("hello", worker="gw0", version="0", load_tests=[1]), 0.0)
    [(worker, refuse)] = sent(out)
    assert (worker, refuse.kind) == ("gw0", "refuse")
    assert "load_tests" in refuse.body["reason"]
    assert control.rejected == 1
    assert not control.has_hello("gw0")


def test_rank_orders_numerically() -> None:
    assert sorted(["gw10", "gw2", "gw1", "gw0"], key=rank) == ["gw0", "gw1", "gw2", "gw10"]


# -- start barrier ------------------------------------------------------------------------------


def test_barrier_waits_for_every_expected_worker() -> None:
    swarm = Swarm("gw0", "gw1")
    assert swarm.ready("gw0") == []
    out = sent(swarm.ready("gw1"))
    assert sorted(out, key=lambda wm: wm[0]) == [
        ("gw0", Message("go", {"test": TEST, "index": 0, "workers": 2})),
        ("gw1", Message("go", {"test": TEST, "index": 1, "workers": 2})),
    ]


def test_indices_follow_rank_not_arrival() -> None:
    swarm = Swarm("gw10", "gw2")
    swarm.ready("gw10")
    out = {w: m.body["index"] for w, m in sent(swarm.ready("gw2"))}
    assert out == {"gw2": 0, "gw10": 1}


def test_abort_releases_the_others_alone_and_names_the_aborted_worker() -> None:
    swarm = Swarm("gw0", "gw1")
    assert swarm.send("gw0", "abort", test=TEST, reason="setup exploded") == []
    out = sent(swarm.ready("gw1"))
    assert out == [("gw1", Message("go", {"test": TEST, "index": 0, "workers": 1}))]
    # The aborted worker asks for the result like everyone; it comes once gw1 is done.
    assert swarm.ask("gw0") == []
    swarm.now = 2.0
    out2 = swarm.final("gw1", 0, delta([1000]))
    assert ("gw1", "ack") in kinds(out2)
    body = result_of(out2, "gw0")
    assert body["workers"] == 1
    assert any("gw0" in p and "setup exploded" in p for p in body["problems"])


def test_abort_after_ready_of_the_others_releases_them() -> None:
    swarm = Swarm("gw0", "gw1", "gw2")
    swarm.ready("gw0")
    swarm.ready("gw2")
    out = sent(swarm.send("gw1", "abort", test=TEST, reason="no"))
    assert {w: m.body["index"] for w, m in out} == {"gw0": 0, "gw2": 1}
    assert {m.body["workers"] for _, m in out} == {2}


def test_every_worker_aborting_yields_an_immediate_result() -> None:
    swarm = Swarm("gw0", "gw1")
    swarm.send("gw0", "abort", test=TEST, reason="a")
    swarm.send("gw1", "abort", test=TEST, reason="b")
    body = result_of(swarm.ask("gw1"), "gw1")
    assert body["workers"] == 0
    assert len(body["problems"]) == 2


def test_disagreeing_user_counts_are_a_problem() -> None:
    swarm = Swarm("gw0", "gw1")
    swarm.ready("gw0", users=4)
    swarm.ready("gw1", users=5)
    swarm.final("gw0", 0)
    swarm.final("gw1", 0)
    body = result_of(swarm.ask("gw0"), "gw0")
    assert any("disagree" in p for p in body["problems"])


def test_ready_after_release_gets_stop_already_started() -> None:
    swarm = Swarm("gw0")
    swarm.release()
    # A replacement worker joins late.
    swarm.hello("gw1")
    swarm.control.expect("gw1")
    [(worker, stop)] = sent(swarm.ready("gw1"))
    assert (worker, stop.kind) == ("gw1", "stop")
    assert "already started" in stop.body["reason"]
    # It is not part of the run: the result does not wait for it.
    swarm.final("gw0", 0)
    assert result_of(swarm.ask("gw1"), "gw1")["workers"] == 1


def test_worker_down_at_the_barrier_releases_the_others() -> None:
    swarm = Swarm("gw0", "gw1")
    swarm.ready("gw0")
    out = sent(swarm.control.worker_down("gw1", "crashed", swarm.now))
    assert out == [("gw0", Message("go", {"test": TEST, "index": 0, "workers": 1}))]


# -- statistics ---------------------------------------------------------------------------------


def test_deltas_are_merged_and_finals_acknowledged() -> None:
    swarm = Swarm("gw0", "gw1")
    swarm.release()
    swarm.now = 1.0
    # Every delta is acknowledged, so that the worker resends the ones that were lost.
    assert sent(swarm.stats("gw0", 0, delta([1000, 2000], failures=1))) == [
        ("gw0", Message("ack", {"test": TEST, "seq": 0}))
    ]
    assert kinds(swarm.stats("gw1", 0, delta([3000]))) == [("gw1", "ack")]
    swarm.now = 2.0
    out = sent(swarm.final("gw0", 1, delta([4000])))
    assert out == [("gw0", Message("ack", {"test": TEST, "seq": 1}))]
    out2 = sent(swarm.final("gw1", 1, delta([5000, 6000], failures=2)))
    assert out2 == [("gw1", Message("ack", {"test": TEST, "seq": 1}))]
    body = result_of(swarm.ask("gw0"), "gw0")
    snap = Snapshot.from_wire(body["snapshot"])
    total = snap.total()
    assert (total.hist.total, total.failures) == (6, 3)
    assert snap.iterations == 6
    assert body["problems"] == []
    assert body["workers"] == 2
    assert body["duration"] == pytest.approx(2.0)


def test_duplicate_final_is_merged_once_and_acked_each_time() -> None:
    swarm = Swarm("gw0")
    swarm.release()
    d = delta([1000, 2000])
    for _ in range(3):
        assert sent(swarm.final("gw0", 0, d, cpu=95.0)) == [
            ("gw0", Message("ack", {"test": TEST, "seq": 0}))
        ]
    body = result_of(swarm.ask("gw0"), "gw0")
    assert Snapshot.from_wire(body["snapshot"]).total().hist.total == 2
    # A resent final is one interval, not three: it cannot make the worker look saturated.
    agg = swarm.control.runs[TEST].aggregator
    assert agg is not None
    assert agg.sources["gw0"].samples == 1
    assert body["health"][2] is False
    # Resent again after the result was computed: still acknowledged, still merged once.
    assert kinds(swarm.final("gw0", 0, d)) == [("gw0", "ack")]
    assert (
        Snapshot.from_wire(result_of(swarm.ask("gw0"), "gw0")["snapshot"]).total().hist.total == 2
    )


def test_duplicate_stats_are_merged_once() -> None:
    swarm = Swarm("gw0")
    swarm.release()
    swarm.stats("gw0", 0, delta([1000]))
    swarm.stats("gw0", 0, delta([1000]))
    swarm.final("gw0", 1, delta([2000]))
    body = result_of(swarm.ask("gw0"), "gw0")
    assert Snapshot.from_wire(body["snapshot"]).total().hist.total == 2


def test_sequence_gap_is_a_problem_naming_the_worker() -> None:
    # RELIABILITY row 9: a lost delta makes the result an error, and must not hang the run.
    swarm = Swarm("gw0", "gw1")
    swarm.release()
    swarm.stats("gw0", 0)
    # seq 1 of gw0 never arrives
    assert kinds(swarm.final("gw0", 2)) == [("gw0", "ack")]
    assert kinds(swarm.final("gw1", 0)) == [("gw1", "ack")]
    body = result_of(swarm.ask("gw0"), "gw0")
    gap = [p for p in body["problems"] if "gw0" in p]
    assert gap and "1" in gap[0]
    assert not any("gw1" in p for p in body["problems"])


def test_result_is_answered_only_when_every_released_worker_finished() -> None:
    swarm = Swarm("gw0", "gw1")
    swarm.release()
    assert swarm.ask("gw0") == []
    assert kinds(swarm.final("gw0", 0)) == [("gw0", "ack")]
    assert swarm.ask("gw0") == []
    swarm.now = 1.5
    out = swarm.final("gw1", 0)
    assert sorted(kinds(out)) == [("gw0", "result"), ("gw1", "ack")]
    # Late askers get the same, cached result.
    assert swarm.ask("gw1") == [("gw1", dict(out)["gw0"])]


def test_result_for_an_unknown_test_waits() -> None:
    swarm = Swarm("gw0")
    assert swarm.ask("gw0", test="other") == []


def test_stats_message_with_malformed_delta_is_counted_not_fatal() -> None:
    swarm = Swarm("gw0")
    swarm.release()
    bad_deltas: list[dict[str, Any]] = [
        {},
        {"e": {}, "x": [], "i": 0, "u": 0},
        {"e": {"GET /": [[1, 2, 3], 1, 0, 0, 0, 0]}, "x": [], "i": 0, "u": 0, "s": 0},
        {"e": {"GET /": [[], 1, 0, 0, 0, 0]}, "x": [], "i": 0, "u": 0, "s": 0},
        {"e": {}, "x": [["a", "b"]], "i": 0, "u": 0, "s": 0},
        {"e": {}, "x": [], "i": -1, "u": 0, "s": 0},
    ]
    for bad in bad_deltas:
        assert swarm.stats("gw0", 0, bad) == []
        assert swarm.final("gw0", 0, bad) == []  # not acknowledged: the worker resends
    assert swarm.control.rejected == 2 * len(bad_deltas)
    # Nothing was merged and the run goes on normally.
    assert kinds(swarm.final("gw0", 0, delta([1000]))) == [("gw0", "ack")]
    body = result_of(swarm.ask("gw0"), "gw0")
    assert Snapshot.from_wire(body["snapshot"]).total().hist.total == 1


def test_deltas_outside_a_run_are_rejected() -> None:
    swarm = Swarm("gw0", "gw1")
    assert swarm.stats("gw0", 0) == []  # before the barrier
    swarm.send("gw1", "abort", test=TEST, reason="x")
    swarm.ready("gw0")
    assert swarm.final("gw1", 0) == []  # not released
    assert swarm.send("gw0", "stats", test="other", seq=0, delta=delta(), cpu=0.0, lag=0.0) == []
    assert swarm.control.rejected == 3


def test_implausible_sequence_number_is_rejected() -> None:
    # A huge seq would make the gap report enumerate billions of missing numbers.
    swarm = Swarm("gw0")
    swarm.release()
    assert swarm.stats("gw0", 2**63) == []
    assert swarm.final("gw0", 2**40) == []
    assert swarm.control.rejected == 2
    assert kinds(swarm.final("gw0", 0)) == [("gw0", "ack")]
    assert result_of(swarm.ask("gw0"), "gw0")["problems"] == []


# -- lost workers -------------------------------------------------------------------------------


def test_worker_down_during_a_run_stops_the_others_and_names_it() -> None:
    swarm = Swarm("gw0", "gw1", "gw2")
    swarm.release()
    swarm.stats("gw1", 0, delta([1000]))
    assert swarm.ask("gw0") == []
    swarm.now = 1.0
    out = sent(swarm.control.worker_down("gw1", "crashed: killed", swarm.now))
    stops = {w: m for w, m in out if m.kind == "stop"}
    assert set(stops) == {"gw0", "gw2"}
    assert all("gw1" in m.body["reason"] for m in stops.values())
    swarm.final("gw0", 0)
    out2 = swarm.final("gw2", 0)
    body = result_of(out2, "gw0")
    lost = [p for p in body["problems"] if "gw1" in p]
    assert len(lost) == 1 and "lost" in lost[0]
    assert body["workers"] == 3
    # What gw1 delivered before it died still counts.
    assert Snapshot.from_wire(body["snapshot"]).total().hist.total == 1
    # Late messages from the lost worker change nothing, and tell it that it was declared
    # lost (so that it does not blame a controller that stopped answering it).
    out3 = sent(swarm.final("gw1", 1))
    assert [(w, m.kind) for w, m in out3] == [("gw1", "refuse")]
    assert "declared worker gw1 lost (crashed: killed)" in out3[0][1].body["reason"]
    assert (
        Snapshot.from_wire(result_of(swarm.ask("gw0"), "gw0")["snapshot"]).total().hist.total == 1
    )


def test_worker_down_of_the_last_running_worker_completes_the_result() -> None:
    swarm = Swarm("gw0", "gw1")
    swarm.release()
    swarm.final("gw0", 0)
    assert swarm.ask("gw0") == []
    out = swarm.control.worker_down("gw1", "crashed", 1.0)
    assert kinds(out) == [("gw0", "result")]  # nobody left to stop


def test_worker_down_after_it_finished_is_not_a_problem() -> None:
    swarm = Swarm("gw0", "gw1")
    swarm.release()
    swarm.final("gw1", 0)
    assert swarm.control.worker_down("gw1", "finished", 1.0) == []
    swarm.final("gw0", 0)
    assert result_of(swarm.ask("gw0"), "gw0")["problems"] == []


def test_heartbeat_timeout_loses_a_silent_busy_worker_but_not_an_idle_one() -> None:
    swarm = Swarm("gw0", "gw1", "gw2")
    swarm.hello("gw3")  # said hello, runs no load test: idle
    swarm.release()
    swarm.final("gw2", 0)  # finished its part: idle too
    swarm.now = 3.0
    swarm.send("gw0", "ping", lag=0.0)
    out = swarm.control.tick(swarm.now)
    assert sorted(w for w, k in kinds(out) if k == "pong") == ["gw0", "gw1", "gw2", "gw3"]
    swarm.now = 7.0  # gw1, gw2, gw3 silent for 7 s; gw0 for 4 s
    out = swarm.control.tick(swarm.now)
    stops = [(w, m.body["reason"]) for w, m in sent(out) if m.kind == "stop"]
    assert stops and all(w == "gw0" and "gw1" in r and "heartbeat" in r for w, r in stops)
    states = swarm.control.workers
    assert states["gw1"].gone is not None and "heartbeat" in states["gw1"].gone
    assert states["gw0"].gone is None and states["gw2"].gone is None
    assert states["gw3"].gone is None
    assert ("gw1", "pong") not in kinds(out)
    swarm.final("gw0", 0)
    body = result_of(swarm.ask("gw0"), "gw0")
    assert any("gw1" in p and "lost" in p for p in body["problems"])


def test_heartbeat_timeout_at_the_barrier_releases_the_others() -> None:
    swarm = Swarm("gw0", "gw1")
    swarm.ready("gw1")  # waits at the barrier, then goes silent
    swarm.now = 4.0
    swarm.send("gw0", "ping", lag=0.0)  # gw0 is alive but has not reached the test yet
    swarm.now = 6.0
    out = swarm.control.tick(swarm.now)
    assert swarm.control.workers["gw1"].gone is not None
    assert swarm.control.workers["gw0"].gone is None
    assert ("gw0", "go") not in kinds(out)
    go = sent(swarm.ready("gw0"))
    assert go == [("gw0", Message("go", {"test": TEST, "index": 0, "workers": 1}))]


# -- reporter claims ----------------------------------------------------------------------------


def yes_answers(out: Outbox) -> dict[str, bool]:
    return {w: m.body["yes"] for w, m in sent(out) if m.kind == "reporter"}


def test_reporter_is_decided_when_every_live_worker_claimed() -> None:
    swarm = Swarm("gw10", "gw2", "gw3")
    assert swarm.send("gw10", "claim", test=TEST) == []
    assert swarm.send("gw3", "claim", test=TEST) == []
    out = yes_answers(swarm.send("gw2", "claim", test=TEST))
    assert out == {"gw2": True, "gw3": False, "gw10": False}
    assert swarm.control.reporter_of(TEST) == "gw2"
    # A later claim (e.g. a replacement worker) never gets a second yes.
    swarm.hello("gw11")
    assert yes_answers(swarm.send("gw11", "claim", test=TEST)) == {"gw11": False}
    # A resent claim (its answer was lost) gets the same answer again.
    assert yes_answers(swarm.send("gw2", "claim", test=TEST)) == {"gw2": True}
    assert yes_answers(swarm.send("gw3", "claim", test=TEST)) == {"gw3": False}


def test_claims_are_per_test() -> None:
    swarm = Swarm("gw0", "gw1")
    assert swarm.send("gw1", "claim", test="a") == []
    assert swarm.send("gw0", "claim", test="b") == []
    assert yes_answers(swarm.send("gw0", "claim", test="a")) == {"gw0": True, "gw1": False}
    assert yes_answers(swarm.send("gw1", "claim", test="b")) == {"gw0": True, "gw1": False}


def test_worker_down_unblocks_the_claim_barrier() -> None:
    swarm = Swarm("gw2", "gw10")
    assert swarm.send("gw10", "claim", test=TEST) == []
    out = yes_answers(swarm.control.worker_down("gw2", "crashed", 1.0))
    assert out == {"gw10": True}


def test_a_claimant_that_died_is_not_chosen_as_reporter() -> None:
    # gw0 finished the test, claimed, and was killed while waiting for the answer: the test
    # must still be reported by someone.
    swarm = Swarm("gw0", "gw1")
    assert swarm.send("gw0", "claim", test=TEST) == []
    assert swarm.control.worker_down("gw0", "crashed", 1.0) == []
    assert yes_answers(swarm.send("gw1", "claim", test=TEST))["gw1"] is True
    assert swarm.control.reporter_of(TEST) == "gw1"


def test_unexpected_message_kind_is_rejected() -> None:
    swarm = Swarm("gw0")
    # A controller -> worker kind sent by a worker.
    assert swarm.send("gw0", "welcome", interval=1.0) == []
    assert swarm.send("gw0", "go", test=TEST, index=0, workers=1) == []
    assert swarm.control.rejected == 2


def test_a_result_too_large_for_one_frame_is_an_error_result_not_a_hang(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import pytest_swarm.cluster.controller_state as state
    from pytest_swarm.cluster.wire import WireError

    real = state.encode

    def encode(kind: str, **body: Any) -> bytes:
        # The full result does not fit (as with thousands of wide names); the rest does.
        if kind == "result" and body["snapshot"] != Snapshot().to_wire():
            raise WireError("result message of 9000000 bytes exceeds 8388608")
        return real(kind, **body)

    monkeypatch.setattr(state, "encode", encode)
    swarm = Swarm("gw0")
    swarm.release()
    swarm.final("gw0", 0, delta([1000, 2000]))
    body = result_of(swarm.ask("gw0"), "gw0")
    assert Snapshot.from_wire(body["snapshot"]).total().hist.total == 0
    [problem] = body["problems"]
    assert "could not be sent to the reporting worker" in problem
    assert "2 requests under 1 names" in problem


# -- the live feed and stops on request ---------------------------------------------------------


def test_release_publishes_load_started_with_the_workers_settings() -> None:
    swarm = Swarm("gw0", "gw1")
    settings = {"load": "4 users", "objectives": ["p95 < 300ms"], "abort": []}
    swarm.send("gw0", "ready", test=TEST, users=4, duration=2.0, settings=settings)
    assert swarm.control.events == []  # the barrier still waits for gw1
    swarm.send("gw1", "ready", test=TEST, users=4, duration=2.0, settings=settings)
    [started] = swarm.control.events
    assert isinstance(started, LoadStarted)
    assert (started.test, started.name, started.users, started.workers) == (
        TEST,
        "test_load",
        4,
        2,
    )
    assert started.duration == 2.0 and started.settings == settings


def test_unreadable_settings_are_a_problem_of_the_test_not_a_hang() -> None:
    swarm = Swarm("gw0")
    deep = {"a": [[[[["too deep"]]]]]}
    out = swarm.send("gw0", "ready", test=TEST, users=1, duration=1.0, settings=deep)
    assert kinds(out) == [("gw0", "go")]  # released all the same
    swarm.final("gw0", 0)
    body = result_of(swarm.ask("gw0"), "gw0")
    assert any("unreadable load settings" in p for p in body["problems"])


def test_progress_every_interval_is_a_copy_of_the_running_aggregate() -> None:
    swarm = Swarm("gw0", "gw1")
    swarm.release()
    swarm.control.events.clear()
    swarm.now = 0.5
    swarm.stats("gw0", 0, delta([1000, 2000], users=2), cpu=40.0, lag=0.002)
    swarm.control.tick(swarm.now)
    assert swarm.control.events == []  # less than an interval since the release
    swarm.now = 1.0
    swarm.control.tick(swarm.now)
    [first] = swarm.control.events
    assert isinstance(first, Progress)
    assert first.elapsed == 1.0 and first.result.total.count == 2
    assert first.workers == {"gw0": {"cpu": 40.0, "lag": 0.002, "users": 2.0}}
    swarm.now = 1.5
    swarm.stats("gw1", 0, delta([3000] * 5))
    swarm.control.tick(2.0)
    second = swarm.control.events[-1]
    assert isinstance(second, Progress) and second.result.total.count == 7
    # What a subscriber kept is not changed by what arrived since.
    assert first.result.total.count == 2 and first.result.snapshot.total().hist.total == 2


def test_a_stop_on_request_reaches_the_running_workers_and_the_result_says_why() -> None:
    swarm = Swarm("gw0", "gw1")
    swarm.release()
    swarm.final("gw0", 0)  # gw0 is done: only gw1 still runs users
    out = swarm.control.request_stop(TEST, "aborted 10.0s into the load: p95 missed")
    assert [(w, m.kind, m.body["reason"]) for w, m in sent(out)] == [
        ("gw1", "stop", "aborted 10.0s into the load: p95 missed")
    ]
    assert swarm.control.request_stop(TEST, "twice") == []  # one stop per load
    swarm.final("gw1", 0)
    assert swarm.control.ended == [TEST]
    body = result_of(swarm.ask("gw0"), "gw0")
    assert body["stopped"] == "aborted 10.0s into the load: p95 missed"
    assert body["problems"] == []  # a stop on request is a verdict, not an infrastructure error
    assert swarm.control.request_stop(TEST, "too late") == []
    assert swarm.control.request_stop("t.py::other", "not running") == []


def test_a_resent_delta_already_merged_is_acknowledged_without_decoding_it_again() -> None:
    swarm = Swarm("gw0")
    swarm.release()
    assert kinds(swarm.stats("gw0", 0, delta([1000]))) == [("gw0", "ack")]
    # The resend is not checked again: even a body that would not pass is just acknowledged.
    assert kinds(swarm.stats("gw0", 0, {"not": "a delta"})) == [("gw0", "ack")]
    run = swarm.control.runs[TEST]
    assert run.aggregator is not None and run.aggregator.duplicates == 1
    assert swarm.control.rejected == 0 and run.aggregator.requests == 1


# -- results built by the caller (the coordinator, outside its lock) ----------------------------


def test_with_defer_a_complete_runs_result_is_left_to_the_caller_and_then_sent() -> None:
    swarm = Swarm("gw0", "gw1")
    swarm.control.defer = True
    swarm.release()
    swarm.final("gw0", 0, delta([1000]))
    assert kinds(swarm.ask("gw0")) == []  # still running: gw0 waits for the result
    out = swarm.final("gw1", 0, delta([3000]))
    assert kinds(out) == [("gw1", "ack")]  # complete, but nothing built yet
    run = swarm.control.runs[TEST]
    assert run.result_frame is None
    assert kinds(swarm.ask("gw1")) == []  # asked while it is built: answered when it is
    swarm.final("gw1", 0, delta([3000]))  # a resent final: the result is queued once
    assert swarm.control.ended == []
    unbuilt, swarm.control.unbuilt = swarm.control.unbuilt, []  # what the coordinator does
    assert unbuilt == [(run, swarm.now)]
    frame = swarm.control.build_result(run, swarm.now)
    out = swarm.control.result_built(run, frame)
    assert sorted(kinds(out)) == [("gw0", "result"), ("gw1", "result")]
    assert result_of(out, "gw0")["snapshot"] == result_of(out, "gw1")["snapshot"]
    assert swarm.control.ended == [TEST]
    assert [(w, m.kind) for w, m in sent(swarm.ask("gw0"))] == [("gw0", "result")]
    assert swarm.control.unbuilt == []


def test_with_defer_progress_is_left_to_the_caller() -> None:
    swarm = Swarm("gw0")
    swarm.control.defer = True
    swarm.release()
    swarm.control.events.clear()
    swarm.stats("gw0", 0, delta([1000, 2000]))
    swarm.control.tick(1.0)
    assert swarm.control.events == []
    [(run, when)] = swarm.control.progress_due
    progress = swarm.control.progress(run, when)
    assert progress.elapsed == 1.0 and progress.result.total.count == 2
