"""Command-line options and their ini twins, read once into :class:`SwarmOptions`.

Every ``--swarm-x`` option has an ini key ``swarm_x``; the command line wins.

Example (pytest.ini)::

    [pytest]
    swarm_host = http://127.0.0.1:8089
    swarm_duration = 30s
    swarm_slo =
        p99 < 1s
        error_rate < 1%
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from .defaults import DEFAULT_MAX_BODY, DEFAULT_TIMEOUT
from .objectives import Objective, ObjectiveError, parse_objective
from .spec import SpecError, SpecOverrides, parse_duration

GROUP = "swarm"

# (option name, ini name, help, default for the ini)
_OPTIONS: list[tuple[str, str, str]] = [
    ("users", "override the users of every load test (marker and swarm.run)", ""),
    ("rate", "override the spawn rate (users started per second) of every load test", ""),
    ("duration", "override the duration of every load test (e.g. 30s, 2m)", ""),
    ("scale", "multiply users and rate of every load test (e.g. 0.1 for a smoke run)", ""),
    ("host", "target base URL for the http client (default: the base_url fixture)", ""),
    ("timeout", f"default timeout of every HTTP request (default {DEFAULT_TIMEOUT:g}s)", ""),
    # (HTTP clients) the whole request's bound, where the timeout bounds each read.
    (
        "request-deadline",
        "default whole-request deadline of every HTTP request (default: the timeout)",
        "",
    ),
    ("stop-timeout", "how long an iteration in flight may finish at the end (default 5s)", ""),
    ("report-interval", "seconds between statistics deltas (default 1)", ""),
    ("patch", "gevent monkey-patching: auto (default), on, off", ""),
    ("bind", "aggregator address for xdist runs (default: ipc in a private directory)", ""),
    ("advertise", "host workers connect to for a tcp:// --swarm-bind (default: its host)", ""),
    ("json", "write every load test's full results (timeline included) to this JSON file", ""),
    ("html", "write a self-contained HTML report of every load test to this file", ""),
    ("csv", "write Locust's four CSV files per load test: PREFIX_<test>_stats.csv, ...", ""),
    (
        "junit",
        "where JUnit XML gets the figures: schema (default: each testcase's system-out and the "
        "suite's properties, valid against Jenkins xunit's junit-10.xsd) or properties "
        "(in each testcase, as record_property does)",
        "",
    ),
    ("save", "store each load test's result as baseline NAME under --swarm-storage", ""),
    ("storage", "where baselines are stored (default .swarm/)", ""),
]


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup(GROUP, "pytest-swarm load testing")
    for name, help_text, _ in _OPTIONS:
        dest = "swarm_" + name.replace("-", "_")
        group.addoption(f"--swarm-{name}", dest=dest, default=None, help=help_text)
        parser.addini(dest, help_text, default=None)
    group.addoption(
        "--swarm-slo",
        dest="swarm_slo",
        action="append",
        default=[],
        metavar="EXPR",
        help='objective added to every marker-form load test, e.g. "p95<500ms" (repeatable)',
    )
    parser.addini("swarm_slo", "objectives added to every load test", type="linelist")
    web_help = "serve the live dashboard on [HOST:]PORT (loopback, a free port without one)"
    group.addoption(
        "--swarm-web", dest="swarm_web", nargs="?", const="auto", default=None,
        metavar="[HOST:]PORT", help=web_help,
    )  # fmt: skip
    parser.addini("swarm_web", web_help, default=None)
    group.addoption(
        "--swarm-autosave", dest="swarm_autosave", action="store_true", default=False,
        help="store each load test's result as the next numbered baseline",
    )  # fmt: skip
    parser.addini("swarm_autosave", "store every run as a baseline", type="bool", default=False)
    group.addoption(
        "--swarm-compare", dest="swarm_compare", nargs="?", const="latest", default=None,
        metavar="NAME", help="compare with a stored baseline (default: the latest)",
    )  # fmt: skip
    group.addoption(
        "--swarm-compare-fail", dest="swarm_compare_fail", action="append", default=[],
        metavar="METRIC:LIMIT",
        help="fail a load test whose METRIC got worse by more than LIMIT, e.g. p95:10%% "
        "(repeatable; any percentile, mean, rps, error_rate)",
    )  # fmt: skip
    parser.addini("swarm_max_body", f"max response body bytes (default {DEFAULT_MAX_BODY})")


@dataclass(frozen=True)
class SwarmOptions:
    """The run-wide settings, validated."""

    overrides: SpecOverrides
    host: str | None
    timeout: float
    report_interval: float
    patch: str
    objectives: tuple[Objective, ...]
    max_body: int
    bind: str | None
    advertise: str | None
    json_path: str | None
    html_path: str | None = None
    request_deadline: float | None = None  # None: the timeout (the clients' default)
    web: str | None = None  # --swarm-web [HOST:]PORT, validated; "auto": loopback, a free port
    csv_prefix: str | None = None
    junit: str = "schema"  # or "properties"
    save: str | None = None  # --swarm-save NAME, or "" for --swarm-autosave
    storage: str = ".swarm"
    compare: str | None = None  # a baseline name, "latest", or None
    compare_fail: tuple[Any, ...] = ()  # report.compare.Rule


def raw(config: pytest.Config, name: str) -> Any:
    """The command-line value of ``swarm_<name>``, else its ini value, else None."""
    dest = "swarm_" + name
    value = config.getoption(dest, default=None)
    if value in (None, "", []):
        value = config.getini(dest) if dest in config._parser._inidict else None
    return None if value in ("", []) else value


def _number(config: pytest.Config, name: str, kind: type, minimum: float) -> Any:
    value = raw(config, name)
    if value is None:
        return None
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise pytest.UsageError(
            f"--swarm-{name.replace('_', '-')}: expected a number, got {value!r}"
        ) from None
    if number < minimum:
        raise pytest.UsageError(
            f"--swarm-{name.replace('_', '-')}: must be at least {minimum}, got {value!r}"
        )
    return number


def _seconds(config: pytest.Config, name: str) -> float | None:
    value = raw(config, name)
    if value is None:
        return None
    try:
        return parse_duration(value, argument=f"--swarm-{name.replace('_', '-')}")
    except SpecError as exc:
        raise pytest.UsageError(str(exc)) from None


def _processes(config: pytest.Config) -> int:
    """How many processes share each load test: xdist's worker count in a worker (the
    controller never builds a spec), else 1."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:
        return 1
    count = workerinput.get("workercount", 1)
    return count if type(count) is int and count >= 1 else 1


