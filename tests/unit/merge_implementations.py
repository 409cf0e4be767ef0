"""The ``merge_implementation`` fixture: a test module that imports it runs every test against
each implementation of the controller's merge loop (pytest_swarm/stats/_merge.c where it was
built, and histogram.py's pure-Python functions), as tests/unit/test_timing.py does for the
measure block.

    from merge_implementations import merge_implementation  # noqa: F401  (autouse)
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pytest_swarm.stats import histogram


@pytest.fixture(scope="module", autouse=True, params=sorted(histogram.IMPLEMENTATIONS))
def merge_implementation(request: pytest.FixtureRequest) -> Iterator[str]:
    """The module's tests with ``histogram.use(param)``: "c" and "python" in turn."""
    previous = histogram.use(request.param)
    try:
        yield request.param
    finally:
        histogram.use(previous)
