"""Unit tests for report/locust_csv.py: Locust 2.x's exact headers, the rows from a document."""

from __future__ import annotations

import csv
import io
from typing import Any

from pytest_swarm.report.files import result_document
from pytest_swarm.report.locust_csv import (
    exceptions_csv,
    failures_csv,
    history_csv,
    slugs,
    split_name,
    stats_csv,
)
from pytest_swarm.stats.aggregator import Aggregator
from pytest_swarm.stats.snapshot import Snapshot

# Locust 2.x, character for character (issue 11).
STATS = (
    "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,"
    "Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,"
    "75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%"
)
HISTORY = (
    "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,"
    "99.9%,99.99%,100%,Total Request Count,Total Failure Count,Total Median Response Time,"
    "Total Average Response Time,Total Min Response Time,Total Max Response Time,"
    "Total Average Content Size"
)
FAILURES = "Method,Name,Error,Occurrences,First Seen,Last Seen"
EXCEPTIONS = "Count,Message,Traceback,Nodes"


def _doc() -> dict[str, Any]:
    agg = Aggregator(start=0.0)
    for sec in range(3):
        d = Snapshot(users=4)
        d.entry("GET /").hist.record_values([1000, 2000, 3000, 4000])
        d.entry("GET /").size = 400
        d.entry("checkout").hist.record_values([10_000])
        d.entry("checkout").failures = 1
        seen = (1_700_000_000.25 + sec, 1_700_000_000.75 + sec)  # first, last (Unix s)
        d.add_error("checkout", "AssertionError", "total is 0", "Traceback ...", 1, *seen)
        d.add_error("teardown: test_x", "RuntimeError", "boom", "Traceback ...", 1, *seen)
        agg.add("main", sec, d, now=sec + 1.0, final=sec == 2)
    doc = result_document("t.py::test_x", agg.result(duration=3.0, users=4), None)
    doc["context"] = {"start_unix": 1_700_000_000.0}
    return doc


def _read(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_headers_are_locusts_exactly() -> None:
    doc = _doc()
    assert stats_csv(doc).splitlines()[0] == STATS
    assert history_csv(doc).splitlines()[0] == HISTORY
    assert failures_csv(doc).splitlines()[0] == FAILURES
    assert exceptions_csv(doc).splitlines()[0] == EXCEPTIONS


def test_stats_rows_and_the_aggregated_row() -> None:
    rows = _read(stats_csv(_doc()))[1:]
    assert [(r[0], r[1]) for r in rows] == [("GET", "/"), ("", "checkout"), ("", "Aggregated")]
    get = dict(zip(STATS.split(","), rows[0], strict=True))
    assert get["Request Count"] == "12" and get["Failure Count"] == "0"
    assert get["Min Response Time"] == "1" and get["Max Response Time"] == "4"
    assert get["Average Content Size"] == "100" and get["Requests/s"] == "4"
    assert get["100%"] == "4"
    total = dict(zip(STATS.split(","), rows[2], strict=True))
    assert total["Request Count"] == "15" and total["Failure Count"] == "3"
    assert total["Failures/s"] == "1"


def test_history_has_a_row_per_second_and_name_then_aggregated() -> None:
    rows = _read(history_csv(_doc()))[1:]
    assert [(r[0], r[3]) for r in rows] == [
        (str(1_700_000_001 + s), n) for s in range(3) for n in ("/", "checkout", "Aggregated")
    ]
    col = {name: i for i, name in enumerate(HISTORY.split(","))}
    assert {r[col["User Count"]] for r in rows} == {"4"}  # the last second too
    last = rows[-1]
    assert last[col["Total Request Count"]] == "15" and last[col["Total Failure Count"]] == "3"


def test_failures_are_request_errors_and_exceptions_the_rest() -> None:
    doc = _doc()
    assert _read(failures_csv(doc))[1:] == [
        ["", "checkout", "AssertionError: total is 0", "3", "1700000000.250", "1700000002.750"]
    ]
    exceptions = _read(exceptions_csv(doc))[1:]
    # Nodes: the aggregator's source that delivered the group ("main" in one process).
    assert exceptions == [["3", "[teardown: test_x] RuntimeError: boom", "Traceback ...", "main"]]


def test_names_and_slugs() -> None:
    assert split_name("POST /cart?x=1") == ("POST", "/cart?x=1")
    assert split_name("get /") == ("", "get /")
    assert slugs(["a.py::test_x", "a.py::test_x#1", "a.py::test_x#2"]) == [
        "test_x",
        "test_x.run1",
        "test_x.run2",
    ]
    # Hostile names cannot leave the directory or collide.
    assert slugs(["a.py::../../etc", "b.py::../../etc"]) == ["a...-..-etc", "b...-..-etc"]
    assert all("/" not in s and not s.startswith(".") for s in slugs(["../x", "///"]))
    assert slugs(["x.py::t", "x.py::t"]) == ["x.t", "x.t-2"]
