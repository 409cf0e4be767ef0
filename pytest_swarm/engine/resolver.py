"""Per-user fixture resolution.

pytest caches one value per fixture definition, but a virtual user needs its *own* instance of
every function-scoped fixture (its own HTTP session, its own login). This module resolves a
fixture closure once per user: it follows pytest's override chains, takes directly parametrized
and ``request.param`` values from the item's callspec, hands each user a ``request`` whose
``addfinalizer`` and ``getfixturevalue`` act on that user's state, and tears everything down in
reverse order when the user stops. Session/package/module/class-scoped fixtures are resolved
once, by pytest itself, before any user starts; one a user asks for by name later
(``request.getfixturevalue``) is built under a lock, so two users cannot race to create it.

This is the one module that touches pytest internals (``_fixtureinfo``, ``_fixturemanager``,
``FixtureDef``); it is tested against the oldest and newest supported pytest.

Example (what the engine does for each user)::

    plan = FixturePlan(item, item._fixtureinfo.argnames)
    plan.prepare_shared()            # pytest resolves wider-scoped fixtures, once
    user = plan.new_user(extra={"swarm_user": info})
    kwargs = user.resolve_args()     # this user's own function-scoped instances
    ...
    user.teardown()                  # yield-fixture teardowns and finalizers, reversed
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pytest
from _pytest.fixtures import FixtureDef, FixtureLookupError, resolve_fixture_function
from gevent import GreenletExit
from gevent.lock import RLock

_NOTSET = object()
# Stop tearing down (the user is being killed or the run interrupted); anything else a finalizer
# raises is collected and the remaining finalizers still run.
_STOPS_USER: tuple[type[BaseException], ...] = (GreenletExit, KeyboardInterrupt, SystemExit)


def _is_direct_param(fixturedef: FixtureDef[Any]) -> bool:
    # @pytest.mark.parametrize("x", ...) on the test desugars to a pseudo fixture whose value is
    # the callspec parameter (pytest >= 8: get_direct_param_fixture_func / DirectParamFixtureDef).
    func = getattr(fixturedef, "func", None)
    return (
        type(fixturedef).__name__ == "DirectParamFixtureDef"
        or getattr(func, "__name__", "") == "get_direct_param_fixture_func"
    )


def _scope_name(fixturedef: FixtureDef[Any]) -> str:
    scope = fixturedef.scope
    return scope if isinstance(scope, str) else str(getattr(scope, "value", scope))


class FixturePlan:
    """The fixture closure of one load test (or of one ``swarm.run`` user function).

    ``argnames`` are the names the user body takes; ``autouse`` adds names that must be set up
    for every user even though the body does not ask for them (the item's autouse fixtures).
    """

    def __init__(
        self,
        item: pytest.Item,
        argnames: Sequence[str],
        autouse: Iterable[str] = (),
        provided: Iterable[str] = (),
    ) -> None:
        self.item = item
        self.argnames = tuple(argnames)
        self.autouse = tuple(a for a in autouse if a not in self.argnames)
        self.provided = frozenset(provided)  # names the engine supplies itself (swarm_user)
        info = getattr(item, "_fixtureinfo", None)
        self._defs: dict[str, Sequence[FixtureDef[Any]]] = dict(
            info.name2fixturedefs if info is not None else {}
        )
        callspec = getattr(item, "callspec", None)
        self.params: dict[str, Any] = dict(callspec.params) if callspec is not None else {}
        self.param_indices: dict[str, int] = dict(callspec.indices) if callspec else {}
        # pytest builds a wider-scoped fixture on first request and is not re-entrant: a user
        # whose fixture asks for one by name (request.getfixturevalue) while another user's
        # setup of it waits for I/O would build it again (pytest 8) or fail (pytest 9). One
        # greenlet at a time asks pytest; the others wait, then find it cached.
        self._shared_lock = RLock()

    def fixturedefs(self, argname: str) -> Sequence[FixtureDef[Any]]:
        defs = self._defs.get(argname)
        if defs is None:
            # Not in the item's own closure (swarm.run(fn) may name anything visible).
            manager = self.item.session._fixturemanager
            defs = manager.getfixturedefs(argname, self.item) or ()
            self._defs[argname] = defs
        if not defs:
            raise FixtureLookupError(argname, self.item._request)  # type: ignore[attr-defined]
        return defs

    def is_shared(self, argname: str, depth: int = -1) -> bool:
        """True for fixtures pytest itself should build once (wider than function scope)."""
        if argname == "request" or argname in self.provided:
            return False
        fixturedef = self.fixturedefs(argname)[depth]
        if _is_direct_param(fixturedef):
            return False
        return _scope_name(fixturedef) != "function"

    def shared_names(self) -> list[str]:
        """Every wider-scoped fixture reachable from the user body, in dependency order."""
        found: list[str] = []
        seen: set[tuple[str, int]] = set()

        def visit(argname: str, depth: int) -> None:
            if (argname, depth) in seen or argname == "request" or argname in self.provided:
                return
            seen.add((argname, depth))
            defs = self.fixturedefs(argname)
            if -depth > len(defs):
                return
            fixturedef = defs[depth]
            if self.is_shared(argname, depth):
                if argname not in found:
                    found.append(argname)
                return
            if _is_direct_param(fixturedef):
                return
            for dep in fixturedef.argnames:
                visit(dep, depth - 1 if dep == argname else -1)

        for name in self.autouse + self.argnames:
            visit(name, -1)
        return found

    def prepare_shared(self) -> dict[str, Any]:
        """Let pytest build (and cache, and later tear down) the wider-scoped fixtures now,
        before users start, from the calling greenlet."""
        return {name: self.shared_value(name) for name in self.shared_names()}

    def shared_value(self, argname: str) -> Any:
        """A wider-scoped fixture's value, built by pytest once: creation is serialised
        across users (see ``_shared_lock``)."""
        with self._shared_lock:
            return self.item._request.getfixturevalue(argname)  # type: ignore[attr-defined]

    def new_user(self, extra: dict[str, Any] | None = None) -> UserFixtures:
        return UserFixtures(self, extra or {})


class UserRequest:
    """The ``request`` a per-user fixture sees: pytest's request for everything read-only,
    this user's state for ``param``, ``addfinalizer`` and ``getfixturevalue``."""

    # Thousands of users each hold a few of these: no per-instance __dict__.
    __slots__ = ("_base", "_fixturedef", "_user", "fixturename", "param", "param_index")

    def __init__(
        self, user: UserFixtures, fixturename: str | None, fixturedef: FixtureDef[Any] | None
    ) -> None:
        self._user = user
        self._base = user.plan.item._request  # type: ignore[attr-defined]
        self.fixturename = fixturename
        self._fixturedef = fixturedef
        if fixturename is not None and fixturename in user.plan.params:
            self.param = user.plan.params[fixturename]
            self.param_index = user.plan.param_indices.get(fixturename, 0)

    @property
    def scope(self) -> str:
        return "function"

    @property
    def fixturenames(self) -> list[str]:
        return list(self._base.fixturenames)

    @property
    def node(self) -> pytest.Item:
        return self._user.plan.item

    def addfinalizer(self, finalizer: Callable[[], object]) -> None:
        self._user.finalizers.append(finalizer)

    def getfixturevalue(self, argname: str) -> Any:
        return self._user.resolve(argname)

    def applymarker(self, marker: Any) -> None:
        self._base.applymarker(marker)

    def __getattr__(self, name: str) -> Any:
        # config, function, cls, instance, module, path, keywords, session, ...
        return getattr(self._base, name)

    def __repr__(self) -> str:
        return f"<UserRequest {self.fixturename or 'test'} of {self.node.nodeid}>"


class UserFixtures:
    """One virtual user's fixture values and finalizers."""

    __slots__ = ("_resolving", "finalizers", "plan", "values")

    def __init__(self, plan: FixturePlan, extra: dict[str, Any]) -> None:
        self.plan = plan
        self.values: dict[tuple[str, int], Any] = {
            (name, -1): value for name, value in extra.items()
        }
        self.finalizers: list[Callable[[], object]] = []
        self._resolving: list[str] = []  # names currently being built, for override chains

    def resolve_args(self) -> dict[str, Any]:
        """Set up autouse fixtures, then return the body's keyword arguments."""
        for name in self.plan.autouse:
            self.resolve(name)
        return {name: self.resolve(name) for name in self.plan.argnames}

    def resolve(self, argname: str) -> Any:
        # An overriding fixture that requests its own name gets the one it overrides.
        depth = -1 - self._resolving.count(argname)
        key = (argname, depth)
        if key in self.values:
            return self.values[key]
        if argname == "request":
            return UserRequest(self, self._resolving[-1] if self._resolving else None, None)
        defs = self.plan.fixturedefs(argname)
        if -depth > len(defs):
            raise FixtureLookupError(argname, self.plan.item._request)  # type: ignore[attr-defined]
        fixturedef = defs[depth]
        if self.plan.is_shared(argname, depth):
            value = self.plan.shared_value(argname)
        elif _is_direct_param(fixturedef) or (
            argname in self.plan.params and fixturedef.func is None
        ):
            value = self.plan.params[argname]
        else:
            value = self._call(argname, fixturedef)
        self.values[key] = value
        return value

    def _call(self, argname: str, fixturedef: FixtureDef[Any]) -> Any:
        request = UserRequest(self, argname, fixturedef)
        self._resolving.append(argname)
        try:
            kwargs = {dep: self.resolve(dep) for dep in fixturedef.argnames}
        finally:
            self._resolving.pop()
        func = resolve_fixture_function(fixturedef, request)  # type: ignore[arg-type]
        # The fixture's own `request` argument is this fixture's request, not its caller's.
        if "request" in fixturedef.argnames:
            kwargs["request"] = request
        self._resolving.append(argname)
        try:
            if inspect.isgeneratorfunction(func):
                generator = func(**kwargs)
                try:
                    value = next(generator)
                except StopIteration:
                    raise ValueError(f"fixture {argname!r} did not yield a value") from None
                self.finalizers.append(lambda: _finish_generator(argname, generator))
                return value
            return func(**kwargs)
        finally:
            self._resolving.pop()

    def teardown(self) -> list[BaseException]:
        """Run this user's finalizers in reverse order; every one runs even if some fail.
        Returns the exceptions raised (the caller records them)."""
        errors: list[BaseException] = []
        while self.finalizers:
            finalizer = self.finalizers.pop()
            try:
                finalizer()
            except _STOPS_USER:
                raise
            except BaseException as exc:  # pytest.fail() in a teardown is an OutcomeException
                errors.append(exc)
        self.values.clear()
        return errors


def _finish_generator(argname: str, generator: Any) -> None:
    try:
        next(generator)
    except StopIteration:
        return
    raise ValueError(f"fixture {argname!r} has more than one 'yield'")


def body_argnames(func: Callable[..., Any]) -> list[str]:
    """Names a user function takes as fixtures (parameters without defaults)."""
    sig = inspect.signature(func)
    return [
        p.name
        for p in sig.parameters.values()
        if p.default is inspect.Parameter.empty
        and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    ]


def item_autouse(item: pytest.Item) -> list[str]:
    """The item's fixture closure minus what its function asks for: autouse fixtures and
    their dependencies (dependencies are resolved on demand anyway)."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return []
    initial = set(info.initialnames)
    return [n for n in info.initialnames if n not in info.argnames and n in initial]
