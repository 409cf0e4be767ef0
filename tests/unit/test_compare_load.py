"""Baselines compare the settings that define the load (report/compare.py's load_settings): an
arrival-rate, model, users, stages/shape, duration or iteration-cap difference makes the
comparison invalid; a baseline saved before the settings were stored still loads and says the
settings are unknown."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_swarm.report.compare import (
    CompareError,
    compare,
    comparison_text,
    load,
    load_differs,
    load_settings,
    parse_rule,
    save,
)
from pytest_swarm.report.files import result_document
from pytest_swarm.spec import SpecOverrides, build_spec
from pytest_swarm.stats.result import RunResult
from pytest_swarm.stats.snapshot import Snapshot


def spec(**kwargs: Any) -> Any:
    return build_spec(**kwargs, overrides=SpecOverrides())


def doc(load: dict[str, Any] | None, values_us: int = 10_000, users: int = 10) -> dict[str, Any]:
    snap = Snapshot()
    snap.entry("GET /").hist.record_values([values_us] * 500)
    result = RunResult(snap, duration=10.0, users=users, load=dict(load or {}))
    return result_document("t.py::test_x", result, None)


OPEN = {"arrival_rate": 50, "max_users": 20, "duration": "10s"}


def test_load_settings_of_each_model() -> None:
    closed = load_settings(spec(users=10, rate=5, duration="10s"))
    assert closed == {
        "model": "closed",
        "users": 10,
        "spawn_rate": 5.0,
        "arrival_rate": None,
        "stages": False,
        "shape": False,
        "duration_s": 10.0,
        "iterations": None,
    }
    opened = load_settings(spec(**OPEN))
    assert (opened["model"], opened["users"], opened["arrival_rate"]) == ("open", 20, 50.0)
    assert opened["spawn_rate"] is None and not opened["stages"]
    staged = load_settings(spec(arrival_rate=[("2s", 10), ("3s", 40), ("1s", 0)], max_users=20))
    assert staged["arrival_rate"] == 40.0 and staged["stages"] and staged["model"] == "open"
    ramp = load_settings(spec(stages=[("2s", 5), ("2s", 8)]))
    assert ramp["stages"] and ramp["users"] == 8 and ramp["spawn_rate"] is None


def test_the_document_carries_the_load_settings() -> None:
    settings = load_settings(spec(**OPEN))
    assert doc(settings)["load_settings"] == settings
    assert json.loads(json.dumps(doc(settings)))["load_settings"] == settings


def test_an_arrival_rate_mismatch_makes_the_comparison_invalid() -> None:
    old = doc(load_settings(spec(**OPEN)))
    new = doc(load_settings(spec(**{**OPEN, "arrival_rate": 80})), values_us=30_000)
    result = compare(old, new, (parse_rule("p95:1%"),))
    assert not result["valid"]
    assert result["invalid_because"] == "arrival rate 50 vs 80"
    assert result["exceeded"] == []  # a 3x slower run does not fail: the load differs
    assert result["load_settings_compared"] and result["note"] == ""
    assert "INVALID: the load differs: arrival rate 50 vs 80" in comparison_text(result)


def test_the_staged_arrival_rates_peak_is_compared() -> None:
    low = spec(arrival_rate=[("2s", 10), ("3s", 40)], max_users=20)
    high = spec(arrival_rate=[("2s", 10), ("3s", 60)], max_users=20)
    why = load_differs(doc(load_settings(low)), doc(load_settings(high)))
    assert why == "arrival rate 40 vs 60"


@pytest.mark.parametrize(
    ("old", "new", "why"),
    [
        (OPEN, {"users": 20, "rate": 20, "duration": "10s"}, "model open vs closed"),
        (OPEN, {**OPEN, "max_users": 40}, "users 20 vs 40"),
        ({"users": 10, "rate": 5, "duration": "10s"}, {"users": 10, "rate": 10,
         "duration": "10s"}, "spawn rate 5 vs 10"),
        ({"users": 10, "duration": "10s"}, {"stages": [("5s", 10), ("5s", 10)]},
         "spawn rate 10 vs none, stages no vs yes"),
        (OPEN, {**OPEN, "duration": "10.5s"}, "configured duration 10 vs 10.5"),
        ({"users": 10, "duration": "10s"}, {"users": 10, "duration": "10s", "iterations": 3},
         "iterations per user none vs 3"),
    ],
)  # fmt: skip
def test_each_load_setting_is_compared(old: dict[str, Any], new: dict[str, Any], why: str) -> None:
    assert load_differs(doc(load_settings(spec(**old))), doc(load_settings(spec(**new)))) == why


def test_the_same_load_is_valid() -> None:
    settings = load_settings(spec(**OPEN))
    result = compare(doc(settings), doc(dict(settings)))
    assert result["valid"] and result["invalid_because"] == ""


def test_an_old_baseline_without_settings_loads_and_says_they_are_unknown(tmp_path: Path) -> None:
    old = doc(None)
    del old["load_settings"]  # saved by an older pytest-swarm
    path = save(tmp_path, "old", [old])
    stored = load(path)["t.py::test_x"]
    result = compare(stored, doc(load_settings(spec(**OPEN)), users=10))
    # Users and the measured duration still compared; the arrival rate could not be.
    assert result["valid"] and not result["load_settings_compared"]
    assert result["note"].startswith("settings unknown: the baseline's load settings")
    assert "settings unknown" in comparison_text(result)
    # ...and a users difference is still found without them.
    result = compare(stored, doc(load_settings(spec(**OPEN)), users=20))
    assert not result["valid"] and result["invalid_because"] == "users 10 vs 20"


def test_a_run_without_settings_says_so_too() -> None:
    result = compare(doc(load_settings(spec(**OPEN))), doc(None))
    assert result["note"].startswith("settings unknown: this run's load settings")


@pytest.mark.parametrize(
    "settings",
    [[1, 2], "open", {"model": ["open"]}, {"model": {"x": 1}}, {"model": "x" * 101}],
)
def test_malformed_stored_settings_are_refused_with_the_files_name(
    tmp_path: Path, settings: Any
) -> None:
    bad = doc(None)
    bad["load_settings"] = settings
    path = tmp_path / "0001_x_20260101T000000Z.json"
    path.write_text(json.dumps({"format": 1, "load_tests": [bad]}))
    with pytest.raises(CompareError, match=r"0001_x.*load_settings"):
        load(path)


def test_the_html_report_shows_that_the_settings_are_unknown() -> None:
    from pytest_swarm.report.html import _comparison

    old = doc(None)
    del old["load_settings"]
    result = compare(old, doc(load_settings(spec(**OPEN)), users=10))
    page = _comparison({**result, "baseline": "0001"})
    assert "settings unknown: the baseline&#x27;s load settings" in page
