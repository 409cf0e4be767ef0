"""Per-user fixtures (contract item 3): every function-scoped fixture in a load test's closure is
built once per virtual user and torn down when that user stops; wider-scoped fixtures are built
once. Counted with the demo target's login/logout counters and with an event log the generated
fixtures append to."""

from __future__ import annotations

import pytest

from pytest_swarm.demo.server import DemoServer

from .harness import EventLog, RunSwarm

USERS = 4


def test_yield_fixture_logs_in_and_out_once_per_user(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.fixture
        def shopper(http, swarm_user):
            http.post("/login", json={{"user": f"user-{{swarm_user.index}}"}})
            yield http
            http.post("/logout")

        @pytest.mark.load(users={USERS}, rate=100, duration=1, wait=0.05)
        def test_cart(shopper):
            assert shopper.get("/cart").status_code == 200
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(passed=1)
    stats = served.stats()
    # Not USERS + 1: pytest's own setup of the item must not build an extra instance.
    assert stats["logins"] == stats["logouts"] == USERS
    # Every user's cart request carried its own session cookie (a shared session would have
    # been logged out... or logged in once): no 401 failures.
    assert run.prop("test_cart", "swarm_failures") == 0
    assert run.count("test_cart") == stats["total"]


def test_autouse_request_finalizer_and_dependencies_per_user(
    pytester: pytest.Pytester,
    served: DemoServer,
    swarm_pytest: RunSwarm,
    event_log: EventLog,
) -> None:
    pytester.makeconftest(
        """
        import itertools
        import pytest
        from events import log

        _ids = itertools.count()

        @pytest.fixture(autouse=True)
        def tracer(swarm_user):
            log("autouse-setup", swarm_user.index)
            yield
            log("autouse-teardown", swarm_user.index)

        @pytest.fixture
        def token():
            value = next(_ids)
            log("token", value)
            return value

        @pytest.fixture
        def account(token, request, swarm_user):
            assert request.fixturename == "account"
            assert request.scope == "function"
            assert request.node.name == "test_account"
            request.addfinalizer(lambda: log("finalizer", swarm_user.index, token))
            log("account", swarm_user.index, token)
            return {"user": swarm_user.index, "token": token}

        @pytest.fixture
        def profile(request, swarm_user):
            # getfixturevalue resolves within this user's own fixtures.
            account = request.getfixturevalue("account")
            log("profile", swarm_user.index, account["token"])
            return account
        """
    )
    pytester.makepyfile(
        f"""
        import pytest
        from events import log

        @pytest.mark.load(users={USERS}, rate=100, duration=1, wait=0.05)
        def test_account(http, account, profile, token, swarm_user):
            assert profile is account
            assert account["token"] == token
            assert account["user"] == swarm_user.index
            if swarm_user.iteration == 0:
                log("body", swarm_user.index, token)
            http.get("/")
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(passed=1)
    assert run.prop("test_account", "swarm_failures") == 0
    log = event_log
    users = [str(i) for i in range(USERS)]
    assert sorted(w[0] for w in log.words("autouse-setup")) == users
    assert sorted(w[0] for w in log.words("autouse-teardown")) == users
    # One token per user, shared by every fixture of that user, distinct across users.
    assert log.count("token") == USERS
    bodies = {w[0]: w[1] for w in log.words("body")}
    accounts = {w[0]: w[1] for w in log.words("account")}
    profiles = {w[0]: w[1] for w in log.words("profile")}
    finalizers = {w[0]: w[1] for w in log.words("finalizer")}
    assert sorted(bodies) == users
    assert bodies == accounts == profiles == finalizers
    assert len(set(bodies.values())) == USERS
    # Teardown order is the reverse of setup for each user: the finalizer of `account` (set up
    # after the autouse fixture) runs before the autouse teardown.
    lines = log.lines()
    for user in users:
        fin = lines.index(f"finalizer {user} {bodies[user]}")
        assert fin < lines.index(f"autouse-teardown {user}")


def test_overriding_fixture_that_requests_the_overridden_one(
    pytester: pytest.Pytester,
    served: DemoServer,
    swarm_pytest: RunSwarm,
    event_log: EventLog,
) -> None:
    pytester.makeconftest(
        """
        import pytest
        from events import log

        @pytest.fixture
        def client(http, swarm_user):
            log("base", swarm_user.index)
            http.post("/login", json={"user": "base"})
            yield http
            http.post("/logout")
            log("base-teardown", swarm_user.index)
        """
    )
    pytester.makepyfile(
        f"""
        import pytest
        from events import log

        @pytest.fixture
        def client(client, swarm_user):
            log("override", swarm_user.index)
            client.headers["X-Layer"] = "override"
            yield client
            log("override-teardown", swarm_user.index)

        @pytest.mark.load(users={USERS}, rate=100, duration=1, wait=0.05)
        def test_layers(client):
            assert client.headers["X-Layer"] == "override"
            client.get("/cart")
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(passed=1)
    assert run.prop("test_layers", "swarm_failures") == 0
    stats = served.stats()
    assert stats["logins"] == stats["logouts"] == USERS
    counts = event_log.counter()
    assert counts["base"] == counts["override"] == USERS
    assert counts["base-teardown"] == counts["override-teardown"] == USERS


def test_parametrized_fixture_gives_each_user_request_param(
    pytester: pytest.Pytester,
    served: DemoServer,
    swarm_pytest: RunSwarm,
    event_log: EventLog,
) -> None:
    pytester.makepyfile(
        """
        import pytest
        from events import log

        @pytest.fixture(params=[3, 7], ids=["three", "seven"])
        def item_id(request, swarm_user):
            log("param", request.param, swarm_user.index)
            return request.param

        @pytest.mark.load(users=2, rate=100, duration="500ms", wait=0.05)
        def test_item(http, item_id):
            http.get(f"/items/{item_id}")
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(passed=2)
    assert sorted(event_log.words("param")) == [["3", "0"], ["3", "1"], ["7", "0"], ["7", "1"]]
    paths = served.stats()["paths"]
    assert run.count("test_item[three]") == paths["/items/3"] > 0
    assert run.count("test_item[seven]") == paths["/items/7"] > 0


def test_parametrize_mark_on_the_load_test(
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
        def seen(swarm_user, code):
            # A fixture may depend on a directly parametrized argument.
            log("fixture", code, swarm_user.index)
            return code

        @pytest.mark.parametrize("code", [201, 204])
        @pytest.mark.load(users=2, rate=100, duration="500ms", wait=0.05)
        def test_status(http, code, seen):
            assert seen == code
            http.get(f"/status/{code}")
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(passed=2)
    assert sorted(event_log.words("fixture")) == [
        ["201", "0"],
        ["201", "1"],
        ["204", "0"],
        ["204", "1"],
    ]
    paths = served.stats()["paths"]
    assert run.count("test_status[201]") == paths["/status/201"] > 0
    assert run.count("test_status[204]") == paths["/status/204"] > 0


def test_session_and_module_fixtures_are_built_once(
    pytester: pytest.Pytester,
    served: DemoServer,
    swarm_pytest: RunSwarm,
    event_log: EventLog,
) -> None:
    pytester.makeconftest(
        """
        import pytest
        import requests
        from events import log

        @pytest.fixture(scope="session")
        def admin(swarm_host_url):
            log("session-setup")
            # A plain requests call: counted by the server, not by pytest-swarm.
            requests.post(swarm_host_url + "/login", json={"user": "admin"}, timeout=10)
            yield "admin"
            log("session-teardown")

        @pytest.fixture(scope="session")
        def swarm_host_url(pytestconfig):
            return pytestconfig.getoption("swarm_host")

        @pytest.fixture(scope="module")
        def catalogue(admin):
            log("module-setup")
            yield [1, 2, 3]
            log("module-teardown")
        """
    )
    pytester.makepyfile(
        f"""
        import pytest
        from events import log

        @pytest.fixture
        def basket(catalogue, swarm_user):
            log("basket", swarm_user.index)
            return list(catalogue)

        @pytest.mark.load(users={USERS}, rate=100, duration="500ms", wait=0.05)
        def test_first(http, admin, basket):
            assert admin == "admin" and basket == [1, 2, 3]
            http.get("/")

        @pytest.mark.load(users={USERS}, rate=100, duration="500ms", wait=0.05)
        def test_second(http, admin, catalogue):
            http.get("/")
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(passed=2)
    counts = event_log.counter()
    assert counts["session-setup"] == counts["session-teardown"] == 1
    assert counts["module-setup"] == counts["module-teardown"] == 1
    assert counts["basket"] == USERS
    stats = served.stats()
    assert stats["logins"] == 1
    assert run.count("test_first") + run.count("test_second") == stats["total"] - 1


def test_usefixtures_mark_is_per_user(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.fixture
        def logged_in(http):
            http.post("/login", json={{"user": "u"}})
            yield
            http.post("/logout")

        @pytest.mark.usefixtures("logged_in")
        @pytest.mark.load(users={USERS}, rate=100, duration="500ms", wait=0.05)
        def test_cart(http):
            http.get("/cart")
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(passed=1)
    stats = served.stats()
    assert stats["logins"] == stats["logouts"] == USERS
    # The session cookie the fixture got is the body's: the cart is authorised.
    assert run.prop("test_cart", "swarm_failures") == 0


def test_teardown_runs_for_every_user_even_when_iterations_fail(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.fixture
        def shopper(http):
            http.post("/login", json={{"user": "u"}})
            yield http
            http.post("/logout")

        @pytest.mark.load(users={USERS}, rate=100, duration="500ms", wait=0.05)
        @pytest.mark.slo("error_rate <= 100%")
        def test_broken(shopper):
            shopper.get("/")
            raise RuntimeError("boom")
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(passed=1)
    stats = served.stats()
    assert stats["logins"] == stats["logouts"] == USERS


def test_teardown_error_is_reported(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture
        def fragile(http):
            yield http
            raise RuntimeError("teardown broke")

        @pytest.mark.load(users=2, rate=100, duration="500ms", wait=0.05)
        def test_fragile(fragile):
            fragile.get("/")
        """
    )
    run = swarm_pytest()
    # A fixture teardown that fails must not pass unnoticed (pytest makes it an error).
    run.result.assert_outcomes(failed=1)
    assert "2 user fixture teardowns failed" in run.message("test_fragile")
    run.result.stdout.fnmatch_lines(["*2 x  ?teardown: test_fragile? RuntimeError: teardown broke"])


def test_pytest_fail_in_a_fixture_is_a_setup_failure_and_teardown_goes_on(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.fixture
        def shopper(http):
            http.post("/login", json={{"user": "u"}})
            yield http
            http.post("/logout")
            pytest.fail("teardown complained")

        @pytest.fixture
        def profile(shopper, swarm_user):
            if swarm_user.index == 0:
                pytest.fail("no profile for user 0")
            return shopper

        @pytest.fixture
        def cart(http):
            yield http
            http.get("/status/204", name="cart teardown")

        @pytest.mark.load(users={USERS}, rate=100, duration="60s", iterations=2, wait=0.05)
        def test_profiles(cart, profile):
            profile.get("/")
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(failed=1)
    assert f"1 of {USERS} users failed to set up" in run.message("test_profiles")
    stats = served.stats()
    # Every login got its logout, and a failing teardown did not skip the other finalizers.
    assert stats["logins"] == stats["logouts"] == USERS
    assert stats["paths"]["/status/204"] == USERS
    run.result.stdout.fnmatch_lines(["*1 x  ?setup: test_profiles? Failed: no profile for user 0"])
    # (User 0's teardown error is not counted: engine/load.py drops the teardown errors of a
    # user whose setup failed.)
    run.result.stdout.fnmatch_lines(["*x  ?teardown: test_profiles? Failed: teardown complained"])


def test_shared_fixture_asked_for_by_name_from_per_user_fixtures_is_built_once(
    pytester: pytest.Pytester,
    served: DemoServer,
    swarm_pytest: RunSwarm,
    event_log: EventLog,
) -> None:
    # request.getfixturevalue("shared") is not in the static closure, so no user finds it built
    # before the load starts; its setup yields (as any I/O does), and the next user must wait
    # for it instead of building it again (pytest 8.4: built 4 times; 9.2: 3 users fail).
    pytester.makepyfile(
        """
        import gevent
        import pytest
        from events import log

        @pytest.fixture(scope="session")
        def shared():
            log("shared-setup")
            gevent.sleep(0.05)
            yield "token"
            log("shared-teardown")

        @pytest.fixture
        def per_user(request, swarm_user):
            value = request.getfixturevalue("shared")
            log("user", swarm_user.index, value)
            return value

        @pytest.mark.load(users=4, rate=1000, duration="30s", iterations=2)
        def test_dynamic(http, per_user):
            assert per_user == "token"
            http.get("/")
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(passed=1)
    counts = event_log.counter()
    assert counts["shared-setup"] == counts["shared-teardown"] == 1
    assert sorted(int(w[0]) for w in event_log.words("user")) == [0, 1, 2, 3]
    assert run.count("test_dynamic") == served.stats()["total"] == 8


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one-process", "xdist"])
def test_some_users_failing_setup_are_reported_apart_from_the_objectives(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm, workers: list[str]
) -> None:
    # Row 18: users 1 and 2 (one per worker under -n 2) cannot set up. The objectives are met;
    # the test fails for the setup errors, says how many, and names no objective miss.
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture
        def account(http, swarm_user):
            if swarm_user.index in (1, 2):
                raise LookupError(f"no account for user {swarm_user.index}")
            return http

        @pytest.mark.load(users=4, rate=100, duration="30s", iterations=2)
        @pytest.mark.slo("error_rate < 50%", "p99 < 1h")
        def test_accounts(account):
            account.get("/")
        """
    )
    run = swarm_pytest(*workers)
    run.result.assert_outcomes(failed=1)
    message = run.message("test_accounts")
    assert "2 of 4 users failed to set up their fixtures" in message
    assert "objectives missed" not in message
    assert run.prop("test_accounts", "swarm_setup_failures") == 2
    assert run.count("test_accounts") == served.stats()["total"] == 4  # 2 users x 2 iterations
    run.result.stdout.fnmatch_lines(
        [
            "*x  ?setup: test_accounts? LookupError: no account for user *",
            "Users: 2 of 4 started; 2 failed to set up their fixtures*",
        ]
    )
