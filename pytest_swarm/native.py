"""Whether to use the optional C extensions (``pytest_swarm._speedups`` and the others).

Each hot path written in C has a pure-Python twin with the same behaviour, used where the
extension was not compiled (no C compiler at install time, an interpreter other than CPython)
and when ``SWARM_PURE_PYTHON=1`` is in the environment (to compare the two, or to rule the C
code out when looking for a bug). The environment is read when the modules are imported.

Example:
    >>> import os
    >>> os.environ["SWARM_PURE_PYTHON"] = "1"
    >>> pure_python()
    True
    >>> del os.environ["SWARM_PURE_PYTHON"]
    >>> pure_python()
    False
"""

from __future__ import annotations

import os

ENV = "SWARM_PURE_PYTHON"


def pure_python() -> bool:
    """``SWARM_PURE_PYTHON`` asks for the pure-Python implementations (any value but 0)."""
    return os.environ.get(ENV, "") not in ("", "0")
