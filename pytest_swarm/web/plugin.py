"""The pytest side of ``--swarm-web``: start the dashboard at configure, print its URL at the
start of the session, stop it at unconfigure. Registered only in the aggregating process
(the one pytest process, or the xdist controller), never on an xdist worker.
"""

from __future__ import annotations

import pytest

from ..stash import get_feed, terminal_writer
from .address import AddressError, is_loopback, parse_address
from .server import DashboardServer
from .service import Dashboard

__all__ = ["DashboardPlugin"]


class DashboardPlugin:
    """Owns the session's :class:`Dashboard` and its :class:`DashboardServer`."""

    def __init__(self, config: pytest.Config, value: str) -> None:
        try:
            host, port = parse_address(value)
        except AddressError as exc:
            raise pytest.UsageError(str(exc)) from None
        self.config = config
        self.dashboard = Dashboard(get_feed(config))
        self.server = DashboardServer(self.dashboard, host, port)
        try:
            self.server.start()
        except OSError as exc:
            shown = f"[{host}]" if ":" in host else host
            raise pytest.UsageError(
                f"--swarm-web: cannot listen on {shown}:{port}: {exc.strerror or exc}"
            ) from None
        self.dashboard.start()

    @pytest.hookimpl(trylast=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        write = terminal_writer(self.config)
        if write is None:
            return
        note = "" if is_loopback(self.server.host) else " (the token in it is required)"
        write(f"swarm: live dashboard at {self.server.url}{note}")

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self.close()

    def close(self) -> None:
        # Let the last events (the session's end) reach the pages before the streams end.
        self.dashboard.drain(timeout=2.0)
        self.server.stop(timeout=5.0)
        self.dashboard.close()
