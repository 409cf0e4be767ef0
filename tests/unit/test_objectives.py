"""Unit tests for pytest_swarm.objectives."""

from __future__ import annotations

import doctest
import math
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import pytest_swarm.objectives
from pytest_swarm.objectives import (
    Objective,
    ObjectiveError,
    Outcome,
    ResultLike,
    Verdict,
    evaluate,
    format_ratio,
    format_seconds,
    measure,
    parse_objective,
)


@dataclass(frozen=True)
class Entry:
    count: int = 100
    failures: int = 0
    rps: float = 10.0
    min: float = 0.010
    mean: float = 0.100
    max: float = 1.000
    percentiles: dict[float, float] = field(default_factory=dict)

    @property
    def error_ratio(self) -> float:
        return self.failures / self.count if self.count else 0.0

    def percentile(self, q: float) -> float:
        return self.percentiles[q]


@dataclass(frozen=True)
class Result:
    total: Entry = field(default_factory=Entry)
    entries: dict[str, Entry] = field(default_factory=dict)
    iterations: Entry = field(default_factory=Entry)
    dropped: int = 0
    late: int = 0

    def get(self, name: str) -> Entry | None:
        return self.entries.get(name)


def check_protocol(result: ResultLike) -> ResultLike:  # mypy: a dataclass satisfies it
    return result


P = {50.0: 0.080, 95.0: 0.412, 99.0: 0.900, 99.9: 1.5, 100.0: 1.0}
RESULT = Result(
    total=Entry(count=1000, failures=2, rps=123.4, percentiles=P),
    entries={"GET /cart": Entry(count=10, percentiles={99.0: 0.7})},
)
check_protocol(RESULT)


def test_doctests() -> None:
    assert doctest.testmod(pytest_swarm.objectives).failed == 0


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "metric", "op", "threshold"),
    [
        ("p95<300ms", "p95", "<", 0.3),
        ("p95 < 300ms", "p95", "<", 0.3),
        ("  p95   <=   300 ms  ", "p95", "<=", 0.3),
        ("p99.9 > 1.5s", "p99.9", ">", 1.5),
        ("p100 >= 250us", "p100", ">=", 0.00025),
        ("p0.1 < 1s", "p0.1", "<", 1.0),
        ("p050 < 1s", "p50", "<", 1.0),
        ("p99.90 < 1s", "p99.9", "<", 1.0),
        ("P95 < 1s", "p95", "<", 1.0),
        ("median < 80ms", "p50", "<", 0.08),
        ("mean < .5s", "mean", "<", 0.5),
        ("min > 0s", "min", ">", 0.0),
        ("max <= 2s", "max", "<=", 2.0),
        ("max <= 2µs", "max", "<=", 2e-6),
        ("error_rate < 1%", "error_rate", "<", 0.01),
        ("error_rate<0.5%", "error_rate", "<", 0.005),
        ("error_rate < 0.01", "error_rate", "<", 0.01),
        ("error_rate <= 100%", "error_rate", "<=", 1.0),
        ("error_rate <= 1", "error_rate", "<=", 1.0),
        ("error_rate <= 0", "error_rate", "<=", 0.0),
        ("failures <= 0", "failures", "<=", 0.0),
        ("failures < 10", "failures", "<", 10.0),
        ("requests >= 1000", "requests", ">=", 1000.0),
        ("rps > 100", "rps", ">", 100.0),
        ("rps >= 12.5/s", "rps", ">=", 12.5),
        ("rps >= 0", "rps", ">=", 0.0),
    ],
)
def test_parse(text: str, metric: str, op: str, threshold: float) -> None:
    objective = parse_objective(text)
    assert (objective.metric, objective.op, objective.request) == (metric, op, None)
    assert objective.threshold == pytest.approx(threshold, rel=1e-12)
    assert objective.text == text
    assert not objective.implicit


def test_exact_thresholds() -> None:
    assert parse_objective("p95 < 300ms").threshold == 0.3
    assert parse_objective("p95 < 1ms").threshold == 0.001
    assert parse_objective("error_rate < 1%").threshold == 0.01


def test_parse_scoped() -> None:
    objective = parse_objective("p99 < 800ms", request="GET /cart")
    assert objective.request == "GET /cart"
    assert str(objective) == "[GET /cart] p99 < 800ms"
    assert parse_objective("[GET /cart] p99<800ms") == objective
    assert parse_objective("[GET /cart] p99 < 0.8s", request="GET /cart") == objective


