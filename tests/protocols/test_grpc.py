"""gRPC load against a real grpcio server (a generic handler, no generated code): every unary
call recorded by the example's client interceptor, a failed call recorded with its status and
counted once, users really concurrent under gevent without a line of gevent code in the
project (the plugin calls ``init_gevent()`` once it patched the process, in one process and in
every xdist worker), and taking turns when that is switched off (``SWARM_GRPC_GEVENT=off``:
the evidence of why it is needed)."""

from __future__ import annotations

import shutil

import pytest

from .conftest import RunLoad
from .servers import EXAMPLES

# The example's own fixtures and interceptor, as a project would copy them.
CONFTEST = "from grpc_example import Measured, echo_channel, grpc_target  # noqa: F401\n"

CALLS = """
import grpc
import pytest

def user(echo_channel, swarm_user):
    if swarm_user.iteration == 0:
        # Answered only once all 4 calls are in flight: users taking turns never get b"go".
        assert echo_channel.unary_unary("/demo.Echo/Barrier")(b"4 {key}", timeout=60) == b"go"
    # The client's address as the server saw it: one per connection.
    peer = echo_channel.unary_unary("/demo.Echo/Peer")(b"", timeout=30).decode()
    with open("peers.log", "a", encoding="utf-8") as log:
        log.write(peer + "\\n")
    assert echo_channel.unary_unary("/demo.Echo/Echo")(b"ping", timeout=30) == b"ping"
    with pytest.raises(grpc.RpcError) as info:  # the caller still gets the failed call's error
        echo_channel.unary_unary("/demo.Echo/Fail")(b"no such order", timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT

def test_calls(swarm):
    swarm.run(user, users=4, rate=100, iterations=3, duration="60s")
"""


def copy_example(pytester: pytest.Pytester) -> None:
    """The example file (as an importable module) and the servers' package it uses."""
    shutil.copy(EXAMPLES / "test_grpc.py", pytester.path / "grpc_example.py")


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one-process", "xdist"])
def test_the_interceptor_records_every_call_and_users_run_at_once(
    pytester: pytest.Pytester, run_load: RunLoad, grpc_target: str, key: str, workers: list[str]
) -> None:
    copy_example(pytester)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_grpc=CALLS.format(key=key))
    run = run_load(*workers, servers={"SWARM_GRPC_TARGET": grpc_target})
    run.result.assert_outcomes(passed=1)
    test = "test_grpc.py::test_calls#1"
    assert run.requests(test) == {
        "gRPC /demo.Echo/Barrier": (4, 0),  # all 4 users had a call in flight at once
        "gRPC /demo.Echo/Peer": (12, 0),
        "gRPC /demo.Echo/Echo": (12, 0),
        "gRPC /demo.Echo/Fail": (12, 12),  # the only failures: none counted twice
    }
    # Each user kept its own connection for all its calls (grpc would share one by default).
    peers = (pytester.path / "peers.log").read_text(encoding="utf-8").split()
    assert (len(peers), len(set(peers))) == (12, 4)
    [group] = run.errors(test)
    assert (group["name"], group["kind"], group["message"], group["count"]) == (
        "gRPC /demo.Echo/Fail",
        "Failure",
        "INVALID_ARGUMENT: no such order",
        12,
    )


WITHOUT_INIT = """
import os
import grpc
import pytest
from grpc_example import Measured
from pytest_swarm import measure

@pytest.fixture
def channel():  # no grpc.experimental.gevent.init_gevent() anywhere in this project
    channel = grpc.intercept_channel(
        grpc.insecure_channel(os.environ["SWARM_GRPC_TARGET"]), Measured()
    )
    yield channel
    channel.close()

@pytest.mark.load(users=2, rate=100, iterations=1, duration="60s")
def test_turns(channel):
    channel.unary_unary("/demo.Echo/Barrier")(b"2 {key}", timeout={timeout})
"""


def test_the_plugin_makes_grpc_cooperative_without_a_line_of_user_code(
    pytester: pytest.Pytester, run_load: RunLoad, grpc_target: str, key: str
) -> None:
    copy_example(pytester)
    pytester.makepyfile(test_grpc=WITHOUT_INIT.format(key=key, timeout=60))
    run = run_load(servers={"SWARM_GRPC_TARGET": grpc_target})
    run.result.assert_outcomes(passed=1)
    # Both users had their call in flight at once: the server's barrier answered both.
    assert run.requests("test_grpc.py::test_turns") == {"gRPC /demo.Echo/Barrier": (2, 0)}


def test_switched_off_a_call_blocks_every_user(
    pytester: pytest.Pytester,
    run_load: RunLoad,
    grpc_target: str,
    key: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    copy_example(pytester)
    pytester.makepyfile(test_grpc=WITHOUT_INIT.format(key=key, timeout=3))
    monkeypatch.setenv("SWARM_GRPC_GEVENT", "off")
    run = run_load(servers={"SWARM_GRPC_TARGET": grpc_target})
    run.result.assert_outcomes(failed=1)
    # The first user's call held the whole process until its deadline: the second user could
    # not send its own call while the first one waited for it.
    count, failures = run.requests("test_grpc.py::test_turns")["gRPC /demo.Echo/Barrier"]
    assert count == 2 and failures >= 1
    kinds = {g["message"].split(":")[0] for g in run.errors("test_grpc.py::test_turns")}
    assert kinds == {"DEADLINE_EXCEEDED"}
