"""Unit tests for pytest_swarm.clients.fast (the ``fast_http`` client) against a real server.

A tiny ``http.server.ThreadingHTTPServer`` (HTTP/1.1, keep-alive) runs in a thread for the
module; it counts the connections it accepts and the requests it answers per path, so the tests
can prove keep-alive reuse and that a request was (or was not) sent again. No gevent patching:
the client works on plain blocking sockets here.
"""

from __future__ import annotations

import contextlib
import doctest
import gzip
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from local_http import Local, QuietHandler, closed_port, counts, serve

import pytest_swarm.clients.fast as fast_module
import pytest_swarm.clients.reading as reading_module
from pytest_swarm.clients.fast import (
    BodyTooLarge,
    CatchFastResponse,
    ConnectionClosed,
    FastHttpError,
    FastHttpSession,
    FastResponse,
    IncompleteBody,
)
from pytest_swarm.clients.wire import ParserPool
from pytest_swarm.stats.recorder import Recorder
from pytest_swarm.stats.snapshot import Snapshot

# -- the local server -----------------------------------------------------------------------------


class _Handler(QuietHandler):
    # helpers
    def _reply(
        self,
        status: int,
        body: bytes = b"",
        headers: list[tuple[str, str]] | None = None,
        length: bool = True,
    ) -> None:
        self.send_response(status)
        for name, value in headers or []:
            self.send_header(name, value)
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            with contextlib.suppress(OSError):  # the client may drop a body it does not want
                self.wfile.write(body)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                chunk = self.rfile.read(size + 2)[:size]
                if not size:
                    break
                chunks.append(chunk)
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        path, query = parts.path, {k: v[-1] for k, v in parse_qs(parts.query).items()}
        self.server.hits[path] += 1
        body = self._read_body()
        cookie = self.headers.get("Cookie", "")
        if path == "/":
            self._reply(200, b"ok", [("Content-Type", "text/plain")])
        elif path == "/echo":
            echo = {
                "method": self.command,
                "path": self.path,
                "body": body.decode("latin-1"),
                "headers": [[k.lower(), v] for k, v in self.headers.items()],
            }
            self._reply(200, json.dumps(echo).encode(), [("Content-Type", "application/json")])
        elif path.startswith("/status/"):
            code = int(path.rsplit("/", 1)[1])
            self._reply(code, b"" if code in (204, 304) else f"status {code}".encode())
        elif path == "/redirect":
            self._reply(302, b"moved", [("Location", query.get("to", "/"))])
        elif path == "/redirect303":
            self._reply(303, b"see other", [("Location", "/echo")])
        elif path == "/redirect307":
            self._reply(307, b"again", [("Location", "/echo")])
        elif path == "/loop":
            self._reply(302, b"", [("Location", "/loop")])
        elif path == "/cookie/set":
            self._reply(200, b"set", [("Set-Cookie", "a=1; Path=/"), ("Set-Cookie", "b=2")])
        elif path == "/cookie/clear":
            self._reply(200, b"cleared", [("Set-Cookie", "a=; Path=/; Max-Age=0")])
        elif path == "/cookie/show":
            self._reply(200, cookie.encode())
        elif path == "/login":
            self._reply(303, b"", [("Set-Cookie", "sid=s3cret; Path=/"), ("Location", "/account")])
        elif path == "/account":
            ok = "sid=s3cret" in cookie
            self._reply(200 if ok else 401, b"welcome" if ok else b"login first")
        elif path == "/gzip":
            self._reply(200, gzip.compress(b"zipped " * 100), [("Content-Encoding", "gzip")])
        elif path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in (b"hello ", b"chunked ", b"world"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        elif path == "/chunked-cut":  # a chunked body the server never finishes
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"5\r\nhello\r\n")
            self.close_connection = True
        elif path == "/close":  # body delimited by the end of the connection
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"until the end")
        elif path == "/keepclose":  # closes after the response without saying so
            self._reply(200, b"ok")
            self.close_connection = True
        elif path == "/partial":  # promises 10 bytes, sends 3, closes
            self._reply(200, b"abc", [("Content-Length", "10")], length=False)
            self.close_connection = True
        elif path == "/early-hints":  # an interim 103 response, then the final one
            self.wfile.write(b"HTTP/1.1 103 Early Hints\r\nLink: </app.css>\r\n\r\n")
            self.wfile.flush()
            self._reply(200, b"final", [("X-Final", "yes")])
        elif path == "/trailing":  # bytes after a complete response, in the same write
            self.wfile.write(
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-First: 1\r\n\r\nok"
                b"HTTP/1.1 500 Oops\r\nX-Stray: 1\r\n"
            )
        elif path == "/big":
            self._reply(200, b"x" * int(query.get("n", "0")))
        elif path == "/hang":
            self.server.release.wait(10)
            self._reply(200, b"late")
        else:
            self._reply(404, b"not found")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _handle


