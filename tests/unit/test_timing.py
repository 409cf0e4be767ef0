"""``measure``: the block is one sample under its name, with catch_response's rules."""

from __future__ import annotations

import doctest
import gc
import inspect
import os
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_swarm import measure, timing
from pytest_swarm.stats.recorder import Recorder
from pytest_swarm.timing import MAX_NAME, MAX_SIZE, PyMeasurement, is_recording, recording

IMPLEMENTATIONS = {"python": PyMeasurement}
if timing.ACCELERATED:
    IMPLEMENTATIONS["c"] = timing.Measurement


@pytest.fixture(scope="module", autouse=True, params=sorted(IMPLEMENTATIONS))
def implementation(request: pytest.FixtureRequest) -> Iterator[str]:
    """Every test here runs against the C block (where it was built) and the pure-Python one:
    the module's ``measure`` is each in turn."""
    global measure
    default, measure = measure, IMPLEMENTATIONS[request.param]
    try:
        yield request.param
    finally:
        measure = default


def test_the_c_block_is_built_where_ci_requires_it() -> None:
    # .ci/run sets this: a CI machine must not pass by silently falling back to Python.
    if os.environ.get("SWARM_REQUIRE_SPEEDUPS") != "1":
        pytest.skip("SWARM_REQUIRE_SPEEDUPS=1 is not set")
    assert timing.ACCELERATED, "pytest_swarm._speedups was not built or failed to import"
    assert timing.measure("x").__class__ is not PyMeasurement


def test_module_doctests() -> None:
    assert doctest.testmod(timing).failed == 0


def test_elapsed_is_in_seconds_on_perf_counters_clock() -> None:
    # The C block reads the monotonic clock itself: wrong units or another clock would show.
    before = time.perf_counter()
    with measure("clock") as m:
        sum(range(1000))
    after = time.perf_counter()
    assert 0 < m.elapsed <= after - before


def test_the_name_may_be_given_by_keyword_and_nothing_else_is_taken() -> None:
    assert measure(name="kw").name == "kw"
    with pytest.raises(TypeError):
        measure()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        measure("a", "b")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        measure(label="a")  # type: ignore[call-arg]


def test_size_cannot_be_deleted() -> None:
    m = measure("sized")
    with pytest.raises(AttributeError):
        del m.size


def test_a_failure_whose_traceback_holds_the_block_is_collected() -> None:
    # exception -> traceback -> frame -> m -> its verdict -> exception: a cycle, which only
    # the garbage collector can free (a C block that hid its verdict from it would leak).
    class Held(ValueError):
        pass  # a subclass, for a weak reference (builtin exceptions take none)

    def fail() -> weakref.ref[BaseException]:
        m = measure("cycle")
        try:
            raise Held("held")
        except Held as exc:
            m.failure(exc)
            return weakref.ref(exc)

    ref = fail()
    gc.collect()
    assert ref() is None


def counts(recorder: Recorder) -> dict[str, tuple[int, int]]:
    """name -> (samples, failures) of everything recorded so far."""
    return {n: (e.hist.total, e.failures) for n, e in recorder.drain().entries.items()}


def test_a_block_is_one_sample_and_an_exception_fails_it_and_propagates() -> None:
    recorder = Recorder()
    with recording(recorder):
        with measure("ok"):
            pass
        with pytest.raises(ZeroDivisionError) as info, measure("boom"):
            1 / 0  # noqa: B018
    # The runner counts an iteration failure once: the block marked the exception as recorded.
    assert getattr(info.value, "_swarm_recorded", False) is True
    snap = recorder.drain()
    assert {n: (e.hist.total, e.failures) for n, e in snap.entries.items()} == {
        "ok": (1, 0),
        "boom": (1, 1),
    }
    [group] = snap.errors.values()
    assert (group.name, group.kind, group.message) == (
        "boom",
        "ZeroDivisionError",
        "division by zero",
    )
    assert "1 / 0" in group.sample  # a sample traceback, as for a request


def test_explicit_verdicts_win_and_the_last_one_counts() -> None:
    recorder = Recorder()
    with recording(recorder):
        with measure("no order") as m:
            m.failure("no order id")
        with measure("retried") as m:
            m.failure("first try")
            m.success()
        with pytest.raises(KeyError), measure("despite") as m:
            m.success()
            raise KeyError("k")
        with measure("as exception") as m:
            m.failure(TimeoutError("slow"))
    assert counts(recorder) == {
        "no order": (1, 1),
        "retried": (1, 0),
        "despite": (1, 0),
        "as exception": (1, 1),
    }


