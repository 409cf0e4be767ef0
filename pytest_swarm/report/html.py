"""The self-contained HTML report (``--swarm-html``): one file that opens offline.

It reads the same per-test documents as the JSON file (:func:`report.files.result_document`),
never the engine. Tables, verdicts and errors are plain HTML, readable without scripts; the
charts are SVG drawn by ``assets/charts.js``, our own small drawing code, which the live
dashboard uses too. Styles and scripts are inlined, so the page makes no request at all.

Example:
    >>> page = render_html([], {"started": "2026-12-01T10:00:00Z"})
    >>> page.startswith("<!DOCTYPE html>") and "no load test ran" in page
    True
"""

from __future__ import annotations

import html
import json
from importlib import resources
from pathlib import Path
from typing import Any

from .. import __version__
from ..objectives import ObjectiveError, format_measured, parse_objective
from .distribution import busiest, document_curve

_COLUMNS = ("requests", "failures", "req/s", "p50", "p90", "p95", "p99", "max")


def _asset(name: str) -> str:
    return (resources.files(__package__) / "assets" / name).read_text(encoding="utf-8")


def _ms(value: object) -> str:
    if not isinstance(value, int | float):
        return ""
    return f"{value:,.1f} ms" if value < 10_000 else f"{value / 1000:,.2f} s"


def _num(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}"
    return f"{value:,}" if isinstance(value, int) else ""


def outcome(doc: dict[str, Any]) -> str:
    """passed / failed / error / interrupted, from the document alone."""
    explicit = doc.get("outcome")
    if isinstance(explicit, str):
        return explicit
    if doc.get("interrupted"):
        return "interrupted"
    if doc.get("problems"):
        return "error"
    if any(not o.get("met") for o in doc.get("objectives", [])):
        return "failed"
    return "passed"


def distribution(doc: dict[str, Any]) -> dict[str, list[tuple[float, float]]]:
    """(percentile, ms) points per series, decoded from the document's HDR histograms."""
    requests = doc.get("requests", {})
    entries = [("Total", doc.get("total", {}))]
    entries += [
        (n, requests[n]) for n in busiest({n: int(requests[n].get("count", 0)) for n in requests})
    ]
    out: dict[str, list[tuple[float, float]]] = {}
    for name, entry in entries:
        blob = entry.get("hdr_histogram_us")
        if not isinstance(blob, str) or not entry.get("count"):
            continue
        us = (round(float(entry.get(k, 0.0)) * 1000) for k in ("min_ms", "max_ms"))
        out[name] = document_curve(blob, *us)
    return out


def _measured(objective: object, value: object) -> str:
    """The measured value in its objective's unit, as the terminal shows it."""
    if not isinstance(value, int | float):
        return "not measured"
    try:
        metric = parse_objective(str(objective)).metric
    except ObjectiveError:
        return _num(value)
    return format_measured(metric, float(value))


def _row(name: str, e: dict[str, Any], css: str = "") -> str:
    cells = [
        _num(e.get("count")),
        _num(e.get("failures")),
        _num(e.get("rps")),
        *(_ms(e.get(k)) for k in ("p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms")),
    ]
    tds = "".join(f"<td>{html.escape(c)}</td>" for c in cells)
    return f'<tr class="{css}"><td class="name">{html.escape(name)}</td>{tds}</tr>'


