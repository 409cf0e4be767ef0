"""HTTP correctness of both clients (issue 9): what requests + urllib3 do, checked by hand.

``http`` is requests' session logic on the fast transport; ``fast_http`` is our own HTTP/1.1.
Each test says which behaviour of requests/urllib3 (or which RFC rule) it pins, against a
canned loopback server: the ``local_http`` echo server for well-formed exchanges, the raw
``hostile_http`` scripts for the framing cases a well-behaved server would never send.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import json
import os
import socket
import struct
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import urllib3
from hostile_http import Hostile, canned, hostile_server
from local_http import Local, QuietHandler, closed_port, serve

import pytest_swarm.clients.decoding as decoding_module
from pytest_swarm.clients.connect import RESOLVER, Connection
from pytest_swarm.clients.fast import FastHttpSession
from pytest_swarm.clients.http import HttpSession
from pytest_swarm.clients.transport import FastTransportAdapter
from pytest_swarm.stats.recorder import Recorder

TEXT = b"hello codings " * 50


class _Echo(QuietHandler):
    def _handle(self) -> None:
        path = urlsplit(self.path).path
        self.server.hits[path] += 1
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if "chunked" in self.headers.get("Transfer-Encoding", ""):
            body = _read_chunked(self.rfile)
        if path == "/redirect-other":  # to the same server under another host name
            port = self.server.server_address[1]
            self._reply(302, b"", [("Location", f"http://localhost:{port}/echo")])
        elif path == "/redirect-same":
            self._reply(302, b"", [("Location", "/echo")])
        elif path == "/see-other":
            self._reply(303, b"", [("Location", "/echo")])
        elif path == "/cookie/set":
            self._reply(
                200,
                b"set",
                [
                    ("Set-Cookie", "everywhere=1; Path=/"),
                    ("Set-Cookie", "scoped=2; Path=/cookie/only"),
                    ("Set-Cookie", "gone=3; Path=/"),
                ],
            )
        elif path == "/cookie/expire":
            self._reply(200, b"", [("Set-Cookie", "gone=; Path=/; Max-Age=0")])
        elif path == "/trailers":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Trailer", "X-Checksum")
            self.end_headers()
            self.wfile.write(b"2\r\nok\r\n0\r\nX-Checksum: 42\r\n\r\n")
        else:
            echo = {
                "method": self.command,
                "target": self.path,
                "body": body.decode("latin-1"),
                "headers": {k.lower(): v for k, v in self.headers.items()},
            }
            self._reply(200, json.dumps(echo).encode(), [("Content-Type", "application/json")])

    def _reply(self, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _handle


def _read_chunked(rfile: Any) -> bytes:
    parts: list[bytes] = []
    while True:
        size = int(rfile.readline().split(b";")[0], 16)
        data = rfile.read(size + 2)[:size]
        if not size:
            while rfile.readline() not in (b"\r\n", b""):
                pass
            return b"".join(parts)
        parts.append(data)


@pytest.fixture(scope="module")
def local() -> Iterator[Local]:
    with serve(_Echo) as server:
        yield server


@contextmanager
def client(kind: str, url: str | None = None, **kwargs: Any) -> Iterator[Any]:
    session: Any = (FastHttpSession if kind == "fast" else HttpSession)(url, Recorder(), **kwargs)
    try:
        yield session
    finally:
        session.close()


def plain_session() -> requests.Session:
    """A plain requests session on the transport (no HttpSession defaults or recording)."""
    s = requests.Session()
    s.trust_env = False
    s.mount("http://", FastTransportAdapter())
    s.mount("https://", FastTransportAdapter())
    return s


both = pytest.mark.parametrize("kind", ["fast", "http"])


def response(head: bytes, body: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\n" + head + b"\r\n" + body


# -- URL credentials -------------------------------------------------------------------------------


@both
def test_url_credentials_go_to_authorization_not_host(kind: str, local: Local) -> None:
    port = local.server.server_address[1]
    with client(kind) as s:
        r = s.get(f"http://user:s%40cret@127.0.0.1:{port}/echo")
    sent = r.json()["headers"]
    assert sent["host"] == f"127.0.0.1:{port}"
    assert sent["authorization"] == "Basic " + base64.b64encode(b"user:s@cret").decode()


# -- timeouts -------------------------------------------------------------------------------------


def test_a_read_timeout_of_none_waits() -> None:
    answered = threading.Event()

    def late(conn: socket.socket, hostile: Hostile) -> None:
        hostile.read_request(conn)
        hostile.stop.wait(0.8)  # longer than the connect timeout below
        hostile.send(conn, response(b"Content-Length: 2\r\n", b"ok"))
        answered.set()

    with hostile_server(late) as hostile, plain_session() as s:
        r = s.get(hostile.url, timeout=(0.3, None))  # urllib3: no read timeout at all
    assert r.status_code == 200 and answered.is_set()


@pytest.mark.parametrize("timeout", ["foo", (1, 2, 3), (1, "x"), -1, True])
def test_a_bad_timeout_is_a_value_error(timeout: Any, local: Local) -> None:
    with plain_session() as s, pytest.raises(ValueError):
        s.get(local.url + "/echo", timeout=timeout)


def test_a_urllib3_timeout_object_is_accepted(local: Local) -> None:
    with plain_session() as s:
        timeout: Any = urllib3.Timeout(connect=2, read=3)  # requests accepts it (untyped)
        r = s.get(local.url + "/echo", timeout=timeout)
    assert r.status_code == 200


# -- lazy decoding --------------------------------------------------------------------------------

BAD_GZIP_REDIRECT = (
    b"HTTP/1.1 302 Found\r\nLocation: /next\r\nContent-Encoding: gzip\r\n"
    b"Content-Length: 8\r\n\r\nnot gzip"
)
FINAL = response(b"Content-Length: 2\r\n", b"ok")


def test_a_redirect_body_is_drained_undecoded() -> None:
    # requests drains a redirect's body raw when it does not decode (urllib3: 200).
    with hostile_server(canned(BAD_GZIP_REDIRECT, FINAL)) as hostile, plain_session() as s:
        r = s.get(hostile.url + "/start")
    assert (r.status_code, r.content, len(r.history)) == (200, b"ok", 1)


def test_a_body_is_decoded_only_when_read() -> None:
    bad = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 8\r\n\r\nnot gzip"
    with hostile_server(canned(BAD_GZIP_REDIRECT, bad)) as hostile, plain_session() as s:
        r = s.get(hostile.url, allow_redirects=False)
        assert r.status_code == 302  # no ContentDecodingError from send()
        r = s.get(hostile.url, stream=True)
        assert r.status_code == 200  # nor for a streamed body nobody has read yet
        with pytest.raises(requests.exceptions.ContentDecodingError):
            _ = r.content
        assert r.raw.read(decode_content=False) == b""  # consumed, as with urllib3


# -- content codings ------------------------------------------------------------------------------


@both
def test_several_codings_are_undone_in_reverse_order(kind: str) -> None:
    body = gzip.compress(zlib.compress(TEXT))  # deflated, then gzipped
    head = b"Content-Encoding: deflate, gzip\r\nContent-Length: %d\r\n" % len(body)
    with hostile_server(canned(response(head, body))) as hostile, client(kind, hostile.url) as s:
        assert s.get("/").content == TEXT


@both
def test_brotli_without_a_brotli_module_is_a_clear_error(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(decoding_module, "_brotli", None)
    head = b"Content-Encoding: br\r\nContent-Length: 4\r\n"
    with (
        hostile_server(canned(response(head, b"\x0b\x02\x80x"))) as hostile,
        client(kind, hostile.url) as s,
    ):
        r = s.get("/")
    assert r.status_code == 0 and "brotli" in str(r.error)  # never the raw bytes as the body


@both
def test_brotli_is_decoded_when_a_module_is_installed(kind: str) -> None:
    brotli = pytest.importorskip("brotli")
    body = brotli.compress(TEXT)
    head = b"Content-Encoding: br\r\nContent-Length: %d\r\n" % len(body)
    with hostile_server(canned(response(head, body))) as hostile, client(kind, hostile.url) as s:
        assert s.get("/").content == TEXT


# -- framing --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cut",
    [
        response(b"Content-Length: 10\r\n", b"abc"),
        response(b"Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n3\r\nab"),
    ],
    ids=["content-length", "mid-chunk"],
)
def test_a_truncated_body_is_a_chunked_encoding_error(cut: bytes) -> None:
    with (
        hostile_server(canned(cut, close=True)) as hostile,
        plain_session() as s,
        pytest.raises(requests.exceptions.ChunkedEncodingError),
    ):
        s.get(hostile.url)


@both
@pytest.mark.parametrize(
    "head",
    [b"Content-Length: 2\r\nContent-Length: 2\r\n", b"Content-Length: 2, 2\r\n"],
    ids=["two-fields", "list"],
)
def test_a_repeated_identical_content_length_is_that_length(kind: str, head: bytes) -> None:
    # RFC 9112 §6.3 item 5 lets a recipient take one value repeated (urllib3 reads it).
    with (
        hostile_server(canned(response(head, b"ok"), FINAL)) as hostile,
        client(kind, hostile.url) as s,
    ):
        assert s.get("/").content == b"ok"
        assert s.get("/").content == b"ok"


@both
def test_differing_content_lengths_are_refused(kind: str) -> None:
    head = b"Content-Length: 2\r\nContent-Length: 3\r\n"
    with (
        hostile_server(canned(response(head, b"okk"))) as hostile,
        client(kind, hostile.url) as s,
    ):
        r = s.get("/")
    assert r.status_code == 0
    # requests + urllib3: InvalidHeader (a RequestException, so a recorded failure in http).
    expected = "InvalidFraming" if kind == "fast" else "InvalidHeader"
    assert type(r.error).__name__ == expected


def test_a_head_cut_after_the_status_line_is_a_chunked_encoding_error() -> None:
    cut = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"  # never ends
    with (
        hostile_server(canned(cut, close=True)) as hostile,
        plain_session() as s,
        pytest.raises(requests.exceptions.ChunkedEncodingError),
    ):
        s.get(hostile.url)


def test_a_read_timeout_is_worded_as_requests_words_it() -> None:
    def silent(conn: socket.socket, hostile: Hostile) -> None:
        hostile.read_request(conn)
        hostile.stop.wait(30)

    with (
        hostile_server(silent) as hostile,
        plain_session() as s,
        pytest.raises(requests.exceptions.ReadTimeout) as caught,
    ):
        s.get(hostile.url, timeout=0.2)
    assert "Read timed out" in caught.value.args[0].args[0]


def test_build_response_is_the_hook_requests_tests_use() -> None:
    """requests' own tests patch ``adapter.build_response`` and ``resp.raw.headers``: a
    Content-Encoding set there is the one the body is decoded with."""
    body = gzip.compress(b"patched")
    plain = response(b"Content-Length: %d\r\n" % len(body), body)
    with hostile_server(canned(plain)) as hostile, plain_session() as s:
        adapter = s.get_adapter(hostile.url)
        original = adapter.build_response  # type: ignore[attr-defined]

        def build_response(*args: Any) -> requests.Response:
            resp: requests.Response = original(*args)
            resp.raw.headers["content-encoding"] = "gzip"
            return resp

        adapter.build_response = build_response  # type: ignore[attr-defined]
        assert s.get(hostile.url).content == b"patched"


@both
def test_chunked_wins_over_content_length_and_the_connection_is_not_reused(kind: str) -> None:
    # RFC 9112 §6.3 item 3: Transfer-Encoding overrides Content-Length, and the message may be
    # a smuggling attempt: the connection is closed after it.
    head = b"Content-Length: 100\r\nTransfer-Encoding: chunked\r\n"
    first = response(head, b"2\r\nok\r\n0\r\n\r\n")
    with hostile_server(canned(first, FINAL)) as hostile, client(kind, hostile.url) as s:
        assert s.get("/").content == b"ok"
        assert s.get("/").content == b"ok"
    assert hostile.connections == 2


# -- keep-alive -----------------------------------------------------------------------------------


def close_after_each(answered: threading.Event, reset: bool = False) -> Any:
    """Answer one request per connection and close it, without saying Connection: close
    (with ``reset``, abortively: an RST, as a server timing out idle connections may)."""

    def script(conn: socket.socket, hostile: Hostile) -> None:
        if hostile.read_request(conn):
            hostile.send(conn, FINAL)
        if reset:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()
        else:
            conn.shutdown(socket.SHUT_RDWR)
        answered.set()

    return script


@both
@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
def test_an_idle_connection_closed_by_the_server_is_not_a_failure(kind: str, reset: bool) -> None:
    answered = threading.Event()
    with (
        hostile_server(close_after_each(answered, reset)) as hostile,
        client(kind, hostile.url) as s,
    ):
        statuses = []
        for _ in range(5):
            answered.clear()
            statuses.append(s.post("/", data=b"x").status_code)
            assert answered.wait(10)  # the server has closed the idle connection
    assert statuses == [200] * 5
    assert len(hostile.requests) == 5  # each sent once, on a fresh connection


@both
def test_a_post_is_not_sent_again_when_reuse_fails(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The race the liveness check cannot see (closed just after it): only an idempotent
    # request may go again; a POST the server may have acted on fails.
    monkeypatch.setattr(Connection, "dropped", lambda self: False)
    answered = threading.Event()
    with (
        hostile_server(close_after_each(answered)) as hostile,
        client(kind, hostile.url) as s,
    ):
        assert s.get("/").status_code == 200
        assert answered.wait(10)
        answered.clear()
        assert s.post("/", data=b"x").status_code == 0
        assert s.get("/").status_code == 200
        assert answered.wait(10)
        answered.clear()
        assert s.get("/").status_code == 200  # a GET on the stale connection: sent again
    assert [r.split(b" ", 1)[0] for r in hostile.requests] == [b"GET", b"GET", b"GET"]


@both
def test_head_keeps_the_connection(kind: str, local: Local) -> None:
    before = local.connections
    with client(kind, local.url) as s:
        for _ in range(3):
            r = s.head("/echo")
            assert r.status_code == 200 and r.content == b""
        assert s.get("/echo").json()["method"] == "GET"
    assert local.connections - before == 1


# -- addresses ------------------------------------------------------------------------------------


@both
def test_every_address_of_a_host_is_tried(
    kind: str, local: Local, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A name resolving to ::1 first (Debian, macOS localhost) and a server on 127.0.0.1."""
    port = local.server.server_address[1]
    name = f"dual-{kind}.swarm.test"
    real = socket.getaddrinfo

    def fake(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == name:
            return [
                (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", port, 0, 0)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
            ]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    with client(kind, f"http://{name}:{port}") as s:
        assert [s.get("/echo").status_code for _ in range(3)] == [200] * 3
        s.close()
        assert s.get("/echo").status_code == 200
    # Both cached, the one that worked first from now on.
    assert RESOLVER.addresses(name, port)[0] == (socket.AF_INET, ("127.0.0.1", port))
    assert len(RESOLVER.addresses(name, port)) == 2


@contextmanager
def unanswering(ip: str, port: int) -> Iterator[None]:
    """A listener on ``ip:port`` that never accepts, its backlog full: further SYNs are dropped,
    so a connect to it neither succeeds nor fails (a blackholed address, on loopback)."""
    listener = socket.socket()
    fillers: list[socket.socket] = []
    try:
        listener.bind((ip, port))
        listener.listen(0)
        for _ in range(4):  # enough to fill a backlog of 0 (Linux admits backlog + 1)
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect((ip, port))
            fillers.append(filler)
        yield
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def _attempts_to(ip: str, port: int) -> int:
    """Sockets of this machine connected or connecting to ``ip:port`` (/proc/net/tcp)."""
    wanted = f"{int.from_bytes(socket.inet_aton(ip), 'little'):08X}:{port:04X}"
    with open("/proc/net/tcp", encoding="ascii") as table:
        return sum(1 for line in table if line.split()[2:3] == [wanted])


@both
def test_an_address_that_never_answers_falls_back_to_the_next(
    kind: str, local: Local, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Happy eyeballs: the first address swallows the SYN, the second is served. Without a
    fallback the request hangs on the first until its connect timeout and fails."""
    port = local.server.server_address[1]
    name = f"blackholed-{kind}.swarm.test"
    real = socket.getaddrinfo
    looked_up: list[str] = []

    def fake(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == name:
            looked_up.append(host)
            return [
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.2", port)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
            ]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    try:
        with unanswering("127.0.0.2", port):
            attempts = _attempts_to("127.0.0.2", port)  # the fillers'
            with client(kind, f"http://{name}:{port}", timeout=20) as s:
                r = s.get("/echo", timeout=20) if kind == "http" else s.get("/echo")
                assert (r.status_code, getattr(r, "error", None)) == (200, None)
                s.close()
                assert s.get("/echo").status_code == 200  # a new connection, the good address
            # The losing attempt was closed, not left to the garbage collector.
            assert _attempts_to("127.0.0.2", port) == attempts
        assert looked_up == [name]  # resolved once, the list cached
        assert RESOLVER.addresses(name, port)[0] == (socket.AF_INET, ("127.0.0.1", port))
    finally:
        RESOLVER.clear()


def test_every_address_refusing_is_the_last_refusal(monkeypatch: pytest.MonkeyPatch) -> None:
    port = closed_port()
    name = "refused.swarm.test"
    real = socket.getaddrinfo

    def fake(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == name:
            return [
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.2", port)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
            ]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    try:
        with client("fast", f"http://{name}:{port}", timeout=20) as s:
            r = s.get("/")
        assert isinstance(r.error, ConnectionRefusedError)
    finally:
        RESOLVER.clear()


def test_an_idle_connection_past_descriptor_1024_is_reused(local: Local) -> None:
    """The liveness check before reuse must not use select(), which refuses descriptors past
    1024 (a load test with thousands of users has them): every such connection looked dropped."""
    a, b = socket.socketpair()
    high = os.dup2(a.fileno(), 1500)
    try:
        conn = Connection(socket.socket(fileno=high), None)
        assert conn.dropped() is False
        b.sendall(b"x")
        assert conn.dropped() is True
        conn.close()
    finally:
        a.close()
        b.close()


# -- TLS ------------------------------------------------------------------------------------------


@both
def test_a_missing_ca_bundle_is_named_in_the_error(kind: str) -> None:
    with hostile_server(canned(FINAL)) as hostile:
        url = f"https://127.0.0.1:{hostile.port}/"
        with client(kind, verify="/garbage/ca.pem") if kind == "fast" else client(kind) as s:
            r = s.get(url) if kind == "fast" else s.get(url, verify="/garbage/ca.pem")
    assert r.status_code == 0 and "/garbage/ca.pem" in str(r.error)


# -- fast_http: redirects, targets, cookies, trailers ---------------------------------------------


def test_fast_a_cross_host_redirect_drops_authorization(local: Local) -> None:
    with client("fast", local.url) as s:
        auth = {"Authorization": "Bearer t0ken"}
        same = s.get("/redirect-same", headers=auth, allow_redirects=True).json()
        other = s.get("/redirect-other", headers=auth, allow_redirects=True).json()
    assert same["headers"]["authorization"] == "Bearer t0ken"
    assert "authorization" not in other["headers"]
    assert other["headers"]["host"].startswith("localhost:")


def test_fast_a_post_turned_into_a_get_loses_its_content_type(local: Local) -> None:
    with client("fast", local.url) as s:
        r = s.post("/see-other", json={"a": 1}, allow_redirects=True).json()
    assert r["method"] == "GET" and r["body"] == ""
    assert "content-type" not in r["headers"] and "content-length" not in r["headers"]


def test_fast_the_request_target_is_percent_encoded(local: Local) -> None:
    with client("fast", local.url) as s:
        r = s.get("/a b/\u00e9t\u00e9?q=x y").json()
    assert r["target"] == "/a%20b/%C3%A9t%C3%A9?q=x%20y"


def test_fast_cookies_are_scoped(local: Local) -> None:
    port = local.server.server_address[1]
    with client("fast", local.url) as s:
        s.get("/cookie/set")
        root = s.get("/echo").json()["headers"].get("cookie", "")
        inside = s.get("/cookie/only/echo").json()["headers"].get("cookie", "")
        other_host = s.get(f"http://localhost:{port}/echo").json()["headers"]
        s.get("/cookie/expire")
        after = s.get("/cookie/only/x").json()["headers"].get("cookie", "")
    assert sorted(root.split("; ")) == ["everywhere=1", "gone=3"]
    assert sorted(inside.split("; ")) == ["everywhere=1", "gone=3", "scoped=2"]
    assert "cookie" not in other_host  # set by 127.0.0.1, not sent to localhost
    assert sorted(after.split("; ")) == ["everywhere=1", "scoped=2"]  # Max-Age=0 deleted it


def test_fast_chunked_trailers_are_not_headers(local: Local) -> None:
    with client("fast", local.url) as s:
        r = s.get("/trailers")
        assert (r.content, "x-checksum" in r.headers) == (b"ok", False)
        assert s.get("/echo").status_code == 200
