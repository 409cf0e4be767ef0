"""Unit tests for pytest_swarm.engine.crowd: raw user greenlets under the gevent hub, their
interruptible pause, and how they are woken, joined and killed.

The test process is not gevent-patched; the tests drive the hub from the main greenlet
(``join``, ``gevent.sleep(0)``) and synchronise on events and joins, never on elapsed time.
"""

from __future__ import annotations

import doctest
import time
from collections import Counter
from collections.abc import Callable, Iterator
from types import TracebackType

import gevent
import pytest
from gevent.event import Event

import pytest_swarm.engine.crowd as crowd_module
from pytest_swarm.engine.crowd import Crowd

HubError = tuple[object, type[BaseException], BaseException, TracebackType | None]


@pytest.fixture
def crowd() -> Iterator[Crowd]:
    crowd = Crowd()
    yield crowd
    crowd.kill(timeout=5.0)


@pytest.fixture
def hub_errors(monkeypatch: pytest.MonkeyPatch) -> list[HubError]:
    """What reaches the hub's error handler during the test (instead of being printed)."""
    errors: list[HubError] = []

    def handle_error(
        context: object,
        kind: type[BaseException],
        value: BaseException,
        tb: TracebackType | None,
    ) -> None:
        errors.append((context, kind, value, tb))

    monkeypatch.setattr(gevent.get_hub(), "handle_error", handle_error)
    return errors


def test_module_doctests() -> None:
    assert doctest.testmod(crowd_module).failed == 0


def test_a_pause_ends_by_itself_when_its_timer_fires(
    crowd: Crowd, hub_errors: list[HubError]
) -> None:
    woke: list[int] = []

    def user(n: int) -> None:
        crowd.pause(0.01)
        woke.append(n)

    crowd.spawn(user, 1)
    assert crowd.join(timeout=5.0)
    assert woke == [1]
    assert hub_errors == []


def test_wake_all_ends_a_long_pause(crowd: Crowd, hub_errors: list[HubError]) -> None:
    woke: list[int] = []

    def user(n: int) -> None:
        crowd.pause(60.0)
        woke.append(n)

    for n in range(3):
        crowd.spawn(user, n)
    gevent.sleep(0)
    crowd.wake_all()
    assert woke == []  # the sleepers resume on the next turn of the loop, not inside wake_all
    assert crowd.join(timeout=5.0)
    assert sorted(woke) == [0, 1, 2]
    assert hub_errors == []


def test_woken_sleepers_are_resumed_exactly_once(crowd: Crowd, hub_errors: list[HubError]) -> None:
    """wake_all runs (twice) from the sleeper whose timer fired first, while the others'
    timers are due too: a sleeper switched into a second time would leave its next pause."""
    users = 3
    resumed: Counter[int] = Counter()
    waker: list[int] = []
    all_woken = Event()

    def user(n: int) -> None:
        crowd.pause(0.01)
        if not waker:
            waker.append(n)
            crowd.wake_all()
            crowd.wake_all()
        resumed[n] += 1
        if len(resumed) == users:
            all_woken.set()
        crowd.pause(60.0)
        resumed[n] += 1

    for n in range(users):
        crowd.spawn(user, n)
    gevent.sleep(0)
    time.sleep(0.02)  # blocks the loop: every timer is due when it runs again
    assert all_woken.wait(timeout=5.0)
    gevent.sleep(0)
    gevent.sleep(0)
    assert resumed == dict.fromkeys(range(users), 1)
    assert len(crowd) == users

    crowd.wake_all()
    assert crowd.join(timeout=5.0)
    assert resumed == dict.fromkeys(range(users), 2)
    assert hub_errors == []


def _wait_on_event() -> None:
    Event().wait()


def _gevent_sleep() -> None:
    gevent.sleep(60.0)


def test_kill_raises_greenlet_exit_wherever_a_user_is_blocked(
    crowd: Crowd, hub_errors: list[HubError]
) -> None:
    blockers: dict[str, Callable[[], None]] = {
        "event": _wait_on_event,
        "sleep": _gevent_sleep,
        "pause": lambda: crowd.pause(60.0),
    }
    raised: dict[str, str] = {}
    cleaned: list[str] = []

    def user(name: str) -> None:
        try:
            blockers[name]()
        except BaseException as exc:
            raised[name] = type(exc).__name__
            raise
        finally:
            cleaned.append(name)

    for name in blockers:
        crowd.spawn(user, name)
    gevent.sleep(0)
    assert len(crowd) == 3
    assert crowd.kill(timeout=5.0)
    assert raised == dict.fromkeys(blockers, "GreenletExit")
    assert sorted(cleaned) == sorted(blockers)
    assert not crowd
    assert hub_errors == []


