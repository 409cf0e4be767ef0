"""Sparse HDR histograms of latencies in microseconds.

The bucket layout is exactly the one of the ``hdrhistogram`` package (``hdrh``) for the range
1 µs .. 1 h at 3 significant digits, so every figure we report is the figure ``hdrh`` would give
for the same values, and :meth:`Histogram.encode` produces the package's standard base64 form.

Why not use ``hdrh.HdrHistogram`` directly: its counts array has ~46,000 slots (every merge and
percentile query walks all of them) and its ``record_value`` costs ~0.9 µs in pure Python. A load
interval touches a few hundred buckets, so we keep ``{bucket index: count}`` and use ``hdrh`` only
for the bucket arithmetic and the export format.

Values above the range are never dropped: they are counted in ``overflow`` and still count in
``total``; ``max_us`` keeps the exact largest value.

Example:
    >>> h = Histogram()
    >>> h.record_values([1000, 2000, 3000, 5000])
    >>> h.total, h.percentile(50), h.percentile(75)
    (4, 2000, 3001)
"""

from __future__ import annotations

import sys
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from functools import cache
from itertools import accumulate, compress, count, islice
from operator import ge, mul
from typing import Any, NamedTuple

from hdrh.histogram import HdrHistogram

from ..cluster.limits import MAX_BLOB
from ..native import pure_python

LOWEST_US = 1
HIGHEST_US = 3_600_000_000  # one hour
SIGNIFICANT_FIGURES = 3

# One template shared by every histogram: only its (pure) bucket arithmetic is used.
_TEMPLATE = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES)
COUNTS_LEN: int = _TEMPLATE.counts_len
_index_for = _TEMPLATE._counts_index_for
# Closed form of hdrh's counts index for unit magnitude 0 (lowest value 1):
# b = bit_length(v | sub_bucket_mask) - (half_magnitude + 1); index = (b << half) + (v >> b).
_SUB_BUCKET_MASK: int = _TEMPLATE.sub_bucket_mask
_HALF_MAGNITUDE: int = _TEMPLATE.sub_bucket_half_count_magnitude
_SHIFT = _HALF_MAGNITUDE + 1
COARSE_BITS = 5  # the timeline's resolution: 32 sub-buckets of 1024 pooled, 1.6-3.1 %
_COARSE_MASK = (1 << COARSE_BITS) - 1
_HALF_COUNT: int = _TEMPLATE.sub_bucket_half_count
assert _TEMPLATE.unit_magnitude == 0, "the closed-form bucket index assumes LOWEST_US == 1"


# Highest index a recorded value can reach: larger indexes exist in the layout (up to 2**32 µs)
# but values there are overflow.
_TOP_INDEX = int(_index_for(HIGHEST_US))


def bucket_index(value_us: int) -> int:
    """Index of the HDR bucket holding ``value_us`` (``COUNTS_LEN`` or more means overflow)."""
    return int(_index_for(value_us))


def bucket_upper_bound(index: int) -> int:
    """Largest value (µs) that falls into bucket ``index``: what percentiles report.

    Closed form of ``hdrh``'s ``get_highest_equivalent_value(get_value_from_index(index))``
    for this layout (the unit tests compare the two over every index)."""
    b = (index >> _HALF_MAGNITUDE) - 1
    if b < 0:
        return index
    sub = (index & (_HALF_COUNT - 1)) + _HALF_COUNT
    return ((sub + 1) << b) - 1


def bucket_lower_bound(index: int) -> int:
    """Smallest value (µs) that falls into bucket ``index``."""
    b = (index >> _HALF_MAGNITUDE) - 1
    if b < 0:
        return index
    return ((index & (_HALF_COUNT - 1)) + _HALF_COUNT) << b


