"""The ``fast_http`` client: HTTP/1.1 over gevent sockets with httptools' C parser.

For throughput-bound tests, where ``requests`` (≈450 µs of CPU per request) would make the load
generator the bottleneck. Same recording, naming, failure and ``catch_response`` semantics as
the ``http`` client; one keep-alive connection per (user, host); chunked and
content-length bodies; HTTPS through the (gevent-patched) ``ssl`` module; a finite timeout
per socket operation; a bounded body size; redirects off by default (``allow_redirects=True``
follows up to 5). A tiny cookie jar keeps ``Set-Cookie`` name=value pairs per user so login
flows work; there is no proxy support and no retry of a request the server may have seen.

Example:
    >>> @pytest.mark.load(users=200, duration="30s")          # doctest: +SKIP
    ... def test_home(fast_http):
    ...     fast_http.get("/")
    ...     with fast_http.get("/cart", catch_response=True) as r:
    ...         if b"empty" in r.content:
    ...             r.failure("cart lost")
"""

from __future__ import annotations

import ipaddress
import json as jsonlib
import os
import socket
import ssl
import time
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, NamedTuple
from urllib.parse import urlencode, urljoin, urlsplit

import httptools

from ..defaults import DEFAULT_MAX_BODY, DEFAULT_TIMEOUT
from ..stats.recorder import Recorder
from .common import CatchMixin, error_message, join_url, request_name, status_message

USER_AGENT = "pytest-swarm"
_RECV = 256 * 1024
_MAX_REDIRECTS = 5
_REDIRECTS = (301, 302, 303, 307, 308)
_MAX_CACHED_HEADS = 4096
# Request heads without per-request headers or body are the same for every user: one cache
# per process (a per-user cache cost memory on every idle user).
_HEADS: dict[tuple[str, str, str], bytes] = {}


class FastHttpError(Exception):
    """Base of the fast client's own errors (connection, protocol, size)."""


class ConnectionClosed(FastHttpError):
    """The server closed the connection before a complete response."""


class ConnectTimeout(FastHttpError, TimeoutError):
    """The connection (TCP and, for HTTPS, the TLS handshake) took longer than the timeout:
    the request was never sent."""


class _StaleConnection(ConnectionClosed):
    """A kept-alive connection turned out closed before any byte of the answer: the request
    can be sent again on a new connection."""


class _TrailingBytes(Exception):
    """Raised in the parser's callback when bytes follow a complete response."""


class BodyTooLarge(FastHttpError):
    """The response body exceeded ``swarm_max_body``; it was discarded."""


class FastResponse:
    """A parsed response. ``headers`` keys are lower-case.

    Example:
        >>> r = FastResponse(200, "OK", {"content-type": "text/plain"}, b"ok", "http://h/")
        >>> r.ok, r.text, r.headers["content-type"]
        (True, 'ok', 'text/plain')
    """

    __slots__ = ("_headers", "_raw", "content", "elapsed", "error", "reason", "status_code", "url")

    def __init__(
        self,
        status_code: int,
        reason: str,
        headers: dict[str, str] | list[tuple[bytes, bytes]],
        content: bytes,
        url: str,
        error: BaseException | None = None,
    ) -> None:
        self.status_code = status_code
        self.reason = reason
        # Raw (name, value) pairs from the parser are decoded only if the test reads headers.
        self._headers: dict[str, str] | None = headers if isinstance(headers, dict) else None
        self._raw: list[tuple[bytes, bytes]] = headers if isinstance(headers, list) else []
        self.content = content
        self.url = url
        self.error = error
        self.elapsed = 0.0

    @property
    def headers(self) -> dict[str, str]:
        """Lower-case names; a repeated header (Set-Cookie) is joined with newlines."""
        if self._headers is None:
            headers: dict[str, str] = {}
            for raw_name, raw_value in self._raw:
                key = raw_name.decode("latin-1").lower()
                text = raw_value.decode("latin-1")
                headers[key] = f"{headers[key]}\n{text}" if key in headers else text
            self._headers = headers
        return self._headers

    @property
    def ok(self) -> bool:
        return self.error is None and self.status_code < 400

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return jsonlib.loads(self.content)

    def raise_for_status(self) -> None:
        if self.error is not None:
            raise self.error
        if self.status_code >= 400:
            raise FastHttpError(f"{self.status_code} {self.reason} for {self.url}")

    def __repr__(self) -> str:
        return f"<FastResponse [{self.status_code}]>"


