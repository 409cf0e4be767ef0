"""The HTTP clients against hostile targets (RELIABILITY.md rows 11-15, 26, 27, 34).

Each test runs both clients (``fast_http`` and ``http``, the requests session on the fast
transport) against a small raw-socket server in a thread (``hostile_http``). What is proved is
what the target could do to the load generator: how many bytes the client let it send before
closing (not how long it took), how much memory the client held (tracemalloc), which error the
request failed with. No timing thresholds.
"""

from __future__ import annotations

import gc
import gzip
import math
import socket
import struct
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import gevent
import gevent.socket
import pytest
from hostile_http import Hostile, canned, hostile_server

import pytest_swarm.clients.connect as connect_module
from pytest_swarm.clients.fast import FastHttpSession
from pytest_swarm.clients.http import HttpSession
from pytest_swarm.defaults import DEFAULT_TIMEOUT
from pytest_swarm.stats.recorder import Recorder
from pytest_swarm.stats.snapshot import Snapshot

MiB = 1024 * 1024
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@contextmanager
def client(kind: str, url: str, **kwargs: Any) -> Iterator[tuple[Any, Recorder]]:
    rec = Recorder()
    session: Any = (FastHttpSession if kind == "fast" else HttpSession)(url, rec, **kwargs)
    try:
        yield session, rec
    finally:
        session.close()


def error_of(r: Any) -> BaseException | None:
    return getattr(r, "error", None)


def only_error(snap: Snapshot) -> tuple[str, str, str]:
    (key,) = snap.errors
    return key


both = pytest.mark.parametrize("kind", ["fast", "http"])


# -- row 26: endless response headers -------------------------------------------------------------


@both
def test_endless_headers_fail_at_the_bound_with_flat_memory(kind: str) -> None:
    line = b"X-Filler: " + b"b" * 1000 + b"\r\n"
    cap = 64 * MiB  # what an unbounded client would swallow before the server gives up

    def endless(conn: socket.socket, hostile: Hostile) -> None:
        hostile.read_request(conn)
        total = 0
        if hostile.send(conn, b"HTTP/1.1 200 OK\r\n"):
            while total < cap and hostile.send(conn, line):
                total += len(line)

    with hostile_server(endless) as hostile, client(kind, hostile.url, timeout=10) as (s, rec):
        tracemalloc.start()
        try:
            r = s.get("/")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert r.status_code == 0
        assert type(error_of(r)).__name__ == "HeadersTooLarge"
        assert "65536" in str(error_of(r))
        assert hostile.closed.wait(10)  # the client hung up: the server could send no more
    # Bytes in flight in the kernel's buffers aside, the client read ~64 KiB of it.
    assert hostile.sent < cap / 4
    assert peak < 16 * MiB
    assert only_error(rec.drain())[1] == "HeadersTooLarge"


@both
@pytest.mark.parametrize(
    "head",
    [
        b"".join(b"X-H%d: v\r\n" % i for i in range(150)),  # too many
        b"X-Big: " + b"v" * (100 * 1024) + b"\r\n",  # one line too long
    ],
    ids=["150-headers", "100KiB-header"],
)
def test_a_complete_head_past_the_bounds_fails(kind: str, head: bytes) -> None:
    response = b"HTTP/1.1 200 OK\r\n" + head + b"Content-Length: 2\r\n\r\nok"
    with hostile_server(canned(response)) as hostile, client(kind, hostile.url) as (s, rec):
        r = s.get("/")
    assert r.status_code == 0 and type(error_of(r)).__name__ == "HeadersTooLarge"
    assert only_error(rec.drain())[1] == "HeadersTooLarge"


def test_a_head_within_the_bounds_is_fine() -> None:
    head = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 500) for i in range(99))
    response = b"HTTP/1.1 200 OK\r\n" + head + b"Content-Length: 2\r\n\r\nok"
    with hostile_server(canned(response)) as hostile, client("fast", hostile.url) as (s, _):
        r = s.get("/")
    assert (r.status_code, r.content, len(r.headers)) == (200, b"ok", 100)


# -- rows 14 and 34: a huge body, a compressed bomb ------------------------------------------------


BLOCK = b"x" * MiB  # made once: the server's allocations must not count as the client's


def huge_body(conn: socket.socket, hostile: Hostile) -> None:
    hostile.read_request(conn)
    if not hostile.send(conn, b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % 2**30):
        return
    block = BLOCK
    for _ in range(256):  # 256 MiB at most: what a client that reads it all would take
        if hostile.stop.is_set() or not hostile.send(conn, block):
            return


@both
def test_a_1gb_body_is_not_read_past_max_body(kind: str) -> None:
    with (
        hostile_server(huge_body) as hostile,
        client(kind, hostile.url, timeout=10, max_body=MiB) as (s, rec),
    ):
        r = s.get("/")
        assert r.status_code == 0 and type(error_of(r)).__name__ == "BodyTooLarge"
        assert hostile.closed.wait(10)
    # The client stopped reading at 1 MiB and hung up; the rest is the kernel's buffers.
    assert hostile.sent < 64 * MiB
    assert only_error(rec.drain())[1] == "BodyTooLarge"


