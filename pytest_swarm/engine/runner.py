"""Spawning, running and stopping virtual users in one process.

Users are gevent greenlets. The runner starts them at the spawn rate, runs the body in a loop
with the configured wait between iterations, publishes a delta snapshot every report interval,
and at the end stops every user: users that are waiting stop at once, an iteration in flight
may finish within ``stop_timeout``, then the user is killed. Every user's teardown runs.

The runner knows nothing of pytest or of the network: a *user factory* builds each user (the
fixture engine does that), and a *publish* callback ships the deltas (to the local aggregator or
over ZeroMQ).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import gevent
from gevent.event import Event

from ..spec import LoadSpec
from ..stats.recorder import Recorder
from ..stats.snapshot import Snapshot
from .crowd import Crowd

MAX_MESSAGE = 200

# What stops a user rather than failing it. Everything else a body or a fixture raises is that
# user's failure, BaseException subclasses included: pytest.fail()/pytest.skip() raise pytest's
# OutcomeException and gevent.Timeout is a BaseException; letting those escape would kill the
# user greenlet silently, with nothing recorded.
STOPS_USER: tuple[type[BaseException], ...] = (gevent.GreenletExit, KeyboardInterrupt, SystemExit)


@dataclass
class UserInfo:
    """Identity of one virtual user: the ``swarm_user`` fixture.

    Example:
        >>> def test_cart(http, swarm_user):
        ...     http.get(f"/cart?user={swarm_user.index}")   # 0..users-1, unique in the run
    """

    index: int
    users: int
    iteration: int = 0
    worker: str = "main"
    # Where this user's clients record (the process's recorder during a load test).
    recorder: Recorder = field(default_factory=Recorder, repr=False, compare=False)

    def __repr__(self) -> str:
        return (
            f"<swarm user {self.index}/{self.users} on {self.worker}, iteration {self.iteration}>"
        )


class VirtualUser(Protocol):
    """What the factory returns for one user."""

    def iterate(self) -> None:
        """Run the body once."""

    def teardown(self) -> list[BaseException]:
        """Tear the user's fixtures down; returns the errors."""


UserFactory = Callable[[UserInfo], VirtualUser]


@dataclass
class Tick:
    """One report interval's output."""

    seq: int
    delta: Snapshot
    final: bool
    cpu: float  # percent of one core used by this process over the interval
    lag: float  # worst event-loop lag seen in the interval, seconds


Publish = Callable[[Tick], None]


