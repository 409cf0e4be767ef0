"""Abort on a clear miss: ``@pytest.mark.slo(..., abort=True, abort_grace="10s")``.

The rule is a subscriber of the session's live feed (:mod:`pytest_swarm.feed`) in the process
that aggregates (the one pytest process, or the xdist controller), so it judges the swarm's
running aggregate, not one worker's share. From ``abort_grace`` seconds into the load on, at
every report interval, it evaluates that mark's objectives on the running figures; the first
one missed stops the load through :meth:`Feed.request_stop`, with a reason that says when and
on which figure (measured against the limit). The test then fails with that reason in its
verdict: a load that aborted is never a pass.

Only what was measured can abort: an objective with nothing to measure yet (no request of
that name so far) waits for figures rather than abort on none. The rules reach the rule in the
``LoadStarted`` event's ``settings`` as the objectives' canonical text (see
:func:`rule_settings`), which is what crosses the wire from an xdist worker to the controller.

Example:
    >>> from pytest_swarm.feed import Feed, LoadStarted, Progress
    >>> from pytest_swarm.stats.result import RunResult
    >>> from pytest_swarm.stats.snapshot import Snapshot
    >>> feed, stops = Feed(), []
    >>> _ = feed.subscribe(AbortWatch(feed))
    >>> rule = AbortRule((parse_objective("failures < 1"),), grace=2.0)
    >>> feed.publish(LoadStarted("t::x", "x", 60.0, settings={"abort": rule_settings([rule])}))
    >>> feed.register_stop("t::x", stops.append)
    >>> snap = Snapshot(); snap.entry("GET /").hist.record_values([1000] * 5)
    >>> snap.entry("GET /").failures = 3
    >>> feed.publish(Progress("t::x", "x", 1.0, 60.0, RunResult(snap, 1.0)))   # in the grace
    >>> feed.publish(Progress("t::x", "x", 2.0, 60.0, RunResult(snap, 2.0)))
    >>> stops
    ['aborted 2.0s into the load: failures < 1 missed, measured 3 (limit < 1)']
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .feed import Event, Feed, LoadFinished, LoadStarted, Progress, SessionFinished
from .objectives import (
    _OPS,
    Objective,
    ObjectiveError,
    _threshold_text,
    format_measured,
    measure,
    parse_objective,
)

DEFAULT_GRACE = 10.0
# Bounds on what a LoadStarted may carry into the rule (it may come off the wire).
MAX_RULES = 20
MAX_RULE_OBJECTIVES = 50
MAX_TEXT = 1000


@dataclass(frozen=True)
class AbortRule:
    """One ``slo`` mark with ``abort=True``: its objectives and its grace (seconds)."""

    objectives: tuple[Objective, ...]
    grace: float = DEFAULT_GRACE


def rule_settings(rules: Iterable[AbortRule]) -> list[dict[str, Any]]:
    """The rules as plain data for ``LoadStarted.settings["abort"]`` (and the wire)."""
    return [{"objectives": [str(o) for o in r.objectives], "grace": r.grace} for r in rules]


def rules_from_settings(settings: dict[str, Any]) -> list[AbortRule]:
    """The inverse of :func:`rule_settings`; raises ValueError on anything malformed (the
    data may come from another process), bounded in count and length.

    >>> rules_from_settings({"abort": [{"objectives": ["p95 < 300ms"], "grace": 5}]})[0].grace
    5.0
    """
    raw = settings.get("abort", [])
    if not isinstance(raw, list) or len(raw) > MAX_RULES:
        raise ValueError("abort rules: expected a list of at most 20 rules")
    rules = []
    for item in raw:
        if not isinstance(item, dict) or set(item) != {"objectives", "grace"}:
            raise ValueError("abort rule: expected {'objectives': [...], 'grace': seconds}")
        texts, grace = item["objectives"], item["grace"]
        if not isinstance(texts, list) or not 0 < len(texts) <= MAX_RULE_OBJECTIVES:
            raise ValueError("abort rule: expected 1 to 50 objectives")
        if isinstance(grace, bool) or not isinstance(grace, int | float):
            raise ValueError("abort rule: grace must be a number of seconds")
        if not (math.isfinite(grace) and grace >= 0):
            raise ValueError("abort rule: grace must be finite and >= 0")
        objectives = []
        for text in texts:
            if not isinstance(text, str) or len(text) > MAX_TEXT:
                raise ValueError("abort rule: objectives are strings of at most 1000 characters")
            try:
                objectives.append(parse_objective(text))
            except ObjectiveError as exc:
                raise ValueError(f"abort rule: {exc}") from None
        rules.append(AbortRule(tuple(objectives), float(grace)))
    return rules


def miss(objective: Objective, result: Any) -> str:
    """How ``objective`` is missed on ``result`` ("" when it is met or has nothing to measure
    yet), e.g. ``p95 < 300ms missed, measured 412ms (limit < 300ms)``."""
    value = measure(objective, result)
    if value is None or _OPS[objective.op](value, objective.threshold):
        return ""
    limit = f"{objective.op} {_threshold_text(objective.metric, objective.threshold)}"
    return (
        f"{objective} missed, measured {format_measured(objective.metric, value)} (limit {limit})"
    )


class AbortWatch:
    """The feed subscriber that applies the abort rules of every running load test.

    Called in the publishing thread (see :mod:`pytest_swarm.feed`); the stop it requests is
    asynchronous (the stopper hops to the load's own loop), so it returns at once."""

    def __init__(self, feed: Feed) -> None:
        self.feed = feed
        self._rules: dict[str, list[AbortRule]] = {}
        self.errors: list[str] = []  # rules that could not be read (shown nowhere else)

    def __call__(self, event: Event) -> None:
        if isinstance(event, LoadStarted):
            try:
                rules = rules_from_settings(event.settings)
            except ValueError as exc:
                self.errors.append(f"{event.test}: {exc}")
                return
            if rules:
                self._rules[event.test] = rules
        elif isinstance(event, Progress):
            running = self._rules.get(event.test)
            if running:
                reason = self.verdict(running, event)
                if reason:
                    del self._rules[event.test]  # one stop per load
                    self.feed.request_stop(event.test, reason)
        elif isinstance(event, LoadFinished):
            self._rules.pop(event.test, None)
        elif isinstance(event, SessionFinished):
            self._rules.clear()

    @staticmethod
    def verdict(rules: list[AbortRule], progress: Progress) -> str:
        """Why the load must stop now ("" if it may go on)."""
        for rule in rules:
            if progress.elapsed < rule.grace:
                continue
            for objective in rule.objectives:
                why = miss(objective, progress.result)
                if why:
                    return f"aborted {progress.elapsed:.1f}s into the load: {why}"
        return ""