@both
def test_failed_big_bodies_are_freed_at_once(kind: str) -> None:
    """With the cyclic collector off, five failed 1 MiB+ bodies leave nothing behind: no
    exception traceback or parser cycle holds a partial body."""
    with (
        hostile_server(huge_body) as hostile,
        client(kind, hostile.url, timeout=10, max_body=MiB) as (s, _),
    ):
        s.get("/")  # warm up: imports, caches
        gc.collect()
        gc.disable()
        tracemalloc.start()
        try:
            results = [s.get("/") for _ in range(5)]
            held = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
            gc.enable()
        assert all(r.status_code == 0 for r in results)
    assert held < MiB


@both
def test_a_gzip_bomb_fails_on_the_decoded_size(kind: str) -> None:
    bomb = gzip.compress(b"\0" * (100 * MiB), compresslevel=9)
    assert len(bomb) < 200 * 1024
    response = (
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(bomb)
        + bomb
    )
    with (
        hostile_server(canned(response)) as hostile,
        client(kind, hostile.url, max_body=MiB) as (s, rec),
    ):
        tracemalloc.start()
        try:
            r = s.get("/")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert r.status_code == 0 and type(error_of(r)).__name__ == "BodyTooLarge"
    assert "decoded" in str(error_of(r))
    assert peak < 16 * MiB  # never the 100 MiB it decodes to
    assert only_error(rec.drain())[1] == "BodyTooLarge"


# -- row 27: a trickling server -------------------------------------------------------------------


def trickle(conn: socket.socket, hostile: Hostile) -> None:
    """One byte every 50 ms of a head that would complete after 20 s."""
    hostile.read_request(conn)
    data = b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 400 + b"\r\nContent-Length: 2\r\n\r\nok"
    for i in range(len(data)):
        if hostile.stop.wait(0.05) or not hostile.send(conn, data[i : i + 1]):
            return


@both
def test_a_trickling_server_fails_at_the_whole_request_deadline(kind: str) -> None:
    # Every read is well within the 10 s timeout: only the deadline can end it.
    with (
        hostile_server(trickle) as hostile,
        client(kind, hostile.url, timeout=10, deadline=0.5) as (s, rec),
    ):
        r = s.get("/")
        assert hostile.closed.wait(10)
    assert r.status_code == 0 and type(error_of(r)).__name__ == "DeadlineExceeded"
    assert isinstance(error_of(r), TimeoutError) or kind == "http"
    assert hostile.sent < 200  # not the 440 bytes of the whole response
    assert only_error(rec.drain())[1] == "DeadlineExceeded"


def test_a_request_deadline_can_be_given_per_request() -> None:
    with hostile_server(trickle) as hostile, client("http", hostile.url, timeout=10) as (s, _):
        r = s.get("/", deadline=0.3)
    assert type(error_of(r)).__name__ == "DeadlineExceeded"


@both
def test_a_user_receiving_from_a_trickler_can_be_stopped(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stop of the run throws GreenletExit into users (engine/crowd.py); one waiting in a
    receive must end there and close its connection."""
    # The clients on gevent's sockets, as in a run (this test process is not patched).
    monkeypatch.setattr(connect_module, "socket", gevent.socket)
    with (
        hostile_server(trickle) as hostile,
        client(kind, hostile.url, timeout=60, deadline=60) as (s, rec),
    ):
        user = gevent.spawn(s.get, "/")
        for _ in range(1000):  # until the user is receiving (bounded)
            if hostile.started.is_set():
                break
            gevent.sleep(0.01)
        assert hostile.started.is_set()
        user.kill(gevent.GreenletExit, block=True, timeout=10)
        assert user.dead
        assert hostile.closed.wait(10)  # the connection went with the user
    assert rec.drain().entries == {}  # a stopped request is not a measurement


# -- row 12: a hanging target --------------------------------------------------------------------


def hang(conn: socket.socket, hostile: Hostile) -> None:
    hostile.read_request(conn)
    hostile.started.set()
    hostile.stop.wait(30)


def test_the_default_timeout_is_finite() -> None:
    assert DEFAULT_TIMEOUT is not None and math.isfinite(DEFAULT_TIMEOUT) and DEFAULT_TIMEOUT > 0
    rec = Recorder()
    fast, http = FastHttpSession(None, rec), HttpSession(None, rec)
    assert fast.timeout == fast.deadline == DEFAULT_TIMEOUT
    assert http.default_timeout == http.default_deadline == DEFAULT_TIMEOUT


@both
def test_a_hanging_target_times_out_with_the_session_timeout(kind: str) -> None:
    # No timeout= on the request: the session's (the fixture passes swarm_timeout) applies.
    with hostile_server(hang) as hostile, client(kind, hostile.url, timeout=0.3) as (s, rec):
        r = s.get("/")
    assert r.status_code == 0 and "Timeout" in type(error_of(r)).__name__
    assert "Timeout" in only_error(rec.drain())[1]


# -- row 11: refused and reset connections --------------------------------------------------------


def reset(conn: socket.socket, hostile: Hostile) -> None:
    hostile.read_request(conn)
    # SO_LINGER 0: close() sends a RST instead of a FIN.
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


@both
def test_resets_are_failures_grouped_under_one_error(kind: str) -> None:
    with hostile_server(reset) as hostile, client(kind, hostile.url) as (s, rec):
        results = [s.get("/") for _ in range(5)]
    assert all(r.status_code == 0 for r in results)
    snap = rec.drain()
    assert snap.entries["GET /"].failures == 5
    ((_, kind_name, _),) = snap.errors  # one group, not five
    assert kind_name in ("ConnectionResetError", "ConnectionError", "ConnectionClosed")
