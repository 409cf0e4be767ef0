"""The marker form: turning a ``@pytest.mark.load`` test into a load test.

At collection the marks are validated into a :class:`LoadDefinition` (bad input is a collection
error naming the test and the argument, and nothing runs). The item's own ``setup`` is replaced:
instead of building one instance of every fixture, it lets pytest build only the wider-scoped
ones and runs the load, each user with its own function-scoped fixtures. Infrastructure problems
raise there, so pytest reports an ERROR (JUnit ``<error>``). ``runtest`` then judges the
objectives: a miss is a FAILURE whose message is the verdict table.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from .abort import DEFAULT_GRACE, AbortRule, rule_settings
from .fixture import ENGINE_PROVIDED, target_url
from .objectives import SCOPES, Objective, ObjectiveError, Verdict, evaluate, parse_objective
from .options import SwarmOptions
from .spec import LOAD_ARGUMENTS, LoadSpec, SpecError, build_spec, parse_duration
from .stash import get_options, make_link
from .target import TargetError, check_target

if TYPE_CHECKING:
    from .engine.load import LoadOutcome  # noqa: F401 (the stash key's type, a string)


@dataclass(frozen=True)
class LoadDefinition:
    spec: LoadSpec
    objectives: tuple[Objective, ...]
    abort: tuple[AbortRule, ...] = ()

    def settings(self) -> dict[str, Any]:
        """What the live feed's ``LoadStarted`` carries besides the spec (see make_link)."""
        return {
            "objectives": [str(o) for o in self.objectives],
            "abort": rule_settings(self.abort),
        }


DEFINITION_KEY = pytest.StashKey[LoadDefinition]()
OUTCOME_KEY = pytest.StashKey["LoadOutcome"]()
VERDICT_KEY = pytest.StashKey[Verdict]()
# Why the load was stopped before its end on request (an abort rule, the dashboard).
STOPPED_KEY = pytest.StashKey[str]()

_SLO_ARGS = ("request", "scope", "abort", "abort_grace")


def _slo_objectives(slo: pytest.Mark) -> tuple[list[Objective], AbortRule | None]:
    """The objectives of one ``slo`` mark, and its abort rule if it has ``abort=True``."""
    extra = sorted(set(slo.kwargs) - set(_SLO_ARGS))
    if extra:
        raise SpecError(
            f"slo(): unknown argument(s) {', '.join(extra)} (expected {', '.join(_SLO_ARGS)})"
        )
    request = slo.kwargs.get("request")
    if request is not None and not isinstance(request, str):
        raise SpecError(f"slo(request={request!r}): request must be a request name")
    scope = slo.kwargs.get("scope")
    if scope is not None and scope not in SCOPES:
        raise SpecError(f"slo(scope={scope!r}): expected scope={SCOPES[0]!r} (or no scope)")
    if scope is not None and request is not None:
        raise SpecError("slo(): give request= or scope=, not both")
    abort = slo.kwargs.get("abort", False)
    if not isinstance(abort, bool):
        raise SpecError(f"slo(abort={abort!r}): expected True or False")
    grace_value = slo.kwargs.get("abort_grace")
    if grace_value is not None and not abort:
        raise SpecError("slo(abort_grace=...): only meaningful with abort=True")
    grace = DEFAULT_GRACE
    if grace_value is not None:
        if isinstance(grace_value, bool) or not isinstance(grace_value, str | int | float):
            raise SpecError(
                f"slo(abort_grace={grace_value!r}): expected a duration like '10s' or seconds"
            )
        try:
            grace = parse_duration(grace_value, argument="abort_grace")
        except SpecError:
            raise SpecError(
                f"slo(abort_grace={grace_value!r}): expected a positive duration like '10s' "
                "or a number of seconds"
            ) from None
    if not slo.args:
        raise SpecError('slo(): give at least one objective, e.g. slo("p95 < 300ms")')
    objectives = []
    for text in slo.args:
        if not isinstance(text, str):
            raise SpecError(f"slo({text!r}): objectives are strings like 'p95 < 300ms'")
        objectives.append(parse_objective(text, request=request, scope=scope))
    return objectives, AbortRule(tuple(objectives), grace) if abort else None


# One list with swarm.run (spec.py), so the marker takes every model's arguments.
_LOAD_ARGS = LOAD_ARGUMENTS


