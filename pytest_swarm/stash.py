"""Run-wide state of the plugin, kept in ``config.stash``: options, the terminal writer, the
link factory.

Example:
    >>> options = get_options(config)            # doctest: +SKIP
    >>> link = make_link(config, "test_cart")    # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from .feed import Feed
from .options import SwarmOptions, read_options

if TYPE_CHECKING:
    from .engine.link import Link

OPTIONS_KEY = pytest.StashKey[SwarmOptions]()
FEED_KEY = pytest.StashKey[Feed]()
# Set by the distributed mode on xdist workers: builds the ZeroMQ link for one test, given
# its key and the settings its LoadStarted event carries (objectives, abort rules).
LINK_FACTORY_KEY = pytest.StashKey["Callable[[str, dict[str, Any]], Link]"]()


def get_options(config: pytest.Config) -> SwarmOptions:
    options = config.stash.get(OPTIONS_KEY, None)
    if options is None:
        options = config.stash[OPTIONS_KEY] = read_options(config)
    return options


def get_feed(config: pytest.Config) -> Feed:
    """The session's live feed (see :mod:`pytest_swarm.feed`); meaningful in the process that
    aggregates (one process, or the xdist controller). On an xdist worker nothing publishes."""
    feed = config.stash.get(FEED_KEY, None)
    if feed is None:
        feed = config.stash[FEED_KEY] = Feed()
    return feed


def quiet(config: pytest.Config) -> bool:
    return config.get_verbosity() < 0


def terminal_writer(
    config: pytest.Config, suspend_capture: bool = True
) -> Callable[[str], None] | None:
    """Writes a line to the real terminal even while pytest captures output.

    ``suspend_capture=False`` for writers called from another thread (the xdist controller's
    aggregator): toggling capture is process-wide and the controller does not capture then."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return None
    capman = config.pluginmanager.get_plugin("capturemanager") if suspend_capture else None

    def write(line: str) -> None:
        if capman is not None:
            with capman.global_and_fixture_disabled():
                reporter.ensure_newline()
                reporter.write_line(line)
        else:
            reporter.ensure_newline()
            reporter.write_line(line)

    return write


def make_link(config: pytest.Config, key: str, settings: dict[str, Any] | None = None) -> Link:
    """The link for one load test (``key`` names it across workers): ZeroMQ to the
    controller on an xdist worker, else local (publishing on the session's feed).
    ``settings`` (the objectives and abort rules as plain data) travel in the feed's
    ``LoadStarted`` event, from the worker to the controller under xdist."""
    # Imported here: the engine pulls in gevent, which a run without load tests never needs.
    from .engine.link import LocalLink

    factory = config.stash.get(LINK_FACTORY_KEY, None)
    if factory is not None:
        return factory(key, dict(settings or {}))
    # The terminal's live line subscribes to the feed (report/live.py), as the dashboard does.
    interval = get_options(config).report_interval
    return LocalLink(
        interval=interval,
        feed=get_feed(config),
        key=key,
        settings=settings,
    )