@pytest.fixture(scope="module")
def local() -> Iterator[Local]:
    with serve(_Handler) as server:
        yield server


@pytest.fixture
def client(local: Local) -> Iterator[tuple[FastHttpSession, Recorder]]:
    rec = Recorder()
    session = FastHttpSession(local.url, rec, timeout=5)
    yield session, rec
    session.close()


def only_error(snap: Snapshot) -> tuple[str, str, str]:
    (key,) = snap.errors
    return key


def test_module_doctests() -> None:
    assert doctest.testmod(fast_module).failed == 0


# -- naming and request building ------------------------------------------------------------------


def test_requests_are_named_method_and_path(client: tuple[FastHttpSession, Recorder]) -> None:
    s, rec = client
    assert s.get("/echo?x=1").status_code == 200
    assert s.get("/echo", params={"y": "2"}).status_code == 200
    s.get("/echo?page=3", name="echo page")
    s.post("/echo")
    s.request("delete", "/echo")
    assert counts(rec.drain()) == {
        "GET /echo": (2, 0),
        "echo page": (1, 0),
        "POST /echo": (1, 0),
        "DELETE /echo": (1, 0),
    }


def test_absolute_urls_and_no_base_url(local: Local) -> None:
    rec = Recorder()
    s = FastHttpSession(None, rec, timeout=5)
    try:
        r = s.get(local.url + "/echo?q=1")
        assert r.status_code == 200
        assert r.json()["path"] == "/echo?q=1"
        assert r.url == local.url + "/echo?q=1"
        assert counts(rec.drain()) == {"GET /echo": (1, 0)}
    finally:
        s.close()


def test_params_are_added_to_the_query(client: tuple[FastHttpSession, Recorder]) -> None:
    s, _ = client
    assert s.get("/echo", params={"a": "1", "b": ["x", "y z"]}).json()["path"] == (
        "/echo?a=1&b=x&b=y+z"
    )
    assert s.get("/echo?k=v", params={"a": 1}).json()["path"] == "/echo?k=v&a=1"


def _headers(r: FastResponse) -> dict[str, str]:
    return {k: v for k, v in r.json()["headers"]}


def test_json_body(client: tuple[FastHttpSession, Recorder]) -> None:
    s, _ = client
    echo = s.post("/echo", json={"user": "ann", "n": [1, 2]}).json()
    assert echo["method"] == "POST"
    assert json.loads(echo["body"]) == {"user": "ann", "n": [1, 2]}
    headers = {k: v for k, v in echo["headers"]}
    assert headers["content-type"] == "application/json"
    assert int(headers["content-length"]) == len(echo["body"])


@pytest.mark.parametrize(
    ("data", "body", "content_type"),
    [
        (b"\x00raw\xff", "\x00raw\xff", None),
        ("text é", "text é".encode().decode("latin-1"), None),
        ({"a": "1", "b": "x y"}, "a=1&b=x+y", "application/x-www-form-urlencoded"),
    ],
)
def test_data_bodies(
    client: tuple[FastHttpSession, Recorder], data: Any, body: str, content_type: str | None
) -> None:
    s, _ = client
    r = s.put("/echo", data=data)
    assert r.json()["body"] == body
    assert _headers(r).get("content-type") == content_type


def test_post_without_a_body_sends_content_length_0(
    client: tuple[FastHttpSession, Recorder],
) -> None:
    s, _ = client
    for _ in range(2):  # the second one uses the cached request head
        r = s.post("/echo")
        assert _headers(r)["content-length"] == "0"
    assert "content-length" not in _headers(s.get("/echo"))


