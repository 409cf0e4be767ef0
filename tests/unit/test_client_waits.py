"""The request path's own costs, counted (never timed): what a plain request no longer does.

- ``fast_http`` on gevent sockets waits with its own watcher, its bound an entry in the hub's
  one timer (``hub.Deadlines``): no ``gevent.Timeout`` nor libev timer per response
  (``hub.wait_for``);
- ``Crowd.pause(0)`` after the user waited on the event loop yields nothing more (no timer);
  a user that never waits still yields on every zero pause;
- the ``http`` client prepares a plain request without requests' ``to_key_val_list`` (an
  ``isinstance`` against a runtime-checkable protocol, ~5 µs each on Python 3.11), with the
  same ``PreparedRequest`` as requests' own ``Session.prepare_request``.
"""

from __future__ import annotations

import socket as stdlib_socket
from collections.abc import Callable, Iterator
from http import cookiejar
from typing import Any

import gevent
import gevent.timeout
import pytest
import requests
import requests.models
import requests.sessions
from gevent_sockets import _gevent_sockets  # noqa: F401  (autouse: the run's sockets)
from hypothesis import given, settings
from hypothesis import strategies as st
from local_http import Local, QuietHandler, serve

import pytest_swarm.clients.connect as connect_module
import pytest_swarm.clients.http as http_module
import pytest_swarm.clients.reading as reading
from pytest_swarm.clients import hub
from pytest_swarm.clients.fast import FastHttpSession, FastResponse
from pytest_swarm.clients.http import HttpSession
from pytest_swarm.clients.transport import FastTransportAdapter
from pytest_swarm.engine.crowd import Crowd
from pytest_swarm.stats.recorder import Recorder