# (bucket indices, counts, total, overflow, sum µs, min µs, max µs), validated.
CheckedWire = tuple[list[int], list[int], int, int, int, int, int]
_SWAP = sys.byteorder != "little"  # the wire is little-endian on every host
# Stands for "no bucket" in the min/max checks: beyond every index, with every low bit set.
_NO_BUCKET = ((_TOP_INDEX | _COARSE_MASK) + 1) | _COARSE_MASK
_HEAD = 6  # per histogram: total, overflow, sum, min, max, number of buckets
# Bound on what one blob may hold before it is parsed: the wire's own bound on one field
# (cluster/limits.py, the one source of every size bound), so any blob a frame can carry parses.
MAX_PACKED_BYTES = MAX_BLOB
# No latency is longer than this (2**53 µs: 285 years, exact in a float64), nor a sum longer
# than a signed 64-bit integer holds: beyond that, a peer's figures are refused, not wrapped.
MAX_VALUE_US = 2**53
MAX_SUM_US = 2**63 - 1


def pack(hists: Iterable[Histogram]) -> bytes:
    """Several histograms as one blob of little-endian unsigned 64-bit integers: a head of six
    per histogram (total, overflow, sum, min, max, number of buckets), then every histogram's
    bucket indices, then every histogram's counts. ~16 bytes per non-empty bucket.

    One blob per delta rather than one per request name: the controller parses and checks a
    whole delta with a handful of C-level calls (see :func:`unpack`).

    Example:
        >>> a, b = Histogram(), Histogram()
        >>> a.record_values([1000, 1000, 2000]); b.record_values([5])
        >>> [h.total for h in map(Histogram.from_checked, unpack(pack([a, b]), 2))]
        [3, 1]
    """
    head: list[int] = []
    indices: list[int] = []
    counts: list[int] = []
    for h in hists:
        head += (h.total, h.overflow, h.sum_us, h.min_us, h.max_us, len(h.counts))
        ordered = sorted(h.counts)  # unpack() reads a histogram's lowest/highest at its ends
        indices += ordered
        counts += map(h.counts.__getitem__, ordered)
    values = array("Q", head)
    values.extend(indices)
    values.extend(counts)
    if _SWAP:
        values.byteswap()
    return values.tobytes()


def unpack(data: Any, n: int) -> list[CheckedWire]:
    """Parse and validate a :func:`pack` blob of ``n`` histograms.

    Raises ``ValueError`` on anything inconsistent: the data may come off the network. The
    controller does this for every delta of every worker (1,000 workers x 20 request names a
    second: see benchmarks/aggregator.py), in C where ``pytest_swarm.stats._merge`` was built
    (:data:`ACCELERATED`), else in :func:`_py_unpack`: the same checks in the same order, the
    same errors, equal results."""
    return _unpack(data, n)


