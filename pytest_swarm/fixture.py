"""The fixtures users write load tests with: ``http``, ``swarm_user`` and ``swarm``.

Example:
    >>> def browse(http):                                        # doctest: +SKIP
    ...     http.get("/items", name="items")
    >>> def test_browse_latency(swarm):                          # doctest: +SKIP
    ...     result = swarm.run(browse, users=20, rate=20, duration="5s")
    ...     assert result["items"].p95 < 0.300
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pytest

from .spec import SpecError, WaitSpec, build_spec
from .stash import get_options, make_link
from .target import check_target

# The engine and the clients pull in gevent and requests: they are imported when a fixture is
# first used, so that a run without load tests imports neither (and ssl stays unpatched).
if TYPE_CHECKING:
    from .clients.fast import FastHttpSession
    from .clients.http import HttpSession
    from .engine.load import LoadOutcome
    from .engine.runner import UserInfo
    from .timing import Measurement

ENGINE_PROVIDED = ("swarm_user",)


class SwarmError(Exception):
    """A load run could not produce trustworthy figures (an error, not an objective miss)."""


def target_url(request: Any) -> str | None:
    """``--swarm-host`` / ini ``swarm_host``, else the project's ``base_url`` fixture."""
    host = get_options(request.config).host
    if host:
        return str(host)
    defs = request._fixturemanager.getfixturedefs("base_url", request.node)
    if defs:
        value = request.getfixturevalue("base_url")
        return str(value) if value else None
    return None


@pytest.fixture(name="measure")
def measure_fixture() -> Callable[[str], Measurement]:
    """:func:`pytest_swarm.measure` for code that prefers fixtures:
    ``with measure("redis GET"): ...``."""
    from .timing import measure

    return measure


@pytest.fixture
def swarm_user() -> UserInfo:
    """Identity of the virtual user running the body: ``index`` (0..users-1, unique in the
    run, across workers too), ``iteration``, ``users``, ``worker``. Outside a load test it is a
    single user 0."""
    from .engine.runner import UserInfo

    return UserInfo(index=0, users=1)


@pytest.fixture
def http(request: pytest.FixtureRequest, swarm_user: UserInfo) -> HttpSession:
    """A ``requests.Session`` per virtual user that records every request (see
    ``pytest_swarm.clients.http``)."""
    from .clients.http import HttpSession

    session: HttpSession = _user_client(request, swarm_user, HttpSession)
    return session


@pytest.fixture
def fast_http(request: pytest.FixtureRequest, swarm_user: UserInfo) -> FastHttpSession:
    """A fast HTTP/1.1 client per virtual user (gevent sockets + httptools), for
    throughput-bound tests; same recording and failure semantics as ``http`` (see
    ``pytest_swarm.clients.fast``)."""
    from .clients.fast import FastHttpSession

    session: FastHttpSession = _user_client(request, swarm_user, FastHttpSession)
    return session


def _user_client(request: pytest.FixtureRequest, swarm_user: UserInfo, factory: Any) -> Any:
    """One user's client of either kind, aimed at the target, recording for this user, and
    closed at the user's teardown. A finalizer rather than a ``yield``: a suspended
    generator keeps its frame (and the user's ``request``) for the whole life of the user,
    about half a KiB of each idle user."""
    options = get_options(request.config)
    session = factory(
        target_url(request),
        swarm_user.recorder,
        timeout=options.timeout,
        max_body=options.max_body,
        deadline=options.request_deadline,
    )
    request.addfinalizer(session.close)
    return session


class Swarm:
    """Runs load from inside a test and returns the swarm's aggregated result.

    Example:
        >>> def test_latency(swarm):                              # doctest: +SKIP
        ...     result = swarm.run({browse: 3, checkout: 1}, users=50, duration="10s")
        ...     assert result.total.p99 < 0.5 and result.error_ratio < 0.01
    """

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self._request = request
        self.outcomes: list[LoadOutcome] = []

    def run(
        self,
        fn: Callable[..., Any] | Mapping[Callable[..., Any], int],
        *,
        users: int | None = None,
        rate: float | None = None,
        duration: str | float | None = None,
        wait: WaitSpec = None,
        iterations: int | None = None,
        stages: Sequence[tuple[str | float, float]] | None = None,
        shape: Callable[[float], object] | None = None,
        arrival_rate: float | Sequence[tuple[str | float, float]] | None = None,
        max_users: int | None = None,
        arrivals: str | None = None,
        stop_timeout: str | float | None = None,
        name: str | None = None,
    ) -> Any:
        """Run ``fn`` (or a weighted ``{fn: weight}`` mix) as the body of ``users`` virtual
        users; its parameters are per-user fixtures, resolved by name. Returns a
        :class:`~pytest_swarm.stats.result.RunResult`. Takes the marker's arguments: ``stages=``
        or ``shape=`` (closed model), ``arrival_rate=`` with ``max_users=`` (open model, see
        docs/workload.md).

        Example:
            >>> result = swarm.run(browse, arrival_rate=100, max_users=20,  # doctest: +SKIP
            ...                    duration="30s")
            >>> result.iterations.p99, result.dropped, result.late          # doctest: +SKIP
        """
        from .engine.load import LoadInterrupted, run_load, tasks_from
        from .engine.resolver import FixturePlan, body_argnames
        from .report.junit import add_properties

        item = self._request.node
        assert isinstance(item, pytest.Item)
        options = get_options(item.config)
        try:
            spec = build_spec(
                users=users,
                rate=rate,
                duration=duration,
                wait=wait,
                iterations=iterations,
                stages=stages,
                shape=shape,
                arrival_rate=arrival_rate,
                max_users=max_users,
                arrivals=arrivals,
                stop_timeout=stop_timeout,
                overrides=options.overrides,
            )
        except SpecError as exc:
            raise SpecError(f"{item.name}: swarm.run{exc_prefix(exc)}") from None
        tasks = tasks_from(fn, body_argnames)
        argnames = sorted({a for t in tasks for a in t.argnames})
        plan = FixturePlan(item, argnames, provided=ENGINE_PROVIDED)
        label = name or getattr(fn, "__name__", None) or item.name
        try:
            outcome = run_load(
                name=label,
                spec=spec,
                plan=plan,
                tasks=tasks,
                link=make_link(item.config, f"{item.nodeid}#{len(self.outcomes) + 1}"),
                interval=options.report_interval,
                preflight=lambda: check_target(target_url(item._request)),  # type: ignore[attr-defined]
            )
        except LoadInterrupted as interrupted:
            # pytest makes no report for an interrupted test: log one with every run's
            # figures (the earlier runs of this test included), marked interrupted.
            self.outcomes.append(interrupted.outcome)
            self._log_interrupted(item)
            raise
        self.outcomes.append(outcome)
        add_properties(item, outcome.result, prefix="swarm" if len(self.outcomes) == 1 else None)
        if outcome.result.problems:
            raise SwarmError("; ".join(outcome.result.problems))
        return outcome.result

    def _log_interrupted(self, item: pytest.Item) -> None:
        from .report.logged import log_interrupted

        runs = [
            (f"{item.name} [swarm.run #{i + 1}]", f"{item.nodeid}#{i + 1}", o.result)
            for i, o in enumerate(self.outcomes)
        ]
        log_interrupted(item.config, item.nodeid, item.location, runs, when="call")


def exc_prefix(exc: SpecError) -> str:
    return f"(): {exc}"


@pytest.fixture
def swarm(request: pytest.FixtureRequest) -> Swarm:
    """Run load from plain test code: ``swarm.run(fn, users=..., duration=...)``."""
    return Swarm(request)
