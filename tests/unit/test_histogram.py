"""Unit tests for pytest_swarm.stats.histogram.

The reference ("oracle") for every figure is the ``hdrhistogram`` package itself,
``HdrHistogram(1, 3_600_000_000, 3)``, fed the same values with ``record_value``. Our histogram
differs from it on purpose in three documented ways, and the oracle accounts for each:

1. *Overflow.* Values above ``HIGHEST_US`` (1 h) are counted in ``overflow`` and in ``total``;
   ``hdrh`` would drop most of them (it silently accepts up to 2**32 - 1, which is past our
   range, and refuses the rest). The oracle therefore records only the in-range values
   (``v <= HIGHEST_US``) into ``hdrh``.
2. *Ranks count overflowed values.* The rank of percentile ``q`` is computed as ``hdrh`` does,
   ``max(int(q * N / 100 + 0.5), 1)``, but over all ``N`` values. When that rank falls among the
   in-range values, the oracle asks ``hdrh`` for the percentile that selects the same rank among
   its ``n_in`` values, ``100 * rank / n_in``; when it falls among the overflowed values the
   answer is the exact maximum. Without overflow this is simply ``get_value_at_percentile(q)``.
3. *Capped at the exact maximum.* ``hdrh`` reports the upper bound of the bucket; we report
   ``min(bucket upper bound, max_us)`` so no percentile exceeds the largest value seen.

A second, independent oracle sorts the raw values and takes the bucket upper bound of the value
at that rank; both must agree with ours.
"""

from __future__ import annotations

import contextlib
import itertools
import random
import tracemalloc
from array import array
from collections.abc import Sequence
from functools import reduce
from typing import Any

import msgpack
import pytest
from hdrh.histogram import HdrHistogram
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from merge_implementations import merge_implementation  # noqa: F401  (autouse)

from pytest_swarm.stats import histogram as histogram_module
from pytest_swarm.stats.histogram import (
    COUNTS_LEN,
    HIGHEST_US,
    LOWEST_US,
    SIGNIFICANT_FIGURES,
    Accumulator,
    Histogram,
    bucket_index,
    bucket_upper_bound,
    check_wire,
    pack,
    unpack,
)

# Interesting values: bucket edges, the range end and just past it, the end of what hdrh would
# still accept (2**32 - 1) and past it.
EDGES = [0, 1, 2, 2047, 2048, 2049, 4095, 4096, 1_000_000, HIGHEST_US - 1, HIGHEST_US]
EDGES += [HIGHEST_US + 1, 2**32 - 1, 2**32, 5_000_000_000]

value = st.one_of(
    st.integers(0, 5_000_000_000),
    st.integers(0, 20_000),
    st.integers(0, 3_000_000),
    st.sampled_from(EDGES),
)
values_lists = st.lists(value, min_size=1, max_size=60)
quantile = st.one_of(
    st.sampled_from([0.001, 1, 10, 25, 50, 75, 90, 95, 99, 99.9, 99.99, 100]),
    st.floats(min_value=0.0, max_value=100.0, exclude_min=True, allow_nan=False),
)
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def oracle_hdr(values: Sequence[int]) -> HdrHistogram:
    hdr = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES)
    for v in values:
        if v <= HIGHEST_US:
            assert hdr.record_value(v)
    return hdr


def rank(q: float, n: int) -> int:
    """hdrh's get_target_count_at_percentile, over ``n`` values."""
    return max(int(min(q, 100.0) * n / 100 + 0.5), 1)


def oracle_percentile(hdr: HdrHistogram, values: Sequence[int], q: float) -> int:
    """What Histogram.percentile(q) must be: see the module docstring."""
    n_all, n_in, top = len(values), int(hdr.total_count), max(values)
    target = rank(q, n_all)
    if target > n_in:
        return top  # among the overflowed values: the exact maximum
    in_range_q = q if n_in == n_all else 100.0 * target / n_in
    assert rank(in_range_q, n_in) == target  # the translated percentile picks the same rank
    return min(int(hdr.get_value_at_percentile(in_range_q)), top)


def sorted_oracle(values: Sequence[int], q: float) -> int:
    """Independent of hdrh's percentile walk: the value at that rank, rounded up to its bucket."""
    ordered = sorted(values)
    v = ordered[rank(q, len(ordered)) - 1]
    if v > HIGHEST_US:
        return ordered[-1]
    return min(bucket_upper_bound(bucket_index(v)), ordered[-1])


def hist_of(values: Sequence[int]) -> Histogram:
    h = Histogram()
    h.record_values(values)
    return h


