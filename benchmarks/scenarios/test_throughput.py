"""pytest-swarm side of the generator benchmark: 50 users, zero wait, GET /.

Users, duration and host come from the command line (--swarm-users, --swarm-duration,
--swarm-host); benchmarks/generators.py runs these pinned to one CPU.
"""

import pytest


@pytest.mark.load(users=50, rate=1000)
def test_fast_http(fast_http):
    fast_http.get("/")


@pytest.mark.load(users=50, rate=1000)
def test_http(http):
    http.get("/")


@pytest.mark.load(users=50, rate=1000, wait=(5, 10))
def test_idle_fast_http(fast_http):
    fast_http.get("/")


@pytest.mark.load(users=50, rate=1000, wait=(5, 10))
def test_idle_http(http):
    http.get("/")
