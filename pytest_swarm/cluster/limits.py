"""Every size bound of the wire protocol, in one place (encoder and decoder alike).

A frame is bounded in bytes (:data:`MAX_FRAME`) and in decoded elements (:data:`MAX_ELEMENTS`,
checked by :func:`pytest_swarm.cluster.wire.count_elements` before anything is unpacked). The
msgpack decoder's own per-field limits and the histogram blob's bound derive from these two, so
whatever one side may send, the other side accepts.

Example:
    >>> MAX_BLOB == MAX_FRAME
    True
"""

from __future__ import annotations

MAX_FRAME = 8 * 1024 * 1024  # bytes; a worker's delta is typically a few KiB
# Decoded msgpack objects per frame. The bulk of a frame (histograms, timeline) travels in
# binary blobs, so a legitimate frame holds at most ~45,000 objects (2,000 names, 500 error
# groups of 9 fields and up to 64 node names each: tests/unit/test_snapshot_seen.py builds it);
# 8 MiB of empty maps would be 8 million Python dicts (~600 MiB).
MAX_ELEMENTS = 100_000
# One string or binary field may fill the frame (a merged result's histogram blob can).
MAX_BLOB = MAX_FRAME
