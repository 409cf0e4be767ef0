"""Stats exactness (contract item 6): the requests pytest-swarm reports are exactly the requests
the target served, fixtures' logins and logouts included, failures included, requests in flight at
the end included."""

from __future__ import annotations

import pytest

from pytest_swarm.demo.server import DemoServer

from .harness import RunSwarm


def test_reported_requests_equal_served_requests(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture
        def shopper(http, swarm_user):
            http.post("/login", json={"user": f"u{swarm_user.index}"})
            yield http
            http.post("/logout")

        @pytest.mark.load(users=8, rate=20, duration="1500ms")
        @pytest.mark.slo("error_rate < 100%")
        def test_shop(shopper, swarm_user):
            shopper.get("/items")
            shopper.get(f"/items/{swarm_user.iteration % 5 + 1}", name="item")
            shopper.post("/cart", json={"item": 1})
            shopper.get("/status/500")       # a failure, still a request
            shopper.get("/delay?ms=50")
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(passed=1)
    stats = served.stats()
    assert stats["logins"] == stats["logouts"] == 8
    assert run.count("test_shop") == stats["total"]
    assert run.prop("test_shop", "swarm_failures") == stats["paths"]["/status/500"] > 0
    # The table agrees name by name.
    rows = {
        line.split("  ")[0].strip(): int(line.split()[-8].replace(",", ""))
        for line in run.result.outlines
        if line.startswith(("GET ", "POST ", "item "))
    }
    paths = stats["paths"]
    items = sum(n for path, n in paths.items() if path.startswith("/items/"))
    assert rows == {
        "GET /items": paths["/items"],
        "item": items,
        "POST /cart": paths["/cart"],
        "GET /status/500": paths["/status/500"],
        "GET /delay": paths["/delay"],
        "POST /login": paths["/login"],
        "POST /logout": paths["/logout"],
    }


def test_fixture_form_counts_per_name(
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
    pytester.makepyfile(
        """
        import requests

        def shop(http, swarm_user):
            http.get("/items")
            http.get("/flaky")
            if swarm_user.index % 2:
                http.get("/delay?ms=30", name="slow path")

        def test_counts(swarm, base_url):
            result = swarm.run(shop, users=6, rate=50, duration="1s")
            served = requests.get(base_url + "/__stats", timeout=10).json()
            paths = served["paths"]
            assert result.total.count == served["total"]
            assert result["GET /items"].count == paths["/items"]
            assert result["GET /flaky"].count == paths["/flaky"]
            assert result["slow path"].count == paths["/delay"]
            assert result.total.failures == result["GET /flaky"].failures
        """
    )
    run = swarm_pytest(host=False)
    run.result.assert_outcomes(passed=1)
    assert run.count("test_counts") == served.stats()["total"] > 0


def test_iteration_failures_are_entries_beside_requests(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.load(users=3, rate=100, duration=1, wait=0.02)
        @pytest.mark.slo("error_rate < 60%")
        def test_half(http, swarm_user):
            http.get("/")
            assert swarm_user.iteration % 2 == 0, "odd"
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(passed=1)
    requests = served.stats()["total"]
    failures = int(run.prop("test_half", "swarm_failures"))
    # Requests plus one entry per failed iteration (about every other one).
    assert run.count("test_half") == requests + failures
    assert 0 < failures <= requests
    error_ratio = float(run.properties("test_half")["swarm_error_ratio"])
    assert error_ratio == pytest.approx(failures / (requests + failures), abs=1e-5)