def test_session_and_request_headers(client: tuple[FastHttpSession, Recorder]) -> None:
    s, _ = client
    assert _headers(s.get("/echo"))["user-agent"] == "pytest-swarm"
    s.headers["X-Team"] = "perf"
    sent = _headers(s.get("/echo", headers={"X-Request": "1", "User-Agent": "mine"}))
    assert (sent["x-team"], sent["x-request"], sent["user-agent"]) == ("perf", "1", "mine")
    assert [k for k, _ in s.get("/echo").json()["headers"]].count("user-agent") == 1


def test_a_host_header_given_by_the_test_replaces_the_default(
    client: tuple[FastHttpSession, Recorder],
) -> None:
    s, _ = client
    sent = s.get("/echo", headers={"Host": "shop.example"}).json()["headers"]
    assert [v for k, v in sent if k == "host"] == ["shop.example"]


def test_response_attributes(client: tuple[FastHttpSession, Recorder]) -> None:
    s, _ = client
    r = s.get("/")
    assert (r.status_code, r.reason, r.content, r.text, r.ok) == (200, "OK", b"ok", "ok", True)
    assert r.headers["content-type"] == "text/plain"  # lower-case names
    assert r.headers["content-length"] == "2"
    assert r.elapsed > 0
    assert r.error is None
    r.raise_for_status()
    assert repr(r) == "<FastResponse [200]>"


# -- failures -------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 204, 304, 399])
def test_status_below_400_is_a_success(
    client: tuple[FastHttpSession, Recorder], status: int
) -> None:
    s, rec = client
    assert s.get(f"/status/{status}", name="s").status_code == status
    snap = rec.drain()
    assert counts(snap) == {"s": (1, 0)}
    assert snap.errors == {}


@pytest.mark.parametrize(
    ("status", "message"),
    [(400, "400 Bad Request"), (404, "404 Not Found"), (503, "503 Service Unavailable")],
)
def test_status_400_and_above_is_a_failure(
    client: tuple[FastHttpSession, Recorder], status: int, message: str
) -> None:
    s, rec = client
    r = s.get(f"/status/{status}")
    assert r.status_code == status and r.content == f"status {status}".encode()
    assert not r.ok and r.error is None
    with pytest.raises(FastHttpError, match=str(status)):
        r.raise_for_status()
    snap = rec.drain()
    assert counts(snap) == {f"GET /status/{status}": (1, 1)}
    assert only_error(snap) == (f"GET /status/{status}", "HTTPError", message)


def test_connection_refused_returns_status_0_and_is_recorded_once() -> None:
    rec = Recorder()
    s = FastHttpSession(f"http://127.0.0.1:{closed_port()}", rec, timeout=5)
    r = s.get("/x?q=1")
    assert r.status_code == 0 and not r.ok
    assert isinstance(r.error, ConnectionRefusedError)
    assert r.content == b""
    with pytest.raises(ConnectionRefusedError):
        r.raise_for_status()
    snap = rec.drain()
    assert counts(snap) == {"GET /x": (1, 1)}
    assert only_error(snap)[:2] == ("GET /x", "ConnectionRefusedError")
    assert s._connections == {}


@pytest.mark.parametrize("url", ["/relative?q=1", "ftp://h/file?q=1"])
def test_an_unusable_url_is_a_failure_named_without_its_query(url: str) -> None:
    rec = Recorder()
    r = FastHttpSession(None, rec).get(url)
    assert r.status_code == 0 and isinstance(r.error, ValueError)
    snap = rec.drain()
    ((name, (total, failures)),) = counts(snap).items()
    assert (total, failures) == (1, 1)
    assert "?" not in name and name.startswith("GET ")


def test_timeout_is_a_failure_with_a_timeout_kind(local: Local) -> None:
    # A deadline well past the read timeout: the default deadline equals the timeout, and a
    # scheduling delay of a tenth of it before the request is sent (a loaded machine) would
    # make the deadline the nearer bound, and the error its.
    rec = Recorder()
    s = FastHttpSession(local.url, rec, timeout=0.2, deadline=30)
    try:
        r = s.get("/hang")
        assert r.status_code == 0 and isinstance(r.error, TimeoutError)
        assert "timeout=0.2s" in str(r.error)
        r = s.get("/hang", timeout=0.1, name="hang once more")
        assert isinstance(r.error, TimeoutError) and "timeout=0.1s" in str(r.error)
        assert s.get("/").status_code == 200  # the session goes on
    finally:
        s.close()
    snap = rec.drain()
    assert counts(snap) == {"GET /hang": (1, 1), "hang once more": (1, 1), "GET /": (1, 0)}
    assert {(name, kind) for name, kind, _ in snap.errors} == {
        ("GET /hang", "TimeoutError"),
        ("hang once more", "TimeoutError"),
    }


