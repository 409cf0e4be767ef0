"""Cooperative ``threading`` locks for processes whose threads cannot be patched (xdist workers).

An xdist worker cannot let gevent patch ``threading``: execnet's IO thread must stay a real
thread. With real locks, a user that holds a ``threading.Lock`` across a request (a token
cache, a connection pool on ``queue.Queue``) blocks the one OS thread every user shares, and
the worker deadlocks (RELIABILITY row 35). :func:`install` makes the locks that *user code*
creates from then on cooperative instead, leaving the rest alone:

- ``threading.Lock``, ``threading.RLock`` and ``threading._allocate_lock`` (what
  ``Condition.wait``, ``Event``, ``Semaphore`` and ``queue.Queue`` build on) become factories
  that look at who asks. Code of execnet, xdist, pytest, gevent, pyzmq and pytest-swarm itself
  gets the native lock, exactly as before; everything else (conftest files, tests, the libraries
  they call: requests, urllib3, SQLAlchemy, ...) gets a cooperative one.
- A cooperative lock is a native lock underneath, so it stays correct across real threads. Only
  a wait in the thread that runs the users differs: instead of blocking the OS thread it yields
  to the other users until the lock is released (a release by another user wakes the first
  waiter at once; a release from another OS thread is noticed by polling, 0.5 ms growing to
  20 ms).
- ``RLock`` ownership is per greenlet: two users are two owners, although they share a thread.

Locks created before :func:`install` (module-level locks of the standard library) stay native.

Example:
    >>> import threading
    >>> lock = CooperativeRLock()
    >>> with lock, lock:                      # re-entered by its owner
    ...     lock._is_owned()
    True
    >>> lock.acquire(blocking=False) and lock.release() is None
    True
"""

from __future__ import annotations

import _thread
import contextlib
import sys
import threading
import time
from collections import deque
from types import FrameType
from typing import Any

import gevent
from greenlet import getcurrent

__all__ = ["CooperativeLock", "CooperativeRLock", "install", "installed"]

# Callers whose locks stay native: they run across execnet's real IO thread, or are ours.
_NATIVE_CALLERS = (
    "execnet",
    "xdist",
    "_pytest",
    "pytest",
    "pluggy",
    "gevent",
    "greenlet",
    "zmq",
    "pytest_swarm",
)
# Modules whose frames are skipped to find who asked (Condition.wait allocates its waiter).
_PASS_THROUGH = frozenset({"threading", "queue", __name__})

_FIRST_POLL = 0.0005
_LAST_POLL = 0.020

_native_lock = _thread.allocate_lock
_native_rlock = threading.RLock
_state: dict[str, Any] = {"main": None}


def _cooperative_here() -> bool:
    """A wait here may yield: the users' thread, and not from the hub itself."""
    if _thread.get_ident() != _state["main"]:
        return False
    return getcurrent() is not gevent.get_hub()


def _resume(token: list[Any]) -> None:
    g, token[0] = token[0], None
    if g is not None:
        g.switch()


class CooperativeLock:
    """``threading.Lock`` whose blocking wait in the users' thread lets other users run."""

    __slots__ = ("__weakref__", "_lock", "_waiters")

    def __init__(self) -> None:
        self._lock = _native_lock()
        # One token ([greenlet]) per user waiting in the users' thread, first come first.
        self._waiters: deque[list[Any]] = deque()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if self._lock.acquire(False):
            return True
        if not blocking:
            if timeout != -1:
                raise ValueError("can't specify a timeout for a non-blocking call")
            return False
        if not _cooperative_here():
            return bool(self._lock.acquire(True, timeout))
        if timeout < 0 and timeout != -1:
            raise ValueError("timeout value must be a non-negative number")
        deadline = None if timeout == -1 else time.monotonic() + timeout
        delay = _FIRST_POLL
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            self._wait(delay if left is None else min(delay, left))
            if self._lock.acquire(False):
                return True
            delay = min(delay * 2, _LAST_POLL)

    def _wait(self, seconds: float) -> None:
        """Sleep until a release in this thread wakes us, or ``seconds`` (the poll)."""
        hub = gevent.get_hub()
        token: list[Any] = [getcurrent()]
        timer = hub.loop.timer(seconds)
        timer.start(_resume, token)
        self._waiters.append(token)
        try:
            hub.switch()
        finally:
            timer.close()
            token[0] = None
            with contextlib.suppress(ValueError):  # already taken by release()
                self._waiters.remove(token)

    def release(self) -> None:
        self._lock.release()
        # Wake the first waiter; from another OS thread the gevent loop must not be touched
        # (not thread-safe): the waiters' poll notices that release.
        if self._waiters and _thread.get_ident() == _state["main"]:
            token = self._waiters.popleft()
            if token[0] is not None:
                gevent.get_hub().loop.run_callback(_resume, token)

    def locked(self) -> bool:
        return bool(self._lock.locked())

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _at_fork_reinit(self) -> None:
        self._lock = _native_lock()
        self._waiters.clear()

    def __repr__(self) -> str:
        return f"<cooperative {'locked' if self.locked() else 'unlocked'} lock>"


class CooperativeRLock:
    """``threading.RLock`` owned by a greenlet (a user), not by the thread users share."""

    __slots__ = ("__weakref__", "_block", "_count", "_owner")

    def __init__(self) -> None:
        self._block = CooperativeLock()
        self._owner: Any = None
        self._count = 0

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        me = getcurrent()
        if self._owner is me:
            self._count += 1
            return True
        if not self._block.acquire(blocking, timeout):
            return False
        self._owner, self._count = me, 1
        return True

    def release(self) -> None:
        if self._owner is not getcurrent():
            raise RuntimeError("cannot release un-acquired lock")
        self._count -= 1
        if not self._count:
            self._owner = None
            self._block.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    # What threading.Condition uses when its lock has them.
    def _is_owned(self) -> bool:
        return self._owner is getcurrent()

    def _release_save(self) -> tuple[int, Any]:
        state = (self._count, self._owner)
        self._count, self._owner = 0, None
        self._block.release()
        return state

    def _acquire_restore(self, state: tuple[int, Any]) -> None:
        self._block.acquire()
        self._count, self._owner = state

    def _at_fork_reinit(self) -> None:
        self._block._at_fork_reinit()
        self._owner, self._count = None, 0

    def __repr__(self) -> str:
        return f"<cooperative rlock owned by {self._owner!r}, count {self._count}>"


def _user_caller() -> bool:
    """Whether the code asking for a lock is user code (see the module docstring)."""
    frame: FrameType | None = sys._getframe(2)
    while frame is not None and frame.f_globals.get("__name__") in _PASS_THROUGH:
        frame = frame.f_back
    if frame is None:
        return False
    module = str(frame.f_globals.get("__name__", ""))
    return not any(module == n or module.startswith(n + ".") for n in _NATIVE_CALLERS)


def _lock() -> Any:
    return CooperativeLock() if _user_caller() else _native_lock()


def _rlock(*args: Any, **kwargs: Any) -> Any:
    return CooperativeRLock() if _user_caller() else _native_rlock(*args, **kwargs)


def install() -> None:
    """Make the locks user code creates from now on cooperative (idempotent). Called from the
    thread that will run the users, once gevent has patched the rest."""
    if _state["main"] is not None:
        return
    _state["main"] = _thread.get_ident()
    threading.Lock = _lock  # type: ignore[assignment]
    threading.RLock = _rlock  # type: ignore[assignment]
    threading._allocate_lock = _lock  # type: ignore[attr-defined]


def installed() -> bool:
    return _state["main"] is not None
