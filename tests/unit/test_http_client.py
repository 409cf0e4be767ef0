"""Unit tests for pytest_swarm.clients.http: naming, failure rules, catch_response, bounds.

Most tests mount a fake ``requests`` adapter (no network); a few talk to a tiny
``http.server.ThreadingHTTPServer`` on 127.0.0.1 started in a thread by the ``local`` fixture.
No gevent patching is involved.
"""

from __future__ import annotations

import contextlib
import doctest
import http
import io
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

import pytest_swarm.clients.http as http_module
from pytest_swarm.clients.http import (
    BodyTooLarge,
    CatchResponse,
    HttpSession,
    error_message,
    join_url,
    request_name,
)
from pytest_swarm.defaults import DEFAULT_TIMEOUT
from pytest_swarm.stats.recorder import Recorder
from pytest_swarm.stats.snapshot import Snapshot

BASE = "http://fake.test"


class FakeAdapter(BaseAdapter):
    """Answers every request with a canned response (or raises), and remembers the call."""

    def __init__(self, status: int = 200, body: bytes = b"ok", exc: Exception | None = None):
        super().__init__()
        self.status, self.body, self.exc = status, body, exc
        self.calls: list[dict[str, Any]] = []

    def send(  # type: ignore[override]
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> requests.Response:
        self.calls.append(
            {"url": request.url, "stream": stream, "timeout": timeout, "proxies": proxies}
        )
        if self.exc is not None:
            raise self.exc
        response = requests.Response()
        response.status_code = self.status
        known = self.status in http.HTTPStatus._value2member_map_
        response.reason = http.HTTPStatus(self.status).phrase if known else "Whatever"
        response.headers = CaseInsensitiveDict()
        response.raw = io.BytesIO(self.body)
        response.url = request.url or ""
        response.request = request
        return response

    def close(self) -> None:
        pass


def session(
    adapter: FakeAdapter | None = None, base: str | None = BASE, **kwargs: Any
) -> tuple[HttpSession, Recorder, FakeAdapter]:
    rec = Recorder()
    s = HttpSession(base, rec, **kwargs)
    adapter = adapter or FakeAdapter()
    s.mount("http://", adapter)
    return s, rec, adapter


def drained(rec: Recorder) -> Snapshot:
    return rec.drain()


def only_error(snap: Snapshot) -> tuple[str, str, str]:
    (key,) = snap.errors
    return key


def test_module_doctests() -> None:
    assert doctest.testmod(http_module).failed == 0


# -- naming ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url", "name"),
    [
        ("get", "http://h/items?page=2", "GET /items"),
        ("post", "http://h:8080/a/b/#frag", "POST /a/b/"),
        ("GET", "http://h", "GET /"),
        ("delete", "/cart/1?x=y", "DELETE /cart/1"),
        ("Patch", "https://user:pw@h/p;params", "PATCH /p;params"),
    ],
)
def test_request_name(method: str, url: str, name: str) -> None:
    assert request_name(method, url) == name


@pytest.mark.parametrize(
    ("base", "url", "joined"),
    [
        (None, "/items", "/items"),
        ("", "http://h/x", "http://h/x"),
        ("http://h", "/items", "http://h/items"),
        ("http://h/", "items", "http://h/items"),
        ("http://h/api/", "/items", "http://h/api/items"),
        ("http://h/api", "items?q=1", "http://h/api/items?q=1"),
        ("http://h", "https://other/x", "https://other/x"),
        ("http://h", "", "http://h/"),
    ],
)
def test_join_url(base: str | None, url: str, joined: str) -> None:
    assert join_url(base, url) == joined


def test_join_url_with_an_url_in_the_query_string() -> None:
    assert join_url("http://h", "/login?next=http://h/cart") == "http://h/login?next=http://h/cart"


