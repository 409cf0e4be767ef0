"""The per-process recording hot path.

Clients call :meth:`Recorder.record` once per request. It only appends an integer to a list
(tens of nanoseconds); the histogram arithmetic happens once per report interval in
:meth:`Recorder.drain`, off the request path. Everything runs in one OS thread (gevent), so no
locks are needed: a greenlet switch cannot happen inside these methods.

Example:
    >>> rec = Recorder()
    >>> rec.record("GET /", 0.012)
    >>> rec.record_failure("GET /", 0.030, "HTTPError", "500 Server Error")
    >>> snap = rec.drain()
    >>> snap.entries["GET /"].hist.total, snap.entries["GET /"].failures
    (2, 1)
"""

from __future__ import annotations

import traceback
from collections import defaultdict

from .snapshot import OTHER_ERRORS, OTHER_NAME, Snapshot

__all__ = ["MAX_ERROR_GROUPS", "OTHER_ERRORS", "OTHER_NAME", "Recorder"]

# Error messages often carry ids or URLs; past this many groups in one interval, further new
# groups are folded into one (named OTHER_NAME) so a misbehaving target cannot grow memory
# without bound: a delta holds at most MAX_ERROR_GROUPS + 1 groups.
MAX_ERROR_GROUPS = 200


class Recorder:
    """Collects raw samples between two drains. One per process, shared by every user."""

    __slots__ = ("_errors", "_failures", "_values", "iterations", "setup_failures", "users")

    def __init__(self) -> None:
        # defaultdict: the lookup-or-create is one C call on the hot path. Seconds as
        # measured: they become integer µs at the fold, once per interval, not on the
        # request path (a third of the cost of record()).
        self._values: defaultdict[str, list[float]] = defaultdict(list)
        self._failures: dict[str, int] = {}
        self._errors = Snapshot()
        self.iterations = 0
        self.users = 0
        self.setup_failures = 0

    def record(self, name: str, elapsed_s: float) -> None:
        """A successful request that took ``elapsed_s`` seconds."""
        self._values[name].append(elapsed_s)

    def record_failure(
        self,
        name: str,
        elapsed_s: float,
        kind: str,
        message: str,
        exc: BaseException | None = None,
    ) -> None:
        """A failed request (or iteration): counted, timed, and grouped by error."""
        self.record(name, elapsed_s)
        self._failures[name] = self._failures.get(name, 0) + 1
        self.add_error(name, kind, message, exc)

    def add_error(
        self, name: str, kind: str, message: str, exc: BaseException | None = None
    ) -> None:
        """Group an error without counting a request (e.g. a user whose setup failed)."""
        errors = self._errors.errors
        key = (name, kind, message)
        group = errors.get(key)
        if group is not None:
            group.count += 1
            return
        if len(errors) >= MAX_ERROR_GROUPS:
            # One group for everything past the cap, whatever the request name: names can be
            # unbounded too (ids in URLs), and a delta must stay within the wire's bounds.
            name, kind, message = OTHER_NAME, "Error", OTHER_ERRORS
            if (name, kind, message) in errors:
                errors[(name, kind, message)].count += 1
                return
        # Formatting a traceback is slow: only the first of each group pays for it.
        sample = "".join(traceback.format_exception(exc)) if exc is not None else ""
        self._errors.add_error(name, kind, message, sample)

    def drain(self) -> Snapshot:
        """Everything recorded since the previous drain, as a delta snapshot."""
        snap, self._errors = self._errors, Snapshot()
        values, self._values = self._values, defaultdict(list)
        failures, self._failures = self._failures, {}
        for name, samples in values.items():
            entry = snap.entry(name)
            entry.hist.record_values([int(s * 1_000_000) for s in samples])
            entry.failures = failures.get(name, 0)
        snap.iterations, self.iterations = self.iterations, 0
        snap.setup_failures, self.setup_failures = self.setup_failures, 0
        snap.users = self.users
        return snap
