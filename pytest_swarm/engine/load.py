"""One load test in this process: fixtures per user, the runner, the link, the result.

Both user-facing forms end up here: the marker form (the test function is the body) and the
fixture form (``swarm.run(fn)``, possibly a weighted mix of functions).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from ..spec import LoadSpec
from ..stats.recorder import Recorder
from ..stats.result import RunResult
from ..timing import recording
from .link import Link, LocalLink
from .patching import ensure_patched
from .resolver import FixturePlan, UserFixtures
from .runner import TEARDOWN_TIMEOUT, RunInterrupted, Runner, RunSummary, UserInfo

Body = Callable[..., Any]


@dataclass(frozen=True)
class Task:
    """A user function and the fixture names it takes."""

    func: Body
    argnames: tuple[str, ...]
    weight: int = 1


class PytestUser:
    """One virtual user: its own fixture instances and the body (or weighted bodies).

    ``iterate`` (run the body once) is a ``functools.partial`` of the body and its
    arguments, not a method: the runner calls the body with no frame of this class in
    between, one frame less on the deepest path of every request (see engine/crowd.py: the
    pages of a greenlet's frame stack that were touched stay resident while it lives).
    """

    __slots__ = ("fixtures", "iterate", "tasks")

    def __init__(self, plan: FixturePlan, info: UserInfo, tasks: list[Task]) -> None:
        self.fixtures: UserFixtures = plan.new_user(extra={"swarm_user": info})
        self.tasks = tasks
        try:
            values = self.fixtures.resolve_args()
        except BaseException:
            # Fixtures that did set up are torn down; the runner records the setup error.
            self.fixtures.teardown()
            raise
        bind = self.fixtures.bind  # a test class's method: bound to this user's own instance
        calls = [partial(bind(t.func), **{a: values[a] for a in t.argnames}) for t in tasks]
        self.iterate: Callable[[], Any] = (
            calls[0] if len(calls) == 1 else partial(_weighted, calls, [t.weight for t in tasks])
        )

    def teardown(self) -> list[BaseException]:
        return self.fixtures.teardown()


def _weighted(calls: Sequence[Callable[[], Any]], weights: list[int]) -> None:
    """One of ``calls``, chosen at random by ``weights``."""
    random.choices(calls, weights=weights)[0]()


def tasks_from(
    spec: Body | Mapping[Body, int], argnames: Callable[[Body], list[str]]
) -> list[Task]:
    """``fn`` or ``{fn: weight, ...}`` -> tasks."""
    if callable(spec):
        return [Task(spec, tuple(argnames(spec)))]
    tasks = []
    for func, weight in spec.items():
        if not callable(func) or type(weight) is not int or weight < 1:
            raise TypeError(
                "a weighted mix maps user functions to integer weights >= 1, "
                f"got {func!r}: {weight!r}"
            )
        tasks.append(Task(func, tuple(argnames(func)), weight))
    if not tasks:
        raise TypeError("a weighted mix needs at least one user function")
    return tasks


@dataclass
class LoadOutcome:
    result: RunResult
    summary: RunSummary
    spec: LoadSpec


class LoadInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during a load test, carrying what was measured until then (pytest
    still sees a KeyboardInterrupt: the session ends as interrupted, exit code 2)."""

    def __init__(self, outcome: LoadOutcome) -> None:
        super().__init__(f"load test interrupted ({outcome.result.interrupted})")
        self.outcome = outcome


def run_load(
    *,
    name: str,
    spec: LoadSpec,
    plan: FixturePlan,
    tasks: list[Task],
    link: Link,
    interval: float,
    preflight: Callable[[], None] | None = None,
) -> LoadOutcome:
    """Run one load test's share in this process and return the swarm's merged result.

    Infrastructure problems (no samples, no user could start, statistics lost) are listed in
    ``result.problems``; the caller turns them into an error.
    """
    try:
        ensure_patched(name)
        plan.prepare_shared()
        if preflight is not None:
            preflight()
    except BaseException as exc:
        # Tell the other workers not to wait for this one at the start barrier.
        link.abort(f"{type(exc).__name__}: {exc}")
        raise
    share = link.begin(name, spec)
    recorder = Recorder()

    def factory(info: UserInfo) -> PytestUser:
        return PytestUser(plan, info, tasks)

    runner = Runner(
        spec=spec,
        indices=share.indices,
        rate=share.rate,
        factory=factory,
        recorder=recorder,
        publish=link.publish,
        name=name,
        interval=interval,
        worker=share.worker,
        workers=share.workers,
    )
    link.watch(runner.stop)
    try:
        with recording(recorder):  # measure() blocks record into this load's recorder
            summary = runner.run()
    except RunInterrupted as exc:
        # The runner has stopped the users, run their teardowns and flushed the last delta.
        # A local aggregator can say what was measured; under xdist the controller reports
        # the interrupted test itself (its own loop is interrupted too, so no report of this
        # worker would reach it).
        if isinstance(link, LocalLink):
            result = link.finish()
            result.users = spec.users
            result.interrupted = exc.reason
            result.problems.append(f"interrupted ({exc.reason}): the figures cover the run so far")
            _judge_stop(result, spec)
            raise LoadInterrupted(LoadOutcome(result, runner.summary, spec)) from None
        raise
    result = link.finish()
    result.users = spec.users
    _judge_stop(result, spec)
    if summary.stop_reason.startswith("interrupted ("):
        result.interrupted = summary.stop_reason[len("interrupted (") : -1]
    if summary.stop_reason:
        # Ended before its duration (a lost worker, a silent controller): never a pass.
        result.problems.append(f"the load stopped early on {share.worker}: {summary.stop_reason}")
    snap = result.snapshot
    if snap.setup_failures >= spec.users:
        sample = next((g for g in result.errors if g.name.startswith("setup: ")), None)
        why = f": {sample.kind}: {sample.message}" if sample else ""
        result.problems.append(f"none of the {spec.users} users could set up its fixtures{why}")
    elif result.total.count == 0:
        result.problems.append(
            "no sample at all was recorded (the body made no request and never failed); "
            "a load test without measurements cannot pass: time other protocols with "
            "`with pytest_swarm.measure(name):`"
        )
    return LoadOutcome(result, summary, spec)


def _judge_stop(result: RunResult, spec: LoadSpec) -> None:
    """What the stop left unmeasured: never a pass when the body never completed."""
    if result.cut_off and not result.snapshot.iterations:
        result.problems.append(
            f"no iteration of the body completed: {result.cut_off} were cut off, still in "
            f"flight {spec.stop_timeout:g}s after the stop (stop_timeout), and their requests "
            "were never measured; make the duration longer than one iteration"
        )
    if result.abandoned:
        result.problems.append(
            f"{result.abandoned} user(s) had not finished their fixture teardown when it "
            f"was given up ({TEARDOWN_TIMEOUT:g}s after the stop, or a second interrupt): "
            "teardown interrupted (see Errors for which users)"
        )
