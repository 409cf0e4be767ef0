"""Run a server program in a child process for as long as a ``with`` block lasts.

The program prints its address on its first line once it is listening; :func:`serve` waits
for that line (bounded), yields it, and stops the child (terminate, then kill after 5 s) when
the block ends. The child also exits by itself when its parent goes away (see
:func:`exit_with_parent`), so an interrupted run leaves no server behind.

Example:
    >>> with serve("protocols.ws_server") as url:  # doctest: +SKIP
    ...     url
    'ws://127.0.0.1:41235'
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

START_TIMEOUT = 30.0  # seconds for a child to print its address: a slow machine, not a hang
KILL_AFTER = 5.0
MAX_LINE = 1000  # an address, never a stream
EXAMPLES = Path(__file__).resolve().parent.parent  # the directory holding this package


@contextmanager
def serve(module: str, *args: str, timeout: float = START_TIMEOUT) -> Iterator[str]:
    """Run ``python -m module args...`` (a module of this package), yield the first line it
    prints (its address), stop it when the block ends."""
    process = subprocess.Popen(
        [sys.executable, "-m", module, *args, "--parent-pid", str(os.getpid())],
        cwd=EXAMPLES,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        start_new_session=True,  # a Ctrl-C in the terminal reaches the test run, not the server
    )
    try:
        yield _first_line(process, timeout)
    finally:
        stop(process)


def _first_line(process: subprocess.Popen[bytes], timeout: float) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while not selector.select(timeout=0.1):
            if process.poll() is not None:
                raise RuntimeError(f"{process.args!r} exited with status {process.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{process.args!r} printed no address within {timeout} s")
    line = process.stdout.readline(MAX_LINE).decode("utf-8", "replace").strip()
    if not line:
        raise RuntimeError(f"{process.args!r} exited before printing its address")
    return line


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate our own child, kill it if it does not exit within 5 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=KILL_AFTER)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()


def exit_with_parent(argv: list[str]) -> None:
    """In a server program: take ``--parent-pid PID`` out of ``argv`` and exit when that parent
    is gone (a killed test run must not leave its servers running)."""
    if "--parent-pid" not in argv:
        return
    at = argv.index("--parent-pid")
    parent = int(argv[at + 1])
    del argv[at : at + 2]

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)  # as if stopped: a server's cleanup still runs

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def announce(address: str) -> None:
    """In a server program: tell the parent it is listening, at ``address``."""
    sys.stdout.write(address + "\n")
    sys.stdout.flush()
