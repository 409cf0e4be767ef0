"""Baselines: store a session's load-test results, compare a later run with them, fail on a
regression (``--swarm-autosave``, ``--swarm-save``, ``--swarm-compare``, ``--swarm-compare-fail``).

A comparison works on the JSON documents of :mod:`pytest_swarm.report.files` (full HDR
histograms inside), so it needs no engine. For every metric it reports the change and whether
the change is larger than the noise the two runs' histograms imply (see ``docs/numbers.md``):

- a percentile: the distribution-free 95 % confidence interval of each run's percentile (the
  values at ranks ``n q ± 1.96 sqrt(n q (1 - q))``, HDR bucket bounds included); the change
  is beyond noise when the two intervals do not overlap;
- the mean: ``|a - b| > 1.96 sqrt(sa²/na + sb²/nb)`` (standard errors from the histograms);
- requests/s: counts as Poisson, ``|a - b| > 1.96 sqrt(na/da² + nb/db²)``;
- error_rate: binomial, ``|a - b| > 1.96 sqrt(pa(1-pa)/na + pb(1-pb)/nb)``.

A comparison is *invalid* (reported, never failing a test) when the load differs. Each document
carries the settings that define its load (:func:`load_settings`: the model, users or
max_users, the spawn rate, the arrival rate or its stages' peak, whether it has stages or a
shape, the duration, the iteration cap); any of them different makes the comparison invalid, as
does a measured duration more than 10 % apart (a run stopped early). A document saved before
the settings were stored compares users and the measured duration only, and says the settings
are unknown.

Example:
    >>> rule = parse_rule("p95:10%")
    >>> rule.metric, rule.limit
    ('p95', 0.1)
    >>> worse("rps", 100.0, 80.0), worse("p95", 0.5, 0.75)
    (0.2, 0.5)
"""

from __future__ import annotations

import json
import math
import re
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hdrh.histogram import HdrHistogram

from .files import write_report_file

if TYPE_CHECKING:
    from ..spec import LoadSpec

FORMAT = 1
MAX_FILE_BYTES = 64 * 1024 * 1024  # a stored file is hostile input: bounded before parsing
MAX_TESTS = 10_000
MAX_HISTOGRAM_CHARS = 4 * 1024 * 1024
Z = 1.96  # 95 % two-sided
DURATION_TOLERANCE = 0.10
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_RULE = re.compile(r"^\s*(p\d+(?:\.\d+)?|mean|rps|error_rate)\s*:\s*(\d+(?:\.\d+)?)\s*%\s*$")


class CompareError(ValueError):
    """A bad rule, a baseline that cannot be found or read; the message says which."""


@dataclass(frozen=True)
class Rule:
    """``metric:limit%``: fail when ``metric`` got worse by more than ``limit`` (a ratio)."""

    metric: str
    limit: float

    def __str__(self) -> str:
        return f"{self.metric}:{self.limit * 100:g}%"


def valid_name(name: str) -> bool:
    """A baseline name: letters, digits, ``.``, ``_``, ``-``; at most 64 (it becomes a file name).

    >>> valid_name("main"), valid_name("../etc"), valid_name("")
    (True, False, False)
    """
    return bool(_NAME.match(name)) and name not in (".", "..")


def parse_rule(text: str) -> Rule:
    """``p95:10%``, ``p99.9:5%``, ``mean:10%``, ``rps:5%``, ``error_rate:50%``."""
    match = _RULE.match(text)
    if not match:
        raise CompareError(
            f"expected METRIC:LIMIT% with METRIC a percentile (p95, p99.9), mean, rps or "
            f"error_rate, e.g. 'p95:10%', got {text!r}"
        )
    metric = match.group(1)
    if metric.startswith("p") and not 0 < float(metric[1:]) <= 100:
        raise CompareError(f"percentile must be in (0, 100], got {text!r}")
    return Rule(metric, float(match.group(2)) / 100)


def worse(metric: str, old: float, new: float) -> float:
    """How much worse ``new`` is than ``old`` as a ratio (negative: better). Lower is better
    for times and error_rate, higher for rps. 0 when both are 0; inf from a zero baseline."""
    if old == new:
        return 0.0
    if old == 0:
        return math.inf if (new > 0) != (metric == "rps") else -math.inf
    change = (new - old) / abs(old)
    return -change if metric == "rps" else change


# -- figures from a document --------------------------------------------------------------


def _hist(entry: dict[str, Any]) -> HdrHistogram | None:
    blob = entry.get("hdr_histogram_us")
    if not isinstance(blob, str) or not blob or len(blob) > MAX_HISTOGRAM_CHARS:
        return None
    try:
        return HdrHistogram.decode(blob)
    except Exception:  # a corrupt blob is a bad baseline, not a crash
        return None


