"""The receive that hands back the kernel's time of the bytes' arrival (``clients.stamps``), in
C (``_speedups.recv_stamped``) and in Python (``recvmsg``): the two answer alike, on a real
loopback TCP connection."""

from __future__ import annotations

import os
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kernel_stamps import kernel_stamping, tcp_pair  # noqa: F401  (a fixture)

from pytest_swarm.clients import stamps

Receive = Callable[[Any, int], tuple[bytes, float]]

pytestmark = [
    pytest.mark.skipif(stamps.SO_TIMESTAMPNS is None, reason="Linux's SO_TIMESTAMPNS"),
    pytest.mark.usefixtures("kernel_stamping"),
]


def _implementations() -> list[Any]:
    found: list[Any] = [pytest.param(stamps._python_recv_stamped, id="python")]
    try:
        from pytest_swarm._speedups import recv_stamped
    except ImportError:
        return found
    return [*found, pytest.param(recv_stamped, id="c")]


@pytest.fixture(params=_implementations())
def receive(request: pytest.FixtureRequest) -> Receive:
    return request.param  # type: ignore[no-any-return]


def test_the_c_receive_is_built_where_it_is_required() -> None:
    if os.environ.get("SWARM_REQUIRE_SPEEDUPS") != "1":
        pytest.skip("SWARM_REQUIRE_SPEEDUPS=1 is not set")
    assert stamps.recv_stamped is not stamps._python_recv_stamped
    assert stamps.SO_TIMESTAMPNS == 35


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A connected loopback TCP pair: (the client's end, non-blocking; the server's end)."""
    client, server = tcp_pair()
    client.setblocking(False)
    yield client, server
    client.close()
    server.close()


def _wait_readable(sock: socket.socket) -> None:
    assert select.select([sock], [], [], 10)[0]


def test_the_time_is_when_the_bytes_came_not_when_they_were_read(
    receive: Receive, pair: tuple[socket.socket, socket.socket]
) -> None:
    client, server = pair
    assert stamps.enable(client)
    before = time.perf_counter()
    server.sendall(b"HTTP/1.1 200 OK\r\n\r\n")
    _wait_readable(client)
    came = time.perf_counter()
    threading.Event().wait(0.2)  # the bytes wait in the socket
    data, arrived = receive(client, 65536)
    assert data == b"HTTP/1.1 200 OK\r\n\r\n"
    # On perf_counter()'s clock, between the send and the moment they were seen there (a
    # time of the receive itself would be 0.2 s later; a wall-clock time, decades off).
    assert before <= arrived <= came


def test_the_time_is_that_of_the_last_bytes_read(
    receive: Receive, pair: tuple[socket.socket, socket.socket]
) -> None:
    client, server = pair
    assert stamps.enable(client)
    server.sendall(b"first ")
    _wait_readable(client)
    threading.Event().wait(0.2)
    second = time.perf_counter()
    server.sendall(b"second")
    deadline = time.monotonic() + 10
    while True:  # both segments in the socket before the one receive
        _wait_readable(client)
        if len(client.recv(64, socket.MSG_PEEK)) == 12 or time.monotonic() > deadline:
            break
    data, arrived = receive(client, 64)
    assert data == b"first second"
    assert arrived >= second


def test_no_time_where_the_kernel_was_not_asked(
    receive: Receive, pair: tuple[socket.socket, socket.socket]
) -> None:
    client, server = pair
    server.sendall(b"ok")
    _wait_readable(client)
    assert receive(client, 64) == (b"ok", 0.0)


def test_a_receive_takes_at_most_its_size(
    receive: Receive, pair: tuple[socket.socket, socket.socket]
) -> None:
    client, server = pair
    stamps.enable(client)
    server.sendall(b"abcdef")
    _wait_readable(client)
    assert receive(client, 4)[0] == b"abcd"
    assert receive(client, 4)[0] == b"ef"


def test_errors_are_the_sockets_own(
    receive: Receive, pair: tuple[socket.socket, socket.socket]
) -> None:
    client, server = pair
    stamps.enable(client)
    with pytest.raises(BlockingIOError):
        receive(client, 64)  # nothing yet, on a non-blocking socket
    server.shutdown(socket.SHUT_WR)
    _wait_readable(client)
    assert receive(client, 64)[0] == b""  # the end of the connection
    client.close()
    with pytest.raises((OSError, ValueError)):  # a closed socket: no descriptor
        receive(client, 64)


def test_a_reset_is_the_sockets_own_error(
    receive: Receive, pair: tuple[socket.socket, socket.socket]
) -> None:
    client, server = pair
    stamps.enable(client)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    server.close()  # a reset
    _wait_readable(client)
    with pytest.raises(ConnectionResetError):
        receive(client, 64)


def test_the_c_receive_refuses_a_size_out_of_bounds(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    try:
        from pytest_swarm._speedups import recv_stamped
    except ImportError:
        pytest.skip("the C extension is not built")
    client, _server = pair
    for size in (-1, 1 << 30):
        with pytest.raises(ValueError, match="size"):
            recv_stamped(client, size)
    with pytest.raises(TypeError):
        recv_stamped(client)  # type: ignore[call-arg]


def test_enable_says_no_where_the_option_is_unknown(
    monkeypatch: pytest.MonkeyPatch, pair: tuple[socket.socket, socket.socket]
) -> None:
    monkeypatch.setattr(stamps, "SO_TIMESTAMPNS", None)
    assert stamps.enable(pair[0]) is False