def test_nested_blocks_record_each_level() -> None:
    recorder = Recorder()
    with recording(recorder), pytest.raises(ValueError), measure("checkout flow"):
        with measure("add to cart"):
            pass
        with measure("pay"):
            raise ValueError("card declined")
    assert counts(recorder) == {
        "checkout flow": (1, 1),
        "add to cart": (1, 0),
        "pay": (1, 1),
    }


def test_the_decorator_measures_each_call_as_its_own_block() -> None:
    recorder = Recorder()

    @measure("query")
    def query(x: int) -> int:
        if x < 0:
            raise ValueError(x)
        return x * 2

    with recording(recorder):
        assert [query(1), query(2)] == [2, 4]
        with pytest.raises(ValueError):
            query(-1)
    assert counts(recorder) == {"query": (3, 1)}
    assert query.__name__ == "query"


def test_a_user_stopped_inside_the_block_is_not_a_sample() -> None:
    recorder = Recorder()
    with recording(recorder), pytest.raises(KeyboardInterrupt), measure("cut off"):
        raise KeyboardInterrupt
    assert counts(recorder) == {}


def test_outside_a_load_test_nothing_is_recorded_but_the_block_is_timed() -> None:
    assert not is_recording()
    with measure("helper") as m:
        total = sum(range(1000))
    assert total == 499500
    assert m.elapsed > 0


def test_recording_ends_with_the_load() -> None:
    recorder = Recorder()
    with recording(recorder):
        assert is_recording()
    assert not is_recording()
    with measure("after"):
        pass
    assert counts(recorder) == {}


def test_one_block_object_cannot_be_entered_twice() -> None:
    block = measure("shared")
    with block:
        pass
    with pytest.raises(RuntimeError, match="entered twice"), block:
        pass


@pytest.mark.parametrize("name", ["", None, 42])
def test_a_bad_name_is_a_clear_error(name: object) -> None:
    with pytest.raises(ValueError, match="non-empty string"):
        measure(name)  # type: ignore[arg-type]


def test_long_names_are_bounded() -> None:
    recorder = Recorder()
    with recording(recorder), measure("x" * 10_000):
        pass
    [name] = counts(recorder)
    assert len(name) == MAX_NAME and name.endswith("…")


def sizes(recorder: Recorder) -> dict[str, tuple[int, int, int]]:
    """name -> (samples, failures, content bytes) of everything recorded so far."""
    return {n: (e.hist.total, e.failures, e.size) for n, e in recorder.drain().entries.items()}


def test_the_size_of_a_block_is_recorded_with_its_sample() -> None:
    recorder = Recorder()
    with recording(recorder):
        with measure("ws echo") as m:
            m.size = 512
        with measure("ws echo") as m:
            m.size = 100
        with measure("no size"):
            pass
        with measure("refused") as m:
            m.size = 7
            m.failure("empty reply")
        with pytest.raises(OSError), measure("reset") as m:
            m.size = 3
            raise OSError("reset")
    assert sizes(recorder) == {
        "ws echo": (2, 0, 612),
        "no size": (1, 0, 0),
        "refused": (1, 1, 7),
        "reset": (1, 1, 3),
    }


def test_size_reads_back_and_defaults_to_zero() -> None:
    with measure("x") as m:
        assert m.size == 0
        m.size = 42
    assert m.size == 42


@pytest.mark.parametrize(
    ("size", "error"),
    [
        (-1, ValueError),
        (MAX_SIZE + 1, ValueError),
        ("12", TypeError),
        (1.5, TypeError),
        (True, TypeError),
        (None, TypeError),
    ],
)
def test_a_bad_size_is_a_clear_error_naming_the_block(size: object, error: type) -> None:
    recorder = Recorder()
    with (
        recording(recorder),
        measure("ws echo") as m,
        pytest.raises(error, match=r"measure\('ws echo'\)\.size"),
    ):
        m.size = size  # type: ignore[assignment]
    assert sizes(recorder) == {"ws echo": (1, 0, 0)}  # the block itself still counts


def test_an_int_like_size_is_accepted() -> None:
    class Count:
        def __index__(self) -> int:
            return 9

    recorder = Recorder()
    with recording(recorder), measure("x") as m:
        m.size = Count()  # type: ignore[assignment]
    assert sizes(recorder) == {"x": (1, 0, 9)}


