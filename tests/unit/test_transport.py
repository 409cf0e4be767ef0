"""Unit tests for pytest_swarm.clients.transport: the requests adapter on the fast client.

Two ways in: a plain ``requests.Session()`` with :class:`FastTransportAdapter` mounted (what a
user gets, response objects included), and :class:`HttpSession` from ``clients/http.py`` (which
mounts it by default and records). A tiny ``http.server.ThreadingHTTPServer`` (HTTP/1.1,
keep-alive) in a thread serves the module and counts the connections it accepts. No gevent
patching.
"""

from __future__ import annotations

import contextlib
import doctest
import gzip
import io
import json
import zlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from local_http import Local, QuietHandler, closed_port, counts, serve
from requests.adapters import HTTPAdapter
from requests.exceptions import (
    ConnectionError,
    ContentDecodingError,
    HTTPError,
    InvalidSchema,
    ReadTimeout,
    RequestException,
)

import pytest_swarm.clients.transport as transport_module
from pytest_swarm.clients.http import HttpSession
from pytest_swarm.clients.transport import BodyTooLarge, FastTransportAdapter
from pytest_swarm.stats.recorder import Recorder

ZIPPED = b"zipped " * 100

# -- the local server -----------------------------------------------------------------------------


class _Handler(QuietHandler):
    def _reply(self, status: int, body: bytes = b"", headers: list[tuple[str, str]] | None = None):
        self.send_response(status)
        for name, value in headers or []:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            with contextlib.suppress(OSError):
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
        elif path == "/utf8":
            self._reply(200, "héllo".encode(), [("Content-Type", "text/plain; charset=utf-8")])
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
        elif path == "/loop":
            self._reply(302, b"", [("Location", "/loop")])
        elif path == "/cookie/set":
            self._reply(200, b"set", [("Set-Cookie", "a=1; Path=/"), ("Set-Cookie", "b=2; Path=/")])
        elif path == "/cookie/show":
            self._reply(200, cookie.encode())
        elif path == "/login":
            self._reply(303, b"", [("Set-Cookie", "sid=s3cret; Path=/"), ("Location", "/account")])
        elif path == "/logout":
            self._reply(200, b"bye", [("Set-Cookie", "sid=; Path=/; Max-Age=0")])
        elif path == "/account":
            ok = "sid=s3cret" in cookie
            self._reply(200 if ok else 401, b"welcome" if ok else b"login first")
        elif path == "/gzip":
            self._reply(200, gzip.compress(ZIPPED), [("Content-Encoding", "gzip")])
        elif path == "/deflate":
            self._reply(200, zlib.compress(ZIPPED), [("Content-Encoding", "deflate")])
        elif path == "/rawdeflate":
            packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
            data = packer.compress(ZIPPED) + packer.flush()
            self._reply(200, data, [("Content-Encoding", "deflate")])
        elif path == "/badgzip":
            self._reply(200, b"not gzip at all", [("Content-Encoding", "gzip")])
        elif path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in (b"hello ", b"chunked ", b"world"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        elif path == "/close":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"until the end")
        elif path == "/keepclose":
            self._reply(200, b"ok")
            self.close_connection = True
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
def session() -> Iterator[requests.Session]:
    """A plain requests session on the fast transport."""
    s = requests.Session()
    s.trust_env = False
    s.mount("http://", FastTransportAdapter())
    yield s
    s.close()


@pytest.fixture
def recorded(local: Local) -> Iterator[tuple[HttpSession, Recorder]]:
    rec = Recorder()
    s = HttpSession(local.url, rec, timeout=5)
    yield s, rec
    s.close()


def sent_headers(r: requests.Response) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for k, v in r.json()["headers"]:
        found.setdefault(k, []).append(v)
    return found


def test_module_doctests() -> None:
    assert doctest.testmod(transport_module).failed == 0


# -- responses look like requests' ---------------------------------------------------------------