def test_parse_scope_conflict() -> None:
    with pytest.raises(ObjectiveError, match=r"'\[a\] p95 < 1s'.*\[a\].*'b'"):
        parse_objective("[a] p95 < 1s", request="b")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("p95 < 300", "a bare number is ambiguous"),
        ("mean < 1", "'1ms' or '1s'"),
        ("p95 < 1d", "unit us, ms, s, m or h"),
        ("p95 < -1ms", "time >= 0"),
        ("p95 < 1e400s", "time"),
        ("p95 < " + "9" * 400 + "s", "finite"),
        ("p0 < 1s", "(0, 100]"),
        ("p100.1 < 1s", "(0, 100]"),
        ("p-5 < 1s", "<metric> <op> <value>"),
        ("p < 1s", "unknown metric 'p'"),
        ("p95.5.5 < 1s", "unknown metric"),
        ("latency < 1s", "unknown metric 'latency'"),
        ("Latency < 1s", "unknown metric 'Latency'"),
        ("p95 == 1s", "'=' compares counts"),
        ("p95 = 1s", "'=' compares counts"),
        ("p95 != 1s", "unsupported operator '!='"),
        ("p95 =< 1s", "unsupported operator '=<'"),
        ("error_rate < 5", "did you mean '5%'"),
        ("error_rate < 101%", "[0%, 100%]"),
        ("error_rate < -1%", "percentage"),
        ("error_rate < 1ms", "percentage"),
        ("failures < 1.5", "integer"),
        ("failures < -1", "integer"),
        ("requests > many", "integer"),
        ("rps > fast", "requests per second"),
        ("rps > -1", "requests per second"),
        ("", "<metric> <op> <value>"),
        ("p95", "<metric> <op> <value>"),
        ("p95 <", "time"),
        ("< 1s", "<metric> <op> <value>"),
        ("[] p95 < 1s", "request name"),
    ],
)
def test_parse_rejects(text: str, expected: str) -> None:
    with pytest.raises(ObjectiveError) as info:
        parse_objective(text)
    message = str(info.value)
    assert message.startswith(f"invalid objective {text!r}: ")
    assert expected in message
    assert "expected" in message


def test_parse_rejects_non_string() -> None:
    with pytest.raises(ObjectiveError, match="300"):
        parse_objective(300)  # type: ignore[arg-type]


def test_objective_error_is_value_error() -> None:
    assert issubclass(ObjectiveError, ValueError)


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("p95<300ms", "p95 < 300ms"),
        ("p95<0.3s", "p95 < 300ms"),
        ("median<=1500ms", "p50 <= 1.5s"),
        ("p99.9 > 0.0005s", "p99.9 > 500us"),
        ("max < 0.25us", "max < 0.25us"),
        ("min >= 0ms", "min >= 0s"),
        ("mean < 120s", "mean < 120s"),
        ("error_rate < 0.01", "error_rate < 1%"),
        ("error_rate<0.5%", "error_rate < 0.5%"),
        ("failures<=0", "failures <= 0"),
        ("requests >= 1000", "requests >= 1000"),
        ("rps>12.5/s", "rps > 12.5"),
    ],
)
def test_str_is_canonical(text: str, canonical: str) -> None:
    assert str(parse_objective(text)) == canonical


def test_text_takes_no_part_in_equality() -> None:
    assert parse_objective("p95<300ms") == parse_objective("p95 < 0.3s")
    assert parse_objective("median < 1s") == parse_objective("p50 < 1000ms")
    assert parse_objective("p95 < 1s") != parse_objective("p95 < 1s", request="x")


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"metric": "median"}, "invalid metric 'median'"),
        ({"metric": "p95.0"}, "invalid metric 'p95.0'"),
        ({"metric": "p101"}, "invalid metric 'p101'"),
        ({"metric": "latency"}, "invalid metric 'latency'"),
        ({"op": "=="}, "invalid operator '=='"),
        ({"threshold": -1.0}, "invalid threshold -1.0"),
        ({"threshold": math.inf}, "invalid threshold inf"),
        ({"threshold": math.nan}, "invalid threshold nan"),
        ({"metric": "error_rate", "threshold": 2.0}, "invalid threshold 2.0"),
        ({"metric": "failures", "threshold": 1.5}, "invalid threshold 1.5"),
    ],
)
def test_objective_validates_fields(kwargs: dict[str, Any], expected: str) -> None:
    fields: dict[str, Any] = {"metric": "p95", "op": "<", "threshold": 1.0} | kwargs
    with pytest.raises(ObjectiveError, match=f"^{expected}"):
        Objective(**fields)


