"""The live feed of the aggregating process: one source for every live view of a session.

The process that merges statistics (the one pytest process, or the xdist controller) publishes
what it knows as it learns it: a load test started, its running aggregate at every report
interval, its end with the verdict, the end of the session. Everything that shows or acts on
the run while it goes (the terminal's live line, the web dashboard, the rule that aborts a load
on a clear miss) subscribes here instead of reaching into the engine or the cluster code, so
the one-process and distributed paths feed them the same way.

The feed is also the one way to *stop* a load test early from outside its engine (the
dashboard's stop button, an abort rule): whoever runs a load registers a stopper for it, and
:meth:`Feed.request_stop` calls it.

Threads: publishers call :meth:`Feed.publish` from the aggregating thread (the gevent loop of
the one process, the controller's receiving thread under xdist); subscribers are called in
that thread and must return at once (hand the event to a queue of their own, bounded). A
subscriber that raises is dropped and the error kept in :attr:`Feed.errors`: a broken view must
never break the run it shows. :meth:`Feed.request_stop` may be called from any thread; a
stopper that must run in a particular thread hops there itself (e.g. gevent's
``loop.run_callback_threadsafe``).

Example:
    >>> feed = Feed()
    >>> seen = []
    >>> unsubscribe = feed.subscribe(seen.append)
    >>> feed.publish(LoadStarted("t.py::test_a", "test_a", duration=10.0))
    >>> stops = []
    >>> feed.register_stop("t.py::test_a", stops.append)
    >>> feed.request_stop("t.py::test_a", "stopped from the dashboard")
    True
    >>> feed.request_stop("t.py::test_b", "no such load running")
    False
    >>> unsubscribe(); feed.publish(SessionFinished())
    >>> [type(e).__name__ for e in seen], stops
    (['LoadStarted'], ['stopped from the dashboard'])
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .stats.result import RunResult

__all__ = [
    "Event",
    "Feed",
    "LoadFinished",
    "LoadStarted",
    "Progress",
    "SessionFinished",
    "Subscriber",
]


@dataclass(frozen=True)
class LoadStarted:
    """A load test's users are about to start (after the start barrier under xdist)."""

    test: str  # the pytest node id
    name: str  # the short name the terminal shows
    duration: float  # seconds the load is meant to last (the sum of the stages)
    users: int = 0  # peak users of the profile (0 when the model has none, e.g. open)
    workers: int = 1
    settings: dict[str, Any] = field(default_factory=dict)  # the spec as the report shows it


@dataclass(frozen=True)
class Progress:
    """The running aggregate of a load test, once per report interval.

    ``result`` is the whole run so far, merged over every worker (its timeline included): a
    snapshot the subscriber may keep, never mutated after publication.
    """

    test: str
    name: str
    elapsed: float  # seconds since the start barrier
    duration: float
    result: RunResult
    workers: dict[str, dict[str, float]] = field(default_factory=dict)  # name -> cpu, lag, users
    stage: str = ""  # e.g. "stage 2/3: ramp to 100 users"


@dataclass(frozen=True)
class LoadFinished:
    """A load test ended; ``outcome`` is passed / failed / error / interrupted / aborted."""

    test: str
    name: str
    outcome: str
    result: RunResult | None
    reason: str = ""  # why it failed, erred or stopped early (the verdict's first line)
    document: dict[str, Any] | None = None  # the JSON report's document for this test


@dataclass(frozen=True)
class SessionFinished:
    """The pytest session is over: no more events."""


Event = LoadStarted | Progress | LoadFinished | SessionFinished
Subscriber = Callable[[Event], None]
Stopper = Callable[[str], None]


class Feed:
    """Publish/subscribe of :data:`Event` s, and the stoppers of the running load tests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: list[Subscriber] = []
        self._stoppers: dict[str, Stopper] = {}
        self.errors: list[str] = []  # why a subscriber was dropped

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call ``subscriber(event)`` for every later event; returns the unsubscribe call."""
        with self._lock:
            self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            with self._lock:
                if subscriber in self._subscribers:
                    self._subscribers.remove(subscriber)

        return unsubscribe

    def publish(self, event: Event) -> None:
        """Hand ``event`` to every subscriber, in the order they subscribed."""
        with self._lock:
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            try:
                subscriber(event)
            except Exception as exc:  # a broken view must not break the run
                with self._lock:
                    if subscriber in self._subscribers:
                        self._subscribers.remove(subscriber)
                self.errors.append(f"{subscriber!r} dropped: {type(exc).__name__}: {exc}")

    def register_stop(self, test: str, stop: Stopper) -> None:
        """``stop(reason)`` ends load test ``test`` early, as Ctrl-C would."""
        with self._lock:
            self._stoppers[test] = stop

    def unregister_stop(self, test: str) -> None:
        with self._lock:
            self._stoppers.pop(test, None)

    @property
    def running(self) -> list[str]:
        """Node ids of the load tests that can be stopped now."""
        with self._lock:
            return list(self._stoppers)

    def request_stop(self, test: str, reason: str) -> bool:
        """Stop ``test`` early with ``reason``; False when it is not running (any more)."""
        with self._lock:
            stop = self._stoppers.get(test)
        if stop is None:
            return False
        stop(reason)
        return True