def test_a_decorated_function_stopped_inside_is_not_a_sample_and_failures_are_marked() -> None:
    recorder = Recorder()

    @measure("stopped")
    def stopped() -> None:
        raise KeyboardInterrupt

    @measure("broken")
    def broken() -> None:
        raise LookupError("gone")

    with recording(recorder):
        with pytest.raises(KeyboardInterrupt):
            stopped()
        with pytest.raises(LookupError) as info:
            broken()
    assert getattr(info.value, "_swarm_recorded", False) is True
    snap = recorder.drain()
    assert {n: (e.hist.total, e.failures) for n, e in snap.entries.items()} == {"broken": (1, 1)}
    [group] = snap.errors.values()
    assert (group.kind, group.message) == ("LookupError", "gone")
    assert "raise LookupError" in group.sample


def test_a_block_in_use_cannot_become_a_decorator() -> None:
    with measure("busy") as m, pytest.raises(RuntimeError, match="in use"):
        m(lambda: None)


def test_a_str_subclass_name_is_recorded_as_a_plain_str() -> None:
    class Name(str):
        pass

    recorder = Recorder()
    with recording(recorder), measure(Name("sub")) as m:
        pass
    assert type(m.name) is str
    assert counts(recorder) == {"sub": (1, 0)}


# The decorator's wrapper takes the function's own parameters (a plain call, the cheap one).


def test_the_decorator_binds_every_kind_of_parameter_as_the_function_does() -> None:
    recorder = Recorder()

    def plain(a, b=2, /, c=3, *, d, e=5):  # type: ignore[no-untyped-def]
        return (a, b, c, d, e)

    timed = measure("kinds")(plain)
    with recording(recorder):
        assert timed(1, d=4) == (1, 2, 3, 4, 5)
        assert timed(1, 9, c=8, d=7, e=6) == (1, 9, 8, 7, 6)
        assert timed(1, 9, 8, d=7) == (1, 9, 8, 7, 5)
    assert counts(recorder) == {"kinds": (3, 0)}
    assert timed.__name__ == "plain" and timed.__wrapped__ is plain  # type: ignore[attr-defined]
    assert timed.__defaults__ == (2, 3) and timed.__kwdefaults__ == {"e": 5}


def test_mutable_defaults_stay_the_functions_own_objects() -> None:
    def append(x: int, into: list[int] = []) -> list[int]:  # noqa: B006
        into.append(x)
        return into

    timed = measure("append")(append)
    assert timed(1) is timed(2) is append(3)
    assert append(4) == [1, 2, 3, 4]


def test_parameters_named_like_the_wrappers_own_names_are_passed_through() -> None:
    recorder = Recorder()

    def clash(name, func, start, result, timed, _active, _swarm_func, BaseException):  # type: ignore[no-untyped-def]
        return (name, func, start, result, timed, _active, _swarm_func, BaseException)

    def friendly(
        name: object, start: float, elapsed: float, recorder: object
    ) -> tuple[object, ...]:
        return (name, start, elapsed, recorder)

    with recording(recorder):
        assert measure("clash")(clash)(*range(8)) == tuple(range(8))
        assert measure("friendly")(friendly)("n", 1.0, 2.0, None) == ("n", 1.0, 2.0, None)
        assert measure("friendly")(friendly)(recorder=3, elapsed=2, start=1, name=0) == (0, 1, 2, 3)
    # Recorded under the block's name, never under an argument's value.
    assert counts(recorder) == {"clash": (1, 0), "friendly": (2, 0)}


def test_methods_callables_and_variadic_functions_are_measured_too() -> None:
    recorder = Recorder()

    class Client:
        @measure("method")
        def get(self, key: str) -> str:
            return key.upper()

    class Callable_:
        def __call__(self, x: int) -> int:
            return x + 1

    @measure("variadic")
    def variadic(*args: int, **kwargs: int) -> int:
        return sum(args) + sum(kwargs.values())

    import functools

    with recording(recorder):
        assert Client().get("k") == "K"
        assert measure("callable")(Callable_())(1) == 2
        assert measure("partial")(functools.partial(variadic, 1))(2, x=3) == 6
        assert measure("builtin")(len)("abc") == 3
    assert counts(recorder) == {
        "method": (1, 0),
        "callable": (1, 0),
        "partial": (1, 0),
        "variadic": (1, 0),
        "builtin": (1, 0),
    }


