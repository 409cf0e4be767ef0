"""The ``merge_implementation`` fixture: a test module that imports it runs every test against
each implementation of the controller's C paths (pytest_swarm/stats/_merge.c, the merge loop,
and pytest_swarm/cluster/_frames.c, the frame walk, where they were built) and against their
pure-Python fallbacks in histogram.py and wire.py, as tests/unit/test_timing.py does for the
measure block.

    from merge_implementations import merge_implementation  # noqa: F401  (autouse)
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pytest_swarm.cluster import wire
from pytest_swarm.stats import histogram

NAMES = sorted(set(histogram.IMPLEMENTATIONS) | set(wire.IMPLEMENTATIONS))


@pytest.fixture(scope="module", autouse=True, params=NAMES)
def merge_implementation(request: pytest.FixtureRequest) -> Iterator[str]:
    """The module's tests with the merge loop and the frame walk both "c", then both
    "python" (one that was not built is skipped)."""
    if request.param not in histogram.IMPLEMENTATIONS or request.param not in wire.IMPLEMENTATIONS:
        pytest.skip(f"the {request.param} implementation was not built")
    merge, walk = histogram.use(request.param), wire.use(request.param)
    try:
        yield request.param
    finally:
        histogram.use(merge)
        wire.use(walk)
