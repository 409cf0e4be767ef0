"""The hub's send queue (``hub.SendQueue``): the requests of the users that run in one turn
of the event loop go out together at its end. What must hold whatever the socket does: a send
cut short is finished by its user, a send that fails fails its request (a reused connection's
as stale, so an idempotent request goes again), and a request whose user gave up is not sent.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from typing import Any

import gevent
import pytest
from gevent_sockets import _gevent_sockets  # noqa: F401  (autouse: the run's sockets)
from hostile_http import Hostile, hostile_server
from local_http import Local, QuietHandler, serve

from pytest_swarm.clients import hub as hub_module
from pytest_swarm.clients import reading as reading_module
from pytest_swarm.clients.connect import Connection
from pytest_swarm.clients.fast import FastHttpSession
from pytest_swarm.stats.recorder import Recorder

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class _Count(QuietHandler):
    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        got = 0
        while got < length:
            piece = self.rfile.read(min(65536, length - got))
            if not piece:
                break
            got += len(piece)
        body = str(got).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def local() -> Iterator[Local]:
    with serve(_Count) as served:
        yield served


def test_a_request_larger_than_the_socket_takes_is_sent_whole(
    local: Local, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Broken build caught: the queue's first send taken for the whole request (the server
    would wait for the rest, the client for an answer, until the timeout)."""
    rests: list[int] = []
    finish = reading_module.Reading._sent_in_part

    def counted(self: reading_module.Reading) -> None:
        rests.append(len(self.unsent or b""))
        finish(self)

    monkeypatch.setattr(reading_module.Reading, "_sent_in_part", counted)
    body = b"x" * (32 << 20)  # far more than a loopback socket's send buffer
    s = FastHttpSession(local.url, Recorder(), timeout=30)
    try:
        r = s.post("/", data=body)
        assert (r.status_code, r.content) == (200, str(len(body)).encode())
    finally:
        s.close()
    assert rests and 0 < rests[0] < len(body)  # the queue sent part, the user the rest


def _answer_then_reset(answered: threading.Event) -> Any:
    """Answer one request per connection, then reset it (no Connection: close said)."""

    def script(conn: socket.socket, hostile: Hostile) -> None:
        if hostile.read_request(conn):
            hostile.send(conn, OK)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
        answered.set()

    return script


def test_a_send_that_fails_on_a_reused_connection_is_stale_and_a_get_goes_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Broken build caught: a failed send that nobody is told of (the user waits for an answer
    to a request that never left), or one reported as a plain error (no retry)."""
    monkeypatch.setattr(Connection, "dropped", lambda self: False)  # past the liveness check
    woken: list[BaseException | None] = []
    wake = reading_module.Reading._wake

    def counted(self: reading_module.Reading) -> None:
        woken.append(self.failed)
        wake(self)

    monkeypatch.setattr(reading_module.Reading, "_wake", counted)
    answered = threading.Event()
    with hostile_server(_answer_then_reset(answered)) as hostile:
        s = FastHttpSession(hostile.url, Recorder(), timeout=10)
        try:
            assert s.get("/").status_code == 200
            assert answered.wait(10)  # reset: the next send on it fails at once
            (conn,) = s._connections.values()
            assert gevent.socket.wait_read(conn.sock.fileno(), timeout=10) is None  # RST in
            assert s.get("/").status_code == 200  # sent again, on a new connection
        finally:
            s.close()
    assert any(isinstance(f, ConnectionResetError | BrokenPipeError) for f in woken)
    assert len(hostile.requests) == 2  # the failed send reached nobody


class _Raw:
    """A socket's send, recorded."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send(self, data: bytes) -> int:
        self.sent.append(data)
        return len(data)


class _Conn:
    def __init__(self) -> None:
        self.raw = _Raw()
        self.watcher = type("W", (), {"callback": None})()


def test_a_request_whose_user_gave_up_is_not_sent() -> None:
    """Broken build caught: requests of users stopped while queued still sent (a stopped
    load test would send one more request per user)."""
    queue = hub_module.SendQueue(gevent.get_hub().loop)
    kept, dropped = _Conn(), _Conn()
    for conn, data in ((kept, b"GET /a"), (dropped, b"GET /b")):
        r = object.__new__(reading_module.Reading)
        r.conn = conn  # type: ignore[assignment]
        r.unsent, r.failed, r.sent = data, None, 0.0
        queue.readings.append(r)
    queue.readings[1].abandon()
    queue.flush()
    assert (kept.raw.sent, dropped.raw.sent) == ([b"GET /a"], [])
    assert queue.readings == []


def test_the_requests_of_one_turn_leave_in_one_flush(
    local: Local, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The point of the queue: users that run in the same turn share one flush."""
    sessions = [FastHttpSession(local.url, Recorder(), timeout=10) for _ in range(5)]
    flushes: list[int] = []
    flush = hub_module.SendQueue.flush

    def counted(self: hub_module.SendQueue) -> None:
        flushes.append(len(self.readings))
        flush(self)

    monkeypatch.setattr(hub_module.SendQueue, "flush", counted)
    try:
        users = [gevent.spawn(s.post, "/", data=b"x") for s in sessions]
        gevent.joinall(users, timeout=30, raise_error=True)
        assert [u.value.status_code for u in users] == [200] * 5
    finally:
        for s in sessions:
            s.close()
    assert flushes[0] == 5  # spawned together: their first requests went out together
