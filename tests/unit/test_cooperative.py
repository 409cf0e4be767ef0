"""Unit tests for pytest_swarm.engine.cooperative: the locks of user code in an xdist worker
(row 35), where threads cannot be patched. Each test would hang or fail with native locks:
every wait is bounded by a timeout so that a broken build fails instead of hanging."""

from __future__ import annotations

import _thread
import doctest
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator

import gevent
import pytest

import pytest_swarm.engine.cooperative as cooperative
from pytest_swarm.engine.cooperative import CooperativeLock, CooperativeRLock


@pytest.fixture(autouse=True)
def users_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This thread runs the users (what install() records), without patching threading."""
    monkeypatch.setitem(cooperative._state, "main", _thread.get_ident())
    yield


def test_module_doctests() -> None:
    assert doctest.testmod(cooperative).failed == 0


def test_a_lock_held_across_a_yield_lets_the_other_users_run() -> None:
    lock = CooperativeLock()
    ticks: list[int] = []
    order: list[str] = []

    def holder() -> None:
        with lock:
            order.append("a holds")
            gevent.sleep(0.02)  # a request in flight
            order.append("a releases")

    def waiter() -> None:
        assert lock.acquire(timeout=5), "never acquired"
        order.append("b holds")
        lock.release()

    def clock() -> None:
        for n in range(5):
            ticks.append(n)
            gevent.sleep(0.001)

    jobs = [gevent.spawn(holder), gevent.spawn(waiter), gevent.spawn(clock)]
    gevent.joinall(jobs, timeout=10, raise_error=True)
    assert order == ["a holds", "a releases", "b holds"]
    assert ticks == [0, 1, 2, 3, 4]  # the hub kept running while b waited


def test_acquire_timeout_and_non_blocking() -> None:
    lock = CooperativeLock()
    assert lock.acquire()
    assert not lock.acquire(blocking=False)
    assert not lock.acquire(timeout=0.01)
    with pytest.raises(ValueError):
        lock.acquire(blocking=False, timeout=1)
    lock.release()
    assert not lock.locked()


def test_an_rlock_is_owned_by_a_user_not_by_the_shared_thread() -> None:
    rlock = CooperativeRLock()
    seen: list[bool] = []

    def owner() -> None:
        with rlock, rlock:
            gevent.sleep(0.02)

    def other() -> None:
        seen.append(rlock.acquire(blocking=False))  # a native RLock says True: same thread
        with pytest.raises(RuntimeError):
            rlock.release()

    gevent.joinall([gevent.spawn(owner), gevent.spawn(other)], timeout=10, raise_error=True)
    assert seen == [False]
    assert rlock.acquire(blocking=False)
    rlock.release()


def test_a_release_from_a_real_thread_is_noticed() -> None:
    lock = CooperativeLock()
    held = threading.Event()
    go = threading.Event()

    def real_thread() -> None:
        with lock:
            held.set()
            go.wait(10)

    thread = threading.Thread(target=real_thread)
    thread.start()
    assert held.wait(10)
    go.set()
    assert lock.acquire(timeout=10)
    lock.release()
    thread.join(10)


def test_locks_of_execnet_xdist_and_pytest_stay_native() -> None:
    native = type(_thread.allocate_lock())
    assert isinstance(cooperative._lock(), CooperativeLock)
    for module in ("execnet.gateway_base", "xdist.remote", "_pytest.main", "gevent.hub"):
        namespace = {"__name__": module, "make": cooperative._lock, "rmake": cooperative._rlock}
        exec("lock = make(); rlock = rmake()", namespace)  # a caller in that module
        assert isinstance(namespace["lock"], native), module
        assert not isinstance(namespace["rlock"], CooperativeRLock), module


def test_install_makes_queues_conditions_and_events_of_user_code_cooperative() -> None:
    # In a fresh process: install() changes the threading module for good.
    script = textwrap.dedent(
        """
        import queue, threading
        import gevent
        from pytest_swarm.engine import cooperative
        cooperative.install()
        pool = queue.Queue()
        pool.put("c1")
        done = threading.Event()
        got = []

        def user(n):
            conn = pool.get(timeout=5)     # 3 users, 1 connection
            gevent.sleep(0.01)             # a request while holding it
            got.append(n)
            pool.put(conn)
            if len(got) == 3:
                done.set()

        jobs = [gevent.spawn(user, n) for n in range(3)]
        assert done.wait(timeout=5), got
        gevent.joinall(jobs, timeout=5, raise_error=True)
        print(sorted(got))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[0, 1, 2]"
