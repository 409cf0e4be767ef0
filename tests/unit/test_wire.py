"""Unit tests for pytest_swarm.cluster.wire: the validated msgpack frames between xdist workers
and the controller's aggregator (RELIABILITY rows 5, 6 and 23)."""

from __future__ import annotations

import contextlib
import doctest
import math
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from merge_implementations import merge_implementation  # noqa: F401  (autouse)

import pytest_swarm.cluster.wire as wire_module
from pytest_swarm import PROTOCOL_VERSION
from pytest_swarm.cluster import timeline_wire
from pytest_swarm.cluster.wire import (
    MAX_FRAME,
    SCHEMA,
    Message,
    VersionMismatch,
    WireError,
    decode,
    encode,
)
from pytest_swarm.stats.result import Cumulative, TimelinePoint
from pytest_swarm.stats.snapshot import Snapshot


def _snapshot_wire() -> dict[str, Any]:
    snap = Snapshot(users=3, iterations=2)
    entry = snap.entry("GET /")
    entry.hist.record_values([1000, 2000])
    entry.failures = 1
    snap.add_error("GET /", "HTTPError", "500", "Traceback ...")
    return snap.to_wire()


# One valid body per kind; test_every_kind_has_a_sample keeps this in step with SCHEMA.
SAMPLES: dict[str, dict[str, Any]] = {
    "hello": {"worker": "gw0", "version": "0.1.0", "load_tests": ["t.py::test_a"]},
    "ready": {"test": "t.py::test_a", "users": 10, "duration": 2.5, "settings": {}},
    "abort": {"test": "t.py::test_a", "reason": "fixture failed"},
    "stats": {"test": "t", "seq": 3, "delta": _snapshot_wire(), "cpu": 12.5, "lag": 0.001},
    "final": {
        "test": "t",
        "seq": 4,
        "delta": _snapshot_wire(),
        "cpu": 0,
        "lag": 0.0,
        "lost": 0,
    },
    "result?": {"test": "t"},
    "claim": {"test": "t"},
    "ping": {"lag": 0.0},
    "welcome": {"interval": 1.0},
    "refuse": {"reason": "protocol 2"},
    "go": {"test": "t", "index": 1, "workers": 2},
    "ack": {"test": "t", "seq": 4},
    "result": {
        "test": "t",
        "snapshot": _snapshot_wire(),
        "duration": 1.5,
        "problems": ["worker gw1 was lost"],
        "timeline": timeline_wire.pack([TimelinePoint(0.0, 3, 10, 1, 0.001, 0.002)]),
        "timelines": [["GET /", timeline_wire.pack([TimelinePoint(0.0, 0, 10, 1, 0.001, 0.002)])]],
        "health": [50.0, 0.01, False],
        "workers": 2,
        "stopped": "",
    },
    "reporter": {"test": "t", "yes": True},
    "stop": {"test": "t", "reason": "worker gw1 lost"},
    "pong": {},
}


def raw(version: Any, kind: Any, body: Any) -> bytes:
    """A frame built by hand, bypassing encode's checks."""
    frame: bytes = msgpack.packb([version, kind, body], use_bin_type=True)
    return frame


def test_module_doctests() -> None:
    assert doctest.testmod(wire_module).failed == 0


def test_every_kind_has_a_sample() -> None:
    assert set(SAMPLES) == set(SCHEMA)


@pytest.mark.parametrize("kind", sorted(SCHEMA))
def test_round_trip(kind: str) -> None:
    body = SAMPLES[kind]
    msg = decode(encode(kind, **body))
    assert msg == Message(kind, body)


def test_snapshot_survives_the_round_trip() -> None:
    msg = decode(encode("stats", **SAMPLES["stats"]))
    snap = Snapshot.from_wire(msg.body["delta"])
    assert snap.entries["GET /"].hist.total == 2
    assert snap.entries["GET /"].failures == 1
    assert snap.users == 3


def test_encode_rejects_unknown_kind() -> None:
    with pytest.raises(WireError, match="unknown"):
        encode("shutdown")


def test_encode_rejects_oversized_message() -> None:
    with pytest.raises(WireError, match="exceeds"):
        encode("refuse", reason="x" * (MAX_FRAME + 1))


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"\xc1",  # never used in msgpack
        b"\xff\x00garbage\x13\x37",
        b"hello world",
        encode("ping") + b"\x00",  # trailing bytes
    ],
    ids=["empty", "reserved-byte", "garbage", "text", "extra-data"],
)
def test_garbage_is_rejected(frame: bytes) -> None:
    with pytest.raises(WireError):
        decode(frame)


@pytest.mark.parametrize("kind", sorted(SCHEMA))
def test_truncated_frames_are_rejected(kind: str) -> None:
    frame = encode(kind, **SAMPLES[kind])
    for cut in range(len(frame)):
        with pytest.raises(WireError):
            decode(frame[:cut])