def _percentile_interval(h: HdrHistogram, n: int, q: float) -> tuple[float, float]:
    """95 % interval of percentile ``q`` (0-100) in seconds, from order statistics."""
    p = q / 100
    spread = Z * math.sqrt(n * p * (1 - p))
    lo = max((n * p - spread) / n * 100, 0.0)
    hi = min((n * p + spread) / n * 100, 100.0)
    low = h.get_value_at_percentile(lo) if lo > 0 else h.get_min_value()
    high = h.get_value_at_percentile(hi)
    # The bucket's own width (3 significant digits): values within it are indistinguishable.
    return h.get_lowest_equivalent_value(low) / 1e6, h.get_highest_equivalent_value(high) / 1e6


def _stddev(h: HdrHistogram) -> float:
    return float(h.get_stddev()) / 1e6


@dataclass(frozen=True)
class Change:
    """One metric of one request name (or ``Total``), old against new."""

    name: str
    metric: str
    old: float
    new: float
    worse: float  # ratio, see worse()
    beyond_noise: bool

    def describe(self) -> str:
        pct = "n/a" if math.isinf(self.worse) else f"{self.worse * 100:+.1f}%"
        word = "worse" if self.worse > 0 else "better" if self.worse < 0 else "same"
        noise = "beyond noise" if self.beyond_noise else "within noise"
        return (
            f"{self.name} {self.metric}: {_fmt(self.metric, self.old)} -> "
            f"{_fmt(self.metric, self.new)} ({pct} {word}, {noise})"
        )


def _fmt(metric: str, value: float) -> str:
    if metric == "rps":
        return f"{value:,.1f}/s"
    if metric == "error_rate":
        return f"{value * 100:.2f}%"
    return f"{value * 1000:.3g}ms" if value < 10 else f"{value:.2f}s"


def _figure(entry: dict[str, Any], metric: str) -> float:
    if metric == "rps":
        return float(entry.get("rps", 0) or 0)
    if metric == "error_rate":
        return float(entry.get("error_ratio", 0) or 0)
    if metric == "mean":
        return float(entry.get("mean_ms", 0) or 0) / 1000
    h = _hist(entry)
    if h is not None and int(entry.get("count", 0) or 0):
        return float(min(h.get_value_at_percentile(float(metric[1:])), h.get_max_value())) / 1e6
    return float(entry.get(f"{metric}_ms".replace(".", "_"), 0) or 0) / 1000


def _noisy(metric: str, a: dict[str, Any], b: dict[str, Any], da: float, db: float) -> bool:
    """True when the difference of ``metric`` between entries a and b is beyond noise."""
    na, nb = int(a.get("count", 0) or 0), int(b.get("count", 0) or 0)
    if not na or not nb:
        return False
    va, vb = _figure(a, metric), _figure(b, metric)
    if metric == "rps":
        se = math.sqrt(na / max(da, 1e-9) ** 2 + nb / max(db, 1e-9) ** 2)
        return abs(va - vb) > Z * se
    if metric == "error_rate":
        se = math.sqrt(va * (1 - va) / na + vb * (1 - vb) / nb)
        return abs(va - vb) > Z * se if se > 0 else va != vb
    ha, hb = _hist(a), _hist(b)
    if ha is None or hb is None:
        return False
    if metric == "mean":
        se = math.sqrt(_stddev(ha) ** 2 / na + _stddev(hb) ** 2 / nb)
        return abs(va - vb) > Z * se if se > 0 else va != vb
    q = float(metric[1:])
    lo_a, hi_a = _percentile_interval(ha, na, q)
    lo_b, hi_b = _percentile_interval(hb, nb, q)
    return hi_a < lo_b or hi_b < lo_a


# The settings that define a load, in the order a difference is reported: key -> label.
LOAD_FIELDS = {
    "model": "model",
    "users": "users",
    "spawn_rate": "spawn rate",
    "arrival_rate": "arrival rate",
    "stages": "stages",
    "shape": "shape",
    "duration_s": "configured duration",
    "iterations": "iterations per user",
}