# --------------------------------------------------------------------------- round trips

percentile_metrics = st.decimals(min_value=Decimal("0.001"), max_value=100, places=3).map(
    lambda d: "p" + format(d.normalize(), "f")
)
time_metrics = st.sampled_from(["mean", "min", "max"]) | percentile_metrics
requests = st.none() | st.text(min_size=1, max_size=20)
ops = st.sampled_from(["<", "<=", ">", ">="])


@st.composite
def objectives(draw: st.DrawFn) -> Objective:
    kind = draw(st.sampled_from(["time", "error_rate", "count", "rps"]))
    if kind == "time":
        metric = draw(time_metrics)
        threshold = draw(st.floats(min_value=0, max_value=1e6))
    elif kind == "error_rate":
        metric = kind
        threshold = draw(st.floats(min_value=0, max_value=1))
    elif kind == "count":
        metric = draw(st.sampled_from(["failures", "requests"]))
        threshold = float(draw(st.integers(min_value=0, max_value=2**53)))
    else:
        metric = kind
        threshold = draw(st.floats(min_value=0, max_value=1e12))
    return Objective(metric, draw(ops), threshold, draw(requests))


@given(objectives())
def test_str_parses_back_to_equal_objective(objective: Objective) -> None:
    assert parse_objective(str(objective)) == objective


@given(objectives())
def test_str_parses_back_with_request_argument(objective: Objective) -> None:
    again = parse_objective(str(objective), request=objective.request)
    assert again == objective


number_text = st.decimals(min_value=0, max_value=10**6, places=4).map(lambda d: format(d, "f"))
value_texts = {
    "time": st.tuples(number_text, st.sampled_from(["us", "ms", "s", " ms"])).map("".join),
    "error_rate": st.decimals(min_value=0, max_value=100, places=3).map(lambda d: f"{d}%"),
    "count": st.integers(min_value=0, max_value=10**9).map(str),
    "rps": number_text,
}


@st.composite
def objective_texts(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(sorted(value_texts)))
    metric = {
        "time": time_metrics | st.just("median"),
        "error_rate": st.just("error_rate"),
        "count": st.sampled_from(["failures", "requests"]),
        "rps": st.just("rps"),
    }[kind]
    space = st.sampled_from(["", " ", "  "])
    parts = [draw(metric), draw(space), draw(ops), draw(space), draw(value_texts[kind])]
    return "".join(parts)


@given(objective_texts())
def test_text_round_trip(text: str) -> None:
    objective = parse_objective(text)
    assert objective.text == text
    assert parse_objective(str(objective)) == objective
    assert str(parse_objective(str(objective))) == str(objective)


# --------------------------------------------------------------------------- measure


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("p95 < 1s", 0.412),
        ("median < 1s", 0.080),
        ("p99.9 < 1s", 1.5),
        ("mean < 1s", 0.100),
        ("min < 1s", 0.010),
        ("max < 1s", 1.000),
        ("error_rate < 1%", 0.002),
        ("failures <= 0", 2.0),
        ("requests > 0", 1000.0),
        ("rps > 0", 123.4),
        ("[GET /cart] p99 < 1s", 0.7),
        ("[GET /cart] requests > 1", 10.0),
    ],
)
def test_measure(text: str, expected: float) -> None:
    assert measure(parse_objective(text), RESULT) == pytest.approx(expected)


def test_measure_missing_request_is_none() -> None:
    assert measure(parse_objective("p95 < 1s", request="nope"), RESULT) is None
    assert measure(parse_objective("failures <= 0", request="nope"), RESULT) is None


def test_measure_empty_entry() -> None:
    empty = Result(total=Entry(count=0, rps=0.0))
    assert measure(parse_objective("p95 < 1s"), empty) is None
    assert measure(parse_objective("error_rate < 1%"), empty) is None
    assert measure(parse_objective("requests >= 1"), empty) == 0.0
    assert measure(parse_objective("failures <= 0"), empty) == 0.0


