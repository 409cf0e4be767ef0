"""Connections of the fast client: name resolution, TCP connect, TLS, liveness before reuse.

Each process-wide cache is owned by one object: :class:`Resolver` (a host's addresses, looked
up once per process) and :class:`TlsContexts` (one TLS context per verification setting).
:func:`open_socket` races the host's addresses in the resolver's order (happy eyeballs, RFC
8305): a host whose name resolves to ``::1`` first while the server listens on 127.0.0.1 only
(Debian, macOS ``localhost``) connects on the second address, at once when ``::1`` refuses and
after 250 ms when it does not answer at all; the address that worked is tried first from then
on.
"""

from __future__ import annotations

import errno
import ipaddress
import math
import os
import select
import socket
import ssl
import sys
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from ..native import pure_python
from . import stamps
from .errors import ConnectTimeout
from .hub import wait_for

Address = tuple[int, Any]  # (family, sockaddr)


class Resolver:
    """A host's addresses, looked up once per process: thousands of users connecting to one
    host would otherwise each queue a lookup on gevent's resolver thread pool (time and
    memory). IP literals need no lookup. A load test's target does not move during a run; a
    host that does is reached at the addresses it had when the run started."""

    __slots__ = ("_cache",)

    def __init__(self) -> None:
        self._cache: dict[tuple[str, int], list[Address]] = {}

    def addresses(self, host: str, port: int) -> list[Address]:
        found = self._cache.get((host, port))
        if found is None:
            try:
                ip = ipaddress.ip_address(host.strip("[]"))
            except ValueError:
                found = []
                for family, _, _, _, address in socket.getaddrinfo(
                    host, port, 0, socket.SOCK_STREAM
                ):
                    if (family, address) not in found:
                        found.append((family, address))
            else:
                found = [(socket.AF_INET6 if ip.version == 6 else socket.AF_INET, (str(ip), port))]
            self._cache[(host, port)] = found
        return found

    def prefer(self, host: str, port: int, address: Address) -> None:
        """``address`` worked: try it first next time."""
        found = self._cache.get((host, port))
        if found and found[0] != address and address in found:
            found.remove(address)
            found.insert(0, address)

    def clear(self) -> None:
        self._cache.clear()


Cert = str | tuple[str, str] | None  # requests' cert=: a PEM with both, or (cert, key)


class TlsContexts:
    """One TLS context per verification setting and client certificate, shared by every user
    of the process: a context holds the loaded CA store (hundreds of KiB), far too much to
    keep per idle user."""

    __slots__ = ("_contexts",)

    def __init__(self) -> None:
        self._contexts: dict[tuple[bool | str, Cert], ssl.SSLContext] = {}

    def get(self, verify: bool | str, cert: Cert = None) -> ssl.SSLContext:
        """``verify``: True (the system's CAs), False (no verification) or, as in requests,
        the path of a CA bundle file or directory. ``cert``: requests' client certificate, a
        PEM file holding the certificate and its key, or a (certificate, key) pair of paths.
        A path that does not exist is an ``OSError`` naming it, in requests' words."""
        context = self._contexts.get((verify, cert))
        if context is None:
            if verify is True or verify is False:
                context = ssl.create_default_context()
                if verify is False:
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
            elif os.path.isdir(verify):
                context = ssl.create_default_context(capath=verify)
            elif os.path.exists(verify):
                context = ssl.create_default_context(cafile=verify)
            else:  # requests' words, with the path (ssl's own error does not name it)
                raise OSError(
                    f"Could not find a suitable TLS CA certificate bundle, invalid path: {verify}"
                )
            if cert is not None:
                certfile, keyfile = (cert, None) if isinstance(cert, str) else cert
                if not os.path.exists(certfile):
                    raise OSError(
                        f"Could not find the TLS certificate file, invalid path: {certfile}"
                    )
                if keyfile is not None and not os.path.exists(keyfile):
                    raise OSError(f"Could not find the TLS key file, invalid path: {keyfile}")
                context.load_cert_chain(certfile, keyfile)
            self._contexts[(verify, cert)] = context
        return context


