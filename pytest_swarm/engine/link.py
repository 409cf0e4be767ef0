"""The link between a process running users and the aggregator that merges their statistics.

A :class:`Link` is what the engine talks to: ``begin`` waits for the start barrier and says which
users this process runs, ``publish`` ships each delta, ``finish`` returns the merged result of
the whole swarm. :class:`LocalLink` is the one-process implementation (the aggregator lives in
this process); the distributed implementation (``cluster.agent``) speaks ZeroMQ to the xdist
controller. Both feed the same :class:`~pytest_swarm.stats.aggregator.Aggregator`.

The side that aggregates also publishes on the session's live feed (:mod:`pytest_swarm.feed`):
:class:`LocalLink` here, the controller under xdist (``cluster/controller_state.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..feed import Feed, LoadStarted, Progress
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


class Link(Protocol):
    def begin(self, test: str, spec: LoadSpec) -> Share: ...

    def publish(self, tick: Tick) -> None: ...

    def finish(self) -> RunResult: ...

    def watch(self, stop: Callable[[str], None]) -> None:
        """Call ``stop(reason)`` if the run must end early (e.g. a worker was lost)."""

    def abort(self, reason: str) -> None:
        """This process cannot take part (its setup failed before the start barrier)."""


def load_settings(spec: LoadSpec, settings: dict[str, Any] | None) -> dict[str, Any]:
    """``LoadStarted.settings``: the spec as the reports describe it (the open model's peak
    arrival rate too: the live line and the dashboard show arrivals/s for it), then the test's
    own (objectives and abort rules as text, see ``items.LoadDefinition.settings``)."""
    described: dict[str, Any] = {"load": spec.describe()}
    if spec.open_model is not None:
        described["arrival_rate"] = spec.open_model.profile.peak
    return {**described, **(settings or {})}


def short_name(key: str) -> str:
    """The name the terminal shows for a load test key (``path::test_x#2`` -> ``test_x#2``).

    >>> short_name("tests/test_a.py::TestShop::test_cart[2]#1")
    'test_cart[2]#1'
    """
    return key.rsplit("::", 1)[-1]


class LocalLink:
    """Aggregator in this very process: a one-process run.

    With a ``feed`` it publishes the load's ``LoadStarted`` and a ``Progress`` per report
    interval, and registers a stopper under ``key`` while the users run: a stop requested
    from any thread (the dashboard's, the abort rule's) hops into the gevent loop and ends
    the load as Ctrl-C would for this one test; :attr:`stopped` then says why."""

    SOURCE = "main"

    def __init__(
        self,
        interval: float = 1.0,
        *,
        feed: Feed | None = None,
        key: str = "",
        settings: dict[str, Any] | None = None,
    ) -> None:
        self.interval = interval
        self.feed = feed
        self.key = key
        self.settings = settings
        self.stopped = ""  # the reason of a stop requested through the feed
        # A stop that lands as the run ends anyway stops nothing: only the engine's own
        # "stopped early" line confirms it (see items.take_requested_stop).
        self.stop_confirmed = False
        self._agg: Aggregator | None = None
        self._test = ""
        self._duration = 0.0
        self._users = 0
        self._end = 0.0

    def begin(self, test: str, spec: LoadSpec) -> Share:
        now = time.monotonic()
        self._agg = Aggregator(start=now, interval=self.interval)
        self._test, self._duration, self._users = test, spec.duration, spec.users
        self.key = self.key or test
        if self.feed is not None:
            self.feed.publish(
                LoadStarted(
                    self.key,
                    test,
                    duration=spec.duration,
                    users=spec.users,
                    workers=1,
                    settings=load_settings(spec, self.settings),
                )
            )
        return Share(list(range(spec.users)), spec.rate, self.SOURCE, 1)

    def publish(self, tick: Tick) -> None:
        agg = self._agg
        assert agg is not None, "publish before begin"
        now = time.monotonic()
        agg.add(self.SOURCE, tick.seq, tick.delta, now, final=tick.final)
        agg.set_health(self.SOURCE, tick.cpu, tick.lag)
        if tick.final:
            self._end = now
            if self.feed is not None:
                self.feed.unregister_stop(self.key)  # the users are gone: nothing to stop
            return
        if self.feed is not None:
            elapsed = now - agg.start
            self.feed.publish(
                Progress(
                    self.key,
                    self._test,
                    elapsed=elapsed,
                    duration=self._duration,
                    # A new result each time (fresh histograms, lists): subscribers may keep it.
                    result=agg.result(duration=elapsed, users=self._users),
                    workers={
                        self.SOURCE: {
                            "cpu": tick.cpu,
                            "lag": tick.lag,
                            "users": float(tick.delta.users),
                        }
                    },
                )
            )

    def watch(self, stop: Callable[[str], None]) -> None:
        """Register ``stop`` (the runner's) with the feed. Ctrl-C needs nothing here: it
        raises in this very process."""
        if self.feed is None:
            return
        import gevent  # only once users run: the engine has gevent then

        loop = gevent.get_hub().loop

        def request(reason: str) -> None:
            # From any thread: the runner's stop sets gevent events, which only the loop's own
            # thread may do; the loop runs it as a callback (as the signal handlers do).
            def stop_in_loop() -> None:
                if not self.stopped:
                    self.stopped = reason
                    stop(reason)

            loop.run_callback_threadsafe(stop_in_loop)

        self.feed.register_stop(self.key, request)

    def abort(self, reason: str) -> None:
        pass  # the error propagates in this very process

    def finish(self) -> RunResult:
        agg = self._agg
        assert agg is not None, "finish before begin"
        if self.feed is not None:
            self.feed.unregister_stop(self.key)
        if not agg.complete([self.SOURCE]):
            agg.problems.append("the final statistics of this process never arrived")
        end = self._end or time.monotonic()
        return agg.result(duration=end - agg.start)
