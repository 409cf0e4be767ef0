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

from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 3_600_000_000  # one hour
SIGNIFICANT_FIGURES = 3

# One template shared by every histogram: only its (pure) bucket arithmetic is used.
_TEMPLATE = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES)
COUNTS_LEN: int = _TEMPLATE.counts_len
_index_for = _TEMPLATE._counts_index_for
_value_from_index = _TEMPLATE.get_value_from_index
_highest_equivalent = _TEMPLATE.get_highest_equivalent_value


# Highest index a recorded value can reach: larger indexes exist in the layout (up to 2**32 µs)
# but values there are overflow.
_TOP_INDEX = int(_index_for(HIGHEST_US))


def bucket_index(value_us: int) -> int:
    """Index of the HDR bucket holding ``value_us`` (``COUNTS_LEN`` or more means overflow)."""
    return int(_index_for(value_us))


def bucket_upper_bound(index: int) -> int:
    """Largest value (µs) that falls into bucket ``index``: what percentiles report."""
    return int(_highest_equivalent(_value_from_index(index)))


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
        """Fold raw values in. Duplicates are counted first (C speed), so the pure-Python
        bucket arithmetic runs once per distinct value, not once per request."""
        tally = Counter(values)
        if not tally:
            return
        counts = self.counts
        for value, n in tally.items():
            v = value if value > 0 else 0
            index = _index_for(v) if v <= HIGHEST_US else COUNTS_LEN
            if index >= COUNTS_LEN:
                self.overflow += n
            else:
                counts[index] = counts.get(index, 0) + n
            self.sum_us += v * n
        n_total = sum(tally.values())
        lo = min(tally)
        hi = max(tally)
        lo = lo if lo > 0 else 0
        self.min_us = lo if self.total == 0 else min(self.min_us, lo)
        self.max_us = max(self.max_us, hi)
        self.total += n_total

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

    # -- wire form: flat [index, count, index, count, ...] plus scalars ---------------------
    def to_wire(self) -> list[Any]:
        flat: list[int] = []
        for index, n in self.counts.items():
            flat.append(index)
            flat.append(n)
        return [flat, self.total, self.overflow, self.sum_us, self.min_us, self.max_us]

    @classmethod
    def from_wire(cls, data: Any) -> Histogram:
        """Rebuild from :meth:`to_wire` output, validating every field. Raises ``ValueError``
        on anything inconsistent: the data may come off the network."""
        if not isinstance(data, (list, tuple)) or len(data) != 6:
            raise ValueError("histogram: expected a list of 6 fields")
        flat, total, overflow, sum_us, min_us, max_us = data
        if not isinstance(flat, (list, tuple)) or len(flat) % 2:
            raise ValueError("histogram: bad bucket list")
        if len(flat) > 2 * COUNTS_LEN:
            raise ValueError("histogram: more buckets than the layout has")
        for field in (total, overflow, sum_us, min_us, max_us):
            if type(field) is not int or field < 0:
                raise ValueError("histogram: scalar fields must be non-negative integers")
        h = cls()
        counts = h.counts
        bucketed = 0
        for i in range(0, len(flat), 2):
            index, n = flat[i], flat[i + 1]
            if type(index) is not int or type(n) is not int:
                raise ValueError("histogram: bucket entries must be integers")
            if not 0 <= index <= _TOP_INDEX or n <= 0:
                raise ValueError("histogram: bucket index or count out of range")
            counts[index] = counts.get(index, 0) + n
            bucketed += n
        if bucketed + overflow != total:
            raise ValueError("histogram: bucket counts do not add up to the total")
        if total and min_us > max_us:
            raise ValueError("histogram: min above max")
        # min/max must agree with the buckets: percentiles are capped at max_us and encode()
        # exports buckets up to max_us only, so an inconsistent max would lose counts.
        if bucketed and (
            min_us > bucket_upper_bound(min(counts)) or max_us < _value_from_index(max(counts))
        ):
            raise ValueError("histogram: min or max outside the recorded buckets")
        if overflow and max_us <= HIGHEST_US:
            raise ValueError("histogram: overflow with a maximum inside the range")
        h.total, h.overflow, h.sum_us, h.min_us, h.max_us = total, overflow, sum_us, min_us, max_us
        return h

    # -- export in the hdrhistogram package's own format -------------------------------------
    def to_hdr(self) -> HdrHistogram:
        """An ``hdrh.HdrHistogram`` with the same counts (overflow is not representable there)."""
        hdr = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES)
        for index, n in self.counts.items():
            hdr.counts[index] += n
            hdr.total_count += n
        if self.total - self.overflow:
            hdr.min_value = self.min_us
            hdr.max_value = min(self.max_us, HIGHEST_US)
        return hdr

    def encode(self) -> str:
        """The standard compressed base64 HDR form (readable by every HdrHistogram library)."""
        encoded = self.to_hdr().encode()
        return encoded.decode("ascii") if isinstance(encoded, bytes) else str(encoded)
