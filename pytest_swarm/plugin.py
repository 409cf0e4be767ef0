"""pytest-swarm's pytest hooks. This module only wires; the work lives in the modules it calls.

Registered through the ``pytest11`` entry point as ``swarm`` (``-p no:swarm`` disables it).
"""

from __future__ import annotations

import signal
import socket
import threading
from collections.abc import Callable, Generator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from . import integrations, items
from .engine import patching
from .fixture import Swarm, fast_http, http, measure_fixture, swarm, swarm_user
from .options import add_options
from .publish import STOPPED_ATTR, finished_events
from .stash import get_feed, get_options, quiet, terminal_writer

__all__ = ["fast_http", "http", "measure_fixture", "swarm", "swarm_user"]

SECTION = "swarm"
ACTIVE_KEY = pytest.StashKey[bool]()
SIGTERM_KEY = pytest.StashKey[bool]()


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> None:
    # Runs before any conftest is imported, so ssl/requests are patched before first use.
    option = early_config.known_args_namespace
    mode = str(
        getattr(option, "swarm_patch", None) or early_config.getini("swarm_patch") or "auto"
    ).lower()
    controller = patching.is_xdist_controller(
        args, getattr(option, "numprocesses", None), getattr(option, "dist", None)
    )
    if mode == "auto":
        paths = [Path(a.split("::")[0]) for a in getattr(option, "file_or_dir", None) or []]
        paths = [p for p in paths if p.exists()]
        if not paths:
            testpaths = early_config.getini("testpaths")
            root = early_config.rootpath
            paths = [root / p for p in testpaths] if testpaths else [Path.cwd()]
        patterns = early_config.getini("python_files") or ["test_*.py", "*_test.py"]
        active = patching.scan_for_load_tests(paths, patterns)
    else:
        active = mode == "on"
    # The same judgement decides, in an xdist controller, whether the distributed mode (our
    # scheduler and aggregator) takes part at all.
    early_config.stash[ACTIVE_KEY] = active
    if active and not controller:
        patching.patch()
        integrations.after_patch()  # grpc's init_gevent: after the patch, before any channel


def _sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt("SIGTERM")


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    # SIGTERM (what CI sends on cancel) ends the session as Ctrl-C does: reports written,
    # exit code 2, instead of dying on the spot with nothing. During a load test the runner
    # handles both signals itself (users stop in order, teardowns run). Only where nobody
    # else chose a handler, and only in the main thread (the only one that may set one).
    main = threading.current_thread() is threading.main_thread()
    if main and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _sigterm)
        session.config.stash[SIGTERM_KEY] = True


def pytest_unconfigure(config: pytest.Config) -> None:
    if config.stash.get(SIGTERM_KEY, False) and signal.getsignal(signal.SIGTERM) is _sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "load(users, rate=None, duration=None, wait=None, iterations=None, stop_timeout=None): "
        "run this test as the body of `users` virtual users (pytest-swarm)",
    )
    config.addinivalue_line(
        "markers",
        "slo(*objectives, request=None): service-level objectives of a load test, "
        "e.g. slo('p95 < 300ms', 'error_rate < 1%') (pytest-swarm)",
    )
    get_options(config)  # validate options early: a bad value is a usage error
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:
        config.pluginmanager.register(SummaryPrinter(config), "swarm-summary")
        if get_options(config).junit == "schema":  # JUnit valid against junit-10.xsd
            from .report.junit import SchemaLayout

            config.pluginmanager.register(SchemaLayout(config), "swarm-junit-schema")
        # The aggregating process (one process, or the xdist controller) applies the
        # abort rules of slo(..., abort=True) on its live feed.
        from .abort import AbortWatch

        feed = get_feed(config)
        feed.subscribe(AbortWatch(feed))
        if not quiet(config):  # -q: no live line, only each load test's headline
            from .report.live import LivePlugin

            live = LivePlugin(config)
            config.pluginmanager.register(live, "swarm-live")
            feed.subscribe(live.live.on_event)
        web = get_options(config).web
        if web is not None:  # the aggregating process only: it has the feed
            from .web.plugin import DashboardPlugin

            config.pluginmanager.register(DashboardPlugin(config, web), "swarm-web")
    if workerinput is not None and "swarm" in workerinput:
        from .cluster.worker_plugin import WorkerPlugin

        config.pluginmanager.register(WorkerPlugin(config, workerinput["swarm"]), "swarm-worker")
    elif _is_controller(config) and config.stash.get(ACTIVE_KEY, False):
        from .cluster.controller_plugin import ControllerPlugin

        config.pluginmanager.register(ControllerPlugin(config), "swarm-controller")


def _is_controller(config: pytest.Config) -> bool:
    """An xdist controller: xdist active with a --dist mode, in a process that is not a worker
    (xdist registers its own controller plugin only after this hook)."""
    if hasattr(config, "workerinput") or not config.pluginmanager.hasplugin("xdist"):
        return False
    if config.getoption("collectonly", default=False):
        return False
    return bool(config.getoption("dist", default="no") != "no")


