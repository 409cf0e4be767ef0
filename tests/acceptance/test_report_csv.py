"""--swarm-csv: Locust's four files per load test, read back with csv, equal to the JSON;
the JSON's outcome, reason and context; `-m "not load"` deselects swarm.run tests."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from pytest_swarm.report.locust_csv import (
    EXCEPTIONS_HEADER,
    FAILURES_HEADER,
    HISTORY_HEADER,
    STATS_HEADER,
)

from .harness import RunSwarm

TESTS = """
import pytest

@pytest.mark.load(users=2, rate=100, duration="3s")
def test_home(http):
    http.get("/")
    http.get("/missing")  # 404: a failure per iteration

def test_scripted(swarm):
    def body(http):
        http.get("/")
    swarm.run(body, users=1, rate=100, duration="1s", iterations=5)
"""


def _rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def test_csv_files_have_locusts_headers_and_the_jsons_figures(
    pytester: pytest.Pytester, swarm_pytest: RunSwarm
) -> None:
    pytester.makepyfile(test_t=TESTS)  # a short node id: the summary line has room for the reason
    run = swarm_pytest("--swarm-csv=out/run", "--swarm-json=out/run.json", "-rf")
    run.result.assert_outcomes(passed=1, failed=1)
    doc = {
        d["test"]: d for d in json.loads((pytester.path / "out/run.json").read_text())["load_tests"]
    }
    home = next(d for k, d in doc.items() if k.endswith("::test_home"))
    out = pytester.path / "out"
    names = sorted(p.name for p in out.glob("*.csv"))
    assert names == sorted(
        f"run_{t}_{s}.csv"
        for t in ("test_home", "test_scripted.run1")
        for s in ("stats", "stats_history", "failures", "exceptions")
    ), names

    header, stats = _rows(out / "run_test_home_stats.csv")
    assert header == STATS_HEADER
    by_name = {(r["Type"], r["Name"]): r for r in stats}
    assert list(by_name)[-1] == ("", "Aggregated")
    get = by_name[("GET", "/")]
    assert int(get["Request Count"]) == home["requests"]["GET /"]["count"] > 0
    assert float(get["95%"]) == home["requests"]["GET /"]["p95_ms"]
    assert float(get["Average Content Size"]) == home["requests"]["GET /"]["avg_size_bytes"] > 0
    agg = by_name[("", "Aggregated")]
    assert int(agg["Failure Count"]) == home["total"]["failures"] > 0
    assert float(agg["Requests/s"]) == home["total"]["rps"]
    assert float(agg["99.99%"]) == home["total"]["p99_99_ms"]

    header, history = _rows(out / "run_test_home_stats_history.csv")
    assert header == HISTORY_HEADER
    aggregated = [r for r in history if r["Name"] == "Aggregated"]
    per_name = [r for r in history if r["Name"] == "/"]
    assert aggregated and per_name
    # Cumulative counts end at the totals; users never read 0 beside requests.
    assert int(aggregated[-1]["Total Request Count"]) == home["total"]["count"]
    assert all(int(r["User Count"]) > 0 for r in aggregated)
    stamps = [int(r["Timestamp"]) for r in history]
    assert stamps == sorted(stamps) and stamps[0] > 1_600_000_000

    header, failures = _rows(out / "run_test_home_failures.csv")
    assert header == FAILURES_HEADER
    assert [(r["Method"], r["Name"]) for r in failures] == [("GET", "/missing")]
    assert int(failures[0]["Occurrences"]) == home["requests"]["GET /missing"]["failures"]
    assert _rows(out / "run_test_home_exceptions.csv")[0] == EXCEPTIONS_HEADER

    # The JSON stands alone: outcome, why, and the run's context.
    assert home["outcome"] == "failed" and "GET /missing" in home["reason"]
    ctx = home["context"]
    assert ctx["start_unix"] > 1_600_000_000 and ctx["target"].startswith("http://127.0.0.1")
    assert ctx["pytest_swarm_version"] and "--swarm-csv=out/run" in ctx["command"]
    assert home["iterations"]["count"] > 0 and home["dropped"] == 0
    scripted = next(d for k, d in doc.items() if "test_scripted" in k)
    assert scripted["outcome"] == "passed" and scripted["reason"] == ""
    # The reason comes first in the failure line pytest's short summary shows.
    assert "MISSED failures = 0" in run.message("test_home")
    run.result.stdout.fnmatch_lines(["FAILED test_t.py::test_home - MISSED failures = 0*"])


def test_not_load_deselects_swarm_run_tests(
    pytester: pytest.Pytester, swarm_pytest: RunSwarm
) -> None:
    pytester.makepyfile(TESTS + "\ndef test_plain():\n    pass\n")
    run = swarm_pytest("-m", "not load")
    run.result.assert_outcomes(passed=1, deselected=2)
    run = swarm_pytest("-m", "load", "-k", "scripted")
    run.result.assert_outcomes(passed=1, deselected=2)


XDIST_TESTS = """
import pytest

@pytest.mark.load(users=4, rate=100, duration="3s")
def test_home(http):
    http.get("/")
    http.get("/items", name="items")
"""


def test_under_xdist_the_timeline_reaches_the_report_whole(
    pytester: pytest.Pytester, swarm_pytest: RunSwarm
) -> None:
    # The reports are built on the reporting worker from the controller's result message:
    # per-name points, p99 and Locust's levels must travel with it (they once read 0 there).
    pytester.makepyfile(test_t=XDIST_TESTS)
    run = swarm_pytest("-n", "2", "--swarm-csv=out/run", "--swarm-json=out/run.json")
    run.result.assert_outcomes(passed=1)
    (doc,) = json.loads((pytester.path / "out/run.json").read_text())["load_tests"]
    assert set(doc["timeline_requests"]) == {"GET /", "items"}
    served = [p for p in doc["timeline_requests"]["items"] if p["requests"]]
    assert served and all(p["p99_ms"] > 0 for p in served)
    assert (
        sum(p["requests"] for p in doc["timeline_requests"]["items"])
        == (doc["requests"]["items"]["count"])
    )
    _, history = _rows(pytester.path / "out/run_test_home_stats_history.csv")
    rows = [r for r in history if r["Name"] == "items" and float(r["Requests/s"]) > 0]
    assert rows and all(float(r["99%"]) > 0 and float(r["50%"]) > 0 for r in rows)
    aggregated = [r for r in history if r["Name"] == "Aggregated"]
    assert int(aggregated[-1]["Total Request Count"]) == doc["total"]["count"]
    # The terminal names the files' pattern, not the first of them.
    run.result.stdout.fnmatch_lines(["*1 load test result(s) written to *out/run_*.csv"])
