"""gevent patching (contract item 12): users really run concurrently, patching happens before
conftest files import ``ssl``/``requests``, and a run without load tests is left alone."""

from __future__ import annotations

import pytest

from pytest_swarm.demo.server import DemoServer

from .harness import RunSwarm

# Written into the project as nopatch.py.
NOT_PATCHED = """
def assert_not_patched():
    import socket
    import sys
    import threading
    if "gevent.monkey" in sys.modules:
        from gevent import monkey
        assert not monkey.is_module_patched("socket")
        assert not monkey.is_module_patched("ssl")
    assert socket.socket.__module__ == "socket"
    assert threading.Thread.__module__ == "threading"
"""


@pytest.mark.slow
def test_users_run_concurrently(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    # 10 users on a 200 ms endpoint for 2 s: about 100 requests when they overlap, about 10 if
    # they take turns (what a missing or late patch silently gives).
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.load(users=10, rate=100, duration="2s")
        def test_concurrent(http):
            http.get("/delay?ms=200")
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(passed=1)
    requests = run.count("test_concurrent")
    assert requests == served.stats()["total"]
    assert requests >= 60


def test_conftest_importing_ssl_and_requests_causes_no_monkey_patch_warning(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    pytester.makeconftest(
        """
        import ssl

        import requests
        from gevent import monkey

        PATCHED_BEFORE_CONFTEST = monkey.is_module_patched("ssl")
        """
    )
    pytester.makepyfile(
        test_load="""
        import pytest

        @pytest.mark.load(users=2, rate=100, duration="500ms", wait=0.05)
        def test_home(http):
            http.get("/")

        def test_conftest_saw_patched_modules():
            import conftest
            assert conftest.PATCHED_BEFORE_CONFTEST
        """,
        # The control below: a plugin that imports requests before the plugin can patch.
        early_requests="import requests\n",
    )
    args = ("-W", "error::gevent.monkey.MonkeyPatchWarning")
    run = swarm_pytest(*args)
    run.result.assert_outcomes(passed=2)
    assert "MonkeyPatchWarning" not in run.output
    # The check is sensitive: importing requests before the plugin patches is caught.
    control = swarm_pytest(*args, "-p", "early_requests")
    assert "MonkeyPatchWarning" in control.output
    assert control.result.ret != 0


def test_run_without_load_tests_is_not_patched(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    host, port = served.host, served.port
    pytester.makepyfile(
        nopatch=NOT_PATCHED,
        test_plain=f"""
import asyncio
import threading
import urllib.request

from nopatch import assert_not_patched


def test_asyncio_client():
    assert_not_patched()

    async def fetch():
        reader, writer = await asyncio.open_connection("{host}", {port})
        writer.write(b"GET / HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n")
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), timeout=10)
        writer.close()
        await writer.wait_closed()
        return data

    assert asyncio.run(fetch()).startswith(b"HTTP/1.1 200")


def test_threads():
    assert_not_patched()
    bodies = []

    def fetch():
        with urllib.request.urlopen("http://{host}:{port}/items", timeout=10) as response:
            bodies.append(response.status)

    threads = [threading.Thread(target=fetch) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert bodies == [200, 200, 200]
    assert threading.get_ident() != 0
""",
    )
    run = swarm_pytest()
    run.result.assert_outcomes(passed=2)
    assert served.stats()["paths"] == {"/": 1, "/items": 3}


def test_run_with_load_tests_is_patched(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    pytester.makepyfile(
        """
        import pytest
        from gevent import monkey

        def test_plain_test_in_a_load_run():
            assert monkey.is_module_patched("socket")
            assert monkey.is_module_patched("ssl")
            # One process without xdist: threads too (row 35, a lock held across a request).
            assert monkey.is_module_patched("threading")

        @pytest.mark.load(users=2, rate=100, duration="500ms", wait=0.05)
        def test_home(http):
            http.get("/")
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(passed=2)


def test_load_test_the_scan_cannot_see_is_an_error_not_a_slow_pass(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    # `m.load` escapes the early scan: the run is not patched, and the load test must refuse
    # to run rather than measure users taking turns. --swarm-patch=on fixes it.
    pytester.makepyfile(
        """
        from pytest import mark as m

        @m.load(users=2, rate=100, duration="500ms", wait=0.05)
        def test_hidden(http):
            http.get("/")
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(errors=1)
    run.result.stdout.fnmatch_lines(["*gevent has not patched*--swarm-patch=on*"])
    assert served.stats()["total"] == 0
    run = swarm_pytest("--swarm-patch=on")
    run.result.assert_outcomes(passed=1)
    assert run.count("test_hidden") == served.stats()["total"] > 0


def test_patch_off_refuses_to_run_load(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    pytester.makepyfile(
        nopatch=NOT_PATCHED,
        test_off="""
        import pytest
        from nopatch import assert_not_patched

        def test_plain():
            assert_not_patched()

        @pytest.mark.load(users=2, rate=100, duration="500ms", wait=0.05)
        def test_home(http):
            http.get("/")
        """,
    )
    run = swarm_pytest("--swarm-patch=off")
    run.result.assert_outcomes(passed=1, errors=1)
    assert served.stats()["total"] == 0


@pytest.mark.slow
def test_subprocess_after_a_load_test(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    pytester.makepyfile(
        """
        import faulthandler
        import subprocess
        import sys

        import pytest

        @pytest.mark.load(users=2, rate=100, duration="500ms", wait=0.05)
        def test_home(http):
            http.get("/")

        def test_spawn_twice():
            # A hang detector, not a measurement: two tiny processes take well under a second.
            faulthandler.dump_traceback_later(5, exit=True)
            try:
                for _ in range(2):
                    done = subprocess.run([sys.executable, "-c", "print(1)"], timeout=20)
                    assert done.returncode == 0
            finally:
                faulthandler.cancel_dump_traceback_later()
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(passed=2)


# Row 35: a session fixture guards a token cache with threading.Lock held across a request, and
# a connection pool is a queue.Queue (what SQLAlchemy and client libraries' token refreshes do).
# With real OS locks the second user blocks the one OS thread every user shares while the first
# waits for its response: the process deadlocks. The timeouts bound that hang for the test.
LOCK_ACROSS_A_REQUEST = """
import queue
import threading

import pytest


class TokenCache:
    def __init__(self):
        self.lock = threading.Lock()
        self.rlock = threading.RLock()
        self.refreshes = 0

    def token(self, http):
        if not self.lock.acquire(timeout=5):
            raise RuntimeError("deadlock: threading.Lock never released")
        try:
            with self.rlock:           # re-entered by its owner, excludes the other users
                with self.rlock:
                    self.refreshes += 1
                    http.get("/delay?ms=20")   # held across a request
        finally:
            self.lock.release()


@pytest.fixture(scope="session")
def token_cache():
    return TokenCache()


@pytest.fixture(scope="session")
def pool():
    connections = queue.Queue()
    for n in range(2):
        connections.put(n)
    return connections


@pytest.mark.load(users=4, rate=100, duration="30s", iterations=3)
def test_token(http, token_cache, pool):
    token_cache.token(http)
    connection = pool.get(timeout=5)   # 4 users, 2 connections: users wait for each other
    try:
        http.get("/delay?ms=10")
    finally:
        pool.put(connection)
"""


def test_threading_lock_held_across_a_request_in_one_process(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    pytester.makepyfile(LOCK_ACROSS_A_REQUEST)
    run = swarm_pytest()
    run.result.assert_outcomes(passed=1)
    assert "deadlock" not in run.output
    # 4 users x 3 iterations, each a token request and a pooled request: all completed.
    paths = served.stats()["paths"]
    assert paths.get("/delay") == 24, paths
    assert run.count("test_token") == 24


def test_threading_lock_held_across_a_request_under_xdist(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    # An xdist worker keeps real threads (execnet's IO thread): the locks user code creates are
    # made cooperative instead. Before, the worker blocked and the run ended in an INTERNALERROR.
    pytester.makepyfile(LOCK_ACROSS_A_REQUEST)
    run = swarm_pytest("-n", "2")
    run.result.assert_outcomes(passed=1)
    assert "deadlock" not in run.output and "INTERNALERROR" not in run.output
    paths = served.stats()["paths"]
    assert paths.get("/delay") == 24, paths
    assert run.count("test_token") == 24
