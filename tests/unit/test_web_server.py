"""Unit tests of the dashboard's server on real loopback sockets, fed by hand through a Feed:
SSE framing, catch-up with Last-Event-ID, the snapshot for a page too far behind, every bound
on what a browser sends, the token, the stop button, and a client that never reads."""

from __future__ import annotations

import doctest
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from web_session import TEST, finished, progress, started

import pytest_swarm.web.history as history_module
import pytest_swarm.web.realio as realio_module
import pytest_swarm.web.server as server_module
import pytest_swarm.web.service as service_module
from pytest_swarm.feed import Feed
from pytest_swarm.web.history import History
from pytest_swarm.web.server import STOP_REASON, DashboardServer, Limits
from pytest_swarm.web.service import Dashboard

TIMEOUT = 30.0  # a guard against a hang, never a measurement


@dataclass
class Served:
    feed: Feed
    dashboard: Dashboard
    server: DashboardServer

    def publish(self, *events: object) -> None:
        for event in events:  # one at a time: the dashboard coalesces a burst of progress
            self.feed.publish(event)  # type: ignore[arg-type]
            assert self.dashboard.drain(TIMEOUT)


def _serve(host: str = "127.0.0.1", **limits: float) -> Iterator[Served]:
    feed = Feed()
    dashboard = Dashboard(feed, max_events=8)
    dashboard.start()
    server = DashboardServer(dashboard, host, 0, limits=Limits(**limits))  # type: ignore[arg-type]
    server.start()
    try:
        yield Served(feed, dashboard, server)
    finally:
        assert server.stop(TIMEOUT)
        dashboard.close()


@pytest.fixture
def served() -> Iterator[Served]:
    yield from _serve()


def connect(served: Served) -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", served.server.port), timeout=TIMEOUT)
    return conn


