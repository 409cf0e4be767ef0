"""The virtual users' greenlets, kept as cheap as an idle user can be.

A load test may hold 10,000 users per process, nearly all of them asleep between iterations,
so what one sleeping user costs is what the generator can hold. Three things make that cost,
measured with 5000 sleepers (``benchmarks/run.sh --skip-throughput``):

* the C stack greenlet copies to the heap when a greenlet switches out: its depth at the
  switch. ``Event.wait(timeout)`` goes through four Cython layers and a ``Timeout``; a libev
  timer whose callback switches straight back is the shallowest wait there is;
* a ``gevent.Greenlet`` carries links, a spawn tree and the spawning stack; a plain greenlet
  whose parent is the hub carries none of that;
* a 16 KiB Python data-stack chunk per greenlet, of which only the pages the deepest call
  touched are resident (kept small by not calling deep from the user's own greenlet).

Together: 6.3 KiB per sleeping greenlet instead of 8.6 KiB.

Example:
    >>> import gevent
    >>> crowd = Crowd()
    >>> woke = []
    >>> def user(n):
    ...     crowd.pause(60.0)        # a long wait, cut short by wake_all()
    ...     woke.append(n)
    >>> for n in range(3):
    ...     crowd.spawn(user, n)
    >>> gevent.sleep(0)              # let them start and fall asleep
    >>> crowd.wake_all()
    >>> crowd.join(timeout=1.0), sorted(woke)
    (True, [0, 1, 2])
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import gevent
from gevent.event import Event
from greenlet import getcurrent, greenlet


class Crowd:
    """Greenlets (children of the hub) running user functions, with an interruptible pause.

    An exception escaping a user function goes to the hub's error handler, as it would from
    a ``gevent.Greenlet`` (Ctrl-C and ``SystemExit`` reach the main greenlet); the runner
    catches everything else itself.
    """

    __slots__ = (
        "_closed",
        "_empty",
        "_hub",
        "_live",
        "_loop",
        "_on_empty",
        "_sleeping",
        "_turns",
    )

    def __init__(self, on_empty: Callable[[], object] | None = None) -> None:
        self._on_empty = on_empty  # called each time the last live user ends
        self._hub = gevent.get_hub()
        self._loop = self._hub.loop
        self._live: dict[greenlet, Any] = {}  # greenlet -> its argument (the user's index)
        self._sleeping: dict[greenlet, Any] = {}  # greenlet -> its libev timer
        # greenlet -> the loop's iteration count when its last zero pause ended (loops that
        # do not count iterations: no entry, every zero pause yields).
        self._turns: dict[greenlet, int] = {}
        self._empty = Event()
        self._empty.set()
        self._closed = False

    def __len__(self) -> int:
        return len(self._live)

    def spawn(self, func: Callable[[Any], object], arg: Any) -> None:
        """Start ``func(arg)`` in a new greenlet on the next turn of the event loop (never
        after :meth:`kill`)."""
        if self._closed:
            return
        g = greenlet(self._main, self._hub)
        self._live[g] = arg
        self._empty.clear()
        self._loop.run_callback(g.switch, func, arg)

    def _main(self, func: Callable[[Any], object], arg: Any) -> None:
        me = getcurrent()
        try:
            if not self._closed:
                # One positional argument: CPython 3.11 runs this call in the same C frame
                # (``func(*args)`` would nest one and grow the stack every sleeper saves).
                func(arg)
        except gevent.GreenletExit:
            pass
        except BaseException:
            self._hub.handle_error(me, *sys.exc_info())
        finally:
            self._live.pop(me, None)
            self._turns.pop(me, None)
            if not self._live:
                self._empty.set()
                if self._on_empty is not None:
                    self._on_empty()

    def pause(self, seconds: float) -> None:
        """Sleep in the calling user greenlet for ``seconds``, or until :meth:`wake_all`.

        A zero pause is a turn given to the others (and to the timers: the report's ticks,
        the end of the run); it is skipped when the event loop has gone round since this
        user's last one, which means the user waited on the loop in between (a request's
        socket read does): the others and the timers had their turn then. A user that never
        waits (a CPU-bound body) still yields on every zero pause.
        """
        me = getcurrent()
        if seconds <= 0:
            turns = self._turns
            iteration = getattr(self._loop, "iteration", None)
            if iteration is not None and turns.get(me, iteration) != iteration:
                turns[me] = iteration
                return
        timer = self._loop.timer(seconds)
        self._sleeping[me] = timer
        try:
            timer.start(me.switch)
            self._hub.switch()
        finally:
            timer.close()
            self._sleeping.pop(me, None)
            if seconds <= 0:
                iteration = getattr(self._loop, "iteration", None)
                if iteration is not None:
                    self._turns[me] = iteration

    def wake_all(self) -> None:
        """End every pause in progress (the sleepers resume on the next turn of the loop)."""
        sleeping, self._sleeping = self._sleeping, {}
        for g, timer in sleeping.items():
            # A stopped timer never fires, so each sleeper is switched into exactly once,
            # and only while it still waits in pause() (it removes itself before anything
            # else can run once it resumes).
            timer.stop()
            self._loop.run_callback(_resume, g)

    def wake_where(self, chosen: Callable[[Any], bool]) -> None:
        """End the pauses of the sleepers whose argument ``chosen`` accepts (a ramp-down:
        those users stop now instead of at the end of their wait)."""
        # Highest argument first: a ramp-down stops the most recently started users first.
        live = self._live
        woken = sorted((g for g in self._sleeping if chosen(live.get(g))), key=live.__getitem__)
        for g in reversed(woken):
            self._sleeping.pop(g).stop()
            self._loop.run_callback(_resume, g)

    def kill_where(self, chosen: Callable[[Any], bool]) -> None:
        """Raise ``GreenletExit`` in the users whose argument ``chosen`` accepts (their
        ``finally`` blocks run); the others, and new spawns, carry on."""
        for g, arg in list(self._live.items()):
            if g and chosen(arg):
                timer = self._sleeping.pop(g, None)
                if timer is not None:
                    timer.stop()
                self._loop.run_callback(_throw, g)

    def join(self, timeout: float | None = None) -> bool:
        """Wait until every user function has returned; False if ``timeout`` came first."""
        return bool(self._empty.wait(timeout))

    def live_args(self) -> list[Any]:
        """The arguments of the user functions still running (the runner passes user
        indices: it names the users it had to abandon)."""
        return list(self._live.values())

    def kill(
        self, timeout: float | None = None, spare: Callable[[Any], bool] | None = None
    ) -> bool:
        """Raise ``GreenletExit`` in every user greenlet (their ``finally`` blocks run) except
        those whose argument ``spare`` accepts, let no new one start, and wait up to
        ``timeout`` for all of them to end; False if some did not."""
        self._closed = True
        # Sleepers get the exception instead of their timer; a later wake_all() must not
        # switch into them again (their throw may still be queued when join() times out).
        for g, timer in list(self._sleeping.items()):
            if spare is None or not spare(self._live.get(g)):
                timer.stop()
                del self._sleeping[g]
        for g, arg in list(self._live.items()):
            if spare is not None and spare(arg):
                continue
            if g:  # started and not dead; one not started yet returns at once when it starts
                self._loop.run_callback(_throw, g)
        return self.join(timeout)


def _resume(g: greenlet) -> None:
    if not g.dead:
        g.switch()


def _throw(g: greenlet) -> None:
    if not g.dead:
        g.throw(gevent.GreenletExit)
