"""The per-process recording hot path.

Clients call :meth:`Recorder.record` once per request. It only appends an integer to a list
(tens of nanoseconds); the histogram arithmetic happens once per report interval in
:meth:`Recorder.drain`, off the request path. Everything runs in one OS thread (gevent), so no
locks are needed: a greenlet switch cannot happen inside these methods.

Request names are bounded at the source, the same way in one process and in every xdist
worker: a name is at most :data:`MAX_NAME_LENGTH` characters (longer ones are cut and end with
:data:`CUT_MARK`), and a load records at most ``MAX_NAMES - 1`` distinct names; requests under
any further name are counted under :data:`OTHER_NAME`, and a :class:`RequestNamesFolded`
warning says once how to fix it (``name=``). Counts are never lost, only the split by name.

Error groups carry when they were seen, at no cost per failure: a group's ``first`` is the wall
clock (``time.time()``) when it is created, i.e. at its first occurrence in a report interval
(the first of each group per interval already pays for formatting its traceback); its ``last``
is the wall clock of the drain that delivers it, so it is at most one report interval later
than the group's true last occurrence. Over a run, ``first`` is exact, ``last`` within one
report interval (1 s by default).

Example:
    >>> rec = Recorder()
    >>> rec.record("GET /", 0.012)
    >>> rec.record_failure("GET /", 0.030, "HTTPError", "500 Server Error")
    >>> snap = rec.drain()
    >>> snap.entries["GET /"].hist.total, snap.entries["GET /"].failures
    (2, 1)
"""

from __future__ import annotations

import contextlib
import time
import traceback
import warnings
from collections import defaultdict
from collections.abc import Callable

from .snapshot import MAX_NAMES, OTHER_ERRORS, OTHER_NAME, Snapshot

__all__ = [
    "CUT_MARK",
    "MAX_ERROR_GROUPS",
    "MAX_NAME_LENGTH",
    "OTHER_ERRORS",
    "OTHER_NAME",
    "Recorder",
    "RequestNamesFolded",
]

# Error messages often carry ids or URLs; past this many groups in one interval, further new
# groups are folded into one (named OTHER_NAME) so a misbehaving target cannot grow memory
# without bound: a delta holds at most MAX_ERROR_GROUPS + 1 groups.
MAX_ERROR_GROUPS = 200

# A request name longer than this is cut (URLs of kilobytes: 2,000 of them made a 9 MB delta).
MAX_NAME_LENGTH = 200
CUT_MARK = "…"
# Distinct names one load records; one more slot is OTHER_NAME. The same bound as a snapshot's
# wire form, so nothing is folded again on the way, and the terminal table stays readable.
MAX_RECORDED_NAMES = MAX_NAMES - 1


class RequestNamesFolded(UserWarning):
    """A load used more distinct request names than a report can hold (ids in URLs)."""


def bounded_name(name: str) -> str:
    """``name`` cut to MAX_NAME_LENGTH characters, the last one being CUT_MARK.

    >>> len(bounded_name("GET /" + "x" * 5000)), bounded_name("GET /" + "x" * 5000)[-3:]
    (200, 'xx…')
    """
    if len(name) <= MAX_NAME_LENGTH:
        return name
    return name[: MAX_NAME_LENGTH - len(CUT_MARK)] + CUT_MARK


# One text whatever the names and the worker, so that pytest's warning summary shows it once
# for a whole xdist run.
FOLD_MESSAGE = (
    f"more than {MAX_RECORDED_NAMES:,} distinct request names: the requests of further names "
    f"are counted under {OTHER_NAME!r}. URLs with ids in them need a name, e.g. "
    'http.get(f"/items/{item_id}", name="GET /items/{id}")'
)


def _fold_error_names(snap: Snapshot, folded: set[str]) -> None:
    """Error groups of requests whose name was folded go under OTHER_NAME too."""
    groups = list(snap.errors.values())
    snap.errors = {}
    for g in groups:
        name = OTHER_NAME if g.name in folded else g.name
        snap.add_error(name, g.kind, g.message, g.sample, g.count, g.first, g.last)


