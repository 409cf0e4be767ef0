"""The real servers the protocol tests load, each a child process of the test run on loopback.

They are the examples' own servers (``examples/protocols/``), run as ``python -m
protocols.<name>`` from the examples directory: each prints its address on its first line
once it listens. The test process imports nothing from there (this package is ``protocols``
too), it only runs them.
"""

from __future__ import annotations

import os
import selectors
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
START_TIMEOUT = 30.0  # seconds to listen: a guard against a hung child, not a measurement
KILL_AFTER = 5.0


@contextmanager
def example_server(module: str) -> Iterator[str]:
    """Run ``python -m protocols.<module>`` from ``examples/``; yield the address it prints."""
    process = subprocess.Popen(
        [sys.executable, "-m", f"protocols.{module}", "--parent-pid", str(os.getpid())],
        cwd=EXAMPLES,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        yield _address(process)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=KILL_AFTER)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        assert process.stdout is not None
        process.stdout.close()


def _address(process: subprocess.Popen[bytes]) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while not selector.select(timeout=0.1):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{process.args!r} did not start (status {process.poll()})")
    line = process.stdout.readline(1000).decode("utf-8", "replace").strip()
    if not line:
        raise RuntimeError(f"{process.args!r} exited before printing its address")
    return line


def require_redis_server() -> None:
    """Skip without Debian's redis-server, or fail where CI requires it (SWARM_REQUIRE_REDIS=1,
    set by .ci/run): the Redis tests must never pass there by skipping."""
    if os.environ.get("SWARM_REDIS_URL") or shutil.which("redis-server"):
        return
    reason = "redis-server is not installed (apt-get install redis-server)"
    if os.environ.get("SWARM_REQUIRE_REDIS") == "1":
        pytest.fail(f"SWARM_REQUIRE_REDIS=1 but {reason}")
    pytest.skip(reason)