class CatchFastResponse(CatchMixin, FastResponse):
    """``fast_http.get(..., catch_response=True)``: the ``with`` block decides."""

    __slots__ = ("_error", "_swarm", "_verdict")

    def __init__(self, r: FastResponse, recorder: Recorder, name: str, elapsed: float) -> None:
        super().__init__(r.status_code, r.reason, r._raw, r.content, r.url, r.error)
        self._headers = r._headers
        self.elapsed = r.elapsed
        self._swarm = (recorder, name, elapsed)
        self._error = r.error
        self._verdict = None


class _Parse:
    """httptools callbacks for one response, and the parser feeding them (see _lend_parser)."""

    __slots__ = (
        "body",
        "done",
        "headers",
        "headers_done",
        "keep_alive",
        "max_body",
        "parser",
        "reason",
        "size",
        "status",
        "too_large",
    )

    def __init__(self) -> None:
        self.max_body = 0
        self.parser: Any = httptools.HttpResponseParser(self)
        self.reset()

    def reset(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.size = 0
        self.reason = ""
        self.done = False
        self.headers_done = False
        self.too_large = False
        self.keep_alive = False
        self.status = 0

    def on_message_begin(self) -> None:
        if self.done:
            # Bytes after the complete response, in the same read: the connection cannot be
            # trusted with another request. Stopping here keeps the response as it was
            # (feed_data raises HttpParserCallbackError, which _exchange expects).
            self.keep_alive = False
            raise _TrailingBytes

    def on_status(self, status: bytes) -> None:
        self.reason = status.decode("latin-1")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > self.max_body:
            self.too_large = True
        elif not self.too_large:
            self.body.append(body)

    def on_message_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            # An interim response (100 Continue, 103 Early Hints): the final one follows.
            self.headers = []
            self.headers_done = False
            return
        # Read here: llhttp resets its state once the message is complete, after which
        # should_keep_alive() answers False.
        self.keep_alive = self.parser.should_keep_alive()
        self.status = status
        self.done = True


# Parsers are lent for one response and given back after a complete keep-alive message, whose
# end leaves llhttp ready for the next one. An idle user then holds no parser: a parser, its
# five bound callbacks and their object cost ~0.9 KiB, on each of thousands of idle users.
# The pool holds as many as were ever in flight at once (bounded); a parser left in any other
# state (an error, a cut-off or HEAD response, Connection: close) is dropped.
_PARSERS: list[_Parse] = []
_MAX_POOLED_PARSERS = 4096


def _lend_parser(max_body: int) -> _Parse:
    parse = _PARSERS.pop() if _PARSERS else _Parse()
    parse.max_body = max_body
    return parse


class _Connection:
    __slots__ = ("sock", "used", "verify")

    def __init__(self, sock: socket.socket, verify: bool | str | None) -> None:
        self.sock = sock
        self.used = False
        self.verify = verify  # the TLS verification it was made under; None: plain HTTP


# One TLS context per verification setting, shared by every user of the process: a context
# holds the loaded CA store (hundreds of KiB), far too much to keep per idle user.
_SSL_CONTEXTS: dict[bool | str, ssl.SSLContext] = {}


def _ssl_context(verify: bool | str) -> ssl.SSLContext:
    """``verify``: True (the system's CAs), False (no verification) or, as in requests, the
    path of a CA bundle file or directory."""
    context = _SSL_CONTEXTS.get(verify)
    if context is None:
        if verify is True or verify is False:
            context = ssl.create_default_context()
            if verify is False:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
        elif os.path.isdir(verify):
            context = ssl.create_default_context(capath=verify)
        else:
            context = ssl.create_default_context(cafile=verify)
        _SSL_CONTEXTS[verify] = context
    return context


class FastHttpSession:
    """One virtual user's fast HTTP client.

    Example:
        >>> s = FastHttpSession("http://127.0.0.1:8089", Recorder())
        >>> s.headers["X-Team"] = "perf"          # sent with every request
    """

    # Thousands of idle users each hold one of these: no per-instance __dict__.
    __slots__ = (
        "_connections",
        "base_url",
        "cookies",
        "headers",
        "max_body",
        "recorder",
        "timeout",
        "verify",
    )

    def __init__(
        self,
        base_url: str | None,
        recorder: Recorder,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_body: int = DEFAULT_MAX_BODY,
        verify: bool | str = True,
    ) -> None:
        self.base_url = base_url
        self.recorder = recorder
        self.timeout = timeout
        self.max_body = max_body
        self.verify = verify
        self.headers: dict[str, str] = {}
        self.cookies: dict[str, str] = {}
        self._connections: dict[tuple[str, str, int], _Connection] = {}

    # -- public verbs ---------------------------------------------------------------------
    def get(self, url: str, **kwargs: Any) -> Any:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, data: Any = None, json: Any = None, **kwargs: Any) -> Any:
        return self.request("POST", url, data=data, json=json, **kwargs)

    def put(self, url: str, data: Any = None, **kwargs: Any) -> Any:
        return self.request("PUT", url, data=data, **kwargs)

    def patch(self, url: str, data: Any = None, **kwargs: Any) -> Any:
        return self.request("PATCH", url, data=data, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> Any:
        return self.request("DELETE", url, **kwargs)

    def head(self, url: str, **kwargs: Any) -> Any:
        return self.request("HEAD", url, **kwargs)

    def options(self, url: str, **kwargs: Any) -> Any:
        return self.request("OPTIONS", url, **kwargs)

    def request(
        self,
        method: str,
        url: str,
        *,
        name: str | None = None,
        catch_response: bool = False,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        data: bytes | str | Mapping[str, Any] | None = None,
        json: Any = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Any:
        """Send one request, record it, return a :class:`FastResponse` (never raises for
        HTTP or connection errors: ``status_code`` is 0 and ``error`` set for the latter)."""
        method = method.upper()
        full = join_url(self.base_url, url)
        start = time.perf_counter()
        try:
            route = _route(full)
            target = route.path
            if name is None:
                name = f"{method} {target}"
            query = route.query
            if params:
                encoded = urlencode(params, doseq=True)
                query = f"{query}&{encoded}" if query else encoded
            if query:
                target = f"{target}?{query}"
            body = _body(data, json)
            extra = self._extra_headers(headers, json, data)
            response = self._send(
                method, route, target, extra, body, timeout or self.timeout, allow_redirects
            )
        except (OSError, FastHttpError, httptools.HttpParserError, ValueError) as exc:
            elapsed = time.perf_counter() - start
            if name is None:
                name = request_name(method, full)
            response = FastResponse(0, "", {}, b"", full, exc)
            response.elapsed = elapsed
            if catch_response:
                return CatchFastResponse(response, self.recorder, name, elapsed)
            self.recorder.record_failure(name, elapsed, type(exc).__name__, error_message(exc))
            return response
        elapsed = time.perf_counter() - start
        response.elapsed = elapsed
        if catch_response:
            return CatchFastResponse(response, self.recorder, name, elapsed)
        if response.status_code >= 400:
            self.recorder.record_failure(
                name, elapsed, "HTTPError", status_message(response.status_code, response.reason)
            )
        else:
            self.recorder.record(name, elapsed)
        return response

    def _extra_headers(
        self, headers: Mapping[str, str] | None, json: Any, data: Any
    ) -> dict[str, str] | None:
        """Session headers + this request's; None when there are none (the common case, whose
        request head is cached)."""
        if not (self.headers or headers or json is not None or isinstance(data, Mapping)):
            return None
        extra = dict(self.headers)
        if headers:
            extra.update(headers)
        if json is not None and not any(k.lower() == "content-type" for k in extra):
            extra["Content-Type"] = "application/json"
        elif isinstance(data, Mapping) and not any(k.lower() == "content-type" for k in extra):
            extra["Content-Type"] = "application/x-www-form-urlencoded"
        return extra

    def close(self) -> None:
        for conn in self._connections.values():
            conn.sock.close()
        self._connections.clear()

    # -- internals ------------------------------------------------------------------------
    def _send(
        self,
        method: str,
        route: _Route,
        target: str,
        headers: dict[str, str] | None,
        body: bytes | None,
        timeout: float,
        allow_redirects: bool,
    ) -> FastResponse:
        for _ in range(_MAX_REDIRECTS + 1):
            response = self._roundtrip(method, route, target, headers, body, timeout)
            if not allow_redirects or response.status_code not in _REDIRECTS:
                return response
            location = response.headers.get("location")
            if not location:
                return response
            route = _route(urljoin(f"{route.scheme}://{route.netloc}{target}", location))
            target = f"{route.path}?{route.query}" if route.query else route.path
            if response.status_code == 303 or (
                response.status_code in (301, 302) and method == "POST"
            ):
                method, body = "GET", None
        raise FastHttpError(f"more than {_MAX_REDIRECTS} redirects")

    def _head(
        self,
        method: str,
        route: _Route,
        target: str,
        headers: dict[str, str] | None,
        body: bytes | None,
    ) -> bytes:
        """The request line and headers, without the cookie line and the final CRLF; cached
        for requests without extra headers or body (most load-test requests)."""
        cacheable = headers is None and body is None
        if cacheable:
            found = _HEADS.get((method, route.netloc, target))
            if found is not None:
                return found
        names = {k.lower() for k in headers} if headers else set()
        lines = [f"{method} {target} HTTP/1.1\r\n"]
        if "host" not in names:
            lines.append(f"Host: {route.netloc}\r\n")
        if "user-agent" not in names:
            lines.append(f"User-Agent: {USER_AGENT}\r\n")
        for k, v in (headers or {}).items():
            lines.append(f"{k}: {v}\r\n")
        if body is not None or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body or b'')}\r\n")
        head = "".join(lines).encode("latin-1")
        if cacheable and len(_HEADS) < _MAX_CACHED_HEADS:
            _HEADS[(method, route.netloc, target)] = head
        return head

    def _roundtrip(
        self,
        method: str,
        route: _Route,
        target: str,
        headers: dict[str, str] | None,
        body: bytes | None,
        timeout: float,
    ) -> FastResponse:
        head = self._head(method, route, target, headers, body)
        if self.cookies:
            cookie = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
            head += f"Cookie: {cookie}\r\n".encode("latin-1")
        data = head + b"\r\n" + body if body else head + b"\r\n"
        return self.exchange(route, data, method, timeout, target)

    def exchange(
        self,
        route: _Route,
        data: bytes,
        method: str,
        timeout: float,
        target: str,
        connect_timeout: float | None = None,
    ) -> FastResponse:
        """Send ready-made request bytes on this user's connection to ``route`` and parse the
        answer (the transport under the ``http`` client uses this too)."""
        key = route.key
        conn = self._connections.get(key)
        # A TLS connection made under another verification setting is not reused: one made
        # with verify=False must not carry a request that asks for verification.
        if conn is not None and (conn.verify is None or conn.verify == self.verify):
            try:
                return self._exchange(conn, key, data, method, timeout, target)
            except _StaleConnection:
                # A kept-alive connection the server had already closed: nothing of this
                # request was answered, so it is sent again once on a fresh connection.
                pass
        conn = self._connect(key, timeout if connect_timeout is None else connect_timeout)
        return self._exchange(conn, key, data, method, timeout, target)

    def _connect(self, key: tuple[str, str, int], timeout: float) -> _Connection:
        old = self._connections.pop(key, None)
        if old is not None:
            old.sock.close()
        scheme, host, port = key
        family, address = _resolve(host, port)
        sock = socket.socket(family, socket.SOCK_STREAM)
        verify = self.verify if scheme == "https" else None
        try:
            sock.settimeout(timeout)
            sock.connect(address)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if verify is not None:
                sock = _ssl_context(verify).wrap_socket(sock, server_hostname=host)
        except TimeoutError:
            sock.close()
            raise ConnectTimeout(
                f"connecting to {host}:{port} took longer than {timeout:g}s"
            ) from None
        except BaseException:
            sock.close()
            raise
        conn = self._connections[key] = _Connection(sock, verify)
        return conn

    def _exchange(
        self,
        conn: _Connection,
        key: tuple[str, str, int],
        data: bytes,
        method: str,
        timeout: float,
        target: str,
    ) -> FastResponse:
        sock = conn.sock
        sock.settimeout(timeout)
        parse = _lend_parser(self.max_body)
        feed = parse.parser.feed_data
        reused, conn.used = conn.used, True
        received = 0
        try:
            # One plain send nearly always takes the whole request; sendall's extra Python
            # layers are only paid when it does not.
            sent = sock.send(data)
            if sent < len(data):
                sock.sendall(data[sent:])
            while not parse.done:
                chunk = sock.recv(_RECV)
                if not chunk:
                    if received == 0 and reused:
                        raise _StaleConnection("kept-alive connection closed by the server")
                    if (
                        parse.headers_done
                        and not _has(parse.headers, b"content-length")
                        and not _has(parse.headers, b"transfer-encoding")
                    ):
                        break  # body delimited by the end of the connection
                    raise ConnectionClosed("connection closed before the response was complete")
                received += len(chunk)
                try:
                    feed(chunk)
                except httptools.HttpParserCallbackError:
                    if not parse.done:
                        raise
                    break  # bytes after a complete response (see on_message_begin)
                if method == "HEAD" and parse.headers_done:
                    break  # no body follows, whatever Content-Length says
                if parse.too_large:
                    raise BodyTooLarge(f"response body larger than {parse.max_body} bytes")
        except BaseException:
            self._connections.pop(key, None)
            sock.close()
            raise
        status = parse.status if parse.done else parse.parser.get_status_code()
        raw, body, reason = parse.headers, parse.body, parse.reason
        if not (parse.done and parse.keep_alive) or method == "HEAD":
            self._connections.pop(key, None)
            sock.close()
        elif len(_PARSERS) < _MAX_POOLED_PARSERS:
            parse.reset()
            _PARSERS.append(parse)
        for name, value in raw:
            if len(name) == 10 and name.lower() == b"set-cookie":
                self._store_cookie(value.decode("latin-1"))
        content = b"".join(body) if len(body) != 1 else body[0]
        scheme, host, port = key
        return FastResponse(status, reason, raw, content, f"{scheme}://{host}:{port}{target}")

    def _store_cookie(self, line: str) -> None:
        pair = line.split(";", 1)[0]
        if "=" in pair:
            k, v = pair.split("=", 1)
            if v.strip():
                self.cookies[k.strip()] = v.strip()
            else:
                self.cookies.pop(k.strip(), None)


