"""A fixture that has the kernel stamping arrivals before a test starts.

Linux turns its receive timestamps on for the whole system when the first socket asks
(``SO_TIMESTAMPNS``), and off when the last one closes, each time a moment later (a deferred
switch): segments that arrive in that moment carry no time, and the client falls back to its
poll clock for them. A test that asserts the kernel's time holds one stamped socket open for
its module, and waits until a stamp has come through it.
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator

import pytest

from pytest_swarm.clients import stamps


def tcp_pair() -> tuple[socket.socket, socket.socket]:
    """A connected loopback TCP pair: (the client's end, the server's end)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    try:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    finally:
        listener.close()
    return client, server


@pytest.fixture(scope="module")
def kernel_stamping() -> Iterator[None]:
    if stamps.SO_TIMESTAMPNS is None:
        yield
        return
    a, b = tcp_pair()
    try:
        assert stamps.enable(a)
        a.setblocking(False)
        deadline = time.monotonic() + 10
        while True:
            b.send(b".")
            assert select.select([a], [], [], 10)[0]
            if stamps._python_recv_stamped(a, 64)[1] > 0 or time.monotonic() > deadline:
                break
            select.select([], [], [], 0.01)
        yield
    finally:
        a.close()
        b.close()
