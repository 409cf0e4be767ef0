"""Connections of the fast client: name resolution, TCP connect, TLS, liveness before reuse.

Each process-wide cache is owned by one object: :class:`Resolver` (a host's addresses, looked
up once per process) and :class:`TlsContexts` (one TLS context per verification setting).
:func:`open_socket` tries every address of the host in the resolver's order, as urllib3 does:
a host whose name resolves to ``::1`` first while the server listens on 127.0.0.1 only (Debian,
macOS ``localhost``) connects on the second address, and the address that worked is tried
first from then on.
"""

from __future__ import annotations

import ipaddress
import os
import select
import socket
import ssl
import sys
from collections.abc import Callable
from typing import Any

from .errors import ConnectTimeout

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


class TlsContexts:
    """One TLS context per verification setting, shared by every user of the process: a
    context holds the loaded CA store (hundreds of KiB), far too much to keep per idle user."""

    __slots__ = ("_contexts",)

    def __init__(self) -> None:
        self._contexts: dict[bool | str, ssl.SSLContext] = {}

    def get(self, verify: bool | str) -> ssl.SSLContext:
        """``verify``: True (the system's CAs), False (no verification) or, as in requests,
        the path of a CA bundle file or directory."""
        context = self._contexts.get(verify)
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
            self._contexts[verify] = context
        return context


RESOLVER = Resolver()
TLS_CONTEXTS = TlsContexts()


def open_socket(
    host: str,
    port: int,
    timeout: float | None,
    tls: ssl.SSLContext | None,
    resolver: Resolver = RESOLVER,
) -> socket.socket:
    """A connected socket (TLS-wrapped when ``tls``), trying each address of ``host`` in turn.
    ``ConnectTimeout`` when one takes longer than ``timeout`` (the budget is spent); the last
    address's error when every address refuses."""
    error: OSError | None = None
    for address in resolver.addresses(host, port):
        sock = socket.socket(address[0], socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(address[1])
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if tls is not None:
                sock = tls.wrap_socket(sock, server_hostname=host)
        except TimeoutError:
            sock.close()
            raise ConnectTimeout(
                f"connecting to {host}:{port} took longer than {timeout:g}s"
            ) from None
        except ssl.SSLError:
            sock.close()
            raise  # the server answered: another address would not verify better
        except OSError as exc:
            sock.close()
            error = exc
            continue
        except BaseException:
            sock.close()
            raise
        resolver.prefer(host, port, address)
        return sock
    if error is None:
        raise OSError(f"{host} resolves to no address")
    raise error


def _zero_wait_select() -> Callable[..., Any]:
    """The system's select: a zero-timeout poll never blocks, so gevent's cooperative wrapper
    (a few µs of Python on every reused connection) is not needed for it."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None:
        try:
            original: Callable[..., Any] = monkey.get_original("select", "select")
        except (AttributeError, ImportError):
            pass
        else:
            return original
    return select.select


_SELECT: list[Callable[..., Any]] = []


class Connection:
    """One kept-alive connection and what it was made under."""

    __slots__ = ("sock", "used", "verify")

    def __init__(self, sock: socket.socket, verify: bool | str | None) -> None:
        self.sock = sock
        self.used = False
        self.verify = verify  # the TLS verification it was made under; None: plain HTTP

    def dropped(self) -> bool:
        """True if the idle connection is readable: the server closed or reset it (or sent
        bytes nobody asked for); either way it must not carry a request (urllib3's check)."""
        if not _SELECT:
            _SELECT.append(_zero_wait_select())
        try:
            return bool(_SELECT[0]([self.sock], [], [], 0)[0])
        except (OSError, ValueError):
            return True

    def close(self) -> None:
        self.sock.close()