RESOLVER = Resolver()
TLS_CONTEXTS = TlsContexts()


# RFC 8305's "Connection Attempt Delay": the next address is tried when the one before has
# not connected after this long (or at once when it fails), and the first to connect wins.
ATTEMPT_DELAY = 0.25
_IN_PROGRESS = frozenset((errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY))


def open_socket(
    host: str,
    port: int,
    timeout: float | None,
    tls: ssl.SSLContext | None,
    resolver: Resolver = RESOLVER,
    delay: float = ATTEMPT_DELAY,
) -> socket.socket:
    """A connected socket (TLS-wrapped when ``tls``) to one of ``host``'s addresses.

    Happy eyeballs (RFC 8305): the addresses are tried in the resolver's order, the next one
    started when the attempts so far have neither connected nor failed after ``delay`` seconds
    (at once when they fail); the first to connect wins, the others are closed. An address
    that does not answer (a blackholed ``::1``) costs ``delay``, not the whole timeout.
    ``ConnectTimeout`` when no address connected within ``timeout`` (the whole connect, TLS
    handshake included); the last error when every address failed.

    Example:
        >>> open_socket("127.0.0.1", closed_port(), 5, None)  # doctest: +SKIP
        Traceback (most recent call last):
        ConnectionRefusedError: [Errno 111] Connection refused
    """
    start = time.monotonic()
    addresses = resolver.addresses(host, port)
    if not addresses:
        raise OSError(f"{host} resolves to no address")
    sock, address = _first_to_connect(host, port, addresses, timeout, delay)
    try:
        if timeout is not None:
            left = timeout - (time.monotonic() - start)
            if left <= 0:
                raise TimeoutError
            sock.settimeout(left)
        else:
            sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls is not None:
            sock = tls.wrap_socket(sock, server_hostname=host)
    except TimeoutError:
        sock.close()
        raise ConnectTimeout(_too_long(host, port, timeout)) from None
    except BaseException:
        sock.close()  # an ssl.SSLError included: another address would not verify better
        raise
    resolver.prefer(host, port, address)
    return sock


class Proxy(NamedTuple):
    """An ``http://`` proxy: where it is, and the ``Proxy-Authorization`` its URL's userinfo
    gives (or "")."""

    host: str
    port: int
    auth: str

    def key(self, route: Any) -> tuple[str, str, int]:
        """The connection key of a request to ``route`` through this proxy: one connection to
        the proxy for every ``http://`` origin, one tunnel per ``https://`` origin."""
        if route.scheme == "https":
            return (f"https via {self.host}:{self.port}", route.host, route.port)
        return ("http via proxy", self.host, self.port)


class ProxyRefused(OSError):
    """The proxy did not open the tunnel (its status is in the message)."""


def open_tunnel(
    proxy: Proxy, host: str, port: int, timeout: float | None, tls: ssl.SSLContext
) -> socket.socket:
    """A TLS connection to ``host:port`` through an HTTP CONNECT tunnel of ``proxy``."""
    sock = open_socket(proxy.host, proxy.port, timeout, None)
    try:
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        auth = f"Proxy-Authorization: {proxy.auth}\r\n" if proxy.auth else ""
        head = f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n{auth}\r\n"
        sock.sendall(head.encode("latin-1"))
        answer = b""
        while b"\r\n\r\n" not in answer:
            if len(answer) > 65536:
                raise ProxyRefused("the proxy's answer to CONNECT has no end")
            piece = sock.recv(65536)
            if not piece:
                raise ProxyRefused("the proxy closed the connection before answering CONNECT")
            answer += piece
        status_line = answer[: answer.index(b"\r\n")]
        parts = status_line.decode("latin-1").split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit() or not 200 <= int(parts[1]) < 300:
            raise ProxyRefused(f"Tunnel connection failed: {' '.join(parts[1:])}")
        if answer.index(b"\r\n\r\n") + 4 != len(answer):
            # Bytes past the answer would be taken for the TLS handshake.
            raise ProxyRefused("the proxy sent bytes after its answer to CONNECT")
        return tls.wrap_socket(sock, server_hostname=host)
    except TimeoutError:
        sock.close()
        raise ConnectTimeout(_too_long(proxy.host, proxy.port, timeout)) from None
    except BaseException:
        sock.close()
        raise


