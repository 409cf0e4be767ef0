"""Hostile HTTP servers for the clients' fault tests: raw sockets in a thread, one script.

A script is a function ``(conn, hostile) -> None`` run for each accepted connection; it writes
whatever it likes (endless headers, a body that never ends, one byte at a time) and counts what
the client let it send in ``hostile.sent``. A send that fails means the client closed: the
script stops there and ``hostile.closed`` is set, so tests wait on events, not on sleeps.

Example:
    >>> def script(conn, hostile):                              # doctest: +SKIP
    ...     hostile.send(conn, b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nok")
    >>> with hostile_server(script) as h:                       # doctest: +SKIP
    ...     FastHttpSession(h.url, Recorder()).get("/")
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress


class Hostile:
    """What a script and its test share."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.port = port
        self.sent = 0  # bytes the client let through (accepted by the kernel)
        self.connections = 0
        self.requests: list[bytes] = []  # the first bytes of each connection
        self.started = threading.Event()  # the script sent something
        self.closed = threading.Event()  # a send failed: the client went away
        self.stop = threading.Event()  # set at teardown: scripts end

    def send(self, conn: socket.socket, data: bytes) -> bool:
        """Send ``data``; False (and ``closed`` set) once the client has gone away."""
        try:
            conn.sendall(data)
        except OSError:
            self.closed.set()
            return False
        self.sent += len(data)
        self.started.set()
        return True

    def read_request(self, conn: socket.socket) -> bytes:
        """The request head (and whatever came with it)."""
        data = b""
        while b"\r\n\r\n" not in data:
            piece = conn.recv(65536)
            if not piece:
                break
            data += piece
        self.requests.append(data)
        return data


Script = Callable[[socket.socket, Hostile], None]


@contextmanager
def hostile_server(script: Script, host: str = "127.0.0.1") -> Iterator[Hostile]:
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, 0))
    listener.listen(16)
    listener.settimeout(0.05)
    hostile = Hostile(listener.getsockname()[1])
    threads: list[threading.Thread] = []
    conns: list[socket.socket] = []

    def serve(conn: socket.socket) -> None:
        with conn, suppress(OSError):
            script(conn, hostile)

    def accept() -> None:
        while not hostile.stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(30)  # a guard: no script blocks past the test
            conns.append(conn)
            hostile.connections += 1
            thread = threading.Thread(target=serve, args=(conn,), daemon=True)
            threads.append(thread)
            thread.start()

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield hostile
    finally:
        hostile.stop.set()
        acceptor.join()
        listener.close()
        for conn in conns:  # wakes scripts blocked in recv (closing is the script's job)
            with suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(30)


def stream_until_closed(data: bytes, limit: int) -> Script:
    """A script: read the request, then send ``data`` over and over, at most ``limit`` bytes
    in all, until the client closes."""

    def script(conn: socket.socket, hostile: Hostile) -> None:
        hostile.read_request(conn)
        total = 0
        while total < limit and not hostile.stop.is_set():
            if not hostile.send(conn, data):
                return
            total += len(data)

    return script


def canned(*responses: bytes, close: bool = False) -> Script:
    """A script: answer each request on the connection with the next canned response; with
    ``close``, close the connection after the last one."""

    def script(conn: socket.socket, hostile: Hostile) -> None:
        for response in responses:
            if not hostile.read_request(conn):
                return
            if not hostile.send(conn, response):
                return
        if not close:
            with suppress(OSError):
                conn.recv(1)  # hold the connection until the client lets go

    return script
