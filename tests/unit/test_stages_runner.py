"""The runner following ramp stages: users start and stop with the profile, a ramp-down stops
the most recently started users first and tears their fixtures down then, not at the end."""

from __future__ import annotations

import gevent

from pytest_swarm.engine.runner import Runner, Tick, UserInfo
from pytest_swarm.spec import SpecOverrides, build_spec
from pytest_swarm.stats.recorder import Recorder

GUARD = 30.0  # seconds: a hung runner fails the test instead of the suite


class Users:
    """Logs ("setup" | "teardown" | "final", index) in the order things happen."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int]] = []

    def __call__(self, info: UserInfo) -> Users.User:
        self.events.append(("setup", info.index))
        return Users.User(self, info.index)

    class User:
        def __init__(self, log: Users, index: int) -> None:
            self.log, self.index = log, index

        def iterate(self) -> None:
            gevent.sleep(0)

        def teardown(self) -> list[BaseException]:
            self.log.events.append(("teardown", self.index))
            return []


def run(stages: list[tuple[str, float]], indices: list[int], log: Users) -> Runner:
    spec = build_spec(stages=stages, wait=(5, 10), overrides=SpecOverrides(stop_timeout=1.0))

    def publish(tick: Tick) -> None:
        if tick.final:
            log.events.append(("final", -1))

    runner = Runner(
        spec=spec,
        indices=indices,
        rate=spec.rate,
        factory=log,
        recorder=Recorder(),
        publish=publish,
        name="test_stages",
        interval=0.2,
    )
    with gevent.Timeout(GUARD):
        runner.run()
    return runner


def test_ramp_up_hold_and_down_most_recent_first_with_teardown_at_the_ramp_down() -> None:
    log = Users()
    run([("0.4s", 4), ("0.4s", 4), ("0.8s", 0)], list(range(4)), log)
    setups = [i for e, i in log.events if e == "setup"]
    teardowns = [i for e, i in log.events if e == "teardown"]
    assert setups == [0, 1, 2, 3]
    # The ramp-down stopped every user before the run's end: all torn down before the final
    # tick, the most recently started first.
    assert teardowns == [3, 2, 1, 0]
    assert log.events[-1] == ("final", -1)


def test_a_ramp_up_after_a_ramp_down_starts_users_again_with_new_fixtures() -> None:
    log = Users()
    run([("0.2s", 2), ("0.2s", 2), ("0.3s", 0), ("0.2s", 2), ("0.2s", 2)], list(range(2)), log)
    setups = [i for e, i in log.events if e == "setup"]
    assert setups == [0, 1, 0, 1]
    # Every user ever set up is torn down: at the ramp-down, then at the end.
    assert sorted(i for e, i in log.events if e == "teardown") == [0, 0, 1, 1]


def test_a_worker_runs_only_its_own_share_of_the_swarm() -> None:
    # Worker 1 of 2 owns the odd user indices; the swarm peaks at 5 users: 1 and 3 here.
    log = Users()
    run([("0.3s", 5), ("0.2s", 5)], [1, 3, 5], log)
    assert [i for e, i in log.events if e == "setup"] == [1, 3]


def test_stages_with_users_rate_or_duration_are_refused_naming_them() -> None:
    import pytest

    from pytest_swarm.spec import SpecError

    with pytest.raises(SpecError, match=r"stages and users, rate together"):
        build_spec(stages=[("1s", 5)], users=5, rate=1, overrides=SpecOverrides())


def test_overrides_rescale_the_stages() -> None:
    stages = [("30s", 100), ("2m", 100), ("30s", 0)]
    plain = build_spec(stages=stages, overrides=SpecOverrides())
    assert (plain.users, plain.duration) == (100, 180.0)
    assert plain.describe() == "up to 100 users in 3 stages for 3m"
    peak = build_spec(stages=stages, overrides=SpecOverrides(users=500))
    assert peak.users == 500 and peak.profile is not None and peak.profile.at(15) == 250
    scaled = build_spec(stages=stages, overrides=SpecOverrides(scale=0.1))
    assert scaled.users == 10
    stretched = build_spec(stages=stages, overrides=SpecOverrides(duration=18.0))
    assert stretched.duration == 18.0 and stretched.profile is not None
    assert stretched.profile.at(1.5) == 50


def run_shape(shape: object, indices: list[int], log: Users) -> Runner:
    spec = build_spec(
        shape=shape,
        max_users=6,
        duration=20,
        wait=(5, 10),
        overrides=SpecOverrides(stop_timeout=1.0),
    )

    def publish(tick: Tick) -> None:
        if tick.final:
            log.events.append(("final", -1))

    runner = Runner(
        spec=spec,
        indices=indices,
        rate=spec.rate,
        factory=log,
        recorder=Recorder(),
        publish=publish,
        name="test_shape",
        interval=0.2,
    )
    with gevent.Timeout(GUARD):
        runner.run()
    return runner


def test_a_shape_ramps_up_and_down_most_recent_first_and_none_ends_the_load() -> None:
    log = Users()

    def shape(elapsed: float) -> int | None:
        return 4 if elapsed < 0.3 else 1 if elapsed < 0.6 else None

    runner = run_shape(shape, list(range(6)), log)
    assert [i for e, i in log.events if e == "setup"] == [0, 1, 2, 3]
    # The ramp-down to 1 user stopped 3, 2, 1 (most recent first) before the end: then 0.
    assert [i for e, i in log.events if e == "teardown"] == [3, 2, 1, 0]
    # None ended the load well before its 20 s bound, as planned: no stop reason.
    assert runner.summary.stop_reason == "" and runner.summary.elapsed < 20


def test_a_shapes_bad_answer_stops_the_run_naming_the_test_and_shape() -> None:
    log = Users()

    def my_shape(elapsed: float) -> object:
        return 2 if elapsed < 0.3 else "lots"

    runner = run_shape(my_shape, list(range(6)), log)
    assert runner.summary.stop_reason == (
        "test_shape: load(shape=my_shape): shape returned 'lots': it must return users "
        "(a number >= 0), (users, rate) or None"
    )
    assert sorted(i for e, i in log.events if e == "teardown") == [0, 1]


def test_under_xdist_a_worker_runs_its_share_of_the_shapes_users() -> None:
    log = Users()
    run_shape(lambda t: 5 if t < 0.4 else None, [1, 3, 5], log)  # worker 1 of 2
    assert [i for e, i in log.events if e == "setup"] == [1, 3]
