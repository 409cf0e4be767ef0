"""The ``http`` client (contract item 5): where relative URLs go, how requests are named, what
counts as a failure, ``catch_response``, the default timeout and the body size bound."""

from __future__ import annotations

import socket

import pytest

from pytest_swarm.demo.server import DemoServer

from .harness import RunSwarm

BODY = """
import pytest

@pytest.mark.load(users=2, rate=100, duration="500ms", wait=0.05)
def test_items(http):
    assert http.get("/items").status_code == 200
"""


def _assert_items_served(run_count: int, served: DemoServer) -> None:
    stats = served.stats()
    assert stats["paths"] == {"/items": run_count}
    assert run_count > 0


def test_relative_urls_use_the_swarm_host_option(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    pytester.makepyfile(BODY)
    run = swarm_pytest()
    run.result.assert_outcomes(passed=1)
    _assert_items_served(run.count("test_items"), served)


def test_relative_urls_use_the_swarm_host_ini(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    pytester.makeini(f"[pytest]\nswarm_host = {served.url}\n")
    pytester.makepyfile(BODY)
    run = swarm_pytest(host=False)
    run.result.assert_outcomes(passed=1)
    _assert_items_served(run.count("test_items"), served)


def test_relative_urls_use_a_base_url_fixture(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    pytester.makeconftest(
        f"""
        import pytest

        @pytest.fixture(scope="session")
        def base_url():
            return "{served.url}"
        """
    )
    pytester.makepyfile(BODY)
    run = swarm_pytest(host=False)
    run.result.assert_outcomes(passed=1)
    _assert_items_served(run.count("test_items"), served)


def test_swarm_host_wins_over_base_url(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture(scope="session")
        def base_url():
            return "http://127.0.0.1:9/never"
        """
    )
    pytester.makepyfile(BODY)
    run = swarm_pytest()
    run.result.assert_outcomes(passed=1)
    _assert_items_served(run.count("test_items"), served)


def test_request_names(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.load(users=2, rate=100, duration="500ms", wait=0.05)
        def test_names(http, swarm_user):
            http.get(f"/items?page={swarm_user.iteration}")
            http.get(f"/items/{swarm_user.index + 1}", name="GET /items/:id")
            http.post("/cart", json={"item": 1})
            http.get("/", params={"q": "x"})
            http.get("/items?next=http://elsewhere.invalid/")  # still relative
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(failed=1)  # POST /cart without a session is a 401
    # One row per name, query strings never part of a name.
    run.result.stdout.fnmatch_lines(
        [
            "Name *Requests *Fails *Req/s *p50 *p90 *p95 *p99 *Max",
            "GET / *",
            "GET /items *",
            "GET /items/:id *",
            "POST /cart *",
            "Total *",
        ]
    )
    output = run.output
    assert "?page" not in output and "?q=" not in output and "elsewhere" not in output
    assert "GET /items/1 " not in output
    stats = served.stats()
    assert stats["paths"]["/cart"] == run.prop("test_names", "swarm_failures")
    assert run.count("test_names") == stats["total"]


def test_error_status_is_a_failure(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.load(users=2, rate=100, duration="500ms", wait=0.05)
        def test_unavailable(http):
            response = http.get("/status/503")
            assert response.status_code == 503  # returned, not raised
            http.get("/status/399")
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(failed=1)
    assert run.result.ret == 1
    paths = served.stats()["paths"]
    assert run.prop("test_unavailable", "swarm_failures") == paths["/status/503"] > 0
    assert run.count("test_unavailable") == paths["/status/503"] + paths["/status/399"]
    run.result.stdout.fnmatch_lines(["*x  ?GET /status/503? HTTPError: 503 Service Unavailable"])


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_connection_refused_is_a_failure_and_the_user_goes_on(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    port = _closed_port()
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.load(users=2, rate=100, duration="500ms", wait=0.05)
        def test_refused(http):
            response = http.get("http://127.0.0.1:{port}/nothing", name="closed port")
            assert response.status_code == 0
            http.get("/")
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(failed=1)
    served_requests = served.stats()["paths"]["/"]
    # The user went on after each refused connection: one "/" per refused request.
    assert run.prop("test_refused", "swarm_failures") == served_requests > 0
    assert run.count("test_refused") == 2 * served_requests
    run.result.stdout.fnmatch_lines(["*x  ?closed port? ConnectionError: *"])


def test_catch_response_decides_success_and_failure(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.load(users=2, rate=100, duration="500ms", wait=0.05)
        @pytest.mark.slo("[GET /status/404] failures <= 0", "[GET /] failures >= 1")
        def test_judged(http):
            with http.get("/status/404", catch_response=True) as r:
                if r.status_code == 404:
                    r.success()  # an expected "not found"
            with http.get("/", catch_response=True) as r:
                if r.text == "ok":
                    r.failure("body was only ok")
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(passed=1)
    paths = served.stats()["paths"]
    assert run.prop("test_judged", "swarm_failures") == paths["/"] > 0
    assert run.count("test_judged") == paths["/"] + paths["/status/404"]
    run.result.stdout.fnmatch_lines(["*x  ?GET /? Failure: body was only ok"])


def test_default_timeout_ends_a_hanging_request(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    pytester.makeini("[pytest]\nswarm_timeout = 0.5s\n")
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.load(users=2, rate=100, duration=1)
        def test_hang(http):
            http.get("/hang")
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(failed=1)
    failures = run.prop("test_hang", "swarm_failures")
    assert failures == run.count("test_hang") == served.stats()["paths"]["/hang"]
    assert failures >= 2
    run.result.stdout.fnmatch_lines(["*x  ?GET /hang? *Timeout*"])


def test_without_a_timeout_setting_the_product_default_ends_hanging_requests(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    """Row 12: no ``swarm_timeout`` anywhere, yet every request to a hanging endpoint fails
    with a timeout. The product default (30 s) is lowered in the run's conftest only so the
    test is short: a fixture or client that dropped the default would hang until the stop
    killed the users instead, with no timeout failure at all."""
    pytester.makeconftest(
        """
        import pytest_swarm.options

        pytest_swarm.options.DEFAULT_TIMEOUT = 0.3
        """
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.load(users=2, rate=100, duration=1)
        def test_hang(http, fast_http):
            assert http.default_timeout == fast_http.timeout == 0.3
            http.get("/hang", name="http")
            fast_http.get("/hang", name="fast")
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(failed=1)
    assert run.prop("test_hang", "swarm_failures") == run.count("test_hang") >= 4
    # The read timeout itself, not only the deadline (which defaults to it), ended them.
    run.result.stdout.fnmatch_lines(
        [
            "*x  ?http? ReadTimeout: Read timed out. (read timeout=0.3)*",
            "*x  ?fast? TimeoutError: read timed out (timeout=0.3s)*",
        ]
    )


def test_body_above_max_body_is_a_failure(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    pytester.makeini("[pytest]\nswarm_max_body = 100000\n")
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.load(users=2, rate=100, duration="500ms", wait=0.05)
        def test_bytes(http):
            assert len(http.get("/bytes?n=1000", name="small").content) == 1000
            http.get("/bytes?n=5000000", name="huge")
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(failed=1)
    assert run.prop("test_bytes", "swarm_failures") == served.stats()["paths"]["/bytes"] / 2
    run.result.stdout.fnmatch_lines(["*x  ?huge? BodyTooLarge: *100000*"])


def test_http_fixture_in_a_plain_test(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    pytester.makepyfile(
        """
        def test_plain(http):
            assert http.get("/").text == "ok"
            assert http.get("/status/500").status_code == 500
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(passed=1)
    assert served.stats()["total"] == 2


def test_the_request_deadline_option_reaches_both_clients(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    pytester.makeini("[pytest]\nswarm_timeout = 4s\nswarm_request_deadline = 2.5s\n")
    pytester.makepyfile(
        """
        def test_set(http, fast_http):
            assert http.default_timeout == fast_http.timeout == 4
            assert http.default_deadline == fast_http.deadline == 2.5
        """
    )
    swarm_pytest().result.assert_outcomes(passed=1)
    pytester.makeini("[pytest]\nswarm_timeout = 4s\n")
    pytester.makepyfile(
        """
        def test_set(http, fast_http):
            assert http.default_deadline == fast_http.deadline == 4  # the timeout
        """
    )
    swarm_pytest().result.assert_outcomes(passed=1)
