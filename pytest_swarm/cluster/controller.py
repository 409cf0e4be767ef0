"""Hooks of the distributed mode that run in the xdist controller.

The controller never patches gevent and never blocks a hook: the aggregator is a
:class:`~pytest_swarm.cluster.coordinator.Coordinator` with its own thread, created at session
start (so a busy port is a clear usage error before any worker starts), its address and keys
handed to each worker through ``workerinput``.
"""

from __future__ import annotations

from typing import Any

import pytest

from ..engine.link import LiveStatus
from ..report.terminal import live_line
from ..session import get_options, quiet, terminal_writer
from .coordinator import BindError, Coordinator
from .scheduler import SwarmScheduling

HEARTBEAT_TIMEOUT = 5.0


class ControllerPlugin:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.coordinator: Coordinator | None = None

    def _live(self) -> Any:
        if quiet(self.config):
            return None
        write = terminal_writer(self.config, suspend_capture=False)
        if write is None:
            return None

        def live(status: LiveStatus) -> None:
            write(live_line(status))

        return live

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        options = get_options(self.config)
        try:
            self.coordinator = Coordinator(
                bind=options.bind,
                advertise=options.advertise,
                interval=options.report_interval,
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                live=self._live(),
            )
        except BindError as exc:
            raise pytest.UsageError(str(exc)) from None

    def pytest_configure_node(self, node: Any) -> None:
        if self.config.getoption("dist") != "load":
            # Another --dist mode keeps xdist's scheduler (see pytest_xdist_make_scheduler):
            # nobody broadcasts the load tests or registers workers with the start barrier,
            # so each load test runs alone in the worker xdist gives it, with the local
            # aggregator, exactly like a one-process run. Handing such a worker the swarm
            # endpoint would leave it waiting at a barrier that never releases it.
            return
        assert self.coordinator is not None
        endpoint = self.coordinator.endpoint.to_dict()
        endpoint["heartbeat_timeout"] = HEARTBEAT_TIMEOUT
        node.workerinput["swarm"] = endpoint

    @pytest.hookimpl(tryfirst=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        if config.getoption("dist") != "load" or self.coordinator is None:
            return None  # other --dist modes keep xdist's scheduler (documented)
        from xdist.workermanage import parse_tx_spec_config

        coordinator = self.coordinator
        return SwarmScheduling(
            numnodes=len(parse_tx_spec_config(config)),
            load_tests=coordinator.load_tests,
            expect=coordinator.expect,
            log=log,
        )

    def pytest_testnodedown(self, node: Any, error: object) -> None:
        if self.coordinator is not None:
            reason = "finished" if error is None else f"crashed: {error}"
            self.coordinator.worker_down(str(node.gateway.id), reason)

    def pytest_keyboard_interrupt(self, excinfo: Any) -> None:
        """Ctrl-C: what the swarm measured so far, from the controller's aggregator (the
        workers are interrupted too and report nothing)."""
        if self.coordinator is None:
            return
        from ..report.terminal import full_report

        write = terminal_writer(self.config, suspend_capture=False)
        for name, result in self.coordinator.running_results():
            if write is not None:
                write("\nINTERRUPTED " + full_report(name, result, None))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        coordinator = self.coordinator
        if coordinator is None:
            return
        if coordinator.rejected:
            terminalreporter.write_line(
                f"swarm: the aggregator dropped {coordinator.rejected} malformed or "
                "unexpected message(s)"
            )
        if not quiet(self.config) and coordinator.control.runs:
            # The controller's own cost, so a user can see it stays small as workers grow.
            terminalreporter.write_line(
                f"swarm: aggregator thread CPU {coordinator.cpu_seconds:.3f} s for "
                f"{len(coordinator.control.runs)} load test(s)"
            )

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self.coordinator is not None:
            self.coordinator.close()
            self.coordinator = None
