"""The runner gives the C heap's free pages back once its users have all started and gone
idle (engine/heap.py): once per plateau, not on every tick, and not while users are busy."""

from __future__ import annotations

import gevent

from pytest_swarm.engine.heap import trim_heap
from pytest_swarm.engine.runner import Runner, Tick, UserInfo
from pytest_swarm.spec import LoadSpec, parse_wait
from pytest_swarm.stats.recorder import Recorder


class _User:
    def __init__(self, busy: bool) -> None:
        self.busy = busy

    def iterate(self) -> None:
        if self.busy:  # in its iteration for the whole run (stopped by the stop_timeout)
            gevent.sleep(60)

    def teardown(self) -> list[BaseException]:
        return []


def _run(users: int, busy: bool, rate: float = 1000.0) -> list[int]:
    """Users waiting 5-10 s (or stuck in their first iteration) over about ten ticks;
    returns the number of users started at each trim of the heap."""
    spec = LoadSpec(
        users=users, rate=rate, duration=0.5, wait=parse_wait((5, 10)), stop_timeout=0.05
    )
    ticks: list[Tick] = []

    def factory(info: UserInfo) -> _User:
        return _User(busy)

    runner = Runner(
        spec=spec,
        indices=list(range(users)),
        rate=spec.rate,
        factory=factory,
        recorder=Recorder(),
        publish=ticks.append,
        name="test_load",
        interval=0.05,
    )
    trims: list[int] = []
    runner.release_memory = lambda: trims.append(runner.summary.started)  # type: ignore[method-assign]
    with gevent.Timeout(10.0):
        runner.run()
    assert len(ticks) >= 3  # the regular ticks the trims are judged on, and the final one
    return trims


def test_an_idle_crowd_is_trimmed_once_it_stopped_growing() -> None:
    assert _run(users=5, busy=False) == [5]


def test_a_crowd_still_starting_is_not_trimmed_until_it_stops_growing() -> None:
    # 10 users at 50/s: one every 20 ms, over the first four 50 ms ticks.
    assert _run(users=10, busy=False, rate=50.0) == [10]


def test_a_busy_crowd_is_not_trimmed() -> None:
    assert _run(users=5, busy=True) == []


def test_trim_heap_runs_where_it_can() -> None:
    assert trim_heap() in (True, False)
    assert trim_heap() == trim_heap()  # looked up once


def test_the_trim_lets_the_parser_pool_go() -> None:
    """Broken build caught: a pool that keeps, for as long as the users live, as many parsers
    as were in flight at the start's peak (~0.9 KiB each, up to 4,096)."""
    from pytest_swarm.clients.fast import PARSERS

    lent = [PARSERS.lend(100, False) for _ in range(50)]
    for parse in lent:
        PARSERS.give_back(parse)
    assert len(PARSERS.free) >= 50
    trim_heap()
    assert PARSERS.free == []
    assert PARSERS.lend(100, False).max_body == 100  # and lends on afterwards
