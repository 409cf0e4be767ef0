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
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
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


# pytest's own fixtures that need a per-user treatment (see UserFixtures._builtin): recognised by
# the module that defines them, so a project's own fixture of the same name is left alone.
_CAPTURE = frozenset({"capsys", "capfd", "capsysbinary", "capfdbinary"})


def _builtin(fixturedef: FixtureDef[Any], module: str) -> bool:
    return getattr(fixturedef.func, "__module__", None) == module


class UnsupportedFixture(TypeError):
    """A per-user fixture that cannot work per user; the message says why and what to do."""


def refusal(argname: str, fixturedef: FixtureDef[Any]) -> str | None:
    """Why fixture ``argname`` cannot be one user's own instance, or None if it can."""
    func = fixturedef.func
    if argname in _CAPTURE and _builtin(fixturedef, "_pytest.capture"):
        return (
            f"fixture {argname!r} cannot be a per-user fixture: output capture is process-wide "
            "(every user of the process writes to the same sys.stdout and file descriptors), so "
            "it cannot capture one user's output; use it in a plain test, or have the body "
            "return what it would print"
        )
    if inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func):
        return (
            f"fixture {argname!r} is an async def fixture: virtual users are gevent greenlets "
            "with no asyncio event loop, so each user would get a coroutine object instead of "
            "its value; make it a plain def fixture (the http clients are synchronous)"
        )
    return None


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
        self._patches: list[pytest.MonkeyPatch] = []

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

    def _walk(self) -> Iterator[tuple[str, FixtureDef[Any], bool]]:
        """(name, definition, shared) of every fixture reachable from the user body, in
        dependency order; the walk stops at shared ones (pytest builds their dependencies)."""
        seen: set[tuple[str, int]] = set()

        def visit(argname: str, depth: int) -> Iterator[tuple[str, FixtureDef[Any], bool]]:
            if (argname, depth) in seen or argname == "request" or argname in self.provided:
                return
            seen.add((argname, depth))
            defs = self.fixturedefs(argname)
            if -depth > len(defs):
                return
            fixturedef = defs[depth]
            if self.is_shared(argname, depth):
                yield argname, fixturedef, True
                return
            if _is_direct_param(fixturedef):
                return
            for dep in fixturedef.argnames:
                yield from visit(dep, depth - 1 if dep == argname else -1)
            yield argname, fixturedef, False

        for name in self.autouse + self.argnames:
            yield from visit(name, -1)

    def shared_names(self) -> list[str]:
        """Every wider-scoped fixture reachable from the user body, in dependency order."""
        found: list[str] = []
        for name, _, shared in self._walk():
            if shared and name not in found:
                found.append(name)
        return found

    def refusal(self) -> str | None:
        """Why this body cannot run per user (a fixture that cannot be per user), or None."""
        for name, fixturedef, shared in self._walk():
            if not shared:
                reason = refusal(name, fixturedef)
                if reason is not None:
                    return reason
        return None

    def prepare_shared(self) -> dict[str, Any]:
        """Let pytest build (and cache, and later tear down) the wider-scoped fixtures now,
        before users start, from the calling greenlet. Raises :class:`UnsupportedFixture`
        first if some fixture cannot be per user (the marker form refuses at collection)."""
        reason = self.refusal()
        if reason is not None:
            raise UnsupportedFixture(f"{self.item.name}: {reason}")
        return {name: self.shared_value(name) for name in self.shared_names()}

    def own_patches(self) -> pytest.MonkeyPatch:
        """A user's own ``monkeypatch``. What users patch (module attributes, ``os.environ``,
        ``sys.path``, the working directory) is shared by every user of the process, and users
        tear down in any order: undoing one user's patches would restore the original under
        the others, and the last one would restore another user's value, which then leaks
        past the test. So every user's patches are undone together, in reverse order of all
        of them, once the test ends."""
        patches = pytest.MonkeyPatch()
        if not self._patches:
            self.item.addfinalizer(self._undo_patches)
        self._patches.append(patches)
        return patches

    def _undo_patches(self) -> None:
        while self._patches:
            self._patches.pop().undo()

    def new_instance(self) -> object | None:
        """A user's own instance of the test class (None outside a class): users must not
        share ``self`` (pytest makes one instance per test, ``cls()``)."""
        base = getattr(self.item, "instance", None)
        return None if base is None else type(base)()

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

    @property
    def instance(self) -> object | None:
        """This user's own instance of the test class (fixture methods are bound to it)."""
        return self._user.instance

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

    __slots__ = ("_instance", "_resolving", "finalizers", "plan", "values")

    def __init__(self, plan: FixturePlan, extra: dict[str, Any]) -> None:
        self.plan = plan
        self.values: dict[tuple[str, int], Any] = {
            (name, -1): value for name, value in extra.items()
        }
        self.finalizers: list[Callable[[], object]] = []
        self._resolving: list[str] = []  # names currently being built, for override chains
        self._instance: object | None = _NOTSET

    @property
    def instance(self) -> object | None:
        """This user's own instance of the test class, made on first use (None outside)."""
        if self._instance is _NOTSET:
            self._instance = self.plan.new_instance()
        return self._instance

    def bind(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """``func`` bound to this user's instance if it is a method of the test's instance
        (the marker form's body is ``item.obj``, bound to pytest's one instance)."""
        base = getattr(self.plan.item, "instance", None)
        if base is not None and inspect.ismethod(func) and func.__self__ is base:
            return func.__func__.__get__(self.instance)  # type: ignore[no-any-return]
        return func

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
        reason = refusal(argname, fixturedef)
        if reason is not None:  # asked for by name (getfixturevalue): the walk could not see it
            raise UnsupportedFixture(reason)
        if argname == "monkeypatch" and _builtin(fixturedef, "_pytest.monkeypatch"):
            return self.plan.own_patches()
        if argname == "tmp_path" and _builtin(fixturedef, "_pytest.tmpdir"):
            return self._tmp_path()
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

    def _tmp_path(self) -> Path:
        """A directory of this user's own under the session's base temporary directory.
        pytest's ``tmp_path`` teardown reads the test's report of its call phase, which a
        user's teardown (in the test's setup phase) precedes: each user's directory is kept
        like a failed test's, and pytest prunes old base directories as usual."""
        factory = self.resolve("tmp_path_factory")
        name = re.sub(r"[\W]", "_", self.plan.item.name)[:30]
        path: Path = factory.mktemp(name, numbered=True)
        return path

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


def collection_refusal(item: pytest.Item, provided: Iterable[str] = ()) -> str | None:
    """At collection: why the marker-form load test ``item`` cannot run per user, or None. A
    fixture that does not exist is left for pytest to report at setup, as it always does."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return None
    plan = FixturePlan(item, info.argnames, autouse=item_autouse(item), provided=provided)
    try:
        return plan.refusal()
    except FixtureLookupError:
        return None
