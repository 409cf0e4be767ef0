"""Objectives (``p95 < 300ms``, ``error_rate < 1%``) and the verdict on a result.

Grammar: ``[<request>] <metric> <op> <value>`` with optional whitespace.

* metric: ``p<N>`` with N in (0, 100] (``p99.9``), ``median`` (= ``p50``), ``mean``,
  ``min``, ``max``, ``error_rate``, ``failures``, ``requests``, ``rps``; and two counts of
  the open model over the whole run, ``dropped`` (iterations never run) and ``late``
  (iterations started past the lateness bound);
* op: ``<``, ``<=``, ``>``, ``>=``, and ``=`` (also ``==``) for counts only;
* value: a time with unit ``us``/``ms``/``s`` for time metrics; ``1%`` or a ratio
  ``0.01`` for ``error_rate``; a non-negative integer for ``failures``/``requests``/
  ``dropped``/``late``; a non-negative number (optionally ``/s``) for ``rps``.

Scopes: the total over all requests (the default), one request name (``request=`` or a
``[name]`` prefix), or whole iterations (``scope="iterations"``, written ``iterations:`` in
front): ``RunResult.iterations``, whose times are corrected for coordinated omission in the
open model.

>>> o = parse_objective("p99.9<0.8s", request="GET /cart")
>>> str(o), o.threshold
('[GET /cart] p99.9 < 800ms', 0.8)
>>> str(parse_objective("p99 < 1s", scope="iterations")), str(parse_objective("dropped == 0"))
('iterations: p99 < 1s', 'dropped = 0')
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "=": operator.eq,
}
# Counts of the whole run (not of a request name or of the iterations): RunResult attributes.
_RUN_COUNTS = ("dropped", "late")
_COUNT_METRICS = ("failures", "requests", *_RUN_COUNTS)
_FIXED_METRICS = ("mean", "min", "max", "error_rate", "failures", "requests", "rps", *_RUN_COUNTS)
_TIME_METRICS = ("mean", "min", "max")
_METRIC_HELP = (
    "p<N> (e.g. p95, p99.9), median, mean, min, max, error_rate, failures, requests, rps, "
    "dropped or late"
)
SCOPES = ("iterations",)
"""Scopes other than the total and a request name (``slo(..., scope="iterations")``)."""
_NUM = r"(\d+(?:\.\d*)?|\.\d+)"
_OBJECTIVE_RE = re.compile(
    r"\s*(?:(?P<scope>iterations)\s*:\s*)?"
    r"(?:\[(?P<request>.*)\]\s*)?(?P<metric>[A-Za-z_][\w.]*)\s*"
    r"(?P<op><=|>=|==|!=|=<|=>|<|>|=)\s*(?P<value>.*?)\s*",
    re.DOTALL,
)
_PERCENTILE_RE = re.compile(r"p(\d+(?:\.\d+)?)")
_TIME_RE = re.compile(rf"{_NUM}\s*(us|µs|ms|s|m|h)")
_TIME_DIVISORS = {"h": 1 / 3600, "m": 1 / 60, "s": 1.0, "ms": 1e3, "us": 1e6, "µs": 1e6}
_PERCENT_RE = re.compile(rf"{_NUM}\s*(%?)")
_RPS_RE = re.compile(rf"{_NUM}\s*(?:/s)?")


class ObjectiveError(ValueError):
    """An invalid objective; the message quotes the text and says what was expected."""


class EntryLike(Protocol):
    """Statistics of one request name (or the total); times in seconds.

    ``count`` is every request, failed ones included; ``error_ratio`` is
    ``failures / count``.
    """

    @property
    def count(self) -> int: ...
    @property
    def failures(self) -> int: ...
    @property
    def error_ratio(self) -> float: ...
    @property
    def rps(self) -> float: ...
    @property
    def min(self) -> float: ...
    @property
    def mean(self) -> float: ...
    @property
    def max(self) -> float: ...
    def percentile(self, q: float) -> float: ...


class ResultLike(Protocol):
    """A load-test result: the total, one entry per request name, the iterations, and the
    open model's counts of dropped and late iterations."""

    @property
    def total(self) -> EntryLike: ...
    def get(self, name: str) -> EntryLike | None: ...
    @property
    def iterations(self) -> EntryLike: ...
    @property
    def dropped(self) -> int: ...
    @property
    def late(self) -> int: ...


