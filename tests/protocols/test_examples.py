"""The protocol examples as shipped (``examples/test_ws.py``, ``test_redis.py``,
``test_grpc.py``): they pass against the servers they start themselves, and on a machine
without the client packages or ``redis-server`` they skip, saying what to install, so the
README's ``pytest examples`` still passes there."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from .conftest import RunLoad
from .servers import EXAMPLES, require_redis_server

FILES = ("conftest.py", "pytest.ini", "test_ws.py", "test_redis.py", "test_grpc.py")
OWN_SERVERS = ("SWARM_WS_URL", "SWARM_GRPC_TARGET")


def copy_examples(target: Path) -> None:
    for name in FILES:
        shutil.copy(EXAMPLES / name, target / name)
    shutil.copytree(EXAMPLES / "protocols", target / "protocols")


def test_the_examples_pass_against_the_servers_they_start(
    pytester: pytest.Pytester, run_load: RunLoad, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_redis_server()
    for name in OWN_SERVERS:
        monkeypatch.delenv(name, raising=False)  # the examples start their own
    copy_examples(pytester.path)
    run = run_load("--swarm-duration=1s")
    # None skipped, none in error. The examples' latency objectives are judged too, but a
    # noisy machine may miss one: that is a verdict on the machine, not on the examples.
    outcomes = run.result.parseoutcomes()
    assert outcomes.get("passed", 0) + outcomes.get("failed", 0) == 3, run.output
    assert {
        test: (doc["total"]["count"] > 0, doc["total"]["failures"])
        for test, doc in run.tests.items()
    } == {
        "test_ws.py::test_echo": (True, 0),
        "test_redis.py::test_cache": (True, 0),
        "test_grpc.py::test_unary_echo": (True, 0),
    }
    for test, doc in run.tests.items():
        missed = [o["objective"] for o in doc["objectives"] if not o["met"]]
        assert all(" p9" in o or o.startswith("max") for o in missed), (test, missed)


# Loaded with -p before anything is collected: the client packages cannot be imported.
HIDE_PACKAGES = """
import sys

class Hide:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"websocket", "websockets", "redis", "grpc"}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Hide())
"""


def test_without_the_packages_the_examples_skip_saying_what_to_install(
    pytester: pytest.Pytester, run_load: RunLoad
) -> None:
    copy_examples(pytester.path)
    pytester.makepyfile(hide_packages=HIDE_PACKAGES)
    run = run_load("-p", "hide_packages", "-rs")
    run.result.assert_outcomes(skipped=3)
    run.result.stdout.fnmatch_lines_random(
        [
            "SKIPPED*test_ws.py*needs websocket-client*",
            "SKIPPED*test_redis.py*needs redis-py (pip install redis)*",
            "SKIPPED*test_grpc.py*needs grpcio (pip install grpcio)*",
        ]
    )


def test_without_redis_server_the_redis_example_skips_saying_what_to_install(
    pytester: pytest.Pytester, run_load: RunLoad, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy_examples(pytester.path)
    monkeypatch.delenv("SWARM_REDIS_URL", raising=False)
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))  # no redis-server there
    run = run_load("-rs", "test_redis.py")
    run.result.assert_outcomes(skipped=1)
    run.result.stdout.fnmatch_lines(["SKIPPED*no redis-server: apt-get install redis-server*"])
