"""``--swarm-web``: the live dashboard of real pytest runs (one process, and ``-n 2``) against
the demo target, read by real headless Chromium while the load runs.

The page must show figures that change between two reads while a load runs, draw its charts
with no console error and no request beyond its own server, list every load test's verdict
at the end (the same counts as the JSON file), refuse a non-loopback bind's requests without
the token, and end a load early from its stop button. Every wait is on the page's own state
(Playwright's waits), never a sleep.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from pytest_swarm.demo.server import DemoServer

from .chromium import Page, artifacts, chromium, page
from .harness import RunSwarm
from .live_run import LiveRun

__all__ = ["artifacts", "chromium", "page"]

WAIT_MS = 90_000  # a guard against a hang (Playwright's unit), never a measurement

PROJECT = """
import pytest

@pytest.mark.load(users=3, rate=30, duration="5s")
@pytest.mark.slo("p95 < 5s", "error_rate < 50%")
def test_browse(http):
    http.get("/items", name="items")
    http.get("/items/1", name="item")

@pytest.mark.load(users=2, rate=20, duration="2s")
@pytest.mark.slo("failures <= 0")
def test_flaky(http):
    http.get("/flaky")
"""

LONG = """
import pytest

@pytest.mark.load(users=2, rate=20, duration="10m")
def test_soak(http):
    http.get("/items")
"""

MODES = [pytest.param([], id="one-process"), pytest.param(["-n", "2"], id="xdist")]


def _verdicts(page: Page) -> dict[str, str]:
    rows = page.page.locator("#session tr").all_inner_texts()[1:]
    return {r.split("\t")[0]: r.split("\t")[1] for r in rows if "\t" in r}


def _tile(page: Page, metric: str) -> str:
    return str(page.page.locator(f'[data-metric="{metric}"] .value').inner_text())


@pytest.mark.parametrize("mode", MODES)
def test_the_dashboard_moves_while_the_load_runs_and_lists_the_verdicts(
    pytester: pytest.Pytester, served: DemoServer, page: Page, artifacts: Path, mode: list[str]
) -> None:
    pytester.makepyfile(test_shop=PROJECT)
    json_path = pytester.path / "r.json"
    run = LiveRun(pytester.path, *mode, "--swarm-web", f"--swarm-host={served.url}",
                  f"--swarm-json={json_path}")  # fmt: skip
    try:
        url = run.url()
        assert url.startswith("http://127.0.0.1:") and "token" not in url  # loopback: none
        page.open(url)
        page.page.wait_for_selector("#now:not([hidden])", timeout=WAIT_MS)
        page.page.wait_for_function(
            "() => document.querySelector('[data-metric=\"requests\"] .value').textContent"
            " !== '\\u2013'",  # the page's dash for no figure yet
            timeout=WAIT_MS,
        )
        first = _tile(page, "requests")
        # The next interval's figures: the count of requests so far moves on.
        page.page.wait_for_function(
            f"() => document.querySelector('[data-metric=\"requests\"] .value').textContent"
            f" !== {json.dumps(first)}",
            timeout=WAIT_MS,
        )  # fmt: skip
        second = _tile(page, "requests")
        assert int(second.replace(",", "")) > int(first.replace(",", ""))
        assert page.page.locator("#connection").inner_text() == "live"
        drawn = page.page.eval_on_selector_all(
            "#charts svg.chart path.series",
            "ps => ps.filter(p => p.getAttribute('d').length > 10).length",
        )
        assert drawn >= 3  # requests/s, the latency percentiles, users
        # The latency distribution so far: a percentile curve on a log axis, total first.
        curve = page.page.eval_on_selector_all(
            "#charts figure",
            "fs => fs.filter(f => f.querySelector('figcaption').textContent.startsWith("
            "'Latency by percentile')).map(f => f.querySelectorAll('path.series').length)",
        )
        assert curve and curve[0] >= 2, curve  # Total and at least one request name
        assert page.page.locator("#objectives td.name").count() >= 2
        page.page.screenshot(
            path=str(artifacts / f"dashboard-running-{len(mode)}.png"), full_page=True
        )
        # The end: both verdicts listed, the session over.
        page.page.wait_for_function(
            "() => document.querySelectorAll('#session .verdict.passed, #session .verdict.failed')"
            ".length === 2"
            " && document.querySelector('#connection').textContent === 'session finished'",
            timeout=WAIT_MS,
        )  # fmt: skip
        verdicts = _verdicts(page)
        page.page.screenshot(path=str(artifacts / f"dashboard-end-{len(mode)}.png"), full_page=True)
        counts = page.page.locator("#session tr td:nth-child(3)").all_inner_texts()
        assert page.console_errors == []
        origin = url.rstrip("/")
        assert all(r.startswith(origin) for r in page.requests), page.requests
    finally:
        code = run.finish()
    assert code == 1, run.output  # test_flaky misses failures = 0
    assert verdicts == {
        "test_shop.py::test_flaky": "FAILED",
        "test_shop.py::test_browse": "PASSED",
    }
    document = json.loads(json_path.read_text())["load_tests"]
    # Newest first on the page; the same counts as the JSON report.
    assert counts == [f"{d['total']['count']:,}" for d in reversed(document)]


def test_a_non_loopback_bind_needs_the_token(
    pytester: pytest.Pytester, served: DemoServer, page: Page
) -> None:
    pytester.makepyfile(test_shop=PROJECT.split("@pytest.mark.load(users=2")[0])
    run = LiveRun(pytester.path, "--swarm-web=0.0.0.0:0", f"--swarm-host={served.url}")
    try:
        printed = urlsplit(run.url())
        token = parse_qs(printed.query)["token"][0]
        base = f"http://127.0.0.1:{printed.port}/"  # bound to 0.0.0.0, reached on loopback
        for path in ("", "events", "api/state", f"?token={token[:-1]}x"):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(base + path, timeout=30)
            assert refused.value.code == 403, path
        page.open(base)
        assert "access token" in page.page.inner_text("body")
        page.open(f"{base}?token={token}")
        page.page.wait_for_selector("#connection.live", timeout=WAIT_MS)
        page.page.wait_for_function(
            "() => document.querySelectorAll('#session .verdict.passed').length === 1",
            timeout=WAIT_MS,
        )
        # The browser logs the 403s itself; nothing else may be there.
        assert [e for e in page.console_errors if "403 (Forbidden)" not in e] == []
    finally:
        code = run.finish()
    assert code == 0, run.output


@pytest.mark.parametrize("mode", MODES)
def test_the_stop_button_ends_the_load_early(
    pytester: pytest.Pytester, served: DemoServer, page: Page, artifacts: Path, mode: list[str]
) -> None:
    pytester.makepyfile(test_soak=LONG)
    json_path = pytester.path / "r.json"
    run = LiveRun(pytester.path, *mode, "--swarm-web", f"--swarm-host={served.url}",
                  f"--swarm-json={json_path}")  # fmt: skip
    try:
        page.open(run.url())
        stop = page.page.locator("#stop")
        stop.wait_for(state="visible", timeout=WAIT_MS)
        stop.click()
        page.page.wait_for_selector("#session .verdict.aborted", timeout=WAIT_MS)
        row = page.page.locator("#session tr", has_text="test_soak").inner_text()
        assert "stopped from the dashboard" in row
        page.page.screenshot(
            path=str(artifacts / f"dashboard-stopped-{len(mode)}.png"), full_page=True
        )
        assert page.console_errors == []
    finally:
        code = run.finish()
    assert code == 1, run.output
    (doc,) = json.loads(json_path.read_text())["load_tests"]
    assert doc["duration_s"] < 600  # ended long before its 10 minutes
    assert "stopped from the dashboard" in run.output


TINY = """
import pytest

