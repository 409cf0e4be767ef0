"""The worker side of the ZeroMQ link (runs inside a gevent-patched xdist worker).

One DEALER socket per worker (identity = xdist worker id). A receiver greenlet dispatches the
controller's answers to whoever waits for them; a heartbeat greenlet pings the controller and
notices when it has gone silent (the controller was killed): then the running load test is told
to stop, so no user outlives its controller by more than ``heartbeat_timeout`` plus the stop
timeout.

:class:`AgentLink` is the :class:`~pytest_swarm.engine.link.Link` the engine talks to on a
worker: ``begin`` is the start barrier, ``publish`` streams deltas (the final one is
acknowledged, and resent until it is), ``finish`` fetches the merged result of the swarm.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gevent
import zmq.green as zmq  # never `import zmq.auth` here: it would rebind this name (DESIGN.md)
from gevent.event import AsyncResult, Event

from ..engine.link import Share
from ..engine.runner import Tick
from ..spec import LoadSpec, split_users
from ..stats.result import Health, RunResult, TimelinePoint
from ..stats.snapshot import Snapshot
from .wire import Message, VersionMismatch, WireError, decode, encode, unpack_timeline

HELLO_TIMEOUT = 30.0
ACK_RETRY = 1.0
ACK_ATTEMPTS = 10


class LinkError(RuntimeError):
    """The controller cannot be reached or refused this worker."""


class Agent:
    """This worker's connection to the controller."""

    def __init__(
        self,
        endpoint: dict[str, Any],
        worker: str,
        *,
        heartbeat: float = 1.0,
        heartbeat_timeout: float = 5.0,
    ) -> None:
        self.worker = worker
        self.heartbeat = heartbeat
        self.heartbeat_timeout = heartbeat_timeout
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.IDENTITY, worker.encode())
        self.socket.setsockopt(zmq.LINGER, 2000)
        self.socket.setsockopt(zmq.SNDHWM, 10_000)
        if endpoint.get("server_public"):
            self.socket.curve_serverkey = endpoint["server_public"].encode()
            self.socket.curve_publickey = endpoint["client_public"].encode()
            self.socket.curve_secretkey = endpoint["client_secret"].encode()
        self.socket.connect(endpoint["address"])
        self.address = endpoint["address"]
        self.last_heard = time.monotonic()
        self.interval = 1.0
        self._waiters: dict[tuple[str, str], AsyncResult] = {}
        self._stoppers: dict[str, Callable[[str], None]] = {}
        self.stop_reasons: dict[str, str] = {}
        self.dropped = 0
        self._closed = Event()
        self._greenlets = [gevent.spawn(self._receive), gevent.spawn(self._heartbeat)]

    # -- plumbing ---------------------------------------------------------------------------
    def send(self, kind: str, **body: Any) -> None:
        try:
            self.socket.send(encode(kind, **body), zmq.NOBLOCK)
        except zmq.Again:
            # The controller is not draining: count it; sequence numbers make the loss visible.
            self.dropped += 1

    def _waiter(self, kind: str, test: str) -> AsyncResult:
        key = (kind, test)
        waiter = self._waiters.get(key)
        if waiter is None:
            waiter = self._waiters[key] = AsyncResult()
        return waiter

    def wait(self, kind: str, test: str, timeout: float | None) -> Message:
        """Wait for the controller's ``kind`` answer about ``test``; while waiting, a silent
        controller is an error rather than a hang."""
        waiter = self._waiter(kind, test)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            step = 0.5 if deadline is None else max(min(0.5, deadline - time.monotonic()), 0)
            if waiter.wait(step) is not None or waiter.ready():
                self._waiters.pop((kind, test), None)
                message: Message = waiter.get()
                return message
            if self.controller_silent():
                raise LinkError(
                    f"worker {self.worker}: the controller at {self.address} stopped answering "
                    f"(nothing for {time.monotonic() - self.last_heard:.1f}s)"
                )
            if deadline is not None and time.monotonic() >= deadline:
                raise LinkError(f"worker {self.worker}: no {kind!r} from the controller")

    def controller_silent(self) -> bool:
        return time.monotonic() - self.last_heard > self.heartbeat_timeout

    def _receive(self) -> None:
        while not self._closed.is_set():
            try:
                frame = self.socket.recv()
            except zmq.ZMQError:
                return
            self.last_heard = time.monotonic()
            try:
                msg = decode(frame)
            except VersionMismatch as exc:
                self._fail_all(Message("refuse", {"reason": str(exc)}))
                continue
            except WireError:
                continue
            if msg.kind == "pong":
                continue
            if msg.kind == "refuse":
                self._fail_all(msg)
                continue
            if msg.kind == "stop":
                test = msg.body["test"]
                self.stop_reasons[test] = msg.body["reason"]
                stopper = self._stoppers.get(test)
                if stopper is not None:
                    stopper(msg.body["reason"])
                # A stop before "go" (test already started elsewhere) releases the barrier.
                waiter = self._waiters.get(("go", test))
                if waiter is not None and not waiter.ready():
                    waiter.set(msg)
                continue
            test = msg.body.get("test", "")
            self._waiter(msg.kind, test).set(msg)

    def _fail_all(self, msg: Message) -> None:
        self._waiter("welcome", "").set(msg)
        for waiter in self._waiters.values():
            if not waiter.ready():
                waiter.set(msg)

    def _heartbeat(self) -> None:
        while not self._closed.wait(self.heartbeat):
            self.send("ping")
            if self.controller_silent():
                for test, stop in list(self._stoppers.items()):
                    stop(f"controller at {self.address} silent for {self.heartbeat_timeout:g}s")
                    self._stoppers.pop(test, None)

    # -- protocol steps ---------------------------------------------------------------------
    def hello(self, load_tests: list[str]) -> None:
        """Handshake; tells the controller which tests are load tests. Raises LinkError on a
        refusal (e.g. a version mismatch) with the controller's reason."""
        from .. import __version__

        self.send("hello", worker=self.worker, version=__version__, load_tests=load_tests)
        msg = self.wait("welcome", "", HELLO_TIMEOUT)
        if msg.kind == "refuse":
            raise LinkError(f"the controller refused worker {self.worker}: {msg.body['reason']}")
        self.interval = float(msg.body["interval"])

    def claim(self, item: str) -> bool:
        """Whether this worker reports the load test ``item`` (exactly one worker does)."""
        self.send("claim", test=item)
        msg = self.wait("reporter", item, None)
        return bool(msg.body.get("yes", False))

    def on_stop(self, test: str, stop: Callable[[str], None]) -> None:
        self._stoppers[test] = stop

    def close(self) -> None:
        self._closed.set()
        for g in self._greenlets:
            g.kill(block=False)
        # Everything that matters was acknowledged (final delta, result, claim): do not wait
        # for heartbeats still queued at shutdown.
        self.socket.close(linger=0)
        self.context.term()