def _test_section(index: int, doc: dict[str, Any]) -> str:
    state = outcome(doc)
    test = str(doc.get("test", "?"))
    parts = [
        f'<section class="test" id="test-{index}">',
        f'<h2><span class="verdict {state}">{state.upper()}</span> {html.escape(test)}</h2>',
        f'<div class="meta">{_num(doc.get("users"))} users &middot; '
        f"{_num(doc.get('workers'))} worker(s) &middot; "
        f"{_num(doc.get('duration_s'))} s"
        + (f" &middot; {html.escape(str(doc['reason']))}" if doc.get("reason") else "")
        + "</div>",
    ]
    problems = doc.get("problems") or []
    if problems:
        items = "".join(f"<li>{html.escape(str(p))}</li>" for p in problems)
        parts.append(f'<h3>Problems</h3><ul class="problems">{items}</ul>')
    objectives = doc.get("objectives") or []
    if objectives:
        rows = "".join(
            f'<tr><td class="name">{html.escape(str(o.get("objective")))}</td>'
            f"<td>{html.escape(_measured(o.get('objective'), o.get('measured')))}</td>"
            f'<td class="{"met" if o.get("met") else "missed"}">'
            f"{'met' if o.get('met') else 'MISSED'}</td></tr>"
            for o in objectives
        )
        parts.append(
            '<h3>Objectives</h3><table><tr><th class="name">objective</th><th>measured</th>'
            f"<th>state</th></tr>{rows}</table>"
        )
    comparison = doc.get("comparison") or {}
    p95_change = {
        c.get("name"): c for c in comparison.get("changes", []) if c.get("metric") == "p95"
    }
    header = "".join(f"<th>{c}</th>" for c in _COLUMNS)
    if p95_change:
        header += "<th>p95 change</th>"

    def row(name: str, e: dict[str, Any], css: str = "") -> str:
        html_row = _row(name, e, css)
        if not p95_change:
            return html_row
        return html_row.replace("</tr>", _change_cell(p95_change.get(name)) + "</tr>")

    rows = "".join(row(n, e) for n, e in (doc.get("requests") or {}).items())
    rows += row("Total", doc.get("total") or {}, "total")
    parts.append(
        f'<h3>Requests</h3><table><tr><th class="name">name</th>{header}</tr>{rows}</table>'
    )
    its = doc.get("iterations") or {}
    if its.get("count") or doc.get("late") or doc.get("dropped"):
        parts.append(
            f'<div class="meta">iterations {_num(its.get("count"))} &middot; p50 '
            f"{_ms(its.get('p50_ms'))} &middot; p95 {_ms(its.get('p95_ms'))} &middot; p99 "
            f"{_ms(its.get('p99_ms'))} &middot; late {_num(doc.get('late', 0))} &middot; "
            f"dropped {_num(doc.get('dropped', 0))}</div>"
        )
    if comparison:
        parts.append(_comparison(comparison))
    parts.append(f'<h3>Over time</h3><div class="charts" data-charts="{index}"></div>')
    errors = doc.get("errors") or []
    if errors:
        items = "".join(
            f"<details><summary>{_num(g.get('count'))} &times; [{html.escape(str(g.get('name')))}]"
            f" {html.escape(str(g.get('kind')))}: {html.escape(str(g.get('message')))}"
            f"{_seen(g)}</summary>"
            f"<pre>{html.escape(str(g.get('sample_traceback') or ''))}</pre></details>"
            for g in errors
        )
        parts.append(f"<h3>Errors</h3>{items}")
    gen = doc.get("generator") or {}
    bad = " bad" if gen.get("saturated") else ""
    parts.append(
        f'<h3>Generator health</h3><div class="health{bad}">CPU max '
        f"{_num(gen.get('cpu_max_percent'))} %, event-loop lag max "
        f"{_ms(gen.get('lag_max_ms'))}"
        f"{' (saturated: latencies are unreliable)' if gen.get('saturated') else ''}</div>"
    )
    parts.append("</section>")
    return "\n".join(parts)


def _change_cell(change: dict[str, Any] | None) -> str:
    if not change or change.get("worse_ratio") is None:
        return "<td></td>"
    ratio = float(change["worse_ratio"])
    css = ("worse" if ratio > 0 else "better") if change.get("beyond_noise") else "noise"
    return f'<td class="{css}">{ratio * 100:+.1f}%</td>'


def _seen(group: dict[str, Any]) -> str:
    """When (UTC) and where an error group was seen, for its summary line; "" if unknown."""
    from datetime import datetime, timezone

    def clock(value: Any) -> str:
        if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
            return "?"
        return datetime.fromtimestamp(value, timezone.utc).strftime("%H:%M:%S")

    first, last = group.get("first_seen_unix"), group.get("last_seen_unix")
    nodes = [str(n) for n in group.get("nodes") or [] if isinstance(n, str)]
    more = group.get("nodes_more")
    if isinstance(more, int) and more > 0:
        nodes.append(f"+{more} more")
    if not first and not last and not nodes:
        return ""
    when = f"seen {clock(first)}&ndash;{clock(last)} UTC" if first or last else ""
    where = f"on {html.escape(', '.join(nodes))}" if nodes else ""
    return f' <span class="seen">({" ".join(filter(None, (when, where)))})</span>'


