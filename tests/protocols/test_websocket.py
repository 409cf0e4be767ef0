"""WebSocket load against a real server (the ``websockets`` package) with websocket-client:
one connection per user, the connect and every round trip measured, users really concurrent
under gevent, a dropped connection a grouped failure counted once."""

from __future__ import annotations

import pytest

from .conftest import RunLoad

FIXTURES = """
import os
import pytest
import websocket
from pytest_swarm import measure

@pytest.fixture
def ws():
    with measure("ws connect"):
        connection = websocket.create_connection(os.environ["SWARM_WS_URL"], timeout=30)
    yield connection
    connection.close()
"""

ROUND_TRIPS = """
import pytest
from pytest_swarm import measure

@pytest.mark.load(users=4, rate=100, iterations=3, duration="60s")
def test_echo(ws, swarm_user):
    if swarm_user.iteration == 0:
        # Answered only once all 4 connections wait here: users taking turns never get "go".
        with measure("ws barrier") as m:
            ws.send("barrier 4 {key}")
            reply = ws.recv()
            if reply != "go":
                m.failure(reply)
    message = f"user {{swarm_user.index}} iteration {{swarm_user.iteration}}"
    with measure("ws echo") as m:
        ws.send(message)
        if ws.recv() != message:
            m.failure("wrong echo")
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one-process", "xdist"])
def test_a_connection_per_user_and_every_round_trip_is_a_sample(
    pytester: pytest.Pytester, run_load: RunLoad, ws_url: str, key: str, workers: list[str]
) -> None:
    pytester.makeconftest(FIXTURES)
    pytester.makepyfile(test_ws=ROUND_TRIPS.format(key=key))
    run = run_load(*workers, servers={"SWARM_WS_URL": ws_url})
    run.result.assert_outcomes(passed=1)
    assert run.requests("test_ws.py::test_echo") == {
        "ws connect": (4, 0),  # per user, timed in the fixture's setup
        "ws barrier": (4, 0),  # all 4 users waited at once
        "ws echo": (12, 0),  # 4 users x 3 iterations, over every worker
    }


DROPPED = """
import pytest
from pytest_swarm import measure

@pytest.mark.load(users=2, rate=100, iterations=2, duration="60s")
def test_dropped(ws):
    with measure("ws echo"):
        ws.send("hello")
        ws.recv()
        ws.abort()  # the connection is gone: the next round trip raises inside the block
        ws.send("again")
"""


def test_a_dropped_connection_is_a_failure_of_the_block_counted_once(
    pytester: pytest.Pytester, run_load: RunLoad, ws_url: str
) -> None:
    pytester.makeconftest(FIXTURES)
    pytester.makepyfile(test_ws=DROPPED)
    run = run_load(servers={"SWARM_WS_URL": ws_url})
    run.result.assert_outcomes(failed=1)  # the implicit "failures = 0" objective is missed
    test = "test_ws.py::test_dropped"
    # Every iteration failed in the block: recorded there, not a second time for the test.
    assert run.requests(test) == {"ws connect": (2, 0), "ws echo": (4, 4)}
    [group] = run.errors(test)
    assert (group["name"], group["count"]) == ("ws echo", 4)
    assert 'ws.send("again")' in group["sample_traceback"]  # where it failed, as for http
