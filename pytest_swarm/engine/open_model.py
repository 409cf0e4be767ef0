"""The open model in one process: iterations start on the arrival schedule, whatever the target.

A dispatcher greenlet walks this process's due times (``workload/arrivals.py``: the swarm's
arrivals interleaved across workers) and hands each one to the :class:`~pytest_swarm.workload.
pool.Pool`: a free user is woken for it, or the pool grows a user (its fixtures built then), or
it waits for the next user to free up. Each iteration's time is recorded from its **due** start
to its end, so a target that stalls shows in ``result.iterations`` (coordinated omission
corrected, as wrk2 does); the requests inside keep their own service times.

The runner (``runner.py``) owns the users' setup, body and teardown; this module only decides
when and on which user an iteration runs.
"""

from __future__ import annotations

import random
import time
from typing import TYPE_CHECKING

import gevent
from gevent.event import Event

from ..workload.arrivals import due_times
from ..workload.pool import Pool

if TYPE_CHECKING:
    from ..workload.models import OpenModel
    from .runner import Runner, VirtualUser

# Arrivals handed out back to back (the dispatcher behind its schedule) before it yields to the
# users once: a catch-up burst must not keep the report ticks and the users from running.
BURST = 64


class OpenLoop:
    """The dispatcher and the pool users of one process's share of an open-model load."""

    def __init__(self, runner: Runner, model: OpenModel) -> None:
        self.runner = runner
        self.model = model
        self.pool = Pool(len(runner.indices))
        self._wakes: dict[int, Event] = {}  # idle users' wake-up events, by user index
        self._slots = sorted(runner.indices, reverse=True)  # indices not yet built, lowest last
        self._reported = (0, 0)  # (dropped, late) already added to the recorder

    def schedule(self) -> tuple[int, int]:
        """(this process's place, processes taking arrivals): user indices are dealt round
        robin (``split_users``), so the lowest index this process owns is its place."""
        workers = max(self.runner.workers, 1)
        if not self.runner.indices:
            return -1, workers
        return self.runner.indices[0] % workers, workers

    def dispatch(self, t0: float) -> None:
        """Hand every due iteration to the pool at its due time (runs until the schedule ends
        or the runner kills this greenlet at the stop)."""
        place, workers = self.schedule()
        if place < 0:
            return  # no user here: the controller gave this worker nothing to run
        model, pool, clock = self.model, self.pool, time.monotonic
        # Seeded per test and worker: a Poisson run is reproducible, and the workers draw
        # independent processes (their superposition is one at the full rate).
        rng = random.Random(f"{self.runner.name}:{place}/{workers}") if model.poisson else None
        stopping = self.runner._stopping
        burst = 0
        for due in due_times(
            model.profile, workers=workers, worker_index=place, poisson=model.poisson, rng=rng
        ):
            at = t0 + due
            now = clock()
            if at > now:
                burst = 0
                # A libev timer fires against the loop's cached time, possibly early: sleep
                # again for what is left rather than dispatch ahead of schedule.
                while at > now:
                    gevent.sleep(at - now)
                    now = clock()
            else:
                burst += 1
                if burst >= BURST:
                    burst = 0
                    gevent.sleep(0)
            if stopping.is_set():
                return
            decision = pool.due(at, now=now)
            if decision == "run":
                wake = self._wakes.get(pool.woken())
                if wake is not None:
                    wake.set()
            elif decision == "grow":
                self.runner._users.spawn(self.user, self._slots.pop())

    def user(self, index: int) -> None:
        """One pool user: built when first needed, then runs due iterations until the stop."""
        runner, pool = self.runner, self.pool
        if runner._stopping.is_set():
            return
        user = runner.setup_user(index)
        if user is None:
            pool.build_failed()
            self._slots.append(index)  # a later arrival builds it again
            return
        try:
            self._run(index, user)
        finally:
            self._wakes.pop(index, None)
            runner.teardown_user(index, user)

    def _run(self, index: int, user: VirtualUser) -> None:
        runner, pool, clock = self.runner, self.pool, time.monotonic
        stopping, record = runner._stopping, runner.recorder.record_iteration
        wake = self._wakes[index] = Event()
        built = True
        while not stopping.is_set():
            due = pool.ready(index, now=clock(), built=built)
            built = False
            if due is None:
                wake.clear()
                wake.wait()  # set by the dispatcher (an arrival for this user) or the stop
                continue
            if runner.iterate_once(index, user) is None:
                return
            # Coordinated omission: from when the iteration was due, not when it began.
            record(clock() - due)

    def wake_idle(self) -> None:
        """The stop: idle users leave their wait and end."""
        for wake in list(self._wakes.values()):
            wake.set()

    def report(self, final: bool) -> None:
        """Move the pool's dropped and late counts into the recorder (before each delta). At
        the final delta, iterations still waiting are dropped: they never ran."""
        pool = self.pool
        if final:
            pool.close()
        dropped, late = self._reported
        recorder = self.runner.recorder
        recorder.dropped += pool.dropped - dropped
        recorder.late += pool.late - late
        self._reported = (pool.dropped, pool.late)
