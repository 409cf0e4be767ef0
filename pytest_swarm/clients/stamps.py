"""The kernel's time of a response's arrival: where a request's recorded time ends.

A generator that stamps a response when its own code gets to it charges the service with the
generator's delays: at 10 users whose answers come close together, the answers that land while
the process is busy with another user's Python (parsing, recording, the next request) wait in
the socket until the next poll, and would be timed then. With ``SO_TIMESTAMPNS`` on a
connection, Linux stamps every segment as it is taken in, and each receive hands back the time
of the last segment it read: the moment the answer's last bytes were there, whatever the
process was doing. On loopback at 10 users and a 10 ms server delay (``python
benchmarks/accuracy.py``, wrk beside it in each run), ``fast_http`` stamped at the poll added
0.100 ms to the server's own p50 where wrk added 0.062; stamped by the kernel, 0.054 where wrk
added 0.129.

The kernel's clock is ``CLOCK_REALTIME``; a stamp is turned into ``time.perf_counter()``'s clock
(``CLOCK_MONOTONIC``) by its age, never negative, so a figure is never later than the receive.
Where no stamp comes (not Linux, the option refused, TLS sockets, which keep their own calls),
the fast client keeps its poll clock (:class:`.hub.PollClock`).

Example:
    >>> import socket
    >>> a, b = socket.socketpair()
    >>> enable(a) in (True, False)
    True
    >>> b.send(b"ok")
    2
    >>> data, arrived = recv_stamped(a, 64)
    >>> data, arrived >= 0.0
    (b'ok', True)
    >>> a.close(); b.close()
"""

from __future__ import annotations

import platform
import socket
import struct
import sys
import time
from collections.abc import Callable
from typing import Any

from ..native import pure_python

# The option's number where the C extension is not built: 35 on Linux but for the few
# architectures with their own socket.h (Python's socket module does not name it).
_GENERIC = sys.platform.startswith("linux") and not platform.machine().startswith(
    ("mips", "sparc", "parisc", "alpha")
)
_TIMESPEC = struct.Struct("@ll")  # struct timespec: seconds, nanoseconds
_CONTROL = socket.CMSG_SPACE(_TIMESPEC.size)


def _python_recv_stamped(sock: Any, size: int) -> tuple[bytes, float]:
    """One receive of up to ``size`` bytes and the ``perf_counter()`` time its last bytes
    arrived (0.0: the kernel gave none). The C extension's ``recv_stamped`` does the same."""
    data, messages, _flags, _address = sock.recvmsg(size, _CONTROL)
    for level, kind, payload in messages:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(payload) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack_from(payload)
            age = time.time_ns() - (seconds * 1_000_000_000 + nanoseconds)
            return data, time.perf_counter() - max(age, 0) / 1e9
    return data, 0.0


def _accelerated() -> tuple[Callable[[Any, int], tuple[bytes, float]], int | None]:
    if not pure_python():
        try:
            from .. import _speedups
        except ImportError:
            pass
        else:
            return _speedups.recv_stamped, getattr(_speedups, "SO_TIMESTAMPNS", None)
    return _python_recv_stamped, (35 if _GENERIC else None)


recv_stamped, SO_TIMESTAMPNS = _accelerated()


def enable(sock: socket.socket) -> bool:
    """Ask the kernel to stamp what arrives on ``sock``; False where it cannot (one system call
    per connection)."""
    if SO_TIMESTAMPNS is None:
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True
