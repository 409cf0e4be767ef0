"""``--swarm-html``: the self-contained report, opened from its file in real headless Chromium.

A real pytest run against the demo target writes the HTML and the JSON side by side; the page
must load with no console error and no request but its own file, draw its charts, and show
the same figures as the JSON. A hostile request name must stay text.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .chromium import Page, artifacts, chromium, page
from .harness import RunSwarm

__all__ = ["artifacts", "chromium", "page"]

HOSTILE = "</script><script>alert(1)</script>"

PROJECT = f"""
import pytest

@pytest.mark.load(users=3, rate=30, duration="2s")
@pytest.mark.slo("p95 < 5s", "error_rate < 50%")
def test_browse(http):
    http.get("/items", name="items")
    http.get("/items/1", name={HOSTILE!r})

@pytest.mark.load(users=2, rate=20, duration="1500ms")
@pytest.mark.slo("failures <= 0")
def test_flaky(http):
    http.get("/flaky")
"""


@pytest.fixture
def report(pytester: pytest.Pytester, swarm_pytest: RunSwarm) -> tuple[Path, dict[str, object]]:
    pytester.makepyfile(test_shop=PROJECT)
    html_path, json_path = pytester.path / "out" / "report.html", pytester.path / "r.json"
    run = swarm_pytest(f"--swarm-html={html_path}", f"--swarm-json={json_path}")
    assert run.result.ret in (0, 1), run.output
    assert f"written to {html_path}" in run.output
    return html_path, json.loads(json_path.read_text())


def test_report_loads_offline_and_draws_its_charts(
    report: tuple[Path, dict[str, object]], page: Page, artifacts: Path
) -> None:
    html_path, _ = report
    page.open(html_path.as_uri())
    page.page.screenshot(path=str(artifacts / "html-report.png"), full_page=True)
    assert page.console_errors == []
    assert page.requests == [html_path.as_uri()]
    # Every chart holds at least one drawn line with real path data.
    figures = page.page.locator("section.test figure")
    assert figures.count() >= 2 * 4
    drawn = page.page.eval_on_selector_all(
        "section.test svg.chart path.series",
        "ps => ps.filter(p => p.getAttribute('d').length > 10).length",
    )
    assert drawn >= 2 * 4
    # Per request name over time: the names' p95 side by side, and p50/p95/p99 of each.
    captions = page.page.locator("section.test figcaption").all_inner_texts()
    assert "p95 by request name" in captions
    assert "Latency percentiles of items" in captions
    lines = page.page.eval_on_selector_all(
        "figure",
        """fs => fs.filter(f => f.querySelector('figcaption').textContent ===
              'Latency percentiles of items')[0].querySelectorAll('path.series').length""",
    )
    assert lines == 3


def test_report_figures_equal_the_json(report: tuple[Path, dict[str, object]], page: Page) -> None:
    html_path, document = report
    page.open(html_path.as_uri())
    tests = document["load_tests"]
    assert isinstance(tests, list) and len(tests) == 2
    overview = page.page.locator("table.overview tr").all_inner_texts()[1:]
    for doc, row in zip(tests, overview, strict=True):
        cells = row.split("\t")
        assert cells[0] == doc["test"]
        assert cells[2] == f"{doc['total']['count']:,}"
        assert cells[3] == f"{doc['total']['p95_ms']:,.1f} ms"
    verdicts = page.page.locator("section.test h2 .verdict").all_inner_texts()
    expected = ["FAILED" if any(not o["met"] for o in d["objectives"]) else "PASSED" for d in tests]
    assert verdicts == expected
    assert "FAILED" in verdicts  # the flaky endpoint misses failures = 0


def test_a_hostile_request_name_stays_text(
    report: tuple[Path, dict[str, object]], page: Page
) -> None:
    html_path, _ = report
    page.open(html_path.as_uri())
    names = page.page.locator("section.test table td.name").all_inner_texts()
    assert HOSTILE in names
    assert page.console_errors == []  # no alert dialog, no script error