def test_body_too_large_is_a_failure_and_drops_the_connection(local: Local) -> None:
    rec = Recorder()
    s = FastHttpSession(local.url, rec, timeout=5, max_body=1000)
    try:
        before = local.connections
        assert s.get("/big?n=1000").content == b"x" * 1000  # at the bound: fine
        r = s.get("/big?n=300000")
        assert r.status_code == 0 and isinstance(r.error, BodyTooLarge)
        assert r.content == b""
        assert s._connections == {}  # not drained, dropped
        assert s.get("/").status_code == 200
        assert local.connections - before == 2
    finally:
        s.close()
    snap = rec.drain()
    assert counts(snap) == {"GET /big": (2, 1), "GET /": (1, 0)}
    name, kind, message = only_error(snap)
    assert (name, kind) == ("GET /big", "BodyTooLarge") and "1000 bytes" in message


# -- catch_response -------------------------------------------------------------------------------


def test_catch_response_success_overrides_the_status(
    client: tuple[FastHttpSession, Recorder],
) -> None:
    s, rec = client
    with s.get("/status/404", catch_response=True) as r:
        assert isinstance(r, CatchFastResponse)
        assert (r.status_code, r.content) == (404, b"status 404")
        assert r.headers["content-length"] == "10"
        assert rec.drain().empty  # nothing recorded before the block ends
        r.success()
    snap = rec.drain()
    assert counts(snap) == {"GET /status/404": (1, 0)} and snap.errors == {}


def test_catch_response_failure(client: tuple[FastHttpSession, Recorder]) -> None:
    s, rec = client
    with s.get("/", catch_response=True, name="home") as r:
        if r.text == "ok":
            r.failure("body was only ok")
    with s.get("/", catch_response=True) as r:
        r.failure(AssertionError("wrong body"))
    snap = rec.drain()
    assert counts(snap) == {"home": (1, 1), "GET /": (1, 1)}
    assert set(snap.errors) == {
        ("home", "Failure", "body was only ok"),
        ("GET /", "AssertionError", "wrong body"),
    }


@pytest.mark.parametrize(("status", "failed"), [(200, 0), (500, 1)])
def test_catch_response_without_a_verdict_follows_the_status(
    client: tuple[FastHttpSession, Recorder], status: int, failed: int
) -> None:
    s, rec = client
    with s.get(f"/status/{status}", catch_response=True, name="s"):
        pass
    assert counts(rec.drain()) == {"s": (1, failed)}


def test_exception_in_the_block_fails_the_request_once(
    client: tuple[FastHttpSession, Recorder],
) -> None:
    s, rec = client
    with pytest.raises(KeyError) as info:  # noqa: SIM117 (the raise must cross the with)
        with s.get("/", catch_response=True):
            raise KeyError("missing")
    assert info.value._swarm_recorded is True  # type: ignore[attr-defined]
    snap = rec.drain()
    assert counts(snap) == {"GET /": (1, 1)}
    ((key, group),) = snap.errors.items()
    assert key == ("GET /", "KeyError", "'missing'")
    assert "Traceback" in group.sample


def test_catch_response_with_a_connection_error() -> None:
    rec = Recorder()
    s = FastHttpSession(f"http://127.0.0.1:{closed_port()}", rec, timeout=5)
    with s.get("/x", catch_response=True) as r:
        assert r.status_code == 0 and isinstance(r.error, ConnectionRefusedError)
    assert only_error(rec.drain())[:2] == ("GET /x", "ConnectionRefusedError")
    with s.get("/x", catch_response=True) as r:
        r.success()  # the test's verdict wins
    snap = rec.drain()
    assert counts(snap) == {"GET /x": (1, 0)} and snap.errors == {}