def test_requests_are_recorded_under_their_name() -> None:
    s, rec, adapter = session()
    s.get("/items/1?x=1")
    s.get("/items/2", name="GET /items/:id")
    s.request(b"POST", b"/cart")
    s.get("http://elsewhere.test/abs")
    snap = drained(rec)
    assert sorted(snap.entries) == ["GET /abs", "GET /items/1", "GET /items/:id", "POST /cart"]
    assert [c["url"] for c in adapter.calls] == [
        "http://fake.test/items/1?x=1",
        "http://fake.test/items/2",
        "http://fake.test/cart",
        "http://elsewhere.test/abs",
    ]
    assert all(e.failures == 0 and e.hist.total == 1 for e in snap.entries.values())


# -- failures -------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 204, 302, 399])
def test_status_below_400_is_a_success(status: int) -> None:
    s, rec, _ = session(FakeAdapter(status=status, body=b""))
    assert s.get("/x", allow_redirects=False).status_code == status
    snap = drained(rec)
    assert (snap.entries["GET /x"].hist.total, snap.entries["GET /x"].failures) == (1, 0)
    assert snap.errors == {}


@pytest.mark.parametrize(
    ("status", "message"),
    [(400, "400 Bad Request"), (404, "404 Not Found"), (500, "500 Internal Server Error")],
)
def test_status_400_and_above_is_a_failure(status: int, message: str) -> None:
    s, rec, _ = session(FakeAdapter(status=status, body=b"nope"))
    response = s.get("/x")
    assert response.status_code == status
    assert response.content == b"nope"
    snap = drained(rec)
    assert (snap.entries["GET /x"].hist.total, snap.entries["GET /x"].failures) == (1, 1)
    assert only_error(snap) == ("GET /x", "HTTPError", message)


def test_connection_error_returns_a_status_0_response() -> None:
    exc = requests.ConnectionError("Connection refused at 0xdeadbeef\nmore detail")
    s, rec, _ = session(FakeAdapter(exc=exc))
    response = s.get("/x?q=1")
    assert response.status_code == 0
    assert response.error is exc
    assert response.content == b""
    assert response.url == "http://fake.test/x?q=1"
    assert response.request.method == "GET"
    with pytest.raises(requests.ConnectionError):
        response.raise_for_status()
    snap = drained(rec)
    assert snap.entries["GET /x"].failures == 1
    # The message is stable for grouping: first line, no object address.
    assert only_error(snap) == ("GET /x", "ConnectionError", "Connection refused")


def test_timeout_is_a_failure_not_an_exception() -> None:
    s, rec, _ = session(FakeAdapter(exc=requests.ReadTimeout("read timed out")))
    assert s.get("/slow").status_code == 0
    assert only_error(drained(rec)) == ("GET /slow", "ReadTimeout", "read timed out")


@pytest.mark.parametrize(
    ("url", "kind"), [("/nowhere", "MissingSchema"), ("http://", "InvalidURL")]
)
def test_unusable_url_is_a_failure(url: str, kind: str) -> None:
    s, rec, _ = session(base=None)
    response = s.get(url)
    assert response.status_code == 0
    assert type(response.error).__name__ == kind
    assert only_error(drained(rec))[1] == kind


def test_exceptions_that_are_not_request_errors_propagate() -> None:
    s, rec, _ = session(FakeAdapter(exc=KeyError("bug in an adapter")))
    with pytest.raises(KeyError):
        s.get("/x")
    assert drained(rec).empty


def test_error_message() -> None:
    assert error_message(ValueError("object at 0x7f00ab12 broke")) == "object broke"
    assert error_message(ValueError("first\nsecond")) == "first"
    assert error_message(ValueError("x" * 500)) == "x" * 200
    assert error_message(ValueError()) == "ValueError"


# -- defaults -------------------------------------------------------------------------------------


def test_default_timeout_reaches_the_adapter() -> None:
    s, _, adapter = session()
    s.get("/a")
    s.get("/b", timeout=1.5)
    assert [c["timeout"] for c in adapter.calls] == [DEFAULT_TIMEOUT, 1.5]
    s2, _, adapter2 = session(timeout=2.5)
    s2.post("/c", data=b"x")
    assert adapter2.calls[0]["timeout"] == 2.5
    assert DEFAULT_TIMEOUT is not None and DEFAULT_TIMEOUT > 0