def _is_time(metric: str) -> bool:
    return metric in _TIME_METRICS or metric.startswith("p")


def _normalise_percentile(digits: str) -> str:
    whole, _, frac = digits.partition(".")
    frac = frac.rstrip("0")
    return "p" + (whole.lstrip("0") or "0") + (f".{frac}" if frac else "")


def _plain(x: float) -> str:
    """Shortest exact decimal text for a float, without exponent: 300.0 -> '300'."""
    text = format(Decimal(repr(x)), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _exact(value: float, divisor: float) -> str | None:
    """Number text n with float(n) / divisor == value (what parsing computes)."""
    scaled = value * divisor
    for candidate in (_plain(round(scaled, 6)), _plain(scaled)):
        if float(candidate) / divisor == value:
            return candidate
    return None


def _threshold_text(metric: str, threshold: float) -> str:
    if _is_time(metric):
        unit = "s" if threshold >= 1 or threshold == 0 else "ms" if threshold >= 1e-3 else "us"
        number = _exact(threshold, _TIME_DIVISORS[unit])
        return f"{number}{unit}" if number is not None else f"{_plain(threshold)}s"
    if metric == "error_rate":
        percent = _exact(threshold, 100.0)
        return f"{percent}%" if percent is not None else _plain(threshold)
    return _plain(threshold)


@dataclass(frozen=True)
class Objective:
    """One parsed objective.  ``threshold`` is in seconds for time metrics and a
    ratio for ``error_rate``; ``request=None`` means the total over all requests.
    ``scope="iterations"`` measures whole iterations instead of requests.
    ``text`` (the original wording) takes no part in equality.
    """

    metric: str
    op: str
    threshold: float
    request: str | None = None
    text: str = field(default="", compare=False)
    implicit: bool = False
    scope: str | None = None

    def __post_init__(self) -> None:
        match = _PERCENTILE_RE.fullmatch(self.metric)
        valid = self.metric in _FIXED_METRICS or (
            match is not None
            and _normalise_percentile(match.group(1)) == self.metric
            and 0 < float(match.group(1)) <= 100
        )
        if not valid:
            raise ObjectiveError(f"invalid metric {self.metric!r}: expected {_METRIC_HELP}")
        if self.op not in _OPS:
            raise ObjectiveError(f"invalid operator {self.op!r}: expected <, <=, >, >= or =")
        if self.op == "=" and self.metric not in _COUNT_METRICS:
            raise ObjectiveError(
                f"'=' compares counts ({', '.join(_COUNT_METRICS)}); use <=, >=, < or > "
                f"for {self.metric}"
            )
        if self.scope is not None and self.scope not in SCOPES:
            raise ObjectiveError(
                f"invalid scope {self.scope!r}: expected {' or '.join(SCOPES)} (or none)"
            )
        if self.scope is not None and self.request is not None:
            raise ObjectiveError(
                "an objective is scoped to a request name or to the iterations, not both"
            )
        if self.metric in _RUN_COUNTS and (self.scope or self.request):
            raise ObjectiveError(
                f"{self.metric} counts iterations of the whole run: it takes no request name "
                "or scope"
            )
        limit = 1.0 if self.metric == "error_rate" else math.inf
        if not 0 <= self.threshold <= limit or math.isinf(self.threshold):
            raise ObjectiveError(f"invalid threshold {self.threshold!r} for {self.metric}")
        if self.metric in _COUNT_METRICS and not float(self.threshold).is_integer():
            raise ObjectiveError(f"invalid threshold {self.threshold!r}: {self.metric} counts")

    def __str__(self) -> str:
        """Canonical text, which :func:`parse_objective` reads back to an equal objective."""
        scope = "" if self.request is None else f"[{self.request}] "
        if self.scope is not None:
            scope = f"{self.scope}: "
        return f"{scope}{self.metric} {self.op} {_threshold_text(self.metric, self.threshold)}"


def _parse_value(metric: str, value: str, fail: Callable[[str], ObjectiveError]) -> float:
    if _is_time(metric):
        match = _TIME_RE.fullmatch(value)
        if match is not None:
            return float(match.group(1)) / _TIME_DIVISORS[match.group(2)]
        if re.fullmatch(_NUM, value):
            hint = f"e.g. '{value}ms' or '{value}s'; a bare number is ambiguous"
            raise fail(f"expected a time with a unit (us, ms, s, m or h), {hint}")
        raise fail("expected a time >= 0 with unit us, ms, s, m or h, e.g. '300ms'")
    if metric == "error_rate":
        match = _PERCENT_RE.fullmatch(value)
        if match is None:
            raise fail("expected a percentage like '1%' or a ratio in [0, 1] like '0.01'")
        number, percent = float(match.group(1)), match.group(2) == "%"
        if percent and number > 100:
            raise fail("expected a percentage in [0%, 100%]")
        if not percent and number > 1:
            raise fail(f"expected a ratio in [0, 1] or a percentage; did you mean '{value}%'?")
        return number / 100 if percent else number
    if metric in _COUNT_METRICS:
        if not re.fullmatch(r"\d+", value):
            raise fail(f"expected a non-negative integer count of {metric}, e.g. '0'")
        return float(value)
    match = _RPS_RE.fullmatch(value)
    if match is None:
        raise fail("expected a non-negative number of requests per second, e.g. '100'")
    return float(match.group(1))


def parse_objective(text: str, request: str | None = None, scope: str | None = None) -> Objective:
    """Parse ``<metric> <op> <value>``, optionally scoped to one request name
    (either by ``request`` or by a ``[name]`` prefix, as :meth:`Objective.__str__` writes)
    or to the iterations (``scope="iterations"`` or an ``iterations:`` prefix).

    >>> o = parse_objective("median <= 0.25s")
    >>> o.metric, o.op, o.threshold, o.request, o.text
    ('p50', '<=', 0.25, None, 'median <= 0.25s')
    >>> parse_objective("error_rate<0.5%").threshold
    0.005
    >>> try:
    ...     parse_objective("p95 < 300")
    ... except ObjectiveError as exc:
    ...     print(exc)  # doctest: +ELLIPSIS
    invalid objective 'p95 < 300': expected a time with a unit (us, ms, s, m or h), ...
    """

    def fail(expected: str) -> ObjectiveError:
        return ObjectiveError(f"invalid objective {text!r}: {expected}")

    if not isinstance(text, str):
        raise ObjectiveError(f"invalid objective {text!r}: expected a string like 'p95 < 300ms'")
    match = _OBJECTIVE_RE.fullmatch(text)
    if match is None:
        raise fail("expected '<metric> <op> <value>', e.g. 'p95 < 300ms' or 'error_rate < 1%'")
    named = match.group("request")
    if named is not None:
        if not named:
            raise fail("expected a request name inside [...]")
        if request is not None and request != named:
            raise fail(f"scoped to [{named}] but given for request {request!r}")
        request = named
    if match.group("scope") is not None:
        scope = match.group("scope")
    if scope is not None and scope not in SCOPES:
        raise fail(f"unknown scope {scope!r}; expected {' or '.join(SCOPES)}")
    if scope is not None and request is not None:
        raise fail("scoped to a request name and to the iterations: choose one")
    op = match.group("op")
    if op == "==":
        op = "="
    if op not in _OPS:
        raise fail(f"unsupported operator {op!r}; expected <, <=, >, >= or =")
    metric = match.group("metric").lower()
    percentile = _PERCENTILE_RE.fullmatch(metric)
    if metric == "median":
        metric = "p50"
    elif percentile is not None:
        metric = _normalise_percentile(percentile.group(1))
        if not 0 < float(percentile.group(1)) <= 100:
            raise fail(
                f"percentile {metric!r} out of range; expected p<N> with N in (0, 100], e.g. p99.9"
            )
    elif metric not in _FIXED_METRICS:
        raise fail(f"unknown metric {match.group('metric')!r}; expected {_METRIC_HELP}")
    if op == "=" and metric not in _COUNT_METRICS:
        raise fail(
            f"'=' compares counts ({', '.join(_COUNT_METRICS)}); expected <, <=, > or >= "
            f"for {metric}"
        )
    if metric in _RUN_COUNTS and (scope is not None or request is not None):
        raise fail(f"{metric} counts iterations of the whole run: it takes no request or scope")
    threshold = _parse_value(metric, match.group("value"), fail)
    if math.isinf(threshold):
        raise fail("expected a finite value")
    return Objective(metric, op, threshold, request, text, scope=scope)


def _entry(objective: Objective, result: ResultLike) -> tuple[EntryLike | None, str]:
    """The entry an objective is measured on, or None and why there is none."""
    if objective.scope == "iterations":
        entry: EntryLike | None = result.iterations
        why = "no iteration completed"
    elif objective.request is None:
        entry = result.total
        why = "no requests recorded"
    else:
        entry = result.get(objective.request)
        why = f"no samples for request {objective.request!r}"
        if entry is None:
            return None, why
    assert entry is not None
    if entry.count == 0 and (_is_time(objective.metric) or objective.metric == "error_rate"):
        return None, why
    return entry, ""


_ATTRIBUTES = {"error_rate": "error_ratio", "requests": "count"}


def _measure(objective: Objective, result: ResultLike) -> tuple[float | None, str]:
    if objective.metric in _RUN_COUNTS:
        return float(getattr(result, objective.metric)), ""
    entry, why = _entry(objective, result)
    if entry is None:
        return None, why
    metric = objective.metric
    if _PERCENTILE_RE.fullmatch(metric):
        return float(entry.percentile(float(metric[1:]))), ""
    return float(getattr(entry, _ATTRIBUTES.get(metric, metric))), ""


def measure(objective: Objective, result: ResultLike) -> float | None:
    """The measured value of the objective's metric (seconds for times), or None
    when the scoped request has no entry (or times/error rate have no sample).

    Time metrics read the percentile as the result returns it: for HDR
    histograms, the upper bound of the bucket holding the value.
    """
    return _measure(objective, result)[0]


def format_seconds(s: float) -> str:
    """Human-readable time with 3 significant digits.

    >>> format_seconds(0.412), format_seconds(0.0002), format_seconds(1.5), format_seconds(4321)
    ('412ms', '200us', '1.5s', '4321s')
    """
    if s == 0 or not math.isfinite(s):
        return f"{s:g}s"
    if s < 0:
        return "-" + format_seconds(-s)
    for unit, factor in (("us", 1e6), ("ms", 1e3)):
        if float(f"{s * factor:.3g}") < 1000:
            return f"{s * factor:.3g}{unit}"
    return f"{s:.3g}s" if float(f"{s:.3g}") < 1000 else f"{s:.0f}s"


def format_ratio(r: float) -> str:
    """A ratio as a percentage.

    >>> format_ratio(0.002), format_ratio(0), format_ratio(0.00001), format_ratio(1)
    ('0.20%', '0%', '0.001%', '100%')
    """
    percent = float(r) * 100
    if percent == 0 or percent.is_integer():
        return f"{percent:.0f}%"
    return f"{percent:.2g}%" if abs(percent) < 0.01 else f"{percent:.2f}%"


def format_measured(metric: str, value: float) -> str:
    """A measured value in its metric's unit, as the verdict table shows it.

    >>> format_measured("p95", 0.0172), format_measured("error_rate", 0.018)
    ('17.2ms', '1.80%')
    """
    if _is_time(metric):
        return format_seconds(value)
    if metric == "error_rate":
        return format_ratio(value)
    if metric == "rps":
        return f"{value:.3g}/s" if value < 1000 else f"{value:.0f}/s"
    return f"{value:.0f}"


@dataclass(frozen=True)
class Outcome:
    """An objective, its measured value and whether it was met.  ``detail``
    explains a missing measurement (e.g. "no samples for request 'GET /cart'")."""

    objective: Objective
    measured: float | None
    met: bool
    detail: str = ""

    def label(self) -> str:
        """The objective as shown in the verdict table."""
        if self.objective.implicit and self.objective.op == "<=":
            return f"{self.objective.metric} = {_plain(self.objective.threshold)}"
        return str(self.objective)


@dataclass(frozen=True)
class Verdict:
    """All outcomes of a load test's objectives. ``stopped`` says why the load was stopped
    before its end (an abort rule, the dashboard), "" when it ran its course: a stopped load
    never meets its objectives, whatever the figures it left.

    Example:
        >>> o = Outcome(parse_objective("p95 < 300ms"), 0.412, False)
        >>> print(Verdict((o,), stopped="aborted 10.0s into the load").table())
          STOPPED aborted 10.0s into the load
          MISSED  p95 < 300ms  measured 412ms
    """

    outcomes: tuple[Outcome, ...]
    stopped: str = ""

    @property
    def met(self) -> bool:
        return not self.stopped and all(outcome.met for outcome in self.outcomes)

    @property
    def missed(self) -> list[Outcome]:
        return [outcome for outcome in self.outcomes if not outcome.met]

    def table(self) -> str:
        """One line per objective, e.g. ``  MISSED  p95 < 300ms    measured 412ms``."""
        width = max((len(outcome.label()) for outcome in self.outcomes), default=0)
        lines = [f"  STOPPED {self.stopped}"] if self.stopped else []
        for outcome in self.outcomes:
            shown = outcome.detail
            if outcome.measured is not None:
                shown = f"measured {format_measured(outcome.objective.metric, outcome.measured)}"
            status = "met" if outcome.met else "MISSED"
            line = f"  {status:<6}  {outcome.label():<{width}}  {shown}"
            if outcome.objective.implicit:
                line += "  (implicit: no error_rate objective)"
            lines.append(line.rstrip())
        return "\n".join(lines)


IMPLICIT_NO_FAILURES = Objective("failures", "<=", 0.0, None, "failures <= 0", implicit=True)
"""Added by :func:`evaluate` when no objective mentions ``error_rate`` or ``failures``."""


def evaluate(objectives: Sequence[Objective], result: ResultLike) -> Verdict:
    """Judge a result against objectives.

    Unless some objective (any scope) is on ``error_rate`` or ``failures``,
    ``failures <= 0`` on the total is appended (an error is an error unless the
    user tolerates some).  ``<``/``>`` are strict, ``<=``/``>=`` inclusive.  An
    objective with nothing to measure is missed, with a ``detail``.
    """
    checked = list(objectives)
    if not any(o.metric in ("error_rate", "failures") for o in checked):
        checked.append(IMPLICIT_NO_FAILURES)
    outcomes = []
    for objective in checked:
        value, why = _measure(objective, result)
        if value is None:
            outcomes.append(Outcome(objective, None, False, why))
        else:
            met = _OPS[objective.op](value, objective.threshold)
            outcomes.append(Outcome(objective, value, met))
    return Verdict(tuple(outcomes))