@pytest.hookimpl(wrapper=True)
def pytest_pycollect_makeitem(
    collector: pytest.Collector, name: str, obj: object
) -> Generator[None, Any, Any]:
    result = yield
    # Validate during collection: an error here is a collection error naming the test.
    for item in result if isinstance(result, list) else [result]:
        if isinstance(item, pytest.Item):
            items.prepare(item)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    from .report.session import finish_report, note_phase

    note_phase(item, call.when, call.start)
    # The summary travels as a report section and the JSON document as a report attribute,
    # so both reach the xdist controller too.
    results = _results(item, report)
    if results:
        from .report.logged import document
        from .report.terminal import full_report

        text = "\n\n".join(full_report(label, r, v) for label, _, r, v in results)
        # Always: the live feed's LoadFinished carries it, not only the report files.
        docs = [document(key, r, v) for _, key, r, v in results]
        stopped = item.stash.get(items.STOPPED_KEY, "")
        if stopped:  # stopped on request (abort rule, dashboard): the feed says "aborted"
            setattr(report, STOPPED_ATTR, stopped)
            for doc in docs:
                doc["stopped"] = stopped
        # Baseline comparison, outcome and context, the reason first in the failure line.
        extra = finish_report(item, report, results, docs, stopped)
        report.sections.append((SECTION, text + ("\n" + extra if extra else "")))
        report.swarm_json = docs  # type: ignore[attr-defined]
    return report


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # swarm.run tests are load tests too: mark them, so `-m "not load"` deselects them and
    # `-m load` selects every load test (before pytest's own -m filter runs).
    for item in items:
        if "swarm" in getattr(item, "fixturenames", ()) and not item.get_closest_marker("load"):
            item.add_marker("load")


def _results(item: pytest.Item, report: pytest.TestReport) -> list[tuple[str, str, Any, Any]]:
    """(label, key, result, verdict) of the load runs this report is about."""
    outcome = item.stash.get(items.OUTCOME_KEY, None)
    if outcome is not None and (
        report.when == "call" or (report.when == "setup" and report.failed)
    ):
        verdict = item.stash.get(items.VERDICT_KEY, None)
        return [(item.name, item.nodeid, _with_load(outcome), verdict)]
    swarm_fixture = getattr(item, "funcargs", {}).get("swarm")
    # A project may define its own fixture named "swarm": only ours has load runs.
    if report.when == "call" and isinstance(swarm_fixture, Swarm):
        return [
            (f"{item.name} [swarm.run #{i + 1}]", f"{item.nodeid}#{i + 1}", _with_load(o), None)
            for i, o in enumerate(swarm_fixture.outcomes)
        ]
    return []


def _with_load(outcome: Any) -> Any:
    """The outcome's result, carrying the settings that defined its load (for baselines)."""
    from .report.compare import load_settings

    outcome.result.load = load_settings(outcome.spec)
    return outcome.result


class SummaryPrinter:
    """Prints each load test's summary where the reports arrive: in this process, or in the
    xdist controller (workers have no terminal)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.documents: list[dict[str, Any]] = []
        self.started = datetime.now(timezone.utc).isoformat(timespec="seconds")

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.documents.extend(getattr(report, "swarm_json", None) or [])
        feed = get_feed(self.config)
        for event in finished_events(report):
            feed.publish(event)
        texts = [content for name, content in report.sections if name == SECTION]
        from .report.screen import summary_printer

        write = summary_printer(self.config) if texts else None
        if write is None:
            return
        for text in texts:
            # Coloured where pytest's writer has markup on: objectives met / missed, warnings.
            write(text.splitlines()[0] if quiet(self.config) else text)

    def context(self) -> dict[str, str]:
        """What the reports say about the run itself."""
        args = " ".join(self.config.invocation_params.args)
        return {
            "started": self.started,
            "command": f"pytest {args}".strip(),
            "generator host": socket.gethostname(),
            "target": get_options(self.config).host or "",
        }

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        from .report.files import ReportFileError, write_json
        from .report.html import write_html
        from .report.session import session_files

        options = get_options(self.config)
        written = []
        write = terminal_writer(self.config)
        reports: list[tuple[str | None, Callable[[str], Path]]] = [
            (options.json_path, lambda p: write_json(p, self.documents)),
            (options.html_path, lambda p: write_html(p, self.documents, self.context())),
        ]
        reports += session_files(options, self.documents)  # CSV, baseline, step summary
        for path, writer in reports:
            try:
                if path:
                    written.append(writer(path))
            except ReportFileError as exc:  # disk full, no permission: one line, exit 1
                if write is not None:
                    write(f"\nswarm: ERROR: {exc}")
                if session.exitstatus == pytest.ExitCode.OK:
                    session.exitstatus = pytest.ExitCode.TESTS_FAILED
        for target in written:
            if write is not None and not quiet(self.config):
                write(f"\nswarm: {len(self.documents)} load test result(s) written to {target}")
        from .feed import SessionFinished

        get_feed(self.config).publish(SessionFinished())
