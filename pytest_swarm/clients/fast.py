"""The ``fast_http`` client: HTTP/1.1 over gevent sockets with httptools' C parser.

For throughput-bound tests, where ``requests`` (≈450 µs of CPU per request) would make the load
generator the bottleneck. Same recording, naming, failure and ``catch_response`` semantics as
the ``http`` client; one keep-alive connection per (user, host), checked before reuse; chunked
and content-length bodies; gzip/deflate (and brotli when installed) decoded; HTTPS through the
(gevent-patched) ``ssl`` module; a read timeout per socket operation and a deadline for the
whole request; bounded heads and bodies (the decoded size); redirects off by default
(``allow_redirects=True`` follows up to 5). A scoped cookie jar keeps ``Set-Cookie`` cookies per
user so login flows work; there is no proxy support, and only idempotent requests are sent again
when a kept-alive connection turns out closed.

The pieces: :mod:`.connect` (addresses, sockets, TLS), :mod:`.wire` (parsing one response),
:mod:`.decoding` (content codings), :mod:`.cookies` (the jar); this module is the session.

Example:
    >>> @pytest.mark.load(users=200, duration="30s")          # doctest: +SKIP
    ... def test_home(fast_http):
    ...     fast_http.get("/")
    ...     with fast_http.get("/cart", catch_response=True) as r:
    ...         if b"empty" in r.content:
    ...             r.failure("cart lost")
"""

from __future__ import annotations

import base64
import json as jsonlib
import time
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, NamedTuple
from urllib.parse import quote, unquote, urlencode, urljoin, urlsplit

import httptools

from ..defaults import DEFAULT_MAX_BODY, DEFAULT_TIMEOUT
from ..engine.heap import on_trim
from ..stats.recorder import Recorder
from .common import CatchMixin, error_message, join_url, request_name, status_message
from .connect import TLS_CONTEXTS, Cert, Connection, Proxy, open_socket, open_tunnel
from .cookies import CookieJar
from .decoding import ACCEPT_ENCODING, decode
from .errors import (
    BodyTooLarge,
    ConnectionClosed,
    ConnectTimeout,
    DeadlineExceeded,
    DecodeFailed,
    FastHttpError,
    HeadersTooLarge,
    IncompleteBody,
    InvalidFraming,
    StaleConnection,
)
from .reading import Reading
from .wire import ParserPool

__all__ = [
    "BodyTooLarge",
    "CatchFastResponse",
    "ConnectTimeout",
    "ConnectionClosed",
    "DeadlineExceeded",
    "DecodeFailed",
    "FastHttpError",
    "FastHttpSession",
    "FastResponse",
    "HeadersTooLarge",
    "IncompleteBody",
    "InvalidFraming",
    "Route",
    "route_of",
]

USER_AGENT = "pytest-swarm"
_MAX_REDIRECTS = 5
_REDIRECTS = (301, 302, 303, 307, 308)
# Sent again on a fresh connection when a kept-alive one was closed before answering: the
# methods RFC 9110 §9.2.2 calls idempotent (a POST may have been acted on).
_IDEMPOTENT = frozenset(("GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"))
# The characters left as they are in a request target (requests' requote_uri set).
_SAFE = "!#$%&'()*+,/:;=?@[]~"