def _py_unpack(data: Any, n: int) -> list[CheckedWire]:
    """:func:`unpack` in pure Python (the reference the C one is tested against).

    An ``array`` parses the bytes in C and holds only unsigned integers (nothing can be
    negative). The checks of every bucket run over all histograms at once through ``map``
    and builtins (no bytecode per bucket); the checks of each histogram's own figures then
    run in one loop over the histograms: a delta's histograms are small (tens of buckets),
    and one iteration doing every check costs less than a dozen ``map`` passes of a few
    items each."""
    if type(data) is not bytes or len(data) % 8 or len(data) > MAX_PACKED_BYTES:
        raise ValueError("histograms: expected a blob of 8-byte integers")
    values = array("Q")
    values.frombytes(data)
    if _SWAP:
        values.byteswap()
    head_len = _HEAD * n
    if len(values) < head_len:
        raise ValueError("histograms: blob shorter than its head")
    head = values[:head_len].tolist()
    sizes = head[_HEAD - 1 :: _HEAD]
    buckets = sum(sizes)
    if len(values) != head_len + 2 * buckets:
        raise ValueError("histograms: bucket lists do not match the head")
    # Lists, once: later passes read ints that exist instead of boxing array items again.
    indices = values[head_len : head_len + buckets].tolist()
    numbers = values[head_len + buckets :].tolist()
    if 0 in numbers or (buckets and max(indices) > _TOP_INDEX):
        raise ValueError("histograms: bucket index or count out of range")
    # Each histogram's buckets strictly ascending (pack() sorts them): one comparison per
    # neighbouring pair, where a descent is only allowed where the next histogram starts.
    # Unsorted or repeated indices would make the first and last bucket lie about min/max.
    descents = set(compress(count(1), map(ge, indices, islice(indices, 1, None))))
    if descents and not descents <= set(accumulate(sizes)):
        raise ValueError("histograms: bucket indices not strictly ascending")
    upper, lower = _bound_tables()
    pool_lower = _pool_lower_table()
    top_floor = lower[_TOP_INDEX]
    out: list[CheckedWire] = []
    append = out.append
    start = 0
    fields = iter(head)
    for total, overflow, sum_us, min_us, max_us, size in zip(*(fields,) * _HEAD, strict=True):
        end = start + size
        counts = numbers[start:end]
        if sum(counts) + overflow != total:
            raise ValueError("histograms: bucket counts do not add up to the total")
        if max_us > MAX_VALUE_US or sum_us > MAX_SUM_US:
            raise ValueError("histograms: max or sum beyond any measurable latency")
        if not total:
            if sum_us or min_us or max_us:
                raise ValueError("histograms: an empty histogram with a sum, min or max")
            append(([], counts, 0, 0, 0, 0, 0))  # no bucket: every count is >= 1
            continue
        index_list = indices[start:end]
        # min/max must agree with the buckets: percentiles are capped at max_us and encode()
        # exports buckets up to max_us only, so an inconsistent max would lose counts. Both
        # are checked against the pool of the extreme bucket (coarse() histograms pass); no
        # min under its lowest bucket's pool (min = 0 with buckets at 1 s). An all-overflow
        # histogram's min is bounded by the top of the range.
        if size:
            low, high = index_list[0], index_list[-1]
            if (
                min_us > upper[low | _COARSE_MASK]
                or min_us < pool_lower[low]
                or max_us < pool_lower[high]
            ):
                raise ValueError("histograms: min or max outside the recorded buckets")
        elif min_us < top_floor:
            raise ValueError("histograms: min or max outside the recorded buckets")
        if min_us > max_us:
            raise ValueError("histograms: min above max")
        if overflow and max_us <= HIGHEST_US:
            raise ValueError("histograms: overflow with a maximum inside the range")
        # The sum lies within what the buckets' bounds allow (the lower bound of each one's
        # pool of 2**COARSE_BITS buckets, so that coarse() histograms pass; its upper bound),
        # each overflowed value between the range's top and the maximum: a peer cannot make
        # the mean say anything.
        if not (
            sum(map(mul, counts, map(pool_lower.__getitem__, index_list)))
            + overflow * (HIGHEST_US + 1)
            <= sum_us
            <= sum(map(mul, counts, map(upper.__getitem__, index_list))) + overflow * max_us
        ):
            raise ValueError("histograms: sum inconsistent with the buckets")
        append((index_list, counts, total, overflow, sum_us, min_us, max_us))
        start = end
    return out


@cache
def _bound_tables() -> tuple[list[int], list[int]]:
    """bucket_upper_bound / bucket_lower_bound of every index a checked histogram can hold,
    as lists (built on first use: ~23,000 entries each). The upper table also answers the
    no-bucket marker (an empty or all-overflow histogram) with a bound nothing exceeds."""
    upper = [bucket_upper_bound(i) for i in range(_NO_BUCKET)]
    upper.append(2**64)
    lower = [bucket_lower_bound(i) for i in range(_TOP_INDEX + 1)]
    return upper, lower


@cache
def _pool_lower_table() -> list[int]:
    """The lower bound of the pool of every bucket index a checked histogram can hold (the
    smallest value :meth:`Histogram.coarse` may have moved into its pool)."""
    _, lower = _bound_tables()
    return [lower[i & ~_COARSE_MASK] for i in range(_TOP_INDEX + 1)]


@cache
def _pool_table() -> list[int]:
    """The pool (:meth:`Histogram.coarse`'s key) of every bucket index a checked histogram
    can hold: one C-level lookup per bucket instead of an OR and a ``min`` call."""
    return [min(i | _COARSE_MASK, _TOP_INDEX) for i in range(_TOP_INDEX + 1)]


