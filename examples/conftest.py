"""Shared fixtures of the examples.

``base_url`` follows the pytest-base-url convention: the ``http`` client of pytest-swarm sends
relative URLs to it. By default it starts the demo target that ships with pytest-swarm
(``python -m pytest_swarm.demo``) in a child process, once for the whole session. With
``--swarm-host URL`` (or ``swarm_host`` in the ini file) the examples run against that URL
instead and nothing is started.

The ``shopper`` fixture is function-scoped, so in a load test each virtual user gets its own:
its own session cookie, logged in as its own user, logged out when that user stops.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pytest_swarm.demo.server import DemoServer


@pytest.fixture(scope="session")
def base_url(pytestconfig: pytest.Config) -> Iterator[str]:
    """The target: ``--swarm-host`` if given, else a demo target started for this session."""
    host = pytestconfig.getoption("swarm_host") or pytestconfig.getini("swarm_host")
    if host:
        yield str(host)
        return
    server = DemoServer.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def shopper(http, swarm_user):
    """One logged-in virtual user: logs in when the user starts, logs out when it stops."""
    http.post("/login", json={"user": f"user-{swarm_user.index}"}, name="POST /login")
    yield http
    http.post("/logout", name="POST /logout")
