"""Locust's four CSV files (``--swarm-csv PREFIX``), so tools built for Locust's CSV read ours.

Written from the load tests' JSON documents (:func:`report.files.result_document`), never from
the engine. Locust has one run per process; a pytest session has several load tests, so each
gets its own set of files, named after the test: ``PREFIX_<test>_stats.csv`` and so on, where
``<test>`` is the test's name (``test_home[10]`` becomes ``test_home-10-``; see :func:`slugs`).
A Locust tool given the prefix ``PREFIX_<test>`` reads them unchanged.

Mapping (times in milliseconds, as Locust writes them):

- ``stats``: one row per request name (``Type`` and ``Name`` split from ``GET /path``; a name
  without a method has an empty Type), then ``Aggregated`` with an empty Type.
- ``stats_history``: one row per timeline point and request name, then its ``Aggregated``
  row; ``Timestamp`` in Unix seconds (the load test's start plus the point's offset);
  percentile columns are the point's own, the ``Total ...`` columns cumulative to that point.
- ``failures``: the error groups of request names; ``First Seen``/``Last Seen`` in Unix
  seconds with milliseconds (first seen is the first occurrence's wall clock, last seen the
  end of the report interval of the last occurrence: up to one interval late; empty when
  unknown). ``exceptions``: the other groups (user code, fixture setup and teardown);
  ``Nodes`` the nodes that saw the group, as Locust joins them (``gw0, gw1``): xdist worker
  ids, ``main`` in a one-process run; past 64 names ``, and N more``.

Example:
    >>> slugs(["t.py::test_home[10]", "u.py::test_home[10]", "t.py::test_cart#2"])
    ['t.test_home-10-', 'u.test_home-10-', 'test_cart.run2']
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .files import write_report_file

LEVELS = ("50", "66", "75", "80", "90", "95", "98", "99", "99.9", "99.99", "100")
_LEVEL_KEYS = tuple(f"p{q.replace('.', '_')}_ms" for q in LEVELS)
_PCT = [f"{q}%" for q in LEVELS]

STATS_HEADER = [
    "Type", "Name", "Request Count", "Failure Count", "Median Response Time",
    "Average Response Time", "Min Response Time", "Max Response Time", "Average Content Size",
    "Requests/s", "Failures/s", *_PCT,
]  # fmt: skip
HISTORY_HEADER = [
    "Timestamp", "User Count", "Type", "Name", "Requests/s", "Failures/s", *_PCT,
    "Total Request Count", "Total Failure Count", "Total Median Response Time",
    "Total Average Response Time", "Total Min Response Time", "Total Max Response Time",
    "Total Average Content Size",
]  # fmt: skip
FAILURES_HEADER = ["Method", "Name", "Error", "Occurrences", "First Seen", "Last Seen"]
EXCEPTIONS_HEADER = ["Count", "Message", "Traceback", "Nodes"]

_METHOD = re.compile(r"^([A-Z][A-Z0-9_-]{0,15}) (.+)$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_SLUG = 100


def split_name(name: str) -> tuple[str, str]:
    """(Type, Name) as Locust has them: ``GET /cart`` is ("GET", "/cart").

    >>> split_name("GET /cart"), split_name("checkout")
    (('GET', '/cart'), ('', 'checkout'))
    """
    match = _METHOD.match(name)
    return (match.group(1), match.group(2)) if match else ("", name)


def _slug(text: str) -> str:
    return _UNSAFE.sub("-", text).strip(".")[:MAX_SLUG] or "load"


def slugs(keys: Sequence[str]) -> list[str]:
    """A file-name-safe, unique name per load test key (node id, ``#k`` for ``swarm.run``):
    the test's name; the module's stem before it when two tests share a name; a number
    after it when they still collide."""

    def short(key: str, with_module: bool) -> str:
        nodeid, _, run = key.partition("#")
        path, _, name = nodeid.rpartition("::")
        base = name or nodeid
        if with_module and path:
            base = Path(path.split("::")[0]).stem + "." + base
        return _slug(base) + (f".run{run}" if run else "")

    first = [short(k, False) for k in keys]
    names = [short(k, first.count(s) > 1) for k, s in zip(keys, first, strict=True)]
    out: list[str] = []
    for name in names:
        unique, n = name, 1
        while unique in out:
            n += 1
            unique = f"{name}-{n}"
        out.append(unique)
    return out


def _num(value: Any) -> Any:
    """Locust writes integers plainly and floats with their digits."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return int(value)
    return value if isinstance(value, int | float) else 0


def _table(header: list[str], rows: Iterable[list[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def _stats_row(kind: str, name: str, e: dict[str, Any]) -> list[Any]:
    return [
        kind,
        name,
        _num(e.get("count", 0)),
        _num(e.get("failures", 0)),
        _num(e.get("p50_ms", 0)),
        _num(e.get("mean_ms", 0)),
        _num(e.get("min_ms", 0)),
        _num(e.get("max_ms", 0)),
        _num(e.get("avg_size_bytes", 0)),
        _num(e.get("rps", 0)),
        _num(e.get("fps", 0)),
        *(_num(e.get(k, 0)) for k in _LEVEL_KEYS),
    ]


def stats_csv(doc: dict[str, Any]) -> str:
    """``PREFIX_stats.csv`` of one load test's document."""
    rows = [_stats_row(*split_name(n), e) for n, e in sorted((doc.get("requests") or {}).items())]
    rows.append(_stats_row("", "Aggregated", doc.get("total") or {}))
    return _table(STATS_HEADER, rows)


def _history_row(start: float, kind: str, name: str, p: dict[str, Any]) -> list[Any]:
    pct = p.get("percentiles_ms") or {}
    cum = p.get("cumulative") or {}
    return [
        int(start + float(p.get("t", 0)) + float(p.get("span_s", 1))),  # the point's end
        _num(p.get("users", 0)),
        kind,
        name,
        _num(p.get("rps", 0)),
        _num(p.get("fps", 0)),
        *(_num(pct.get(q, 0)) for q in LEVELS),
        _num(cum.get("requests", 0)),
        _num(cum.get("failures", 0)),
        _num(cum.get("median_ms", 0)),
        _num(cum.get("mean_ms", 0)),
        _num(cum.get("min_ms", 0)),
        _num(cum.get("max_ms", 0)),
        _num(cum.get("avg_size_bytes", 0)),
    ]


def history_csv(doc: dict[str, Any]) -> str:
    """``PREFIX_stats_history.csv``: per point of the timeline, a row per request name (with
    the point's users) and the ``Aggregated`` row, in time order."""
    start = float((doc.get("context") or {}).get("start_unix", 0) or 0)
    total = doc.get("timeline") or []
    users = {float(p.get("t", 0)): p.get("users", 0) for p in total}
    rows: list[tuple[float, int, list[Any]]] = []
    named = sorted((doc.get("timeline_requests") or {}).items())
    for order, (name, points) in enumerate(named):
        kind, short = split_name(name)
        for p in points:
            t = float(p.get("t", 0))
            row = _history_row(start, kind, short, {**p, "users": users.get(t, 0)})
            rows.append((t, order, row))
    for p in total:
        rows.append((float(p.get("t", 0)), len(named), _history_row(start, "", "Aggregated", p)))
    rows.sort(key=lambda r: (r[0], r[1]))
    return _table(HISTORY_HEADER, (r[2] for r in rows))


def failures_csv(doc: dict[str, Any]) -> str:
    names = set(doc.get("requests") or {})
    rows = []
    for g in doc.get("errors") or []:
        if g.get("name") in names:
            kind, short = split_name(str(g.get("name")))
            message = f"{g.get('kind')}: {g.get('message')}" if g.get("message") else g.get("kind")
            seen = [_seen(g.get("first_seen_unix")), _seen(g.get("last_seen_unix"))]
            rows.append([kind, short, message, _num(g.get("count", 0)), *seen])
    return _table(FAILURES_HEADER, rows)


def _seen(value: Any) -> str:
    """A group's first or last seen: Unix seconds to the millisecond, "" when unknown."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return f"{float(value):.3f}"
    return ""


def _nodes(g: dict[str, Any]) -> str:
    """Locust's ``Nodes``: the names joined by ", ", then how many more there were."""
    nodes = g.get("nodes")
    names = [str(n) for n in nodes] if isinstance(nodes, list) else []
    more = g.get("nodes_more")
    if isinstance(more, int) and not isinstance(more, bool) and more > 0:
        names.append(f"and {more} more")
    return ", ".join(names)


def exceptions_csv(doc: dict[str, Any]) -> str:
    names = set(doc.get("requests") or {})
    rows = []
    for g in doc.get("errors") or []:
        if g.get("name") not in names:
            message = f"[{g.get('name')}] {g.get('kind')}: {g.get('message')}"
            traceback = g.get("sample_traceback") or ""
            rows.append([_num(g.get("count", 0)), message, traceback, _nodes(g)])
    return _table(EXCEPTIONS_HEADER, rows)


FILES = (
    ("stats", stats_csv),
    ("stats_history", history_csv),
    ("failures", failures_csv),
    ("exceptions", exceptions_csv),
)


def write_csv(prefix: str, documents: list[dict[str, Any]]) -> list[Path]:
    """Write the four files of every load test (see the module docstring); returns them."""
    written = []
    keys = [str(d.get("key") or d.get("test") or "load") for d in documents]
    for doc, slug in zip(documents, slugs(keys), strict=True):
        for suffix, render in FILES:
            path = f"{prefix}_{slug}_{suffix}.csv"
            written.append(write_report_file(path, render(doc), what="--swarm-csv"))
    return written
