"""Start the demo target in a child process, for conftest files and tests.

:meth:`DemoServer.start` launches ``python -m pytest_swarm.demo --port 0
--port-file <tmp>`` in its own session, waits for the port file (the child
writes it atomically once it is listening), confirms with a TCP connect and
returns a handle. :meth:`DemoServer.stop` terminates that child only: the
helper never signals any other process.

The child is also told the parent's pid and exits by itself if its parent
goes away, and the handle stops the child when it is garbage-collected or at
interpreter exit, so an interrupted test run does not leave servers behind.

Example:
    >>> from pytest_swarm.demo.server import DemoServer
    >>> with DemoServer.start() as server:  # doctest: +SKIP
    ...     server.url
    ...     server.stats()["total"]
    'http://127.0.0.1:41235'
    0
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import weakref
from types import TracebackType
from typing import Any

__all__ = ["DemoServer"]

_POLL_SECONDS = 0.02
_KILL_AFTER_SECONDS = 5.0
_HTTP_TIMEOUT_SECONDS = 10.0
_LOG_TAIL_BYTES = 4000

# The directory holding the pytest_swarm package, so the child can import it
# even when the package is not installed (e.g. the test-suite run from a checkout).
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Loopback must never go through an HTTP proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _connect_host(host: str) -> str:
    """The address to connect to for a server bound to *host*."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    paths = [_PACKAGE_ROOT, *(p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p)]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


def _read_tail(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - _LOG_TAIL_BYTES))
            return handle.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""


def _stop_process(process: subprocess.Popen[bytes], workdir: str) -> None:
    """Terminate *process* (our own child), kill it after 5 s, remove *workdir*."""
    try:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=_KILL_AFTER_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


class DemoServer:
    """A running demo target in a child process; create it with :meth:`start`.

    Attributes:
        host: The address clients connect to (loopback by default).
        port: The port the child is listening on.

    Example:
        >>> server = DemoServer.start()  # doctest: +SKIP
        >>> server.reset()  # doctest: +SKIP
        >>> server.stats()  # doctest: +SKIP
        {'total': 0, 'paths': {}, 'logins': 0, 'logouts': 0}
        >>> server.stop()  # doctest: +SKIP
    """

    def __init__(
        self, process: subprocess.Popen[bytes], host: str, port: int, workdir: str
    ) -> None:
        """Wrap an already-listening child; use :meth:`start` instead."""
        self._process = process
        self.host = host
        self.port = port
        self._workdir = workdir
        self._finalizer = weakref.finalize(self, _stop_process, process, workdir)

    @classmethod
    def start(cls, host: str = "127.0.0.1", port: int = 0, timeout: float = 15.0) -> DemoServer:
        """Launch the demo target and return once it accepts connections.

        Args:
            host: Address the child binds (loopback by default).
            port: Port to bind; 0 lets the OS pick a free one.
            timeout: Seconds to wait for the child to listen.

        Raises:
            RuntimeError: The child exited before it was listening.
            TimeoutError: The child was not listening within *timeout* seconds
                (it is stopped before this is raised).

        Example:
            >>> with DemoServer.start(port=0, timeout=15.0) as server:  # doctest: +SKIP
            ...     server.url.startswith("http://127.0.0.1:")
            True
        """
        deadline = time.monotonic() + timeout
        workdir = tempfile.mkdtemp(prefix="pytest-swarm-demo-")
        port_file = os.path.join(workdir, "port")
        log_path = os.path.join(workdir, "server.log")
        command = [
            sys.executable,
            "-m",
            "pytest_swarm.demo",
            "--host",
            host,
            "--port",
            str(port),
            "--port-file",
            port_file,
            "--parent-pid",
            str(os.getpid()),
        ]
        try:
            with open(log_path, "wb") as log:
                process = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                    env=_child_env(),
                    start_new_session=True,
                    close_fds=True,
                )
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        try:
            bound = cls._wait_for_port(process, port_file, log_path, deadline, timeout)
            connect_host = _connect_host(host)
            cls._wait_for_connect(connect_host, bound, deadline, timeout)
        except BaseException:
            _stop_process(process, workdir)
            raise
        return cls(process, connect_host, bound, workdir)

    @staticmethod
    def _wait_for_port(
        process: subprocess.Popen[bytes],
        port_file: str,
        log_path: str,
        deadline: float,
        timeout: float,
    ) -> int:
        while True:
            if os.path.exists(port_file):
                with open(port_file, encoding="ascii") as handle:
                    return int(handle.read().strip())
            returncode = process.poll()
            if returncode is not None:
                raise RuntimeError(
                    f"demo target exited with status {returncode} before listening:\n"
                    f"{_read_tail(log_path)}"
                )
            if time.monotonic() >= deadline:
                raise TimeoutError(f"demo target did not write its port within {timeout} s")
            time.sleep(_POLL_SECONDS)

    @staticmethod
    def _wait_for_connect(host: str, port: int, deadline: float, timeout: float) -> None:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"demo target at {host}:{port} refused connections")
            try:
                with socket.create_connection((host, port), timeout=remaining):
                    return
            except ConnectionRefusedError:
                time.sleep(_POLL_SECONDS)

    # -- properties -----------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, e.g. ``"http://127.0.0.1:41235"``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def pid(self) -> int:
        """Process id of the child serving the demo target."""
        return self._process.pid

    @property
    def running(self) -> bool:
        """Whether the child process is still alive."""
        return self._process.poll() is None

    @property
    def log_path(self) -> str:
        """The child's stderr log (removed by :meth:`stop`)."""
        return os.path.join(self._workdir, "server.log")

    # -- inspection -----------------------------------------------------------------

    def _request(self, path: str, method: str = "GET") -> Any:
        data = b"" if method == "POST" else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        with _OPENER.open(request, timeout=_HTTP_TIMEOUT_SECONDS) as response:
            return json.loads(response.read())

    def stats(self) -> dict[str, Any]:
        """``GET /__stats``: ``{"total", "paths", "logins", "logouts"}``.

        Example:
            >>> server.stats()["paths"]  # doctest: +SKIP
            {'/items': 3}
        """
        payload = self._request("/__stats")
        if not isinstance(payload, dict):
            raise TypeError(f"unexpected /__stats payload: {payload!r}")
        return payload

    def reset(self) -> None:
        """``POST /__reset``: zero the counters and drop sessions and carts.

        Example:
            >>> server.reset(); server.stats()["total"]  # doctest: +SKIP
            0
        """
        self._request("/__reset", method="POST")

    # -- lifecycle ------------------------------------------------------------------

    def stop(self) -> None:
        """Terminate the child (SIGTERM, then SIGKILL after 5 s); idempotent.

        Example:
            >>> server.stop(); server.running  # doctest: +SKIP
            False
        """
        self._finalizer()

    def __enter__(self) -> DemoServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<DemoServer {self.url} pid={self.pid} {state}>"
