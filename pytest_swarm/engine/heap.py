"""Giving the C heap's free pages back to the system once a crowd of users has started.

Thousands of users starting together (a spawn rate of thousands per second) all hold their
setup's and first request's temporary objects at once: the C allocator grows its heap for
that peak, and the users' lasting objects end up scattered through it. glibc returns only
the free space at the top of its heap by itself, so the peak stayed in the process's RSS as
long as the users lived (about 2 KiB per idle ``http`` user, measured with
``benchmarks/idle_memory.py --rate 5000``). ``malloc_trim(0)`` returns every free page in the
middle of the heap too (glibc >= 2.8; the memory stays usable, the pages are re-faulted when
needed). Elsewhere (musl, macOS, Windows) there is no such call and nothing is done.

pymalloc's arenas (objects up to 512 bytes) are not the C heap: an arena goes back to the
system only once it is empty, which no trim can make happen.

Example:
    >>> trim_heap() in (True, False)
    True
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable

_TRIM: list[Callable[[int], int] | None] = []

# What else lets go of memory kept for a peak, before the trim (the clients' parser pool):
# registered by the modules that keep it, called with no argument.
_RELEASERS: list[Callable[[], object]] = []


def on_trim(release: Callable[[], object]) -> None:
    """Have :func:`trim_heap` call ``release`` first (once registered, for the process)."""
    if release not in _RELEASERS:
        _RELEASERS.append(release)


def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        found: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    return found


def trim_heap() -> bool:
    """Let the registered pools go (:func:`on_trim`), then return the C heap's free pages to
    the system; False where there is no way to."""
    for release in _RELEASERS:
        release()
    if not _TRIM:
        _TRIM.append(_malloc_trim())
    trim = _TRIM[0]
    if trim is None:
        return False
    trim(0)
    return True