# -- connections ----------------------------------------------------------------------------------


def test_keep_alive_reuses_one_connection(local: Local) -> None:
    rec = Recorder()
    s = FastHttpSession(local.url, rec, timeout=5)
    before = local.connections
    try:
        for i in range(20):
            verb = (s.get, s.post, s.get, s.get)[i % 4]
            assert verb("/echo" if i % 2 else "/").status_code == 200
        assert s.get("/status/404").status_code == 404  # an error status keeps it too
        assert s.get("/chunked").status_code == 200
    finally:
        s.close()
    assert local.connections - before == 1
    assert rec.drain().entries["GET /"].hist.total == 10


def test_sessions_do_not_share_connections(local: Local) -> None:
    before = local.connections
    sessions = [FastHttpSession(local.url, Recorder(), timeout=5) for _ in range(3)]
    try:
        for _ in range(3):
            for s in sessions:
                assert s.get("/").status_code == 200
    finally:
        for s in sessions:
            s.close()
    assert local.connections - before == 3


def test_a_kept_alive_connection_closed_by_the_server_is_sent_again_once(local: Local) -> None:
    rec = Recorder()
    s = FastHttpSession(local.url, rec, timeout=5)
    before_connections, before_hits = local.connections, local.server.hits["/keepclose"]
    try:
        for _ in range(5):
            r = s.get("/keepclose")
            assert (r.status_code, r.content, r.error) == (200, b"ok", None)
    finally:
        s.close()
    # Each request after the first found its connection closed and went on a new one; the
    # server answered each request exactly once.
    assert local.connections - before_connections == 5
    assert local.server.hits["/keepclose"] - before_hits == 5
    snap = rec.drain()
    assert counts(snap) == {"GET /keepclose": (5, 0)} and snap.errors == {}


def test_a_response_cut_short_is_a_failure_and_not_sent_again(local: Local) -> None:
    rec = Recorder()
    s = FastHttpSession(local.url, rec, timeout=5)
    before = local.server.hits["/partial"]
    try:
        assert s.get("/").status_code == 200  # the request goes on a kept-alive connection
        r = s.get("/partial")
        # The head came, the body was cut short: its own kind (requests' ChunkedEncodingError).
        assert r.status_code == 0 and isinstance(r.error, IncompleteBody)
        assert isinstance(r.error, ConnectionClosed)
        assert s.get("/").status_code == 200
    finally:
        s.close()
    assert local.server.hits["/partial"] - before == 1
    snap = rec.drain()
    assert counts(snap) == {"GET /": (2, 0), "GET /partial": (1, 1)}
    assert only_error(snap)[:2] == ("GET /partial", "IncompleteBody")


def test_a_chunked_body_cut_short_is_a_failure(client: tuple[FastHttpSession, Recorder]) -> None:
    s, rec = client
    r = s.get("/chunked-cut")
    assert r.status_code == 0 and isinstance(r.error, IncompleteBody)
    assert counts(rec.drain()) == {"GET /chunked-cut": (1, 1)}


def test_close_releases_the_connections(local: Local) -> None:
    s = FastHttpSession(local.url, Recorder(), timeout=5)
    before = local.connections
    s.get("/")
    s.close()
    assert s._connections == {}
    s.get("/")
    s.close()
    assert local.connections - before == 2


# -- bodies ---------------------------------------------------------------------------------------


def test_chunked_body(client: tuple[FastHttpSession, Recorder]) -> None:
    s, _ = client
    r = s.get("/chunked")
    assert (r.status_code, r.content) == (200, b"hello chunked world")
    assert r.headers["transfer-encoding"] == "chunked"
    assert s.get("/").content == b"ok"  # the connection is still in step


def test_body_delimited_by_the_end_of_the_connection(
    client: tuple[FastHttpSession, Recorder], local: Local
) -> None:
    s, rec = client
    before = local.connections
    r = s.get("/close")
    assert (r.status_code, r.content) == (200, b"until the end")
    assert s._connections == {}
    assert s.get("/close").content == b"until the end"
    assert local.connections - before == 2
    assert counts(rec.drain()) == {"GET /close": (2, 0)}


