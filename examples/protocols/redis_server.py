"""A throw-away ``redis-server`` (Debian's package) on a free loopback port.

Nothing is saved (``--save '' --appendonly no``): it starts empty and leaves no file behind.
``python -m protocols.redis_server`` runs one and prints its URL until it is terminated.

Example:
    >>> with redis_server() as url:  # doctest: +SKIP
    ...     url
    'redis://127.0.0.1:41235/0'
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

from .child import announce, exit_with_parent, stop

START_TIMEOUT = 30.0
TRIES = 3  # another process may take the free port between our probe and redis binding it


def binary() -> str | None:
    """The ``redis-server`` program, if installed (``apt-get install redis-server``)."""
    return shutil.which("redis-server")


@contextmanager
def redis_server() -> Iterator[str]:
    """Start a private redis-server; yield its URL; stop it when the block ends."""
    program = binary()
    if program is None:
        raise FileNotFoundError("redis-server is not installed (apt-get install redis-server)")
    with tempfile.TemporaryDirectory(prefix="swarm-redis-") as workdir:
        command = [program, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        command += ["--dir", workdir]  # nothing is written, but never in the project
        for attempt in range(TRIES):
            port = _free_port()
            process = subprocess.Popen(
                [*command, "--port", str(port)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                start_new_session=True,
            )
            try:
                if _answers(process, port):
                    yield f"redis://127.0.0.1:{port}/0"
                    return
            finally:
                stop(process)
            if attempt == TRIES - 1:
                raise RuntimeError(f"redis-server did not start on a free port in {TRIES} tries")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _answers(process: subprocess.Popen[bytes], port: int) -> bool:
    """Whether the server answers PING before the deadline (False: it exited, port taken)."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(64).startswith(b"+PONG"):
                    return True
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"redis-server on port {port} did not answer PING in {START_TIMEOUT} s")


def main() -> None:
    # SIGTERM (from the parent, or from exit_with_parent) unwinds the block: redis stops too.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    with redis_server() as url:
        announce(url)
        while True:
            signal.pause()


if __name__ == "__main__":
    exit_with_parent(sys.argv)
    main()
