"""Unit tests for pytest_swarm.engine.runner: one process's users run, paused, stopped, killed
and torn down, with what they record published tick by tick.

The runner is driven in-process from the main greenlet (the test process is not gevent-patched)
with a fake user factory, a real Recorder and a publish callback that keeps the ticks. Runs last
well under a second; a ``gevent.Timeout`` bounds each one, so a run that fails to end fails the
test instead of hanging it.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

import gevent
import pytest
from gevent.event import Event

from pytest_swarm.engine.runner import (
    RunInterrupted,
    Runner,
    RunSummary,
    Tick,
    UserInfo,
    _LoopMonitor,
)
from pytest_swarm.spec import LoadSpec, WaitSpec, parse_wait
from pytest_swarm.stats.aggregator import Aggregator
from pytest_swarm.stats.recorder import Recorder
from pytest_swarm.stats.snapshot import Snapshot

NAME = "test_load"
GUARD = 10.0  # seconds: far beyond any run here, far below the long durations some use

Body = Callable[[UserInfo], None]


def idle(info: UserInfo) -> None:
    """A body that does nothing."""


class FakeUser:
    def __init__(self, info: UserInfo, factory: Factory) -> None:
        self.info = info
        self.factory = factory
        self.iterations = 0
        self.teardowns = 0

    def iterate(self) -> None:
        self.iterations += 1
        self.factory.body(self.info)

    def teardown(self) -> list[BaseException]:
        self.teardowns += 1
        self.factory.on_teardown(self.info)
        return self.factory.teardown_errors


class Factory:
    """Builds FakeUsers; ``setup`` runs first and may raise, as a failing fixture would."""

    def __init__(
        self,
        body: Body = idle,
        setup: Body = idle,
        teardown_errors: list[BaseException] | None = None,
        on_teardown: Body = idle,
    ) -> None:
        self.body = body
        self.setup = setup
        self.on_teardown = on_teardown
        self.teardown_errors = teardown_errors or []
        self.setups: list[int] = []
        self.users: list[FakeUser] = []

    def __call__(self, info: UserInfo) -> FakeUser:
        self.setups.append(info.index)
        self.setup(info)
        user = FakeUser(info, self)
        self.users.append(user)
        return user


def load(
    *,
    users: int = 5,
    rate: float = 1000.0,
    duration: float = 0.3,
    wait: WaitSpec = (5, 10),
    stop_timeout: float = 1.0,
    iterations: int | None = None,
) -> LoadSpec:
    return LoadSpec(
        users=users,
        rate=rate,
        duration=duration,
        wait=parse_wait(wait),
        stop_timeout=stop_timeout,
        iterations=iterations,
    )


class Run:
    """A Runner with its factory and the ticks it publishes."""

    def __init__(self, spec: LoadSpec, factory: Factory, *, interval: float = 1.0) -> None:
        self.factory = factory
        self.ticks: list[Tick] = []
        self.runner = Runner(
            spec=spec,
            indices=list(range(spec.users)),
            rate=spec.rate,
            factory=factory,
            recorder=Recorder(),
            publish=self.ticks.append,
            name=NAME,
            interval=interval,
        )

    def __call__(self) -> RunSummary:
        with gevent.Timeout(GUARD):
            return self.runner.run()

    @property
    def totals(self) -> Snapshot:
        total = Snapshot()
        for tick in self.ticks:
            total.merge(tick.delta)
        return total

    def iterations(self) -> list[int]:
        return sorted(user.iterations for user in self.factory.users)

    def teardowns(self) -> list[int]:
        return [user.teardowns for user in self.factory.users]


def test_idle_users_are_stopped_at_the_end_of_the_run() -> None:
    run = Run(load(users=5, duration=0.3, wait=(5, 10), stop_timeout=1.0), Factory())
    summary = run()
    assert summary.started == 5
    assert sorted(user.info.index for user in run.factory.users) == [0, 1, 2, 3, 4]
    assert run.iterations() == [1] * 5  # each one then waited 5-10 s, cut short by the stop
    assert run.teardowns() == [1] * 5
    assert summary.killed == 0
    assert summary.stop_reason == ""
    assert run.totals.iterations == 5
    assert run.ticks[-1].delta.users == 0


def test_stop_from_another_greenlet_ends_a_long_run() -> None:
    users = 3
    all_in = Event()
    entered: list[int] = []

    def body(info: UserInfo) -> None:
        entered.append(info.index)
        if len(entered) == users:
            all_in.set()

    run = Run(load(users=users, duration=30.0, wait=(5, 10)), Factory(body))

    def controller() -> None:
        all_in.wait()
        run.runner.stop("controller asked")
        run.runner.stop("asked again")

    stopper = gevent.spawn(controller)
    summary = run()
    assert stopper.dead
    assert summary.stop_reason == "controller asked"
    assert summary.killed == 0
    assert run.iterations() == [1] * users
    assert run.teardowns() == [1] * users
    assert run.ticks[-1].final


def test_an_iteration_in_flight_at_the_stop_finishes_and_the_user_stops_without_waiting() -> None:
    """User 0 is still in its body when the run stops; it is let go only once the idle user
    has been stopped, so nothing is left to wake it should it start its 5-10 s wait."""
    entered: list[int] = []
    both_in = Event()
    release = Event()
    others_stopped = Event()

    def body(info: UserInfo) -> None:
        entered.append(info.index)
        if len(entered) == 2:
            both_in.set()
        if info.index == 0:
            release.wait()
            info.recorder.record("GET /slow", 0.5)

    def on_teardown(info: UserInfo) -> None:
        if info.index == 1:
            others_stopped.set()

    run = Run(
        load(users=2, duration=30.0, wait=(5, 10), stop_timeout=1.0),
        Factory(body, on_teardown=on_teardown),
    )

    def controller() -> None:
        both_in.wait()
        run.runner.stop("controller asked")
        others_stopped.wait()
        release.set()

    gevent.spawn(controller)
    summary = run()
    assert summary.killed == 0
    assert run.iterations() == [1, 1]
    assert run.teardowns() == [1, 1]
    assert run.totals.entries["GET /slow"].hist.total == 1


def test_a_body_that_ignores_the_stop_is_killed_and_torn_down() -> None:
    raised: list[str] = []

    def body(info: UserInfo) -> None:
        if info.index == 0:
            try:
                Event().wait()
            except BaseException as exc:
                raised.append(type(exc).__name__)
                raise

    run = Run(load(users=2, duration=0.1, wait=(5, 10), stop_timeout=0.2), Factory(body))
    summary = run()
    assert summary.killed == 1
    assert raised == ["GreenletExit"]
    assert run.teardowns() == [1, 1]
    # Being killed is not a failed request, but the report lists it (with the count).
    assert run.totals.total().failures == 0
    ((key, group),) = run.totals.errors.items()
    assert key[:2] == (f"stop: {NAME}", "Killed") and "0.2s after the stop" in key[2]
    assert group.count == 1
    assert run.ticks[-1].delta.users == 0


def test_the_iterations_limit_ends_the_run_when_every_user_is_done() -> None:
    spec = load(users=3, duration=30.0, wait=None, iterations=4)
    # A report interval longer than the guard around the run: the run must end when the
    # last user is done, not at its next tick.
    run = Run(spec, Factory(), interval=60.0)
    summary = run()
    assert run.iterations() == [4, 4, 4]
    assert run.teardowns() == [1, 1, 1]
    assert run.totals.iterations == 12
    assert summary.stop_reason == ""
    assert summary.killed == 0


@pytest.mark.parametrize(
    ("error", "kind", "message"),
    [
        (RuntimeError("database down"), "RuntimeError", "database down"),
        (pytest.fail.Exception("fixture failed"), "Failed", "fixture failed"),
    ],
)
def test_a_setup_failure_is_counted_and_recorded_as_an_error(
    error: BaseException, kind: str, message: str
) -> None:
    def setup(info: UserInfo) -> None:
        if info.index == 1:
            raise error

    run = Run(load(users=3, duration=0.2), Factory(setup=setup))
    summary = run()
    assert summary.setup_failed == 1
    assert summary.started == 2
    assert sorted(user.info.index for user in run.factory.users) == [0, 2]
    assert run.teardowns() == [1, 1]
    totals = run.totals
    assert totals.setup_failures == 1
    assert {key: group.count for key, group in totals.errors.items()} == {
        (f"setup: {NAME}", kind, message): 1
    }
    assert totals.entries == {}  # not a request


@pytest.mark.parametrize(
    ("error", "kind"),
    [(ValueError("boom"), "ValueError"), (pytest.fail.Exception("boom"), "Failed")],
)
def test_a_failing_body_is_recorded_and_the_user_carries_on(
    error: BaseException, kind: str
) -> None:
    def body(info: UserInfo) -> None:
        if info.iteration == 0:
            raise error

    run = Run(load(users=1, duration=30.0, wait=None, iterations=3), Factory(body), interval=0.05)
    run()
    assert run.iterations() == [3]
    totals = run.totals
    assert totals.iterations == 3
    assert totals.entries[NAME].failures == 1
    assert totals.entries[NAME].hist.total == 1
    assert {key: group.count for key, group in totals.errors.items()} == {(NAME, kind, "boom"): 1}


class RecordedError(Exception):
    """A failure a client already recorded (e.g. inside catch_response)."""

    _swarm_recorded = True


def test_a_failure_already_recorded_by_a_client_is_not_counted_again() -> None:
    def body(info: UserInfo) -> None:
        raise RecordedError("500 from /cart")

    run = Run(load(users=1, duration=30.0, wait=None, iterations=2), Factory(body), interval=0.05)
    run()
    assert run.iterations() == [2]
    totals = run.totals
    assert totals.iterations == 2
    assert totals.entries == {}
    assert totals.errors == {}


def test_a_broken_wait_function_stops_that_user_and_is_recorded() -> None:
    calls: list[None] = []

    def wait() -> float:
        calls.append(None)
        return -1.0 if len(calls) == 1 else 0.0

    run = Run(load(users=2, duration=0.2, wait=wait), Factory())
    summary = run()
    broken, other = run.iterations()
    assert broken == 1
    assert other > 1  # the other user kept iterating with zero wait
    assert run.teardowns() == [1, 1]
    assert summary.killed == 0
    totals = run.totals
    assert totals.entries[NAME].failures == 1
    [group] = totals.errors.values()
    assert (group.name, group.kind, group.count) == (NAME, "SpecError", 1)
    assert group.message.startswith("load(wait=")
    assert "returned -1.0" in group.message


def test_teardown_errors_are_summarised_and_recorded() -> None:
    factory = Factory(teardown_errors=[OSError("socket already closed")])
    run = Run(load(users=2, duration=0.1), factory)
    summary = run()
    assert summary.teardown_errors == ["OSError: socket already closed"] * 2
    key = (f"teardown: {NAME}", "OSError", "socket already closed")
    assert run.totals.errors[key].count == 2


def test_a_user_spawned_just_before_a_stop_is_not_set_up() -> None:
    """All users are spawned in one turn; the first one's setup stops the run before the
    others start."""
    run: Run

    def setup(info: UserInfo) -> None:
        run.runner.stop("stopped during setup")

    run = Run(load(users=5, rate=1e9, duration=30.0), Factory(setup=setup))
    summary = run()
    assert run.factory.setups == [0]
    assert summary.started == 1
    assert run.iterations() == [0]
    assert run.teardowns() == [1]
    assert summary.stop_reason == "stopped during setup"


def test_the_final_tick_is_the_last_one_published() -> None:
    def body(info: UserInfo) -> None:
        info.recorder.record("GET /", 0.001)

    run = Run(load(users=2, duration=0.3, wait=(5, 10)), Factory(body), interval=0.05)
    run()
    ticks = run.ticks
    assert len(ticks) >= 2
    assert [tick.final for tick in ticks] == [False] * (len(ticks) - 1) + [True]
    assert [tick.seq for tick in ticks] == list(range(len(ticks)))
    assert ticks[-1].delta.users == 0
    assert run.totals.entries["GET /"].hist.total == 2


def test_a_killed_users_teardown_ends_before_the_final_tick() -> None:
    # Killed in its iteration, the user tears down (a logout to a slow target, here 0.3 s):
    # the final tick waits for that teardown, so nothing of this test still runs after it.
    done: list[str] = []
    published_while_tearing: list[bool] = []

    def body(info: UserInfo) -> None:
        Event().wait()  # ignores the stop

    def on_teardown(info: UserInfo) -> None:
        gevent.sleep(0.3)
        done.append("teardown")

    factory = Factory(body, on_teardown=on_teardown)
    run = Run(load(users=1, duration=0.1, stop_timeout=0.1), factory)
    run.runner.publish = lambda tick: (
        published_while_tearing.append(tick.final and not done),
        run.ticks.append(tick),
    )
    summary = run()
    assert summary.killed == 1 and summary.abandoned == []
    assert done == ["teardown"]
    assert published_while_tearing[-1] is False


def test_a_teardown_that_never_ends_is_interrupted_and_its_user_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import pytest_swarm.engine.runner as runner_module

    monkeypatch.setattr(runner_module, "TEARDOWN_TIMEOUT", 0.2)
    interrupted: list[int] = []

    def body(info: UserInfo) -> None:
        Event().wait()

    def on_teardown(info: UserInfo) -> None:
        if info.index in (1, 2):
            try:
                Event().wait()  # a teardown stuck on a hanging target
            except gevent.GreenletExit:
                interrupted.append(info.index)
                raise

    run = Run(load(users=3, duration=0.1, stop_timeout=0.1), Factory(body, on_teardown=on_teardown))
    summary = run()
    assert summary.abandoned == [1, 2]
    assert sorted(interrupted) == [1, 2]
    groups = [g for g in run.totals.errors.values() if g.kind == "Abandoned"]
    assert len(groups) == 1 and "(users 1, 2)" in groups[0].message
    # Nothing of the run is left behind once run() returned.
    assert len(run.runner._users) == 0


def test_keyboard_interrupt_in_a_body_interrupts_the_run_and_every_user_tears_down() -> None:
    def body(info: UserInfo) -> None:
        if info.index == 0 and info.iteration == 3:
            raise KeyboardInterrupt

    run = Run(load(users=3, duration=60.0, wait=(0.01, 0.01)), Factory(body))
    with pytest.raises(RunInterrupted, match="KeyboardInterrupt in the body of user 0"):
        run()
    assert run.teardowns() == [1, 1, 1]
    assert run.ticks[-1].final


def test_system_exit_in_a_body_is_a_failure_and_the_user_goes_on() -> None:
    def body(info: UserInfo) -> None:
        if info.iteration == 0:
            raise SystemExit(3)

    run = Run(load(users=2, duration=0.3, wait=(0.01, 0.01)), Factory(body))
    run()
    assert min(run.iterations()) > 1  # the users went on
    ((_, group),) = run.totals.errors.items()
    assert (group.kind, group.message, group.count) == ("SystemExit", "3", 2)


def test_a_signal_interrupts_the_run_gracefully() -> None:
    # SIGTERM sent to this very process while the run lasts: the runner's handler stops the
    # users in order (no KeyboardInterrupt raised inside a user), then run() raises.
    def body(info: UserInfo) -> None:
        if info.index == 0 and info.iteration == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.getsignal(signal.SIGTERM)
    run = Run(load(users=2, duration=60.0, wait=(0.01, 0.01)), Factory(body))
    with pytest.raises(RunInterrupted, match="SIGTERM"):
        run()
    assert run.teardowns() == [1, 1]
    assert signal.getsignal(signal.SIGTERM) is previous  # restored


def test_the_monitor_folds_a_short_final_interval_into_the_one_before() -> None:
    # 1 s at 10 % CPU, then a 20 ms tail at 100 % (the stop and teardowns): alone the tail
    # reads 100 %, which flagged trivial runs; weighted with the interval before it, 11.8 %.
    clock = iter([0.0, 1.0, 1.02, 2.02, 3.02]).__next__
    cpu = iter([0.0, 0.1, 0.12, 0.22, 0.32]).__next__
    monitor = _LoopMonitor(1.0, clock=clock, cpu_clock=cpu, watch=False)
    assert monitor.sample()[0] == pytest.approx(10.0)
    assert monitor.sample(final=True)[0] == pytest.approx(0.12 / 1.02 * 100)
    # A final interval of normal length is its own measurement.
    assert monitor.sample()[0] == pytest.approx(10.0)
    assert monitor.sample(final=True)[0] == pytest.approx(10.0)


def test_a_cpu_bound_body_shows_in_the_health_figures() -> None:
    # Each iteration holds the event loop for 0.4 s: the monitor's 0.1 s sleep wakes at
    # least 0.3 s late, and the process is busy. (A monitor reporting zeros fails here.)
    def body(info: UserInfo) -> None:
        end = time.perf_counter() + 0.4
        while time.perf_counter() < end:
            pass

    run = Run(load(users=1, duration=1.5, wait=(0, 0)), Factory(body), interval=0.5)
    run()
    assert max(t.lag for t in run.ticks) >= 0.3
    assert max(t.cpu for t in run.ticks) > 0
    agg = Aggregator(start=0.0)
    for tick in run.ticks:
        agg.set_health("main", tick.cpu, tick.lag)
    assert agg.health().saturated


# -- the open model ------------------------------------------------------------------------------


def open_run(
    factory: Factory,
    *,
    arrival_rate: float = 100.0,
    duration: float = 0.5,
    max_users: int = 5,
    indices: list[int] | None = None,
    workers: int = 1,
) -> Run:
    from pytest_swarm.spec import SpecOverrides, build_spec

    spec = build_spec(
        arrival_rate=arrival_rate,
        max_users=max_users,
        duration=duration,
        stop_timeout=1.0,
        overrides=SpecOverrides(),
    )
    run = Run(spec, factory, interval=0.2)
    if indices is not None:
        run.runner = Runner(
            spec=spec,
            indices=indices,
            rate=spec.rate,
            factory=factory,
            recorder=Recorder(),
            publish=run.ticks.append,
            name=NAME,
            interval=0.2,
            workers=workers,
        )
    return run


def test_open_model_starts_every_scheduled_iteration_or_counts_it_dropped() -> None:
    starts: list[float] = []

    def body(info: UserInfo) -> None:
        starts.append(time.monotonic())
        info.recorder.record("GET /", 0.001)

    run = open_run(Factory(body), arrival_rate=100.0, duration=0.5)
    run()
    totals = run.totals
    # 100/s for 0.5 s: arrivals 0..49 are due; each ran or was counted as dropped.
    assert len(starts) + totals.dropped == 50
    assert totals.iteration.total == len(starts)
    # Users are built when first needed: a free user takes the next arrival, so a fast body
    # never needs the whole pool.
    assert len(run.factory.setups) <= 5
    assert sorted(run.factory.setups) == sorted(set(run.factory.setups))


def test_open_model_grows_the_pool_to_max_users_and_no_further() -> None:
    release = Event()

    def body(info: UserInfo) -> None:
        release.wait()  # a target that never answers until the end

    run = open_run(Factory(body), arrival_rate=200.0, duration=0.3, max_users=3)
    gevent.spawn_later(0.4, release.set)  # the stop (0.3 s) cuts them off otherwise: 1 s later
    run()
    assert sorted(run.factory.setups) == [0, 1, 2]  # three users, never more
    # 60 arrivals, 3 ran: every other one waited in the queue and was dropped at the end.
    totals = run.totals
    assert totals.iteration.total + totals.dropped == 60
    assert totals.dropped >= 57 - 3


def test_iteration_times_run_from_the_due_time_so_a_stall_shows() -> None:
    # One user; the first iteration stalls 0.3 s; arrivals keep coming at 50/s and queue up.
    calls: list[int] = []

    def body(info: UserInfo) -> None:
        calls.append(1)
        if len(calls) == 1:
            gevent.sleep(0.3)  # the stalled target (the simulated fault, not synchronisation)
        info.recorder.record("GET /", 0.001)  # the service time a client would record

    run = open_run(Factory(body), arrival_rate=50.0, duration=0.6, max_users=1)
    run()
    totals = run.totals
    iterations = totals.iteration
    # The ~15 arrivals due during the stall waited for the one user: their corrected times
    # include that wait. Measured from their own start (the old build), only the stalled
    # iteration itself would be long.
    long = sum(n for value, n in iterations.items() if value >= 100_000)  # >= 100 ms, in µs
    assert long >= 5
    assert totals.late >= 5
    assert totals.entries["GET /"].hist.max_us <= 1_001  # service time untouched
    assert totals.dropped == 30 - iterations.total


def test_under_xdist_a_worker_takes_its_interleaved_share_of_the_arrivals() -> None:
    starts: list[float] = []

    def body(info: UserInfo) -> None:
        starts.append(time.monotonic())
        info.recorder.record("GET /", 0.001)

    # Worker 1 of 2: users 1 and 3 of the swarm's 4, arrivals 1, 3, 5, ... of 40.
    run = open_run(
        Factory(body), arrival_rate=80.0, duration=0.5, max_users=4, indices=[1, 3], workers=2
    )
    run()
    assert set(run.factory.setups) <= {1, 3}
    assert len(starts) + run.totals.dropped == 20


def test_open_model_idle_users_end_at_once_at_the_stop_not_after_stop_timeout() -> None:
    # A stop_timeout far longer than the run: idle pool users waiting for an arrival must be
    # woken by the stop (they used to sit out the whole stop_timeout, then be killed).
    from pytest_swarm.spec import SpecOverrides, build_spec

    spec = build_spec(
        arrival_rate=20.0, max_users=3, duration=0.3, stop_timeout=30, overrides=SpecOverrides()
    )
    run = Run(spec, Factory(), interval=0.2)
    summary = run()
    assert summary.elapsed < 30 and summary.killed == 0
    assert run.teardowns() == [1] * len(run.factory.users)
