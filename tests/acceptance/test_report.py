"""What the user sees (contract items 10 and 11): the live line, the per-request table and the
objectives in the terminal, the one-line headline with ``-q``, the JUnit properties, and errors
(no samples, fixtures failing to set up) that are never a pass."""

from __future__ import annotations

import pytest

from pytest_swarm.demo.server import DemoServer

from .harness import JUNIT_PROPERTIES, RunSwarm


@pytest.mark.slow
def test_live_line_then_table_then_objectives(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.load(users=3, rate=100, duration="3s", wait=0.05)
        @pytest.mark.slo("p95 < 60s", "error_rate < 1%")
        @pytest.mark.slo("p50 < 1ms", request="GET /delay")
        def test_live(http):
            http.get("/")
            http.get("/delay?ms=20")
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(failed=1)
    run.result.stdout.fnmatch_lines(
        [
            "[[]swarm[]] test_live  *s/3s  3 users  * req/s  p95 *  0 failures",
            "test_live: 3 users, *s, * requests, 0 failures, * req/s, p95 *",
            "Name * Requests * Fails * Req/s * p50 * p90 * p95 * p99 * Max",
            "GET / *",
            "GET /delay *",
            "Total *",
            "Generator: CPU max *%, event-loop lag max *",
            "Objectives:",
            "  MISSED  ?GET /delay? p50 < 1ms *measured *",
            "  met     p95 < 60s *measured *",
            "  met     error_rate < 1% *measured 0%",
        ]
    )


@pytest.mark.slow
def test_quiet_shows_only_the_headline(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.load(users=2, rate=100, duration="2500ms", wait=0.05)
        def test_quiet(http):
            http.get("/")
        """
    )
    run = swarm_pytest("-q")
    run.result.assert_outcomes(passed=1)
    # "*" in front: the headline currently follows the progress dot on the same line.
    run.result.stdout.fnmatch_lines(["*test_quiet: 2 users, *s, * requests, 0 failures, *"])
    output = run.output
    assert "[swarm]" not in output
    assert "Requests" not in output
    assert "Objectives:" not in output
    headlines = [line for line in run.result.outlines if "test_quiet: 2 users" in line]
    assert len(headlines) == 1


def test_junit_properties(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.load(users=3, rate=100, duration=1, wait=0.02)
        def test_props(http):
            http.get("/delay?ms=10")
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(passed=1)
    props = run.properties("test_props")
    missing = [name for name in JUNIT_PROPERTIES if name not in props]
    assert not missing
    values = {name: float(props[name]) for name in JUNIT_PROPERTIES}
    assert values["swarm_users"] == 3
    assert values["swarm_duration_s"] >= 0.95
    assert values["swarm_requests"] == served.stats()["total"] > 0
    assert values["swarm_failures"] == 0
    assert values["swarm_rps"] == pytest.approx(
        values["swarm_requests"] / values["swarm_duration_s"], rel=0.01
    )
    # The server sleeps 10 ms: every latency is at least that.
    assert 10 <= values["swarm_p50_ms"] <= values["swarm_p95_ms"]
    assert values["swarm_p95_ms"] <= values["swarm_p99_ms"] <= values["swarm_max_ms"]
    testcase = run.testcase("test_props")
    assert testcase.find("failure") is None and testcase.find("error") is None


def test_no_samples_is_an_error_not_a_pass(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.load(users=2, rate=100, duration="500ms", wait=0.05)
        def test_idle(swarm_user):
            pass
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(errors=1)
    assert run.result.ret == 1
    assert "no sample" in run.message("test_idle", "error")
    assert run.testcase("test_idle").find("failure") is None
    assert run.prop("test_idle", "swarm_requests") == 0


def test_every_user_failing_setup_is_an_error(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture
        def database(http):
            http.get("/status/200", name="connect")
            raise RuntimeError("database is down")

        @pytest.mark.load(users=3, rate=100, duration="500ms", wait=0.05)
        def test_db(database, http):
            http.get("/")
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(errors=1)
    assert run.result.ret == 1
    message = run.message("test_db", "error")
    assert "none of the 3 users could set up" in message
    assert "database is down" in message
    paths = served.stats()["paths"]
    assert "/" not in paths
    assert paths["/status/200"] == 3  # each user tried once; nobody retried setup
    run.result.stdout.fnmatch_lines(["*3 x  ?setup: test_db? RuntimeError: database is down"])


def test_setup_error_message_names_the_setup_failure(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture
        def database(http):
            http.get("/status/503", name="connect")
            raise RuntimeError("database is down")

        @pytest.mark.load(users=3, rate=100, duration="500ms", wait=0.05)
        def test_db(database, http):
            http.get("/")
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(errors=1)
    assert "database is down" in run.message("test_db", "error")


def test_some_users_failing_setup_is_a_failure(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture
        def account(http, swarm_user):
            if swarm_user.index == 1:
                raise RuntimeError("no account for user 1")
            http.post("/login", json={"user": "u"})
            yield http
            http.post("/logout")

        @pytest.mark.load(users=3, rate=100, duration="500ms", wait=0.05)
        def test_accounts(account):
            account.get("/")
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(failed=1)
    assert run.result.ret == 1
    message = run.message("test_accounts")
    assert "1 of 3 users failed to set up their fixtures" in message
    assert run.prop("test_accounts", "swarm_setup_failures") == 1
    stats = served.stats()
    assert stats["logins"] == stats["logouts"] == 2
    run.result.stdout.fnmatch_lines(
        [
            "*x  ?setup: test_accounts? RuntimeError: no account for user 1",
            "Users: 2 of 3 started; 1 failed to set up their fixtures*",
        ]
    )


def test_unresolvable_target_is_an_error(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.load(users=2, duration="500ms")
        def test_nowhere(http):
            http.get("/")
        """
    )
    run = swarm_pytest("--swarm-host=http://no-such-host.invalid:8080", host=False)
    run.result.assert_outcomes(errors=1)
    assert "does not resolve" in run.message("test_nowhere", "error")


def test_latency_above_the_histogram_range_is_reported_as_overflow(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    # Row 21: a 2 h sample (beyond the histogram's 1 h) is counted and reported, not dropped.
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.load(users=1, rate=100, duration="300ms", iterations=1)
        @pytest.mark.slo("error_rate < 100%")
        def test_huge(http, swarm_user):
            http.get("/")
            swarm_user.recorder.record("huge", 7200.0)
        """
    )
    run = swarm_pytest()
    assert run.prop("test_huge", "swarm_overflow") == 1
    assert run.count("test_huge") == 2
    assert "1 samples above the histogram range (1 h) counted as overflow" in run.output


def test_a_cpu_bound_body_is_flagged_as_saturating_the_generator(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    # Row 2: each iteration holds the event loop for 0.3 s, so the loop lags far beyond
    # 50 ms in every interval whatever else the machine does (a health forced to 0 fails).
    pytester.makepyfile(
        """
        import time
        import pytest

        @pytest.mark.load(users=2, rate=100, duration="2s", wait=0)
        def test_busy(http):
            http.get("/")
            end = time.perf_counter() + 0.3
            while time.perf_counter() < end:
                pass
        """
    )
    run = swarm_pytest()
    assert run.properties("test_busy")["swarm_generator_saturated"] == "True"
    assert run.prop("test_busy", "swarm_generator_lag_max_ms") >= 200
    assert "WARNING: the load generator was saturated" in run.output


def test_a_trivial_run_does_not_cry_wolf(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    # 5 users at ~70 req/s: the short final interval (the stop, the teardowns) once read
    # "CPU max 100%"; it is now measured with the interval before it.
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.load(users=5, rate=100, duration="2s", wait=0.07)
        def test_light(http):
            http.get("/")
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(passed=1)
    assert run.properties("test_light")["swarm_generator_saturated"] == "False"
    assert run.prop("test_light", "swarm_generator_cpu_max") < 90
    assert "WARNING: the load generator was saturated" not in run.output