class _Ok(QuietHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


@pytest.fixture(scope="module")
def local() -> Iterator[Local]:
    with serve(_Ok) as served:
        yield served


def _counting(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> list[int]:
    calls: list[int] = []
    real = getattr(owner, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    return calls


# -- fast_http: no gevent.Timeout per response ---------------------------------------------------


def test_responses_on_gevent_sockets_start_no_gevent_timeout(
    local: Local, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Broken build caught: waiting through gevent's socket recv (a Timeout per response)."""
    s = FastHttpSession(local.url, Recorder(), timeout=5)
    try:
        assert s.get("/").status_code == 200  # connected (and its connect waits) before counting
        started = _counting(monkeypatch, gevent.timeout.Timeout, "_start_new_or_dummy")
        created = _counting(monkeypatch, gevent.timeout.Timeout, "start_new")
        assert [s.get("/").status_code for _ in range(5)] == [200] * 5
        assert (started, created) == ([], [])
        (conn,) = s._connections.values()
        assert conn.raw is not None and not conn.watcher.active  # waited itself, watcher off
    finally:
        s.close()


class _SizeRecorder:
    """An OS socket's stand-in that records the sizes asked of recv."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self.sizes: list[int] = []

    def recv(self, size: int) -> bytes:
        self.sizes.append(size)
        return bytes(self._raw.recv(size))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


@pytest.mark.parametrize("stamped", [True, False], ids=["kernel-stamped", "plain"])
def test_a_receive_asks_for_less_than_the_allocators_mmap_threshold(
    local: Local, monkeypatch: pytest.MonkeyPatch, stamped: bool
) -> None:
    """Broken build caught: 256 KiB receives, each an mmap + mremap + munmap (glibc maps
    allocations from 128 KiB up), three system calls per response on top of the recv."""
    s = FastHttpSession(local.url, Recorder(), timeout=5)
    try:
        assert s.get("/").status_code == 200
        (conn,) = s._connections.values()
        conn.stamped = stamped
        conn.raw = recorder = _SizeRecorder(conn.raw)
        real = reading.recv_stamped

        def recv_stamped(sock: Any, size: int) -> tuple[bytes, float]:
            recorder.sizes.append(size)
            return real(sock, size)

        monkeypatch.setattr(reading, "recv_stamped", recv_stamped)
        assert s.get("/").status_code == 200
        assert recorder.sizes and max(recorder.sizes) < 128 * 1024
    finally:
        s.close()


def test_a_read_timeout_on_the_own_wait_is_the_read_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The bound of the fast client's own wait ends a silent read with the read
    timeout's error (the deadline far away), and the watcher is left stopped."""
    listener = stdlib_socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    try:
        rec = Recorder()
        s = FastHttpSession(f"http://127.0.0.1:{listener.getsockname()[1]}", rec, timeout=0.05)
        try:
            r = s.get("/", deadline=30)  # accepted by the backlog, never answered
            assert isinstance(r.error, TimeoutError)
            assert "read timed out (timeout=0.05s)" in str(r.error)
            assert s._connections == {}  # a cut-off response's connection is dropped
        finally:
            s.close()
    finally:
        listener.close()


# -- Crowd.pause(0) --------------------------------------------------------------------------------


class _CountingLoop:
    """The hub's loop, counting the timers Crowd asks for."""

    def __init__(self, loop: Any) -> None:
        self._real = loop
        self.timers = 0

    def timer(self, *args: Any, **kwargs: Any) -> Any:
        self.timers += 1
        return self._real.timer(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def _run_users(body: Callable[[Crowd, int], None], users: int) -> tuple[_CountingLoop, Crowd]:
    crowd = Crowd()
    loop = _CountingLoop(crowd._loop)
    crowd._loop = loop
    for n in range(users):
        crowd.spawn(lambda n, c=crowd: body(c, n), n)
    assert crowd.join(timeout=10)
    return loop, crowd


def test_a_zero_pause_after_waiting_on_the_loop_starts_no_timer() -> None:
    """Broken build caught: a zero-length timer (and a trip through the hub) on every zero
    pause, though the user's request already let the others and the timers run."""

    def body(crowd: Crowd, n: int) -> None:
        for _ in range(5):
            gevent.sleep(0.001)  # a request's wait on the loop, as far as the loop can tell
            crowd.pause(0.0)

    loop, crowd = _run_users(body, 1)
    assert loop.timers == 1  # the first zero pause yields: nothing is known of before
    assert crowd._turns == {}  # forgotten with the user


def test_a_user_that_never_waits_yields_on_every_zero_pause() -> None:
    """The zero pause's purpose stays: CPU-bound users take turns (and timers fire)."""
    order: list[int] = []

    def body(crowd: Crowd, n: int) -> None:
        for _ in range(3):
            order.append(n)
            crowd.pause(0.0)

    loop, _ = _run_users(body, 2)
    assert loop.timers == 6
    assert order == [0, 1, 0, 1, 0, 1]


# -- http: prepare_request ------------------------------------------------------------------------


def test_a_plain_request_is_prepared_without_requests_protocol_checks(
    local: Local, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Broken build caught: requests' merge_setting/_encode_params on every request (eight
    ``isinstance`` checks against its SupportsItems protocol)."""
    s = HttpSession(local.url, Recorder())
    try:
        assert s.get("/").status_code == 200
        in_sessions = _counting(monkeypatch, requests.sessions, "to_key_val_list")
        in_models = _counting(monkeypatch, requests.models, "to_key_val_list")
        assert [s.get("/").status_code for _ in range(3)] == [200] * 3
        assert s.get("/", headers={"X-A": "1"}).request.headers["X-A"] == "1"
        assert (in_sessions, in_models) == ([], [])
    finally:
        s.close()


_names = st.sampled_from(["X-A", "x-a", "Accept", "User-Agent", "X-B", "Cookie"])
_values = st.one_of(st.none(), st.sampled_from(["1", "two", "a b"]))
_settings = st.dictionaries(_names, _values, max_size=4)
_params = st.one_of(
    st.none(),
    st.dictionaries(st.sampled_from(["q", "page", "x"]), _values, max_size=3),
    st.lists(st.tuples(st.sampled_from(["q", "r"]), st.sampled_from(["1", "2"])), max_size=3),
    st.just("raw=1"),
)


@settings(max_examples=150, deadline=None)
@given(
    session_headers=_settings,
    request_headers=st.one_of(st.none(), _settings),
    session_params=st.dictionaries(st.sampled_from(["q", "s"]), _values, max_size=2),
    request_params=_params,
    path=st.sampled_from(["/", "/a b", "/é?x=1", "/p?q=0#frag"]),
    data=st.one_of(st.none(), st.just({"f": "1"}), st.just(b"raw"), st.just("text")),
    json=st.one_of(st.none(), st.just({"k": [1, 2]})),
    auth=st.one_of(st.none(), st.just(("user", "pw"))),
    cookies=st.one_of(st.none(), st.just({"c": "1"})),
    session_cookie=st.booleans(),
    trust_env=st.booleans(),
)
def test_prepared_requests_are_those_requests_prepares(
    session_headers: dict[str, str | None],
    request_headers: dict[str, str | None] | None,
    session_params: dict[str, str | None],
    request_params: Any,
    path: str,
    data: Any,
    json: Any,
    auth: tuple[str, str] | None,
    cookies: dict[str, str] | None,
    session_cookie: bool,
    trust_env: bool,
) -> None:
    """The fast preparation (and its caches: the same URL comes back in other examples) gives
    what ``requests.Session.prepare_request`` gives, field by field."""
    ours = HttpSession(None, Recorder())
    theirs = requests.Session()
    for s in (ours, theirs):
        s.headers.update(session_headers)
        s.params.update(session_params)
        s.trust_env = trust_env
        if session_cookie:
            s.cookies.set("sid", "42", domain="127.0.0.1", path="/")
    theirs.headers = requests.structures.CaseInsensitiveDict(ours.headers)
    request = requests.Request(
        "get",
        f"http://127.0.0.1:8089{path}",
        headers=request_headers,
        params=request_params,
        data=data,
        json=json,
        auth=auth,
        cookies=cookies,
    )
    mine = ours.prepare_request(request)
    expected = requests.Session.prepare_request(theirs, request)
    assert (mine.method, mine.url, mine.body) == (expected.method, expected.url, expected.body)
    assert list(mine.headers.items()) == list(expected.headers.items())
    assert mine.hooks == expected.hooks
    assert sorted((c.name, c.value) for c in mine._cookies) == sorted(  # type: ignore[union-attr]
        (c.name, c.value)
        for c in expected._cookies  # type: ignore[union-attr]
    )
    proxies = {"http": "http://127.0.0.1:3128"} if session_cookie else {}
    url = mine.url or ""
    assert ours.merge_environment_settings(url, dict(proxies), None, None, None) == (
        requests.Session.merge_environment_settings(theirs, url, dict(proxies), None, None, None)
    )
    ours.close()
    theirs.close()


def test_a_changed_session_setting_reaches_the_next_request(local: Local) -> None:
    """Nothing of a session's headers or params is cached between requests."""
    s = HttpSession(local.url, Recorder())
    try:
        assert "X-Team" not in s.get("/").request.headers
        s.headers["X-Team"] = "perf"
        s.params["v"] = "2"
        r = s.get("/")
        assert r.request.headers["X-Team"] == "perf" and r.request.url.endswith("/?v=2")
        s.headers["X-Team"] = None  # type: ignore[assignment]
        assert "X-Team" not in s.get("/").request.headers
    finally:
        s.close()


def test_a_response_without_cookies_is_not_handed_to_the_cookie_jar(
    local: Local, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Broken build caught: http.cookiejar's extract_cookies (policy, lock, header scan) on
    every response of the ``http`` client, cookies or none."""
    s = HttpSession(local.url, Recorder())
    try:
        assert s.get("/").status_code == 200
        extracted = _counting(monkeypatch, cookiejar.CookieJar, "extract_cookies")
        assert [s.get("/").status_code for _ in range(3)] == [200] * 3
        assert extracted == []
    finally:
        s.close()


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([b"X-A", b"x-a", b"X-a", b"Set-Cookie", b"Content-Type", b"Vary"]),
            st.sampled_from([b"1", b"two", b"text/plain; charset=latin-1", b""]),
        ),
        max_size=8,
    )
)
def test_response_headers_are_those_the_mapping_would_hold(raw: list[tuple[bytes, bytes]]) -> None:
    """The transport fills the response's CaseInsensitiveDict through its store: the same
    names (the last one's case), values (repeats joined with ", ") and order as through
    its __setitem__."""
    expected: requests.structures.CaseInsensitiveDict[str] = (
        requests.structures.CaseInsensitiveDict()
    )
    for name, value in raw:
        previous = expected.get(name.decode())
        expected[name.decode()] = (
            value.decode() if previous is None else f"{previous}, {value.decode()}"
        )
    answer = FastResponse(200, "OK", raw, b"", "http://127.0.0.1:8089/")
    adapter = FastTransportAdapter()
    request = requests.Request("GET", "http://127.0.0.1:8089/").prepare()
    got = adapter.build_response(request, answer).headers
    assert list(got.items()) == list(expected.items())
    assert list(got.lower_items()) == list(expected.lower_items())


def test_the_http_clients_urls_are_joined_and_named_once(
    local: Local, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Broken build caught: join_url and request_name (two urlsplit calls) on every
    request; the names stay those of request_name."""
    s = HttpSession(local.url, Recorder())
    try:
        assert s.get("/again?x=1").status_code == 200
        joins = _counting(monkeypatch, http_module, "join_url")
        names = _counting(monkeypatch, http_module, "request_name")
        assert s.get("/again?x=1").status_code == 200
        assert s.post("/again?x=1").status_code in (200, 501)
        assert (joins, names) == ([], [])
    finally:
        s.close()
    recorded = s.recorder.drain().entries
    assert set(recorded) == {"GET /again", "POST /again"}


# -- the waits' bounds: one timer per hub ----------------------------------------------------------


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A listener that accepts (in its backlog) and never answers."""
    listener = stdlib_socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


def _until_waiting(bounds: hub.Deadlines, count: int) -> None:
    for _ in range(10_000):  # turns of the loop, bounded: the users connect and send first
        if len(bounds.waits) >= count:
            return
        gevent.sleep(0.001)
    raise AssertionError(f"{count} waits never registered")


def test_only_the_waits_past_their_bound_end(silent_url: str) -> None:
    """Broken build caught: a tick that ends every wait, or none, or the wrong one."""
    bounds = hub.hub_state(gevent.get_hub()).bounds
    short = FastHttpSession(silent_url, Recorder(), timeout=0.05)
    long = FastHttpSession(silent_url, Recorder(), timeout=30)
    try:
        waiting = gevent.spawn(long.get, "/", deadline=60)
        _until_waiting(bounds, 1)
        r = short.get("/", deadline=60)
        assert isinstance(r.error, TimeoutError) and "timeout=0.05s" in str(r.error)
        assert not waiting.ready() and len(bounds.waits) == 1  # the long one waits on
        waiting.kill()
        assert bounds.waits == {}  # a wait killed leaves no bound behind
    finally:
        short.close()
        long.close()


def test_the_bounds_timer_runs_only_while_someone_waits(silent_url: str) -> None:
    """Broken build caught: a timer left running (every 10 ms, forever) in an idle process."""
    bounds = hub.hub_state(gevent.get_hub()).bounds
    s = FastHttpSession(silent_url, Recorder(), timeout=0.02)
    try:
        assert isinstance(s.get("/", deadline=60).error, TimeoutError)
    finally:
        s.close()
    gevent.sleep(hub.TICK * 3)  # the next tick finds no wait
    assert bounds.waits == {} and not bounds.timer.active
    assert bounds.timer.ref is False  # and it never keeps the loop alive


def test_a_connect_on_gevent_waits_on_its_own_socket_not_on_a_poll_object(
    local: Local, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Broken build caught: gevent's cooperative poll per connect in flight (its result, event,
    watcher and Timeout, and a deep saved C stack), which thousands of starting users held at
    once (benchmarks/idle_memory.py --rate 5000)."""

    def no_poll() -> None:
        raise AssertionError("a poll object for a single connect")

    waits: list[float | None] = []
    real = connect_module.wait_for

    def counted(watcher: Any, wait: float | None) -> float:
        waits.append(wait)
        return real(watcher, wait)

    monkeypatch.setattr(connect_module.select, "poll", no_poll)
    monkeypatch.setattr(connect_module, "wait_for", counted)
    s = FastHttpSession(local.url, Recorder(), timeout=5)
    try:
        assert s.get("/").status_code == 200
    finally:
        s.close()
    # A non-blocking connect on loopback is in progress when connect_ex returns: one wait,
    # bounded by the connect timeout.
    assert len(waits) == 1 and waits[0] is not None and 0 < waits[0] <= 5
