"""The controller's merge loop in C (pytest_swarm/stats/_merge.c) against its pure-Python
reference (pytest_swarm/stats/histogram.py's _py_* functions).

A worker's histograms are hostile input: whatever blob arrives, the C ``unpack`` must give the
result the Python one gives, or refuse it with the same error (type and message), and the
bucket adds must leave the same counts. Hypothesis feeds both valid blobs, valid blobs with one
integer changed to an edge value (bounds, 2**63, 2**64 - 1, the range's top), shifted,
truncated or miscounted ones, and blobs built field by field from random figures; explicit
examples pin the cases a C version gets wrong without care (sums that wrap around 2**64).

The behaviour tests of the merge (test_histogram.py, test_snapshot*.py, test_aggregator.py,
test_wire.py, the controller and cluster tests) run against both implementations through the
``merge_implementation`` fixture (merge_implementations.py).
"""

from __future__ import annotations

import os
import struct
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from test_histogram import MALFORMED

from pytest_swarm.stats import histogram
from pytest_swarm.stats.histogram import (
    HIGHEST_US,
    MAX_PACKED_BYTES,
    MAX_SUM_US,
    MAX_VALUE_US,
    Accumulator,
    Histogram,
    bucket_index,
    pack,
)

TOP = bucket_index(HIGHEST_US)
C = histogram.IMPLEMENTATIONS.get("c")
PY = histogram.IMPLEMENTATIONS["python"]
needs_c = pytest.mark.skipif(C is None, reason="pytest_swarm.stats._merge was not built")

# Integers a hostile peer would try: zero, bounds of the checks, the 64-bit edges.
EDGE = [0, 1, 2, 5, 31, 32, 1023, 1024, 2047, 2048, TOP - 1, TOP, TOP + 1, HIGHEST_US]
EDGE += [HIGHEST_US + 1, MAX_VALUE_US, MAX_VALUE_US + 1, MAX_SUM_US, MAX_SUM_US + 1, 2**63]
EDGE += [2**64 - 2, 2**64 - 1]
u64 = st.one_of(st.sampled_from(EDGE), st.integers(0, 2**64 - 1), st.integers(0, 40_000))
value = st.one_of(
    st.integers(0, 5_000_000_000), st.integers(0, 20_000), st.sampled_from([0, 1, HIGHEST_US])
)


def blob(ints: list[int]) -> bytes:
    return struct.pack(f"<{len(ints)}Q", *ints)


def ints_of(data: bytes) -> list[int]:
    return list(struct.unpack(f"<{len(data) // 8}Q", data))


def hist_of(values: list[int]) -> Histogram:
    h = Histogram()
    h.record_values(values)
    return h


def outcome(unpack: Any, data: Any, n: int) -> tuple[Any, ...]:
    """What unpack does with ``data``: ("ok", result) or ("error", type, message)."""
    try:
        return ("ok", unpack(data, n))
    except Exception as exc:  # both sides must fail the same way, whatever the type
        return ("error", type(exc), str(exc))


def same(data: Any, n: int) -> tuple[Any, ...]:
    assert C is not None
    expected = outcome(PY.unpack, data, n)
    assert outcome(C.unpack, data, n) == expected
    return expected


def test_the_c_merge_is_built_where_ci_requires_it() -> None:
    # .ci/run sets this: a CI machine must not pass by silently falling back to Python.
    if os.environ.get("SWARM_REQUIRE_SPEEDUPS") != "1":
        pytest.skip("SWARM_REQUIRE_SPEEDUPS=1 is not set")
    assert C is not None, "pytest_swarm.stats._merge was not built or failed to import"
    if os.environ.get("SWARM_PURE_PYTHON", "") in ("", "0"):
        assert histogram.ACCELERATED


@needs_c
@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(value, max_size=40), max_size=6), st.booleans())
def test_valid_blobs_give_equal_results(groups: list[list[int]], coarse: bool) -> None:
    hists = [hist_of(values) for values in groups]
    if coarse:  # what the sender's total is: pooled buckets, exact figures
        hists = [h.coarse() for h in hists]
    kind, *result = same(pack(hists), len(hists))
    assert kind == "ok"
    assert [Histogram.from_checked(c) for c in result[0]] == hists


