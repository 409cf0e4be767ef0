"""Ramp stages: a piecewise-linear profile of a target value (users, or arrivals per second).

A profile starts at 0 and moves linearly to each stage's target over that stage's duration; a
stage whose target equals the previous one holds. Everything here is pure logic: no clock, no
gevent; the runner asks :meth:`Profile.at` for the target at the elapsed time it measured.

Example:
    >>> profile = parse_stages([("30s", 100), ("2m", 100), ("30s", 0)])
    >>> profile.duration, profile.peak
    (180.0, 100.0)
    >>> profile.at(15.0), profile.at(60.0), profile.at(165.0), profile.at(200.0)
    (50.0, 100.0, 50.0, 0.0)
    >>> worker_share(7, workers=3, worker_index=0), worker_share(7, workers=3, worker_index=2)
    (3, 2)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from ..spec import SpecError, parse_duration

MAX_STAGES = 1000


@dataclass(frozen=True)
class Stage:
    duration: float  # seconds, > 0
    target: float  # >= 0


@dataclass(frozen=True)
class Profile:
    """The stages, with the cumulative start time of each."""

    stages: tuple[Stage, ...]

    @property
    def duration(self) -> float:
        return math.fsum(s.duration for s in self.stages)

    @property
    def peak(self) -> float:
        return max(s.target for s in self.stages)

    def at(self, elapsed: float) -> float:
        """The target at ``elapsed`` seconds (0 before the start, the last target after)."""
        if elapsed <= 0:
            return 0.0
        start, previous = 0.0, 0.0
        for stage in self.stages:
            end = start + stage.duration
            if elapsed < end:
                return previous + (stage.target - previous) * (elapsed - start) / stage.duration
            start, previous = end, stage.target
        return previous

    def scaled(self, factor: float) -> Profile:
        """Every target multiplied by ``factor`` (``--swarm-scale``)."""
        return Profile(tuple(Stage(s.duration, s.target * factor) for s in self.stages))

    def with_peak(self, peak: float) -> Profile:
        """The same shape rescaled so its peak is ``peak`` (``--swarm-users=N``)."""
        top = self.peak
        return self.scaled(peak / top) if top > 0 else self

    def integral(self, elapsed: float) -> float:
        """The area under the profile from 0 to ``elapsed``: the number of arrivals due by then
        when the profile is a rate."""
        total, start, previous = 0.0, 0.0, 0.0
        for stage in self.stages:
            end = start + stage.duration
            span = min(elapsed, end) - start
            if span <= 0:
                break
            slope = (stage.target - previous) / stage.duration
            total += previous * span + slope * span * span / 2
            start, previous = end, stage.target
        if elapsed > start:
            total += previous * (elapsed - start)
        return total

    def inverse_integral(self, area: float) -> float | None:
        """The earliest time at which :meth:`integral` reaches ``area``, or None if it never
        does within the profile's duration (the inverse of the cumulative arrivals)."""
        return next(self.times_at(iter((area,))), None)

    def times_at(self, areas: Iterator[float]) -> Iterator[float]:
        """:meth:`inverse_integral` of each of the increasing ``areas``, stopping at the first
        one the profile never reaches. One pass over the stages for the whole sequence, so a
        schedule of n arrivals over s stages costs O(n + s), not O(n * s)."""
        done, start, previous = 0.0, 0.0, 0.0
        stages = iter(self.stages)
        stage = next(stages)
        for area in areas:
            if area <= 0:
                yield 0.0
                continue
            while True:
                a = (stage.target - previous) / stage.duration / 2  # area(s) = b*s + a*s^2
                b = previous
                full = b * stage.duration + a * stage.duration**2
                # A relative tolerance: the total area summed stage by stage may round a few
                # ulps below the same area computed by integral().
                if done + full >= area - 1e-12 * area:
                    break
                done += full
                start, previous = start + stage.duration, stage.target
                following = next(stages, None)
                if following is None:
                    return
                stage = following
            need = area - done
            if abs(a) < 1e-15:
                s = need / b if b > 0 else 0.0
            else:
                # The root of a*s^2 + b*s - need = 0 in [0, duration], written so that it
                # loses no precision when a is tiny against b. The denominator underflows to
                # 0 for a subnormal need on a ramp from 0: then s = sqrt(need / a).
                denominator = b + math.sqrt(max(b * b + 4 * a * need, 0.0))
                if denominator > 0:
                    s = 2 * need / denominator
                else:
                    s = math.sqrt(need / a) if a > 0 else 0.0
            yield start + min(max(s, 0.0), stage.duration)


def parse_stages(value: object, *, argument: str = "stages") -> Profile:
    """``[(duration, target), ...]`` from a marker -> a validated :class:`Profile`.

    Raises :class:`SpecError` naming ``argument`` and the offending stage."""
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise SpecError(
            f"load({argument}={value!r}): {argument} must be a list of (duration, target) pairs"
        )
    items: Sequence[object] = list(value)
    if not items:
        raise SpecError(f"load({argument}=[]): {argument} needs at least one stage")
    if len(items) > MAX_STAGES:
        raise SpecError(f"load({argument}=...): at most {MAX_STAGES} stages, got {len(items)}")
    stages = []
    for number, item in enumerate(items, 1):
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise SpecError(
                f"load({argument}=...): stage {number} must be a (duration, target) pair, "
                f"got {item!r}"
            )
        duration_value, target = item
        if not isinstance(duration_value, str | int | float) or isinstance(duration_value, bool):
            raise SpecError(
                f"load({argument}=...): stage {number} duration must be a duration such as "
                f"'30s', got {duration_value!r}"
            )
        try:
            duration = parse_duration(duration_value, argument=f"{argument}[{number - 1}]")
        except SpecError as exc:
            raise SpecError(f"load({argument}=...): stage {number}: {exc}") from None
        if (
            isinstance(target, bool)
            or not isinstance(target, int | float)
            or not math.isfinite(target)
            or target < 0
        ):
            raise SpecError(
                f"load({argument}=...): stage {number} target must be a number >= 0, got {target!r}"
            )
        stages.append(Stage(duration, float(target)))
    profile = Profile(tuple(stages))
    if profile.peak <= 0:
        raise SpecError(f"load({argument}=...): every stage has target 0: nothing would run")
    return profile


def worker_share(total: int, *, workers: int, worker_index: int) -> int:
    """This worker's part of ``total`` users when the swarm's users are numbered 0..total-1 and
    user k runs on worker ``k % workers``: the parts always sum to ``total``, and each user's
    index stays unique across the swarm."""
    return total // workers + (1 if worker_index < total % workers else 0)