@pytest.mark.parametrize(
    "data",
    [
        None,
        1,
        "ping",
        {"kind": "ping"},
        [PROTOCOL_VERSION, "ping"],
        [PROTOCOL_VERSION, "ping", {}, {}],
        [PROTOCOL_VERSION, "ping", []],
        [PROTOCOL_VERSION, "ping", None],
        ["1", "ping", {}],
        [True, "ping", {}],
        [1.0, "ping", {}],
        [None, "ping", {}],
    ],
)
def test_wrong_top_level_shape_is_rejected(data: Any) -> None:
    frame = msgpack.packb(data, use_bin_type=True)
    with pytest.raises(WireError) as info:
        decode(frame)
    assert not isinstance(info.value, VersionMismatch)


@pytest.mark.parametrize("kind", ["shutdown", "", "PING", 7, None, b"ping"])
def test_unknown_kind_is_rejected(kind: Any) -> None:
    with pytest.raises(WireError):
        decode(raw(PROTOCOL_VERSION, kind, {}))


@pytest.mark.parametrize("kind", sorted(k for k in SCHEMA if SCHEMA[k]))
def test_missing_field_is_rejected(kind: str) -> None:
    for name in SCHEMA[kind]:
        body = {k: v for k, v in SAMPLES[kind].items() if k != name}
        with pytest.raises(WireError, match="fields"):
            decode(raw(PROTOCOL_VERSION, kind, body))


@pytest.mark.parametrize("kind", sorted(SCHEMA))
def test_extra_field_is_rejected(kind: str) -> None:
    body = {**SAMPLES[kind], "extra": 1}
    with pytest.raises(WireError, match="fields"):
        decode(raw(PROTOCOL_VERSION, kind, body))


def test_non_string_map_keys_are_rejected() -> None:
    with pytest.raises(WireError):
        decode(raw(PROTOCOL_VERSION, "claim", {1: "t"}))


@pytest.mark.parametrize(
    ("kind", "name", "value"),
    [
        ("ready", "users", True),  # bool is not an int here
        ("ready", "users", False),
        ("go", "index", True),
        ("ack", "seq", False),
        ("stats", "cpu", True),  # nor a number
        ("ready", "duration", False),
        ("ready", "users", 1.5),
        ("ready", "users", "10"),
        ("ready", "test", b"t"),
        ("ready", "test", None),
        ("reporter", "yes", 1),  # and an int is not a bool
        ("reporter", "yes", "true"),
        ("hello", "load_tests", "t"),
        ("hello", "load_tests", {"t": 1}),
        ("stats", "delta", []),
        ("result", "problems", "boom"),
        ("welcome", "interval", "1"),
    ],
)
def test_wrong_types_are_rejected(kind: str, name: str, value: Any) -> None:
    body = {**SAMPLES[kind], name: value}
    with pytest.raises(WireError, match=name):
        decode(raw(PROTOCOL_VERSION, kind, body))


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        ("ready", "users"),
        ("stats", "seq"),
        ("final", "seq"),
        ("go", "index"),
        ("go", "workers"),
        ("ack", "seq"),
        ("result", "workers"),
    ],
)
def test_negative_ints_are_rejected(kind: str, name: str) -> None:
    body = {**SAMPLES[kind], name: -1}
    with pytest.raises(WireError, match="negative"):
        decode(raw(PROTOCOL_VERSION, kind, body))
    # The smallest msgpack int (-2**63) as well.
    body[name] = -(2**63)
    with pytest.raises(WireError, match="negative"):
        decode(raw(PROTOCOL_VERSION, kind, body))


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        ("ready", "duration"),
        ("stats", "cpu"),
        ("final", "lag"),
        ("welcome", "interval"),
        ("result", "duration"),
    ],
)
@pytest.mark.parametrize("value", [-1.0, -0.5, math.nan, math.inf, -math.inf])
def test_negative_or_non_finite_numbers_are_rejected(kind: str, name: str, value: float) -> None:
    body = {**SAMPLES[kind], name: value}
    with pytest.raises(WireError, match=name):
        decode(raw(PROTOCOL_VERSION, kind, body))


def test_largest_ints_are_accepted() -> None:
    body = {**SAMPLES["ack"], "seq": 2**64 - 1}
    assert decode(raw(PROTOCOL_VERSION, "ack", body)).body["seq"] == 2**64 - 1


