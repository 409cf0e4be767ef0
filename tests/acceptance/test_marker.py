"""The marker form: ``@pytest.mark.load(users, rate, duration, wait)``, the body as one
iteration, failures of iterations, and ``swarm_user`` (contract items 1, 2 and 4)."""

from __future__ import annotations

import json

import pytest

from pytest_swarm.demo.server import DemoServer

from .harness import EventLog, RunSwarm


@pytest.mark.parametrize(
    ("duration", "seconds"),
    [('"500ms"', 0.5), ("1", 1.0), ("0.75", 0.75)],
    ids=["500ms", "int", "float"],
)
def test_duration_forms(
    pytester: pytest.Pytester,
    served: DemoServer,
    swarm_pytest: RunSwarm,
    duration: str,
    seconds: float,
) -> None:
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.load(users=2, duration={duration}, wait=0.05)
        def test_home(http):
            http.get("/")
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(passed=1)
    assert run.result.ret == 0
    # The load held at least as long as asked (no upper bound: a slow machine is not a bug).
    assert run.prop("test_home", "swarm_duration_s") >= seconds * 0.95
    assert run.count("test_home") == served.stats()["total"] > 0


def test_default_rate_starts_every_user_within_about_a_second(
    pytester: pytest.Pytester,
    served: DemoServer,
    swarm_pytest: RunSwarm,
    event_log: EventLog,
) -> None:
    pytester.makepyfile(
        """
        import pytest
        from events import log

        @pytest.fixture
        def started(swarm_user):
            log("start", swarm_user.index)

        @pytest.mark.load(users=8, duration="1500ms", wait=0.05)
        def test_home(http, started):
            http.get("/")
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(passed=1)
    assert sorted(int(w[0]) for w in event_log.words("start")) == list(range(8))


def test_rate_spreads_user_starts(
    pytester: pytest.Pytester,
    served: DemoServer,
    swarm_pytest: RunSwarm,
    event_log: EventLog,
) -> None:
    # One user per second for 0.6 s: the second user is due at 1 s, after the end.
    pytester.makepyfile(
        """
        import pytest
        from events import log

        @pytest.fixture
        def started(swarm_user):
            log("start", swarm_user.index)

        @pytest.mark.load(users=4, rate=1, duration="600ms", wait=0.05)
        def test_home(http, started):
            http.get("/")
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(passed=1)
    assert event_log.words("start") == [["0"]]


@pytest.mark.parametrize(
    "wait",
    ["0.2", "(0.1, 0.3)", '("100ms", "300ms")'],
    ids=["number", "range", "string-range"],
)
def test_wait_paces_iterations(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm, wait: str
) -> None:
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.load(users=2, duration=1, wait={wait})
        def test_home(http):
            http.get("/")
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(passed=1)
    requests = run.count("test_home")
    assert requests == served.stats()["total"]
    # Each user waits about 200 ms between iterations, so about 5 iterations each; without the
    # wait an instant endpoint gives hundreds. A count bound, not a time bound.
    assert 2 <= requests <= 30


def test_wait_callable_is_called_between_iterations(
    pytester: pytest.Pytester,
    served: DemoServer,
    swarm_pytest: RunSwarm,
    event_log: EventLog,
) -> None:
    pytester.makepyfile(
        """
        import pytest
        from events import log

        def think():
            log("wait")
            return 0.1

        @pytest.mark.load(users=2, duration=1, wait=think)
        def test_home(http):
            http.get("/")
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(passed=1)
    requests = run.count("test_home")
    # One wait after each iteration: as many calls as iterations (requests here).
    assert event_log.count("wait") == requests == served.stats()["total"]
    assert 2 <= requests <= 60


def test_in_flight_iterations_finish_at_the_end(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    # Every user is inside its second 400 ms request when the 500 ms load ends: the requests
    # finish and are counted, so reported == served.
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.load(users=4, rate=100, duration="500ms")
        def test_slowish(http):
            http.get("/delay?ms=400")
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(passed=1)
    stats = served.stats()
    assert run.count("test_slowish") == stats["total"] == stats["paths"]["/delay"]
    assert stats["total"] >= 4


def test_iteration_past_stop_timeout_is_stopped_and_torn_down(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    # The iteration in flight would take 30 s: it is stopped after stop_timeout, and the user's
    # fixture teardown still runs (one logout per login). No iteration ever completed, so the
    # test cannot pass (row 30): it is an ERROR that says how many were cut off.
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture
        def shopper(http):
            http.post("/login", json={"user": "demo"})
            yield http
            http.post("/logout")

        @pytest.mark.load(users=3, rate=100, duration="500ms", stop_timeout="300ms")
        def test_stuck(shopper):
            shopper.get("/")
            shopper.get("/delay?ms=30000")
        """
    )
    out = pytester.path / "results.json"
    run = swarm_pytest(f"--swarm-json={out}")
    run.result.assert_outcomes(errors=1)
    assert "no iteration of the body completed: 3 were cut off" in run.message(
        "test_stuck", "error"
    )
    stats = served.stats()
    assert stats["logins"] == stats["logouts"] == 3
    assert stats["paths"]["/"] == 3
    # The report says that users were killed (their requests in flight were not measured).
    (document,) = json.loads(out.read_text())["load_tests"]
    killed = [e for e in document["errors"] if e["kind"] == "Killed"]
    assert [(e["name"].split(":")[0], e["count"]) for e in killed] == [("stop", 3)]
    assert "0.3s after the stop" in killed[0]["message"]


def test_failed_assert_fails_the_iteration_and_the_user_goes_on(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.load(users=2, rate=100, duration=1, wait=0.05)
        def test_checkout(http, swarm_user):
            http.get("/")
            assert swarm_user.iteration % 2 == 1, "even iteration"
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(failed=1)
    assert run.result.ret == 1
    requests = served.stats()["total"]
    # Users went on after failing: iteration 0 fails, and each user made more requests after.
    assert requests >= 4
    failures = int(run.prop("test_checkout", "swarm_failures"))
    assert failures >= 2
    # Iteration failures are entries of their own, named after the test.
    assert run.count("test_checkout") == requests + failures
    run.result.stdout.fnmatch_lines(
        [
            "*Errors:*",
            f"*{failures} x  ?test_checkout? AssertionError: even iteration",
            "*MISSED*failures = 0*",
        ]
    )
    run.result.stdout.fnmatch_lines(["test_checkout *", "GET / *"])
    # Row 17: with a sample traceback that points at the failing line of the body.
    run.result.stdout.fnmatch_lines(
        [
            "Sample traceback, AssertionError in test_checkout:",
            "*assert swarm_user.iteration % 2 == 1*",
        ]
    )


def test_exception_groups_by_type_and_message(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.load(users=3, rate=100, duration=1, wait=0.05)
        @pytest.mark.slo("error_rate <= 100%")
        def test_errors(http, swarm_user):
            http.get("/")
            if swarm_user.iteration % 2:
                raise KeyError("basket")
            raise ValueError(f"user {swarm_user.index % 2}")
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(passed=1)
    failures = int(run.prop("test_errors", "swarm_failures"))
    requests = served.stats()["total"]
    # Every iteration failed: one failure entry per request.
    assert failures == requests
    assert run.count("test_errors") == 2 * requests
    lines = [line for line in run.result.outlines if "[test_errors]" in line]
    kinds = sorted(line.split("]", 1)[1].strip() for line in lines)
    # Three groups (not one per iteration): the messages differ by user parity only.
    assert len(set(kinds)) == 3, lines
    assert kinds == sorted({"KeyError: 'basket'", "ValueError: user 0", "ValueError: user 1"})
    grouped = sum(int(line.split("x", 1)[0]) for line in lines)
    assert grouped == failures


def test_few_failures_pass_with_an_error_rate_objective(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    pytester.makepyfile(
        """
        import pytest

        def body(http, swarm_user):
            http.get("/")
            http.get("/items/1")
            if swarm_user.iteration == 0:
                raise RuntimeError("first iteration is cold")

        @pytest.mark.load(users=3, rate=100, duration=1, wait=0.05)
        @pytest.mark.slo("error_rate < 50%")
        def test_tolerant(http, swarm_user):
            body(http, swarm_user)

        @pytest.mark.load(users=3, rate=100, duration=1, wait=0.05)
        def test_strict(http, swarm_user):
            body(http, swarm_user)
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(passed=1, failed=1)
    assert run.prop("test_tolerant", "swarm_failures") == 3
    assert run.prop("test_strict", "swarm_failures") == 3
    run.result.stdout.fnmatch_lines(
        ["test_tolerant: *", "*met*error_rate < 50%*", "test_strict: *", "*MISSED*failures = 0*"]
    )
    assert "MISSED  failures = 0" in run.message("test_strict")


def test_swarm_user_index_is_unique_and_iteration_increments(
    pytester: pytest.Pytester,
    served: DemoServer,
    swarm_pytest: RunSwarm,
    event_log: EventLog,
) -> None:
    pytester.makepyfile(
        """
        import pytest
        from events import log

        @pytest.mark.load(users=6, rate=100, duration=1, wait=0.1)
        def test_ids(http, swarm_user):
            http.get("/")
            log("it", swarm_user.index, swarm_user.iteration, swarm_user.users)
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(passed=1)
    seen: dict[int, list[int]] = {}
    for index, iteration, users in event_log.words("it"):
        assert users == "6"
        seen.setdefault(int(index), []).append(int(iteration))
    assert sorted(seen) == list(range(6))
    for iterations in seen.values():
        assert iterations == list(range(len(iterations)))
        assert len(iterations) >= 2


def test_load_test_in_a_class(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    pytester.makepyfile(
        """
        import pytest

        class TestShop:
            @pytest.mark.load(users=2, duration="500ms", wait=0.05)
            def test_home(self, http):
                assert isinstance(self, TestShop)
                http.get("/")
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(passed=1)
    assert run.count("test_home") == served.stats()["total"] > 0


def test_plain_tests_beside_load_tests_run_once(
    pytester: pytest.Pytester,
    served: DemoServer,
    swarm_pytest: RunSwarm,
    event_log: EventLog,
) -> None:
    pytester.makepyfile(
        """
        import pytest
        from events import log

        def test_unit(http):
            log("unit")
            assert http.get("/").status_code == 200

        @pytest.mark.load(users=2, duration="500ms", wait=0.05)
        def test_load(http):
            http.get("/items")
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(passed=2)
    assert event_log.count("unit") == 1
    assert served.stats()["paths"]["/"] == 1


def test_pytest_fail_and_skip_in_the_body_fail_the_iteration(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    # pytest.fail/pytest.skip raise BaseException subclasses (OutcomeException): they must be
    # recorded like any failed iteration, not kill the user silently and pass the test.
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.load(users=2, rate=100, duration=1, wait=0.05)
        def test_outcomes(http, swarm_user):
            http.get("/")
            if swarm_user.iteration % 3 == 1:
                pytest.fail("custom failure")
            if swarm_user.iteration % 3 == 2:
                pytest.skip("not this time")
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(failed=1)
    requests = served.stats()["total"]
    # The users went on: well past the third iteration each.
    assert requests >= 6
    failures = int(run.prop("test_outcomes", "swarm_failures"))
    assert run.count("test_outcomes") == requests + failures
    run.result.stdout.fnmatch_lines(
        ["*x  ?test_outcomes? Failed: custom failure", "*x  ?test_outcomes? Skipped: *"]
    )


def test_broken_wait_function_fails_the_test(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    pytester.makepyfile(
        """
        import pytest

        def broken_wait():
            return -1

        @pytest.mark.load(users=2, rate=100, duration="500ms", wait=broken_wait)
        def test_badly_paced(http):
            http.get("/")
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(failed=1)
    run.result.stdout.fnmatch_lines(
        ["*x  ?test_badly_paced? SpecError: load(wait=*): wait function returned -1*"]
    )