def test_response_is_a_requests_response(session: requests.Session, local: Local) -> None:
    r = session.get(local.url + "/?q=1")
    assert isinstance(r, requests.Response)
    assert (r.status_code, r.reason, r.ok) == (200, "OK", True)
    assert r.headers["Content-Type"] == r.headers["content-type"] == "text/plain"
    assert r.headers["CONTENT-LENGTH"] == "2"
    assert (r.content, r.text) == (b"ok", "ok")
    assert r.encoding == "ISO-8859-1"  # requests' default for text/* without a charset
    assert r.url == local.url + "/?q=1"
    assert r.request.method == "GET" and r.request.url == r.url
    assert r.elapsed.total_seconds() > 0
    assert r.history == []
    r.raise_for_status()


def test_text_uses_the_declared_charset(session: requests.Session, local: Local) -> None:
    r = session.get(local.url + "/utf8")
    assert r.encoding == "utf-8"
    assert r.text == "héllo"


def test_json(session: requests.Session, local: Local) -> None:
    r = session.get(local.url + "/echo")
    assert r.json()["method"] == "GET"
    assert r.headers["content-type"] == "application/json"


def test_repeated_headers_are_joined_like_requests_does(
    session: requests.Session, local: Local
) -> None:
    r = session.get(local.url + "/cookie/set")
    assert r.headers["set-cookie"] == "a=1; Path=/, b=2; Path=/"
    assert "Set-Cookie" in list(r.headers)  # names keep the server's case, as in requests


def test_raise_for_status(session: requests.Session, local: Local) -> None:
    r = session.get(local.url + "/status/404")
    assert (r.status_code, r.reason, r.text) == (404, "Not Found", "status 404")
    with pytest.raises(HTTPError, match="404 Client Error: Not Found"):
        r.raise_for_status()


@pytest.mark.parametrize("path", ["/gzip", "/deflate", "/rawdeflate"])
def test_encoded_bodies_are_decoded(session: requests.Session, local: Local, path: str) -> None:
    r = session.get(local.url + path)
    assert r.content == ZIPPED
    assert r.headers["Content-Encoding"] in ("gzip", "deflate")


def test_a_body_that_does_not_decode_is_a_request_exception(
    session: requests.Session, local: Local
) -> None:
    with pytest.raises(ContentDecodingError):
        session.get(local.url + "/badgzip")


def test_chunked_and_close_delimited_bodies(session: requests.Session, local: Local) -> None:
    assert session.get(local.url + "/chunked").content == b"hello chunked world"
    assert session.get(local.url + "/close").content == b"until the end"
    assert session.get(local.url + "/").content == b"ok"


def test_head(session: requests.Session, local: Local) -> None:
    r = session.head(local.url + "/")
    assert (r.status_code, r.content, r.headers["content-length"]) == (200, b"", "2")


def test_status_without_a_body(session: requests.Session, local: Local) -> None:
    r = session.get(local.url + "/status/204")
    assert (r.status_code, r.content) == (204, b"")


# -- requests go out as requests builds them ---------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "body", "content_type"),
    [
        ({"data": b"\x00raw\xff"}, "\x00raw\xff", None),
        ({"data": "text é"}, "text é".encode().decode("latin-1"), None),
        (
            {"data": {"user": "ann", "n": "1 2"}},
            "user=ann&n=1+2",
            "application/x-www-form-urlencoded",
        ),
        ({"json": {"user": "ann"}}, '{"user": "ann"}', "application/json"),
    ],
)
def test_post_bodies(
    session: requests.Session, local: Local, kwargs: dict[str, Any], body: str, content_type: Any
) -> None:
    r = session.post(local.url + "/echo", timeout=5, **kwargs)
    assert r.status_code == 200
    echo = r.json()
    assert (echo["method"], echo["body"]) == ("POST", body)
    headers = sent_headers(r)
    assert headers.get("content-type", [None]) == [content_type]
    assert len(headers.get("content-length", [])) + len(headers.get("transfer-encoding", [])) == 1