def request(served: Served, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``raw`` as it is, read the whole response (the server closes every connection)."""
    with connect(served) as conn:
        conn.sendall(raw)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def get(served: Served, path: str, host: str = "127.0.0.1", extra: str = "") -> tuple[int, bytes]:
    status, _, body = request(
        served, f"GET {path} HTTP/1.1\r\nHost: {host}:{served.server.port}\r\n{extra}\r\n".encode()
    )
    return status, body


class Stream:
    """An EventSource as the server sees it: reads events one by one."""

    def __init__(self, served: Served, last_id: int | None = None, query: str = "") -> None:
        self.conn = connect(served)
        header = f"Last-Event-ID: {last_id}\r\n" if last_id is not None else ""
        self.conn.sendall(
            f"GET /events{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n{header}\r\n".encode()
        )
        self.buffer = b""
        head = self._until(b"\r\n\r\n")
        self.status = int(head.split()[1])
        self.headers = head.decode("latin-1").lower()

    def _until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            chunk = self.conn.recv(65536)
            assert chunk, "stream closed"
            self.buffer += chunk
        out, _, self.buffer = self.buffer.partition(marker)
        return out

    def event(self) -> dict[str, str]:
        """The next event's fields (comments and the retry line skipped)."""
        while True:
            fields: dict[str, str] = {}
            for line in self._until(b"\n\n").decode().split("\n"):
                name, _, value = line.partition(": ")
                if name and not name.startswith(":"):
                    fields[name] = value
            if "data" in fields:
                return fields

    def close(self) -> None:
        self.conn.close()


def test_module_doctests() -> None:
    for module in (history_module, realio_module, server_module, service_module):
        assert doctest.testmod(module).failed == 0, module.__name__


def test_a_new_page_gets_the_state_then_every_event_framed_with_its_id(served: Served) -> None:
    served.publish(started(), progress(1))
    stream = Stream(served)
    assert stream.status == 200 and "content-type: text/event-stream" in stream.headers
    state = stream.event()
    assert state["event"] == "state" and state["id"] == "2"
    running = json.loads(state["data"])["running"]
    assert [r["test"] for r in running] == [TEST] and running[0]["total"]["count"] > 0
    served.publish(progress(2))
    event = stream.event()
    assert (event["id"], event["event"]) == ("3", "progress")
    data = json.loads(event["data"])
    # Only the points the page has not had (the last one again), never the whole timeline.
    assert [p["t"] for p in data["timeline"]] == [1.0, 2.0]
    served.publish(progress(3))
    assert [p["t"] for p in json.loads(stream.event()["data"])["timeline"]] == [2.0, 3.0]
    stream.close()


def test_reconnect_with_last_event_id_catches_up_on_what_it_missed(served: Served) -> None:
    served.publish(started(), progress(1), progress(2), progress(3))
    stream = Stream(served, last_id=2)
    assert [stream.event()["id"] for _ in range(2)] == ["3", "4"]
    served.publish(finished())
    event = stream.event()
    assert event["event"] == "finished" and json.loads(event["data"])["outcome"] == "failed"
    stream.close()


def test_a_page_too_far_behind_gets_a_snapshot_instead(served: Served) -> None:
    served.publish(started(), *(progress(i) for i in range(1, 20)))  # the history keeps 8
    assert len(served.dashboard.history) == 8
    for last_id in (1, 10_000, None):  # too old, from another session, none at all
        stream = Stream(served, last_id=last_id)
        state = stream.event()
        assert state["event"] == "state" and state["id"] == "20"
        timeline = json.loads(state["data"])["running"][0]["timeline"]
        assert len(timeline) == 19  # the whole run, from the state, not from the history
        stream.close()


def test_history_bounded_by_bytes_keeps_the_newest() -> None:
    history = History(max_events=1000, max_bytes=1000)
    for i in range(100):
        history.append("progress", json.dumps({"i": i, "pad": "x" * 50}))
    assert history.bytes <= 1000 and history.after(100) == [] and history.after(1) is None
    history.append("progress", "x" * 5000)  # alone over the bound: still kept, alone
    assert len(history) == 1 and history.after(100) is not None and history.after(99) is None


def test_sse_data_can_never_hold_a_newline() -> None:
    with pytest.raises(ValueError):
        history_module.frame(1, "progress", '{"a": 1}\n\nevent: fake')


def test_a_client_that_never_reads_is_bounded_then_dropped() -> None:
    for served in _serve(write_timeout=0.5, batch_bytes=64 * 1024, send_buffer=8 * 1024):
        served.publish(started())
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.settimeout(TIMEOUT)
        raw.connect(("127.0.0.1", served.server.port))
        raw.sendall(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert served.server.wait_until(lambda s: len(s.streams) == 1, TIMEOUT)
        client = served.server.streams[0]
        # Never read. Publish far more than the kernel's buffers hold (~400 KB of events).
        published = 0
        for second in range(1, 200):
            served.publish(progress(second % 30 + 1))
            last = served.dashboard.history.last_id
            published += len((served.dashboard.frames_after(last - 1) or [b""])[0])
        assert published > 4 * 64 * 1024  # several batches, many times the socket buffers
        assert served.server.wait_until(lambda s: not s.streams, TIMEOUT)  # given up on
        assert "timed out" in client.dropped
        biggest = max(len(f) for f in served.dashboard.frames_after(1) or [b""])
        # One batch at a time (batch_bytes, or one event bigger than it), never the backlog.
        assert 0 < client.high_water <= max(64 * 1024, biggest) + biggest
        assert len(served.dashboard.history) <= 8
        raw.close()


def test_connections_and_streams_are_bounded() -> None:
    for served in _serve(max_streams=2, max_connections=3):
        streams = [Stream(served), Stream(served)]
        for s in streams:
            s.event()
        settled = lambda s: s.connections == 2  # noqa: E731  (the two streams)
        status, body = get(served, "/events")  # the third connection, the last one allowed
        assert status == 503 and b"too many" in body  # ... but not a third stream
        assert served.server.wait_until(settled, TIMEOUT)
        hold = connect(served)
        assert served.server.wait_until(lambda s: s.connections == 3, TIMEOUT)
        # The fourth connection is refused at once:
        # Turned away by the acceptor itself, with a 503 when the request did not arrive
        # first (else closing on the unread request resets the connection): either way, no
        # thread and no buffer for it.
        try:
            status = get(served, "/")[0]
        except ConnectionResetError:
            status = 503
        assert status == 503 and served.server.refused == 1
        hold.close()
        for s in streams:
            s.close()


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX: " + b"a" * 20_000 + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\n" + b"".join(b"X%d: 1\r\n" % i for i in range(70)) + b"\r\n", 431),
        (b"GET /" + b"a" * 3000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 414),
        (b"GET / HTTP/9\r\nHost: 127.0.0.1\r\n\r\n", 400),
        (b"GET http://evil/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n folded\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil\r\n\r\n", 400),
        (b"POST /api/stop HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 99999\r\n\r\n", 413),
        (b"POST /api/stop HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 411),
        (b"POST /api/stop HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
        (b"DELETE / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 405),
        (b"GET /../../etc/passwd HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 404),
    ],
)
def test_hostile_requests_are_refused_with_their_reason(
    served: Served, raw: bytes, status: int
) -> None:
    assert request(served, raw)[0] == status


def test_a_request_that_never_ends_is_cut_at_the_deadline() -> None:
    for served in _serve(request_timeout=0.5):
        with connect(served) as conn:
            conn.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never the blank line
            data = b""
            while chunk := conn.recv(4096):
                data += chunk
        assert data.startswith(b"HTTP/1.1 408")


def test_loopback_page_served_with_a_strict_policy_and_no_dns_rebinding(served: Served) -> None:
    status, headers, body = request(served, b"GET / HTTP/1.1\r\nHost: localhost:1\r\n\r\n")
    assert status == 200 and b"<title>pytest-swarm live</title>" in body
    csp = headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'sha256-" in csp
    assert headers["x-frame-options"] == "DENY" and headers["referrer-policy"] == "no-referrer"
    # A site whose name resolves to 127.0.0.1 (DNS rebinding) reaches the port, but not the page.
    assert get(served, "/", host="attacker.example")[0] == 403
    token = served.server.token
    assert get(served, f"/?token={token}", host="attacker.example")[0] == 200


def test_any_other_bind_needs_the_token() -> None:
    for served in _serve(host="0.0.0.0"):
        assert served.server.token in served.server.url
        for path in ("/", "/events", "/api/state", "/nothing"):
            assert get(served, path)[0] == 403, path
        assert get(served, "/?token=wrong")[0] == 403
        assert get(served, "/?token=" + served.server.token[:-1])[0] == 403
        status, body = get(served, "/api/state?token=" + served.server.token)
        assert status == 200 and json.loads(body)["state"]["running"] == []
        stream = Stream(served, query="?token=" + served.server.token)
        assert stream.event()["event"] == "state"
        stream.close()


def _stop(served: Served, body: bytes, token: str | None, origin: str | None = None) -> int:
    headers = f"Host: 127.0.0.1:{served.server.port}\r\nContent-Type: application/json\r\n"
    if token is not None:
        headers += f"X-Swarm-Token: {token}\r\n"
    if origin is not None:
        headers += f"Origin: {origin}\r\n"
    raw = f"POST /api/stop HTTP/1.1\r\n{headers}Content-Length: {len(body)}\r\n\r\n".encode()
    return request(served, raw + body)[0]


def test_the_stop_button_reaches_the_feed_only_with_the_token(served: Served) -> None:
    reasons: list[str] = []
    served.feed.register_stop(TEST, reasons.append)
    body = json.dumps({"test": TEST}).encode()
    assert _stop(served, body, None) == 403  # a form on another site cannot send the header
    assert _stop(served, body, "wrong") == 403
    assert _stop(served, body, served.server.token, origin="http://evil.example") == 403
    assert _stop(served, b"not json", served.server.token) == 400
    assert _stop(served, b'{"test": 1}', served.server.token) == 400
    assert reasons == []
    origin = f"http://127.0.0.1:{served.server.port}"
    assert _stop(served, body, served.server.token, origin=origin) == 200
    assert reasons == [STOP_REASON]
    served.feed.unregister_stop(TEST)
    assert _stop(served, body, served.server.token) == 409  # not running any more


def test_stop_ends_every_stream_and_every_thread() -> None:
    feed = Feed()
    dashboard = Dashboard(feed)
    dashboard.start()
    server = DashboardServer(dashboard, "127.0.0.1", 0)
    server.start()
    stream = Stream(Served(feed, dashboard, server))
    stream.event()
    assert server.stop(TIMEOUT)
    with pytest.raises(AssertionError, match="stream closed"):
        stream.event()
    dashboard.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)


def test_a_port_in_use_is_an_error_at_start() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = DashboardServer(Dashboard(Feed()), "127.0.0.1", taken.getsockname()[1])
        with pytest.raises(OSError):
            server.start()


def test_stop_does_not_wait_for_a_browser_that_stalls() -> None:
    """Half a request and a stream that is never read: stop() ends both at once (it does not
    sit out the request and write timeouts)."""
    for served in _serve(request_timeout=3600, write_timeout=3600, send_buffer=4096):
        half = connect(served)
        half.sendall(b"GET / HTTP/1.1\r\n")
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(("127.0.0.1", served.server.port))
        stalled.sendall(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        served.publish(started(), *(progress(i) for i in range(1, 40)))
        assert served.server.stop(TIMEOUT)
        half.close()
        stalled.close()