def test_a_call_that_does_not_fit_the_parameters_fails_as_the_function_would() -> None:
    recorder = Recorder()

    def one(x: int) -> int:
        return x

    timed: Any = measure("one")(one)
    calls: list[Callable[[Any], object]] = [lambda f: f(), lambda f: f(1, 2), lambda f: f(y=1)]
    with recording(recorder):
        for call in calls:
            with pytest.raises(TypeError) as bare:
                call(one)
            with pytest.raises(TypeError) as wrapped:
                call(timed)
            assert str(wrapped.value) == str(bare.value)
    # The function never ran: nothing was measured (the iteration fails with the TypeError).
    assert counts(recorder) == {}


def test_the_wrapper_shows_its_lines_in_a_failures_sample_traceback() -> None:
    recorder = Recorder()

    @measure("broken")
    def broken(x: int) -> None:
        raise LookupError(x)

    with recording(recorder), pytest.raises(LookupError):
        broken(1)
    [group] = recorder.drain().errors.values()
    assert "_swarm_func(x)" in group.sample and "raise LookupError(x)" in group.sample


def test_past_the_bound_of_compiled_wrappers_functions_get_the_generic_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pytest_swarm import timing

    monkeypatch.setattr(timing, "MAX_WRAPPERS", len(timing._compiled))
    recorder = Recorder()

    def unusual_parameter_list(zq1: int, zq2: int = 2) -> int:
        return zq1 + zq2

    timed = measure("generic")(unusual_parameter_list)
    assert "zq1" not in timed.__code__.co_varnames  # the (*args, **kwargs) wrapper
    with recording(recorder):
        assert timed(1) == 3 and timed(zq1=1, zq2=5) == 6
    assert counts(recorder) == {"generic": (2, 0)}
    assert len(timing._compiled) <= timing.MAX_WRAPPERS


@pytest.mark.parametrize("size", [0, 1, MAX_SIZE])
def test_sizes_up_to_the_bound_are_accepted(size: int) -> None:
    recorder = Recorder()
    with recording(recorder), measure("x") as m:
        m.size = size
    assert m.size == size
    assert sizes(recorder) == {"x": (1, 0, size)}


@st.composite
def signatures_and_calls(draw: st.DrawFn) -> tuple[str, tuple[int, ...], dict[str, int]]:
    """A parameter list (positional-only, positional, keyword-only parameters, defaults where
    Python allows them) and a call, fitting it or not."""
    counts_ = draw(st.tuples(*[st.integers(0, 2)] * 3))
    names = iter(f"p{i}" for i in range(sum(counts_)))
    defaulted = False

    def param(keyword_only: bool) -> str:
        nonlocal defaulted
        name = next(names)
        # Positional parameters after a defaulted one need a default too.
        default = draw(st.booleans()) or (defaulted and not keyword_only)
        defaulted = defaulted or (default and not keyword_only)
        return f"{name}=-1" if default else name

    posonly, positional, kwonly = counts_
    params = [param(False) for _ in range(posonly)] + (["/"] if posonly else [])
    params += [param(False) for _ in range(positional)]
    params += (["*"] if kwonly else []) + [param(True) for _ in range(kwonly)]
    args = tuple(draw(st.lists(st.integers(0, 9), max_size=7)))
    keywords = draw(
        st.dictionaries(st.sampled_from([f"p{i}" for i in range(7)]), st.integers(0, 9))
    )
    return ", ".join(params), args, keywords


@given(signatures_and_calls())
@settings(max_examples=300, deadline=None)
def test_any_call_gives_what_the_undecorated_function_gives(
    case: tuple[str, tuple[int, ...], dict[str, int]],
) -> None:
    params, args, keywords = case
    namespace: dict[str, Any] = {}
    exec(f"def f({params}):\n    return dict(locals())\n", namespace)
    plain = namespace["f"]
    timed = measure("f")(plain)
    recorder = Recorder()
    with recording(recorder):
        try:
            expected: object = plain(*args, **keywords)
        except TypeError as exc:
            expected = ("TypeError", str(exc))
        try:
            got: object = timed(*args, **keywords)
        except TypeError as exc:
            got = ("TypeError", str(exc))
    assert got == expected
    # A call that binds is one sample; one that does not never ran.
    assert counts(recorder) == ({} if isinstance(expected, tuple) else {"f": (1, 0)})


def test_a_hand_built_code_object_with_odd_variable_names_gets_the_generic_wrapper() -> None:
    def f(x: int) -> int:
        return x

    # Names that are no identifiers must never reach the wrapper's source.
    f.__code__ = f.__code__.replace(co_varnames=("x) or __import__('os') or (x",))
    timed = measure("odd")(f)
    assert timed.__code__.co_flags & inspect.CO_VARARGS
    assert timed(3) == 3