@pytest.mark.parametrize(
    ("data", "body"),
    [
        (lambda: io.BytesIO(b"from a file"), "from a file"),
        (lambda: io.StringIO("text file"), "text file"),
        (lambda: (part for part in (b"gen", "erated")), "generated"),  # requests: chunked
        (lambda: iter(()), ""),
    ],
    ids=["binary-file", "text-file", "generator", "empty-iterator"],
)
def test_post_file_and_iterable_bodies(
    session: requests.Session, local: Local, data: Any, body: str
) -> None:
    r = session.post(local.url + "/echo", data=data(), timeout=5)
    assert r.json()["body"] == body
    headers = sent_headers(r)
    # Framed as r.request.headers say (requests marks a generator chunked), never both ways.
    if "Transfer-Encoding" in r.request.headers:
        assert r.request.headers["Transfer-Encoding"] == "chunked"
        assert headers["transfer-encoding"] == ["chunked"] and "content-length" not in headers
    else:
        assert headers["content-length"] == [r.request.headers["Content-Length"]]
        assert headers["content-length"] == [str(len(body))]
        assert "transfer-encoding" not in headers


def test_post_without_a_body(session: requests.Session, local: Local) -> None:
    r = session.post(local.url + "/echo")
    assert sent_headers(r)["content-length"] == ["0"]


def test_params_and_headers(session: requests.Session, local: Local) -> None:
    session.headers["X-Team"] = "perf"
    r = session.get(local.url + "/echo", params={"a": ["1", "2"]}, headers={"X-Req": "yes"})
    assert r.json()["path"] == "/echo?a=1&a=2"
    headers = sent_headers(r)
    assert headers["x-team"] == ["perf"] and headers["x-req"] == ["yes"]
    assert headers["host"] == [local.url.removeprefix("http://")]


def test_a_host_header_given_by_the_test_is_sent(session: requests.Session, local: Local) -> None:
    r = session.get(local.url + "/echo", headers={"Host": "shop.example"})
    assert sent_headers(r)["host"] == ["shop.example"]


def test_bytes_header_values_are_sent_as_text(session: requests.Session, local: Local) -> None:
    r = session.get(local.url + "/echo", headers={"X-Token": b"abc"})
    assert sent_headers(r)["x-token"] == ["abc"]


# -- cookies and redirects -----------------------------------------------------------------------


def test_cookies_go_through_the_session_jar(session: requests.Session, local: Local) -> None:
    r = session.get(local.url + "/cookie/set")
    assert r.cookies.get_dict() == {"a": "1", "b": "2"}
    assert session.cookies.get_dict() == {"a": "1", "b": "2"}
    assert session.get(local.url + "/cookie/show").text == "a=1; b=2"
    session.cookies.clear()
    assert session.get(local.url + "/cookie/show").text == ""


def test_login_flow(session: requests.Session, local: Local) -> None:
    assert session.get(local.url + "/account").status_code == 401
    r = session.post(local.url + "/login", data={"user": "ann", "password": "pw"})
    assert (r.status_code, r.text, r.url) == (200, "welcome", local.url + "/account")
    assert [h.status_code for h in r.history] == [303]
    assert r.request.method == "GET"  # 303: the follow-up is a GET
    assert session.cookies["sid"] == "s3cret"
    assert session.get(local.url + "/account").status_code == 200
    session.post(local.url + "/logout")
    assert "sid" not in session.cookies
    assert session.get(local.url + "/account").status_code == 401


def test_redirects_are_followed_by_requests(session: requests.Session, local: Local) -> None:
    r = session.get(local.url + "/redirect")
    assert (r.status_code, r.text, r.url) == (200, "ok", local.url + "/")
    assert [(h.status_code, h.headers["location"]) for h in r.history] == [(302, "/")]
    r = session.get(local.url + "/redirect", allow_redirects=False)
    assert r.status_code == 302 and r.is_redirect and r.text == "moved"
    r = session.post(local.url + "/redirect303", json={"a": 1})
    assert (r.json()["method"], r.json()["body"]) == ("GET", "")