def load_settings(spec: LoadSpec) -> dict[str, Any]:
    """The settings that define a load, as the JSON document's ``load_settings`` stores them.

    ``users`` is the closed model's users (the peak with stages, the most a shape may ask
    for) or the open model's ``max_users``; ``spawn_rate`` only where users start at a
    constant rate (closed, no stages, no shape); ``arrival_rate`` the open model's rate (its
    stages' peak when staged), None in the closed model.

    Example:
        >>> from pytest_swarm.spec import LoadSpec, parse_wait
        >>> load_settings(LoadSpec(10, 5.0, 30, parse_wait(None), 5.0))["spawn_rate"]
        5.0
    """
    model = spec.open_model
    return {
        "model": "open" if model is not None else "closed",
        "users": spec.users,
        "spawn_rate": (
            float(spec.rate)
            if model is None and spec.profile is None and spec.shape is None
            else None
        ),
        "arrival_rate": float(model.profile.peak) if model is not None else None,
        "stages": spec.profile is not None or (model is not None and model.staged),
        "shape": spec.shape is not None,
        "duration_s": float(spec.duration),
        "iterations": spec.iterations,
    }


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float | int) and isinstance(b, float | int):
        if isinstance(a, bool) or isinstance(b, bool):
            return a is b
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return bool(a == b)