def read_options(config: pytest.Config) -> SwarmOptions:
    """Validate every swarm option; bad values are a usage error naming the option."""
    # --swarm-duration overrides every test; the ini swarm_duration is only the default for
    # tests that do not say (the contract: "default from ini swarm_duration").
    cli_duration = config.getoption("swarm_duration", default=None)
    ini_duration = config.getini("swarm_duration")
    try:
        duration = (
            parse_duration(cli_duration, argument="--swarm-duration") if cli_duration else None
        )
        default = parse_duration(ini_duration, argument="swarm_duration") if ini_duration else 10.0
    except SpecError as exc:
        raise pytest.UsageError(str(exc)) from None
    overrides = SpecOverrides(
        users=_number(config, "users", int, 1),
        rate=_number(config, "rate", float, 1e-9),
        duration=duration,
        default_duration=default,
        scale=_number(config, "scale", float, 1e-9),
        stop_timeout=_seconds(config, "stop_timeout") or 5.0,
        processes=_processes(config),
    )
    patch = str(raw(config, "patch") or "auto").lower()
    if patch not in ("auto", "on", "off"):
        raise pytest.UsageError(f"--swarm-patch: expected auto, on or off, got {patch!r}")
    objectives = []
    for text in list(config.getini("swarm_slo") or []) + list(config.getoption("swarm_slo") or []):
        try:
            objectives.append(parse_objective(text))
        except ObjectiveError as exc:
            raise pytest.UsageError(f"--swarm-slo: {exc}") from None
    max_body = config.getini("swarm_max_body")
    return SwarmOptions(
        overrides=overrides,
        host=raw(config, "host"),
        timeout=_seconds(config, "timeout") or DEFAULT_TIMEOUT,
        report_interval=_seconds(config, "report_interval") or 1.0,
        patch=patch,
        objectives=tuple(objectives),
        max_body=int(max_body) if max_body else DEFAULT_MAX_BODY,
        bind=raw(config, "bind"),
        advertise=raw(config, "advertise"),
        json_path=raw(config, "json"),
        html_path=raw(config, "html"),
        request_deadline=_seconds(config, "request_deadline"),
        web=_web(config),
        **_reports(config),
    )


def _reports(config: pytest.Config) -> dict[str, Any]:
    """CSV, JUnit layout and baseline options (see docs/reports.md)."""
    from .report.compare import CompareError, parse_rule, valid_name

    junit = str(raw(config, "junit") or "schema").lower()
    if junit not in ("properties", "schema"):
        raise pytest.UsageError(f"--swarm-junit: expected properties or schema, got {junit!r}")
    save = raw(config, "save")
    if save is not None and not valid_name(str(save)):
        raise pytest.UsageError(
            f"--swarm-save: {save!r} is not a baseline name (letters, digits, . _ -, at most 64)"
        )
    if save is None and (config.getoption("swarm_autosave") or config.getini("swarm_autosave")):
        save = ""
    compare = config.getoption("swarm_compare", default=None)
    if compare is not None and compare != "latest" and not valid_name(str(compare)):
        raise pytest.UsageError(f"--swarm-compare: {compare!r} is not a baseline name")
    rules = []
    for text in config.getoption("swarm_compare_fail") or []:
        try:
            rules.append(parse_rule(text))
        except CompareError as exc:
            raise pytest.UsageError(f"--swarm-compare-fail: {exc}") from None
    if rules and compare is None:
        compare = "latest"
    return {
        "csv_prefix": raw(config, "csv"),
        "junit": junit,
        "save": save,
        "storage": str(raw(config, "storage") or ".swarm"),
        "compare": compare,
        "compare_fail": tuple(rules),
    }


def _web(config: pytest.Config) -> str | None:
    from .web.address import AddressError, parse_address

    value = raw(config, "web")
    if value is None:
        return None
    try:
        parse_address(str(value))
    except AddressError as exc:
        raise pytest.UsageError(str(exc)) from None
    return str(value)
