"""Hooks of the distributed mode that run on an xdist worker.

- after collection (``tryfirst``, so before xdist's own collection message): the handshake with
  the controller, telling it which node ids are load tests;
- every load test runs through the ZeroMQ link (:class:`~pytest_swarm.cluster.agent.AgentLink`);
- report collapsing: each worker runs a load test's protocol without logging; then exactly one
  worker (the controller decides) logs the reports, so the test counts once in the terminal and
  in JUnit. The pattern is pytest-rerunfailures': a ``tryfirst`` ``pytest_runtest_protocol``
  that returns True.
"""

from __future__ import annotations

import gc
from typing import Any

import pytest
from _pytest.runner import runtestprotocol

from ..stash import LINK_FACTORY_KEY
from .agent import Agent, AgentLink, LinkError


def uses_load(item: pytest.Item) -> bool:
    """A load test for scheduling purposes: the marker form, or a test using ``swarm``."""
    from ..items import is_load_item

    return is_load_item(item) or "swarm" in getattr(item, "fixturenames", ())


class WorkerPlugin:
    def __init__(self, config: pytest.Config, endpoint: dict[str, Any]) -> None:
        self.config = config
        self.worker = str(config.workerinput["workerid"])  # type: ignore[attr-defined]
        self.endpoint = endpoint
        self.agent: Agent | None = None
        self.load_ids: set[str] = set()
        self.refused: str | None = None  # why the controller would not take this worker
        # The controller itself refused it (another version): the workers it took report
        # every load test naming this one, so this worker reports none (one error per test,
        # not two). An unreachable controller names nobody: then this worker reports.
        self.refused_by_controller = False
        config.stash[LINK_FACTORY_KEY] = self._link

    def _agent(self) -> Agent:
        if self.agent is None:
            self.agent = Agent(
                self.endpoint,
                self.worker,
                heartbeat_timeout=float(self.endpoint.get("heartbeat_timeout", 5.0)),
            )
        return self.agent

    def _link(self, key: str, settings: dict[str, Any]) -> AgentLink:
        if self.refused is not None:
            raise LinkError(self.refused)
        return AgentLink(self._agent(), key, settings)

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.load_ids = {item.nodeid for item in session.items if uses_load(item)}
        try:
            self._agent().hello(sorted(self.load_ids))
        except LinkError as exc:
            # Not an internal error: every load test of this worker fails with the reason
            # (a version mismatch, an unreachable aggregator), the others run as usual.
            self.refused = str(exc)
            self.refused_by_controller = self._agent().refused is not None

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> Any:
        if item.nodeid not in self.load_ids:
            return None
        if self.refused is not None:
            # Refused by the controller: not run, not reported here (see __init__); the
            # controller fails the session itself if no worker was taken at all.
            return True if self.refused_by_controller else None
        reports = runtestprotocol(item, nextitem=nextitem, log=False)
        try:
            reporter = self._agent().claim(item.nodeid)
        except LinkError:
            # The controller's aggregator is unreachable: this worker's own reports (whose
            # error says why) rather than an INTERNALERROR or a test that vanishes.
            reporter = True
        if reporter:
            ihook = item.ihook
            ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
            for report in reports:
                ihook.pytest_runtest_logreport(report=report)
            ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
        return True

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self.agent is not None:
            self.agent.close()
            self.agent = None
        # The worker's last act: xdist's teardown, then interpreter exit, whose final garbage
        # collection walks every object of gevent, zmq, requests, ... (~0.1 s per worker,
        # ~10 % of a short run's wall time; the controller waits for it). What is alive now
        # lives until exit anyway: exempt it from that collection. Objects made after this
        # are still collected; refcounting frees the rest as modules are torn down.
        gc.freeze()