def describe_error(exc: BaseException) -> tuple[str, str]:
    """(kind, first line of the message) for grouping failures."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 1] + "…"
    return type(exc).__name__, message


@dataclass
class RunSummary:
    """What the runner saw locally (the aggregated figures come from the aggregator)."""

    started: int = 0
    setup_failed: int = 0
    teardown_errors: list[str] = field(default_factory=list)
    killed: int = 0
    elapsed: float = 0.0
    stop_reason: str = ""


class _LoopMonitor:
    """Measures event-loop lag (how late a short sleep wakes up) and process CPU."""

    PERIOD = 0.1

    def __init__(self) -> None:
        self.lag = 0.0
        self._cpu0 = time.process_time()
        self._wall0 = time.monotonic()
        self._greenlet = gevent.spawn(self._watch)

    def _watch(self) -> None:
        while True:
            before = time.monotonic()
            gevent.sleep(self.PERIOD)
            self.lag = max(self.lag, time.monotonic() - before - self.PERIOD)

    def sample(self) -> tuple[float, float]:
        cpu, wall = time.process_time(), time.monotonic()
        busy = (cpu - self._cpu0) / (wall - self._wall0) * 100 if wall > self._wall0 else 0.0
        lag, self.lag = self.lag, 0.0
        self._cpu0, self._wall0 = cpu, wall
        return busy, lag

    def stop(self) -> None:
        self._greenlet.kill(block=False)


class Runner:
    """Runs this process's share of one load test.

    ``indices`` are the global user indices this process owns (all of them in a one-process
    run); ``rate`` is this process's share of the spawn rate.
    """

    def __init__(
        self,
        *,
        spec: LoadSpec,
        indices: list[int],
        rate: float,
        factory: UserFactory,
        recorder: Recorder,
        publish: Publish,
        name: str,
        interval: float = 1.0,
        worker: str = "main",
    ) -> None:
        self.spec = spec
        self.indices = indices
        self.rate = rate
        self.factory = factory
        self.recorder = recorder
        self.publish = publish
        self.name = name
        self.interval = interval
        self.worker = worker
        self.summary = RunSummary()
        self._stopping = Event()
        # Wakes the run loop early: a stop, or the last user done with its iterations.
        self._wake = Event()
        self._users = Crowd(on_empty=self._wake.set)
        self._seq = 0
        self._active = 0

    # -- one user ---------------------------------------------------------------------------
    def _user(self, index: int) -> None:
        if self._stopping.is_set():
            return  # spawned just before the stop: no setup for nothing
        recorder = self.recorder
        info = UserInfo(index, self.spec.users, worker=self.worker, recorder=recorder)
        try:
            user = self.factory(info)
        except STOPS_USER:
            raise
        except BaseException as exc:
            self.summary.setup_failed += 1
            recorder.setup_failures += 1
            kind, message = describe_error(exc)
            recorder.add_error(f"setup: {self.name}", kind, message, exc)
            return
        self.summary.started += 1
        self._active += 1
        recorder.users = self._active
        try:
            limit = self.spec.iterations
            wait = self.spec.wait
            stopping = self._stopping
            pause_for = self._users.pause
            while not stopping.is_set():
                t0 = time.perf_counter()
                try:
                    user.iterate()
                except STOPS_USER:
                    raise
                except BaseException as exc:
                    # Failures already recorded by a client (e.g. inside catch_response) are
                    # not counted twice.
                    if not getattr(exc, "_swarm_recorded", False):
                        kind, message = describe_error(exc)
                        recorder.record_failure(
                            self.name, time.perf_counter() - t0, kind, message, exc
                        )
                recorder.iterations += 1
                info.iteration += 1
                if limit is not None and info.iteration >= limit:
                    break
                try:
                    pause = wait()
                except Exception as exc:
                    # A broken wait function (it raised or returned a bad value) is a bug in
                    # the test: record it where it fails the test, and stop this user rather
                    # than let the greenlet die unnoticed (or spin without pausing).
                    kind, message = describe_error(exc)
                    recorder.record_failure(self.name, 0.0, kind, message, exc)
                    break
                if pause > 0:
                    if stopping.is_set():
                        break
                    pause_for(pause)
                else:
                    gevent.sleep(0)  # let the others run even with zero wait
        finally:
            self._active -= 1
            recorder.users = self._active
            for error in user.teardown():
                kind, message = describe_error(error)
                self.summary.teardown_errors.append(f"{kind}: {message}")
                recorder.add_error(f"teardown: {self.name}", kind, message, error)

    def stop(self, reason: str) -> None:
        """End the run early (the controller asked, or lost its link); safe to call twice."""
        if not self._stopping.is_set():
            self.summary.stop_reason = reason
            self._stopping.set()
            self._wake.set()
            self._users.wake_all()

    def _spawner(self, t0: float) -> None:
        for k, index in enumerate(self.indices):
            if self._stopping.is_set():
                return
            due = t0 + (k / self.rate if self.rate > 0 else 0.0)
            delay = due - time.monotonic()
            if delay > 0 and self._stopping.wait(delay):
                return
            self._users.spawn(self._user, index)

    # -- the run ----------------------------------------------------------------------------
    def _tick(self, monitor: _LoopMonitor, final: bool) -> None:
        cpu, lag = monitor.sample()
        tick = Tick(self._seq, self.recorder.drain(), final, cpu, lag)
        self._seq += 1
        self.publish(tick)

    def run(self) -> RunSummary:
        """Run the load for ``spec.duration`` (from now) and stop every user. Blocks the
        calling greenlet; publishes a final tick last."""
        monitor = _LoopMonitor()
        t0 = time.monotonic()
        deadline = t0 + self.spec.duration
        spawner = gevent.spawn(self._spawner, t0)
        try:
            next_tick = t0 + self.interval
            while True:
                now = time.monotonic()
                if now >= deadline or self._stopping.is_set():
                    break
                if spawner.dead and not self._users and self.spec.iterations is not None:
                    break  # every user finished its iterations
                self._wake.wait(min(next_tick, deadline) - now)
                self._wake.clear()
                if time.monotonic() >= next_tick:
                    self._tick(monitor, final=False)
                    next_tick += self.interval
        finally:
            self._stop(spawner)
            self.summary.elapsed = time.monotonic() - t0
            self._tick(monitor, final=True)
            monitor.stop()
        return self.summary

    def _stop(self, spawner: gevent.Greenlet) -> None:
        self._stopping.set()
        spawner.kill(block=True, timeout=1.0)
        # Sleeping users stop at once; iterations in flight may finish (so their requests are
        # counted), within bounds.
        self._users.wake_all()
        if not self._users.join(timeout=self.spec.stop_timeout):
            killed = self.summary.killed = len(self._users)
            self._users.kill(timeout=self.spec.stop_timeout)
            # Not a failure of the service, but the report must say so: these users' requests
            # in flight were never measured.
            message = (
                f"still in an iteration {self.spec.stop_timeout:g}s after the stop "
                "(stop_timeout): killed, its request in flight not measured"
            )
            for _ in range(killed):
                self.recorder.add_error(f"stop: {self.name}", "Killed", message)
