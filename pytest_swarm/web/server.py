"""The dashboard's HTTP server: the page, its server-sent events, and the stop button.

Written on the C socket type in OS threads of its own (see :mod:`pytest_swarm.web.realio`), so
it runs beside gevent's loop and xdist's, never on them. One thread accepts; each connection
gets a thread of its own, and every browser input is bounded before it is used: connections
and streams at once, the request head's size, header count and reading time, the body's size
(one small JSON object, for the stop button only), the time to send one batch of events. An
event stream holds a cursor on the shared :class:`~pytest_swarm.web.history.History` and at
most one batch of frames at a time: a browser that stops reading is dropped once a send
takes longer than ``write_timeout``, and until then it costs one batch, however much happens.

Access: every request must carry the session's token (``?token=`` in the URL the terminal
prints, or the ``X-Swarm-Token`` header), compared in constant time; on a loopback bind a
request without it is allowed too when its ``Host`` header names loopback (a web page
elsewhere that resolves its own name to 127.0.0.1, DNS rebinding, is refused). The stop
button's POST always needs the token in the header, a JSON body and, when the browser sends
an ``Origin``, the dashboard's own: a form on another site can do none of these.

Example:
    >>> from pytest_swarm.feed import Feed
    >>> from pytest_swarm.web.service import Dashboard
    >>> dashboard = Dashboard(Feed()); dashboard.start()
    >>> server = DashboardServer(dashboard, "127.0.0.1", 0); server.start()
    >>> import urllib.request
    >>> with urllib.request.urlopen(server.url + "api/state", timeout=10) as r:
    ...     r.status, r.headers["Content-Type"]
    (200, 'application/json')
    >>> server.stop()
    True
    >>> dashboard.close()
"""

from __future__ import annotations

import _socket
import contextlib
import functools
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .address import is_loopback
from .page import render_page
from .realio import RealSocket, Waker, allocate_lock, start_thread
from .service import Dashboard

__all__ = ["DashboardServer", "Limits", "StreamClient"]

STOP_REASON = "stopped from the dashboard"


@dataclass(frozen=True)
class Limits:
    """Every bound on what browsers may cost the run (defaults fit a screen in a team room)."""

    max_connections: int = 32  # at once, event streams included
    max_streams: int = 16
    max_head: int = 16 * 1024  # request line and headers
    max_target: int = 2048  # the request target (path and query)
    max_headers: int = 64
    max_body: int = 4096
    request_timeout: float = 10.0  # to receive a whole request
    write_timeout: float = 10.0  # to send one batch of events (or one response)
    keepalive: float = 15.0  # a comment line on an idle stream, so a dead peer is noticed
    batch_bytes: int = 256 * 1024  # frames handed to one send
    send_buffer: int = 64 * 1024  # the kernel's send buffer per connection


@dataclass
class StreamClient:
    """One event stream, as the server accounts for it."""

    peer: str
    pending: int = 0  # bytes of the batch being sent now
    high_water: int = 0  # the most ``pending`` ever was
    events: int = 0
    dropped: str = ""  # why the server gave up on it, "" while it is served
    resumed_from: int | None = None  # the Last-Event-ID it reconnected with
    conn: Any = field(default=None, repr=False)


class _Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass
class _Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes = b""
    peer: str = ""


_REASONS = {
    200: "OK", 204: "No Content", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 408: "Request Timeout", 409: "Conflict",
    411: "Length Required", 413: "Content Too Large", 414: "URI Too Long",
    415: "Unsupported Media Type", 431: "Request Header Fields Too Large",
    501: "Not Implemented", 503: "Service Unavailable",
}  # fmt: skip
_SECURITY_HEADERS = (
    "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
    "Referrer-Policy: no-referrer\r\nX-Frame-Options: DENY\r\n"
    "Cross-Origin-Resource-Policy: same-origin\r\n"
)
_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz")


