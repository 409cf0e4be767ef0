"""The message schema between xdist workers and the controller's aggregator.

Every message is one msgpack frame: ``[protocol version, kind, body]`` where ``body`` is a map
with the fields listed in :data:`SCHEMA`. Decoding never trusts the bytes: the frame size is
bounded before unpacking, msgpack's own container limits are set, the body is checked field by
field, and snapshots are rebuilt through ``Snapshot.from_wire`` (which bounds histogram sizes),
so a malformed or hostile message costs a ``WireError``, never a crash or a huge allocation.

Example:
    >>> frame = encode("abort", test="t.py::test_a", reason="setup failed")
    >>> decode(frame)
    Message(kind='abort', body={'test': 't.py::test_a', 'reason': 'setup failed'})
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgpack

from .. import PROTOCOL_VERSION
from ..native import pure_python
from .limits import MAX_BLOB, MAX_ELEMENTS, MAX_FRAME

__all__ = ["MAX_ELEMENTS", "MAX_FRAME", "Message", "WireError", "decode", "encode"]

_STR = (str,)
_INT = (int,)
_NUM = (int, float)
_LIST = (list,)
_DICT = (dict,)
_BOOL = (bool,)
_BYTES = (bytes,)

# kind -> {field: allowed types}. Worker -> controller first, then controller -> worker.
SCHEMA: dict[str, dict[str, tuple[type, ...]]] = {
    "hello": {"worker": _STR, "version": _STR, "load_tests": _LIST},
    # settings: what the live feed's LoadStarted shows and the abort rule reads (the spec's
    # description, the objectives and abort rules as text); checked by check_settings.
    "ready": {"test": _STR, "users": _INT, "duration": _NUM, "settings": _DICT},
    "abort": {"test": _STR, "reason": _STR},
    "stats": {"test": _STR, "seq": _INT, "delta": _DICT, "cpu": _NUM, "lag": _NUM},
    # lost: requests in deltas this worker gave up resending (see agent.py); 0 normally.
    "final": {
        "test": _STR,
        "seq": _INT,
        "delta": _DICT,
        "cpu": _NUM,
        "lag": _NUM,
        "lost": _INT,
    },
    "result?": {"test": _STR},
    "claim": {"test": _STR},
    # lag: how late this worker's own heartbeat woke (s): the controller allows for it.
    "ping": {"lag": _NUM},
    # controller -> worker
    "welcome": {"interval": _NUM},
    "refuse": {"reason": _STR},
    "go": {"test": _STR, "index": _INT, "workers": _INT},
    "ack": {"test": _STR, "seq": _INT},
    "result": {
        "test": _STR,
        "snapshot": _DICT,
        "duration": _NUM,
        "problems": _LIST,
        "timeline": _BYTES,  # little-endian float64s per point (see timeline_wire.py)
        "timelines": _LIST,  # [[request name, timeline blob], ...] (see timeline_wire.py)
        "health": _LIST,
        "workers": _INT,
        # Why the load was stopped on request (abort rule, dashboard), "" when it was not.
        "stopped": _STR,
    },
    "reporter": {"test": _STR, "yes": _BOOL},
    "stop": {"test": _STR, "reason": _STR},
    "pong": {},
}


class WireError(ValueError):
    """A frame that is not a valid message of this protocol."""


class VersionMismatch(WireError):
    """A peer speaking another protocol version."""


class FrameTooLarge(WireError):
    """A message beyond :data:`MAX_FRAME` bytes or :data:`MAX_ELEMENTS` objects."""


@dataclass(frozen=True)
class Message:
    kind: str
    body: dict[str, Any]


def encode(kind: str, **body: Any) -> bytes:
    """One frame; raises :class:`FrameTooLarge` for what :func:`decode` would refuse, so
    that a sender learns at once what its peer would only drop."""
    if kind not in SCHEMA:
        raise WireError(f"unknown message kind {kind!r}")
    frame: bytes = msgpack.packb([PROTOCOL_VERSION, kind, body], use_bin_type=True)
    if len(frame) > MAX_FRAME:
        raise FrameTooLarge(f"{kind} message of {len(frame)} bytes exceeds {MAX_FRAME}")
    count_elements(frame)
    return frame


# msgpack first bytes -> (bytes of header after the type byte, size field length, kind):
# kind "s" scalar of fixed size, "b" str/bin with a length field, "a" array, "m" map.
def _layout() -> list[tuple[int, int, str]]:
    table: list[tuple[int, int, str]] = [(0, 0, "x")] * 256
    for b in range(0x00, 0x80):
        table[b] = (0, 0, "s")  # positive fixint
    for b in range(0xE0, 0x100):
        table[b] = (0, 0, "s")  # negative fixint
    for b in range(0x80, 0x90):
        table[b] = (0, 0, "m")  # fixmap (size in the low bits)
    for b in range(0x90, 0xA0):
        table[b] = (0, 0, "a")  # fixarray
    for b in range(0xA0, 0xC0):
        table[b] = (0, 0, "f")  # fixstr (length in the low bits)
    for b, size in ((0xC0, 0), (0xC2, 0), (0xC3, 0), (0xCA, 4), (0xCB, 8)):
        table[b] = (size, 0, "s")  # nil, false, true, float32, float64
    for b, size in zip(range(0xCC, 0xD4), (1, 2, 4, 8, 1, 2, 4, 8), strict=True):
        table[b] = (size, 0, "s")  # uint8..64, int8..64
    for b, size in ((0xC4, 1), (0xC5, 2), (0xC6, 4), (0xD9, 1), (0xDA, 2), (0xDB, 4)):
        table[b] = (0, size, "b")  # bin8/16/32, str8/16/32
    table[0xDC], table[0xDD] = (0, 2, "a"), (0, 4, "a")
    table[0xDE], table[0xDF] = (0, 2, "m"), (0, 4, "m")
    return table  # 0xC1 (never used) and ext types stay "x": refused


_LAYOUT = _layout()


def count_elements(frame: bytes, limit: int = MAX_ELEMENTS) -> int:
    """How many msgpack objects ``frame`` holds, found by walking its headers only (strings
    and blobs are skipped by their length), so that nothing is allocated for a frame that
    would expand beyond ``limit`` objects: the walk stops, and raises :class:`FrameTooLarge`,
    after ``limit`` objects, so its cost is bounded too. A malformed or truncated frame
    raises :class:`WireError`.

    Example:
        >>> count_elements(encode("ping"))  # [1, "ping", {}]
        4

    In C where ``pytest_swarm.cluster._frames`` was built (:data:`ACCELERATED`), else
    :func:`_py_count_elements`: the same walk, the same errors.
    """
    if type(frame) is bytes:
        return _count(frame, limit)
    return _py_count_elements(frame, limit)


def _py_count_elements(frame: bytes, limit: int = MAX_ELEMENTS) -> int:
    """:func:`count_elements` in pure Python (the reference the C one is tested against)."""

    layout = _LAYOUT
    end = len(frame)
    pos = 0
    pending = 1  # objects announced but not yet read
    seen = 0
    while pending:
        if pos >= end:
            raise WireError("truncated frame")
        first = frame[pos]
        extra, field, kind = layout[first]
        pos += 1
        pending -= 1
        seen += 1
        if seen > limit:
            raise FrameTooLarge(f"frame holds more than {limit} objects")
        if kind == "s":
            pos += extra
            continue
        if kind == "f":
            pos += first & 0x1F
            continue
        if kind == "x":
            raise WireError(f"unsupported msgpack type 0x{first:02x}")
        if field:
            size = int.from_bytes(frame[pos : pos + field], "big")
            pos += field
        else:
            size = first & 0x0F
        if kind == "b":
            pos += size
        else:
            pending += size * 2 if kind == "m" else size
            # Every object takes at least one byte: a header announcing more cannot be true.
            if pending > end - pos:
                raise WireError("container larger than the frame")
    if pos != end:
        raise WireError("bytes after the message" if pos < end else "truncated frame")
    return seen


def _c_count() -> Callable[[bytes, int], int] | None:
    """The C walk (``pytest_swarm/cluster/_frames.c``), raising this module's errors, or None
    where it was not built."""
    try:
        from . import _frames
    except ImportError:
        return None
    _frames.configure(WireError, FrameTooLarge)
    return _frames.count_elements


IMPLEMENTATIONS: dict[str, Callable[[bytes, int], int]] = {"python": _py_count_elements}
"""Every implementation of :func:`count_elements` here: "python" always, "c" where it was
built (the tests run against each, see :func:`use`)."""
_built = _c_count()
if _built is not None:
    IMPLEMENTATIONS["c"] = _built
_count: Callable[[bytes, int], int] = _py_count_elements
_current = "python"
ACCELERATED = False
"""Whether frames are walked in C (``pytest_swarm.cluster._frames`` was built, and
``SWARM_PURE_PYTHON=1`` does not ask for the pure-Python walk)."""


def use(name: str) -> str:
    """Switch :func:`count_elements` to implementation ``name`` (a key of
    :data:`IMPLEMENTATIONS`); returns the one in use before."""
    global _count, _current, ACCELERATED
    previous = _current
    _count, _current, ACCELERATED = IMPLEMENTATIONS[name], name, name == "c"
    return previous


if "c" in IMPLEMENTATIONS and not pure_python():
    use("c")


def decode(frame: bytes) -> Message:
    """Validate and decode one frame; raises :class:`WireError` (or VersionMismatch).

    Bounded before unpacking: the frame's bytes, then its number of objects
    (:func:`count_elements`), so that no frame costs more than ~``MAX_ELEMENTS`` small
    objects of memory, whatever it holds."""
    if len(frame) > MAX_FRAME:
        raise FrameTooLarge(f"frame of {len(frame)} bytes exceeds {MAX_FRAME}")
    count_elements(frame)
    try:
        data = msgpack.unpackb(
            frame,
            raw=False,
            strict_map_key=True,
            max_str_len=MAX_BLOB,
            max_bin_len=MAX_BLOB,
            max_array_len=MAX_ELEMENTS,
            max_map_len=MAX_ELEMENTS,
            max_ext_len=0,
        )
    except Exception as exc:  # msgpack raises many types for bad input
        raise WireError(f"undecodable frame: {type(exc).__name__}") from None
    if not isinstance(data, list) or len(data) != 3:
        raise WireError("frame is not [version, kind, body]")
    version, kind, body = data
    if type(version) is not int:
        raise WireError("bad protocol version field")
    if version != PROTOCOL_VERSION:
        raise VersionMismatch(
            f"peer speaks pytest-swarm protocol {version}, this side speaks {PROTOCOL_VERSION}"
        )
    if not isinstance(kind, str) or kind not in SCHEMA:
        raise WireError(f"unknown message kind {kind!r}")
    if not isinstance(body, dict):
        raise WireError(f"{kind}: body is not a map")
    fields = SCHEMA[kind]
    if set(body) != set(fields):
        raise WireError(f"{kind}: fields {sorted(body)} != {sorted(fields)}")
    for name, types in fields.items():
        value = body[name]
        # bool is an int subclass: keep the two apart.
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise WireError(f"{kind}: field {name!r} has type {type(value).__name__}")
        if isinstance(value, int) and not isinstance(value, bool) and value < 0:
            raise WireError(f"{kind}: field {name!r} is negative")
        # Durations, intervals, CPU and lag: never negative, NaN or infinite.
        if isinstance(value, float) and not (math.isfinite(value) and value >= 0):
            raise WireError(f"{kind}: field {name!r} is negative or not finite")
    return Message(kind, body)


MAX_SETTINGS_STRINGS = 200
MAX_SETTINGS_TEXT = 1000
MAX_SETTINGS_DEPTH = 4


def check_settings(settings: Any) -> dict[str, Any]:
    """A ``ready`` message's settings, checked: plain data only (maps with string keys,
    lists, strings, numbers, booleans), at most 4 levels deep, at most 200 strings of at most
    1000 characters. Raises :class:`WireError`.

    >>> check_settings({"load": "2 users @ 1/s for 2s", "abort": [{"grace": 10.0}]})["load"]
    '2 users @ 1/s for 2s'
    >>> check_settings({"x": [[[[["deep"]]]]]})
    Traceback (most recent call last):
    ...
    pytest_swarm.cluster.wire.WireError: ready: settings nested deeper than 4 levels
    """
    strings = 0

    def walk(value: Any, depth: int) -> None:
        nonlocal strings
        if depth > MAX_SETTINGS_DEPTH:
            raise WireError(f"ready: settings nested deeper than {MAX_SETTINGS_DEPTH} levels")
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise WireError("ready: settings keys must be strings")
                walk(key, depth)
                walk(item, depth + 1)
        elif isinstance(value, list):
            for item in value:
                walk(item, depth + 1)
        elif isinstance(value, str):
            strings += 1
            if strings > MAX_SETTINGS_STRINGS or len(value) > MAX_SETTINGS_TEXT:
                raise WireError("ready: settings too large")
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise WireError("ready: settings numbers must be finite")
        elif not isinstance(value, int | bool):
            raise WireError(f"ready: settings hold a {type(value).__name__}")

    if not isinstance(settings, dict):
        raise WireError("ready: settings must be a map")
    walk(settings, 0)
    return settings
