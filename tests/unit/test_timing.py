"""``measure``: the block is one sample under its name, with catch_response's rules."""

from __future__ import annotations

import pytest

from pytest_swarm import measure
from pytest_swarm.stats.recorder import Recorder
from pytest_swarm.timing import MAX_NAME, MAX_SIZE, is_recording, recording


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
