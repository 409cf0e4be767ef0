"""Process helpers for the xdist tests that signal real processes (imported by conftest.py and
the tests; a plain module: pytest puts this directory on sys.path, it has no ``__init__.py``)."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil


def alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie waiting for its reaper counts as gone)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_gone(pids: list[int], timeout: float) -> list[int]:
    """Poll until every pid has exited or ``timeout`` passed; returns those still alive."""
    deadline = time.monotonic() + timeout
    left = [p for p in pids if alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.05)  # bounded polling of process state
        left = [p for p in left if alive(p)]
    return left


PID_BODY = '''
def _note_pid():
    """Write this worker's pid once, atomically, to pid-<worker> in the project directory."""
    import os

    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    path = os.path.join({root!r}, f"pid-{{worker}}")
    if not os.path.exists(path):
        tmp = f"{{path}}.{{os.getpid()}}.tmp"
        with open(tmp, "w") as handle:
            handle.write(str(os.getpid()))
        os.replace(tmp, path)
'''


@dataclass
class Spawned:
    """A pytest run started with Popen; output goes to ``out`` (a file, so no pipe fills)."""

    proc: subprocess.Popen[bytes]
    out: Path
    started: float
    worker_pids: dict[str, int] = field(default_factory=dict)

    @property
    def output(self) -> str:
        return self.out.read_text(errors="replace")

    def wait_pid_files(self, root: Path, workers: list[str], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            for worker in workers:
                path = root / f"pid-{worker}"
                if worker not in self.worker_pids and path.exists():
                    self.worker_pids[worker] = int(path.read_text())
            if len(self.worker_pids) == len(workers):
                return
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"the run ended (exit {self.proc.returncode}) before every worker wrote "
                    f"its pid file:\n{self.output}"
                )
            if time.monotonic() >= deadline:
                raise AssertionError(f"no pid files from {workers} after {timeout}s")
            time.sleep(0.05)  # bounded polling for the files the workers write

    def wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
