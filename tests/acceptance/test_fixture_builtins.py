"""pytest's built-in fixtures as per-user fixtures of a load test (issue 8, section 5): each
works per user, or the test is refused at collection with a message that says why.

- ``monkeypatch``: each user has its own; what users patch is process-wide state, so every
  change is undone, in reverse order, once the test ends: never one user's undo under another
  user's feet, and nothing leaks past the test.
- ``tmp_path`` / ``tmpdir``: a directory per user; no teardown error.
- ``capsys`` / ``capfd`` (and the binary twins): refused (capture is process-wide).
- a test class: each user has its own instance (``self``).
- ``async def`` fixtures: refused, naming the test and the fixture.
"""

from __future__ import annotations

import pytest

from pytest_swarm.demo.server import DemoServer

from .harness import EventLog, RunSwarm


def test_monkeypatch_per_user_undone_in_order_after_the_load(
    pytester: pytest.Pytester,
    served: DemoServer,
    swarm_pytest: RunSwarm,
    event_log: EventLog,
) -> None:
    # Users tear down in any order: with pytest's one-undo-per-instance, the first user to
    # tear down restores the original under the others, and the last restores another user's
    # value, which then leaks into the next test.
    pytester.makepyfile(
        settings="VALUE = 'original'\n",
        test_mp="""
        import os

        import pytest
        import settings
        from events import log

        @pytest.fixture
        def patched(monkeypatch, swarm_user):
            monkeypatch.setattr(settings, "VALUE", f"user-{swarm_user.index}")
            monkeypatch.setenv("SWARM_MP_TEST", str(swarm_user.index))
            log("mp", id(monkeypatch))
            return monkeypatch

        @pytest.mark.load(users=4, rate=1000, duration="30s", iterations=2)
        def test_patching(http, patched):
            assert settings.VALUE.startswith("user-")
            http.get("/")

        def test_after():
            assert settings.VALUE == "original"
            assert "SWARM_MP_TEST" not in os.environ
        """,
    )
    run = swarm_pytest()
    run.result.assert_outcomes(passed=2)
    instances = [w[0] for w in event_log.words("mp")]
    assert len(instances) == 4 and len(set(instances)) == 4  # one MonkeyPatch per user


def test_tmp_path_per_user_without_teardown_error(
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
        def scratch(tmp_path, tmpdir, swarm_user):
            (tmp_path / "mine").write_text(str(swarm_user.index))
            log("tmp", tmp_path, tmpdir)
            return tmp_path

        @pytest.mark.load(users=3, rate=1000, duration="30s", iterations=2)
        def test_files(http, scratch, swarm_user):
            assert (scratch / "mine").read_text() == str(swarm_user.index)
            http.get("/")
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(passed=1)
    assert "KeyError" not in run.output
    dirs = event_log.words("tmp")
    assert len(dirs) == 3 and len({d[0] for d in dirs}) == 3
    assert all(d[0] == d[1] for d in dirs)  # tmpdir is the same directory as tmp_path


@pytest.mark.parametrize("builtin", ["capsys", "capfd", "capsysbinary", "capfdbinary"])
def test_capture_fixtures_are_refused_at_collection(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm, builtin: str
) -> None:
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.fixture
        def quiet({builtin}):
            return {builtin}

        @pytest.mark.load(users=3, rate=1000, duration="30s", iterations=1)
        def test_captured(http, quiet):
            http.get("/")
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(errors=1)
    run.result.stdout.fnmatch_lines(
        [f"*test_captured*{builtin}*cannot be a per-user fixture*process-wide*"]
    )
    assert served.stats()["total"] == 0


def test_each_user_has_its_own_instance_of_the_test_class(
    pytester: pytest.Pytester,
    served: DemoServer,
    swarm_pytest: RunSwarm,
    event_log: EventLog,
) -> None:
    pytester.makepyfile(
        """
        import pytest
        from events import log

        class TestShop:
            @pytest.fixture
            def cart(self, swarm_user):
                self.owner = swarm_user.index
                self.items = []
                return self.items

            @pytest.mark.load(users=4, rate=1000, duration="30s", iterations=3)
            def test_buy(self, http, cart, swarm_user):
                assert self.owner == swarm_user.index, (self.owner, swarm_user.index)
                cart.append(1)
                assert len(self.items) == swarm_user.iteration + 1
                log("self", id(self), swarm_user.index)
                http.get("/")
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(passed=1)
    seen = {(w[0], w[1]) for w in event_log.words("self")}
    assert len(seen) == 4 and len({s[0] for s in seen}) == 4


def test_async_fixture_is_refused_at_collection(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture
        async def session_token():
            return "token"

        @pytest.fixture
        def client(session_token):
            return session_token

        @pytest.mark.load(users=3, rate=1000, duration="30s", iterations=1)
        def test_async_dep(http, client):
            http.get("/")
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(errors=1)
    run.result.stdout.fnmatch_lines(
        ["*test_async_dep*fixture 'session_token' is an async def fixture*greenlets*"]
    )
    assert served.stats()["total"] == 0


def test_swarm_run_refuses_a_capture_fixture_when_called(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm
) -> None:
    pytester.makepyfile(
        """
        def browse(http, capsys):
            http.get("/")

        def test_fixture_form(swarm):
            swarm.run(browse, users=2, duration="30s", iterations=1)
        """
    )
    run = swarm_pytest()
    run.result.assert_outcomes(failed=1)
    run.result.stdout.fnmatch_lines(["*fixture 'capsys' cannot be a per-user fixture*"])
    assert served.stats()["total"] == 0