def _py_accumulate(
    into: dict[int, int] | list[int],
    pooled: dict[int, int] | None,
    indices: Iterable[int],
    numbers: Iterable[int],
) -> None:
    """Add each (bucket index, count) pair into ``into`` (sparse counts, or a dense list of
    every index) and, unless None, into ``pooled`` in coarse form (the pool's key, as
    :meth:`Histogram.coarse` has it): one pass over the buckets for both, the controller's
    per-name add (a run's totals and its timeline second)."""
    if pooled is not None:
        pooled_get = pooled.get
        pool = _pool_table()
        if isinstance(into, list):
            for index, n in zip(indices, numbers, strict=True):
                into[index] += n
                key = pool[index]
                pooled[key] = pooled_get(key, 0) + n
        else:
            get = into.get
            for index, n in zip(indices, numbers, strict=True):
                into[index] = get(index, 0) + n
                key = pool[index]
                pooled[key] = pooled_get(key, 0) + n
    elif isinstance(into, list):
        for index, n in zip(indices, numbers, strict=True):
            into[index] += n
    else:
        get = into.get
        for index, n in zip(indices, numbers, strict=True):
            into[index] = get(index, 0) + n


def _py_add_pooled(counts: dict[int, int], indices: Iterable[int], numbers: Iterable[int]) -> None:
    """``counts[pool of i] += n`` for each (bucket index, count) pair: a wire histogram added
    in its coarse form (:meth:`Histogram.coarse`'s keys)."""
    get = counts.get
    for index, n in zip(map(_pool_table().__getitem__, indices), numbers, strict=True):
        counts[index] = get(index, 0) + n


class Kernels(NamedTuple):
    """The controller's merge loop, one implementation: :func:`unpack` and the bucket adds
    every wire histogram goes through (into the run's totals, sparse or dense, and into its
    timeline second in coarse form: :func:`_py_accumulate`; into the total's second:
    :func:`_py_add_pooled`)."""

    unpack: Callable[[Any, int], list[CheckedWire]]
    accumulate: Callable[
        [dict[int, int] | list[int], dict[int, int] | None, Iterable[int], Iterable[int]], None
    ]
    add_pooled: Callable[[dict[int, int], Iterable[int], Iterable[int]], None]


def _c_kernels() -> Kernels | None:
    """The C implementation (``pytest_swarm/stats/_merge.c``), configured with this module's
    layout and bounds, or None where it was not built."""
    try:
        from . import _merge
    except ImportError:
        return None
    _merge.configure(
        _TOP_INDEX,
        _HALF_MAGNITUDE,
        COARSE_BITS,
        HIGHEST_US,
        MAX_VALUE_US,
        MAX_SUM_US,
        MAX_PACKED_BYTES,
    )
    return Kernels(_merge.unpack, _merge.accumulate, _merge.add_pooled)


IMPLEMENTATIONS: dict[str, Kernels] = {
    "python": Kernels(_py_unpack, _py_accumulate, _py_add_pooled)
}
"""Every implementation of the merge loop available here: "python" always, "c" where it was
built (the tests run against each, see :func:`use`)."""
_built = _c_kernels()
if _built is not None:
    IMPLEMENTATIONS["c"] = _built

# The implementation in use: module globals, so that every caller reads the current one.
_unpack, _accumulate, _add_pooled = IMPLEMENTATIONS["python"]
_current = "python"


def use(name: str) -> str:
    """Switch the merge loop to implementation ``name`` (a key of :data:`IMPLEMENTATIONS`);
    returns the one in use before. Both give equal results and raise the same errors."""
    global _unpack, _accumulate, _add_pooled, _current, ACCELERATED
    previous = _current
    _unpack, _accumulate, _add_pooled = IMPLEMENTATIONS[name]
    _current = name
    ACCELERATED = name == "c"
    return previous


ACCELERATED = False
"""Whether the merge loop runs in C (``pytest_swarm.stats._merge`` was built, and
``SWARM_PURE_PYTHON=1`` does not ask for the pure-Python one)."""
if "c" in IMPLEMENTATIONS and not pure_python():
    use("c")


def check_wire(data: Any) -> CheckedWire:
    """Validate the wire form of one histogram (:meth:`Histogram.to_wire`)."""
    return unpack(data, 1)[0]