def test_gzip_body_is_asked_for_and_decoded(client: tuple[FastHttpSession, Recorder]) -> None:
    s, _ = client
    r = s.get("/gzip")
    assert r.headers["content-encoding"] == "gzip"
    assert r.content == b"zipped " * 100
    sent = dict(s.get("/echo").json()["headers"])
    assert sent["accept-encoding"].startswith("gzip, deflate")


def test_big_body(client: tuple[FastHttpSession, Recorder]) -> None:
    s, _ = client
    assert s.get("/big?n=3000000").content == b"x" * 3_000_000


def test_head(client: tuple[FastHttpSession, Recorder], local: Local) -> None:
    s, rec = client
    r = s.head("/")
    assert (r.status_code, r.content) == (200, b"")
    assert r.headers["content-length"] == "2"  # what a GET would have sent
    assert s.get("/").content == b"ok"
    assert counts(rec.drain()) == {"HEAD /": (1, 0), "GET /": (1, 0)}


def test_responses_read_a_few_bytes_at_a_time(
    client: tuple[FastHttpSession, Recorder], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every parse path holds when the response arrives in pieces (here: 7 bytes per recv)."""
    s, rec = client
    monkeypatch.setattr(reading_module, "_RECV", 7)
    r = s.head("/")
    assert r.headers["content-length"] == "2" and r.headers["content-type"] == "text/plain"
    assert s.get("/chunked").content == b"hello chunked world"
    assert s.get("/close").content == b"until the end"
    assert s.get("/big?n=5000").content == b"x" * 5000
    assert s.get("/status/204").status_code == 204
    assert s.post("/echo", json={"a": 1}).json()["method"] == "POST"
    assert all(failures == 0 for _, failures in counts(rec.drain()).values())


# -- redirects ------------------------------------------------------------------------------------


def test_redirects_are_not_followed_by_default(client: tuple[FastHttpSession, Recorder]) -> None:
    s, rec = client
    r = s.get("/redirect")
    assert r.status_code == 302 and r.headers["location"] == "/"
    assert counts(rec.drain()) == {"GET /redirect": (1, 0)}


def test_allow_redirects_follows(client: tuple[FastHttpSession, Recorder], local: Local) -> None:
    s, rec = client
    r = s.get("/redirect", allow_redirects=True)
    assert (r.status_code, r.content) == (200, b"ok")
    assert r.url == local.url + "/"
    assert counts(rec.drain()) == {"GET /redirect": (1, 0)}  # one request, as the test sees it


def test_303_turns_a_post_into_a_get(client: tuple[FastHttpSession, Recorder]) -> None:
    s, _ = client
    echo = s.post("/redirect303", json={"a": 1}, allow_redirects=True).json()
    assert (echo["method"], echo["body"], echo["path"]) == ("GET", "", "/echo")


def test_307_keeps_the_method_and_body(client: tuple[FastHttpSession, Recorder]) -> None:
    s, _ = client
    echo = s.post("/redirect307", data=b"payload", allow_redirects=True).json()
    assert (echo["method"], echo["body"]) == ("POST", "payload")


@pytest.mark.parametrize(
    ("location", "path"),
    [
        ("/echo?x=1", "/echo?x=1"),
        ("echo", "/echo"),
        ("{url}/echo?abs=1", "/echo?abs=1"),
    ],
)
def test_redirect_locations(
    client: tuple[FastHttpSession, Recorder], local: Local, location: str, path: str
) -> None:
    s, _ = client
    to = location.format(url=local.url)
    r = s.get("/redirect", params={"to": to}, allow_redirects=True)
    assert r.json()["path"] == path


def test_relative_redirect_with_a_slash_in_the_query(
    client: tuple[FastHttpSession, Recorder],
) -> None:
    s, _ = client
    r = s.get("/redirect?next=/a/b&to=echo", allow_redirects=True)
    assert r.json()["path"] == "/echo"


def test_too_many_redirects_is_a_failure(client: tuple[FastHttpSession, Recorder]) -> None:
    s, rec = client
    r = s.get("/loop", allow_redirects=True)
    assert r.status_code == 0 and isinstance(r.error, FastHttpError)
    assert only_error(rec.drain())[:2] == ("GET /loop", "FastHttpError")


# -- cookies --------------------------------------------------------------------------------------


def test_cookies_are_stored_and_sent_back(client: tuple[FastHttpSession, Recorder]) -> None:
    s, _ = client
    assert s.get("/cookie/show").content == b""
    r = s.get("/cookie/set")
    assert r.headers["set-cookie"] == "a=1; Path=/\nb=2"  # repeated header, joined
    assert s.cookies == {"a": "1", "b": "2"}
    assert s.get("/cookie/show").content == b"a=1; b=2"
    s.get("/cookie/clear")  # an empty value deletes the cookie
    assert s.cookies == {"b": "2"}
    assert s.get("/cookie/show").content == b"b=2"


def test_login_flow_with_cookies(client: tuple[FastHttpSession, Recorder]) -> None:
    s, rec = client
    assert s.get("/account").status_code == 401
    r = s.post("/login", data={"user": "ann"})
    assert r.status_code == 303
    assert s.get("/account").content == b"welcome"
    s.close()
    s.cookies.clear()
    r = s.post("/login", data={"user": "ann"}, allow_redirects=True)
    assert (r.status_code, r.content) == (200, b"welcome")
    snap = rec.drain()
    assert counts(snap) == {"GET /account": (2, 1), "POST /login": (2, 0)}


def test_catch_response_on_a_cookie_response_sees_the_headers(
    client: tuple[FastHttpSession, Recorder],
) -> None:
    s, rec = client
    with s.get("/cookie/set", catch_response=True) as r:
        if "a=1" not in r.headers["set-cookie"]:
            r.failure("no cookie")
    assert counts(rec.drain()) == {"GET /cookie/set": (1, 0)}
    assert s.cookies["a"] == "1"


def test_an_interim_103_response_is_skipped(local: Local) -> None:
    rec = Recorder()
    s = FastHttpSession(local.url, rec, timeout=5)
    before = local.connections
    try:
        r = s.get("/early-hints")
        assert (r.status_code, r.content, r.reason) == (200, b"final", "OK")
        assert r.headers["x-final"] == "yes" and "link" not in r.headers
        assert s.get("/").status_code == 200  # the connection is still good
    finally:
        s.close()
    assert local.connections - before == 1
    assert counts(rec.drain()) == {"GET /early-hints": (1, 0), "GET /": (1, 0)}


def test_bytes_after_a_complete_response_keep_it_and_drop_the_connection(local: Local) -> None:
    rec = Recorder()
    s = FastHttpSession(local.url, rec, timeout=5)
    before = local.connections
    try:
        r = s.get("/trailing")
        assert (r.status_code, r.content, r.reason, r.error) == (200, b"ok", "OK", None)
        assert r.headers == {"content-length": "2", "x-first": "1"}
        assert s.get("/").status_code == 200  # on a new connection
    finally:
        s.close()
    assert local.connections - before == 2
    snap = rec.drain()
    assert counts(snap) == {"GET /trailing": (1, 0), "GET /": (1, 0)} and snap.errors == {}


def test_parsers_are_shared_between_users_one_response_at_a_time(
    local: Local, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An idle user holds no parser: sessions used one after the other need only one.
    parsers = ParserPool()
    pool = parsers.free
    monkeypatch.setattr(fast_module, "PARSERS", parsers)
    sessions = [FastHttpSession(local.url, Recorder(), timeout=5) for _ in range(4)]
    try:
        for _ in range(3):
            for s in sessions:
                assert s.get("/echo").status_code == 200
                assert s.get("/chunked").content == b"hello chunked world"
        assert len(pool) == 1
        (lent,) = pool
        # A parser left mid-message (a response cut short) is not given back.
        assert sessions[0].get("/partial").status_code == 0
        assert pool == []
        assert sessions[1].get("/").content == b"ok"
        assert len(pool) == 1 and pool[0] is not lent  # a new one
    finally:
        for s in sessions:
            s.close()


def test_the_parser_pool_is_bounded(local: Local, monkeypatch: pytest.MonkeyPatch) -> None:
    parsers = ParserPool(limit=0)
    pool = parsers.free
    monkeypatch.setattr(fast_module, "PARSERS", parsers)
    s = FastHttpSession(local.url, Recorder(), timeout=5)
    try:
        assert [s.get("/").content for _ in range(3)] == [b"ok"] * 3
    finally:
        s.close()
    assert pool == []