def _definition(item: pytest.Function, options: SwarmOptions) -> LoadDefinition:
    marker = item.get_closest_marker("load")
    assert marker is not None
    if len(marker.args) > 1:
        raise SpecError("load(): only 'users' may be given positionally")
    kwargs: dict[str, Any] = dict(zip(("users",), marker.args, strict=False))
    for key, value in marker.kwargs.items():
        if key in kwargs:
            raise SpecError("load(): 'users' given twice")
        kwargs[key] = value
    unknown = sorted(set(kwargs) - set(_LOAD_ARGS))
    if unknown:
        raise SpecError(f"load(): unknown argument(s) {', '.join(unknown)}")
    # build_spec says which model's arguments are missing (users, stages, shape, arrival_rate).
    spec = build_spec(**kwargs, overrides=options.overrides)
    objectives: list[Objective] = []
    rules: list[AbortRule] = []
    for slo in item.iter_markers("slo"):
        found, rule = _slo_objectives(slo)
        objectives.extend(found)
        if rule is not None:
            rules.append(rule)
    objectives.extend(options.objectives)
    return LoadDefinition(spec, tuple(objectives), tuple(rules))


class SwarmWarning(pytest.PytestWarning):
    """A load test that can run but will not do what it says (pytest-swarm)."""


def start_shortfall(spec: LoadSpec) -> str:
    """Why not every user can start within the duration, or "".

    >>> from pytest_swarm.spec import parse_wait
    >>> start_shortfall(LoadSpec(10, 2.0, 2.0, parse_wait(None), 5.0))[:47]
    '10 users at 2/s need 5s to start, longer than t'
    """
    if spec.profile is not None or spec.rate <= 0 or spec.users / spec.rate <= spec.duration:
        return ""
    # User k starts at k / rate: those due before the end of the duration start.
    starting = min(spec.users, math.ceil(spec.duration * spec.rate - 1e-9))
    return (
        f"{spec.users} users at {spec.rate:g}/s need {spec.users / spec.rate:g}s to start, "
        f"longer than the {spec.duration:g}s duration: only about {starting} will start "
        "(raise rate= or duration=)"
    )


def prepare(item: pytest.Item) -> None:
    """Validate a collected load test and install its setup and runtest. Raises
    ``pytest.Collector.CollectError`` with the test's name on bad input."""
    if not isinstance(item, pytest.Function) or item.get_closest_marker("load") is None:
        return
    func = getattr(item, "function", None)
    if inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func):
        raise pytest.Collector.CollectError(
            f"{item.nodeid}: load tests must be plain functions (users are gevent greenlets)"
        )
    from .engine.resolver import collection_refusal

    refused = collection_refusal(item, provided=ENGINE_PROVIDED)
    if refused is not None:  # a fixture that cannot be per user (capsys, async def)
        raise pytest.Collector.CollectError(f"{item.nodeid}: {refused}")
    try:
        definition = _definition(item, get_options(item.config))
    except (SpecError, ObjectiveError) as exc:
        raise pytest.Collector.CollectError(f"{item.nodeid}: {exc}") from None
    item.stash[DEFINITION_KEY] = definition
    shortfall = start_shortfall(definition.spec)
    if shortfall:
        item.warn(SwarmWarning(f"{item.nodeid}: {shortfall}"))
    item.setup = lambda: _setup(item)  # type: ignore[method-assign]
    item.runtest = lambda: _runtest(item)  # type: ignore[method-assign]


def is_load_item(item: pytest.Item) -> bool:
    return DEFINITION_KEY in item.stash


