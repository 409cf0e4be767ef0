"""Fixtures of the protocol tests: real servers (WebSocket, gRPC, Redis) and real pytest runs.

The servers are started once per session by this (unpatched) test process, in child processes
on free loopback ports, and handed to the pytest runs under test through the variables the
examples read (``SWARM_WS_URL``, ``SWARM_GRPC_TARGET``, ``SWARM_REDIS_URL``): under xdist every
worker of a run then talks to the same server. Each run is a ``pytester`` subprocess, so it is
gevent-patched as a user's run would be.

Fixtures:
    ws_url, grpc_target, redis_url: the session's servers.
    run_load: run pytest on the pytester project with those variables set; returns a
        :class:`LoadRun` (the pytester result and the JSON report by test).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from acceptance.harness import RUN_TIMEOUT

from .servers import example_server, require_redis_server


@dataclass
class LoadRun:
    """A finished run: what pytest said, and the JSON report of each load test by node id."""

    result: pytest.RunResult
    tests: dict[str, dict[str, Any]]

    @property
    def output(self) -> str:
        return "\n".join(self.result.outlines + self.result.errlines)

    def requests(self, test: str) -> dict[str, tuple[int, int]]:
        """name -> (count, failures) of load test ``test`` (a node id; ``#1`` for swarm.run)."""
        rows = self.tests[test]["requests"]
        return {name: (row["count"], row["failures"]) for name, row in rows.items()}

    def errors(self, test: str) -> list[dict[str, Any]]:
        return list(self.tests[test]["errors"])


RunLoad = Callable[..., LoadRun]


@pytest.fixture(scope="session")
def ws_url() -> Iterator[str]:
    with example_server("ws_server") as url:
        yield url


@pytest.fixture(scope="session")
def grpc_target() -> Iterator[str]:
    with example_server("grpc_server") as target:
        yield target


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """``SWARM_REDIS_URL`` if given, else a private redis-server on a free port."""
    require_redis_server()
    if os.environ.get("SWARM_REDIS_URL"):
        yield os.environ["SWARM_REDIS_URL"]
        return
    with example_server("redis_server") as url:
        yield url


@pytest.fixture
def key() -> str:
    """A name no other run uses (barriers, Redis keys): the servers live for the session."""
    return uuid.uuid4().hex[:12]


@pytest.fixture
def run_load(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> RunLoad:
    """Run pytest in a subprocess on the project; ``servers`` maps variable -> address."""
    counter = iter(range(1_000_000))

    def run(*args: str, servers: dict[str, str] | None = None) -> LoadRun:
        for name, address in (servers or {}).items():
            monkeypatch.setenv(name, address)
        report = pytester.path / f"report-{next(counter)}.json"
        result = pytester.runpytest_subprocess(
            "-p",
            "no:cacheprovider",
            "-p",
            "no:hypothesispytest",
            f"--swarm-json={report}",
            *args,
            timeout=RUN_TIMEOUT,
        )
        tests: dict[str, dict[str, Any]] = {}
        if report.exists():
            tests = {d["test"]: d for d in json.loads(report.read_text())["load_tests"]}
        return LoadRun(result, tests)

    return run
