"""Real OS threads, locks and sockets, even in a process gevent has monkey-patched.

The dashboard must run beside the load, never inside it: in a one-process run gevent has
patched ``threading`` and ``socket``, so ``threading.Thread`` would start a greenlet on the
users' loop and a blocking ``socket`` call would wait on that loop. This module takes the
unpatched originals (``gevent.monkey.get_original``) when gevent has patched them, and the
standard ones otherwise, without importing gevent itself. The sockets are ``_socket.socket``,
the C type, whose blocking calls with a timeout wait in C (poll) with the GIL released.

Example:
    >>> lock = allocate_lock()
    >>> done = allocate_lock(); done.acquire()
    True
    >>> start_thread(done.release)
    >>> done.acquire(timeout=10)
    True
"""

from __future__ import annotations

import _socket
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["RealSocket", "Waker", "allocate_lock", "start_thread"]

RealSocket = _socket.socket


def _original(module: str, name: str) -> Any:
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None:
        return monkey.get_original(module, name)
    return getattr(sys.modules.get(module) or __import__(module), name)


def allocate_lock() -> Any:
    """A native lock (``_thread.LockType``), never gevent's cooperative one."""
    return _original("_thread", "allocate_lock")()


def start_thread(target: Callable[[], None]) -> None:
    """Run ``target`` in a new OS thread (never a greenlet)."""
    _original("_thread", "start_new_thread")(target, ())


class Waker:
    """A condition on native locks: threads wait for the next :meth:`notify_all`.

    ``threading.Condition`` cannot serve: in a patched process its waiters are gevent locks.
    A waiter passes the generation it last saw, so a notification between its check and its
    wait is never missed.

    Example:
        >>> waker = Waker()
        >>> seen = waker.generation
        >>> waker.notify_all()
        >>> waker.wait(seen, timeout=10)  # already notified since `seen`: returns at once
        True
    """

    def __init__(self) -> None:
        self._lock = allocate_lock()
        self._waiters: list[Any] = []
        self.generation = 0

    def notify_all(self) -> None:
        with self._lock:
            self.generation += 1
            waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.release()

    def wait(self, seen: int, timeout: float) -> bool:
        """Wait until the generation moves past ``seen`` or ``timeout`` passes; True if it moved."""
        waiter = allocate_lock()
        waiter.acquire()
        with self._lock:
            if self.generation != seen:
                return True
            self._waiters.append(waiter)
        woken = bool(waiter.acquire(timeout=max(timeout, 0.0)))
        if not woken:
            with self._lock:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                else:  # notified between the timeout and the removal
                    woken = True
        return woken
