"""Snapshots: the mergeable unit of statistics.

A :class:`Snapshot` holds, per request name, a latency histogram and a failure count, plus the
failures grouped by error (with one sample traceback each, the wall-clock time each group was
first and last seen, and the nodes that saw it) and how many iterations and users there were.
Workers emit *delta* snapshots (what happened since the last one); the aggregator merges them.
Merging is exact and associative, so the order of arrival does not matter.

Example:
    >>> a = Snapshot(); a.entry("GET /").hist.record_values([1000])
    >>> b = Snapshot(); b.entry("GET /").hist.record_values([3000]); b.entry("GET /").failures = 1
    >>> a.merge(b)
    >>> a.entries["GET /"].hist.total, a.entries["GET /"].failures
    (2, 1)
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterable
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
# The nodes an error group names (xdist worker ids) on the wire and in reports: at most
# MAX_NODES (the first by node_order), the others only counted; a name is cut at MAX_NODE_TEXT.
# In memory (the aggregator) a group keeps up to MAX_TRACKED_NODES names, so that its count of
# nodes is exact up to that many workers (a few MB at worst: 500 groups x 1024 shared names).
MAX_NODES = 64
MAX_TRACKED_NODES = 1024
MAX_NODE_TEXT = 64
_DIGITS = re.compile(r"(\d+)$")


def node_order(node: str) -> tuple[int, str]:
    """Order nodes gw0 < gw1 < gw10 (numeric suffix first), then by name.

    >>> sorted(["gw10", "main", "gw2"], key=node_order)
    ['gw2', 'gw10', 'main']
    """
    match = _DIGITS.search(node)
    return (int(match.group(1)) if match else 1 << 30, node)


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
    """Failures that share (request name, error kind, message); one sample traceback kept.

    ``first`` and ``last`` are wall-clock Unix seconds (0.0: unknown) of the group's first and
    last occurrence; ``nodes`` the nodes it occurred on (up to MAX_TRACKED_NODES names, the
    first by :func:`node_order`), ``nodes_more`` how many more there were beyond those names.
    Reports and the wire show :attr:`node_list` (at most MAX_NODES names) and count the rest
    (:attr:`nodes_hidden`). The count is exact while no part merged had dropped names; merging
    parts that each dropped some gives a lower bound (see :meth:`see`). Merging takes the earliest
    first, the latest last and the union of nodes, so the order of merges does not matter.

    Example:
        >>> g = ErrorGroup("GET /", "HTTPError", "500", 2, first=10.5, last=12.0)
        >>> g.see(0.0, 0.0, ["gw1"])
        >>> g.see(9.0, 11.0, ["gw0"])
        >>> g.first, g.last, sorted(g.nodes)
        (9.0, 12.0, ['gw0', 'gw1'])
    """

    name: str
    kind: str
    message: str
    count: int = 0
    sample: str = ""
    first: float = 0.0
    last: float = 0.0
    # Immutable, so copies of a group (the aggregator's totals, every interval) share it.
    nodes: frozenset[str] = frozenset()
    nodes_more: int = 0

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.name, self.kind, self.message)

    def see(
        self, first: float, last: float, nodes: Iterable[str] = (), nodes_more: int = 0
    ) -> None:
        """Merge another part's times and nodes into this group. A part that knows only one
        of its times counts it as both, so that first <= last holds whatever is merged."""
        first, last = first or last, last or first
        if first and (not self.first or first < self.first):
            self.first = first
        if last > self.last:
            self.last = last
        if nodes_more or nodes:
            self._add_nodes(nodes, nodes_more)

    def _add_nodes(self, nodes: Iterable[str], more: int) -> None:
        known = self.nodes
        names = [n for n in nodes if n]
        if not more and all(n in known for n in names):
            return  # the aggregator's usual case: a worker seen before
        # The count is a lower bound of the distinct nodes: each side's own count, or the
        # union of the names both sides kept. Exact while no side ever dropped a name.
        union = known | {n[:MAX_NODE_TEXT] for n in names}
        total = max(len(known) + self.nodes_more, len(names) + more, len(union))
        if len(union) > MAX_TRACKED_NODES:
            union = frozenset(sorted(union, key=node_order)[:MAX_TRACKED_NODES])
        self.nodes = union
        self.nodes_more = total - len(union)

    @property
    def node_list(self) -> list[str]:
        """The first MAX_NODES nodes in :func:`node_order` (gw0, gw1, gw10)."""
        return sorted(self.nodes, key=node_order)[:MAX_NODES]

    @property
    def nodes_hidden(self) -> int:
        """How many nodes saw the group beyond :attr:`node_list`."""
        return self.nodes_more + max(len(self.nodes) - MAX_NODES, 0)

    def wire(self) -> list[Any]:
        """The wire form (see :func:`check_wire`)."""
        return [
            self.name,
            self.kind,
            self.message,
            self.count,
            self.sample[:MAX_TEXT],
            self.first,
            self.last,
            self.node_list,
            self.nodes_hidden,
        ]


# An error group's wire form, validated: (name, kind, message, count, sample, first, last,
# nodes, nodes_more); see ErrorGroup.
ErrorWire = tuple[str, str, str, int, str, float, float, Collection[str], int]


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

    def add_error(
        self,
        name: str,
        kind: str,
        message: str,
        sample: str,
        count: int = 1,
        first: float = 0.0,
        last: float = 0.0,
        nodes: Iterable[str] = (),
        nodes_more: int = 0,
    ) -> None:
        """Count ``count`` failures of one group, seen from ``first`` to ``last`` (Unix
        seconds, 0.0 when unknown) on ``nodes`` (see :class:`ErrorGroup`)."""
        key = (name, kind, message)
        group = self.errors.get(key)
        if group is None:
            group = self.errors[key] = ErrorGroup(name, kind, message, count, sample)
        else:
            group.count += count
            if not group.sample:
                group.sample = sample
        if first or last or nodes or nodes_more:
            group.see(first, last, nodes, nodes_more)

    def merge_errors(self, other: Snapshot | WireDelta, node: str | None = None) -> None:
        """Merge the error groups of ``other``. With ``node`` (the aggregator's source that
        delivered them) the groups are attributed to that node, whatever they said."""
        items: Iterable[ErrorWire]
        if isinstance(other, WireDelta):
            items = other.errors
        else:
            items = (
                (
                    g.name,
                    g.kind,
                    g.message,
                    g.count,
                    g.sample,
                    g.first,
                    g.last,
                    g.nodes,
                    g.nodes_more,
                )
                for g in other.errors.values()
            )
        errors = self.errors
        # The aggregator's hot path (every group of every worker's delta): one dict lookup and
        # a few comparisons per group; ErrorGroup.see only when nodes must be merged.
        for name, kind, message, count, sample, first, last, nodes, more in items:
            key = (name, kind, message)
            group = errors.get(key)
            if group is None:
                group = errors[key] = ErrorGroup(name, kind, message, count, sample)
                if node is None and (nodes or more):
                    # A copy (the aggregator's totals, every interval): the names are bounded
                    # already (a group's own, or checked off the wire).
                    group.nodes = nodes if type(nodes) is frozenset else frozenset(nodes)
                    group.nodes_more = more
                    nodes, more = (), 0
            else:
                group.count += count
                if not group.sample:
                    group.sample = sample
            if first or last:
                first, last = first or last, last or first
                if not group.first or first < group.first:
                    group.first = first
                if last > group.last:
                    group.last = last
            if node is not None:
                if node not in group.nodes:
                    group.see(0.0, 0.0, (node,))
            elif nodes or more:
                group.see(0.0, 0.0, nodes, more)

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
        self.merge_errors(other)
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
            # Per group: [name, kind, message, count, sample, first, last, nodes, more].
            "x": [g.wire() for g in errors],
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
        self.merge_errors(delta)
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
    errors: list[ErrorWire]
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
    checked_errors = [_check_error(item) for item in errors]
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


_INF = math.inf


def _seconds(value: Any) -> float:
    """A wall-clock time off the wire: Unix seconds, finite, >= 0 (0: unknown)."""
    # `not 0 <= value < inf` is also true for NaN.
    if type(value) not in (float, int) or not 0 <= value < _INF:
        raise ValueError("snapshot: an error group's time must be finite Unix seconds >= 0")
    return float(value)


def _check_error(item: Any) -> ErrorWire:
    """One error group off the wire (controller's hot path: plain type checks, no generators)."""
    if type(item) is not list or len(item) != 9:
        raise ValueError("snapshot: bad error group")
    name, kind, message, n, sample, first, last, nodes, more = item
    if (
        type(name) is not str
        or type(kind) is not str
        or type(message) is not str
        or len(name) > MAX_TEXT
        or len(kind) > MAX_TEXT
        or len(message) > MAX_TEXT
    ):
        raise ValueError("snapshot: bad error group text")
    if type(sample) is not str or type(n) is not int or n < 1:
        raise ValueError("snapshot: bad error group count or sample")
    first, last = _seconds(first), _seconds(last)
    if first and last and first > last:
        raise ValueError("snapshot: an error group last seen before it was first seen")
    if type(nodes) is not list or (
        nodes
        and (
            len(nodes) > MAX_NODES
            or not all(type(n) is str and 0 < len(n) <= MAX_NODE_TEXT for n in nodes)
            or len(set(nodes)) != len(nodes)
        )
    ):
        raise ValueError(f"snapshot: an error group's nodes must be at most {MAX_NODES} names")
    if type(more) is not int or more < 0:
        raise ValueError("snapshot: an error group's count of further nodes must be >= 0")
    return (name, kind, message, n, sample[:MAX_TEXT], first, last, nodes, more)


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
    other = ErrorGroup(*OTHER_KEY, sum(g.count for g in rest), sample)
    for g in rest:
        other.see(g.first, g.last, g.nodes, g.nodes_more)
    return [*ranked[: MAX_ERRORS - 1], other]