# -- recording and percentiles --------------------------------------------------------------------


def test_bucket_layout_is_hdrh_layout() -> None:
    hdr = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES)
    assert hdr.counts_len == COUNTS_LEN
    for v in EDGES[:11]:
        assert bucket_index(v) == hdr._counts_index_for(v)
        assert bucket_upper_bound(bucket_index(v)) == hdr.get_highest_equivalent_value(v)
        assert bucket_upper_bound(bucket_index(v)) >= v
    assert bucket_index(HIGHEST_US) < COUNTS_LEN


@FAST
@given(values_lists, st.lists(quantile, min_size=1, max_size=4))
def test_percentiles_match_hdrh(values: list[int], qs: list[float]) -> None:
    ours = hist_of(values)
    hdr = oracle_hdr(values)
    many = ours.percentiles(qs)
    for q in qs:
        expected = oracle_percentile(hdr, values, q)
        assert ours.percentile(q) == expected, (q, sorted(values))
        assert many[q] == expected
        assert sorted_oracle(values, q) == expected


@settings(max_examples=50, deadline=None)
@given(values_lists)
def test_scalars_are_exact(values: list[int]) -> None:
    h = hist_of(values)
    in_range = [v for v in values if v <= HIGHEST_US]
    assert h.total == len(values)
    assert h.min_us == min(values)
    assert h.max_us == max(values)
    assert h.sum_us == sum(values)
    assert h.mean_us == sum(values) / len(values)
    assert h.overflow == len(values) - len(in_range)  # counted, never dropped (row 21)
    assert sum(h.counts.values()) == len(in_range)
    assert sum(n for _, n in h.items()) == len(in_range)
    hdr = oracle_hdr(values)
    assert {i: n for i, n in enumerate(hdr.counts) if n} == h.counts
    bounds = [b for b, _ in h.items()]
    assert bounds == sorted(bounds)
    assert h.percentile(100) == max(values)


@settings(max_examples=100, deadline=None)
@given(values_lists, st.lists(st.integers(0, 60), max_size=5))
def test_recording_in_pieces_equals_recording_at_once(values: list[int], cuts: list[int]) -> None:
    h = Histogram()
    bounds = [0, *sorted(cuts), len(values)]
    for lo, hi in itertools.pairwise(bounds):
        h.record_values(values[lo:hi])
    assert h == hist_of(values)


def test_overflow_only() -> None:
    h = hist_of([HIGHEST_US + 5, 4_000_000_000])
    assert (h.total, h.overflow, h.counts) == (2, 2, {})
    assert (h.min_us, h.max_us) == (HIGHEST_US + 5, 4_000_000_000)
    assert h.percentile(1) == h.percentile(50) == h.percentile(100) == 4_000_000_000
    assert "overflow=2" in repr(h)


def test_overflowed_ranks_report_the_exact_maximum() -> None:
    h = hist_of([1000] * 9 + [HIGHEST_US * 2])
    assert h.percentile(90) == 1000
    assert h.percentile(95) == h.percentile(100) == HIGHEST_US * 2
    assert h.percentiles([90, 99]) == {90: 1000, 99: HIGHEST_US * 2}


def test_empty_histogram() -> None:
    h = Histogram()
    h.record_values([])
    assert (h.total, h.mean_us, h.percentile(50)) == (0, 0.0, 0)
    assert h.percentiles([50, 99]) == {50: 0, 99: 0}
    assert list(h.items()) == []
    assert h == Histogram()


def test_negative_values_count_as_zero() -> None:
    h = hist_of([-5, 10])
    assert (h.total, h.min_us, h.max_us, h.sum_us) == (2, 0, 10, 10)
    assert h.percentile(50) == 0


def test_module_doctests() -> None:
    import doctest

    assert doctest.testmod(histogram_module).failed == 0


# -- merge: exact, in any order (row 22) ----------------------------------------------------------

parts_lists = st.lists(st.lists(value, max_size=25), min_size=1, max_size=6)