def _too_long(host: str, port: int, timeout: float | None) -> str:
    return f"connecting to {host}:{port} took longer than {timeout:g}s"


def _first_to_connect(
    host: str, port: int, addresses: list[Address], timeout: float | None, delay: float
) -> tuple[socket.socket, Address]:
    """The TCP race of :func:`open_socket`: non-blocking connects, watched with ``poll``
    (gevent's cooperative one when patched; ``poll`` and not ``select``: a load test's
    descriptors go past 1024), or while a single one is in flight on a gevent socket, with
    that socket's own write watcher (:func:`_wait_connected`)."""
    now = time.monotonic()
    until = None if timeout is None else now + timeout
    waiting = list(addresses)
    pending: dict[int, tuple[socket.socket, Address]] = {}
    poller: Any = None  # made once two attempts are in flight, or off gevent
    error: OSError | None = None
    next_start = now
    try:
        while True:
            now = time.monotonic()
            if waiting and (not pending or now >= next_start):
                address = waiting.pop(0)
                sock = socket.socket(address[0], socket.SOCK_STREAM)
                try:
                    sock.setblocking(False)
                    code = sock.connect_ex(address[1])
                except BaseException:
                    sock.close()
                    raise
                if code == 0:
                    return sock, address
                if code in _IN_PROGRESS:
                    pending[sock.fileno()] = (sock, address)
                    if poller is not None:
                        poller.register(sock.fileno(), select.POLLOUT)
                    next_start = now + delay
                else:
                    sock.close()
                    error = OSError(code, os.strerror(code))
                continue
            if not pending:
                assert error is not None
                raise error
            if until is not None and now >= until:
                raise ConnectTimeout(_too_long(host, port, timeout))
            wait = None if until is None else until - now
            if waiting:
                wait = next_start - now if wait is None else min(wait, next_start - now)
            if poller is None and len(pending) == 1:
                [(fd, (sock, address))] = pending.items()
                watcher = _write_watcher(sock)
                if watcher is not None:
                    outcome = _wait_connected(sock, watcher, wait)
                    if outcome is None:
                        continue  # the bound passed (or not connected yet): look again
                    del pending[fd]
                    if outcome == 0:
                        return sock, address
                    sock.close()
                    error = OSError(outcome, os.strerror(outcome))
                    continue
            if poller is None:
                poller = select.poll()
                for fd in pending:
                    poller.register(fd, select.POLLOUT)
            ready = poller.poll(None if wait is None else max(1, math.ceil(wait * 1000)))
            for fd, _ in ready:
                found = pending.pop(fd, None)
                if found is None:
                    continue
                poller.unregister(fd)
                sock, address = found
                code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if code == 0:
                    return sock, address
                sock.close()
                error = OSError(code, os.strerror(code))
    finally:
        for sock, _ in pending.values():  # the losers, and every attempt on an error
            sock.close()


def _write_watcher(sock: socket.socket) -> Any:
    """The write watcher of a plain gevent socket (no other greenlet waiting on it), or None."""
    if not _plain_gevent(sock):
        return None
    watcher = getattr(sock, "_write_event", None)
    return None if watcher is None or watcher.callback is not None else watcher


def _wait_connected(sock: socket.socket, watcher: Any, wait: float | None) -> int | None:
    """Wait at most ``wait`` seconds (None: no bound) for ``sock``'s connect to end: its
    outcome (``SO_ERROR``: 0 when connected), or None when the bound passed first.

    gevent's cooperative ``poll`` made, for every connect in flight, a poll result, an event,
    an io watcher and a ``gevent.Timeout``, and its switch saved a deep C stack (about 2 KiB
    of objects and 5 KiB of stack per user while its connection opened); thousands of users
    starting together held all of it at once, and the users' lasting objects were left
    scattered through the memory grown for that peak (``benchmarks/idle_memory.py --rate
    5000``). The socket's own watcher and the hub's :class:`.hub.Deadlines` cost neither.
    """
    if wait is not None and wait <= 0:
        return None
    if not wait_for(watcher, wait):
        return None  # the bound
    code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)  # read once: it clears
    if code:
        return int(code)
    try:
        sock.getpeername()  # a wake-up that was not the watcher's leaves it connecting
    except OSError:
        return None
    return 0