class DashboardServer:
    """Serves one :class:`Dashboard` on ``host:port`` (0: a free port) until :meth:`stop`."""

    def __init__(
        self,
        dashboard: Dashboard,
        host: str,
        port: int,
        *,
        token: str | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.dashboard = dashboard
        self.host = host
        self.port = port
        self.limits = limits or Limits()
        self.token = token or secrets.token_urlsafe(24)
        self.loopback = is_loopback(host)
        self.streams: list[StreamClient] = []  # served now (for tests and the docs' bounds)
        self.refused = 0  # connections turned away at the limit
        self._listener: RealSocket | None = None
        self._lock = allocate_lock()
        self._connections = 0
        self._sockets: set[RealSocket] = set()  # open connections, shut down by stop()
        self._stopping = False
        self._changed = Waker()  # a connection ended, or the acceptor did

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Bind and listen (raises OSError, e.g. when the port is taken), then serve."""
        infos = _socket.getaddrinfo(
            self.host, self.port, _socket.AF_UNSPEC, _socket.SOCK_STREAM, 0, _socket.AI_PASSIVE
        )
        family, kind, proto, _, address = infos[0]
        listener = RealSocket(family, kind, proto)
        try:
            listener.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
            listener.bind(address)
            listener.listen(64)
        except OSError:
            listener.close()
            raise
        self.port = listener.getsockname()[1]
        self._listener = listener
        with self._lock:
            self._connections += 1  # the acceptor counts as one, until it ends
        start_thread(self._accept_loop)

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop accepting, end every stream; True once every connection thread has ended."""
        self._stopping = True
        self.dashboard.waker.notify_all()
        listener = self._listener
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(_socket.SHUT_RDWR)  # wakes the blocked accept on Linux
        with self._lock:
            sockets = list(self._sockets)
        for conn in sockets:  # a stalled browser's send or a half-sent request ends now
            with contextlib.suppress(OSError):
                conn.shutdown(_socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        while True:
            seen = self._changed.generation
            with self._lock:
                if self._connections == 0:
                    break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._changed.wait(seen, timeout=min(remaining, 0.5))
        if listener is not None:
            listener.close()
        return True

    def drop_streams(self) -> int:
        """Cut every event stream (as a network drop would; the pages reconnect by
        themselves). Returns how many were cut."""
        with self._lock:
            conns = [c.conn for c in self.streams]
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(_socket.SHUT_RDWR)
        return len(conns)

    @property
    def connections(self) -> int:
        """Connections being served now (event streams included)."""
        with self._lock:
            return max(self._connections - (0 if self._stopping else 1), 0)

    def wait_until(self, condition: Callable[[DashboardServer], bool], timeout: float) -> bool:
        """Wait until ``condition(self)`` holds, checked whenever a stream or a connection
        comes or goes (for tests); False after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            seen = self._changed.generation
            if condition(self):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._changed.wait(seen, timeout=remaining)

    @property
    def url(self) -> str:
        """The page's address; with the token inside it when the bind is not loopback."""
        host = self.host
        if host in ("0.0.0.0", "::", ""):
            host = _socket.gethostname()
        shown = f"[{host}]" if ":" in host else host
        query = "" if self.loopback else f"?token={self.token}"
        return f"http://{shown}:{self.port}/{query}"

    def _accept_loop(self) -> None:
        listener = self._listener
        assert listener is not None
        listener.settimeout(1.0)  # a fallback wake-up, should shutdown() not wake accept
        try:
            while not self._stopping:
                try:
                    fd, peer = listener._accept()  # type: ignore[attr-defined]
                except TimeoutError:
                    continue
                except OSError:
                    if self._stopping:
                        break
                    continue  # e.g. EMFILE: the next accept may succeed
                conn = RealSocket(listener.family, listener.type, listener.proto, fileno=fd)
                with self._lock:
                    full = self._connections - 1 >= self.limits.max_connections
                    if not full:
                        self._connections += 1
                        self._sockets.add(conn)
                self._changed.notify_all()
                if full:
                    self.refused += 1
                    self._refuse_at_once(conn)
                    continue
                start_thread(functools.partial(self._serve, conn, _peer(peer)))
        finally:
            self._ended()

    def _ended(self) -> None:
        with self._lock:
            self._connections -= 1
        self._changed.notify_all()

    def _refuse_at_once(self, conn: RealSocket) -> None:
        try:
            conn.settimeout(1.0)
            conn.sendall(_response(503, b"too many dashboard connections\n", "text/plain"))
        except OSError:
            pass
        finally:
            conn.close()

    # -- one connection ------------------------------------------------------------------

    def _serve(self, conn: RealSocket, peer: str) -> None:
        try:
            conn.setsockopt(_socket.SOL_SOCKET, _socket.SO_SNDBUF, self.limits.send_buffer)
            try:
                request = self._read_request(conn, peer)
                self._route(conn, request)
            except _Refused as refused:
                conn.settimeout(self.limits.write_timeout)
                body = (str(refused) + "\n").encode()
                conn.sendall(_response(refused.status, body, "text/plain"))
                _linger(conn)
        except OSError:
            pass  # the browser went away, or was too slow: nothing to tell it
        finally:
            with self._lock:
                self._sockets.discard(conn)
            try:
                conn.close()
            finally:
                self._ended()

    def _read_request(self, conn: RealSocket, peer: str) -> _Request:
        limits = self.limits
        deadline = time.monotonic() + limits.request_timeout
        data = b""
        while b"\r\n\r\n" not in data:
            if len(data) > limits.max_head:
                raise _Refused(431, "request head too large")
            chunk = _recv(conn, deadline, limits.max_head + 4 - len(data))
            if not chunk:
                raise OSError("closed before a whole request")
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        if len(head) > limits.max_head:
            raise _Refused(431, "request head too large")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or parts[2] not in ("HTTP/1.0", "HTTP/1.1"):
            raise _Refused(400, "malformed request line")
        method, target, _ = parts
        if len(target) > limits.max_target:
            raise _Refused(414, "request target too long")
        if not target.startswith("/"):
            raise _Refused(400, "request target must be a path")
        if len(lines) - 1 > limits.max_headers:
            raise _Refused(431, "too many header fields")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon or not name or not set(name.lower()) <= _TOKEN_CHARS:
                raise _Refused(400, "malformed header field")
            key = name.lower()
            if key in headers and key in ("host", "content-length", "x-swarm-token"):
                raise _Refused(400, f"duplicate {name} header")
            headers[key] = value.strip(" \t")
        if "transfer-encoding" in headers:
            raise _Refused(501, "chunked request bodies are not accepted")
        body = b""
        if method == "POST":
            length_text = headers.get("content-length")
            if length_text is None:
                raise _Refused(411, "Content-Length required")
            if not length_text.isdigit():
                raise _Refused(400, "bad Content-Length")
            length = int(length_text)
            if length > limits.max_body:
                raise _Refused(413, f"body larger than {limits.max_body} bytes")
            body = rest[:length]
            while len(body) < length:
                chunk = _recv(conn, deadline, length - len(body))
                if not chunk:
                    raise OSError("closed before the whole body")
                body += chunk
        split = urlsplit(target)
        query = parse_qs(split.query, max_num_fields=8) if split.query else {}
        return _Request(method, split.path, query, headers, body, peer)

    def _authorised(self, request: _Request) -> bool:
        given = request.headers.get("x-swarm-token") or (request.query.get("token") or [""])[0]
        if given and hmac.compare_digest(given.encode(), self.token.encode()):
            return True
        if not self.loopback:
            return False
        host = request.headers.get("host", "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        return is_loopback(name.strip("[]"))

    def _route(self, conn: RealSocket, request: _Request) -> None:
        if not self._authorised(request):
            raise _Refused(
                403, "this dashboard needs its access token (the URL the terminal printed)"
            )
        routes = {
            "/": ("GET", self._page),
            "/events": ("GET", self._events),
            "/api/state": ("GET", self._state),
            "/api/stop": ("POST", self._stop),
        }
        route = routes.get(request.path)
        if route is None:
            raise _Refused(404, "no such page")
        method, handler = route
        if request.method != method:
            raise _Refused(405, f"{request.path} takes {method}")
        handler(conn, request)

    def _send(self, conn: RealSocket, data: bytes) -> None:
        conn.settimeout(self.limits.write_timeout)
        conn.sendall(data)

    def _page(self, conn: RealSocket, request: _Request) -> None:
        page, csp = render_page(self.token)
        self._send(conn, _response(200, page, "text/html; charset=utf-8", csp=csp))

    def _state(self, conn: RealSocket, request: _Request) -> None:
        last_id, state = self.dashboard.snapshot()
        body = json.dumps({"id": last_id, "state": state}, allow_nan=False).encode()
        self._send(conn, _response(200, body, "application/json"))

    def _stop(self, conn: RealSocket, request: _Request) -> None:
        given = request.headers.get("x-swarm-token", "")
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            raise _Refused(403, "stopping needs the X-Swarm-Token header")
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            raise _Refused(415, "expected a JSON body")
        origin = request.headers.get("origin")
        if origin is not None and origin != f"http://{request.headers.get('host', '')}":
            raise _Refused(403, "cross-origin stop refused")
        try:
            test = json.loads(request.body).get("test")
        except (ValueError, AttributeError):
            test = None
        if not isinstance(test, str) or not test or len(test) > 4096:
            raise _Refused(400, 'expected {"test": "<node id>"}')
        stopped = self.dashboard.feed.request_stop(test, STOP_REASON)
        body = json.dumps({"test": test, "stopped": stopped}).encode()
        self._send(conn, _response(200 if stopped else 409, body, "application/json"))

    def _events(self, conn: RealSocket, request: _Request) -> None:
        last_id = _last_event_id(request.headers.get("last-event-id"))
        client = StreamClient(request.peer, resumed_from=last_id, conn=conn)
        with self._lock:
            full = len(self.streams) >= self.limits.max_streams
            if not full:
                self.streams.append(client)
        self._changed.notify_all()
        if full:
            raise _Refused(503, "too many dashboard pages open")
        try:
            self._stream(conn, client, last_id)
        except OSError as exc:  # a timeout is an OSError too: the browser stopped reading
            client.dropped = f"{type(exc).__name__}: {exc}"
        finally:
            with self._lock:
                self.streams.remove(client)

    def _stream(self, conn: RealSocket, client: StreamClient, cursor: int | None) -> None:
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n"
            f"{_SECURITY_HEADERS}\r\n"
        )
        # retry: how long the browser waits before reconnecting after a drop.
        self._send(conn, head.encode("ascii") + b"retry: 1000\n\n")
        dashboard = self.dashboard
        while not self._stopping and not dashboard.closed:
            seen = dashboard.waker.generation
            frames = (
                None if cursor is None else dashboard.frames_after(cursor, self.limits.batch_bytes)
            )
            if frames is None:  # new page, or too far behind: the whole state instead
                snapshot, cursor = dashboard.snapshot_frame()
                frames = [snapshot]
            elif frames:
                assert cursor is not None
                cursor += len(frames)
            elif not dashboard.waker.wait(seen, timeout=self.limits.keepalive):
                frames = [b": keepalive\n\n"]
            if frames:
                batch = b"".join(frames)
                client.pending = len(batch)
                client.high_water = max(client.high_water, client.pending)
                self._send(conn, batch)
                client.pending = 0
                client.events += len(frames)


def _recv(conn: RealSocket, deadline: float, size: int) -> bytes:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise _Refused(408, "request took too long")
    conn.settimeout(remaining)
    try:
        data: bytes = conn.recv(max(1, min(size, 65536)))
    except TimeoutError:
        raise _Refused(408, "request took too long") from None
    return data


def _linger(conn: RealSocket) -> None:
    """Read (bounded: 64 KiB, 1 s) what the browser still sends before closing: closing with
    unread bytes resets the connection, and the browser would lose the error response."""
    with contextlib.suppress(OSError):
        conn.shutdown(_socket.SHUT_WR)
        conn.settimeout(1.0)
        left = 64 * 1024
        while left > 0 and (chunk := conn.recv(min(left, 16384))):
            left -= len(chunk)


def _last_event_id(value: str | None) -> int | None:
    if value is None or not value.isdigit() or len(value) > 18:
        return None
    return int(value)


def _peer(address: Any) -> str:
    try:
        return f"{address[0]}:{address[1]}"
    except (TypeError, IndexError):
        return str(address)


def _response(status: int, body: bytes, kind: str, *, csp: str = "") -> bytes:
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
        f"Content-Type: {kind}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
        f"{_SECURITY_HEADERS}"
    )
    if csp:
        head += f"Content-Security-Policy: {csp}\r\n"
    return (head + "\r\n").encode("ascii") + body