@needs_c
@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.lists(value, max_size=12), min_size=1, max_size=4),
    st.data(),
)
def test_a_valid_blob_with_one_integer_changed_fails_the_same_way(
    groups: list[list[int]], data: st.DataObject
) -> None:
    ints = ints_of(pack([hist_of(values) for values in groups]))
    at = data.draw(st.integers(0, len(ints) - 1))
    ints[at] = data.draw(u64)
    same(blob(ints), len(groups))


@needs_c
@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.lists(value, max_size=12), min_size=1, max_size=4),
    st.sampled_from(["drop", "insert", "truncate", "miscount", "swap"]),
    st.data(),
)
def test_a_reshaped_blob_fails_the_same_way(
    groups: list[list[int]], how: str, data: st.DataObject
) -> None:
    raw = pack([hist_of(values) for values in groups])
    ints = ints_of(raw)
    n = len(groups)
    at = data.draw(st.integers(0, len(ints) - 1))
    if how == "drop":
        del ints[at]
    elif how == "insert":
        ints.insert(at, data.draw(u64))
    elif how == "swap":
        other = data.draw(st.integers(0, len(ints) - 1))
        ints[at], ints[other] = ints[other], ints[at]
    elif how == "miscount":
        n = data.draw(st.integers(0, n + 3))
    if how == "truncate":
        same(raw[: data.draw(st.integers(0, len(raw)))], n)
    else:
        same(blob(ints), n)


@st.composite
def built_blobs(draw: st.DrawFn) -> tuple[bytes, int]:
    """A blob of consistent shape (sizes that match its length) with random figures, indices
    and counts: every check past the shape is reached with something to judge."""
    n = draw(st.integers(0, 4))
    sizes = [draw(st.integers(0, 5)) for _ in range(n)]
    head: list[int] = []
    indices: list[int] = []
    counts: list[int] = []
    for size in sizes:
        picked = draw(st.lists(st.integers(0, TOP), min_size=size, max_size=size, unique=True))
        if draw(st.booleans()):
            picked.sort()
        number = [draw(st.one_of(st.integers(1, 50), u64)) for _ in range(size)]
        total = sum(number) + draw(st.sampled_from([0, 0, 1, 2]))
        if draw(st.booleans()):
            total = draw(u64)
        total = min(total, 2**64 - 1)
        head += [total, draw(st.sampled_from([0, 0, 1, 2]) | u64), draw(u64), draw(u64)]
        head += [draw(u64), size]
        indices += picked
        counts += number
    # Fix the overflow to what the counts leave of the total now and then, to get further.
    for k in range(n):
        if draw(st.booleans()):
            start = sum(sizes[:k])
            head[6 * k + 1] = max(head[6 * k] - sum(counts[start : start + sizes[k]]), 0)
    return blob(head + indices + counts), n


@needs_c
@settings(max_examples=1000, deadline=None)
@given(built_blobs())
# Counts that wrap past 2**64 to the total (0, then 1).
@example((blob([0, 0, 0, 0, 0, 2, 5, 6, 2**63, 2**63]), 1))
@example((blob([1, 0, 1, 1, 1, 2, 1, 2, 2**64 - 1, 2]), 1))
# A count times its bucket's bounds that wraps to the sum (1024 x (2**54 + 1) = 2**64 + 1024).
@example((blob([2**54 + 1, 0, 1024, 1024, 1024, 1, 1024, 2**54 + 1]), 1))
# Two bounds that wrap when added (2 x 2**63 = 2**64).
@example((blob([2**54, 0, 1000, 1024, 1025, 2, 1024, 1025, 2**53, 2**53]), 1))
# An overflow whose bounds wrap (2**62 x (2**32 + 1)).
@example((blob([2**62, 2**62, 2**63 - 1, HIGHEST_US + 1, 2**53, 0]), 1))
# Two checks fail at once: the first in histogram.py's order names the error.
@example((blob([1, 1, 0, HIGHEST_US, HIGHEST_US - 1, 0]), 1))
@example((blob([0, 0, 2**63, 0, 2**53 + 1, 0]), 1))
def test_blobs_built_field_by_field_fail_or_pass_the_same_way(case: tuple[bytes, int]) -> None:
    same(*case)