@settings(max_examples=50, deadline=None)
@given(parts_lists, st.randoms(use_true_random=False))
def test_merge_of_many_equals_one_histogram_of_all(parts: list[list[int]], rnd: Any) -> None:
    everything = [v for part in parts for v in part]
    expected = hist_of(everything)
    hists = [hist_of(p) for p in parts]
    before = [h.to_wire() for h in hists]
    # Left fold in a random order (commutativity) ...
    order = list(hists)
    rnd.shuffle(order)
    folded = reduce(lambda a, b: (a.merge(b), a)[1], order, Histogram())
    assert folded == expected
    # ... and a random tree of merges (associativity).
    pool = [h.copy() for h in hists]
    while len(pool) > 1:
        i, j = sorted(rnd.sample(range(len(pool)), 2))
        right = pool.pop(j)
        pool[i].merge(right)
    assert pool[0] == expected
    # The inputs are untouched.
    assert [h.to_wire() for h in hists] == before
    if everything:
        for q in (50, 99, 100):
            assert folded.percentile(q) == sorted_oracle(everything, q)


@settings(max_examples=40, deadline=None)
@given(values_lists, values_lists, values_lists)
def test_merge_is_associative(a: list[int], b: list[int], c: list[int]) -> None:
    ab_c = hist_of(a)
    ab_c.merge(hist_of(b))
    ab_c.merge(hist_of(c))
    bc = hist_of(b)
    bc.merge(hist_of(c))
    a_bc = hist_of(a)
    a_bc.merge(bc)
    assert ab_c == a_bc == hist_of(a + b + c)


def test_merge_into_empty_and_of_empty() -> None:
    h = hist_of([5, 7])
    empty = Histogram()
    h.merge(empty)
    assert h == hist_of([5, 7])
    empty.merge(h)
    assert empty == h
    assert empty.counts is not h.counts


def test_copy_is_independent() -> None:
    h = hist_of([1, 2, 3])
    clone = h.copy()
    clone.record_values([10**6])
    assert h == hist_of([1, 2, 3])
    assert clone != h
    assert (h == "not a histogram") is False


# -- wire form ------------------------------------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(st.lists(value, max_size=60))
def test_wire_round_trip(values: list[int]) -> None:
    h = hist_of(values)
    assert Histogram.from_wire(h.to_wire()) == h
    # Through the actual network codec, too.
    packed = msgpack.unpackb(msgpack.packb(h.to_wire()))
    assert Histogram.from_wire(packed) == h
    # Only the bytes form is accepted: a list of the same integers is not the wire format.
    with pytest.raises(ValueError, match="histogram"):
        Histogram.from_wire(list(h.to_wire()))


def _valid_ints() -> list[int]:
    """The wire form as the integers it packs: total, overflow, sum, min, max, number of
    buckets, the bucket indices, then their counts."""
    values = array("Q")
    values.frombytes(hist_of([1000, 2000, 2000, HIGHEST_US + 1]).to_wire())
    return list(values)


def _pairs(values: list[int]) -> list[int]:
    """The buckets of a one-histogram wire form as a flat [index, count, index, count, ...]."""
    n = values[5]
    indices, counts = values[6 : 6 + n], values[6 + n :]
    return [x for pair in zip(indices, counts, strict=True) for x in pair]


def _layout(scalars: list[Any], pairs: list[Any]) -> list[Any]:
    """Scalars and flat pairs back into the packed layout; an odd pair list leaves an index
    without a count at the end."""
    indices, counts = pairs[0::2], pairs[1::2]
    return [*scalars, len(counts), *indices[: len(counts)], *counts, *indices[len(counts) :]]


def _pack(values: list[Any]) -> Any:
    """Back to the bytes form when every value fits an unsigned 64-bit integer; otherwise the
    raw list (which a peer could only send as something other than the wire format, rejected
    as such)."""
    try:
        if all(type(v) is int for v in values):
            return array("Q", values).tobytes()
    except OverflowError:
        pass
    return values


def _with(field: int, replacement: Any) -> Any:
    """Field numbers: 0 the bucket list, 1 total, 2 overflow, 3 sum, 4 min, 5 max."""
    values = _valid_ints()
    if field == 0:
        if not isinstance(replacement, list):
            return [*values[:5], replacement]
        return _pack(_layout(values[:5], replacement))
    scalars = values[:5]
    scalars[field - 1] = replacement
    return _pack(_layout(scalars, _pairs(values)))


def _with_flat(mutate: Any) -> Any:
    values = _valid_ints()
    flat = _pairs(values)
    mutate(flat)
    return _pack(_layout(values[:5], flat))


def _valid() -> bytes:
    return bytes(_pack(_valid_ints()))