def _setup(item: pytest.Function) -> None:
    from .engine.load import LoadInterrupted, Task, run_load
    from .engine.resolver import FixturePlan, item_autouse
    from .report.junit import add_properties
    from .report.logged import log_interrupted

    definition = item.stash[DEFINITION_KEY]
    options = get_options(item.config)
    info = item._fixtureinfo
    plan = FixturePlan(item, info.argnames, autouse=item_autouse(item), provided=ENGINE_PROVIDED)
    link = make_link(item.config, item.nodeid, settings=definition.settings())
    try:
        outcome = run_load(
            name=item.name,
            spec=definition.spec,
            plan=plan,
            tasks=[Task(item.obj, tuple(info.argnames))],
            link=link,
            interval=options.report_interval,
            preflight=lambda: check_target(target_url(item._request)),
        )
    except TargetError as exc:
        pytest.fail(f"{item.name}: {exc}", pytrace=False)
    except LoadInterrupted as interrupted:
        result = interrupted.outcome.result
        add_properties(item, result)
        log_interrupted(
            item.config,
            item.nodeid,
            item.location,
            [(item.name, item.nodeid, result)],
            user_properties=item.user_properties,
        )
        raise
    item.stash[OUTCOME_KEY] = outcome
    stopped = take_requested_stop(
        getattr(link, "stopped", ""),
        outcome.result.problems,
        # The controller's word is final under xdist (this worker may have ended first); a
        # local stop that came as the run was ending anyway stopped nothing.
        confirmed=getattr(link, "stop_confirmed", True),
    )
    if stopped:
        item.stash[STOPPED_KEY] = stopped
    add_properties(item, outcome.result)
    if outcome.result.problems:
        # Failing in setup makes this an ERROR (JUnit <error>), distinct from an objective miss.
        pytest.fail(f"{item.name}: " + "\n".join(outcome.result.problems), pytrace=False)


def take_requested_stop(reason: str, problems: list[str], confirmed: bool = True) -> str:
    """A load stopped on request (through the feed: an abort rule, the dashboard) is judged
    as a failure with its reason, not as an infrastructure error: the engine's "stopped early"
    line for that very reason is taken out of ``problems`` (any other problem stays and
    still makes the test an ERROR). Returns the reason; "" when nothing was stopped early:
    unless ``confirmed``, only if the engine's line was there.

    >>> problems = ["the load stopped early on gw1: aborted at 2.0s: p95 missed", "other"]
    >>> take_requested_stop("aborted at 2.0s: p95 missed", problems, confirmed=False), problems
    ('aborted at 2.0s: p95 missed', ['other'])
    >>> take_requested_stop("too late", [], confirmed=False)
    ''
    """
    if not reason:
        return ""
    kept = [
        p
        for p in problems
        if not (p.startswith("the load stopped early on ") and p.endswith(": " + reason))
    ]
    if len(kept) == len(problems) and not confirmed:
        return ""
    problems[:] = kept
    return reason


def _runtest(item: pytest.Function) -> None:
    definition = item.stash[DEFINITION_KEY]
    outcome = item.stash[OUTCOME_KEY]
    verdict = evaluate(definition.objectives, outcome.result)
    stopped = item.stash.get(STOPPED_KEY, "")
    if stopped:
        verdict = Verdict(verdict.outcomes, stopped=stopped)
    item.stash[VERDICT_KEY] = verdict
    setup_failures = outcome.result.snapshot.setup_failures
    reasons = []
    if stopped:
        reasons.append(
            f"load stopped before its end (ran {outcome.result.duration:.1f}s of "
            f"{definition.spec.duration:g}s): {stopped}\n" + verdict.table()
        )
    elif not verdict.met:
        reasons.append("objectives missed:\n" + verdict.table())
    if setup_failures:
        reasons.append(
            f"{setup_failures} of {definition.spec.users} users failed to set up their fixtures"
        )
    cut_off = outcome.result.cut_off
    if cut_off and outcome.result.snapshot.iterations:
        # Other iterations completed, so the engine's "no iteration completed" error does not
        # apply; but a request only these iterations made (an endpoint that hangs) has no
        # sample at all, and a client timeout longer than stop_timeout never turns it into a
        # failure first: never pass what was not measured (RELIABILITY row 30).
        reasons.append(
            f"{cut_off} iteration(s) were still in flight {definition.spec.stop_timeout:g}s "
            "after the stop and were cut off: their requests in flight were never measured "
            "(a request only they made has no sample at all); give requests a timeout "
            "shorter than stop_timeout, or make stop_timeout longer"
        )
    # A failing fixture teardown is an error in pytest; per user it must not pass unnoticed.
    teardowns = [g for g in outcome.result.errors if g.name.startswith("teardown: ")]
    if teardowns:
        first = teardowns[0]
        reasons.append(
            f"{sum(g.count for g in teardowns)} user fixture teardowns failed, "
            f"e.g. {first.kind}: {first.message}"
        )
    if reasons:
        pytest.fail("\n".join(reasons), pytrace=False)
