"""Client libraries with I/O of their own that must be told about gevent, once patched.

Most clients use the standard ``socket`` module and become cooperative when gevent patches
it. grpcio does its I/O in its C core and has its own switch,
``grpc.experimental.gevent.init_gevent()``, which must run after the patch and before the
first channel. :func:`after_patch` is called by the plugin right after it patched the process
(before any conftest is imported, so before any user code could make a channel); the xdist
controller, which never patches, never calls it.

- grpcio installed: it is imported and ``init_gevent()`` called (35-90 ms measured, only in
  runs that patch). Without it, every call blocks the whole process: the users take turns.
- ``SWARM_GRPC_GEVENT=off`` (or ``0``, ``no``, ``false``) leaves grpc alone.
- grpcio absent, or failing to import: nothing; the user's own ``import grpc`` then says why.

Example:
    >>> init_grpc_gevent(environ={"SWARM_GRPC_GEVENT": "off"})
    False
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib import import_module
from importlib.util import find_spec

__all__ = ["GRPC_ENV", "after_patch", "init_grpc_gevent"]

GRPC_ENV = "SWARM_GRPC_GEVENT"
_OFF = frozenset({"0", "off", "no", "false"})


def init_grpc_gevent(environ: Mapping[str, str] = os.environ) -> bool:
    """Make grpcio cooperative if it is installed; whether it was done."""
    if environ.get(GRPC_ENV, "").strip().lower() in _OFF:
        return False
    try:
        if find_spec("grpc") is None:
            return False  # checked without importing: no cost where grpcio is absent
        grpc_gevent = import_module("grpc.experimental.gevent")
    except Exception:  # a broken grpcio must not break every load test
        return False
    grpc_gevent.init_gevent()  # idempotent: a conftest that still calls it takes no harm
    return True


def after_patch() -> list[str]:
    """Run every integration; the names of those turned on (plugin use, once per process)."""
    return ["grpc"] if init_grpc_gevent() else []
