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

import bisect
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, Protocol

import gevent
from gevent.event import Event

from ..spec import LoadSpec
from ..stats.recorder import Recorder
from ..stats.snapshot import Snapshot
from ..workload.shape import ShapeError, ShapeFollower
from .crowd import Crowd
from .heap import trim_heap
from .open_model import OpenLoop

MAX_MESSAGE = 200

# What stops a user rather than failing it: the runner killing it. Everything else a body or a
# fixture raises is that user's failure, BaseException subclasses included: pytest.fail() and
# pytest.skip() raise pytest's OutcomeException, gevent.Timeout is a BaseException, and
# ``SystemExit`` fails a plain pytest test too (pytest only lets KeyboardInterrupt through);
# letting those escape would kill the user greenlet silently, with nothing recorded.
# ``KeyboardInterrupt`` raised by a body interrupts the whole run, as Ctrl-C would (see
# Runner.interrupt).
STOPS_USER: tuple[type[BaseException], ...] = (gevent.GreenletExit,)

# After the users still in an iteration were killed, how long their fixture teardowns (a
# logout, closing a session) may take before the runner gives up on them and names them.
TEARDOWN_TIMEOUT = 10.0
# After giving up: the time a user interrupted in its teardown gets to unwind.
ABANDON_TIMEOUT = 1.0

# The kinds of the error groups the runner adds at the stop (RunResult counts them).
KILLED = "Killed"
ABANDONED = "Abandoned"
NOT_STARTED = "NotStarted"

