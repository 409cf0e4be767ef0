"""A pytest run in the background, for the dashboard's browser tests: its output is read as
it comes, so a test can open the URL it prints while the load runs.

The project's conftest holds the session open at its end (after every verdict and the
session's end are on the feed) until the test writes the release file, so the page can be
read at the end without racing the server's shutdown; the hold has a deadline of its own.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from pathlib import Path

from .harness import RUN_TIMEOUT

HOLD_CONFTEST = """
import os, time
import pytest

RELEASE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "release")


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session):
    if hasattr(session.config, "workerinput"):
        return
    # Polls a file written by the outer test (another process), with a deadline.
    deadline = time.monotonic() + 120
    while not os.path.exists(RELEASE) and time.monotonic() < deadline:
        time.sleep(0.05)
"""

URL = re.compile(r"swarm: live dashboard at (http://\S+)")


class LiveRun:
    """``pytest *args`` in ``path``, started at once; :meth:`url` waits for the printed URL."""

    def __init__(self, path: Path, *args: str) -> None:
        (path / "conftest.py").write_text(HOLD_CONFTEST)
        self.path = path
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
        env.pop("PYTEST_ADDOPTS", None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
             "-p", "no:hypothesispytest", *args],
            cwd=path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self.lines: list[str] = []
        self._found = threading.Event()
        self._url = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            match = URL.search(line)
            if match and not self._found.is_set():
                self._url = match.group(1)
                self._found.set()
        self._found.set()  # the run ended: url() must not wait any longer

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def url(self) -> str:
        assert self._found.wait(RUN_TIMEOUT), "no dashboard URL printed"
        assert self._url, f"the run ended without a dashboard URL:\n{self.output}"
        return self._url

    def release(self) -> None:
        (self.path / "release").write_text("go")

    def finish(self) -> int:
        """Release the hold and wait for the run's exit code."""
        self.release()
        try:
            code = self.process.wait(RUN_TIMEOUT)
        finally:
            if self.process.poll() is None:
                self.process.kill()  # ours, by its handle
                self.process.wait()
        self._reader.join(RUN_TIMEOUT)
        return code
