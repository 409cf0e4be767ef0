"""Open-model arrival schedules: when each iteration is due.

The swarm's arrivals are numbered k = 0, 1, 2, ...; arrival k is due when the cumulative rate
(the integral of the rate profile) reaches k. Worker ``w`` of ``n`` takes the arrivals with
``k % n == w``: the workers' schedules interleave, so the swarm's arrivals stay evenly spaced
and their total is the target whatever ``n`` is. Poisson arrivals are the same construction on
the sum of unit exponential gaps (time rescaling of an inhomogeneous Poisson process); each
worker then draws its own process at ``1/n`` of the rate, and the superposition of independent
Poisson processes is again one at the full rate.

Example:
    >>> four = constant(4.0, duration=1.0)
    >>> list(due_times(four, workers=1, worker_index=0))
    [0.0, 0.25, 0.5, 0.75]
    >>> list(due_times(four, workers=2, worker_index=1))
    [0.25, 0.75]
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator

from .stages import Profile, Stage


def due_times(
    profile: Profile,
    *,
    workers: int,
    worker_index: int,
    poisson: bool = False,
    rng: random.Random | None = None,
) -> Iterator[float]:
    """Due times (seconds from the start, increasing) of this worker's arrivals, within the
    profile's duration. Lazy: a long run never holds its schedule in memory."""
    end = profile.duration
    if poisson:
        draw = rng or random.Random()
        share = profile.scaled(1.0 / workers)
        times = share.times_at(_cumulative_exponentials(draw))
    else:
        times = profile.times_at(itertools.count(float(worker_index), float(workers)))
    for due in times:
        if due >= end:
            return
        yield due


def _cumulative_exponentials(draw: random.Random) -> Iterator[float]:
    area = 0.0
    while True:
        area += draw.expovariate(1.0)
        yield area


def constant(rate: float, duration: float) -> Profile:
    """A constant-rate profile: ``rate`` arrivals per second from the first instant.

    A profile starts at 0, so a constant rate is a stage of ``rate`` preceded by an instant
    ramp; here the ramp is avoided by making the only stage hold ``rate`` from time 0."""
    return _Constant((Stage(duration, rate),))


class _Constant(Profile):
    """A profile whose only stage holds its target from time 0 (no ramp from 0)."""

    def at(self, elapsed: float) -> float:
        return self.stages[0].target if 0 <= elapsed < self.duration else 0.0

    def integral(self, elapsed: float) -> float:
        return self.stages[0].target * min(max(elapsed, 0.0), self.duration)

    def times_at(self, areas: Iterator[float]) -> Iterator[float]:
        rate = self.stages[0].target
        for area in areas:
            due = max(area, 0.0) / rate
            if due > self.duration:
                return
            yield due

    def scaled(self, factor: float) -> Profile:
        return _Constant((Stage(self.duration, self.stages[0].target * factor),))
