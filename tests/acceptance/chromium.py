"""Headless Chromium for the page tests: Debian's ``/usr/bin/chromium`` driven by Playwright.

No browser is downloaded: the executable path is given explicitly. Where Playwright or the
browser is missing the page tests skip, except when ``SWARM_REQUIRE_BROWSER=1`` (``.ci/run``
sets it), where a missing browser is a failure: CI must never pass by skipping them.

Screenshots go to ``$SWARM_ARTIFACTS`` (default ``artifacts/`` under the temporary directory).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("SWARM_CHROMIUM", "/usr/bin/chromium")
# Flags for a root, GPU-less, offline machine: no sandbox (root), and none of the background
# connections Chromium would otherwise try on this closed network.
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@dataclass
class Page:
    """A page with everything it logged and requested since it opened."""

    page: Any
    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def open(self, url: str) -> None:
        self.page.goto(url)


def _unavailable(reason: str) -> None:
    if os.environ.get("SWARM_REQUIRE_BROWSER") == "1":
        pytest.fail(f"SWARM_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


_SHARED: dict[str, Any] = {}


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed")
    if not shutil.which(CHROMIUM):
        _unavailable(f"no Chromium at {CHROMIUM}")
    # One browser per process, shared: every test module that imports this fixture gets a
    # session fixture of its own, and a second sync_playwright() in the same thread fails
    # ("Sync API inside the asyncio loop"). The last user to finish closes it.
    if not _SHARED:
        playwright = sync_playwright().start()
        _SHARED["playwright"] = playwright
        _SHARED["browser"] = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        _SHARED["users"] = 0
    _SHARED["users"] += 1
    try:
        yield _SHARED["browser"]
    finally:
        _SHARED["users"] -= 1
        if _SHARED["users"] == 0:
            try:
                _SHARED["browser"].close()
            finally:
                _SHARED.pop("playwright").stop()
                _SHARED.clear()


@pytest.fixture
def page(chromium: Any) -> Iterator[Page]:
    context = chromium.new_context(viewport={"width": 1400, "height": 900})
    raw = context.new_page()
    watched = Page(raw)
    raw.on(
        "console", lambda m: watched.console_errors.append(m.text) if m.type == "error" else None
    )
    raw.on("pageerror", lambda e: watched.console_errors.append(str(e)))
    raw.on("request", lambda r: watched.requests.append(r.url))
    raw.on("dialog", lambda d: (watched.console_errors.append(f"dialog: {d.message}"), d.dismiss()))
    try:
        yield watched
    finally:
        context.close()


@pytest.fixture
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = os.environ.get("SWARM_ARTIFACTS")
    path = Path(base) if base else tmp_path_factory.getbasetemp() / "artifacts"
    path.mkdir(parents=True, exist_ok=True)
    return path
