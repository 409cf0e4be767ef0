"""The controller's answers to resent, late and refused messages (issue 8, section 1; rows 8,
23, 32 and 33), as plain method calls on ``Control`` with a fake clock: every request of the
protocol may be resent and is answered again, the same way; what comes after a worker's last
word is refused; a worker of another version fails every load test by name."""

from __future__ import annotations

from typing import Any

from merge_implementations import merge_implementation  # noqa: F401  (autouse)
from test_controller_state import TEST, Swarm, delta, kinds, result_of, sent, yes_answers

from pytest_swarm import __version__
from pytest_swarm.cluster.controller_state import Control
from pytest_swarm.cluster.wire import decode, encode
from pytest_swarm.stats.snapshot import Snapshot


def total_requests(body: dict[str, Any]) -> int:
    return Snapshot.from_wire(body["snapshot"]).total().hist.total


# -- row 32: every request answered again when resent --------------------------------------


def test_a_resent_hello_is_welcomed_again_and_changes_nothing() -> None:
    swarm = Swarm("gw0")
    swarm.release()
    assert kinds(swarm.hello("gw0")) == [("gw0", "welcome")]
    # Still the same worker of the running test, not a new one.
    assert "gw0" in swarm.control.runs[TEST].remaining


def test_a_resent_ready_after_the_release_gets_its_go_again() -> None:
    swarm = Swarm("gw0", "gw1")
    swarm.release()
    out = sent(swarm.ready("gw1"))
    assert [(w, m.kind, m.body["index"], m.body["workers"]) for w, m in out] == [
        ("gw1", "go", 1, 2)
    ]


def test_a_resent_final_and_result_request_are_answered_again() -> None:
    swarm = Swarm("gw0")
    swarm.release()
    swarm.final("gw0", 0, delta([1000]))
    assert kinds(swarm.final("gw0", 0, delta([1000]))) == [("gw0", "ack")]
    first = result_of(swarm.ask("gw0"), "gw0")
    again = result_of(swarm.ask("gw0"), "gw0")  # the result frame was lost: asked again
    assert first == again and total_requests(again) == 1


def test_a_resent_stats_delta_is_acknowledged_and_merged_once() -> None:
    swarm = Swarm("gw0")
    swarm.release()
    assert kinds(swarm.stats("gw0", 0, delta([1000]))) == [("gw0", "ack")]
    assert kinds(swarm.stats("gw0", 0, delta([1000]))) == [("gw0", "ack")]
    swarm.final("gw0", 1, delta([2000]))
    body = result_of(swarm.ask("gw0"), "gw0")
    assert total_requests(body) == 2 and body["problems"] == []


def test_a_claim_from_a_worker_whose_final_never_arrived_ends_its_part() -> None:
    # gw1 gave up resending its final delta and moved on: the result must not wait for it.
    swarm = Swarm("gw0", "gw1")
    swarm.release()
    swarm.final("gw0", 0, delta([1000]))
    assert swarm.ask("gw0") == []
    out = swarm.send("gw1", "claim", test=TEST)
    body = result_of(out, "gw0")
    assert any(
        "worker gw1 was lost" in p and "without delivering its final statistics" in p
        for p in body["problems"]
    ), body["problems"]


def test_requests_a_worker_gave_up_on_are_counted_in_the_result() -> None:
    swarm = Swarm("gw0")
    swarm.release()
    swarm.final("gw0", 1, delta([1000]), lost=17)
    problems = result_of(swarm.ask("gw0"), "gw0")["problems"]
    assert any("worker gw0: 17 request(s) lost" in p for p in problems), problems


# -- item 6: nothing after a worker's final delta ------------------------------------------


def test_a_delta_numbered_after_the_final_one_is_refused_and_counted() -> None:
    swarm = Swarm("gw0", "gw1")
    swarm.release()
    swarm.final("gw0", 0, delta([1000]))
    rejected = swarm.control.rejected
    assert swarm.stats("gw0", 1, delta([5000, 6000])) == []
    assert swarm.final("gw0", 2, delta([7000])) == []
    assert swarm.control.rejected == rejected + 2
    swarm.final("gw1", 0, delta([2000]))
    body = result_of(swarm.ask("gw0"), "gw0")
    assert total_requests(body) == 2  # neither late delta was merged
    assert "worker gw0 sent 2 delta(s) numbered after its final one" in body["problems"]


# -- row 23: another version is refused, and every load test names it ----------------------


def test_another_package_version_is_refused_with_both_versions() -> None:
    control = Control()
    out = control.on_message(
        "gw1",
        decode(encode("hello", worker="gw1", version="0.0.9", load_tests=[TEST])),
        0.0,
    )
    [(worker, frame)] = out
    reason = decode(frame).body["reason"]
    assert worker == "gw1" and decode(frame).kind == "refuse"
    assert "0.0.9" in reason and __version__ in reason and "same version" in reason


def test_a_refused_worker_makes_every_load_test_an_error_naming_it() -> None:
    swarm = Swarm("gw0")
    swarm.control.expect("gw1")
    swarm.control.refuse("gw1", "peer speaks pytest-swarm protocol 1, this side speaks 2")
    swarm.release()  # gw1 never takes part: the barrier does not wait for it
    swarm.final("gw0", 0, delta([1000]))
    problems = result_of(swarm.ask("gw0"), "gw0")["problems"]
    assert any(
        "worker gw1 was refused at the handshake" in p and "protocol 1" in p for p in problems
    ), problems


# -- row 33: liveness judged with the lag the worker measured -------------------------------


def test_the_heartbeat_timeout_allows_for_the_lag_a_worker_reported() -> None:
    swarm = Swarm("gw0", "gw1", heartbeat_timeout=5.0)
    swarm.release()
    swarm.send("gw0", "ping", lag=3.0)  # starved: its heartbeat woke 3 s late
    swarm.send("gw1", "ping", lag=0.0)
    swarm.now = 6.0
    out = swarm.control.tick(swarm.now)
    stopped = {w for w, m in sent(out) if m.kind == "stop"}
    assert stopped == {"gw0"}  # gw1 (silent 6 s, no lag reported) is lost; gw0 is not
    swarm.now = 100.0  # but no reported lag buys more than MAX_LAG_GRACE
    swarm.control.tick(swarm.now)
    assert swarm.control.workers["gw0"].gone is not None


def test_a_lost_worker_is_told_so_when_it_speaks_again() -> None:
    swarm = Swarm("gw0", "gw1")
    swarm.release()
    swarm.now = 10.0
    swarm.send("gw0", "ping", lag=0.0)
    swarm.control.tick(swarm.now)  # gw1 was SIGSTOPped: silent for 10 s
    out = sent(swarm.send("gw1", "ping", lag=9.0))  # SIGCONT
    assert [(w, m.kind) for w, m in out] == [("gw1", "refuse")]
    assert "declared worker gw1 lost (no heartbeat for 10.0s)" in out[0][1].body["reason"]
    assert yes_answers(swarm.send("gw0", "claim", test=TEST)) == {"gw0": True}