def test_too_many_redirects(session: requests.Session, local: Local) -> None:
    session.max_redirects = 3
    with pytest.raises(requests.TooManyRedirects):
        session.get(local.url + "/loop")


# -- streaming ------------------------------------------------------------------------------------


def test_stream_and_iter_content(session: requests.Session, local: Local) -> None:
    r = session.get(local.url + "/big?n=100000", stream=True)
    chunks = list(r.iter_content(30_000))
    assert [len(c) for c in chunks] == [30_000, 30_000, 30_000, 10_000]
    assert b"".join(chunks) == b"x" * 100_000
    r = session.get(local.url + "/chunked", stream=True)
    assert list(r.iter_lines()) == [b"hello chunked world"]
    with session.get(local.url + "/", stream=True) as r:
        assert not r.raw.closed
        assert r.raw.read() == b"ok"  # buffered, but read as from urllib3's raw
        assert r.raw.closed and r.raw.read() == b""
    with session.get(local.url + "/gzip", stream=True) as r:
        assert r.raw.read(decode_content=True) == ZIPPED


# -- errors ---------------------------------------------------------------------------------------


def test_timeout_raises_read_timeout(session: requests.Session, local: Local) -> None:
    with pytest.raises(ReadTimeout):
        session.get(local.url + "/hang", timeout=0.1)
    with pytest.raises(ReadTimeout):
        session.get(local.url + "/hang", timeout=(5, 0.1))
    assert session.get(local.url + "/").status_code == 200


def test_connection_refused_raises_connection_error(session: requests.Session) -> None:
    with pytest.raises(ConnectionError):
        session.get(f"http://127.0.0.1:{closed_port()}/x", timeout=5)


def test_an_https_proxy_is_refused_by_name(session: requests.Session, local: Local) -> None:
    # http:// proxies and client certificates work: tests/unit/test_http_proxy_and_cert.py
    with pytest.raises(InvalidSchema, match="http:// proxies only"):
        session.get(local.url + "/", proxies={"http": "https://127.0.0.1:9"})


def test_body_too_large(local: Local) -> None:
    with requests.Session() as s:
        s.mount("http://", FastTransportAdapter(max_body=1000))
        assert s.get(local.url + "/big?n=1000").content == b"x" * 1000
        with pytest.raises(BodyTooLarge) as info:
            s.get(local.url + "/big?n=200000")
        assert isinstance(info.value, RequestException)
        assert "1000 bytes" in str(info.value)
        assert s.get(local.url + "/").text == "ok"  # a new connection


def test_a_plain_http_adapter_still_mounts(local: Local) -> None:
    with requests.Session() as s:
        s.mount("http://", HTTPAdapter())
        assert s.get(local.url + "/gzip").content == ZIPPED  # the reference behaviour


# -- connections ----------------------------------------------------------------------------------


def test_keep_alive_one_connection_per_session(session: requests.Session, local: Local) -> None:
    before = local.connections
    for i in range(20):
        r = session.post(local.url + "/echo", data=b"x") if i % 2 else session.get(local.url)
        assert r.status_code == 200
    session.get(local.url + "/redirect")
    session.get(local.url + "/status/500")
    assert local.connections - before == 1


def test_a_connection_closed_by_the_server_is_replaced(
    session: requests.Session, local: Local
) -> None:
    before, hits = local.connections, local.server.hits["/keepclose"]
    for _ in range(4):
        assert session.get(local.url + "/keepclose").text == "ok"
    assert local.connections - before == 4
    assert local.server.hits["/keepclose"] - hits == 4