def test_oversized_frame_is_rejected_before_unpacking(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = msgpack.unpackb

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(msgpack, "unpackb", spy)
    # A valid message, only too large.
    frame = raw(PROTOCOL_VERSION, "refuse", {"reason": "x" * MAX_FRAME})
    assert len(frame) > MAX_FRAME
    with pytest.raises(WireError, match="exceeds"):
        decode(frame)
    assert calls == []
    # Just under the limit still goes through the unpacker (and is judged on its contents).
    frame = raw(PROTOCOL_VERSION, "refuse", {"reason": "x" * (MAX_FRAME - 64)})
    assert len(frame) <= MAX_FRAME
    assert decode(frame).kind == "refuse"
    assert calls == [1]


@pytest.mark.parametrize(
    "frame",
    [
        b"\x91" * 100_000 + b"\xc0",  # arrays nested 100k deep
        b"\x81\xa1k" * 50_000 + b"\xc0",  # maps nested 50k deep
        b"\xdd\xff\xff\xff\xff",  # an array announcing 4 billion items
        b"\xdf\xff\xff\xff\xff",  # a map announcing 4 billion pairs
        b"\xdb\xff\xff\xff\xff",  # a 4 GiB string
        b"\xc6\xff\xff\xff\xff",  # a 4 GiB binary
        b"\xc9\x7f\xff\xff\xff\x01",  # a 2 GiB extension
        b"\xd6\xff\x00\x00\x00\x00",  # a timestamp extension
    ],
    ids=[
        "deep-arrays",
        "deep-maps",
        "huge-array",
        "huge-map",
        "huge-str",
        "huge-bin",
        "huge-ext",
        "ext",
    ],
)
def test_hostile_containers_are_rejected(frame: bytes) -> None:
    with pytest.raises(WireError):
        decode(frame)


def test_container_limits_apply_inside_a_valid_frame() -> None:
    # Fits in MAX_FRAME, but holds more items than any real message needs.
    frame = raw(
        PROTOCOL_VERSION, "hello", {"worker": "gw0", "version": "0", "load_tests": [0] * 300_000}
    )
    assert len(frame) < MAX_FRAME
    with pytest.raises(WireError, match="more than"):
        decode(frame)


# -- item: one source of truth for every size bound (issue 8, section 1) --------------------


def _wide_snapshot(names: int = 16, spread_us: tuple[int, int] = (1_000, 1_000_000)) -> Snapshot:
    """A legitimate snapshot whose histogram blob exceeds 1 MiB: 16 request names each with
    a latency in every bucket from 1 ms to 1 s (the run seen hanging under ``-n 2``)."""
    snap = Snapshot(users=10)
    low, high = spread_us
    values = list(range(low, high, max((high - low) // 12_000, 1)))
    for i in range(names):
        snap.entry(f"GET /item/{i}").hist.record_values(values)
    return snap


def test_a_result_over_1_mib_survives_the_round_trip() -> None:
    snap = _wide_snapshot()
    body = dict(SAMPLES["result"], snapshot=snap.to_wire())
    frame = encode("result", **body)
    assert len(frame) > 1024 * 1024  # beyond the decoder's former 1 MiB bin limit
    decoded = Snapshot.from_wire(decode(frame).body["snapshot"])
    assert decoded.entries == snap.entries


def test_whatever_encode_accepts_decode_accepts() -> None:
    # The largest frame encode() lets through: one blob that fills the frame.
    blob = b"\x00" * (MAX_FRAME - 1500)
    frame = raw(PROTOCOL_VERSION, "result", dict(SAMPLES["result"], timeline=blob))
    assert len(frame) <= MAX_FRAME
    assert decode(frame).body["timeline"] == blob
    with pytest.raises(wire_module.FrameTooLarge):
        encode("result", **dict(SAMPLES["result"], timeline=b"\x00" * MAX_FRAME))


def test_encode_refuses_what_decode_would_refuse_for_its_object_count() -> None:
    tests = [f"t.py::test_{i}" for i in range(wire_module.MAX_ELEMENTS)]
    with pytest.raises(wire_module.FrameTooLarge, match="objects"):
        encode("hello", worker="gw0", version="0", load_tests=tests)


# -- item: bound what a frame may expand to before decoding (rows 6 and 29) ----------------


def _empty_maps(count: int) -> bytes:
    """``count`` empty msgpack maps, in arrays of 100,000 (the size of the hostile frame of
    the audit: 8 million maps, ~600 MiB once decoded)."""
    chunk = 100_000
    arrays = [b"\xdd" + chunk.to_bytes(4, "big") + b"\x80" * chunk] * (count // chunk)
    return b"\xdd" + len(arrays).to_bytes(4, "big") + b"".join(arrays)


def test_a_frame_of_empty_maps_is_refused_before_unpacking(monkeypatch: pytest.MonkeyPatch) -> None:
    frame = _empty_maps(8_000_000)
    assert len(frame) <= MAX_FRAME
    calls = []
    monkeypatch.setattr(msgpack, "unpackb", lambda *a, **k: calls.append(1))
    with pytest.raises(wire_module.FrameTooLarge, match="objects"):
        decode(frame)
    assert calls == []  # nothing was unpacked, so nothing was allocated


def test_decoding_a_hostile_frame_allocates_little() -> None:
    import tracemalloc

    frame = _empty_maps(2_000_000)  # 2 MB: ~130 MiB of dicts if it were unpacked
    tracemalloc.start()
    try:
        with pytest.raises(WireError):
            decode(frame)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1024 * 1024, peak


@pytest.mark.parametrize(
    "frame",
    [
        b"\x93\x01",  # an array of 3 with one element
        b"\xdd\xff\xff\xff\xff\x00",  # announces 4 billion elements
        b"\xc7\x01\x00\x00",  # ext
        b"\xc1",  # never used
        b"\x01\x02",  # bytes after the message
        b"\xda\x00\x10ab",  # string longer than the frame
    ],
)
def test_count_elements_refuses_malformed_frames(frame: bytes) -> None:
    with pytest.raises(WireError):
        wire_module.count_elements(frame)


@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers(-(2**63), 2**64 - 1)
        | st.floats()
        | st.text()
        | st.binary(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
        max_leaves=30,
    )
)
def test_count_elements_agrees_with_msgpack(value: Any) -> None:
    frame = msgpack.packb(value, use_bin_type=True)

    def count(v: Any) -> int:
        if isinstance(v, list):
            return 1 + sum(map(count, v))
        if isinstance(v, dict):
            return 1 + sum(count(k) + count(x) for k, x in v.items())
        return 1

    assert wire_module.count_elements(frame) == count(value)


def test_timeline_round_trip_and_validation() -> None:
    cumulative = Cumulative(10, 1, 0.001, 0.0012, 0.0005, 0.004, 12.5)
    points = [
        TimelinePoint(0.0, 3, 10, 1, 0.001, 0.002, 0.003, 1.0, 120, (0.001,) * 11, cumulative),
        TimelinePoint(1.0, 4, 2**40, 0, 0.5, 1.5),
    ]
    assert timeline_wire.unpack(timeline_wire.pack(points)) == points
    with pytest.raises(WireError):
        timeline_wire.unpack(b"\x00" * 47)
    with pytest.raises(WireError):
        timeline_wire.unpack(timeline_wire.pack([TimelinePoint(float("nan"), 0, 0, 0, 0, 0)]))


def test_a_long_timeline_is_merged_pairwise_keeping_counts_and_the_worst_latency() -> None:
    points = [TimelinePoint(float(t), t % 7, 10, t % 2, 0.001 * t, 0.002, 0.003) for t in range(9)]
    fitted = timeline_wire.fit(points, 3)
    assert len(fitted) == 3
    assert sum(p.requests for p in fitted) == 90 and sum(p.failures for p in fitted) == 4
    assert sum(p.span for p in fitted) == 9.0
    assert max(p.p50 for p in fitted) == max(p.p50 for p in points)
    assert max(p.users for p in fitted) == 6


def test_other_protocol_version_is_a_version_mismatch() -> None:
    for version in (PROTOCOL_VERSION + 1, 0, 99):
        with pytest.raises(VersionMismatch) as info:
            decode(raw(version, "hello", SAMPLES["hello"]))
        message = str(info.value)
        assert str(version) in message and str(PROTOCOL_VERSION) in message
        assert "protocol" in message
    # Checked before the kind: a future kind from a future peer is still a version mismatch.
    with pytest.raises(VersionMismatch):
        decode(raw(PROTOCOL_VERSION + 1, "handshake", {"anything": 1}))
    assert issubclass(VersionMismatch, WireError)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=512))
def test_random_bytes_raise_only_wire_error(data: bytes) -> None:
    try:
        msg = decode(data)
    except WireError:
        return
    assert msg.kind in SCHEMA


_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(),
    st.text(max_size=8),
    st.binary(max_size=8),
)
_value = st.recursive(
    _leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(sorted(SCHEMA)),
    st.dictionaries(st.sampled_from(["test", "seq", "users", "worker", "x"]), _value, max_size=4),
    st.booleans(),
)
def test_well_formed_msgpack_with_random_bodies_raises_only_wire_error(
    kind: str, body: dict[str, Any], keep_sample: bool
) -> None:
    frame = raw(PROTOCOL_VERSION, kind, {**SAMPLES[kind], **body} if keep_sample else body)
    try:
        msg = decode(frame)
    except WireError:
        return
    assert set(msg.body) == set(SCHEMA[kind])


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(SCHEMA)), st.data())
def test_mutated_frames_raise_only_wire_error(kind: str, data: st.DataObject) -> None:
    frame = bytearray(encode(kind, **SAMPLES[kind]))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(frame) - 1))
        frame[at] = data.draw(st.integers(0, 255))
    with contextlib.suppress(WireError):
        decode(bytes(frame))