# The signals that end a run gracefully: Ctrl-C, and what CI sends on cancel.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class RunInterrupted(KeyboardInterrupt):
    """The run was interrupted (Ctrl-C, SIGTERM, KeyboardInterrupt in a body). Raised by
    :meth:`Runner.run` once the users are stopped, torn down and the final tick published; a
    KeyboardInterrupt, so pytest ends the session as interrupted (exit code 2)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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
    killed: int = 0  # users killed in an iteration: the iterations cut off at the stop
    abandoned: list[int] = field(default_factory=list)  # users whose teardown never finished
    not_started: int = 0  # users of this process never spawned before the stop
    elapsed: float = 0.0
    stop_reason: str = ""
    interrupted: str = ""  # why the run was interrupted ("" if it was not)


class _LoopMonitor:
    """Measures event-loop lag (how late a short sleep wakes up) and process CPU.

    The final interval of a run is usually a sliver (the stop, the teardowns: a few busy
    milliseconds after the last regular tick); measured alone it reads close to 100 % CPU on a
    trivial run. A final interval shorter than half the report interval is therefore measured
    together with the interval before it: the CPU share over both, weighted by their length.
    """

    PERIOD = 0.1

    def __init__(
        self,
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        cpu_clock: Callable[[], float] = time.process_time,
        watch: bool = True,
    ) -> None:
        self.lag = 0.0
        self.interval = interval
        self._clock, self._cpu_clock = clock, cpu_clock
        self._cpu0 = cpu_clock()
        self._wall0 = clock()
        self._before: tuple[float, float] | None = None  # the start of the previous interval
        self._asleep: float | None = None  # when the watcher's current sleep began
        self._greenlet = gevent.spawn(self._watch) if watch else None

    def _watch(self) -> None:
        while True:
            self._asleep = before = time.monotonic()
            gevent.sleep(self.PERIOD)
            self._asleep = None
            self.lag = max(self.lag, time.monotonic() - before - self.PERIOD)

    def sample(self, final: bool = False) -> tuple[float, float]:
        """(CPU percent of one core, worst lag in seconds) since the previous sample."""
        cpu, wall = self._cpu_clock(), self._clock()
        cpu0, wall0 = self._cpu0, self._wall0
        if final and self._before is not None and wall - wall0 < self.interval / 2:
            cpu0, wall0 = self._before  # a short tail: measured with the interval before it
        busy = (cpu - cpu0) / (wall - wall0) * 100 if wall > wall0 else 0.0
        lag, self.lag = self.lag, 0.0
        if self._asleep is not None:
            # A sleep still overdue counts now: a loop so starved that the watcher never
            # woke in the interval must not read as no lag at all.
            lag = max(lag, self._clock() - self._asleep - self.PERIOD)
        self._before = (self._cpu0, self._wall0)
        self._cpu0, self._wall0 = cpu, wall
        return busy, lag

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)


@contextmanager
def _graceful_signals(interrupt: Callable[[str], None]) -> Iterator[None]:
    """While a run lasts, SIGINT and SIGTERM call ``interrupt(name)`` instead of raising
    KeyboardInterrupt wherever the process happens to be (inside a user's request, its
    teardown, the hub), so users stop in order and their teardowns run. Only the main thread
    can set handlers; elsewhere (an embedding program) the process keeps its own."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[signal.Signals, Any] = {}
    loop = gevent.get_hub().loop

    def handler(signum: int, frame: FrameType | None) -> None:
        # Not here: a Python signal handler runs in whatever greenlet is current, between two
        # of its bytecodes, e.g. in a user just resumed by its timer but not yet out of the
        # crowd's sleepers; waking the sleepers from there switched into that user later, in
        # the middle of a socket wait (InvalidSwitchError in its teardown, a lost logout).
        # The event loop runs the interrupt as a callback, where no user is mid-step.
        loop.run_callback_threadsafe(interrupt, signal.Signals(signum).name)

    for sig in STOP_SIGNALS:
        previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


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
        workers: int = 1,
    ) -> None:
        self.spec = spec
        self.workers = workers  # processes sharing the load (the open model's interleaving)
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
        # Users started as of the tick before, and when the heap was last trimmed (see
        # _after_tick): a crowd that has stopped growing and gone idle is trimmed once.
        self._started_before = 0
        self._trimmed_at = 0
        self._active = 0
        self._entered = 0  # users that began their setup (the others never started)
        # Users inside an iteration, and users tearing down: at the stop the first are cut
        # off (killed, their requests in flight never measured), the second are left to
        # finish their teardown.
        self._busy: set[int] = set()
        self._tearing: set[int] = set()
        self._hard = Event()  # a second interrupt: stop waiting for anything
        # Ramp stages: the users the profile wants running now (None: every user, always),
        # the users alive (spawned, not yet ended), and every user that ever began.
        followed = spec.profile is not None or spec.shape is not None
        self._wanted: set[int] | None = set() if followed else None
        self._alive: set[int] = set()
        self._seen: set[int] = set()
        self._infos: dict[int, UserInfo] = {}  # the users set up and not yet torn down
        self._ended = False  # the load ended before its duration, as planned (shape: None)
        self._open: OpenLoop | None = None
        if spec.open_model is not None:
            self._open = OpenLoop(self, spec.open_model)

    # -- one user ---------------------------------------------------------------------------
    def _user(self, index: int) -> None:
        wanted = self._wanted
        if self._stopping.is_set() or (wanted is not None and index not in wanted):
            return  # spawned just before the stop: no setup for nothing (counted: not started)
        user = self.setup_user(index)
        if user is None:
            return
        try:
            self._closed_loop(index, user)
        finally:
            self.teardown_user(index, user)

    def setup_user(self, index: int) -> VirtualUser | None:
        """Build user ``index`` (its fixtures); None if its setup failed (recorded) or a
        KeyboardInterrupt in it interrupted the run. The caller runs it, then calls
        :meth:`teardown_user`."""
        if index not in self._seen:  # a ramp can start the same user again after a ramp-down
            self._seen.add(index)
            self._entered += 1
        recorder = self.recorder
        info = UserInfo(index, self.spec.users, worker=self.worker, recorder=recorder)
        try:
            user = self.factory(info)
        except STOPS_USER:
            raise
        except KeyboardInterrupt:
            self.interrupt(f"KeyboardInterrupt in the fixtures of user {index}")
            return None
        except BaseException as exc:
            self.summary.setup_failed += 1
            recorder.setup_failures += 1
            kind, message = describe_error(exc)
            recorder.add_error(f"setup: {self.name}", kind, message, exc)
            return None
        self._infos[index] = info
        self.summary.started += 1
        self._active += 1
        recorder.users = self._active
        return user

    def iterate_once(self, index: int, user: VirtualUser) -> float | None:
        """Run the body once in user ``index``, recording a failure it raised. Returns its
        duration (seconds), or None if a KeyboardInterrupt in it interrupted the run (the user
        stops)."""
        t0 = time.perf_counter()
        busy = self._busy
        busy.add(index)
        try:
            user.iterate()
        except STOPS_USER:
            raise
        except KeyboardInterrupt:
            # Ctrl-C from inside the body (or a body raising it): the run is interrupted,
            # this user stops here and tears down like the others.
            busy.discard(index)
            self.interrupt(f"KeyboardInterrupt in the body of user {index}")
            return None
        except BaseException as exc:
            # Failures already recorded by a client (e.g. inside catch_response) are not
            # counted twice.
            if not getattr(exc, "_swarm_recorded", False):
                kind, message = describe_error(exc)
                self.recorder.record_failure(
                    self.name, time.perf_counter() - t0, kind, message, exc
                )
        busy.discard(index)
        self._infos[index].iteration += 1
        return time.perf_counter() - t0

    def _closed_loop(self, index: int, user: VirtualUser) -> None:
        recorder = self.recorder
        info = self._infos[index]
        wanted = self._wanted
        limit = self.spec.iterations
        wait = self.spec.wait
        stopping = self._stopping
        pause_for = self._users.pause
        while not stopping.is_set() and (wanted is None or index in wanted):
            took = self.iterate_once(index, user)
            if took is None:
                break
            # The closed model's iteration time is the body's own duration.
            recorder.record_iteration(took)
            if limit is not None and info.iteration >= limit:
                break
            try:
                pause = wait()
            except Exception as exc:
                # A broken wait function (it raised or returned a bad value) is a bug in the
                # test: record it where it fails the test, and stop this user rather than let
                # the greenlet die unnoticed (or spin without pausing).
                kind, message = describe_error(exc)
                recorder.record_failure(self.name, 0.0, kind, message, exc)
                break
            if pause > 0:
                if stopping.is_set():
                    break
                pause_for(pause)
            else:
                # Let the others run even with zero wait, through a zero-length timer:
                # gevent.sleep(0) re-queues the user as a callback, and CPU-bound users that
                # only ever do that starve the timers (the report ticks, the end of the run:
                # a 1.5 s run once lasted 18 s).
                pause_for(0.0)

    def teardown_user(self, index: int, user: VirtualUser) -> None:
        """Tear user ``index``'s fixtures down (errors recorded); after :meth:`setup_user`."""
        recorder = self.recorder
        self._infos.pop(index, None)
        self._active -= 1
        recorder.users = self._active
        self._tearing.add(index)
        try:
            for error in user.teardown():
                kind, message = describe_error(error)
                self.summary.teardown_errors.append(f"{kind}: {message}")
                recorder.add_error(f"teardown: {self.name}", kind, message, error)
        finally:
            self._tearing.discard(index)

    def stop(self, reason: str) -> None:
        """End the run early (the controller asked, or lost its link); safe to call twice."""
        if not self._stopping.is_set():
            self.summary.stop_reason = reason
            self._stopping.set()
            self._wake.set()
            self._users.wake_all()
            if self._open is not None:
                self._open.wake_idle()

    def interrupt(self, reason: str) -> None:
        """Ctrl-C, SIGTERM or a KeyboardInterrupt in user code: stop as at the end of the run
        (iterations in flight may finish, teardowns run), then :meth:`run` raises
        :class:`RunInterrupted`. A second interrupt stops waiting: the users still running are
        killed at once. Safe from a signal handler: it only sets events, never switches."""
        if self.summary.interrupted:
            self._hard.set()
            self._wake.set()
            return
        self.summary.interrupted = reason
        self.stop(f"interrupted ({reason})")

    def _spawner(self, t0: float) -> None:
        if self._open is not None:
            self._open.dispatch(t0)
            return
        if self.spec.shape is not None:
            follower = ShapeFollower(self.spec.shape, max_users=self.spec.users)
            self._follow(t0, follower.level)
            return
        if self.spec.profile is not None:
            self._follow(t0, self.spec.profile.at)
            return
        for k, index in enumerate(self.indices):
            if self._stopping.is_set():
                return
            due = t0 + (k / self.rate if self.rate > 0 else 0.0)
            delay = due - time.monotonic()
            if delay > 0 and self._stopping.wait(delay):
                return
            self._users.spawn(self._user, index)

    def _follow(self, t0: float, level: Callable[[float], float | None]) -> None:
        """Ramp stages and shapes: ten times a second, make the users running match the
        target ``level(elapsed)`` (None: the load ends now). The swarm's users are numbered;
        user k runs while the target exceeds k, so the whole swarm follows the profile (each
        process owns its indices) and a ramp-down stops the most recently started users
        first. A stopped user finishes the iteration in flight (within ``stop_timeout``, then
        it is cut off) and tears its fixtures down at once. A shape's bad answer stops the
        run with the reason (an error naming the test and the argument)."""
        wanted = self._wanted
        assert wanted is not None
        alive = self._alive
        step = min(0.1, self.interval)
        while True:
            try:
                now_level = level(time.monotonic() - t0)
            except ShapeError as exc:
                self.stop(f"{self.name}: {exc}")
                return
            if now_level is None:
                self._ended = True
                self._wake.set()
                return
            target = math.floor(now_level + 1e-9)
            mine = self.indices[: bisect.bisect_left(self.indices, target)]
            retired = wanted.difference(mine)
            wanted.clear()
            wanted.update(mine)
            for index in mine:
                if index not in alive:
                    alive.add(index)
                    self._users.spawn(self._profiled_user, index)
            if retired:
                self._users.wake_where(retired.__contains__)
                gevent.spawn_later(self.spec.stop_timeout, self._cut_off, retired)
            if self._stopping.wait(step):
                return

    def _profiled_user(self, index: int) -> None:
        try:
            self._user(index)
        finally:
            self._alive.discard(index)

    def _cut_off(self, retired: set[int]) -> None:
        """Users a ramp-down stopped that are still in their iteration after stop_timeout."""
        wanted = self._wanted or set()
        late = {i for i in retired if i in self._busy and i not in wanted}
        if not late or self._stopping.is_set():
            return  # the end of the run cuts off whoever is left, and counts them
        self.summary.killed += len(late)
        message = (
            f"still in an iteration {self.spec.stop_timeout:g}s after a ramp-down stopped it "
            "(stop_timeout): killed, its request in flight not measured"
        )
        for _ in late:
            self.recorder.add_error(f"stop: {self.name}", KILLED, message)
        self._users.kill_where(late.__contains__)

    # -- the run ----------------------------------------------------------------------------
    def _tick(self, monitor: _LoopMonitor, final: bool) -> None:
        cpu, lag = monitor.sample(final)
        if self._open is not None:
            self._open.report(final)
        delta = self.recorder.drain()
        if final and self.summary.not_started:
            # Travels as an error group (with its count), so the merged result of every
            # worker can say how many users never started.
            delta.add_error(
                f"start: {self.name}",
                NOT_STARTED,
                "never started: the load ended before the spawn rate reached these users",
                "",
                self.summary.not_started,
            )
        tick = Tick(self._seq, delta, final, cpu, lag)
        self._seq += 1
        self.publish(tick)

    # The C heap's free pages given back (engine/heap.py); a test may count the calls.
    release_memory: Callable[[], object] = staticmethod(trim_heap)

    def _after_tick(self) -> None:
        """Once the users started have stayed the same for a whole interval and at most a
        tenth of them are in an iteration, the burst of their starts is over and its
        temporary objects are gone: the heap they grew is trimmed, once per such plateau
        (a ramp's stages each get one). A few milliseconds, on a tick."""
        started = self.summary.started
        if (
            started
            and started == self._started_before
            and started != self._trimmed_at
            and len(self._busy) * 10 <= self._active
        ):
            self._trimmed_at = started
            self.release_memory()
        self._started_before = started

    def run(self) -> RunSummary:
        """Run the load for ``spec.duration`` (from now) and stop every user. Blocks the
        calling greenlet; publishes a final tick last."""
        monitor = _LoopMonitor(self.interval)
        t0 = time.monotonic()
        deadline = t0 + self.spec.duration
        spawner = gevent.spawn(self._spawner, t0)
        with _graceful_signals(self.interrupt):
            self._run(monitor, t0, deadline, spawner)
        if self.summary.interrupted:
            raise RunInterrupted(self.summary.interrupted)
        return self.summary

    def _run(
        self, monitor: _LoopMonitor, t0: float, deadline: float, spawner: gevent.Greenlet
    ) -> None:
        try:
            next_tick = t0 + self.interval
            while True:
                now = time.monotonic()
                if now >= deadline or self._stopping.is_set() or self._ended:
                    break
                if spawner.dead and not self._users and self.spec.iterations is not None:
                    break  # every user finished its iterations
                self._wake.wait(min(next_tick, deadline) - now)
                self._wake.clear()
                if time.monotonic() >= next_tick:
                    self._tick(monitor, final=False)
                    next_tick += self.interval
                    self._after_tick()
        finally:
            # The final tick only once every user has ended or been named as abandoned: a
            # user still tearing down could otherwise hit the target during the next test.
            self._stop(spawner)
            self.summary.elapsed = time.monotonic() - t0
            self._tick(monitor, final=True)
            monitor.stop()

    def _wait_users(self, timeout: float, interruptible: bool = True) -> bool:
        """Wait until every user has ended, or ``timeout``, or a second interrupt."""
        deadline = time.monotonic() + timeout
        while self._users:
            left = deadline - time.monotonic()
            if left <= 0 or (interruptible and self._hard.is_set()):
                return False
            self._wake.clear()
            if self._users:
                self._wake.wait(min(left, 0.5))  # on_empty and interrupt() set it
        return True

    def _stop(self, spawner: gevent.Greenlet) -> None:
        self._stopping.set()
        spawner.kill(block=True, timeout=1.0)
        # Sleeping users stop at once; iterations in flight may finish (so their requests are
        # counted), within bounds. The open model's idle users wait on their own events.
        self._users.wake_all()
        if self._open is not None:
            self._open.wake_idle()
        try:
            self._stop_users()
        finally:
            # Users spawned but not yet running return at once without a setup: counted
            # once the crowd is empty (or given up on).
            # Shapes and the open model start users as they are needed: a user never needed
            # is no shortfall.
            followed = self.spec.shape is not None or self._open is not None
            self.summary.not_started = 0 if followed else len(self.indices) - self._entered

    def _stop_users(self) -> None:
        if self._wait_users(self.spec.stop_timeout):
            return
        # Still in an iteration (or a setup): killed. Not a failure of the service, but the
        # report must say so: these iterations' requests in flight were never measured.
        tearing = self._tearing
        cut = self.summary.killed = len(self._busy)
        message = (
            f"still in an iteration {self.spec.stop_timeout:g}s after the stop "
            "(stop_timeout): killed, its request in flight not measured"
        )
        for _ in range(cut):
            self.recorder.add_error(f"stop: {self.name}", KILLED, message)
        # Users already tearing down are left to finish it; the others get GreenletExit,
        # then their teardown runs too. Bounded: a teardown stuck on a hanging target is
        # interrupted in the end, and that user is named.
        self._users.kill(timeout=0, spare=tearing.__contains__)
        if self._wait_users(TEARDOWN_TIMEOUT):
            return
        abandoned = sorted(self._users.live_args())
        self._users.kill(timeout=0)
        # Bounded and not cut short by a second interrupt: the interrupted teardowns unwind
        # (their finally blocks run) before the final tick.
        self._wait_users(ABANDON_TIMEOUT, interruptible=False)
        self.summary.abandoned = abandoned
        shown = ", ".join(map(str, abandoned[:20])) + (" …" if len(abandoned) > 20 else "")
        when = (
            "when the run was interrupted a second time"
            if self._hard.is_set()
            else f"{TEARDOWN_TIMEOUT:g}s after being stopped"
        )
        self.recorder.add_error(
            f"stop: {self.name}",
            ABANDONED,
            f"{len(abandoned)} user(s) still in their teardown {when}: teardown interrupted "
            f"(users {shown})",
        )
