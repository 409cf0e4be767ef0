"""The liveness check of an idle kept-alive connection (``Connection.dropped``), in C
(``_speedups.readable``: one poll(2)) and in Python (``select.poll``), on every state an idle
connection can be in: the two answer alike."""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable, Iterator

import gevent.socket
import pytest

from pytest_swarm.clients import connect
from pytest_swarm.clients.connect import Connection

IMPLEMENTATIONS = ["python"] + (["c"] if connect._readable is not None else [])


@pytest.fixture(params=IMPLEMENTATIONS)
def implementation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "python":
        monkeypatch.setattr(connect, "_readable", None)
    return str(request.param)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A connected loopback TCP pair: (the client's gevent socket, the server's end)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    client = gevent.socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    listener.close()
    yield client, server
    client.close()
    server.close()


def _send(server: socket.socket) -> None:
    server.sendall(b"HTTP/1.1 408 Request Timeout\r\n\r\n")  # bytes nobody asked for


def _close(server: socket.socket) -> None:
    server.shutdown(socket.SHUT_RDWR)


def _reset(server: socket.socket) -> None:
    server.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    server.close()


@pytest.mark.parametrize(
    ("state", "dropped"),
    [(None, False), (_send, True), (_close, True), (_reset, True)],
    ids=["idle", "unsolicited-bytes", "fin", "rst"],
)
def test_an_idle_connection_is_dropped_exactly_when_the_server_spoke_or_left(
    implementation: str,
    pair: tuple[socket.socket, socket.socket],
    state: Callable[[socket.socket], None] | None,
    dropped: bool,
) -> None:
    client, server = pair
    conn = Connection(client, None)
    assert conn.raw is not None  # a gevent socket: the fast client's own path
    if state is not None:
        state(server)
        assert gevent.socket.wait_read(client.fileno(), timeout=10) is None  # it has arrived
    assert conn.dropped() is dropped


def test_a_closed_connection_is_dropped(
    implementation: str, pair: tuple[socket.socket, socket.socket]
) -> None:
    client, _ = pair
    conn = Connection(client, None)
    client.close()
    assert conn.dropped() is True
