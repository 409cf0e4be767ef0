"""The dashboard's side of the feed: a subscriber that returns at once, and a pump thread.

The feed calls :meth:`Dashboard.on_event` in the aggregating thread (the users' gevent loop in
one process, the controller's receiving thread under xdist), which must never wait for a
browser. So the subscriber only appends the event to a bounded inbox (a newer ``Progress`` of
the same test replaces one not yet handled: only the latest figures matter) and wakes the
pump. The pump, an OS thread of its own, builds the JSON messages (the costly part), appends
them to the bounded :class:`~pytest_swarm.web.history.History` and wakes the event streams.

Example:
    >>> from pytest_swarm.feed import Feed, LoadStarted
    >>> feed = Feed()
    >>> dashboard = Dashboard(feed); dashboard.start()
    >>> feed.publish(LoadStarted("t.py::test_a", "test_a", 10.0))
    >>> dashboard.drain(timeout=10)
    True
    >>> dashboard.frames_after(0)[0].decode().splitlines()[:2]
    ['id: 1', 'event: started']
    >>> dashboard.close()
"""

from __future__ import annotations

import json
import time
from collections import deque
from typing import Any

from ..feed import Event, Feed, LoadStarted, Progress
from .history import History, frame
from .realio import Waker, allocate_lock, start_thread
from .state import DashboardState

__all__ = ["Dashboard"]

MAX_INBOX = 4096  # events waiting for the pump; past it, progress events are dropped


def _dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), allow_nan=False)


class Dashboard:
    """The live state of the session for any number of pages: subscribe, pump, read."""

    def __init__(self, feed: Feed, *, max_events: int = 1024, max_bytes: int = 16 << 20) -> None:
        self.feed = feed
        self.state = DashboardState()
        self.history = History(max_events=max_events, max_bytes=max_bytes)
        self.waker = Waker()  # notified when the history grows or the dashboard closes
        self.closed = False
        self.dropped = 0  # progress events dropped because the inbox was full
        self.errors: list[str] = []  # events the pump could not turn into messages
        self._lock = allocate_lock()  # guards state and history
        self._inbox: deque[Event] = deque()
        self._inbox_lock = allocate_lock()
        self._inbox_waker = Waker()
        self._busy = False
        self._idle = Waker()
        self._unsubscribe: Any = None

    def start(self) -> None:
        self._unsubscribe = self.feed.subscribe(self.on_event)
        start_thread(self._pump)

    def close(self) -> None:
        """Unsubscribe, stop the pump, wake every stream so it ends."""
        if self._unsubscribe is not None:
            self._unsubscribe()
        self.closed = True
        self._inbox_waker.notify_all()
        self.waker.notify_all()

    def on_event(self, event: Event) -> None:
        """The feed's subscriber: O(1), never waits on a browser or on the pump's work."""
        with self._inbox_lock:
            last = self._inbox[-1] if self._inbox else None
            if (
                isinstance(event, Progress)
                and isinstance(last, Progress)
                and last.test == event.test
            ):
                self._inbox[-1] = event
            elif len(self._inbox) >= MAX_INBOX and isinstance(event, Progress):
                self.dropped += 1
            else:
                # Started/finished are never dropped: a few per load test, and the page
                # would show a wrong list without them.
                self._inbox.append(event)
        self._inbox_waker.notify_all()

    def _pump(self) -> None:
        while not self.closed:
            seen = self._inbox_waker.generation
            with self._inbox_lock:
                event = self._inbox.popleft() if self._inbox else None
                self._busy = event is not None
            if event is None:
                self._idle.notify_all()
                self._inbox_waker.wait(seen, timeout=60.0)
                continue
            try:
                self._handle(event)
            except Exception as exc:  # a view's bug must not end the view, nor the run
                self.errors.append(f"{type(event).__name__}: {type(exc).__name__}: {exc}")
                del self.errors[:-20]
            finally:
                with self._inbox_lock:
                    self._busy = False
        self._idle.notify_all()

    def _handle(self, event: Event) -> None:
        stoppable = False
        if isinstance(event, LoadStarted | Progress):
            stoppable = event.test in self.feed.running
        with self._lock:
            messages = self.state.apply(event, stoppable=stoppable)
            for name, message in messages:
                self.history.append(name, _dumps(message))
        self.waker.notify_all()

    def drain(self, timeout: float) -> bool:
        """Wait until every event published so far is in the history (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while True:
            seen = self._idle.generation
            with self._inbox_lock:
                if not self._inbox and not self._busy:
                    return True
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.closed:
                return False
            self._idle.wait(seen, timeout=remaining)

    def frames_after(self, cursor: int, max_bytes: int | None = None) -> list[bytes] | None:
        """Framed events after ``cursor`` (see :meth:`History.after`)."""
        with self._lock:
            return self.history.after(cursor, max_bytes)

    def snapshot(self) -> tuple[int, dict[str, Any]]:
        """The id of the last event and the state after it."""
        with self._lock:
            return self.history.last_id, self.state.snapshot()

    def snapshot_frame(self) -> tuple[bytes, int]:
        """The state as one ``state`` event carrying the last event's id, so a browser that
        reconnects after it asks for what follows."""
        with self._lock:
            last = self.history.last_id
            return frame(last, "state", _dumps(self.state.snapshot())), last