class Histogram:
    """A mergeable latency histogram (values are integer microseconds).

    Example:
        >>> a, b = Histogram(), Histogram()
        >>> a.record_values([10, 20]); b.record_values([30])
        >>> a.merge(b)
        >>> (a.total, a.min_us, a.max_us)
        (3, 10, 30)
    """

    __slots__ = ("counts", "max_us", "min_us", "overflow", "sum_us", "total")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.total = 0
        self.overflow = 0
        self.sum_us = 0
        self.min_us = 0
        self.max_us = 0

    def __repr__(self) -> str:
        return (
            f"Histogram(total={self.total}, buckets={len(self.counts)}, overflow={self.overflow})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Histogram):
            return NotImplemented
        return (
            self.counts == other.counts
            and self.total == other.total
            and self.overflow == other.overflow
            and self.sum_us == other.sum_us
            and self.min_us == other.min_us
            and self.max_us == other.max_us
        )

    def record_values(self, values: Iterable[int]) -> None:
        """Fold raw values in (once per report interval, off the request path).

        Equal values are counted first by ``Counter`` at C speed; the bucket index is then
        computed inline once per distinct value (``(b << 10) + (v >> b)``, the closed form of
        ``hdrh``'s arithmetic for this layout, checked against it by the unit tests): a
        fraction of the ~1.4 µs of calling ``hdrh`` per value."""
        vals = values if isinstance(values, list) else list(values)
        if not vals:
            return
        lo, hi = min(vals), max(vals)
        if lo < 0:
            vals = [v if v > 0 else 0 for v in vals]
            lo = 0
        in_range = vals
        if hi > HIGHEST_US:
            in_range = [v for v in vals if v <= HIGHEST_US]
            self.overflow += len(vals) - len(in_range)
        mask, shift, half = _SUB_BUCKET_MASK, _SHIFT, _HALF_MAGNITUDE
        counts = self.counts
        get = counts.get
        # Equal values first, at C speed (integer µs repeat a lot at high request rates);
        # then the bucket arithmetic once per distinct value.
        for v, n in Counter(in_range).items():
            b = (v | mask).bit_length() - shift
            index = (b << half) + (v >> b)
            counts[index] = get(index, 0) + n
        self.sum_us += sum(vals)
        self.min_us = lo if self.total == 0 else min(self.min_us, lo)
        self.max_us = max(self.max_us, hi)
        self.total += len(vals)

    def merge(self, other: Histogram) -> None:
        """Add ``other`` into this histogram, exactly."""
        if not other.total:
            return
        counts = self.counts
        for index, n in other.counts.items():
            counts[index] = counts.get(index, 0) + n
        self.min_us = other.min_us if self.total == 0 else min(self.min_us, other.min_us)
        self.max_us = max(self.max_us, other.max_us)
        self.overflow += other.overflow
        self.sum_us += other.sum_us
        self.total += other.total

    def coarse(self, drop_bits: int = COARSE_BITS) -> Histogram:
        """A copy with every 2**drop_bits adjacent buckets pooled into the last of them
        (1.6-3.1 % resolution instead of 0.05-0.1 % at the default): the controller's
        per-second timeline merges these, so it handles several times fewer buckets. A
        percentile of the copy is the upper bound of its pool (capped at the exact maximum):
        it may read high, never low, as HDR's own bucket bounds do. Totals, min, max and sum
        stay exact; verdicts never use the coarse form.

        Example:
            >>> h = Histogram(); h.record_values([5000, 5004])
            >>> len(h.counts), len(h.coarse().counts), h.coarse().total
            (2, 1, 2)
            >>> h.percentile(50) <= h.coarse().percentile(50) <= h.percentile(50) * 1.032
            True
        """
        low_bits = (1 << drop_bits) - 1
        clone = Histogram()
        counts = clone.counts
        for index, n in self.counts.items():
            key = min(index | low_bits, _TOP_INDEX)
            counts[key] = counts.get(key, 0) + n
        clone.total, clone.overflow, clone.sum_us = self.total, self.overflow, self.sum_us
        clone.min_us, clone.max_us = self.min_us, self.max_us
        return clone

    def copy(self) -> Histogram:
        clone = Histogram()
        clone.merge(self)
        return clone

    @property
    def mean_us(self) -> float:
        return self.sum_us / self.total if self.total else 0.0

    def percentile(self, q: float) -> int:
        """Value (µs) at percentile ``q`` in (0, 100]: the upper bound of the bucket holding it,
        as ``hdrh.get_value_at_percentile`` reports. Ranks that fall among overflowed values
        return the exact maximum. 0 when empty."""
        if not self.total:
            return 0
        target = max(int(min(q, 100.0) * self.total / 100 + 0.5), 1)
        seen = 0
        for index in sorted(self.counts):
            seen += self.counts[index]
            if seen >= target:
                return min(bucket_upper_bound(index), self.max_us) if index else 0
        return self.max_us

    def percentiles(self, qs: Iterable[float]) -> dict[float, int]:
        """Several percentiles in one walk over the buckets."""
        wanted = sorted(set(qs))
        result: dict[float, int] = {}
        if not self.total:
            return dict.fromkeys(wanted, 0)
        targets = [(q, max(int(min(q, 100.0) * self.total / 100 + 0.5), 1)) for q in wanted]
        it = iter(targets)
        current = next(it, None)
        seen = 0
        for index in sorted(self.counts):
            seen += self.counts[index]
            while current is not None and seen >= current[1]:
                result[current[0]] = min(bucket_upper_bound(index), self.max_us) if index else 0
                current = next(it, None)
            if current is None:
                break
        while current is not None:
            result[current[0]] = self.max_us
            current = next(it, None)
        return result

    def items(self) -> Iterator[tuple[int, int]]:
        """(bucket upper bound µs, count) in increasing order, for reports."""
        for index in sorted(self.counts):
            yield bucket_upper_bound(index), self.counts[index]

    # -- wire form (see pack / unpack) ------------------------------------------------------
    def to_wire(self) -> bytes:
        """Compact wire form: :func:`pack` of this one histogram."""
        return pack((self,))

    @classmethod
    def from_wire(cls, data: Any) -> Histogram:
        """Rebuild from :meth:`to_wire` output, validating every field. Raises ``ValueError``
        on anything inconsistent: the data may come off the network."""
        return cls.from_checked(check_wire(data))

    @classmethod
    def from_checked(cls, checked: CheckedWire) -> Histogram:
        h = cls()
        h.merge_checked(checked)
        return h

    def merge_pooled(self, checked: CheckedWire) -> None:
        """Add a validated wire histogram in its :meth:`coarse` form: the same counts as
        ``self.merge(Histogram.from_checked(checked).coarse())``, in one pass and without the
        two intermediate histograms (the controller's per-second timeline does this for every
        request name of every worker's delta).

        Example:
            >>> h = Histogram(); h.record_values([5000, 5004, 9000])
            >>> pooled = Histogram(); pooled.merge_pooled(check_wire(h.to_wire()))
            >>> pooled == h.coarse()
            True
        """
        indices, numbers, total = checked[:3]
        if not total:
            return
        _add_pooled(self.counts, indices, numbers)
        _add_figures(self, checked)

    def merge_checked(self, checked: CheckedWire) -> None:
        """Add a validated wire histogram (see :func:`check_wire`) without building a
        Histogram for it first: the controller's hot path."""
        indices, numbers, total = checked[:3]
        if not total:
            return
        _accumulate(self.counts, None, indices, numbers)
        _add_figures(self, checked)

    # -- export in the hdrhistogram package's own format -------------------------------------
    def to_hdr(self) -> HdrHistogram:
        """An ``hdrh.HdrHistogram`` with the same counts (overflow is not representable there)."""
        hdr = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES)
        for index, n in self.counts.items():
            hdr.counts[index] += n
            hdr.total_count += n
        if self.total - self.overflow:
            hdr.min_value = self.min_us
            # Never below the highest non-empty bucket: hdrh encodes counts up to max_value's
            # bucket only (a wire peer's max is checked to within a pool of buckets).
            top = bucket_lower_bound(max(self.counts)) if self.counts else 0
            hdr.max_value = min(max(self.max_us, top), HIGHEST_US)
        return hdr

    def encode(self) -> str:
        """The standard compressed base64 HDR form (readable by every HdrHistogram library)."""
        encoded = self.to_hdr().encode()
        return encoded.decode("ascii") if isinstance(encoded, bytes) else str(encoded)


