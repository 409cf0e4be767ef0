"""The frame walk in C (pytest_swarm/cluster/_frames.c) against its pure-Python reference
(wire._py_count_elements): whatever bytes arrive, both count the same objects or refuse the
frame with the same error (class and message). Hypothesis feeds real frames, frames of random
msgpack values, frames cut short, extended or with one byte changed, and random bytes; every
one of the 256 first bytes is tried alone and before a frame.

The wire tests themselves (test_wire.py and the controller's) run against both walks through
the ``merge_implementation`` fixture (merge_implementations.py).
"""

from __future__ import annotations

import os
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_swarm.cluster import wire
from pytest_swarm.stats.snapshot import Snapshot

C = wire.IMPLEMENTATIONS.get("c")
PY = wire.IMPLEMENTATIONS["python"]
needs_c = pytest.mark.skipif(C is None, reason="pytest_swarm.cluster._frames was not built")

values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**64 - 1),
        st.floats(allow_nan=False),
        st.text(max_size=40),
        st.binary(max_size=300),
    ),
    lambda children: (
        st.lists(children, max_size=20)
        | st.dictionaries(st.text(max_size=5), children, max_size=10)
    ),
    max_leaves=60,
)
limits = st.one_of(st.just(wire.MAX_ELEMENTS), st.integers(0, 40))


def outcome(walk: Any, frame: bytes, limit: int) -> tuple[Any, ...]:
    try:
        return ("ok", walk(frame, limit))
    except Exception as exc:  # both sides must fail the same way, whatever the class
        return ("error", type(exc), str(exc))


def same(frame: bytes, limit: int = wire.MAX_ELEMENTS) -> tuple[Any, ...]:
    assert C is not None
    expected = outcome(PY, frame, limit)
    assert outcome(C, frame, limit) == expected
    return expected


def test_the_c_walk_is_built_where_ci_requires_it() -> None:
    # .ci/run sets this: a CI machine must not pass by silently falling back to Python.
    if os.environ.get("SWARM_REQUIRE_SPEEDUPS") != "1":
        pytest.skip("SWARM_REQUIRE_SPEEDUPS=1 is not set")
    assert C is not None, "pytest_swarm.cluster._frames was not built or failed to import"
    if os.environ.get("SWARM_PURE_PYTHON", "") in ("", "0"):
        assert wire.ACCELERATED


@needs_c
def test_a_real_delta_frame_counts_the_same() -> None:
    snap = Snapshot(users=3)
    for i in range(20):
        snap.entry(f"GET /{i}").hist.record_values([1000 * (i + 1), 2000])
    snap.add_error("GET /0", "HTTPError", "500", "trace", nodes=["gw0"])
    frame = wire.encode("stats", test="t.py::test", seq=4, delta=snap.to_wire(), cpu=1.0, lag=0.0)
    kind, count = same(frame)
    assert kind == "ok" and count > 60


@needs_c
@settings(max_examples=300, deadline=None)
@given(values, limits)
def test_frames_of_random_values_count_the_same(value: Any, limit: int) -> None:
    same(msgpack.packb(value, use_bin_type=True), limit)


@needs_c
@settings(max_examples=300, deadline=None)
@given(values, st.sampled_from(["cut", "extend", "change"]), st.data())
def test_damaged_frames_fail_the_same_way(value: Any, how: str, data: st.DataObject) -> None:
    frame = bytearray(msgpack.packb(value, use_bin_type=True))
    at = data.draw(st.integers(0, len(frame) - 1))
    if how == "cut":
        del frame[at:]
    elif how == "extend":
        frame[at:at] = data.draw(st.binary(min_size=1, max_size=9))
    else:
        frame[at] = data.draw(st.integers(0, 255))
    same(bytes(frame), data.draw(limits))


@needs_c
@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64), limits)
def test_random_bytes_fail_the_same_way(frame: bytes, limit: int) -> None:
    same(frame, limit)


@needs_c
@pytest.mark.parametrize("first", range(256))
def test_every_first_byte_is_judged_the_same(first: int) -> None:
    same(bytes([first]))
    same(bytes([first]) + msgpack.packb([1, "x", {}]))
    same(bytes([first, 0xFF, 0xFF, 0xFF, 0xFF]) + bytes(8))
    # A container announcing 2**32 - 1 objects, or a string of 2**32 - 1 bytes: refused
    # without walking, by length (never read past the frame).
    same(bytes([first, 0xFF, 0xFF, 0xFF, 0xFF]))


@needs_c
def test_a_frame_past_the_limit_fails_the_same_way() -> None:
    frame = msgpack.packb([[]] * 50)
    too_many = ("error", wire.FrameTooLarge, "frame holds more than 10 objects")
    assert same(frame, 10) == too_many
    assert same(b"", 0)[0] == "error"
    assert same(b"\xc0", 0) == ("error", wire.FrameTooLarge, "frame holds more than 0 objects")
    assert same(b"\xc0", 1) == ("ok", 1)


@needs_c
def test_what_is_not_bytes_goes_to_the_python_walk() -> None:
    frame = wire.encode("ping")
    assert wire.count_elements(bytearray(frame)) == wire.count_elements(frame) == 4
    assert C is not None
    with pytest.raises(TypeError):
        C(bytearray(frame), 10)  # type: ignore[arg-type]