# --------------------------------------------------------------------------- evaluate


def outcome(verdict: Verdict, text: str) -> Outcome:
    (found,) = [o for o in verdict.outcomes if str(o.objective) == text]
    return found


def test_implicit_failures_objective_added() -> None:
    verdict = evaluate([parse_objective("p95 < 500ms")], RESULT)
    assert len(verdict.outcomes) == 2
    implicit = verdict.outcomes[-1]
    assert implicit.objective.implicit
    assert (implicit.objective.metric, implicit.objective.op) == ("failures", "<=")
    assert implicit.objective.threshold == 0 and implicit.objective.request is None
    assert implicit.measured == 2.0 and not implicit.met
    assert verdict.outcomes[0].met
    assert not verdict.met
    assert verdict.missed == [implicit]


def test_implicit_objective_alone() -> None:
    verdict = evaluate([], Result())
    assert [o.objective.implicit for o in verdict.outcomes] == [True]
    assert verdict.met


@pytest.mark.parametrize("tolerance", ["error_rate < 1%", "failures < 5", "[x] failures <= 0"])
def test_no_implicit_objective_when_errors_are_tolerated(tolerance: str) -> None:
    result = Result(total=RESULT.total, entries={"x": Entry()})
    verdict = evaluate([parse_objective("p95 < 500ms"), parse_objective(tolerance)], result)
    assert len(verdict.outcomes) == 2
    assert not any(o.objective.implicit for o in verdict.outcomes)
    assert verdict.met


@pytest.mark.parametrize(
    ("op", "threshold", "met"),
    [
        ("<", 0.412, False),
        ("<=", 0.412, True),
        (">", 0.412, False),
        (">=", 0.412, True),
        ("<", 0.413, True),
        (">", 0.411, True),
    ],
)
def test_comparison_strictness(op: str, threshold: float, met: bool) -> None:
    objective = Objective("p95", op, threshold)
    verdict = evaluate([objective, parse_objective("failures < 10")], RESULT)
    assert verdict.outcomes[0].met is met
    assert verdict.outcomes[0].measured == 0.412


def test_missing_request_is_missed_with_detail() -> None:
    verdict = evaluate([parse_objective("p99 < 800ms", request="GET /nope")], Result())
    missed = verdict.outcomes[0]
    assert (missed.met, missed.measured) == (False, None)
    assert missed.detail == "no samples for request 'GET /nope'"
    assert verdict.outcomes[1].met  # the implicit one, on an error-free total
    assert not verdict.met


def test_no_requests_at_all_is_missed() -> None:
    verdict = evaluate([parse_objective("p95 < 1s")], Result(total=Entry(count=0)))
    assert verdict.outcomes[0].detail == "no requests recorded"
    assert not verdict.met


def test_verdict_table() -> None:
    result = Result(
        total=Entry(count=1000, failures=2, percentiles=P),
        entries={"GET /cart": Entry(count=10, percentiles={99.0: 0.7})},
    )
    verdict = evaluate(
        [
            parse_objective("p95 < 300ms"),
            parse_objective("error_rate < 1%"),
            parse_objective("p99 < 800ms", request="GET /cart"),
            parse_objective("p99 < 800ms", request="GET /gone"),
            parse_objective("rps > 5"),
        ],
        result,
    )
    lines = verdict.table().splitlines()
    assert lines == [
        "  MISSED  p95 < 300ms              measured 412ms",
        "  met     error_rate < 1%          measured 0.20%",
        "  met     [GET /cart] p99 < 800ms  measured 700ms",
        "  MISSED  [GET /gone] p99 < 800ms  no samples for request 'GET /gone'",
        "  met     rps > 5                  measured 10/s",
    ]


def test_table_shows_implicit_objective() -> None:
    verdict = evaluate([parse_objective("requests >= 10")], Result(total=Entry(failures=3)))
    assert verdict.table().splitlines() == [
        "  met     requests >= 10  measured 100",
        "  MISSED  failures = 0    measured 3  (implicit: no error_rate objective)",
    ]


def test_empty_verdict() -> None:
    verdict = Verdict(())
    assert verdict.met and verdict.missed == [] and verdict.table() == ""