class AgentLink:
    """The distributed :class:`~pytest_swarm.engine.link.Link` for one load test."""

    def __init__(self, agent: Agent, key: str) -> None:
        self.agent = agent
        self.key = key
        self._begun = False

    def begin(self, test: str, spec: LoadSpec) -> Share:
        agent = self.agent
        agent.send("ready", test=self.key, users=spec.users, duration=float(spec.duration))
        self._begun = True
        msg = agent.wait("go", self.key, None)
        if msg.kind == "refuse":
            raise LinkError(f"the controller refused worker {agent.worker}: {msg.body['reason']}")
        if msg.kind == "stop":
            return Share([], 0.0, agent.worker, 0)
        indices, rate = split_users(spec.users, spec.rate, msg.body["workers"], msg.body["index"])
        return Share(indices, rate, agent.worker, msg.body["workers"])

    def abort(self, reason: str) -> None:
        """This worker cannot take part (its setup failed before the barrier)."""
        self.agent.send("abort", test=self.key, reason=reason[:2000])

    def watch(self, stop: Callable[[str], None]) -> None:
        self.agent.on_stop(self.key, stop)
        if self.key in self.agent.stop_reasons:
            stop(self.agent.stop_reasons[self.key])

    def publish(self, tick: Tick) -> None:
        body = {
            "test": self.key,
            "seq": tick.seq,
            "delta": tick.delta.to_wire(),
            "cpu": float(tick.cpu),
            "lag": float(tick.lag),
        }
        if not tick.final:
            self.agent.send("stats", **body)
            return
        # The final delta is resent until acknowledged; the controller merges it once.
        for _ in range(ACK_ATTEMPTS):
            self.agent.send("final", **body)
            try:
                self.agent.wait("ack", self.key, ACK_RETRY)
                return
            except LinkError:
                if self.agent.controller_silent():
                    raise
        raise LinkError(f"worker {self.agent.worker}: final statistics never acknowledged")

    def finish(self) -> RunResult:
        self.agent._stoppers.pop(self.key, None)
        self.agent.send("result?", test=self.key)
        msg = self.agent.wait("result", self.key, None)
        if msg.kind == "refuse":
            raise LinkError(f"the controller refused worker {self.agent.worker}")
        body = msg.body
        cpu, lag, saturated = body["health"]
        return RunResult(
            snapshot=Snapshot.from_wire(body["snapshot"]),
            duration=float(body["duration"]),
            timeline=[
                TimelinePoint(t, int(users), int(requests), int(failures), p50, p95)
                for t, users, requests, failures, p50, p95 in unpack_timeline(body["timeline"])
            ],
            problems=[str(p) for p in body["problems"]],
            health=Health(float(cpu), float(lag), bool(saturated)),
            workers=body["workers"],
        )
