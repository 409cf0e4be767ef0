"""Signals in the xdist controller after a first Ctrl-C or SIGTERM.

Once the session is interrupted, the controller still has work that matters: tell the workers
to stop, wait (bounded) for their final statistics, report the interrupted tests. A second
Ctrl-C in the middle of that used to raise wherever the main thread was (often inside pytest's
own formatting of the first interrupt) and end the run with a traceback and no report.
:func:`soften` makes the next SIGINT or SIGTERM only set an event, which ends the wait: the
report goes out at once with what has arrived. A third one raises KeyboardInterrupt as usual.

Example:
    >>> import os, signal
    >>> hurry = soften()
    >>> os.kill(os.getpid(), signal.SIGINT)
    >>> hurry.wait(5.0)
    True
    >>> restore()
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_previous: dict[signal.Signals, Any] = {}


def soften() -> threading.Event:
    """Make the next SIGINT/SIGTERM set the returned event instead of raising (main thread
    only; elsewhere the event is returned unchanged and the signals keep their handlers)."""
    hurry = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        return hurry

    def handler(signum: int, frame: FrameType | None) -> None:
        if hurry.is_set():
            raise KeyboardInterrupt(signal.Signals(signum).name)
        hurry.set()

    for sig in SIGNALS:
        old = signal.signal(sig, handler)
        _previous.setdefault(sig, old)
    return hurry


def restore() -> None:
    """Put back the handlers :func:`soften` replaced."""
    if threading.current_thread() is not threading.main_thread():
        return
    while _previous:
        sig, old = _previous.popitem()
        signal.signal(sig, old)
