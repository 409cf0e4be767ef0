"""The message schema between xdist workers and the controller's aggregator.

Every message is one msgpack frame: ``[protocol version, kind, body]`` where ``body`` is a map
with the fields listed in :data:`SCHEMA`. Decoding never trusts the bytes: the frame size is
bounded before unpacking, msgpack's own container limits are set, the body is checked field by
field, and snapshots are rebuilt through ``Snapshot.from_wire`` (which bounds histogram sizes),
so a malformed or hostile message costs a ``WireError``, never a crash or a huge allocation.

Example:
    >>> frame = encode("ready", test="t.py::test_a", users=10, duration=2.0)
    >>> decode(frame)
    Message(kind='ready', body={'test': 't.py::test_a', 'users': 10, 'duration': 2.0})
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import msgpack

from .. import PROTOCOL_VERSION

MAX_FRAME = 8 * 1024 * 1024  # bytes; a worker's delta is typically a few KiB

_STR = (str,)
_INT = (int,)
_NUM = (int, float)
_LIST = (list,)
_DICT = (dict,)
_BOOL = (bool,)

# kind -> {field: allowed types}. Worker -> controller first, then controller -> worker.
SCHEMA: dict[str, dict[str, tuple[type, ...]]] = {
    "hello": {"worker": _STR, "version": _STR, "load_tests": _LIST},
    "ready": {"test": _STR, "users": _INT, "duration": _NUM},
    "abort": {"test": _STR, "reason": _STR},
    "stats": {"test": _STR, "seq": _INT, "delta": _DICT, "cpu": _NUM, "lag": _NUM},
    "final": {"test": _STR, "seq": _INT, "delta": _DICT, "cpu": _NUM, "lag": _NUM},
    "result?": {"test": _STR},
    "claim": {"test": _STR},
    "ping": {},
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
        "timeline": _LIST,
        "health": _LIST,
        "workers": _INT,
    },
    "reporter": {"test": _STR, "yes": _BOOL},
    "stop": {"test": _STR, "reason": _STR},
    "pong": {},
}


class WireError(ValueError):
    """A frame that is not a valid message of this protocol."""


class VersionMismatch(WireError):
    """A peer speaking another protocol version."""


@dataclass(frozen=True)
class Message:
    kind: str
    body: dict[str, Any]


def encode(kind: str, **body: Any) -> bytes:
    if kind not in SCHEMA:
        raise WireError(f"unknown message kind {kind!r}")
    frame: bytes = msgpack.packb([PROTOCOL_VERSION, kind, body], use_bin_type=True)
    if len(frame) > MAX_FRAME:
        raise WireError(f"{kind} message of {len(frame)} bytes exceeds {MAX_FRAME}")
    return frame


def decode(frame: bytes) -> Message:
    """Validate and decode one frame; raises :class:`WireError` (or VersionMismatch)."""
    if len(frame) > MAX_FRAME:
        raise WireError(f"frame of {len(frame)} bytes exceeds {MAX_FRAME}")
    try:
        data = msgpack.unpackb(
            frame,
            raw=False,
            strict_map_key=True,
            max_str_len=1024 * 1024,
            max_bin_len=1024 * 1024,
            max_array_len=200_000,
            max_map_len=20_000,
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