class Recorder:
    """Collects raw samples between two drains. One per process, shared by every user."""

    __slots__ = (
        "_errors",
        "_failures",
        "_iteration",
        "_names",
        "_sizes",
        "_values",
        "_wall",
        "dropped",
        "folded",
        "iterations",
        "late",
        "setup_failures",
        "users",
    )

    def __init__(self, wall_clock: Callable[[], float] = time.time) -> None:
        # defaultdict: the lookup-or-create is one C call on the hot path. Seconds as
        # measured: they become integer µs at the fold, once per interval, not on the
        # request path (a third of the cost of record()).
        self._values: defaultdict[str, list[float]] = defaultdict(list)
        self._failures: dict[str, int] = {}
        self._sizes: defaultdict[str, int] = defaultdict(int)
        self._iteration: list[float] = []
        self._errors = Snapshot()
        self.iterations = 0
        self.dropped = 0  # open model: iterations dropped past the bound (see workload/)
        self.late = 0  # open model: iterations started late past the lateness bound
        self.users = 0
        self.setup_failures = 0
        # Raw name -> the name it is recorded under, for the whole load (not reset by drain):
        # at most MAX_RECORDED_NAMES entries; names past that are not remembered at all.
        self._names: dict[str, str] = {}
        self.folded = 0  # requests counted under OTHER_NAME because names ran out
        # When error groups were seen (see the module docstring): read once per new group per
        # interval and once per drain that has groups, never per failure.
        self._wall = wall_clock

    def record(self, name: str, elapsed_s: float, size: int = 0) -> None:
        """A successful request that took ``elapsed_s`` seconds and received ``size`` bytes
        of content (0 when unknown)."""
        # Names are bounded at the drain, once per name and interval, not here: this stays
        # one dict lookup and one append (and one add when there is a size).
        self._values[name].append(elapsed_s)
        if size:
            self._sizes[name] += size

    def record_iteration(self, elapsed_s: float) -> None:
        """One iteration ended (passed or failed) ``elapsed_s`` seconds after its start: the
        body's own start in the closed model, its due start in the open model."""
        self._iteration.append(elapsed_s)
        self.iterations += 1

    def _admit(self, name: str) -> str:
        """The name a request named ``name`` is recorded under (see the module docstring)."""
        bounded = bounded_name(name)
        names = self._names
        if bounded in names:
            return names[bounded]
        if len(names) < MAX_RECORDED_NAMES:
            names[bounded] = bounded  # a long raw name is not kept: cut again when met
            return bounded
        if not self.folded:
            # Warned from the drain (the runner's tick), never inside a request; -W error
            # must not break the tick. Always from this line: pytest's summary groups
            # warnings by location, so every worker's warning for a test reads as one.
            with contextlib.suppress(Exception):
                warnings.warn(RequestNamesFolded(FOLD_MESSAGE), stacklevel=1)
        return OTHER_NAME

    def record_failure(
        self,
        name: str,
        elapsed_s: float,
        kind: str,
        message: str,
        exc: BaseException | None = None,
        size: int = 0,
    ) -> None:
        """A failed request (or iteration): counted, timed, and grouped by error."""
        self._values[name].append(elapsed_s)
        self._failures[name] = self._failures.get(name, 0) + 1
        if size:
            self._sizes[name] += size
        self.add_error(name, kind, message, exc)

    def add_error(
        self, name: str, kind: str, message: str, exc: BaseException | None = None
    ) -> None:
        """Group an error without counting a request (e.g. a user whose setup failed)."""
        errors = self._errors.errors
        name = bounded_name(name)
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
        first = self._wall()  # the group's first occurrence in this interval
        # Formatting a traceback is slow: only the first of each group pays for it.
        sample = "".join(traceback.format_exception(exc)) if exc is not None else ""
        self._errors.add_error(name, kind, message, sample, first=first, last=first)

    def drain(self) -> Snapshot:
        """Everything recorded since the previous drain, as a delta snapshot."""
        snap, self._errors = self._errors, Snapshot()
        values, self._values = self._values, defaultdict(list)
        failures, self._failures = self._failures, {}
        sizes, self._sizes = self._sizes, defaultdict(int)
        iteration, self._iteration = self._iteration, []
        names, admit = self._names, self._admit
        folded: set[str] = set()
        for name, samples in values.items():
            recorded = names.get(name) or admit(name)
            if recorded == OTHER_NAME and name != OTHER_NAME:
                folded.add(bounded_name(name))
                self.folded += len(samples)
            entry = snap.entry(recorded)
            entry.hist.record_values([int(s * 1_000_000) for s in samples])
            entry.failures += failures.get(name, 0)
            entry.size += sizes.get(name, 0)
        if snap.errors:
            # Last seen: this drain's wall clock (within one interval of the last occurrence);
            # never before first seen, should the wall clock have stepped back.
            wall = self._wall()
            for group in snap.errors.values():
                group.last = max(wall, group.first)
        if folded:
            _fold_error_names(snap, folded)
        snap.iteration.record_values([int(s * 1_000_000) for s in iteration])
        snap.iterations, self.iterations = self.iterations, 0
        snap.dropped, self.dropped = self.dropped, 0
        snap.late, self.late = self.late, 0
        snap.setup_failures, self.setup_failures = self.setup_failures, 0
        snap.users = self.users
        return snap
