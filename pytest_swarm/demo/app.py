"""The demo target service: a plain WSGI application with exact request counting.

It is the service the examples load-test and the test-suite's counting
server: every request is counted per path (query string stripped) *when it
arrives*, so once a client has its response the count already includes it.
The inspection endpoints ``GET /__stats`` and ``POST /__reset`` are never
counted.

Latency is simulated with :func:`gevent.sleep`, so the application is meant
to run under :class:`gevent.pywsgi.WSGIServer` (see ``python -m
pytest_swarm.demo``); it needs no monkey-patching.

Endpoints:

==========================  ==================================================
``GET /``                   200 ``ok`` (text/plain), instant
``GET /items``              200 JSON list of 20 items, 5-30 ms
``GET /items/<id>``         200 JSON item, 5-20 ms; 404 for ``id > 1000``
``POST /login``             JSON ``{"user": "..."}``; 200, sets ``session``
                            cookie; 400 on a bad body; 10-50 ms
``POST /logout``            200, ends the session and clears the cookie
``GET /cart``               200 the user's cart, 401 without a valid session
``POST /cart``              adds JSON ``{"item": ..., "qty": n}`` (both
                            optional) to the cart, 200 with the cart, or 401
``GET /slow``               200 after 200-400 ms
``GET /delay?ms=N``         200 after N ms (capped at 60 000)
``GET /flaky``              500 for about 2 % of requests, else 200; 5-15 ms
``GET /status/<code>``      that status (200-599)
``GET /bytes?n=N``          N bytes streamed in 64 KiB chunks (capped at 2 GiB)
``GET /hang``               answers only once the client has gone away, or
                            after 10 minutes at most
``GET /__stats``            JSON ``{"total", "paths", "logins", "logouts"}``
``POST /__reset``           zeroes the counters, drops sessions and carts
==========================  ==================================================

Example:
    >>> from pytest_swarm.demo.app import DemoApp
    >>> app = DemoApp()
    >>> statuses = []
    >>> environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "QUERY_STRING": ""}
    >>> b"".join(app(environ, lambda status, headers: statuses.append(status)))
    b'ok'
    >>> statuses, app.stats()["total"], app.stats()["paths"]
    (['200 OK'], 1, {'/': 1})
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import secrets
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import gevent
from gevent.pywsgi import WSGIHandler
from gevent.socket import wait_read

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = [
    "BYTES_CAP",
    "CHUNK_SIZE",
    "DELAY_CAP_MS",
    "HANG_MAX_SECONDS",
    "SOCKET_ENVIRON_KEY",
    "DemoApp",
    "DemoHandler",
    "app",
]

#: Size of the chunks ``GET /bytes`` streams.
CHUNK_SIZE = 64 * 1024
#: Largest body ``GET /bytes?n=N`` sends (2 GiB).
BYTES_CAP = 2 * 1024**3
#: Largest delay ``GET /delay?ms=N`` honours, in milliseconds.
DELAY_CAP_MS = 60_000
#: Longest time ``GET /hang`` holds a request, in seconds.
HANG_MAX_SECONDS = 600.0
#: WSGI environ key under which :class:`DemoHandler` exposes the client socket.
SOCKET_ENVIRON_KEY = "pytest_swarm.demo.socket"

# Memory bounds, so a long load test cannot grow the server without limit.
_MAX_SESSIONS = 100_000
_MAX_CARTS = 100_000
_MAX_CART_LINES = 1_000
_MAX_PATH_KEYS = 10_000
_OTHER_PATHS_KEY = "<other>"
_MAX_BODY = 64 * 1024
_HANG_POLL_SECONDS = 0.5

_UNCOUNTED = frozenset({"/__stats", "/__reset"})
_ITEM_RE = re.compile(r"/items/(\d{1,18})")
_STATUS_RE = re.compile(r"/status/(\d{1,3})")
_CHUNK = b"x" * CHUNK_SIZE
_ITEMS_IN_LIST = 20
_MAX_ITEM_ID = 1000

_Headers = list[tuple[str, str]]
_Body = Iterable[bytes]
_Result = tuple[str, _Headers, _Body]
_Handler = Callable[["DemoApp", str, "WSGIEnvironment"], _Result]


def _item(item_id: int) -> dict[str, Any]:
    return {
        "id": item_id,
        "name": f"item-{item_id}",
        "price": round(1 + (item_id * 37 % 1000) / 10, 2),
    }


def _reason(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return "Unknown"


def _status(code: int) -> str:
    return f"{code} {_reason(code)}"


class DemoHandler(WSGIHandler):  # type: ignore[misc]  # gevent is untyped
    """A :class:`gevent.pywsgi.WSGIHandler` that exposes the client socket.

    The socket is placed in the environ under :data:`SOCKET_ENVIRON_KEY`, so
    ``GET /hang`` can notice when the client goes away. ``python -m
    pytest_swarm.demo`` uses it; under any other server ``/hang`` simply
    sleeps for its bounded maximum.

    Example:
        >>> from gevent.pywsgi import WSGIServer
        >>> server = WSGIServer(("127.0.0.1", 0), app, handler_class=DemoHandler, log=None)
    """

    def __init__(self, sock: Any, address: Any, server: Any, *args: Any, **kwargs: Any) -> None:
        # pywsgi writes headers and body in separate sends: without TCP_NODELAY, Nagle's
        # algorithm holds the body until the client's delayed ACK, adding ~40 ms to every
        # response on a kept-alive connection.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().__init__(sock, address, server, *args, **kwargs)

    def get_environ(self) -> dict[str, Any]:
        env: dict[str, Any] = super().get_environ()
        env[SOCKET_ENVIRON_KEY] = self.socket
        return env


def _client_gone(sock: Any, timeout: float) -> bool:
    """Wait up to *timeout* seconds; return whether the peer closed *sock*."""
    try:
        fileno = sock.fileno()
    except OSError:
        return True
    if fileno < 0:
        return True
    try:
        wait_read(fileno, timeout=timeout, timeout_exc=TimeoutError())
    except TimeoutError:
        return False
    except OSError:
        return True
    raw = getattr(sock, "_sock", sock)  # gevent keeps a non-blocking stdlib socket
    try:
        peeked = raw.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True
    if peeked:
        # The client pipelined another request: it is still there. Do not spin.
        gevent.sleep(timeout)
        return False
    return True


class DemoApp:
    """The demo target as a WSGI callable, with its own counters and sessions.

    All state lives in the instance; the module-level :data:`app` is the one
    ``python -m pytest_swarm.demo`` serves. Mutations happen under a lock and
    never yield to the gevent hub, so the counts are exact.

    Example:
        >>> demo = DemoApp()
        >>> environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/status/503"}
        >>> seen = []
        >>> body = b"".join(demo(environ, lambda status, headers: seen.append(status)))
        >>> seen
        ['503 Service Unavailable']
        >>> demo.stats()["paths"]
        {'/status/503': 1}
        >>> demo.reset(); demo.stats()["total"]
        0
    """

    def __init__(self, rng: random.Random | None = None) -> None:
        self._lock = threading.Lock()
        self._rng = rng if rng is not None else random.Random()
        self._total = 0
        self._paths: dict[str, int] = {}
        self._logins = 0
        self._logouts = 0
        self._sessions: OrderedDict[str, str] = OrderedDict()
        self._carts: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()

    # -- inspection -----------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Return a snapshot: ``{"total", "paths", "logins", "logouts"}``.

        Example:
            >>> DemoApp().stats()
            {'total': 0, 'paths': {}, 'logins': 0, 'logouts': 0}
        """
        with self._lock:
            return {
                "total": self._total,
                "paths": dict(self._paths),
                "logins": self._logins,
                "logouts": self._logouts,
            }

    def reset(self) -> None:
        """Zero every counter and forget all sessions and carts.

        Example:
            >>> demo = DemoApp(); demo.reset(); demo.stats()["logins"]
            0
        """
        with self._lock:
            self._total = 0
            self._paths.clear()
            self._logins = 0
            self._logouts = 0
            self._sessions.clear()
            self._carts.clear()

    def _count(self, path: str) -> None:
        with self._lock:
            self._total += 1
            if path in self._paths:
                self._paths[path] += 1
            elif len(self._paths) < _MAX_PATH_KEYS:
                self._paths[path] = 1
            else:
                self._paths[_OTHER_PATHS_KEY] = self._paths.get(_OTHER_PATHS_KEY, 0) + 1

    # -- WSGI -----------------------------------------------------------------------

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> _Body:
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        path = str(environ.get("PATH_INFO", "") or "/")
        if path not in _UNCOUNTED:
            self._count(path)
        status, headers, body = self._dispatch(method, path, environ)
        start_response(status, headers)
        return body

    def _dispatch(self, method: str, path: str, environ: WSGIEnvironment) -> _Result:
        route = self._ROUTES.get(path)
        if route is not None:
            handlers = route
        elif _ITEM_RE.fullmatch(path):
            handlers = {"GET": DemoApp._get_item}
        elif _STATUS_RE.fullmatch(path):
            handlers = {"GET": DemoApp._get_status}
        else:
            return self._error(404, "not found")
        handler = handlers.get(method)
        if handler is None:
            status, headers, body = self._error(405, "method not allowed")
            headers.append(("Allow", ", ".join(sorted(handlers))))
            return status, headers, body
        return handler(self, path, environ)

    # -- response helpers -----------------------------------------------------------

    @staticmethod
    def _text(code: int, text: str, extra: _Headers | None = None) -> _Result:
        data = text.encode()
        headers = [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(data))),
        ]
        return _status(code), headers + (extra or []), [data]

    @staticmethod
    def _json(code: int, payload: Any, extra: _Headers | None = None) -> _Result:
        data = json.dumps(payload, separators=(",", ":")).encode()
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
        return _status(code), headers + (extra or []), [data]

    @classmethod
    def _error(cls, code: int, message: str) -> _Result:
        return cls._json(code, {"error": message})

    def _latency(self, low_ms: float, high_ms: float) -> None:
        gevent.sleep(self._rng.uniform(low_ms, high_ms) / 1000.0)

    @staticmethod
    def _query_int(environ: WSGIEnvironment, name: str) -> int | None:
        """The integer query parameter *name*: 0 if absent, None if invalid."""
        values = parse_qs(str(environ.get("QUERY_STRING", ""))).get(name)
        if not values:
            return 0
        try:
            value = int(values[0])
        except ValueError:
            return None
        return value if value >= 0 else None

    @staticmethod
    def _read_json(environ: WSGIEnvironment) -> tuple[bool, Any]:
        """Read a bounded JSON body: ``(ok, value)``; an empty body is ``(True, None)``."""
        stream = environ.get("wsgi.input")
        length_text = str(environ.get("CONTENT_LENGTH", "") or "")
        if stream is None:
            return True, None
        try:
            if length_text:
                length = int(length_text)
                if length < 0 or length > _MAX_BODY:
                    return False, None
                raw = stream.read(length) if length else b""
            elif environ.get("wsgi.input_terminated"):
                raw = stream.read(_MAX_BODY + 1)
                if len(raw) > _MAX_BODY:
                    return False, None
            else:
                raw = b""
        except (ValueError, OSError):
            return False, None
        if not raw.strip():
            return True, None
        try:
            return True, json.loads(raw)
        except ValueError:
            return False, None

    def _session_user(self, environ: WSGIEnvironment) -> tuple[str | None, str | None]:
        """``(token, user)`` for the request's ``session`` cookie, if valid."""
        cookie_header = str(environ.get("HTTP_COOKIE", "") or "")
        for part in cookie_header.split(";"):
            name, sep, value = part.strip().partition("=")
            if sep and name == "session":
                token = value.strip().strip('"')
                with self._lock:
                    user = self._sessions.get(token)
                    if user is not None:
                        self._sessions.move_to_end(token)
                        return token, user
        return None, None

    # -- endpoints ------------------------------------------------------------------

    def _get_root(self, path: str, environ: WSGIEnvironment) -> _Result:
        return self._text(200, "ok")

    def _get_items(self, path: str, environ: WSGIEnvironment) -> _Result:
        self._latency(5, 30)
        return self._json(200, [_item(i) for i in range(1, _ITEMS_IN_LIST + 1)])

    def _get_item(self, path: str, environ: WSGIEnvironment) -> _Result:
        match = _ITEM_RE.fullmatch(path)
        item_id = int(match.group(1)) if match else _MAX_ITEM_ID + 1
        self._latency(5, 20)
        if item_id > _MAX_ITEM_ID:
            return self._error(404, f"no item {item_id}")
        return self._json(200, _item(item_id))

    def _post_login(self, path: str, environ: WSGIEnvironment) -> _Result:
        ok, body = self._read_json(environ)
        self._latency(10, 50)
        user = body.get("user") if ok and isinstance(body, dict) else None
        if not isinstance(user, str) or not user:
            return self._error(400, 'expected a JSON body {"user": "<name>"}')
        token = secrets.token_hex(16)
        with self._lock:
            self._sessions[token] = user
            while len(self._sessions) > _MAX_SESSIONS:
                self._sessions.popitem(last=False)
            self._logins += 1
        cookie = f"session={token}; Path=/; HttpOnly; SameSite=Lax"
        return self._json(200, {"user": user}, [("Set-Cookie", cookie)])

    def _post_logout(self, path: str, environ: WSGIEnvironment) -> _Result:
        token, user = self._session_user(environ)
        self._latency(10, 50)
        with self._lock:
            if token is not None:
                self._sessions.pop(token, None)
            self._logouts += 1
        cookie = "session=; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"
        return self._json(200, {"user": user}, [("Set-Cookie", cookie)])

    def _cart_payload(self, user: str) -> dict[str, Any]:
        with self._lock:
            lines = [dict(line) for line in self._carts.get(user, [])]
        return {"user": user, "items": lines, "count": sum(int(li["qty"]) for li in lines)}

    def _get_cart(self, path: str, environ: WSGIEnvironment) -> _Result:
        _, user = self._session_user(environ)
        self._latency(10, 50)
        if user is None:
            return self._error(401, "login required")
        return self._json(200, self._cart_payload(user))

    def _post_cart(self, path: str, environ: WSGIEnvironment) -> _Result:
        ok, body = self._read_json(environ)
        _, user = self._session_user(environ)
        self._latency(10, 50)
        if user is None:
            return self._error(401, "login required")
        if not ok or not (body is None or isinstance(body, dict)):
            return self._error(400, 'expected a JSON body {"item": ..., "qty": n}')
        fields: dict[str, Any] = body or {}
        item = fields.get("item", "item")
        qty = fields.get("qty", 1)
        if not isinstance(qty, int) or isinstance(qty, bool) or qty < 1:
            return self._error(400, "qty must be a positive integer")
        if not isinstance(item, (str, int)) or isinstance(item, bool):
            return self._error(400, "item must be a string or an integer")
        with self._lock:
            cart = self._carts.setdefault(user, [])
            self._carts.move_to_end(user)
            cart.append({"item": item, "qty": qty})
            del cart[:-_MAX_CART_LINES]
            while len(self._carts) > _MAX_CARTS:
                self._carts.popitem(last=False)
        return self._json(200, self._cart_payload(user))

    def _get_slow(self, path: str, environ: WSGIEnvironment) -> _Result:
        self._latency(200, 400)
        return self._text(200, "slow")

    def _get_delay(self, path: str, environ: WSGIEnvironment) -> _Result:
        ms = self._query_int(environ, "ms")
        if ms is None:
            return self._error(400, "ms must be a non-negative integer")
        ms = min(ms, DELAY_CAP_MS)
        gevent.sleep(ms / 1000.0)
        return self._json(200, {"delayed_ms": ms})

    def _get_flaky(self, path: str, environ: WSGIEnvironment) -> _Result:
        failed = self._rng.random() < 0.02
        self._latency(5, 15)
        return self._text(500, "flaky failure") if failed else self._text(200, "ok")

    def _get_status(self, path: str, environ: WSGIEnvironment) -> _Result:
        match = _STATUS_RE.fullmatch(path)
        code = int(match.group(1)) if match else 0
        if not 200 <= code <= 599:
            return self._error(400, "status must be between 200 and 599")
        if code in (204, 304):
            return _status(code), [], []
        return self._text(code, f"{code} {_reason(code)}")

    def _get_bytes(self, path: str, environ: WSGIEnvironment) -> _Result:
        n = self._query_int(environ, "n")
        if n is None:
            return self._error(400, "n must be a non-negative integer")
        n = min(n, BYTES_CAP)
        headers = [("Content-Type", "application/octet-stream"), ("Content-Length", str(n))]
        return _status(200), headers, self._stream(n)

    @staticmethod
    def _stream(n: int) -> Iterator[bytes]:
        full, rest = divmod(n, CHUNK_SIZE)
        for _ in range(full):
            yield _CHUNK
        if rest:
            yield _CHUNK[:rest]

    def _get_hang(self, path: str, environ: WSGIEnvironment) -> _Result:
        sock = environ.get(SOCKET_ENVIRON_KEY)
        deadline = time.monotonic() + HANG_MAX_SECONDS
        while (remaining := deadline - time.monotonic()) > 0:
            step = min(_HANG_POLL_SECONDS, remaining)
            if sock is None:
                gevent.sleep(step)
            elif _client_gone(sock, step):
                break
        return self._text(200, "done hanging")

    def _post_reset(self, path: str, environ: WSGIEnvironment) -> _Result:
        self.reset()
        return self._json(200, {"reset": True})

    def _get_stats(self, path: str, environ: WSGIEnvironment) -> _Result:
        return self._json(200, self.stats())

    _ROUTES: dict[str, dict[str, _Handler]] = {
        "/": {"GET": _get_root},
        "/items": {"GET": _get_items},
        "/login": {"POST": _post_login},
        "/logout": {"POST": _post_logout},
        "/cart": {"GET": _get_cart, "POST": _post_cart},
        "/slow": {"GET": _get_slow},
        "/delay": {"GET": _get_delay},
        "/flaky": {"GET": _get_flaky},
        "/bytes": {"GET": _get_bytes},
        "/hang": {"GET": _get_hang},
        "/__stats": {"GET": _get_stats},
        "/__reset": {"POST": _post_reset},
    }


#: The application ``python -m pytest_swarm.demo`` serves.
app = DemoApp()
