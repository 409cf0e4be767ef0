"""The ``fast_http`` client in real runs against the demo target: every request reported is a
request served (fixtures' logins and logouts included, cookies carrying the session), failures,
``catch_response``, the error kinds a user sees, and the JUnit properties."""

from __future__ import annotations

import socket

import pytest

from pytest_swarm.demo.server import DemoServer

from .harness import JUNIT_PROPERTIES, RunSwarm


@pytest.mark.slow
def test_reported_requests_equal_served_requests(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture
        def shopper(fast_http, swarm_user):
            r = fast_http.post("/login", json={"user": f"u{swarm_user.index}"})
            assert r.status_code == 200 and "session" in fast_http.cookies
            yield fast_http
            fast_http.post("/logout")
            # The logout's Set-Cookie (an empty value) removed the session cookie.
            assert "session" not in fast_http.cookies
            assert fast_http.get("/cart", name="cart after logout").status_code == 401

        @pytest.mark.load(users=6, rate=50, duration="1s")
        @pytest.mark.slo("error_rate < 100%")
        def test_shop(shopper, swarm_user):
            shopper.get("/items")
            shopper.get(f"/items/{swarm_user.iteration % 5 + 1}", name="item")
            cart = shopper.get("/cart")
            assert cart.status_code == 200, "the session cookie was not sent"
            assert cart.json()["user"] == f"u{swarm_user.index}"
            shopper.post("/cart", json={"item": 1})
            shopper.get("/status/500")       # a failure, still a request
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(passed=1)
    stats = served.stats()
    paths = stats["paths"]
    assert stats["logins"] == stats["logouts"] == 6
    assert run.count("test_shop") == stats["total"]
    # Every failure is a 500 or a logged-out cart (6 of them): no iteration failed, so every
    # GET /cart of a logged-in user was a 200.
    failures = run.prop("test_shop", "swarm_failures")
    assert failures == paths["/status/500"] + 6
    assert paths["/status/500"] > 0
    rows = {
        line.split("  ")[0].strip(): int(line.split()[-8].replace(",", ""))
        for line in run.result.outlines
        if line.startswith(("GET ", "POST ", "item ", "cart "))
    }
    items = sum(n for path, n in paths.items() if path.startswith("/items/"))
    assert rows == {
        "GET /items": paths["/items"],
        "item": items,
        "GET /cart": paths["/cart"] - rows["POST /cart"] - 6,
        "POST /cart": rows["POST /cart"],
        "cart after logout": 6,
        "GET /status/500": paths["/status/500"],
        "POST /login": paths["/login"],
        "POST /logout": paths["/logout"],
    }
    assert rows["POST /cart"] == rows["GET /cart"] > 0


def test_error_status_is_a_failure(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.load(users=2, rate=100, duration="500ms", wait=0.05)
        def test_broken(fast_http):
            response = fast_http.get("/status/500")
            assert response.status_code == 500  # returned, not raised
            assert fast_http.get("/status/399?x=1").status_code == 399
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(failed=1)
    assert run.result.ret == 1
    paths = served.stats()["paths"]
    assert run.prop("test_broken", "swarm_failures") == paths["/status/500"] > 0
    assert run.count("test_broken") == paths["/status/500"] + paths["/status/399"]
    run.result.stdout.fnmatch_lines(["*x  ?GET /status/500? HTTPError: 500 Internal Server Error"])
    assert "?x=1" not in run.output


def test_catch_response_decides_success_and_failure(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.load(users=2, rate=100, duration="500ms", wait=0.05)
        @pytest.mark.slo("[GET /status/404] failures <= 0", "[GET /] failures >= 1")
        def test_judged(fast_http):
            with fast_http.get("/status/404", catch_response=True) as r:
                if r.status_code == 404:
                    r.success()  # an expected "not found"
            with fast_http.get("/", catch_response=True) as r:
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


def test_an_exception_in_a_catch_block_is_counted_once(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.load(users=2, rate=100, duration="500ms", wait=0.05)
        @pytest.mark.slo("error_rate <= 100%")
        def test_raises(fast_http):
            with fast_http.get("/items", catch_response=True) as r:
                assert len(r.json()) == 3, "not three items"
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(passed=1)
    served_items = served.stats()["paths"]["/items"]
    # The request fails with the assertion; the iteration's failure is not a second entry.
    assert run.count("test_raises") == run.prop("test_raises", "swarm_failures") == served_items
    run.result.stdout.fnmatch_lines(["*x  ?GET /items? AssertionError: not three items*"])


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
        def test_refused(fast_http):
            response = fast_http.get("http://127.0.0.1:{port}/nothing", name="closed port")
            assert response.status_code == 0 and response.error is not None
            fast_http.get("/")
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(failed=1)
    served_requests = served.stats()["paths"]["/"]
    assert run.prop("test_refused", "swarm_failures") == served_requests > 0
    assert run.count("test_refused") == 2 * served_requests
    run.result.stdout.fnmatch_lines(["*x  ?closed port? ConnectionRefusedError: *"])


@pytest.mark.slow
def test_timeout_and_body_bound(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    pytester.makeini("[pytest]\nswarm_timeout = 0.3s\nswarm_max_body = 100000\n")
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.load(users=2, rate=100, duration=1)
        def test_limits(fast_http):
            assert len(fast_http.get("/bytes?n=1000", name="small").content) == 1000
            fast_http.get("/bytes?n=5000000", name="huge")
            fast_http.get("/hang")
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(failed=1)
    paths = served.stats()["paths"]
    assert paths["/hang"] >= 2
    assert run.prop("test_limits", "swarm_failures") == paths["/hang"] + paths["/bytes"] / 2
    assert run.count("test_limits") == paths["/hang"] + paths["/bytes"]
    run.result.stdout.fnmatch_lines(["*x  ?huge? BodyTooLarge: *100000*"])
    run.result.stdout.fnmatch_lines(["*x  ?GET /hang? TimeoutError: *"])


def test_junit_properties(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.load(users=3, rate=100, duration=1, wait=0.02)
        def test_props(fast_http):
            fast_http.get("/delay?ms=10")
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(passed=1)
    props = run.properties("test_props")
    assert not [name for name in JUNIT_PROPERTIES if name not in props]
    values = {name: float(props[name]) for name in JUNIT_PROPERTIES}
    assert values["swarm_users"] == 3
    assert values["swarm_duration_s"] >= 0.95
    assert values["swarm_requests"] == served.stats()["paths"]["/delay"] > 0
    assert values["swarm_failures"] == 0
    assert values["swarm_rps"] == pytest.approx(
        values["swarm_requests"] / values["swarm_duration_s"], rel=0.01
    )
    assert 10 <= values["swarm_p50_ms"] <= values["swarm_p95_ms"]
    assert values["swarm_p95_ms"] <= values["swarm_p99_ms"] <= values["swarm_max_ms"]
    testcase = run.testcase("test_props")
    assert testcase.find("failure") is None and testcase.find("error") is None


def test_fast_http_in_a_plain_test(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    pytester.makepyfile(
        """
        def test_plain(fast_http):
            assert fast_http.get("/").text == "ok"
            assert fast_http.get("/status/500").status_code == 500
            assert fast_http.post("/login", json={"user": "ann"}).status_code == 200
            assert fast_http.get("/cart").json()["user"] == "ann"
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(passed=1)
    assert served.stats()["total"] == 4
