"""Hooks of the distributed mode that run in the xdist controller.

The controller never patches gevent and never blocks a hook: the aggregator is a
:class:`~pytest_swarm.cluster.controller_link.Coordinator` with its own thread, created at session
start (so a busy port is a clear usage error before any worker starts), its address and keys
handed to each worker through ``workerinput``.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import pytest

from ..stash import get_feed, get_options, quiet, terminal_writer
from .endpoint import Endpoint, private_ipc
from .scheduler import SwarmScheduling

if TYPE_CHECKING:
    from .controller_link import Coordinator

HEARTBEAT_TIMEOUT = 5.0
# On Ctrl-C, how long the controller waits for the workers' final statistics: their
# iterations in flight (stop_timeout) and their teardowns (bounded by the runner too).
INTERRUPT_WAIT = 20.0


class ControllerPlugin:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self._coordinator: Coordinator | None = None
        self._endpoint: dict[str, Any] | None = None
        self._starting: threading.Thread | None = None
        self._start_error: BaseException | None = None
        self._reported: set[str] = set()  # node ids with a report already logged

    @property
    def coordinator(self) -> Coordinator | None:
        """The coordinator, once started (waits for a start in progress)."""
        if self._starting is not None:
            self._starting.join()
            self._starting = None
            if self._start_error is not None:
                raise self._start_error
        return self._coordinator

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        options = get_options(self.config)
        if options.bind:
            # A TCP address: bound now, so that a busy port is a usage error (exit 4) before
            # any worker starts, and CURVE keys exist before workers are configured.
            from .controller_link import BindError

            try:
                self._coordinator = self._start(options.bind, options.advertise, None)
            except BindError as exc:
                raise pytest.UsageError(str(exc)) from None
            self._endpoint = self._coordinator.endpoint.to_dict()
            return
        # The default, ipc in a private directory: its address is known before the socket
        # exists, so the coordinator (ZeroMQ and the aggregator: ~0.1 s of imports and set-up)
        # starts in a thread while xdist boots the workers, which connect whenever it binds.
        private, address = private_ipc()
        self._endpoint = Endpoint(address).to_dict()

        def start() -> None:
            try:
                self._coordinator = self._start(address, None, private)
            except BaseException as exc:
                self._start_error = exc

        self._starting = threading.Thread(target=start, name="swarm-coordinator-start")
        self._starting.start()

    def _start(self, bind: str, advertise: str | None, private: str | None) -> Coordinator:
        from .controller_link import Coordinator

        options = get_options(self.config)
        return Coordinator(
            bind=bind,
            advertise=advertise,
            interval=options.report_interval,
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            private_dir=private,
            feed=get_feed(self.config),
        )

    def pytest_configure_node(self, node: Any) -> None:
        if self.config.getoption("dist") != "load":
            # Another --dist mode keeps xdist's scheduler (see pytest_xdist_make_scheduler):
            # nobody broadcasts the load tests or registers workers with the start barrier,
            # so each load test runs alone in the worker xdist gives it, with the local
            # aggregator, exactly like a one-process run. Handing such a worker the swarm
            # endpoint would leave it waiting at a barrier that never releases it.
            return
        assert self._endpoint is not None
        endpoint = dict(self._endpoint)
        endpoint["heartbeat_timeout"] = HEARTBEAT_TIMEOUT
        node.workerinput["swarm"] = endpoint

    @pytest.hookimpl(tryfirst=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        if config.getoption("dist") != "load" or self._endpoint is None:
            return None  # other --dist modes keep xdist's scheduler (documented)
        from xdist.workermanage import parse_tx_spec_config

        def started() -> Coordinator:
            coordinator = self.coordinator
            assert coordinator is not None
            return coordinator

        return SwarmScheduling(
            numnodes=len(parse_tx_spec_config(config)),
            load_tests=lambda: started().load_tests(),
            expect=lambda worker: started().expect(worker),
            log=log,
        )

    def pytest_testnodedown(self, node: Any, error: object) -> None:
        if self.coordinator is not None:
            reason = "finished" if error is None else f"crashed: {error}"
            self.coordinator.worker_down(str(node.gateway.id), reason)
            if error is not None and "keyboard-interrupt" in str(error):
                # A worker's session was interrupted (a signal to it alone, KeyboardInterrupt
                # in a body): xdist stops the session only once every worker is done, so
                # stop the others' users now.
                self.coordinator.interrupt(f"worker {node.gateway.id} was interrupted")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._reported.add(report.nodeid)

    @pytest.hookimpl(tryfirst=True)
    def pytest_keyboard_interrupt(self, excinfo: Any) -> None:
        """Ctrl-C or SIGTERM: stop the workers' users now, wait (bounded) for their final
        statistics, and report each load test that started and was not reported yet with
        what the swarm measured (the workers' own reports no longer reach this process:
        xdist's loop is interrupted)."""
        from ..report.logged import interrupted_reports
        from ..signals import soften

        if self.coordinator is None:
            return
        hurry = soften()  # a second Ctrl-C ends the wait below, not the process (signals.py)
        text = str(excinfo.value)
        if "SIGTERM" in text:
            reason = "SIGTERM"
        elif "keyboard-interrupt" in text:  # xdist: a worker's session was interrupted
            reason = f"a worker was interrupted: {text}"
        else:
            reason = "SIGINT"
        self.coordinator.interrupt(reason)
        results = self.coordinator.interrupted_results(timeout=INTERRUPT_WAIT, hurry=hurry)
        interrupted_reports(self.config, results, reason, self._reported)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Workers refused at the handshake report no load test (the others name them in
        each); if no worker was taken at all, nobody did: one clear error for the session."""
        coordinator = self.coordinator
        if coordinator is None:
            return
        with coordinator._lock:
            refused = dict(coordinator.control.refused)
            released = any(r.release_time is not None for r in coordinator.control.runs.values())
        if not refused or released:
            return
        shown = "; ".join(f"{w}: {why}" for w, why in sorted(refused.items())[:5])
        write = terminal_writer(self.config, suspend_capture=False)
        if write is not None:
            write(f"\nswarm: ERROR: no load test ran: the controller refused the workers ({shown})")
        if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

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
        from ..signals import restore

        restore()
        coordinator = self.coordinator
        if coordinator is not None:
            coordinator.close()
            self._coordinator = None