def _shown(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return f"{value:g}" if isinstance(value, float) else str(value)


def settings_note(old: dict[str, Any], new: dict[str, Any]) -> str:
    """Why the load settings could not be compared ("" when they were)."""
    missing = [
        side for side, doc in (("baseline", old), ("run", new)) if not doc.get("load_settings")
    ]
    if not missing:
        return ""
    which = (
        "the baseline's"
        if missing == ["baseline"]
        else "this run's"
        if missing == ["run"]
        else "both runs'"
    )
    return (
        f"settings unknown: {which} load settings were not stored (a baseline saved by an "
        "older pytest-swarm, or an interrupted run); only users and the measured duration "
        "were compared"
    )


def load_differs(old: dict[str, Any], new: dict[str, Any]) -> str:
    """Why the two runs' load is not the same ("" when it is)."""
    reasons = []
    a, b = old.get("load_settings") or {}, new.get("load_settings") or {}
    if a and b:
        # Another model implies another spawn and arrival rate: the model says it all.
        implied = (
            ("spawn_rate", "arrival_rate") if not _same(a.get("model"), b.get("model")) else ()
        )
        for key, label in LOAD_FIELDS.items():
            if key not in implied and not _same(a.get(key), b.get(key)):
                reasons.append(f"{label} {_shown(a.get(key))} vs {_shown(b.get(key))}")
    elif old.get("users") != new.get("users"):
        reasons.append(f"users {old.get('users')} vs {new.get('users')}")
    od, nd = float(old.get("duration_s", 0) or 0), float(new.get("duration_s", 0) or 0)
    if od and nd and abs(od - nd) > DURATION_TOLERANCE * max(od, nd):
        reasons.append(f"duration {od:.1f}s vs {nd:.1f}s")
    return ", ".join(reasons)


METRICS = ("p50", "p95", "p99", "mean", "rps", "error_rate")


def compare(
    old: dict[str, Any], new: dict[str, Any], rules: tuple[Rule, ...] = ()
) -> dict[str, Any]:
    """The comparison of one load test's documents, JSON-ready: per name and metric the old
    and new values, how much worse, beyond noise or not; the rules exceeded; validity."""
    metrics = list(METRICS) + [r.metric for r in rules if r.metric not in METRICS]
    da, db = float(old.get("duration_s", 0) or 0), float(new.get("duration_s", 0) or 0)
    changes: list[Change] = []
    pairs = [("Total", old.get("total") or {}, new.get("total") or {})]
    old_requests = old.get("requests") or {}
    for name, entry in sorted((new.get("requests") or {}).items()):
        if name in old_requests:
            pairs.append((name, old_requests[name], entry))
    for name, a, b in pairs:
        for metric in metrics:
            va, vb = _figure(a, metric), _figure(b, metric)
            changes.append(
                Change(name, metric, va, vb, worse(metric, va, vb), _noisy(metric, a, b, da, db))
            )
    invalid = load_differs(old, new)
    note = settings_note(old, new)
    exceeded = []
    if not invalid:
        for rule in rules:
            total = next(c for c in changes if c.name == "Total" and c.metric == rule.metric)
            if total.worse > rule.limit:
                exceeded.append(f"{rule}: {total.describe()}")
    return {
        "baseline": old.get("baseline_name", ""),
        "valid": not invalid,
        "invalid_because": invalid,
        "load_settings_compared": not note,
        "note": note,
        "changes": [
            {
                "name": c.name,
                "metric": c.metric,
                "old": round(c.old, 9),
                "new": round(c.new, 9),
                "worse_ratio": None if math.isinf(c.worse) else round(c.worse, 6),
                "beyond_noise": c.beyond_noise,
                "text": c.describe(),
            }
            for c in changes
        ],
        "exceeded": exceeded,
    }


def comparison_text(comparison: dict[str, Any]) -> str:
    """The terminal's block: the total's changes, then any name's change beyond noise."""
    head = f"Change against baseline {comparison.get('baseline') or '?'}"
    if not comparison.get("valid"):
        head += f" (INVALID: the load differs: {comparison.get('invalid_because')})"
    if comparison.get("note"):
        head += f" ({comparison['note']})"
    lines = [head + ":"]
    for c in comparison.get("changes", []):
        if c["name"] == "Total" or c["beyond_noise"]:
            lines.append("  " + c["text"])
    for e in comparison.get("exceeded", []):
        lines.append("  REGRESSION " + e)
    return "\n".join(lines)


# -- storage ------------------------------------------------------------------------------


def _git_commit(cwd: Path) -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and re.fullmatch(r"[0-9a-f]{4,40}", commit) else ""


def _counter(path: Path) -> int:
    head = path.name.split("_", 1)[0]
    return int(head) if head.isdigit() else 0


def stored(storage: Path) -> list[Path]:
    """The stored baselines, oldest first (by counter)."""
    if not storage.is_dir():
        return []
    files = [p for p in storage.glob("[0-9][0-9][0-9][0-9]*_*.json") if p.is_file()]
    return sorted(files, key=lambda p: (_counter(p), p.name))


def save(
    storage: str | Path, name: str, documents: list[dict[str, Any]], now: datetime | None = None
) -> Path:
    """Store ``documents`` as the next baseline: ``NNNN_<name or commit>_<UTC time>.json``."""
    directory = Path(storage)
    now = now or datetime.now(timezone.utc)
    commit = _git_commit(Path.cwd())
    existing = stored(directory)
    number = (_counter(existing[-1]) + 1) if existing else 1
    label = name or commit or "run"
    path = directory / f"{number:04d}_{label}_{now.strftime('%Y%m%dT%H%M%SZ')}.json"
    body = {
        "format": FORMAT,
        "name": name,
        "commit": commit,
        "saved": now.isoformat(timespec="seconds"),
        "load_tests": documents,
    }
    return write_report_file(path, json.dumps(body, indent=1), what="--swarm-save")


def find(storage: str | Path, name: str) -> Path:
    """The baseline called ``name``: "latest", its counter ("3", "0003"), its name (the last
    saved under it) or its file's stem."""
    files = stored(Path(storage))
    if not files:
        raise CompareError(f"no baseline stored in {storage} (save one with --swarm-autosave)")
    if name == "latest":
        return files[-1]
    for path in reversed(files):
        parts = path.stem.split("_")
        if name in (path.stem, parts[0]) or (name.isdigit() and int(name) == _counter(path)):
            return path
        if "_".join(parts[1:-1]) == name:
            return path
    known = ", ".join(p.stem for p in files[-5:])
    raise CompareError(f"no baseline {name!r} in {storage} (latest: {known})")


def load(path: Path) -> dict[str, dict[str, Any]]:
    """The stored documents by load test key, validated (the file may be anything)."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise CompareError(f"{path}: {size:,} bytes, over the {MAX_FILE_BYTES:,} bound")
        body = json.loads(path.read_bytes())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CompareError(f"{path}: not a readable baseline ({exc})") from None
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        raise CompareError(f"{path}: not a pytest-swarm baseline of format {FORMAT}")
    tests = body.get("load_tests")
    if not isinstance(tests, list) or len(tests) > MAX_TESTS:
        raise CompareError(f"{path}: load_tests must be a list of at most {MAX_TESTS}")
    out: dict[str, dict[str, Any]] = {}
    for doc in tests:
        if not (isinstance(doc, dict) and isinstance(doc.get("test"), str)):
            raise CompareError(f"{path}: a load test without a name")
        for key in ("total", "requests"):
            if not isinstance(doc.get(key, {}), dict):
                raise CompareError(f"{path}: {doc['test']}: {key} is not an object")
        for entry in [doc.get("total") or {}, *(doc.get("requests") or {}).values()]:
            if not isinstance(entry, dict) or not all(
                isinstance(entry.get(k, 0), int | float) and not isinstance(entry.get(k, 0), bool)
                for k in ("count", "rps", "error_ratio", "mean_ms")
            ):
                raise CompareError(f"{path}: {doc['test']}: figures must be numbers")
        settings = doc.get("load_settings", {})
        if not isinstance(settings, dict) or not all(
            value is None or isinstance(value, str | int | float) for value in settings.values()
        ):
            raise CompareError(f"{path}: {doc['test']}: load_settings must map to plain values")
        if any(isinstance(v, str) and len(v) > 100 for v in settings.values()):
            raise CompareError(f"{path}: {doc['test']}: load_settings values are too long")
        out[doc["test"]] = {**doc, "baseline_name": path.stem}
    return out