class FastResponse:
    """A parsed response. ``headers`` keys are lower-case.

    Example:
        >>> r = FastResponse(200, "OK", {"content-type": "text/plain"}, b"ok", "http://h/")
        >>> r.ok, r.text, r.headers["content-type"]
        (True, 'ok', 'text/plain')
    """

    __slots__ = (
        "_arrived",
        "_coding",
        "_cookies",
        "_headers",
        "_raw",
        "_rest",
        "_sent",
        "content",
        "elapsed",
        "error",
        "reason",
        "status_code",
        "url",
    )

    def __init__(
        self,
        status_code: int,
        reason: str,
        headers: dict[str, str] | list[tuple[bytes, bytes]],
        content: bytes,
        url: str,
        error: BaseException | None = None,
        coding: bytes = b"",
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
        self._coding = coding  # Content-Encoding of ``content`` while not decoded yet
        self._cookies = False  # a Set-Cookie (or Set-Cookie2) header came
        self._rest: Reading | None = None  # a streamed body's reading, while not at its end
        # perf_counter() times: the request began going out (its connection's opening, if it
        # had to open one) and its answer's last bytes were there to read (Reading._recv).
        self._sent = 0.0
        self._arrived = 0.0

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
        self._swarm = (recorder, name, elapsed, len(r.content))
        self._error = r.error
        self._verdict = None


class Route(NamedTuple):
    """What a URL says about where to send a request (parsed once per distinct URL)."""

    scheme: str
    host: str
    port: int
    netloc: str  # host[:port] as written, without userinfo: the Host header
    path: str  # percent-encoded
    query: str  # percent-encoded
    auth: str  # the Authorization value from the URL's userinfo, or ""
    # (scheme, host, port): the connection it goes on. A field, not a property: it is asked
    # for on every request, and routes are made once per URL (route_of's cache).
    key: tuple[str, str, int]


@lru_cache(maxsize=4096)
def route_of(url: str) -> Route:
    """Parse ``url`` (cached: a load test sends the same few URLs over and over)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an absolute http(s) URL: {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    userinfo, at, netloc = parts.netloc.rpartition("@")
    auth = ""
    if at:
        user, _, password = userinfo.partition(":")
        token = f"{unquote(user)}:{unquote(password)}".encode("latin-1")
        auth = "Basic " + base64.b64encode(token).decode("ascii")
    path = quote(parts.path, safe=_SAFE) or "/"
    query = quote(parts.query, _SAFE)
    key = (parts.scheme, parts.hostname, port)
    return Route(parts.scheme, parts.hostname, port, netloc, path, query, auth, key)


class TargetCache:
    """A request's URL (as the test gives it, with the session's base URL) joined and parsed
    once per process: a load test sends the same few URLs over and over. Bounded: past
    ``limit`` distinct URLs the others are joined and parsed on every request."""

    __slots__ = ("limit", "targets")

    def __init__(self, limit: int = 4096) -> None:
        self.targets: dict[tuple[str | None, str], tuple[str, Route]] = {}
        self.limit = limit


class HeadCache:
    """Request heads without per-request headers or body are the same for every user: one cache
    per process (a per-user cache cost memory on every idle user), bounded."""

    __slots__ = ("heads", "limit")

    def __init__(self, limit: int = 4096) -> None:
        self.heads: dict[tuple[str, str, str, str], bytes] = {}
        self.limit = limit


PARSERS = ParserPool()
on_trim(PARSERS.shrink)  # the peak's parsers go with the heap's trim, once users are idle
HEADS = HeadCache()
TARGETS = TargetCache()


class FastHttpSession:
    """One virtual user's fast HTTP client.

    ``timeout`` bounds each socket operation (connect, and each read: the time the server may
    stay silent); ``deadline`` bounds the whole request, redirects included, however steadily
    the server trickles bytes (default: the timeout). Both can be given per request.

    Example:
        >>> s = FastHttpSession("http://127.0.0.1:8089", Recorder())
        >>> s.headers["X-Team"] = "perf"          # sent with every request
    """

    # Thousands of idle users each hold one of these: no per-instance __dict__.
    __slots__ = (
        "_connections",
        "base_url",
        "cert",
        "cookies",
        "deadline",
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
        deadline: float | None = None,
    ) -> None:
        self.base_url = base_url
        self.recorder = recorder
        self.timeout = timeout
        self.deadline = timeout if deadline is None else deadline
        self.max_body = max_body
        self.verify = verify
        # A client certificate for HTTPS (requests' cert=: a PEM path or (cert, key) paths).
        self.cert: Cert = None
        self.headers: dict[str, str] = {}
        self.cookies = CookieJar()
        self._connections: dict[tuple[str, str, int], Connection] = {}

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
        deadline: float | None = None,
        allow_redirects: bool = False,
        stream: bool = False,
    ) -> Any:
        """Send one request, record it, return a :class:`FastResponse` (never raises for
        HTTP or connection errors: ``status_code`` is 0 and ``error`` set for the latter)."""
        if stream:
            raise TypeError(
                "fast_http does not stream (stream=True): its bodies are read whole, bounded "
                "by swarm_max_body; use the http fixture's stream=True to read a body in pieces"
            )
        method = method.upper()
        targets = TARGETS.targets
        cache_key = (self.base_url, url)
        found = targets.get(cache_key)
        if found is None:
            full = join_url(self.base_url, url)
            route: Route | None = None
        else:
            full, route = found
        start = time.perf_counter()
        try:
            if route is None:
                route = route_of(full)
                if len(targets) < TARGETS.limit:
                    targets[cache_key] = (full, route)
            target = route.path
            if name is None:
                name = f"{method} {target}"
            query = route.query
            if params:
                encoded = urlencode(params, doseq=True)
                query = f"{query}&{encoded}" if query else encoded
            if query:
                target = f"{target}?{query}"
            # The common case (no body, no headers) without the two calls: per request.
            body = None if data is None and json is None else _body(data, json)
            extra = (
                self._extra_headers(headers, json, data)
                if self.headers or headers or body is not None
                else None
            )
            timeout = timeout or self.timeout
            until = start + (deadline or self.deadline)
            if allow_redirects:
                response = self._send(method, route, target, extra, body, timeout, until, True)
            else:  # _send's loop has nothing to follow: one call less, per request
                response = self._roundtrip(method, route, target, extra, body, timeout, until)
            if response._coding:
                # Only the final response is decoded, bounded on the decoded size.
                coding = response._coding.decode("latin-1")
                response.content = decode(response.content, coding, self.max_body)
                response._coding = b""
        except (OSError, FastHttpError, httptools.HttpParserError, ValueError) as exc:
            elapsed = time.perf_counter() - start
            if name is None:
                name = request_name(method, full)
            response = FastResponse(0, "", {}, b"", full, exc.with_traceback(None))
            response.elapsed = elapsed
            if catch_response:
                return CatchFastResponse(response, self.recorder, name, elapsed)
            self.recorder.record_failure(name, elapsed, type(exc).__name__, error_message(exc))
            return response
        # The request's time on the wire: from its first byte going out to its answer's last
        # bytes being there, not the Python around it (building it, decoding the answer), as
        # wrk times a request. Redirects followed count from the first request's start.
        elapsed = response._arrived - response._sent
        response.elapsed = elapsed
        if catch_response:
            return CatchFastResponse(response, self.recorder, name, elapsed)
        if response.status_code >= 400:
            self.recorder.record_failure(
                name,
                elapsed,
                "HTTPError",
                status_message(response.status_code, response.reason),
                size=len(response.content),
            )
        else:
            self.recorder.record(name, elapsed, len(response.content))
        return response

    def _extra_headers(
        self, headers: Mapping[str, str] | None, json: Any, data: Any
    ) -> dict[str, str] | None:
        """Session headers + this request's; None when there are none (the common case, whose
        request head is cached)."""
        if not (
            self.headers
            or headers
            or json is not None
            or (data is not None and isinstance(data, Mapping))
        ):
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
            conn.close()
        self._connections.clear()

    # -- internals ------------------------------------------------------------------------
    def _send(
        self,
        method: str,
        route: Route,
        target: str,
        headers: dict[str, str] | None,
        body: bytes | None,
        timeout: float,
        deadline: float,
        allow_redirects: bool,
    ) -> FastResponse:
        sent = 0.0
        for _ in range(_MAX_REDIRECTS + 1):
            response = self._roundtrip(method, route, target, headers, body, timeout, deadline)
            if sent:
                response._sent = sent  # a redirect's answer: timed from the first request
            else:
                sent = response._sent
            if not allow_redirects or response.status_code not in _REDIRECTS:
                return response
            location = response.headers.get("location")
            if not location:
                return response
            new = route_of(urljoin(f"{route.scheme}://{route.netloc}{target}", location))
            if new.host != route.host:
                # Credentials stay with the host they were given for (as requests does).
                headers = _without(headers, ("authorization",))
            route = new
            target = f"{route.path}?{route.query}" if route.query else route.path
            if response.status_code == 303 or (
                response.status_code in (301, 302) and method == "POST"
            ):
                # Now a GET without a body: nothing may describe the body any more.
                method, body = "GET", None
                headers = _without(headers, ("content-type", "content-length"))
        raise FastHttpError(f"more than {_MAX_REDIRECTS} redirects")

    def _head(
        self,
        method: str,
        route: Route,
        target: str,
        headers: dict[str, str] | None,
        body: bytes | None,
    ) -> bytes:
        """The request line and headers, without the cookie line and the final CRLF; cached
        for requests without extra headers or body (most load-test requests)."""
        cacheable = headers is None and body is None
        cache_key = (method, route.netloc, route.auth, target)
        if cacheable:
            found = HEADS.heads.get(cache_key)
            if found is not None:
                return found
        names = {k.lower() for k in headers} if headers else set()
        lines = [f"{method} {target} HTTP/1.1\r\n"]
        if "host" not in names:
            lines.append(f"Host: {route.netloc}\r\n")
        if "user-agent" not in names:
            lines.append(f"User-Agent: {USER_AGENT}\r\n")
        if "accept-encoding" not in names:
            lines.append(f"Accept-Encoding: {ACCEPT_ENCODING}\r\n")
        if route.auth and "authorization" not in names:
            lines.append(f"Authorization: {route.auth}\r\n")
        for k, v in (headers or {}).items():
            lines.append(f"{k}: {v}\r\n")
        if body is not None or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body or b'')}\r\n")
        head = "".join(lines).encode("latin-1")
        if cacheable and len(HEADS.heads) < HEADS.limit:
            HEADS.heads[cache_key] = head
        return head

    def _roundtrip(
        self,
        method: str,
        route: Route,
        target: str,
        headers: dict[str, str] | None,
        body: bytes | None,
        timeout: float,
        deadline: float,
    ) -> FastResponse:
        head = None
        if headers is None and body is None:  # _head's cache, looked up here: per request
            head = HEADS.heads.get((method, route.netloc, route.auth, target))
        if head is None:
            head = self._head(method, route, target, headers, body)
        if self.cookies._cookies:  # the jar's __bool__, without its call: per request
            cookie = self.cookies.header(route.host, route.path, route.scheme == "https")
            if cookie:
                head += f"Cookie: {cookie}\r\n".encode("latin-1")
        data = head + b"\r\n" + body if body else head + b"\r\n"
        response = self.exchange(route, data, method, target, timeout, timeout, deadline)
        if response._cookies:
            for name, value in response._raw:
                if len(name) == 10 and name.lower() == b"set-cookie":
                    self.cookies.store(route.host, route.path, value.decode("latin-1"))
        return response

    def exchange(
        self,
        route: Route,
        data: bytes,
        method: str,
        target: str,
        timeout: float | None,
        connect_timeout: float | None,
        deadline: float | None,
        stream: bool = False,
        proxy: Proxy | None = None,
    ) -> FastResponse:
        """Send ready-made request bytes on this user's connection to ``route`` and parse the
        answer, its body not decoded (the transport under the ``http`` client uses this too).
        ``timeout``: per read (None: none); ``deadline``: a ``time.perf_counter()`` time the
        whole exchange must end by (None: none). With ``stream``, the answer is returned once
        its head is in: ``content`` is the body received so far and, unless that is all of it,
        ``_rest`` the :class:`Reading` that reads on (its connection out of the session until
        :meth:`release`). With ``proxy``, an ``http://`` request goes to the proxy (``data``
        has the absolute-form target) and an ``https://`` one through a CONNECT tunnel."""
        key = route.key if proxy is None else proxy.key(route)
        conn = self._connections.get(key)
        if conn is not None:
            # A TLS connection made under another verification setting or client certificate
            # is not reused (one made with verify=False must not carry a request that asks for
            # verification), nor one the server has closed or reset while it was idle.
            if (
                conn.verify is not None and (conn.verify != self.verify or conn.cert != self.cert)
            ) or conn.dropped():
                self._drop(key)
            else:
                try:
                    return self._exchange(
                        conn, key, data, method, timeout, deadline, target, stream
                    )
                except StaleConnection:
                    # Closed between the check and the request, before any byte of an
                    # answer: sent again only when sending twice is harmless.
                    if method not in _IDEMPOTENT:
                        raise
        opened = time.perf_counter()
        if deadline is not None and connect_timeout is None:
            connect_timeout = max(deadline - opened, 1e-6)
        conn = self._connect(key, route, proxy, connect_timeout)
        response = self._exchange(conn, key, data, method, timeout, deadline, target, stream)
        response._sent = opened  # a new connection's opening is part of the request's time
        return response

    def _drop(self, key: tuple[str, str, int]) -> None:
        conn = self._connections.pop(key, None)
        if conn is not None:
            conn.close()

    def _connect(
        self,
        key: tuple[str, str, int],
        route: Route,
        proxy: Proxy | None,
        timeout: float | None,
    ) -> Connection:
        self._drop(key)
        scheme, host, port = route.key
        verify = self.verify if scheme == "https" else None
        cert = self.cert if verify is not None else None
        tls = TLS_CONTEXTS.get(verify, cert) if verify is not None else None
        if proxy is None:
            sock = open_socket(host, port, timeout, tls)
        elif tls is not None:
            sock = open_tunnel(proxy, host, port, timeout, tls)
        else:
            sock = open_socket(proxy.host, proxy.port, timeout, None)
        conn = self._connections[key] = Connection(sock, verify, cert)
        return conn

    def _exchange(
        self,
        conn: Connection,
        key: tuple[str, str, int],
        data: bytes,
        method: str,
        timeout: float | None,
        deadline: float | None,
        target: str,
        stream: bool = False,
    ) -> FastResponse:
        free = PARSERS.free
        if free:  # PARSERS.lend, inlined: per request
            parse = free.pop()
            parse.max_body = self.max_body
            parse.head_only = method == "HEAD"
        else:
            parse = PARSERS.lend(self.max_body, method == "HEAD")
        reading = Reading(conn, parse, timeout, deadline)
        try:
            reading.send(data)
            step = reading.step
            if stream:
                while not step() and not parse.headers_done:
                    pass
            else:
                while not step():
                    pass
        except BaseException:
            # Not sent if still queued (a user stopped while it waited for its turn).
            reading.abandon()
            # Nothing of a failed response is kept: its partial body goes now, not when the
            # exception and its frames are collected.
            parse.drop_body()
            self._drop(key)
            raise
        done = parse.done
        status = parse.status if done else parse.parser.get_status_code()
        raw, reason, coding, cookies = parse.headers, parse.reason, parse.coding, parse.cookies
        body = parse.body  # reading.take(), inlined: per request
        if not body:
            content = b""
        else:
            content = body[0] if len(body) == 1 else b"".join(body)
            parse.body = []
        rest: Reading | None = None
        if done:
            if (
                parse.complete
                and parse.keep_alive
                and not (parse.head_only and parse.size)
                and self._connections.get(key) is conn
            ):
                # release()'s common case, inlined (per request): the connection stays where
                # it is, the parser goes back to the pool (PARSERS.give_back).
                if len(free) < PARSERS.limit:
                    parse.reset()
                    free.append(parse)
            else:
                self.release(key, reading)
        else:
            # Streamed: the connection is the response's until its body is read to the end
            # (then release() gives it back) or the response is closed.
            rest = reading
            del self._connections[key]
        scheme, host, port = key
        url = f"{scheme}://{host}:{port}{target}"
        response = FastResponse(status, reason, raw, content, url, None, coding)
        response._cookies = cookies
        response._rest = rest
        response._sent = reading.sent
        response._arrived = reading.arrived
        return response

    def release(self, key: tuple[str, str, int], reading: Reading) -> None:
        """``reading``'s response was read to its end: its connection is kept for the next
        request to ``key`` when it can carry one (else closed), its parser given back."""
        conn = reading.conn
        parse = reading.parse
        if reading.reusable:
            current = self._connections.get(key)
            if current is None:
                self._connections[key] = conn
            elif current is not conn:
                conn.close()  # another connection took the slot while this one streamed
            if parse.complete:
                PARSERS.give_back(parse)
            # else: a HEAD response left llhttp waiting for a body: the connection is
            # reusable, that parser is not.
        else:
            if self._connections.get(key) is conn:
                del self._connections[key]
            conn.close()


def _without(headers: dict[str, str] | None, names: tuple[str, ...]) -> dict[str, str] | None:
    if not headers:
        return headers
    kept = {k: v for k, v in headers.items() if k.lower() not in names}
    return kept or None


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