MALFORMED: dict[str, Any] = {
    "not a list": {"counts": []},
    "a string": "abcdef",
    "None": None,
    "too few fields": _valid()[:32],
    "a partial integer": _valid() + b"\x00",
    "bucket list not a list": _with(0, {1: 2}),
    "odd bucket list": _with_flat(lambda f: f.append(5)),
    "too many buckets": _with(0, [0, 1] * (COUNTS_LEN + 1)),
    "negative count": _with_flat(lambda f: f.__setitem__(1, -1)),
    "zero count": _with_flat(lambda f: f.__setitem__(1, 0)),
    "negative index": _with_flat(lambda f: f.__setitem__(0, -1)),
    "index past the layout": _with_flat(lambda f: f.__setitem__(0, COUNTS_LEN)),
    "index past the range": _with_flat(lambda f: f.__setitem__(0, bucket_index(HIGHEST_US) + 1)),
    "huge index": _with_flat(lambda f: f.__setitem__(0, 10**30)),
    "float index": _with_flat(lambda f: f.__setitem__(0, 1.0)),
    "string count": _with_flat(lambda f: f.__setitem__(1, "1")),
    "bool count": _with_flat(lambda f: f.__setitem__(1, True)),
    "nested bucket": _with_flat(lambda f: f.__setitem__(1, [1])),
    "counts above total": _with(1, 3),
    "counts below total": _with(1, 5),
    "overflow inconsistent": _with(2, 0),
    "negative total": _with(1, -4),
    "float total": _with(1, 4.0),
    "bool overflow": _with(2, True),
    "string sum": _with(3, "1"),
    "negative min": _with(4, -1),
    "None max": _with(5, None),
    "min above max": _with(4, HIGHEST_US + 2),
    "max below the highest bucket": _with(5, 1000),
    "overflow with an in-range max": _with(5, HIGHEST_US),
    "min above the lowest bucket": _with(4, 1500),
    # Issue 8: every figure checked against the buckets.
    "unsorted bucket indices": _with_flat(lambda f: f.__setitem__(slice(0, 4), [*f[2:4], *f[0:2]])),
    "repeated bucket index": _with_flat(lambda f: f.__setitem__(2, f[0])),
    "min 0 whatever the buckets": _with(4, 0),
    "max of 2**63": _with(5, 2**63),
    "sum below the buckets": _with(3, 1000),
    "sum above the buckets": _with(3, 10**12),
    "sum of 2**64 - 1": _with(3, 2**64 - 1),
    "an empty histogram with a sum": _pack([0, 0, 5, 0, 0, 0]),
    "an empty histogram with a max": _pack([0, 0, 0, 0, 7, 0]),
}


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
def test_from_wire_rejects_malformed(data: Any) -> None:
    with pytest.raises(ValueError, match="histogram"):
        Histogram.from_wire(data)


def test_from_wire_rejects_oversized_input_without_allocating() -> None:
    hostile = [
        _with(0, [0, 1] * (COUNTS_LEN * 50)),  # far too many buckets
        _with(0, [10**40, 1]),  # an index that would be a huge array position
        _pack([2**62, 0, 0, 0, 0, 0, 2**62]),  # a huge count: an int, not an allocation
    ]
    tracemalloc.start()
    try:
        for data in hostile:
            with contextlib.suppress(ValueError):
                Histogram.from_wire(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 256 * 1024


json_like = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=True),
        st.text(max_size=5),
    ),
    lambda children: (
        st.lists(children, max_size=8) | st.dictionaries(st.text(max_size=3), children)
    ),
    max_leaves=30,
)


@settings(max_examples=50, deadline=None)
@given(json_like)
def test_from_wire_on_junk_raises_only_value_error(data: Any) -> None:
    try:
        h = Histogram.from_wire(data)
    except ValueError:
        return
    assert Histogram.from_wire(h.to_wire()) == h


@settings(max_examples=100, deadline=None)
@given(st.lists(value, max_size=20), st.integers(0, 200), st.binary(min_size=1, max_size=16))
# The examples that made this test fail at random: a mutation that swaps two bucket indices
# (accepted once, then refused when re-encoded in sorted order), and one that sets min to 0.
@example(values=[1, 1000], offset=48, junk=(1000).to_bytes(8, "little") + (1).to_bytes(8, "little"))
@example(values=[1000, 2000], offset=24, junk=bytes(8))
def test_from_wire_on_mutated_wire(values: list[int], offset: int, junk: bytes) -> None:
    good = hist_of(values).to_wire()
    offset = min(offset, len(good))
    wire = good[:offset] + junk + good[offset + len(junk) :]
    try:
        h = Histogram.from_wire(wire)
    except ValueError:
        return
    # Whatever is accepted is internally consistent, and in the one form pack() gives it:
    # so it passes the same checks again however it is re-encoded.
    assert h.to_wire() == wire
    assert sum(h.counts.values()) + h.overflow == h.total
    assert Histogram.from_wire(h.to_wire()) == h
    assert HdrHistogram.decode(h.encode()).total_count == h.total - h.overflow