@needs_c
@settings(max_examples=300, deadline=None)
@given(st.lists(u64, max_size=40), st.integers(0, 8))
def test_random_integers_fail_the_same_way(ints: list[int], n: int) -> None:
    same(blob(ints), n)


@needs_c
@pytest.mark.parametrize(
    "data",
    [
        bytearray(8 * 6),
        memoryview(bytes(8 * 6)),
        "x" * 48,
        None,
        [0] * 6,
        bytes(MAX_PACKED_BYTES + 8),
        bytes(7),
        b"",
    ],
    ids=["bytearray", "memoryview", "str", "None", "list", "oversized", "partial", "empty"],
)
def test_what_is_not_a_blob_fails_the_same_way(data: Any) -> None:
    same(data, 1)


@needs_c
@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_every_malformed_histogram_fails_the_same_way(name: str) -> None:
    kind, *_ = same(MALFORMED[name], 1)
    assert kind == "error"


@needs_c
def test_a_blob_of_no_histograms() -> None:
    assert same(b"", 0) == ("ok", [])


@needs_c
def test_a_huge_number_of_histograms_is_refused_without_allocating() -> None:
    assert same(bytes(48), 2**40)[0] == "error"


# -- the bucket adds ------------------------------------------------------------------------------

pairs = st.lists(st.tuples(st.integers(0, TOP), st.integers(1, 2**70)), max_size=30)


@needs_c
@settings(max_examples=200, deadline=None)
@given(pairs, pairs, st.booleans(), st.booleans())
def test_accumulate_leaves_the_same_counts(
    before: list[tuple[int, int]], added: list[tuple[int, int]], dense: bool, pooled: bool
) -> None:
    assert C is not None
    results = []
    for kernels in (PY, C):
        into: dict[int, int] | list[int]
        if dense:
            into = [0] * (TOP + 1)
            for i, n in before:
                into[i] += n
        else:
            into = dict(before)
        second = {i | 31: n for i, n in before} if pooled else None
        kernels.accumulate(into, second, [i for i, _ in added], [n for _, n in added])
        results.append((into, second))
    assert results[0] == results[1]


@needs_c
@settings(max_examples=100, deadline=None)
@given(pairs, pairs)
def test_add_pooled_leaves_the_same_counts(
    before: list[tuple[int, int]], added: list[tuple[int, int]]
) -> None:
    assert C is not None
    results = []
    for kernels in (PY, C):
        counts = dict(before)
        kernels.add_pooled(counts, (i for i, _ in added), tuple(n for _, n in added))
        results.append(counts)
    assert results[0] == results[1]


@needs_c
def test_the_adds_take_what_merge_histogram_passes_them() -> None:
    # Accumulator.merge_histogram hands the dict's own views: both read them in the same order.
    h = hist_of([5, 1000, 1001, 70_000, HIGHEST_US])
    accs = []
    for name in ("python", "c"):
        previous = histogram.use(name)
        try:
            acc, second = Accumulator(), Histogram()
            acc.merge_histogram(h)
            acc.merge(histogram.check_wire(h.to_wire()), second)
            accs.append((acc.histogram(), second))
        finally:
            histogram.use(previous)
    assert accs[0] == accs[1]
    assert accs[0][1] == h.coarse()


@needs_c
def test_a_dense_index_out_of_range_is_an_error_not_a_write() -> None:
    assert C is not None
    dense = [0] * 4
    with pytest.raises(IndexError):
        C.accumulate(dense, None, [4], [1])
    with pytest.raises(IndexError):
        C.accumulate(dense, None, [-1], [1])  # never wraps to the end
    assert dense == [0] * 4
    with pytest.raises(ValueError, match="length"):
        C.accumulate({}, None, [1, 2], [1])
    with pytest.raises(TypeError):
        C.accumulate((), None, [1], [1])  # type: ignore[arg-type]