def _comparison(comparison: dict[str, Any]) -> str:
    """The change against the baseline: every Total figure, and names' changes beyond noise."""
    name = html.escape(str(comparison.get("baseline") or "?"))
    note = ""
    if not comparison.get("valid"):
        note = (
            '<div class="health bad">not comparable: '
            f"{html.escape(str(comparison.get('invalid_because')))}</div>"
        )
    elif comparison.get("note"):  # e.g. a baseline saved without its load settings
        note = f'<div class="health">{html.escape(str(comparison["note"]))}</div>'
    rows = "".join(
        f'<tr><td class="name">{html.escape(str(c.get("name")))}</td>'
        f"<td>{html.escape(str(c.get('metric')))}</td>{_change_cell(c)}"
        f"<td>{'beyond noise' if c.get('beyond_noise') else 'within noise'}</td>"
        f'<td class="name">{html.escape(str(c.get("text")))}</td></tr>'
        for c in comparison.get("changes", [])
        if c.get("name") == "Total" or c.get("beyond_noise")
    )
    exceeded = "".join(
        f'<li class="missed">{html.escape(str(e))}</li>' for e in comparison.get("exceeded", [])
    )
    return (
        f"<h3>Change against baseline {name}</h3>{note}"
        + (f'<ul class="problems">{exceeded}</ul>' if exceeded else "")
        + '<table><tr><th class="name">name</th><th>metric</th><th>change</th><th>noise</th>'
        f'<th class="name">detail</th></tr>{rows}</table>'
    )


def _overview(documents: list[dict[str, Any]]) -> str:
    if not documents:
        return "<p>no load test ran in this session</p>"
    rows = "".join(
        f'<tr><td class="name"><a href="#test-{i}">{html.escape(str(d.get("test")))}</a></td>'
        f'<td><span class="verdict {outcome(d)}">{outcome(d).upper()}</span></td>'
        f"<td>{_num((d.get('total') or {}).get('count'))}</td>"
        f"<td>{_ms((d.get('total') or {}).get('p95_ms'))}</td></tr>"
        for i, d in enumerate(documents)
    )
    return (
        '<table class="overview"><tr><th class="name">load test</th><th>verdict</th>'
        f"<th>requests</th><th>p95</th></tr>{rows}</table>"
    )


def _script_json(data: object) -> str:
    # Inside <script>, "</" would end the element and "<!--" opens a comment: escape both.
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_html(documents: list[dict[str, Any]], context: dict[str, Any]) -> str:
    """The whole report page for a session's load-test documents."""
    context = {"pytest-swarm": __version__, **context}
    ctx = " &middot; ".join(
        f"{html.escape(str(k))}: {html.escape(str(v))}" for k, v in context.items() if v
    )
    charts = [
        {"doc": {"timeline": d.get("timeline", []),
                 "timeline_requests": d.get("timeline_requests", {})},
         "distribution": distribution(d)}
        for d in documents
    ]  # fmt: skip
    sections = "\n".join(_test_section(i, d) for i, d in enumerate(documents))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>pytest-swarm report</title>
<style>{_asset("report.css")}</style></head>
<body><header class="top"><h1>pytest-swarm load test report</h1>
<div class="context">{ctx}</div></header>
<main><h3>Session</h3>{_overview(documents)}
{sections}</main>
<script type="application/json" id="swarm-data">{_script_json(charts)}</script>
<script>{_asset("charts.js")}</script>
<script>
"use strict";
const data = JSON.parse(document.getElementById("swarm-data").textContent);
document.querySelectorAll("[data-charts]").forEach((el) => {{
  const item = data[Number(el.dataset.charts)];
  swarmCharts.timelineCharts(el, item.doc);
  swarmCharts.distributionChart(el, item.distribution);
}});
</script></body></html>
"""


def write_html(path: str | Path, documents: list[dict[str, Any]], context: dict[str, Any]) -> Path:
    """Write the report page to ``path`` atomically (a temporary file beside it, renamed)."""
    from .files import write_report_file

    return write_report_file(path, render_html(documents, context), what="--swarm-html")
