"""The fixture form (contract item 8): ``swarm.run(fn, users=..., duration=...)`` returns the
aggregated result; ``fn``'s parameters are per-user fixtures resolved by name (also fixtures the
test does not request itself); a weighted dict runs every function."""

from __future__ import annotations

import pytest

from pytest_swarm.demo.server import DemoServer

from .harness import RunSwarm


def test_run_returns_the_aggregated_result(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    pytester.makepyfile(
        """
        import pytest

        def browse(http):
            http.get("/items", name="items")
            http.get("/delay?ms=100")

        def test_latency(swarm):
            result = swarm.run(browse, users=3, rate=100, duration="1s")
            assert result["items"].count > 0
            assert result["items"].p95 > 0
            assert result["GET /delay"].p50 >= 0.100       # seconds
            assert result["GET /delay"].p95 >= result["GET /delay"].p50
            assert result.total.count == result["items"].count + result["GET /delay"].count
            assert result.total.rps > 0
            assert result.error_ratio == 0.0
            assert "items" in result and "nothing" not in result
            with pytest.raises(KeyError, match="items"):
                result["nothing"]
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(passed=1)
    # The figures of the (first) run land in JUnit too.
    assert run.count("test_latency") == served.stats()["total"] > 0
    run.result.stdout.fnmatch_lines(["test_latency ?swarm.run #1?: 3 users*", "Name *Requests*"])


def test_user_function_fixtures_are_per_user_and_resolved_by_name(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    # The test requests only `swarm`; `shopper` (and its `http`) are found by name.
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture
        def shopper(http, swarm_user):
            http.post("/login", json={"user": f"u{swarm_user.index}"})
            yield http
            http.post("/logout")
        """
    )
    pytester.makepyfile(
        """
        def checkout(shopper, swarm_user):
            assert 0 <= swarm_user.index < 5
            shopper.post("/cart", json={"item": swarm_user.index})

        def test_checkout(swarm):
            result = swarm.run(checkout, users=5, rate=100, duration="1s", wait=0.05)
            assert result["POST /cart"].failures == 0   # every user had its own session
            assert result["POST /login"].count == 5
            assert result["POST /logout"].count == 5
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(passed=1)
    stats = served.stats()
    assert stats["logins"] == stats["logouts"] == 5


def test_weighted_mix_runs_every_function(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    pytester.makepyfile(
        """
        def browse(http):
            http.get("/", name="browse")

        def buy(http):
            http.get("/items/1", name="buy")

        def test_mix(swarm):
            result = swarm.run({browse: 3, buy: 1}, users=4, rate=100, duration="1s")
            assert result["browse"].count > 0
            assert result["buy"].count > 0
            assert result["browse"].count > result["buy"].count
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(passed=1)
    paths = served.stats()["paths"]
    assert paths["/"] > 0 and paths["/items/1"] > 0


def test_failures_are_grouped_with_a_sample_traceback(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    pytester.makepyfile(
        """
        def flaky_user(http, swarm_user):
            http.get("/")
            if swarm_user.iteration % 2:
                raise_deep(swarm_user.index % 2)

        def raise_deep(parity):
            raise ValueError(f"parity {parity}")

        def test_errors(swarm):
            result = swarm.run(flaky_user, users=4, rate=100, duration="1s", wait=0.02)
            assert 0 < result.error_ratio < 1
            groups = {(g.name, g.kind, g.message): g for g in result.errors}
            assert set(groups) == {
                ("flaky_user", "ValueError", "parity 0"),
                ("flaky_user", "ValueError", "parity 1"),
            }
            assert sum(g.count for g in groups.values()) == result["flaky_user"].failures
            for group in groups.values():
                assert "Traceback" in group.sample
                assert "raise_deep" in group.sample
                assert "ValueError: parity" in group.sample
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(passed=1)


def test_several_runs_in_one_test(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    pytester.makepyfile(
        """
        def home(http):
            http.get("/")

        def items(http):
            http.get("/items")

        def test_two(swarm):
            first = swarm.run(home, users=2, rate=100, duration="500ms", wait=0.05)
            second = swarm.run(items, users=2, rate=100, duration="500ms", wait=0.05)
            assert "GET /items" not in first and "GET /" not in second
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(passed=1)
    paths = served.stats()["paths"]
    assert run.count("test_two") == paths["/"]
    assert int(run.prop("test_two", "swarm2_requests")) == paths["/items"]


def test_bad_arguments_fail_the_test_and_name_it(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    pytester.makepyfile(
        """
        def home(http):
            http.get("/")

        def test_bad(swarm):
            swarm.run(home, users=0, duration="1s")
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(failed=1)
    run.result.stdout.fnmatch_lines(["*test_bad*users=0*"])
    assert served.stats()["total"] == 0


def test_run_without_samples_is_an_error(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    pytester.makepyfile(
        """
        def idle():
            pass

        def test_idle(swarm):
            swarm.run(idle, users=2, duration="500ms")
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(failed=1)
    run.result.stdout.fnmatch_lines(["*SwarmError*no sample*"])
