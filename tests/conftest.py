"""Shared fixtures for the pytest-swarm test-suite.

The ``pytester`` plugin is enabled through ``addopts = "-p pytester"`` in
pyproject.toml, so it is not listed here again.

Fixtures:
    demo_server: one demo target child process for the whole session.
    served: the same server, with its counters reset before the test.

Example:
    >>> def test_counts(served):  # doctest: +SKIP
    ...     requests.get(served.url + "/items")
    ...     assert served.stats()["paths"] == {"/items": 1}
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pytest_swarm.demo.server import DemoServer


@pytest.fixture(autouse=True)
def _not_an_xdist_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nested pytester runs must not believe they are xdist workers."""
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT", raising=False)


@pytest.fixture(scope="session")
def demo_server() -> Iterator[DemoServer]:
    """A demo target running in a child process for the whole session."""
    server = DemoServer.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def served(demo_server: DemoServer) -> DemoServer:
    """The session's demo target with every counter reset to zero."""
    demo_server.reset()
    return demo_server
