"""pytest-swarm: load tests written as ordinary pytest tests.

Example:
    >>> import pytest
    >>> @pytest.mark.load(users=50, rate=10, duration="20s")
    ... @pytest.mark.slo("p95 < 300ms", "error_rate < 1%")
    ... def test_home(http):
    ...     http.get("/")
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # type checkers see the real class; at run time it is imported lazily
    from .timing import measure

__version__ = "0.1.0"
# The wire protocol between xdist workers and the controller; a mismatch is refused.
# 4: error groups carry first/last seen (Unix seconds) and their nodes (snapshot.py).
PROTOCOL_VERSION = 4

__all__ = ["PROTOCOL_VERSION", "__version__", "measure"]


def __getattr__(name: str) -> object:
    # Lazy: the plugin imports this package in every pytest run, load tests or not.
    if name == "measure":
        from .timing import measure

        return measure
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
