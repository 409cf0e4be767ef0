"""Snapshots: the mergeable unit of statistics.

A :class:`Snapshot` holds, per request name, a latency histogram and a failure count, plus the
failures grouped by error (with one sample traceback each) and how many iterations and users
there were. Workers emit *delta* snapshots (what happened since the last one); the aggregator
merges them. Merging is exact and associative, so the order of arrival does not matter.

Example:
    >>> a = Snapshot(); a.entry("GET /").hist.record_values([1000])
    >>> b = Snapshot(); b.entry("GET /").hist.record_values([3000]); b.entry("GET /").failures = 1
    >>> a.merge(b)
    >>> a.entries["GET /"].hist.total, a.entries["GET /"].failures
    (2, 1)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import gt, itemgetter
from typing import Any

from .histogram import CheckedWire, Histogram, pack, unpack

_WIRE_KEYS = {"e", "x", "i", "u", "s", "d", "l"}
# Bounds applied when a snapshot comes off the wire (see from_wire).
MAX_NAMES = 2_000
MAX_ERRORS = 500
MAX_TEXT = 16_384

# to_wire folds what exceeds those bounds (names with ids in them, error groups summed over many
# intervals and workers) into one entry / one error group: counts are kept, only the split by
# name or message is lost, and the receiving side never rejects what a peer sent.
OTHER_NAME = "(other)"
OTHER_ERRORS = "(other errors: too many distinct messages)"
OTHER_KEY = (OTHER_NAME, "Error", OTHER_ERRORS)


@dataclass
class Entry:
    """Statistics of one request name (or of a failed iteration, named after the test)."""

    hist: Histogram = field(default_factory=Histogram)
    failures: int = 0
    size: int = 0  # bytes of content received (response bodies, ``measure``'s ``m.size``)

    def merge(self, other: Entry) -> None:
        self.hist.merge(other.hist)
        self.failures += other.failures
        self.size += other.size


@dataclass
class ErrorGroup:
    """Failures that share (request name, error kind, message); one sample traceback kept."""

    name: str
    kind: str
    message: str
    count: int = 0
    sample: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.name, self.kind, self.message)


@dataclass
class Snapshot:
    """Statistics over some interval; ``merge`` adds another interval or another worker."""

    entries: dict[str, Entry] = field(default_factory=dict)
    errors: dict[tuple[str, str, str], ErrorGroup] = field(default_factory=dict)
    iterations: int = 0
    # Users are a level, not a flow: the latest value per source is what counts. The aggregator
    # keeps it per worker; within one snapshot it is the number running at its end.
    users: int = 0
    setup_failures: int = 0
    # Open model: iterations never run because no user was free within the drop bound.
    dropped: int = 0
    # Open model: iterations that started later than the lateness bound after their due time
    # (no user was free); they ran, and their iteration time includes the wait.
    late: int = 0
    # Iteration durations: the body's own time in the closed model; in the open model, from
    # the iteration's due start (coordinated omission corrected, see docs/workload.md).
    iteration: Histogram = field(default_factory=Histogram)

    def entry(self, name: str) -> Entry:
        found = self.entries.get(name)
        if found is None:
            found = self.entries[name] = Entry()
        return found

    def add_error(self, name: str, kind: str, message: str, sample: str, count: int = 1) -> None:
        key = (name, kind, message)
        group = self.errors.get(key)
        if group is None:
            self.errors[key] = ErrorGroup(name, kind, message, count, sample)
        else:
            group.count += count
            if not group.sample:
                group.sample = sample

    @property
    def empty(self) -> bool:
        return (
            not self.entries
            and not self.errors
            and not self.iterations
            and not self.dropped
            and not self.late
            and not self.iteration.total
        )

    def total(self) -> Entry:
        """All entries merged: the "Total" row."""
        total = Entry()
        for entry in self.entries.values():
            total.merge(entry)
        return total

    def merge(self, other: Snapshot) -> None:
        for name, entry in other.entries.items():
            self.entry(name).merge(entry)
        for group in other.errors.values():
            self.add_error(group.name, group.kind, group.message, group.sample, group.count)
        self.iterations += other.iterations
        self.setup_failures += other.setup_failures
        self.dropped += other.dropped
        self.late += other.late
        self.iteration.merge(other.iteration)
        self.users = other.users

    def fold_errors(self) -> None:
        """Keep at most MAX_ERRORS error groups, the rest summed into OTHER_KEY: for totals
        that accumulate groups interval after interval."""
        if len(self.errors) > MAX_ERRORS:
            self.errors = {g.key: g for g in _fold_errors(self.errors)}

    def copy(self) -> Snapshot:
        clone = Snapshot(users=self.users)
        clone.merge(self)
        clone.users = self.users
        return clone

    # -- wire form -----------------------------------------------------------------------
    def to_wire(self) -> dict[str, Any]:
        """The wire form; always within the bounds :meth:`from_wire` enforces (see OTHER_NAME)."""
        entries = _fold_entries(self.entries)
        errors = _fold_errors(self.errors)
        # The total, coarse, travels last: it only feeds the per-second timeline and the
        # live line, and is checked against the entries (folding keeps every count).
        # The iteration histogram follows it.
        hists = [e.hist for e in entries.values()]
        hists.append(self.total().hist.coarse())
        hists.append(self.iteration)
        values = entries.values()
        return {
            # [names, failures, every histogram in one blob, sizes]: one parse per delta.
            "e": [
                list(entries),
                [e.failures for e in values],
                pack(hists),
                [e.size for e in values],
            ],
            "x": [[g.name, g.kind, g.message, g.count, g.sample[:MAX_TEXT]] for g in errors],
            "i": self.iterations,
            "u": self.users,
            "s": self.setup_failures,
            "d": self.dropped,
            "l": self.late,
        }

    @classmethod
    def from_wire(cls, data: Any) -> Snapshot:
        """Rebuild and validate; raises ``ValueError`` on anything malformed or oversized."""
        checked = check_wire(data)
        snap = cls()
        snap.merge_wire(checked)
        snap.users = checked.users
        return snap

    def merge_wire(self, delta: WireDelta) -> None:
        """Merge a validated wire snapshot without building Histograms for it first (the
        controller's hot path); same result as ``merge(Snapshot.from_wire(...))``."""
        entries = self.entries
        for (name, hist, failures), size in zip(delta.entries, delta.sizes, strict=True):
            entry = entries.get(name)
            if entry is None:
                entry = entries[name] = Entry()
            entry.hist.merge_checked(hist)
            entry.failures += failures
            entry.size += size
        for name, kind, message, count, sample in delta.errors:
            self.add_error(name, kind, message, sample, count)
        self.iterations += delta.iterations
        self.setup_failures += delta.setup_failures
        self.dropped += delta.dropped
        self.late += delta.late
        self.iteration.merge_checked(delta.iteration)
        self.users = delta.users


@dataclass
class WireDelta:
    """A snapshot's wire form, validated but not yet turned into objects."""

    entries: list[tuple[str, CheckedWire, int]]
    errors: list[tuple[str, str, str, int, str]]
    iterations: int
    users: int
    setup_failures: int
    total: CheckedWire  # all entries merged (computed by the sender, checked here)
    iteration: CheckedWire
    sizes: list[int]  # content bytes per entry, in the order of ``entries``
    dropped: int
    late: int

    @property
    def failures(self) -> int:
        return sum(f for _, _, f in self.entries)


def check_wire(data: Any) -> WireDelta:
    """Validate :meth:`Snapshot.to_wire` output; raises ``ValueError`` on anything malformed
    or oversized. Bounds: names, error groups, text lengths, histogram layouts."""
    if not isinstance(data, dict) or set(data) != _WIRE_KEYS:
        raise ValueError("snapshot: unexpected fields")
    entries, errors = data["e"], data["x"]
    if type(entries) is not list or len(entries) != 4:
        raise ValueError("snapshot: entries are not [names, failures, histograms, sizes]")
    names, failures, blob, sizes = entries
    if type(names) is not list or type(failures) is not list or len(names) != len(failures):
        raise ValueError("snapshot: names and failures do not match")
    if type(sizes) is not list or len(sizes) != len(names):
        raise ValueError("snapshot: names and sizes do not match")
    if sizes and (set(map(type, sizes)) != {int} or min(sizes) < 0):
        raise ValueError("snapshot: sizes must be non-negative integers")
    if len(names) > MAX_NAMES:
        raise ValueError("snapshot: too many request names")
    if not isinstance(errors, list) or len(errors) > MAX_ERRORS:
        raise ValueError("snapshot: bad or too many error groups")
    for key in ("i", "u", "s", "d", "l"):
        if type(data[key]) is not int or data[key] < 0:
            raise ValueError(f"snapshot: field {key!r} must be a non-negative integer")
    hists = unpack(blob, len(names) + 2)
    iteration = hists.pop()
    total = hists.pop()
    # Checks over all entries at once (C-level map/set calls, nothing per entry in Python).
    if names and (set(map(type, names)) != {str} or max(map(len, names)) > MAX_TEXT):
        raise ValueError("snapshot: bad request name")
    if len(set(names)) != len(names):
        raise ValueError("snapshot: a request name appears twice")
    counts = list(map(itemgetter(2), hists))
    if failures and (
        set(map(type, failures)) != {int} or min(failures) < 0 or any(map(gt, failures, counts))
    ):
        raise ValueError("snapshot: failures must be between 0 and the request count")
    count = sum(counts)
    checked_entries = list(zip(names, hists, failures, strict=True))
    checked_errors = []
    for item in errors:
        if not isinstance(item, list) or len(item) != 5:
            raise ValueError("snapshot: bad error group")
        name, kind, message, n, sample = item
        if not all(isinstance(s, str) and len(s) <= MAX_TEXT for s in (name, kind, message)):
            raise ValueError("snapshot: bad error group text")
        if not isinstance(sample, str) or type(n) is not int or n < 1:
            raise ValueError("snapshot: bad error group count or sample")
        checked_errors.append((name, kind, message, n, sample[:MAX_TEXT]))
    # The coarse total must be the entries' sum in every figure, not only its count: it feeds
    # the timeline and the live line. (Its buckets are checked like any histogram's.)
    live = [h for h in hists if h[2]]
    expected = (
        count,
        sum(map(itemgetter(3), hists)),
        sum(map(itemgetter(4), hists)),
        min(map(itemgetter(5), live), default=0),
        max(map(itemgetter(6), live), default=0),
    )
    if tuple(total[2:]) != expected:
        raise ValueError("snapshot: the total does not match the entries")
    return WireDelta(
        checked_entries,
        checked_errors,
        data["i"],
        data["u"],
        data["s"],
        total,
        iteration,
        sizes,
        data["d"],
        data["l"],
    )


def _fold_entries(entries: dict[str, Entry]) -> dict[str, Entry]:
    """At most MAX_NAMES entries: the busiest names, the rest merged under OTHER_NAME."""
    if len(entries) <= MAX_NAMES:
        return entries
    ranked = sorted(entries, key=lambda n: (n == OTHER_NAME, -entries[n].hist.total, n))
    kept = {n: entries[n] for n in ranked[: MAX_NAMES - 1]}
    other = Entry()
    for name in ranked[MAX_NAMES - 1 :]:
        other.merge(entries[name])
    kept[OTHER_NAME] = other
    return kept


def _fold_errors(errors: dict[tuple[str, str, str], ErrorGroup]) -> list[ErrorGroup]:
    """At most MAX_ERRORS groups: the most frequent, the rest summed into OTHER_KEY."""
    if len(errors) <= MAX_ERRORS:
        return list(errors.values())
    ranked = sorted(errors.values(), key=lambda g: (g.key == OTHER_KEY, -g.count, g.key))
    rest = ranked[MAX_ERRORS - 1 :]
    sample = next((g.sample for g in rest if g.sample), "")
    return [*ranked[: MAX_ERRORS - 1], ErrorGroup(*OTHER_KEY, sum(g.count for g in rest), sample)]