def test_trust_env_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("http_proxy", "http://proxy.invalid:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    s, _, adapter = session()
    assert s.trust_env is False
    s.get("/x")
    assert not adapter.calls[0]["proxies"]


def test_body_is_read_and_kept() -> None:
    s, _, adapter = session(FakeAdapter(body=b"a" * 300_000))
    response = s.get("/x")
    assert adapter.calls[0]["stream"] is True  # read by the session, with its bound
    assert response.content == b"a" * 300_000
    assert response.text.startswith("aaa")


@pytest.mark.parametrize("size", [0, 999, 1000])
def test_body_within_the_bound_is_fine(size: int) -> None:
    s, rec, _ = session(FakeAdapter(body=b"b" * size), max_body=1000)
    assert s.get("/x").content == b"b" * size
    assert drained(rec).errors == {}


def test_body_too_large_is_a_failure() -> None:
    s, rec, _ = session(FakeAdapter(body=b"b" * 1001), max_body=1000)
    response = s.get("/big")
    assert response.status_code == 0
    assert isinstance(response.error, BodyTooLarge)
    assert response.content == b""
    snap = drained(rec)
    assert snap.entries["GET /big"].failures == 1
    name, kind, message = only_error(snap)
    assert (name, kind) == ("GET /big", "BodyTooLarge")
    assert "1000 bytes" in message


def test_streamed_body_is_left_to_the_user() -> None:
    s, rec, _ = session(FakeAdapter(body=b"b" * 5000), max_body=1000)
    response = s.get("/x", stream=True)
    assert response.raw.read() == b"b" * 5000
    assert drained(rec).errors == {}


# -- catch_response -------------------------------------------------------------------------------


def test_catch_response_success_overrides_the_status() -> None:
    s, rec, _ = session(FakeAdapter(status=503))
    with s.get("/x", catch_response=True) as r:
        assert isinstance(r, CatchResponse)
        assert r.status_code == 503 and r.text == "ok"
        r.success()
    snap = drained(rec)
    assert (snap.entries["GET /x"].hist.total, snap.entries["GET /x"].failures) == (1, 0)


def test_catch_response_failure_with_a_reason() -> None:
    s, rec, _ = session()
    with s.get("/x", catch_response=True, name="slow page") as r:
        r.failure("too slow " + "!" * 300)
    snap = drained(rec)
    assert snap.entries["slow page"].failures == 1
    name, kind, message = only_error(snap)
    assert (name, kind) == ("slow page", "Failure")
    assert message == ("too slow " + "!" * 300)[:200]


def test_catch_response_failure_with_an_exception() -> None:
    s, rec, _ = session()
    with s.get("/x", catch_response=True) as r:
        r.failure(AssertionError("wrong body"))
    assert only_error(drained(rec)) == ("GET /x", "AssertionError", "wrong body")


@pytest.mark.parametrize(("status", "failed"), [(200, 0), (404, 1)])
def test_catch_response_without_a_verdict_follows_the_status(status: int, failed: int) -> None:
    s, rec, _ = session(FakeAdapter(status=status))
    with s.get("/x", catch_response=True):
        pass
    entry = drained(rec).entries["GET /x"]
    assert (entry.hist.total, entry.failures) == (1, failed)


def test_catch_response_records_nothing_before_the_block_ends() -> None:
    s, rec, _ = session()
    r = s.get("/x", catch_response=True)
    assert drained(rec).empty
    with r:
        pass
    assert drained(rec).entries["GET /x"].hist.total == 1


def test_exception_in_the_block_fails_the_request_once() -> None:
    s, rec, _ = session()
    with pytest.raises(KeyError) as info:  # noqa: SIM117 (the raise must cross the with)
        with s.get("/x", catch_response=True):
            raise KeyError("missing")
    assert info.value._swarm_recorded is True  # type: ignore[attr-defined]
    snap = drained(rec)
    assert (snap.entries["GET /x"].hist.total, snap.entries["GET /x"].failures) == (1, 1)
    ((key, group),) = snap.errors.items()
    assert key == ("GET /x", "KeyError", "'missing'")
    assert "KeyError" in group.sample and "Traceback" in group.sample


def test_exception_after_a_verdict_keeps_the_verdict() -> None:
    s, rec, _ = session()
    with pytest.raises(RuntimeError) as info:  # noqa: SIM117
        with s.get("/x", catch_response=True) as r:
            r.success()
            raise RuntimeError("later")
    assert not hasattr(info.value, "_swarm_recorded")
    entry = drained(rec).entries["GET /x"]
    assert (entry.hist.total, entry.failures) == (1, 0)


def test_catch_response_with_a_connection_error() -> None:
    exc = requests.ConnectionError("refused")
    s, rec, _ = session(FakeAdapter(exc=exc))
    with s.get("/x", catch_response=True) as r:
        assert r.status_code == 0 and r.error is exc
        with pytest.raises(requests.ConnectionError):
            r.raise_for_status()
    assert only_error(drained(rec)) == ("GET /x", "ConnectionError", "refused")
    with s.get("/y", catch_response=True) as r:
        r.success()  # the user's verdict wins
    assert drained(rec).entries["GET /y"].failures == 0


def test_catch_response_with_a_body_too_large() -> None:
    s, rec, _ = session(FakeAdapter(body=b"z" * 20), max_body=10)
    with s.get("/x", catch_response=True) as r:
        assert r.status_code == 0
    assert only_error(drained(rec))[1] == "BodyTooLarge"


# -- against a real local server ------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        parts = self.path.split("?")[0].strip("/").split("/")
        status, size = 200, 2
        if parts[0] == "status":
            status = int(parts[1])
        elif parts[0] == "bytes":
            size = int(parts[1])
        self.send_response(status)
        self.send_header("Content-Length", str(size))
        self.end_headers()
        with contextlib.suppress(OSError):  # the client may drop a body it does not want
            self.wfile.write(b"x" * size)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


@pytest.fixture(scope="module")
def local() -> Iterator[str]:
    server = _Server(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_real_server_success_and_failures(local: str) -> None:
    rec = Recorder()
    with HttpSession(local, rec) as s:
        assert s.get("/ok?x=1").status_code == 200
        assert s.get("/status/404").status_code == 404
        assert s.get("/status/503", name="unavailable").status_code == 503
        assert s.get(local + "/bytes/10").content == b"x" * 10
    snap = rec.drain()
    assert {n: (e.hist.total, e.failures) for n, e in snap.entries.items()} == {
        "GET /ok": (1, 0),
        "GET /status/404": (1, 1),
        "unavailable": (1, 1),
        "GET /bytes/10": (1, 0),
    }
    assert set(snap.errors) == {
        ("GET /status/404", "HTTPError", "404 Not Found"),
        ("unavailable", "HTTPError", "503 Service Unavailable"),
    }


def test_real_server_body_bound(local: str) -> None:
    rec = Recorder()
    with HttpSession(local, rec, max_body=100_000) as s:
        assert s.get("/bytes/100000").status_code == 200
        response = s.get("/bytes/2000000")
        assert response.status_code == 0 and isinstance(response.error, BodyTooLarge)
        assert s.get("/ok").status_code == 200  # the session is still usable
    snap = rec.drain()
    assert snap.entries["GET /bytes/2000000"].failures == 1
    assert snap.entries["GET /bytes/100000"].failures == 0


def test_real_server_ignores_proxy_settings(local: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    rec = Recorder()
    with HttpSession(local, rec) as s:
        assert s.get("/ok").status_code == 200
    assert rec.drain().errors == {}


def test_connection_refused(local: str) -> None:
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    rec = Recorder()
    with HttpSession(f"http://127.0.0.1:{port}", rec, timeout=5) as s:
        response = s.get("/x")
    assert response.status_code == 0
    assert isinstance(response.error, requests.ConnectionError)
    snap = rec.drain()
    assert snap.entries["GET /x"].failures == 1
    assert only_error(snap)[:2] == ("GET /x", "ConnectionError")
