"""What the clients keep per gevent hub, one of each per event loop and none per request: the
queue of requests sent together at the end of the loop's turn, the clock of the loop's last
poll, the bounds of the users' waits, and the wait on a socket that uses them.

Example:
    >>> import gevent, socket
    >>> a, b = socket.socketpair()
    >>> watcher = gevent.get_hub().loop.io(a.fileno(), 1)   # readable
    >>> b.send(b"x")
    1
    >>> wait_for(watcher, 5.0) > 0   # the poll's time: woken by the bytes
    True
    >>> wait_for(gevent.get_hub().loop.io(b.fileno(), 1), 0.02)   # silence: the bound
    0.0
    >>> a.close(); b.close()
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from gevent import get_hub
from gevent.exceptions import ConcurrentObjectUseError
from greenlet import getcurrent

if TYPE_CHECKING:
    from .reading import Reading

READY = object()  # what the read watcher passes back
LATE = object()  # what the timer passes back
SEND = object()  # what the send queue passes back (the send failed or was cut short)


class SendQueue:
    """The requests of one hub's users, sent together at the end of the loop's turn.

    Sent one by one as each user ran, every request woke the target's process anew, since it
    had gone back to sleep by the time the next user's Python was done; on a virtual machine
    each of those wake-ups cost the sender several microseconds of kernel time (the sys
    time per fast_http request fell by about 40 % sent together). A request leaves at the
    latest when the users that run in the same turn have run, the time of a few users'
    Python; its recorded time starts when it is sent (``Reading.sent``), as wrk's does.
    """

    __slots__ = ("loop", "readings")

    def __init__(self, loop: Any) -> None:
        self.loop = loop
        self.readings: list[Reading] = []  # added by Reading.send itself (per request)

    def flush(self) -> None:
        readings, self.readings = self.readings, []
        for reading in readings:
            reading.flush()


class PollClock:
    """The ``perf_counter()`` time at which the event loop last came back from its poll.

    A libev check watcher runs once per loop iteration, after the poll and before the
    callbacks of the watchers that poll made ready; it runs at the highest priority, so before
    any of them whatever their order, and it holds no reference on the loop (the hub still
    ends when nothing else is left). One per hub (:class:`HubState`).
    """

    __slots__ = ("at", "watcher")

    def __init__(self, loop: Any) -> None:
        self.at = time.perf_counter()
        self.watcher = loop.check(ref=False, priority=2)  # EV_MAXPRI
        self.watcher.start(self._stamp)

    def _stamp(self) -> None:
        self.at = time.perf_counter()


# How often the waits' bounds are checked: a wait ends between its bound and this much later.
TICK = 0.01


class Deadlines:
    """The bounded waits of one hub's users, ended by one repeating libev timer.

    A libev timer per wait (made, started and closed per response) was about 4 % of a
    ``fast_http`` request's instructions; a dictionary entry per wait costs a tenth of that.
    The timer runs while any wait is registered, every :data:`TICK` seconds, and holds no
    reference on the loop (a wait's own read watcher keeps the loop running). A wait that is
    past its bound at a tick is removed and its greenlet woken with ``LATE``. Waits are
    added by :func:`wait_for` itself (a method call per wait would cost as much again).
    """

    __slots__ = ("timer", "waits")

    def __init__(self, loop: Any) -> None:
        self.waits: dict[Any, float] = {}  # a waiting greenlet's switch -> its perf_counter() end
        self.timer = loop.timer(TICK, TICK, ref=False)

    def _tick(self) -> None:
        waits = self.waits
        if not waits:
            self.timer.stop()
            return
        now = time.perf_counter()
        for switch in [s for s, end in waits.items() if end <= now]:
            # Still there: a greenlet woken before it (by this loop) may have ended it.
            if waits.pop(switch, None) is not None:
                switch(LATE)


class HubState:
    """What the fast client keeps per event loop: its :class:`SendQueue`, :class:`PollClock`
    and :class:`Deadlines`, made together on the first request in that loop's thread and
    reached with one attribute lookup per request."""

    __slots__ = ("bounds", "clock", "sends")

    def __init__(self, loop: Any) -> None:
        self.sends = SendQueue(loop)
        self.clock = PollClock(loop)
        self.bounds = Deadlines(loop)


def hub_state(hub: Any) -> HubState:
    """``hub``'s :class:`HubState`, made on first use."""
    found: HubState | None = getattr(hub, "_swarm", None)
    if found is None:
        found = hub._swarm = HubState(hub.loop)
    return found


def wait_for(watcher: Any, wait: float | None) -> float:
    """Block the calling greenlet until ``watcher`` (a gevent io watcher) fires or ``wait``
    seconds pass (None: no bound). The time of the poll that woke it (:class:`PollClock`),
    0.0 when the time ran out, or -1.0 when the :class:`SendQueue` woke it (its request's
    send failed or was cut short); any other wake-up counts as woken (the caller's receive
    finds out, and waits again when there is nothing).

    Used for a response's bytes (a read watcher) and for a connection being opened (a write
    watcher). What gevent's own wait does, without its ``Timeout`` object and without a timer of its
    own: the bound is an entry in the hub's :class:`Deadlines`, removed on every way out (a
    ``GreenletExit`` thrown in while waiting included). It ends up to :data:`TICK` late.
    """
    if watcher.callback is not None:
        # Another greenlet waits on this socket: not this client's use (one user, one
        # connection); gevent's own wait raises its ConcurrentObjectUseError for it.
        raise ConcurrentObjectUseError(f"another greenlet is already waiting on {watcher!r}")
    hub = get_hub()
    state = getattr(hub, "_swarm", None) or hub_state(hub)  # hub_state, inlined: per wait
    clock = state.clock
    switch = getcurrent().switch
    watcher.start(switch, READY)
    try:
        if wait is None:
            return -1.0 if hub.switch() is SEND else clock.at
        bounds = state.bounds
        waits = bounds.waits
        waits[switch] = time.perf_counter() + wait  # Deadlines.add, inlined: per wait
        if not bounds.timer.active:
            bounds.timer.start(bounds._tick)
        try:
            got = hub.switch()
        finally:
            waits.pop(switch, None)
        return 0.0 if got is LATE else -1.0 if got is SEND else clock.at
    finally:
        watcher.stop()