# --------------------------------------------------------------------------- formatting


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.412, "412ms"),
        (0.0412, "41.2ms"),
        (0.00412, "4.12ms"),
        (0.0002, "200us"),
        (1.5e-7, "0.15us"),
        (1.5, "1.5s"),
        (12.345, "12.3s"),
        (999.4, "999s"),
        (4321.0, "4321s"),
        (0.9996, "1s"),
        (0.0009996, "1ms"),
        (-0.3, "-300ms"),
        (math.inf, "infs"),
    ],
)
def test_format_seconds(seconds: float, text: str) -> None:
    assert format_seconds(seconds) == text


@pytest.mark.parametrize(
    ("ratio", "text"),
    [
        (0, "0%"),
        (0.002, "0.20%"),
        (0.01, "1%"),
        (0.1234, "12.34%"),
        (1, "100%"),
        (0.00001, "0.001%"),
        (0.5, "50%"),
    ],
)
def test_format_ratio(ratio: float, text: str) -> None:
    assert format_ratio(ratio) == text


@given(st.floats(min_value=1e-9, max_value=1e5))
def test_format_seconds_is_close(seconds: float) -> None:
    text = format_seconds(seconds)
    unit = next(u for u in ("us", "ms", "s") if text.endswith(u))
    value = float(text[: -len(unit)]) / {"us": 1e6, "ms": 1e3, "s": 1.0}[unit]
    assert value == pytest.approx(seconds, rel=5e-3)
    digits = text[: -len(unit)].replace(".", "").lstrip("0")
    assert len(digits) <= max(3, len(f"{seconds:.0f}"))  # 3 significant digits


# --------------------------------------------------------------------------- open-model scopes


def test_iteration_scope_measures_whole_iterations_and_reads_back() -> None:
    result = Result(
        total=Entry(percentiles={99.0: 0.005}), iterations=Entry(percentiles={99.0: 1.2})
    )
    objective = parse_objective("p99 < 1s", scope="iterations")
    assert objective == parse_objective(str(objective)) and str(objective) == "iterations: p99 < 1s"
    assert measure(objective, result) == 1.2
    assert not evaluate([objective], result).met
    assert evaluate([parse_objective("p99 < 1s")], result).met  # the requests' own p99


def test_iteration_scope_with_nothing_completed_is_missed_with_a_reason() -> None:
    [outcome, _] = evaluate(
        [parse_objective("p95 < 1s", scope="iterations")], Result(iterations=Entry(count=0))
    ).outcomes
    assert not outcome.met and outcome.detail == "no iteration completed"


@pytest.mark.parametrize(
    ("text", "dropped", "late", "met"),
    [
        ("dropped = 0", 0, 5, True),
        ("dropped == 0", 1, 0, False),
        ("late < 10", 0, 9, True),
        ("late < 10", 0, 10, False),
        ("dropped <= 3", 3, 0, True),
    ],
)
def test_dropped_and_late_read_the_run_counts(
    text: str, dropped: int, late: int, met: bool
) -> None:
    result = Result(dropped=dropped, late=late)
    [outcome, *_] = evaluate([parse_objective(text)], result).outcomes
    assert outcome.met is met
    assert outcome.measured == float(dropped if text.startswith("dropped") else late)


@pytest.mark.parametrize(
    ("text", "kwargs", "expected"),
    [
        ("dropped = 0.5", {}, "integer"),
        ("[GET /] dropped = 0", {}, "whole run"),
        ("late < 1", {"scope": "iterations"}, "whole run"),
        ("p95 < 1s", {"scope": "requests"}, "unknown scope"),
        ("p95 < 1s", {"scope": "iterations", "request": "GET /"}, "choose one"),
        ("error_rate = 1%", {}, "'=' compares counts"),
    ],
)
def test_scope_and_count_errors_say_what_was_expected(
    text: str, kwargs: dict[str, str], expected: str
) -> None:
    with pytest.raises(ObjectiveError, match="invalid objective") as info:
        parse_objective(text, **kwargs)
    assert expected in str(info.value)


def test_a_stopped_verdict_is_never_met_and_says_why_first() -> None:
    verdict = evaluate([parse_objective("requests >= 1"), parse_objective("failures <= 5")], RESULT)
    stopped = Verdict(verdict.outcomes, stopped="stopped from the dashboard")
    assert verdict.met and not stopped.met
    assert stopped.table().splitlines()[0] == "  STOPPED stopped from the dashboard"
