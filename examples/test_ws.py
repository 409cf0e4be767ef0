"""WebSocket: one connection per virtual user, the connect and each round trip timed.

``measure`` times any code like an HTTP request: same table row, failures grouped with a
sample traceback, objectives. websocket-client is pure Python on the standard ``socket``
module, so under gevent a user waiting for its reply lets the others run.

The echo server (the ``websockets`` package) runs in a child process started by ``ws_url``;
``SWARM_WS_URL=ws://...`` points the example at a server of your own instead.
"""

from __future__ import annotations

import os

import pytest

from pytest_swarm import measure

websocket = pytest.importorskip("websocket", reason="needs websocket-client")
pytest.importorskip("websockets", reason="needs websockets (the server)")


@pytest.fixture(scope="session")
def ws_url():
    """The server: ``SWARM_WS_URL``, else an echo server started for this session."""
    if os.environ.get("SWARM_WS_URL"):
        yield os.environ["SWARM_WS_URL"]
        return
    from protocols.child import serve

    with serve("protocols.ws_server") as url:
        yield url


@pytest.fixture
def ws(ws_url):
    """One connection per virtual user: opened (and timed) when the user starts, closed when
    it stops. In a project this fixture goes in conftest.py, like ``shopper``."""
    with measure("ws connect"):
        connection = websocket.create_connection(ws_url, timeout=10)
    yield connection
    connection.close()


@pytest.mark.load(users=10, rate=10, duration="3s", wait=(0.05, 0.1))
@pytest.mark.slo("[ws echo] p95 < 100ms", "error_rate < 1%")
def test_echo(ws, swarm_user):
    message = f"hello from user {swarm_user.index}, iteration {swarm_user.iteration}"
    with measure("ws echo") as m:  # one request/response round trip
        ws.send(message)
        reply = ws.recv()
        m.size = len(reply)
        if reply != message:
            m.failure(f"wrong echo: {reply[:50]!r}")  # a failure without an exception
