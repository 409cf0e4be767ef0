"""``stream=True`` in the ``http`` client's transport: the body is read from the connection as the
test asks for it, as requests + urllib3 do.

Each behaviour is checked on both a plain ``requests.Session`` (urllib3, the reference) and one
with :class:`FastTransportAdapter` mounted, against the same loopback server; what the
transport adds (the bounds of a load test: ``swarm_max_body``, the request's deadline) is
checked on its own. No sleeps: the servers wait on events the tests set.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests
from hostile_http import Hostile, hostile_server
from local_http import Local, QuietHandler, counts, serve
from requests.adapters import HTTPAdapter

from pytest_swarm.clients.fast import FastHttpSession
from pytest_swarm.clients.http import HttpSession
from pytest_swarm.clients.transport import BodyTooLarge, DeadlineExceeded, FastTransportAdapter
from pytest_swarm.stats.recorder import Recorder

BODY = bytes(range(256)) * 400  # 102,400 bytes


class _Handler(QuietHandler):
    def do_GET(self) -> None:
        self.server.hits[self.path] += 1
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for start in range(0, len(BODY), 10_000):
                piece = BODY[start : start + 10_000]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
            return
        body, headers = BODY, [("Content-Type", "application/octet-stream")]
        if self.path == "/gzip":
            body, headers = gzip.compress(BODY), [("Content-Encoding", "gzip")]
        self.send_response(200)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def local() -> Iterator[Local]:
    with serve(_Handler) as server:
        yield server


@contextmanager
def session(kind: str, **adapter: Any) -> Iterator[requests.Session]:
    s = requests.Session()
    s.trust_env = False
    s.mount("http://", HTTPAdapter() if kind == "urllib3" else FastTransportAdapter(**adapter))
    try:
        yield s
    finally:
        s.close()


def reads(kind: str, url: str) -> dict[str, Any]:
    """What a test sees of a streamed body read with ``raw.read(n)``, step by step."""
    seen: dict[str, Any] = {}
    with session(kind) as s:
        r = s.get(url, stream=True, timeout=10)
        seen["closed before"] = r.raw.closed
        first = r.raw.read(3, decode_content=True)
        second = r.raw.read(1000, decode_content=True)
        rest = r.raw.read(decode_content=True)
        seen["sizes"] = (len(first), len(second), len(rest))
        seen["whole"] = first + second + rest == BODY
        seen["after the end"] = r.raw.read(10, decode_content=True)
        seen["closed after"] = r.raw.closed
        seen["tell"] = r.raw.tell() > 0
        r.close()
    return seen


@pytest.mark.parametrize("path", ["/plain", "/chunked", "/gzip"])
def test_a_streamed_body_reads_as_with_urllib3(local: Local, path: str) -> None:
    assert reads("fast", local.url + path) == reads("urllib3", local.url + path)


def test_iter_content_chunks_are_the_sizes_urllib3_gives(local: Local) -> None:
    sizes = {}
    for kind in ("urllib3", "fast"):
        with session(kind) as s:
            r = s.get(local.url + "/plain", stream=True, timeout=10)
            sizes[kind] = [len(c) for c in r.iter_content(40_000)]
    assert sizes["fast"] == sizes["urllib3"] == [40_000, 40_000, 22_400]


@pytest.mark.parametrize("kind", ["urllib3", "fast"])
def test_the_connection_is_reused_once_the_body_is_read(kind: str, local: Local) -> None:
    before = local.connections
    with session(kind) as s:
        for _ in range(3):
            r = s.get(local.url + "/chunked", stream=True, timeout=10)
            assert sum(len(c) for c in r.iter_content(4096)) == len(BODY)
        assert s.get(local.url + "/plain", timeout=10).content == BODY
    assert local.connections - before == 1


def test_a_response_closed_before_its_end_closes_its_connection() -> None:
    release, sent_all = threading.Event(), threading.Event()
    with hostile_server(held_back(release, sent_all)) as hostile, session("fast") as s:
        for _ in range(2):
            r = s.get(hostile.url + "/", stream=True, timeout=30)
            assert r.raw.read(5) == b"first"
            r.close()  # 5 bytes of the body still to come: this connection cannot go on
            assert r.raw.closed and r.raw.read() == b""
        assert hostile.connections == 2
        release.set()


@pytest.mark.parametrize("kind", ["urllib3", "fast"])
def test_a_second_request_while_a_stream_is_open(kind: str) -> None:
    release, sent_all = threading.Event(), threading.Event()
    with hostile_server(held_back(release, sent_all)) as hostile, session(kind) as s:
        r = s.get(hostile.url + "/", stream=True, timeout=30)
        assert r.raw.read(3) == b"fir"
        other = s.get(hostile.url + "/", stream=True, timeout=30)  # its own connection
        assert other.raw.read(5) == b"first"
        release.set()
        assert r.raw.read() == b"stlater"
        assert other.raw.read() == b"later"
        assert hostile.connections == 2


def held_back(release: threading.Event, sent_all: threading.Event) -> Any:
    """A script: the head and the first 5 bytes of a 10-byte body, the rest once ``release``
    is set (``sent_all`` then)."""

    def script(conn: Any, hostile: Hostile) -> None:
        hostile.read_request(conn)
        hostile.send(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nfirst")
        if release.wait(20) and hostile.send(conn, b"later"):
            sent_all.set()

    return script


def test_the_response_comes_back_before_its_body_is_complete() -> None:
    """Streaming for real: with the body read inside ``send()``, ``get`` would only return
    once the server had sent all of it."""
    release, sent_all = threading.Event(), threading.Event()
    with hostile_server(held_back(release, sent_all)) as hostile, session("fast") as s:
        r = s.get(hostile.url + "/", stream=True, timeout=30)
        assert not sent_all.is_set()
        assert r.raw.read(5) == b"first"
        release.set()
        assert r.raw.read() == b"later"
        assert sent_all.wait(10)  # set by the server thread just after its send


def test_a_streamed_body_is_bounded_by_max_body(local: Local) -> None:
    with session("fast", max_body=50_000) as s:
        with pytest.raises(BodyTooLarge, match="50000 bytes"):  # in get() or while reading
            r = s.get(local.url + "/chunked", stream=True, timeout=10)
            for _ in r.iter_content(1000):
                pass
        # The session goes on, on a new connection.
        assert s.get(local.url + "/gzip", stream=True, timeout=10).raw.read(2) == b"\x1f\x8b"


def test_a_streamed_gzip_body_is_bounded_on_its_decoded_size(local: Local) -> None:
    with session("fast", max_body=50_000) as s:
        r = s.get(local.url + "/gzip", stream=True, timeout=10)  # 102,400 decoded bytes
        assert len(r.raw.read(decode_content=False)) < 50_000  # received: within the bound
        r = s.get(local.url + "/gzip", stream=True, timeout=10)
        with pytest.raises(BodyTooLarge, match="decoded"):
            r.raw.read(decode_content=True)


def test_a_streamed_body_is_bounded_by_the_request_deadline() -> None:
    release, sent_all = threading.Event(), threading.Event()
    with hostile_server(held_back(release, sent_all)) as hostile:
        s = HttpSession(hostile.url, Recorder(), timeout=30, deadline=0.5)
        try:
            r = s.get("/", stream=True)
            assert r.raw.read(5) == b"first"
            with pytest.raises(DeadlineExceeded):
                r.raw.read(5)
        finally:
            release.set()
            s.close()


def test_http_records_a_stream_when_its_head_arrives_with_the_announced_size(
    local: Local,
) -> None:
    rec = Recorder()
    s = HttpSession(local.url, rec, timeout=10)
    try:
        r = s.get("/plain", stream=True)
        snap = rec.drain()
        assert counts(snap) == {"GET /plain": (1, 0)}
        assert snap.entries["GET /plain"].size == len(BODY)
        assert r.raw.read() == BODY
        with s.get("/chunked", stream=True, catch_response=True) as caught:
            assert len(caught.raw.read(100)) == 100
        assert counts(rec.drain()) == {"GET /chunked": (1, 0)}
    finally:
        s.close()


def test_fast_http_refuses_stream_by_name(local: Local) -> None:
    s = FastHttpSession(local.url, Recorder(), timeout=10)
    try:
        with pytest.raises(TypeError, match=r"fast_http does not stream \(stream=True\)"):
            s.get("/plain", stream=True)
    finally:
        s.close()