def test_spawn_after_kill_starts_nothing(crowd: Crowd) -> None:
    ran: list[int] = []
    assert crowd.kill(timeout=5.0)
    crowd.spawn(ran.append, 1)
    assert len(crowd) == 0
    gevent.sleep(0)
    assert ran == []
    assert crowd.join(timeout=0.0)


def test_a_user_killed_before_it_started_never_runs(
    crowd: Crowd, hub_errors: list[HubError]
) -> None:
    ran: list[int] = []
    crowd.spawn(ran.append, 1)
    assert len(crowd) == 1
    assert crowd.kill(timeout=5.0)
    assert ran == []
    assert len(crowd) == 0
    assert hub_errors == []


def test_an_exception_escaping_a_user_goes_to_the_hub_error_handler(
    crowd: Crowd, hub_errors: list[HubError]
) -> None:
    where: list[object] = []
    finished: list[int] = []

    def broken(n: int) -> None:
        where.append(gevent.getcurrent())
        raise ValueError(f"user {n} broke")

    crowd.spawn(broken, 7)
    crowd.spawn(finished.append, 8)
    assert crowd.join(timeout=5.0)
    assert not crowd
    assert finished == [8]
    assert len(hub_errors) == 1
    context, kind, value, tb = hub_errors[0]
    assert context is where[0]
    assert kind is ValueError
    assert str(value) == "user 7 broke"
    assert tb is not None


def test_len_and_truthiness_count_live_users(crowd: Crowd) -> None:
    assert len(crowd) == 0
    assert not crowd
    release = {n: Event() for n in range(2)}
    done = {n: Event() for n in range(2)}

    def user(n: int) -> None:
        release[n].wait()
        done[n].set()

    for n in range(2):
        crowd.spawn(user, n)
    assert len(crowd) == 2  # counted from spawn, before they start
    assert crowd
    gevent.sleep(0)
    assert len(crowd) == 2

    release[0].set()
    assert done[0].wait(timeout=5.0)
    assert len(crowd) == 1
    assert crowd

    release[1].set()
    assert crowd.join(timeout=5.0)
    assert len(crowd) == 0
    assert not crowd


def test_join_returns_false_when_a_user_is_still_busy(crowd: Crowd) -> None:
    release = Event()

    def user(_: None) -> None:
        release.wait()

    crowd.spawn(user, None)
    gevent.sleep(0)
    assert crowd.join(timeout=0.01) is False
    assert len(crowd) == 1
    release.set()
    assert crowd.join(timeout=5.0) is True


def _wake_then_kill(crowd: Crowd) -> None:
    crowd.wake_all()
    crowd.kill(timeout=5.0)


def _kill_then_wake(crowd: Crowd) -> None:
    crowd.kill(timeout=0.0)
    crowd.wake_all()


@pytest.mark.parametrize("stop", [_wake_then_kill, _kill_then_wake])
def test_a_sleeper_woken_and_killed_together_ends_cleanly(
    crowd: Crowd, hub_errors: list[HubError], stop: Callable[[Crowd], None]
) -> None:
    """Like a virtual user: pauses in a loop, then cleans up with a blocking call. With
    kill(timeout=0) the throws are still queued when wake_all() runs (the cleanups' CPU makes
    gevent run them over several loop turns): the killed must not be resumed mid-cleanup."""
    cleaned: list[int] = []

    def user(n: int) -> None:
        try:
            while True:
                crowd.pause(60.0)
        finally:
            busy = time.perf_counter() + 0.0005
            while time.perf_counter() < busy:
                pass
            gevent.sleep(0.001)
            cleaned.append(n)

    for n in range(200):
        crowd.spawn(user, n)
    gevent.sleep(0)
    stop(crowd)
    assert crowd.join(timeout=5.0)
    assert sorted(cleaned) == list(range(200))
    assert hub_errors == []
