"""Redis: a ``redis-py`` client per virtual user, every command timed, an objective on p99.

redis-py talks to the server over the standard ``socket`` module, so under gevent each user's
command waits without blocking the others.

The server is ``SWARM_REDIS_URL`` if set, else a private ``redis-server`` started for this
session on a free port (Debian: ``apt-get install redis-server``; without it this example is
skipped).
"""

from __future__ import annotations

import os

import pytest

from pytest_swarm import measure

redis = pytest.importorskip("redis", reason="needs redis-py (pip install redis)")


@pytest.fixture(scope="session")
def redis_url():
    """The server: ``SWARM_REDIS_URL``, else a throw-away redis-server on a free port."""
    if os.environ.get("SWARM_REDIS_URL"):
        yield os.environ["SWARM_REDIS_URL"]
        return
    from protocols.redis_server import binary, redis_server

    if binary() is None:
        pytest.skip("no redis-server: apt-get install redis-server, or set SWARM_REDIS_URL")
    with redis_server() as url:
        yield url


@pytest.fixture
def redis_client(redis_url, swarm_user):
    """One client (and so one connection) per virtual user, closed when the user stops."""
    client = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
    yield client
    client.close()


@pytest.mark.load(users=10, rate=10, duration="3s", wait=(0.01, 0.05))
@pytest.mark.slo("[redis GET] p99 < 50ms", "[redis SET] p99 < 50ms", "error_rate < 1%")
def test_cache(redis_client, swarm_user):
    key = f"example:user:{swarm_user.index}"
    with measure("redis SET"):
        redis_client.set(key, swarm_user.iteration, ex=60)
    with measure("redis GET") as m:
        value = redis_client.get(key)
        m.size = len(value or b"")
        if value != str(swarm_user.iteration).encode():
            m.failure(f"read {value!r} back")
