"""The open model's pool of users and queue of due iterations (pure logic: the caller passes
every time, nothing here sleeps or reads a clock).

Iterations become due on a schedule (``arrivals.py``) whatever the target does. A due
iteration runs on a free user; when none is free it waits in a FIFO queue for the next user
that frees up, and the pool grows (up to its capacity) when no user is free or already being
built for it. An iteration is dropped, and counted, only when it could not start within
:data:`QUEUE_TIMEOUT` of its due time, when :data:`MAX_QUEUE` iterations already wait, or when
the load ends before a user got to it. One that starts more than :data:`LATE_AFTER` after its
due time counts as late (it ran; its corrected time includes the wait).

Example: two users, an arrival every 10 ms, and a target that stalls the first iterations:

    >>> pool = Pool(capacity=2)
    >>> pool.due(0.00, now=0.00)          # nobody yet: the pool grows a user for it
    'grow'
    >>> pool.ready(0, now=0.001, built=True)   # user 0 is built and takes it
    0.0
    >>> pool.due(0.01, now=0.01), pool.ready(1, now=0.011, built=True)
    ('grow', 0.01)
    >>> pool.due(0.02, now=0.02), pool.due(0.03, now=0.03)   # both users stalled: queued
    ('queued', 'queued')
    >>> pool.ready(0, now=0.5), pool.late   # a user frees up: the oldest due runs, late
    (0.02, 1)
"""

from __future__ import annotations

from collections import deque
from typing import Literal

QUEUE_TIMEOUT = 10.0
"""Seconds an iteration may wait for a free user before it is dropped. Ten times the 1 s stall
that must drop nothing (at 100 iterations/s with 5 users, the oldest waits about 1 s), and long
enough for any stall worth measuring: a dropped iteration is never in the figures, so the bound
is generous; past it the target is down, and the dropped count says so."""

MAX_QUEUE = 100_000
"""Iterations that may wait at once in one process (a float each: under 1 MiB). At high rates
this is the tighter bound (10,000/s fill it in 10 s); past it the oldest is dropped."""

LATE_AFTER = 0.005
"""An iteration that starts more than 5 ms after its due time is late. Above gevent's timer
granularity and an idle event loop's jitter (a millisecond or less), below any latency objective
worth setting: a late start means the schedule bent (no free user, or a starved generator)."""

Decision = Literal["run", "grow", "queued"]


class Pool:
    """Users of one process (slots ``0 .. capacity-1``) and the iterations waiting for them.

    The runner calls :meth:`due` when an iteration becomes due, and :meth:`ready` whenever a
    user is free (just built, or done with an iteration); :meth:`close` at the stop."""

    def __init__(
        self,
        capacity: int,
        *,
        queue_timeout: float = QUEUE_TIMEOUT,
        max_queue: int = MAX_QUEUE,
        late_after: float = LATE_AFTER,
    ) -> None:
        self.capacity = capacity
        self.queue_timeout = queue_timeout
        self.max_queue = max_queue
        self.late_after = late_after
        self.queue: deque[float] = deque()
        self.idle: list[int] = []  # free users, the most recently freed last
        self.size = 0  # users built or being built
        self.building = 0  # users being built (each will take a queued iteration)
        self.dropped = 0
        self.late = 0
        self.started = 0

    def due(self, due: float, *, now: float) -> Decision | float:
        """An iteration became due at ``due``. Returns ``"run"`` when a free user will take it
        (:attr:`idle`'s last: the caller wakes that user, which then calls :meth:`ready`),
        ``"grow"`` when the caller must build a new user (it takes the queue's head when
        ready), ``"queued"`` when it waits for a busy user. The first return of :meth:`ready`
        in the doctest shows a user taking the due time."""
        self._expire(now)
        if len(self.queue) >= self.max_queue:
            self.queue.popleft()
            self.dropped += 1
        self.queue.append(due)
        if self.idle:
            return "run"
        if len(self.queue) > self.building and self.size < self.capacity:
            self.size += 1
            self.building += 1
            return "grow"
        return "queued"

    def woken(self) -> int:
        """The free user the caller wakes after :meth:`due` returned ``"run"``."""
        return self.idle.pop()

    def ready(self, user: int, *, now: float, built: bool = False) -> float | None:
        """User ``user`` is free at ``now`` (``built``: it just finished its setup). Returns
        the due time of the iteration it runs now, or None: it is idle until woken."""
        if built:
            self.building -= 1
        self._expire(now)
        if not self.queue:
            if user not in self.idle:
                self.idle.append(user)
            return None
        due = self.queue.popleft()
        self.started += 1
        if now - due > self.late_after:
            self.late += 1
        return due

    def build_failed(self) -> None:
        """A user's setup failed: its slot is free again (a later arrival may retry)."""
        self.building -= 1
        self.size -= 1

    def close(self) -> int:
        """The load ended: iterations still waiting are dropped (counted). Returns how many."""
        left = len(self.queue)
        self.queue.clear()
        self.dropped += left
        return left

    def _expire(self, now: float) -> None:
        queue, oldest = self.queue, now - self.queue_timeout
        while queue and queue[0] < oldest:
            queue.popleft()
            self.dropped += 1
