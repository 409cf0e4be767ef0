"""A small HTTP/1.1 keep-alive server in a thread, for the client unit tests.

Each test module brings its own request handler (its routes); this module serves it on a free
loopback port, counts the connections it accepts (to prove keep-alive reuse), and tears it
down. Also the helpers both client test modules use.

Example:
    >>> with serve(MyHandler) as local:                       # doctest: +SKIP
    ...     requests.get(local.url + "/")
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pytest_swarm.stats.snapshot import Snapshot


class LocalServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.connections = 0
        self.hits: Counter[str] = Counter()
        # Set at teardown: handlers that hang (a "slow" route) wait on it, never on a sleep.
        self.release = threading.Event()

    def process_request(self, request: Any, client_address: Any) -> None:
        # Runs in the accepting thread before the connection is served: once a response has
        # arrived, the connection that carried it is counted.
        self.connections += 1
        super().process_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that go away mid-response are part of the tests


class QuietHandler(BaseHTTPRequestHandler):
    """Base of the test modules' handlers: HTTP/1.1 keep-alive, Nagle off (headers and body go
    in separate writes: without TCP_NODELAY each response would wait for the client's delayed
    ACK, ~40 ms), no request log."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: LocalServer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class Local:
    url: str
    server: LocalServer

    @property
    def connections(self) -> int:
        return self.server.connections


@contextmanager
def serve(
    handler: type[BaseHTTPRequestHandler], tls: ssl.SSLContext | None = None
) -> Iterator[Local]:
    """Serve ``handler`` on a free loopback port; with ``tls`` (a server context), as HTTPS
    at https://localhost:PORT (the name a test certificate is issued for)."""
    server = LocalServer(handler)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
        url = f"https://localhost:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield Local(url, server)
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
        thread.join()


def counts(snap: Snapshot) -> dict[str, tuple[int, int]]:
    """name -> (requests, failures)."""
    return {name: (e.hist.total, e.failures) for name, e in snap.entries.items()}


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
