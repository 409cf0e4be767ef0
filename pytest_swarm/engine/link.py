"""The link between a process running users and the aggregator that merges their statistics.

A :class:`Link` is what the engine talks to: ``begin`` waits for the start barrier and says which
users this process runs, ``publish`` ships each delta, ``finish`` returns the merged result of
the whole swarm. :class:`LocalLink` is the one-process implementation (the aggregator lives in
this process); the distributed implementation (``cluster.agent``) speaks ZeroMQ to the xdist
controller. Both feed the same :class:`~pytest_swarm.stats.aggregator.Aggregator`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ..spec import LoadSpec
from ..stats.aggregator import Aggregator
from ..stats.result import RunResult

if TYPE_CHECKING:  # the runner imports gevent, which the xdist controller never needs
    from .runner import Tick


@dataclass(frozen=True)
class Share:
    """This process's part of a load test."""

    indices: list[int]
    rate: float
    worker: str
    workers: int


@dataclass(frozen=True)
class LiveStatus:
    """One live progress line."""

    test: str
    elapsed: float
    duration: float
    users: int
    rps: float
    p50: float
    p95: float
    failures: int
    requests: int


LiveCallback = Callable[[LiveStatus], None]


class Link(Protocol):
    def begin(self, test: str, spec: LoadSpec) -> Share: ...

    def publish(self, tick: Tick) -> None: ...

    def finish(self) -> RunResult: ...

    def watch(self, stop: Callable[[str], None]) -> None:
        """Call ``stop(reason)`` if the run must end early (e.g. a worker was lost)."""

    def abort(self, reason: str) -> None:
        """This process cannot take part (its setup failed before the start barrier)."""


def live_status(agg: Aggregator, test: str, now: float, duration: float) -> LiveStatus:
    rps, _, _, p50, p95 = agg.recent(now)
    return LiveStatus(
        test=test,
        elapsed=now - agg.start,
        duration=duration,
        users=agg.users,
        rps=rps,
        p50=p50,
        p95=p95,
        failures=agg.failures,
        requests=agg.requests,
    )


class LocalLink:
    """Aggregator in this very process: a one-process run."""

    SOURCE = "main"

    def __init__(
        self, live: LiveCallback | None = None, live_every: float = 2.0, interval: float = 1.0
    ) -> None:
        self.interval = interval
        self.live = live
        self.live_every = live_every
        self._agg: Aggregator | None = None
        self._test = ""
        self._duration = 0.0
        self._next_live = 0.0
        self._end = 0.0

    def begin(self, test: str, spec: LoadSpec) -> Share:
        now = time.monotonic()
        self._agg = Aggregator(start=now, interval=self.interval)
        self._test, self._duration = test, spec.duration
        self._next_live = now + self.live_every
        return Share(list(range(spec.users)), spec.rate, self.SOURCE, 1)

    def publish(self, tick: Tick) -> None:
        agg = self._agg
        assert agg is not None, "publish before begin"
        now = time.monotonic()
        agg.add(self.SOURCE, tick.seq, tick.delta, now, final=tick.final)
        agg.set_health(self.SOURCE, tick.cpu, tick.lag)
        if tick.final:
            self._end = now
        elif self.live is not None and now >= self._next_live:
            self._next_live = now + self.live_every
            self.live(live_status(agg, self._test, now, self._duration))

    def watch(self, stop: Callable[[str], None]) -> None:
        pass  # nothing outside this process can end the run early (Ctrl-C raises instead)

    def abort(self, reason: str) -> None:
        pass  # the error propagates in this very process

    def finish(self) -> RunResult:
        agg = self._agg
        assert agg is not None, "finish before begin"
        if not agg.complete([self.SOURCE]):
            agg.problems.append("the final statistics of this process never arrived")
        end = self._end or time.monotonic()
        return agg.result(duration=end - agg.start)
