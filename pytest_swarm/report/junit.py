"""Figures of a load test in JUnit XML.

They go into ``item.user_properties``, which travel from xdist workers to the controller
(``record_testsuite_property`` does not). By default (``--swarm-junit=schema``) the
:class:`SchemaLayout` moves them, in the process that writes the file, to where a file valid
against Jenkins xunit's ``junit-10.xsd`` may hold them: each testcase's ``<system-out>`` and
the testsuite's ``<properties>``, named ``<node id>::<figure>``::

    <testsuite ...>
      <properties>
        <property name="test_shop.py::test_home::swarm_requests" value="12345"/>
        <property name="test_shop.py::test_home::swarm_p95_ms" value="41.0"/>
      </properties>
      <testcase classname="test_shop" name="test_home" time="31.2">
        <system-out>test_home: 50 users ... swarm_requests=12345 ...</system-out>

With ``--swarm-junit=properties`` pytest writes them into the testcase, as ``record_property``
does. :func:`figures` reads either layout.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from ..stats.result import RunResult


def properties(result: RunResult, prefix: str = "swarm") -> list[tuple[str, object]]:
    total = result.total
    h = result.health

    def ms(seconds: float) -> float:
        return round(seconds * 1000, 3)

    return [
        (f"{prefix}_users", result.users),
        (f"{prefix}_users_started", result.started),
        (f"{prefix}_workers", result.workers),
        (f"{prefix}_duration_s", round(result.duration, 3)),
        (f"{prefix}_requests", total.count),
        (f"{prefix}_failures", total.failures),
        (f"{prefix}_error_ratio", round(total.error_ratio, 6)),
        (f"{prefix}_rps", round(total.rps, 2)),
        (f"{prefix}_p50_ms", ms(total.p50)),
        (f"{prefix}_p90_ms", ms(total.p90)),
        (f"{prefix}_p95_ms", ms(total.p95)),
        (f"{prefix}_p99_ms", ms(total.p99)),
        (f"{prefix}_max_ms", ms(total.max)),
        (f"{prefix}_overflow", total.overflow),
        (f"{prefix}_setup_failures", result.snapshot.setup_failures),
        (f"{prefix}_cut_off", result.cut_off),
        # Whole iterations (from their due start in the open model) and the open model's
        # counts, so a CI job can chart coordinated-omission-corrected latency too.
        (f"{prefix}_iterations", result.iterations.count),
        (f"{prefix}_iteration_p99_ms", ms(result.iterations.p99)),
        (f"{prefix}_dropped", result.dropped),
        (f"{prefix}_late", result.late),
        (f"{prefix}_interrupted", bool(result.interrupted)),
        (f"{prefix}_generator_cpu_max", round(h.cpu_max, 1)),
        (f"{prefix}_generator_lag_max_ms", ms(h.lag_max)),
        (f"{prefix}_generator_saturated", h.saturated),
    ]


def add_properties(item: pytest.Item, result: RunResult, prefix: str | None = "swarm") -> None:
    """Attach the figures to the test; later runs of ``swarm.run`` in the same test get
    numbered prefixes (``swarm2_…``)."""
    if prefix is None:
        runs = sum(1 for name, _ in item.user_properties if name.endswith("_requests"))
        prefix = f"swarm{runs + 1}"
    item.user_properties.extend(properties(result, prefix))


_FIGURE = re.compile(r"^swarm\d*_")


def figures(root: ET.Element, test: str) -> dict[str, str]:
    """The figures of load test ``test`` (a testcase name, e.g. ``test_home`` or
    ``test_home[a]``) in a parsed JUnit file of either layout, in the order written.

    Example::

        >>> import xml.etree.ElementTree as ET
        >>> root = ET.fromstring(
        ...     '<testsuites><testsuite><properties>'
        ...     '<property name="t.py::test_home::swarm_requests" value="12"/>'
        ...     '</properties><testcase name="test_home"/></testsuite></testsuites>'
        ... )
        >>> figures(root, "test_home")
        {'swarm_requests': '12'}
    """
    found: dict[str, str] = {}
    for suite in root.iter("testsuite"):
        for prop in suite.findall("properties/property"):
            node, _, figure = prop.get("name", "").rpartition("::")
            if node.rpartition("::")[2] == test and _FIGURE.match(figure):
                found[figure] = prop.get("value", "")
        for case in suite.iter("testcase"):
            if case.get("name") == test:
                for prop in case.iter("property"):
                    found[prop.get("name", "")] = prop.get("value", "")
    return found


class SchemaLayout:
    """``--swarm-junit=schema``: a JUnit file valid against Jenkins xunit's ``junit-10.xsd``,
    which has no ``<properties>`` in a ``<testcase>``. The figures go where the common
    consumers show them: the testcase's ``<system-out>`` (the load test's summary, then one
    ``name=value`` line per figure: Jenkins, GitLab and GitHub's JUnit reporters display
    it), and the testsuite's ``<properties>`` as ``<node id>::<name>`` for machine readers.

    Registered in the process that writes the file (the one process, or the xdist
    controller); it moves the figures off each report before pytest's JUnit writer sees it.
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.texts: dict[str, str] = {}  # node id -> summary, until its teardown report

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        from _pytest.junitxml import xml_key

        xml = self.config.stash.get(xml_key, None)
        if xml is None:
            return
        summary = "\n\n".join(text for name, text in report.sections if name == "swarm")
        if summary:
            self.texts[report.nodeid] = summary
        figures = [(n, v) for n, v in report.user_properties if _FIGURE.match(str(n))]
        if not figures and report.when != "teardown":
            return
        report.user_properties = [
            (n, v) for n, v in report.user_properties if not _FIGURE.match(str(n))
        ]
        if report.when != "teardown":
            return
        text = self.texts.pop(report.nodeid, "")
        if not figures and not text:
            return
        for name, value in figures:
            xml.add_global_property(f"{report.nodeid}::{name}", str(value))
        lines = [text] if text else []
        lines += [f"{name}={value}" for name, value in figures]
        element = ET.Element("system-out")
        element.text = "\n".join(lines)
        xml.node_reporter(report).append(element)