# -- the standard HDR export ----------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(values_lists)
def test_encode_decodes_with_hdrh(values: list[int]) -> None:
    h = hist_of(values)
    decoded = HdrHistogram.decode(h.encode())
    # Overflow is not representable in hdrh's format: the decoded total is the in-range count.
    assert decoded.total_count == h.total - h.overflow
    assert decoded.counts_len == COUNTS_LEN
    assert {i: n for i, n in enumerate(decoded.counts) if n} == h.counts
    if not h.overflow:
        for q in (1, 50, 90, 99, 99.9, 100):
            assert min(decoded.get_value_at_percentile(q), h.max_us) == h.percentile(q)


def test_encode_empty_and_overflow_only() -> None:
    assert HdrHistogram.decode(Histogram().encode()).total_count == 0
    assert HdrHistogram.decode(hist_of([HIGHEST_US * 3]).encode()).total_count == 0


def test_to_hdr_matches_recording_in_hdrh() -> None:
    rnd = random.Random(7)
    values = [rnd.randint(0, HIGHEST_US) for _ in range(500)]
    hdr = hist_of(values).to_hdr()
    ref = oracle_hdr(values)
    assert hdr.total_count == ref.total_count
    assert (hdr.get_min_value(), hdr.get_max_value()) == (ref.get_min_value(), ref.get_max_value())
    for q in (10, 50, 99, 100):
        assert hdr.get_value_at_percentile(q) == ref.get_value_at_percentile(q)


# -- several histograms in one blob (a delta's request names) -------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(value, max_size=30), max_size=6))
def test_pack_unpack_round_trip(groups: list[list[int]]) -> None:
    hists = [hist_of(values) for values in groups]
    back = [Histogram.from_checked(c) for c in unpack(pack(hists), len(hists))]
    assert back == hists


def test_unpack_checks_each_histogram_not_only_the_sum() -> None:
    # One count moved from the first histogram to the second: every total over the whole
    # blob still adds up, each histogram's does not.
    a, b = hist_of([1000, 1000, 3000]), hist_of([5000])
    values = array("Q")
    values.frombytes(pack([a, b]))
    ints = list(values)
    # layout: 2 heads of 6, then a's 2 indices, b's 1 index, then a's 2 counts, b's 1 count
    assert ints[5] == 2 and ints[11] == 1 and ints[-3:] == [2, 1, 1]
    ints[-3:] = [1, 1, 2]
    with pytest.raises(ValueError, match="do not add up"):
        unpack(array("Q", ints).tobytes(), 2)


@pytest.mark.parametrize("n", [0, 1, 3])
def test_unpack_refuses_a_blob_for_another_number_of_histograms(n: int) -> None:
    blob = pack([hist_of([1000]), hist_of([2000, 3000])])
    with pytest.raises(ValueError, match="histograms"):
        unpack(blob, n)


def test_unpack_refuses_an_oversized_blob_before_parsing_it() -> None:
    with pytest.raises(ValueError, match="blob"):
        unpack(bytes(histogram_module.MAX_PACKED_BYTES + 8), 1)


# -- the controller's accumulators ----------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(value, max_size=40), max_size=8), st.integers(0, 64))
def test_an_accumulator_equals_the_merge_whether_sparse_or_dense(
    groups: list[list[int]], dense_at: int
) -> None:
    expected = Histogram()
    acc = Accumulator()
    original = histogram_module.DENSE_AT
    histogram_module.DENSE_AT = dense_at  # small: most examples go dense at some point
    try:
        for i, values in enumerate(groups):
            h = hist_of(values)
            expected.merge(h)
            if i % 2:
                acc.merge(check_wire(h.to_wire()))
            else:
                acc.merge_histogram(h)
    finally:
        histogram_module.DENSE_AT = original
    assert acc.histogram() == expected
    assert acc.histogram().percentiles((50, 99, 100)) == expected.percentiles((50, 99, 100))


def test_an_accumulator_goes_dense_past_the_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(histogram_module, "DENSE_AT", 64)
    acc = Accumulator()
    h = Histogram()
    h.record_values(list(range(1, histogram_module.DENSE_AT + 2)))  # one bucket per value
    acc.merge_histogram(h)
    assert acc.dense is not None and acc.counts == {}
    acc.merge_histogram(h)
    doubled = h.copy()
    doubled.merge(h)
    assert acc.histogram() == doubled