def _add_figures(into: Histogram | Accumulator, checked: CheckedWire) -> None:
    """Add a validated wire histogram's total, overflow, sum, min and max (not its buckets)."""
    _, _, total, overflow, sum_us, min_us, max_us = checked
    # Plain comparisons rather than min()/max() calls: this runs for every (worker, name).
    if min_us < into.min_us or not into.total:
        into.min_us = min_us
    if max_us > into.max_us:
        into.max_us = max_us
    into.overflow += overflow
    into.sum_us += sum_us
    into.total += total


# Buckets past which an Accumulator keeps its counts in a dense list (~186 KB: no more than
# the dict of ~2,000 entries it replaces): merging into a large dict costs ~3x more per bucket
# than into a list, and a run's totals never take more memory for it.
DENSE_AT = 2048


class Accumulator:
    """A histogram summed from many validated wire histograms: the controller's totals.

    Small ones are a dict like :class:`Histogram`; past ``DENSE_AT`` buckets the counts move
    to a dense list of every bucket index, where a merge is one indexed add per bucket (no
    hashing, no dict growth). :meth:`histogram` gives the sparse :class:`Histogram` back.

    Example:
        >>> a = Histogram(); a.record_values([1000, 2000])
        >>> b = Histogram(); b.record_values([3000])
        >>> acc = Accumulator()
        >>> acc.merge(check_wire(a.to_wire())); acc.merge_histogram(b)
        >>> a.merge(b); acc.histogram() == a
        True
    """

    __slots__ = ("counts", "dense", "max_us", "min_us", "overflow", "sum_us", "total")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.dense: list[int] | None = None
        self.total = 0
        self.overflow = 0
        self.sum_us = 0
        self.min_us = 0
        self.max_us = 0

    def merge(self, checked: CheckedWire, pooled: Histogram | None = None) -> None:
        """Add a validated wire histogram; with ``pooled``, also add it to that histogram in
        its coarse form (as ``pooled.merge_pooled(checked)`` does) in the same pass over the
        buckets: the controller's timeline second of this request name.

        Example:
            >>> h = Histogram(); h.record_values([5000, 5004, 9000])
            >>> acc, second = Accumulator(), Histogram()
            >>> acc.merge(check_wire(h.to_wire()), second)
            >>> acc.histogram() == h and second == h.coarse()
            True
        """
        indices, numbers, total, overflow, sum_us, min_us, max_us = checked
        if not total:
            return
        # One pass over the buckets for both adds (in C where it was built: see Kernels).
        if pooled is None:
            into = None
        else:
            into = pooled.counts
            # _add_figures, inline: this runs for every request name of every worker's delta.
            if min_us < pooled.min_us or not pooled.total:
                pooled.min_us = min_us
            if max_us > pooled.max_us:
                pooled.max_us = max_us
            pooled.overflow += overflow
            pooled.sum_us += sum_us
            pooled.total += total
        dense = self.dense
        if dense is not None:
            _accumulate(dense, into, indices, numbers)
        else:
            counts = self.counts
            _accumulate(counts, into, indices, numbers)
            if len(counts) > DENSE_AT:
                self._densify()
        if min_us < self.min_us or not self.total:
            self.min_us = min_us
        if max_us > self.max_us:
            self.max_us = max_us
        self.overflow += overflow
        self.sum_us += sum_us
        self.total += total

    def merge_histogram(self, h: Histogram) -> None:
        counts = h.counts
        self.merge(
            (counts.keys(), counts.values(), h.total, h.overflow, h.sum_us, h.min_us, h.max_us)  # type: ignore[arg-type]
        )

    def _densify(self) -> None:
        dense = [0] * (_TOP_INDEX + 1)
        for index, n in self.counts.items():
            dense[index] = n
        self.dense, self.counts = dense, {}

    def histogram(self) -> Histogram:
        h = Histogram()
        dense = self.dense
        if dense is None:
            h.counts = dict(self.counts)
        else:
            nonzero = list(compress(count(), dense))  # in C: the indices of non-empty buckets
            h.counts = dict(zip(nonzero, map(dense.__getitem__, nonzero), strict=True))
        h.total, h.overflow, h.sum_us = self.total, self.overflow, self.sum_us
        h.min_us, h.max_us = self.min_us, self.max_us
        return h
