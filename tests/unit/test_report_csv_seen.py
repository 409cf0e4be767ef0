"""First/last seen and the nodes of error groups in the JSON document, Locust's failures.csv
(``First Seen``, ``Last Seen``) and exceptions.csv (``Nodes``), and the HTML report's errors."""

from __future__ import annotations

import csv
import io
from typing import Any

from pytest_swarm.report.files import result_document
from pytest_swarm.report.html import render_html
from pytest_swarm.report.locust_csv import exceptions_csv, failures_csv
from pytest_swarm.stats.aggregator import Aggregator
from pytest_swarm.stats.snapshot import MAX_NODES, Snapshot

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def _doc(sources: list[str], unknown: bool = False) -> dict[str, Any]:
    agg = Aggregator(start=0.0)
    for i, source in enumerate(sources):
        d = Snapshot(users=1)
        d.entry("GET /").hist.record_values([1000])
        d.entry("GET /").failures = 1
        seen = (0.0, 0.0) if unknown else (T0 + i + 0.125, T0 + i + 1.5)
        d.add_error("GET /", "HTTPError", "500", "", 1, *seen)
        d.add_error("teardown: test_x", "RuntimeError", "boom", "Traceback ...", 1, *seen)
        agg.add(source, 0, d, now=1.0)
    doc = result_document("t.py::test_x", agg.result(duration=3.0, users=1), None)
    doc["context"] = {"start_unix": T0}
    return doc


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_the_json_has_first_last_seen_and_nodes() -> None:
    (request, teardown) = sorted(_doc(["gw1", "gw0"])["errors"], key=lambda g: g["name"])
    assert request["first_seen_unix"] == T0 + 0.125
    assert request["last_seen_unix"] == T0 + 2.5
    assert request["nodes"] == ["gw0", "gw1"] and request["nodes_more"] == 0
    assert teardown["nodes"] == ["gw0", "gw1"]


def test_failures_csv_has_first_and_last_seen_in_unix_seconds() -> None:
    (row,) = _rows(failures_csv(_doc(["gw0", "gw1"])))
    assert (row["Name"], row["Occurrences"]) == ("/", "2")
    assert row["First Seen"] == f"{T0 + 0.125:.3f}"
    assert row["Last Seen"] == f"{T0 + 2.5:.3f}"
    assert float(row["First Seen"]) <= float(row["Last Seen"])


def test_exceptions_csv_names_the_nodes_as_locust_joins_them() -> None:
    (row,) = _rows(exceptions_csv(_doc(["gw10", "gw2", "gw0"])))
    assert row["Nodes"] == "gw0, gw2, gw10"
    (row,) = _rows(exceptions_csv(_doc(["main"])))
    assert row["Nodes"] == "main"


def test_nodes_past_the_bound_are_counted() -> None:
    (row,) = _rows(exceptions_csv(_doc([f"gw{i}" for i in range(MAX_NODES + 3)])))
    names = row["Nodes"].split(", ")
    assert names[0] == "gw0" and names[-1] == "and 3 more" and len(names) == MAX_NODES + 1


def test_unknown_times_are_empty_cells_and_old_documents_still_write() -> None:
    (row,) = _rows(failures_csv(_doc(["gw0"], unknown=True)))
    assert (row["First Seen"], row["Last Seen"]) == ("", "")
    old = _doc(["gw0"])
    for g in old["errors"]:  # a document written before these fields existed
        for key in ("first_seen_unix", "last_seen_unix", "nodes", "nodes_more"):
            del g[key]
    (row,) = _rows(failures_csv(old))
    assert (row["First Seen"], row["Last Seen"]) == ("", "")
    assert _rows(exceptions_csv(old))[0]["Nodes"] == ""


def test_the_html_errors_say_when_and_where() -> None:
    page = render_html([_doc(["gw0", "gw1"])], {})
    assert '<span class="seen">(seen 00:00:00&ndash;00:00:02 UTC on gw0, gw1)</span>' in page