def test_close_closes_the_connections(local: Local) -> None:
    before = local.connections
    s = requests.Session()
    s.mount("http://", FastTransportAdapter())
    s.get(local.url)
    s.close()
    s.get(local.url)
    s.close()
    assert local.connections - before == 2


# -- under HttpSession (the http fixture) --------------------------------------------------------


def test_http_session_records_through_the_transport(
    recorded: tuple[HttpSession, Recorder], local: Local
) -> None:
    s, rec = recorded
    assert isinstance(s.get_adapter(local.url), FastTransportAdapter)
    before = local.connections
    assert s.get("/?x=1").text == "ok"
    assert s.get("/status/500").status_code == 500
    assert s.post("/echo", json={"a": 1}).json()["body"] == '{"a": 1}'
    assert s.get("/gzip").content == ZIPPED
    assert sent_headers(s.get("/echo"))["accept-encoding"] == ["gzip, deflate"]
    assert local.connections - before == 1
    snap = rec.drain()
    assert counts(snap) == {
        "GET /": (1, 0),
        "GET /status/500": (1, 1),
        "POST /echo": (1, 0),
        "GET /gzip": (1, 0),
        "GET /echo": (1, 0),
    }
    assert set(snap.errors) == {("GET /status/500", "HTTPError", "500 Internal Server Error")}


def test_http_session_login_flow(recorded: tuple[HttpSession, Recorder]) -> None:
    s, rec = recorded
    r = s.post("/login", data={"user": "ann"})
    assert (r.status_code, r.text, len(r.history)) == (200, "welcome", 1)
    with s.get("/account", catch_response=True) as r:
        if r.text != "welcome":
            r.failure("not logged in")
    s.post("/logout")
    assert s.get("/account").status_code == 401
    snap = rec.drain()
    assert counts(snap) == {"POST /login": (1, 0), "GET /account": (2, 1), "POST /logout": (1, 0)}


@pytest.mark.parametrize(
    ("path", "kwargs", "kind"),
    [
        ("/hang", {"timeout": 0.1}, ReadTimeout),
        ("/badgzip", {}, ContentDecodingError),
    ],
)
def test_http_session_errors_are_recorded_failures(
    recorded: tuple[HttpSession, Recorder], path: str, kwargs: dict[str, Any], kind: type
) -> None:
    s, rec = recorded
    r = s.get(path, **kwargs)
    assert r.status_code == 0 and isinstance(r.error, kind)
    with pytest.raises(kind):
        r.raise_for_status()
    assert s.get("/").status_code == 200
    snap = rec.drain()
    assert counts(snap) == {f"GET {path}": (1, 1), "GET /": (1, 0)}
    ((name, error_kind, _),) = snap.errors
    assert (name, error_kind) == (f"GET {path}", kind.__name__)


def test_http_session_connection_refused() -> None:
    rec = Recorder()
    with HttpSession(f"http://127.0.0.1:{closed_port()}", rec, timeout=5) as s:
        r = s.get("/x")
    assert r.status_code == 0 and isinstance(r.error, ConnectionError)
    assert counts(rec.drain()) == {"GET /x": (1, 1)}


def test_http_session_body_too_large(local: Local) -> None:
    rec = Recorder()
    with HttpSession(local.url, rec, timeout=5, max_body=1000) as s:
        r = s.get("/big?n=5000")
        assert r.status_code == 0 and isinstance(r.error, BodyTooLarge)
        assert s.get("/big?n=10").status_code == 200
    snap = rec.drain()
    assert counts(snap) == {"GET /big": (2, 1)}
    assert next(iter(snap.errors))[1] == "BodyTooLarge"


def test_http_session_stream(recorded: tuple[HttpSession, Recorder]) -> None:
    s, rec = recorded
    r = s.get("/big?n=5000", stream=True)
    assert sum(len(c) for c in r.iter_content(1024)) == 5000
    assert counts(rec.drain()) == {"GET /big": (1, 0)}
