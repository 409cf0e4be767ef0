"""When and how gevent monkey-patches the process.

Virtual users are greenlets, so blocking I/O (sockets, ssl, DNS, time.sleep) must yield to the
gevent hub. That needs ``gevent.monkey.patch_all`` *before* conftest files import ``ssl`` or
``requests``, and it must never happen where it breaks things. The rules, measured with
pytest-xdist 3.8 and gevent 26 (see docs/architecture.md):

- never in an xdist controller (it breaks or hangs execnet);
- in one-process runs with ``subprocess=False, os=False`` (a patched ``os.close`` hangs the
  stdlib ``subprocess`` used by test code and by pytester), threads included: a
  ``threading.Lock`` held across a request by one user must let the other users run;
- in xdist workers the same but with ``thread=False`` too: execnet's IO thread must stay a
  real thread; the locks user code creates are made cooperative instead (engine/cooperative.py);
- only when the run will contain load tests, so that installing the plugin does not change a
  suite without load tests (asyncio or threading tests keep their real sockets). Whether it will
  is judged by a cheap scan of the files the run will collect for ``mark.load`` / ``swarm``;
  ``--swarm-patch=on|off`` (ini ``swarm_patch``) overrides the scan.

Example:
    >>> decide(mode="auto", controller=False, has_load_tests=True)
    True
    >>> decide(mode="on", controller=True, has_load_tests=True)
    False
"""

from __future__ import annotations

import ipaddress
import os
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

# Cheap and deliberately generous: a false positive only costs patching a run that did not need
# it; a false negative is caught before the load test runs (ensure_patched raises).
_LOAD_PATTERN = re.compile(rb"mark\.load\b|\bswarm\.run\b|\bswarm\b\s*[,)]|\bswarm\s*:")
_MAX_FILES = 5_000
_MAX_BYTES = 2 * 1024 * 1024
_SKIP_DIRS = {".git", ".tox", ".venv", "venv", "node_modules", "__pycache__", ".hg", "build"}


def decide(*, mode: str, controller: bool, has_load_tests: bool) -> bool:
    """Whether this process should patch."""
    if controller:
        return False
    if mode == "on":
        return True
    if mode == "off":
        return False
    return has_load_tests


def is_xdist_controller(args: Sequence[str], numprocesses: object, dist: object) -> bool:
    """An xdist controller spawns workers: ``-n N`` (N > 0 or auto/logical), ``--tx`` or a
    ``--dist`` mode other than ``no``. A worker is never a controller."""
    if is_xdist_worker():
        return False
    if numprocesses not in (None, 0, "0"):
        return True
    if dist not in (None, "no"):
        return True
    return any(a == "--tx" or a.startswith("--tx=") for a in args)


def is_xdist_worker() -> bool:
    """True inside an xdist worker process (popen, socket or ssh gateway alike).

    ``PYTEST_XDIST_WORKER`` alone is not enough: a pytest run started from inside a worker (a
    pytester subprocess) inherits it. A real worker runs pytest from xdist's remote code, which
    execnet executes as the module ``__channelexec__``: that frame is on the stack.
    """
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return False
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_globals.get("__name__") == "__channelexec__":
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


def _python_files(paths: Iterable[Path], patterns: Sequence[str]) -> Iterable[Path]:
    regexes = [re.compile(_glob_to_regex(p)) for p in patterns] + [re.compile(r"conftest\.py$")]
    seen = 0
    for root in paths:
        if root.is_file():
            yield root
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if d not in _SKIP_DIRS and not d.startswith(".")]
            for filename in filenames:
                if filename.endswith(".py") and any(r.match(filename) for r in regexes):
                    seen += 1
                    if seen > _MAX_FILES:
                        return
                    yield Path(dirpath, filename)


def _glob_to_regex(pattern: str) -> str:
    return re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".") + "$"


def scan_for_load_tests(paths: Iterable[Path], patterns: Sequence[str]) -> bool:
    """True if any test or conftest file under ``paths`` mentions the load mark or ``swarm``."""
    for path in _python_files(paths, patterns):
        try:
            with path.open("rb") as f:
                data = f.read(_MAX_BYTES)
        except OSError:
            continue
        if _LOAD_PATTERN.search(data):
            return True
    return False


def patch(*, threads: bool | None = None) -> None:
    """Patch this process for gevent (idempotent).

    ``threads`` (default: true unless this is an xdist worker) also patches ``threading``,
    ``_thread`` and ``queue``: ``threading.Lock``, ``RLock``, ``Condition``, ``Event`` and
    ``queue.Queue`` then wait by yielding to the other users instead of blocking the one OS
    thread they all share. Without it, a lock held across a request by one user (a token cache,
    a connection pool) blocks every other user and the hub: the process deadlocks (row 35).
    An xdist worker cannot have it: execnet's IO thread must stay a real thread (patching
    threads there ends in ``LoopExit``). There the locks that user code creates are made
    cooperative instead (:mod:`pytest_swarm.engine.cooperative`).
    """
    from gevent import monkey

    if threads is None:
        threads = not is_xdist_worker()
    if not monkey.is_module_patched("socket"):
        # os=False: gevent >= 25.8.1 patches os.close to defer closes to the hub, and the
        # stdlib subprocess (deliberately unpatched) then blocks forever on its exec-error pipe.
        # signal=False goes with it (gevent warns about patching signal without os).
        monkey.patch_all(thread=threads, queue=threads, subprocess=False, os=False, signal=False)
        _numeric_hosts_skip_the_resolver()
        if not threads:
            # Real threads, but the locks user code creates from now on cooperate (see
            # engine/cooperative.py): a lock held across a request must not block the worker.
            from .cooperative import install

            install()


def threads_patched() -> bool:
    """Whether ``threading`` locks cooperate with gevent in this process."""
    if "gevent.monkey" not in sys.modules:
        return False
    from gevent import monkey

    return bool(monkey.is_module_patched("threading"))


def _numeric_hosts_skip_the_resolver() -> None:
    """gevent resolves every name, IP literals included, on a thread pool of ~10 threads:
    thousands of users opening connections to ``127.0.0.1`` queue there (seconds of start-up,
    kilobytes per waiting user). An IP literal needs no resolution: the blocking C call with
    AI_NUMERICHOST answers at once without touching the network; names still go to gevent."""
    import socket

    from gevent import monkey

    if getattr(socket.getaddrinfo, "_swarm_numeric", False):
        return
    resolve = socket.getaddrinfo
    numeric = monkey.get_original("socket", "getaddrinfo")

    def getaddrinfo(
        host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
    ) -> Any:
        if isinstance(host, str):
            try:
                ipaddress.ip_address(host)
            except ValueError:
                pass
            else:
                return numeric(host, port, family, type, proto, flags | socket.AI_NUMERICHOST)
        return resolve(host, port, family, type, proto, flags)

    getaddrinfo._swarm_numeric = True  # type: ignore[attr-defined]
    socket.getaddrinfo = getaddrinfo


def is_patched() -> bool:
    if "gevent.monkey" not in sys.modules:
        return False
    from gevent import monkey

    return bool(monkey.is_module_patched("socket"))


def ensure_patched(test: str) -> None:
    """Refuse to run load with blocking sockets: users would take turns and throughput would
    collapse without any error."""
    if not is_patched():
        raise RuntimeError(
            f"{test}: gevent has not patched this process, so virtual users would block each "
            "other. The early scan did not see a load test in the files this run collects "
            "(or --swarm-patch=off is set); run with --swarm-patch=on or set "
            "'swarm_patch = on' in the ini file."
        )