class _Route(NamedTuple):
    """What a URL says about where to send a request (parsed once per distinct URL)."""

    scheme: str
    host: str
    port: int
    netloc: str
    path: str
    query: str

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)


@lru_cache(maxsize=4096)
def _route(url: str) -> _Route:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an absolute http(s) URL: {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return _Route(parts.scheme, parts.hostname, port, parts.netloc, parts.path or "/", parts.query)


def _has(headers: list[tuple[bytes, bytes]], name: bytes) -> bool:
    return any(k.lower() == name for k, _ in headers)


_RESOLVED: dict[tuple[str, int], tuple[int, Any]] = {}


def _resolve(host: str, port: int) -> tuple[int, Any]:
    """(family, address) of ``host``, looked up once per process: thousands of users connecting
    to one host would otherwise each queue a lookup on gevent's resolver thread pool (time
    and memory). IP literals need no lookup at all. A load test's target does not move during
    a run; a host that does is reached at the address it had when the run started."""
    found = _RESOLVED.get((host, port))
    if found is None:
        try:
            ip = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            family, _, _, _, address = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
            found = (family, address)
        else:
            found = (socket.AF_INET6 if ip.version == 6 else socket.AF_INET, (str(ip), port))
        _RESOLVED[(host, port)] = found
    return found


def _body(data: bytes | str | Mapping[str, Any] | None, json: Any) -> bytes | None:
    if json is not None:
        return jsonlib.dumps(json, separators=(",", ":")).encode()
    if data is None:
        return None
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode()
    return urlencode(data, doseq=True).encode()