def _zero_wait_poll() -> Callable[[], Any]:
    """The system's poll: a zero-timeout poll never blocks, so gevent's cooperative wrapper
    (a few µs of Python on every reused connection) is not needed for it. poll and not
    select: select refuses descriptors past 1024, which thousands of users have."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None:
        try:
            original: Callable[[], Any] = monkey.get_original("select", "poll")
        except (AttributeError, ImportError):
            pass
        else:
            return original
    return select.poll


_POLL: list[Callable[[], Any]] = []


def _accelerated() -> Callable[[int], bool] | None:
    """``_speedups.readable``, or None where it was not built (or ``SWARM_PURE_PYTHON=1``)."""
    if pure_python():
        return None
    try:
        from .._speedups import readable
    except ImportError:
        return None
    return readable


_readable = _accelerated()


def _plain_gevent(sock: socket.socket) -> bool:
    """``sock`` is gevent's cooperative socket itself (TLS sockets are a subclass)."""
    cooperative = sys.modules.get("gevent._socket3")
    return cooperative is not None and type(sock) is cooperative.socket


def _gevent_parts(sock: socket.socket) -> tuple[Any, Any] | None:
    """The OS socket (non-blocking) and read watcher under a plain gevent socket, or None.

    The fast client waits on the watcher itself (its bound on one timer per hub), instead of
    through gevent's ``recv``: that one first fails a receive (an exception), then waits with
    a ``gevent.Timeout`` (a Python object started and cancelled on every response), about
    5 µs of a request's CPU. TLS sockets (their own buffering) and anything that is not
    gevent's cooperative socket keep the socket's own calls.
    """
    if not _plain_gevent(sock):
        return None
    raw = getattr(sock, "_sock", None)
    watcher = getattr(sock, "_read_event", None)
    if raw is None or watcher is None or raw.gettimeout() != 0.0:
        return None
    return raw, watcher


class Connection:
    """One kept-alive connection and what it was made under.

    ``raw`` and ``watcher``: the OS socket and gevent read watcher of a plain gevent socket
    (:func:`_gevent_parts`), for the fast client's own waits; None otherwise. ``stamped``:
    the kernel stamps what arrives on ``raw`` (:mod:`.stamps`), which is where a response's
    recorded time ends.
    """

    __slots__ = ("cert", "raw", "sock", "stamped", "used", "verify", "watcher")

    def __init__(self, sock: socket.socket, verify: bool | str | None, cert: Cert = None) -> None:
        self.sock = sock
        self.used = False
        self.verify = verify  # the TLS verification it was made under; None: plain HTTP
        self.cert = cert  # the client certificate it presented
        parts = _gevent_parts(sock)
        self.raw: Any = None if parts is None else parts[0]
        self.watcher: Any = None if parts is None else parts[1]
        self.stamped = parts is not None and stamps.enable(parts[0])

    def dropped(self) -> bool:
        """True if the idle connection is readable: the server closed or reset it (or sent
        bytes nobody asked for); either way it must not carry a request (urllib3's check)."""
        raw = self.raw
        if raw is not None and _readable is not None:
            return _readable(raw.fileno())  # one poll(2) in C: per reused connection
        if not _POLL:
            _POLL.append(_zero_wait_poll())
        try:
            poller = _POLL[0]()
            # The OS socket's fileno where there is one: a C call, not gevent's Python one.
            sock = self.sock if self.raw is None else self.raw
            poller.register(sock.fileno(), select.POLLIN)
            return bool(poller.poll(0))
        except (OSError, ValueError):
            return True

    def close(self) -> None:
        self.sock.close()
