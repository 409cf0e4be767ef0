"""The clients on gevent's cooperative sockets, as in a run, for a test process that is not
patched: ``connect.socket`` becomes gevent's socket module, name lookups excepted (those stay
the stdlib's, looked up at each call, so a test's fake ``socket.getaddrinfo`` still answers).

The fast client waits on gevent sockets itself (``hub.wait_for``: a read watcher and
one libev timer, no ``gevent.Timeout``) and on any other socket through its blocking calls; the
``*_on_gevent`` modules run whole client test modules again on this path.
"""

from __future__ import annotations

import socket as stdlib_socket
from typing import Any

import gevent.socket
import pytest

import pytest_swarm.clients.connect as connect_module


class CooperativeSockets:
    """gevent's socket module, with the stdlib's ``getaddrinfo`` of the moment."""

    def __getattr__(self, name: str) -> Any:
        if name == "getaddrinfo":
            return stdlib_socket.getaddrinfo
        return getattr(gevent.socket, name)


@pytest.fixture(autouse=True)
def _gevent_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connect_module, "socket", CooperativeSockets())