@pytest.mark.load(users=1, duration="500ms")
def test_tiny(http):
    http.get("/items")
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_fixed_port_under_xdist_is_served_once_by_the_controller(
    pytester: pytest.Pytester, swarm_pytest: RunSwarm
) -> None:
    """Workers get the same command line: a worker that served too would find the port
    taken and fail the run."""
    pytester.makepyfile(test_tiny=TINY)
    port = _free_port()
    run = swarm_pytest("-n", "2", f"--swarm-web=127.0.0.1:{port}", junit=False)
    assert run.result.ret == 0, run.output
    assert run.output.count(f"swarm: live dashboard at http://127.0.0.1:{port}/") == 1


def test_the_ini_value_serves_too(pytester: pytest.Pytester, swarm_pytest: RunSwarm) -> None:
    pytester.makepyfile(test_tiny=TINY)
    pytester.makeini("[pytest]\nswarm_web = auto\n")
    run = swarm_pytest(junit=False)
    assert run.result.ret == 0, run.output
    assert "swarm: live dashboard at http://127.0.0.1:" in run.output


@pytest.mark.parametrize(
    ("value", "words"),
    [("host:abc", "--swarm-web: expected a port 1-65535, got 'abc'"),
     ("::1:80", "--swarm-web: put an IPv6 address in brackets")],
)  # fmt: skip
def test_a_bad_address_is_a_usage_error(
    pytester: pytest.Pytester, swarm_pytest: RunSwarm, value: str, words: str
) -> None:
    pytester.makepyfile(test_tiny=TINY)
    run = swarm_pytest(f"--swarm-web={value}", junit=False)
    assert run.result.ret == pytest.ExitCode.USAGE_ERROR and words in run.output, run.output


def test_a_taken_port_is_a_usage_error_naming_it(
    pytester: pytest.Pytester, swarm_pytest: RunSwarm
) -> None:
    pytester.makepyfile(test_tiny=TINY)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = swarm_pytest(f"--swarm-web=127.0.0.1:{port}", junit=False)
    assert run.result.ret == pytest.ExitCode.USAGE_ERROR, run.output
    assert f"--swarm-web: cannot listen on 127.0.0.1:{port}" in run.output
