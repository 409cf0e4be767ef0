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

import contextlib
import time
from collections import deque
from collections.abc import Callable
from typing import Any, cast

import gevent
import zmq.green as zmq  # never `import zmq.auth` here: it would rebind this name (DESIGN.md)
from gevent.event import AsyncResult, Event

from ..engine.link import Share
from ..engine.runner import Tick
from ..spec import LoadSpec, split_users
from ..stats.aggregator import MAX_TIMELINE_NAMES
from ..stats.result import Health, RunResult, TimelinePoint
from ..stats.snapshot import MAX_TEXT, Snapshot
from . import timeline_wire
from .limits import MAX_FRAME
from .wire import (
    FrameTooLarge,
    Message,
    VersionMismatch,
    WireError,
    decode,
    encode,
)

HELLO_TIMEOUT = 30.0
# Every request of the protocol is resent after RESEND seconds without its answer: a lost
# frame (either way) costs one resend, never a hang. Each side answers a resent request again.
RESEND = 1.0
# How long the final delta (and the deltas before it) are resent before the worker gives up
# and says how many requests were lost.
FINAL_DEADLINE = 30.0
# Deltas kept for resending until acknowledged: beyond this many, the oldest is given up (its
# requests are counted as lost). A controller that acknowledges nothing for this long is
# already declared silent by the heartbeat.
MAX_UNACKED = 600
LAG_WINDOW = 10  # heartbeats over which the worst lag is reported


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
        resend: float = RESEND,
    ) -> None:
        self.worker = worker
        self.heartbeat = heartbeat
        self.heartbeat_timeout = heartbeat_timeout
        self.resend = resend
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.IDENTITY, worker.encode())
        self.socket.setsockopt(zmq.LINGER, 2000)
        self.socket.setsockopt(zmq.SNDHWM, 10_000)
        self.socket.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME)
        if endpoint.get("server_public"):
            self.socket.curve_serverkey = endpoint["server_public"].encode()
            self.socket.curve_publickey = endpoint["client_public"].encode()
            self.socket.curve_secretkey = endpoint["client_secret"].encode()
        self.socket.connect(endpoint["address"])
        self.address = endpoint["address"]
        # The one place frames leave this worker (tests wrap it to drop frames).
        self.transmit: Callable[[bytes], None] = lambda frame: self.socket.send(frame, zmq.NOBLOCK)
        self.last_heard = time.monotonic()
        # Seconds this worker listened without hearing the controller. Only time the worker
        # itself was running counts: a worker stopped (SIGSTOP) or starved of CPU for 10 s has
        # not been *listening* for 10 s, and must not blame the controller for its own stall.
        self.silence = 0.0
        # How late the heartbeat woke, worst of its last LAG_WINDOW wakes (reported in ping,
        # so that the controller allows for it while this worker's pings come late).
        self.own_lag = 0.0
        self._lags: deque[float] = deque(maxlen=LAG_WINDOW)
        self.interval = 1.0
        self.refused: str | None = None  # why the controller will not talk to this worker
        self._waiters: dict[tuple[str, str], AsyncResult] = {}
        self._stoppers: dict[str, Callable[[str], None]] = {}
        self._ack_handlers: dict[str, Callable[[int], None]] = {}
        self.stop_reasons: dict[str, str] = {}
        self.dropped = 0
        self._closed = Event()
        self._greenlets = [gevent.spawn(self._receive), gevent.spawn(self._heartbeat)]

    # -- plumbing ---------------------------------------------------------------------------
    def send(self, kind: str, **body: Any) -> None:
        try:
            self.transmit(encode(kind, **body))
        except zmq.Again:
            # The controller is not draining: count it; resends and sequence numbers recover.
            self.dropped += 1

    def _waiter(self, kind: str, test: str) -> AsyncResult:
        key = (kind, test)
        waiter = self._waiters.get(key)
        if waiter is None:
            waiter = self._waiters[key] = AsyncResult()
        return waiter

    def request(
        self, kind: str, reply: str, test: str, body: dict[str, Any], deadline: float | None
    ) -> Message:
        # ``test`` is the key the reply is filed under (see dispatch).
        """Send ``kind`` and wait for the controller's ``reply`` about ``test``, resending
        every ``resend`` seconds (the controller answers a resent request again). Raises
        :class:`LinkError` naming what was lost when ``deadline`` seconds pass, or when the
        controller is silent; ``deadline=None`` waits as long as the controller is alive
        (the start barrier legitimately waits for the slowest worker)."""
        if self.refused is not None:
            return Message("refuse", {"reason": self.refused})
        start = time.monotonic()
        attempts = 0
        while True:
            self.send(kind, **body)
            attempts += 1
            try:
                return self.wait(reply, test, self.resend)
            except _NoAnswerYet:
                pass
            if deadline is not None and time.monotonic() - start >= deadline:
                raise LinkError(
                    f"worker {self.worker}: no {reply!r} from the controller at {self.address} "
                    f"for {kind!r} about {test or 'the handshake'} after {attempts} attempts "
                    f"in {time.monotonic() - start:.1f}s"
                )

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
                    f"(nothing for {self.silence:.1f}s while this worker was listening)"
                )
            if deadline is not None and time.monotonic() >= deadline:
                raise _NoAnswerYet(kind)

    def controller_silent(self) -> bool:
        return self.silence > self.heartbeat_timeout

    def _heard(self) -> None:
        self.last_heard = time.monotonic()
        self.silence = 0.0

    def _receive(self) -> None:
        while not self._closed.is_set():
            try:
                frame = self.socket.recv()
            except zmq.ZMQError:
                return
            self._heard()
            try:
                msg = decode(frame)
            except VersionMismatch as exc:
                self._refused(str(exc))
                continue
            except WireError:
                continue
            self.dispatch(msg)

    def dispatch(self, msg: Message) -> None:
        """Hand one decoded message from the controller to whoever waits for it."""
        kind = msg.kind
        if kind == "pong":
            return
        if kind == "refuse":
            self._refused(msg.body["reason"])
            return
        test = msg.body.get("test", "")
        if kind == "ack":
            handler = self._ack_handlers.get(test)
            if handler is not None:
                handler(msg.body["seq"])
            test = f"{test}@{msg.body['seq']}"
        if kind == "stop":
            self.stop_reasons[test] = msg.body["reason"]
            stopper = self._stoppers.get(test)
            if stopper is not None:
                stopper(msg.body["reason"])
            # A stop before "go" (test already started elsewhere) releases the barrier.
            waiter = self._waiters.get(("go", test))
            if waiter is not None and not waiter.ready():
                waiter.set(msg)
            return
        self._waiter(kind, test).set(msg)

    def _refused(self, reason: str) -> None:
        """The controller will not talk to this worker any more (another version, or it
        declared this worker lost): every wait ends with the reason, running users stop."""
        self.refused = reason
        msg = Message("refuse", {"reason": reason})
        self._waiter("welcome", "").set(msg)
        for waiter in self._waiters.values():
            if not waiter.ready():
                waiter.set(msg)
        for test, stop in list(self._stoppers.items()):
            stop(f"the controller refused worker {self.worker}: {reason}")
            self._stoppers.pop(test, None)

    def _heartbeat(self) -> None:
        last = time.monotonic()
        while not self._closed.wait(self.heartbeat):
            now = time.monotonic()
            gap, last = now - last, now
            self._lags.append(max(gap - self.heartbeat, 0.0))
            self.own_lag = max(self._lags)
            # Frames already queued mean the controller spoke, even if the receiver greenlet
            # has not run yet (a CPU-bound body starves it).
            with contextlib.suppress(zmq.ZMQError):
                if cast(int, self.socket.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
                    self._heard()
            # Only one heartbeat period of a long gap was spent listening (see silence).
            self.silence += min(gap, self.heartbeat)
            self.send("ping", lag=self.own_lag)
            if self.controller_silent():
                for test, stop in list(self._stoppers.items()):
                    stop(
                        f"controller at {self.address} silent for {self.silence:.1f}s "
                        f"(worker {self.worker} was running and listening)"
                    )
                    self._stoppers.pop(test, None)

    # -- protocol steps ---------------------------------------------------------------------
    def hello(self, load_tests: list[str]) -> None:
        """Handshake; tells the controller which tests are load tests. Raises LinkError on a
        refusal (e.g. a version mismatch) with the controller's reason."""
        from .. import __version__

        body = {"worker": self.worker, "version": __version__, "load_tests": load_tests}
        msg = self.request("hello", "welcome", "", body, HELLO_TIMEOUT)
        if msg.kind == "refuse":
            raise LinkError(f"the controller refused worker {self.worker}: {msg.body['reason']}")
        self.interval = float(msg.body["interval"])

    def claim(self, item: str) -> bool:
        """Whether this worker reports the load test ``item`` (exactly one worker does).
        False when the controller refused this worker (e.g. it declared it lost)."""
        msg = self.request("claim", "reporter", item, {"test": item}, None)
        return bool(msg.body.get("yes", False))

    def on_stop(self, test: str, stop: Callable[[str], None]) -> None:
        self._stoppers[test] = stop

    def on_ack(self, test: str, handler: Callable[[int], None]) -> None:
        self._ack_handlers[test] = handler

    def close(self) -> None:
        self._closed.set()
        for g in self._greenlets:
            g.kill(block=False)
        # Everything that matters was acknowledged (final delta, result, claim): do not wait
        # for heartbeats still queued at shutdown.
        self.socket.close(linger=0)
        self.context.term()


class _NoAnswerYet(Exception):
    """A wait's timeout passed (internal: the caller resends)."""


def _fits(wire: dict[str, Any]) -> bool:
    """Whether a delta's wire form fits one frame (as a final, the larger of the two kinds)."""
    try:
        encode("final", test="", seq=0, delta=wire, cpu=0.0, lag=0.0, lost=0)
    except FrameTooLarge:
        return False
    return True


def _requests(delta: Snapshot) -> int:
    return sum(e.hist.total for e in delta.entries.values())


def wire_parts(
    delta: Snapshot, fits: Callable[[dict[str, Any]], bool] = _fits
) -> tuple[list[tuple[dict[str, Any], int]], int]:
    """A delta in wire parts (each with its request count) that each fit a frame, and the
    requests none could carry.

    A delta over the frame's bounds (thousands of long request names, large error samples)
    would make ``encode`` raise inside the worker's publish; it is split by request names and
    error groups instead, halves until each part fits. Every part carries the users level
    (a level, not a count: the latest part sets it); the counts that are not per name
    (iterations, setup failures, dropped, late, the iteration histogram) travel in the first.
    Merged, the parts are the delta: nothing is lost. Only a single name whose own entry
    cannot fit (not possible within the snapshot's bounds) is given up, and counted.

    Example:
        >>> snap = Snapshot(users=3, iterations=4)
        >>> for n in "abcd": snap.entry(n).hist.record_values([1000])
        >>> parts, lost = wire_parts(snap, fits=lambda wire: len(wire["e"][0]) <= 1)
        >>> [p["e"][0] for p, _ in parts], [p["u"] for p, _ in parts], lost
        ([['a'], ['b'], ['c'], ['d']], [3, 3, 3, 3], 0)
        >>> [p["i"] for p, _ in parts], [n for _, n in parts]
        ([4, 0, 0, 0], [1, 1, 1, 1])
    """
    wire = delta.to_wire()
    if fits(wire):
        return [(wire, _requests(delta))], 0
    names, groups = list(delta.entries.items()), list(delta.errors.items())
    pieces = len(names) + len(groups)
    if pieces <= 1:
        return [], _requests(delta)
    half = pieces // 2
    first = Snapshot(
        entries=dict(names[:half]),
        errors=dict(groups[: max(half - len(names), 0)]),
        iterations=delta.iterations,
        users=delta.users,
        setup_failures=delta.setup_failures,
        dropped=delta.dropped,
        late=delta.late,
        iteration=delta.iteration,
    )
    second = Snapshot(
        entries=dict(names[half:]),
        errors=dict(groups[max(half - len(names), 0) :]),
        users=delta.users,
    )
    parts_a, lost_a = wire_parts(first, fits)
    parts_b, lost_b = wire_parts(second, fits)
    return parts_a + parts_b, lost_a + lost_b


class AgentLink:
    """The distributed :class:`~pytest_swarm.engine.link.Link` for one load test."""

    def __init__(self, agent: Agent, key: str, settings: dict[str, Any] | None = None) -> None:
        self.agent = agent
        self.key = key
        self.settings = settings
        # The controller's word on a stop requested through its feed (abort rule, dashboard):
        # final, whether or not this worker's own users were still running then.
        self.stopped = ""
        self.stop_confirmed = True
        self._begun = False
        # seq -> (body, requests in it, when it was last sent): deltas not yet acknowledged.
        self.unacked: dict[int, tuple[dict[str, Any], int, float]] = {}
        # This link numbers its own deltas: a tick too large for one frame goes as several.
        self._seq = 0
        self.lost_requests = 0
        self.lost_seqs: list[int] = []
        agent.on_ack(key, self._acked)

    def _acked(self, seq: int) -> None:
        self.unacked.pop(seq, None)

    def begin(self, test: str, spec: LoadSpec) -> Share:
        agent = self.agent
        from ..engine.link import load_settings

        body = {
            "test": self.key,
            "users": spec.users,
            "duration": float(spec.duration),
            "settings": load_settings(spec, self.settings),
        }
        self._begun = True
        msg = agent.request("ready", "go", self.key, body, None)
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
        if self.agent.refused is not None:
            stop(f"the controller refused worker {self.agent.worker}: {self.agent.refused}")

    def _resend_due(self, now: float) -> None:
        for seq, (body, requests, sent) in sorted(self.unacked.items()):
            if now - sent >= self.agent.resend:
                self.unacked[seq] = (body, requests, now)
                self.agent.send("stats", **body)

    def publish(self, tick: Tick) -> None:
        parts, unsendable = wire_parts(tick.delta)
        self.lost_requests += unsendable
        if not parts:
            parts = [(Snapshot(users=tick.delta.users).to_wire(), 0)]
        for wire, requests in parts[:-1]:
            self._send_stats(wire, requests, tick)
        if not tick.final:
            self._send_stats(*parts[-1], tick)
            return
        self._send_final(parts[-1][0], tick)

    def _next_body(self, wire: dict[str, Any], tick: Tick) -> tuple[int, dict[str, Any]]:
        """The next sequence number and the body of a stats or final message carrying it."""
        seq, self._seq = self._seq, self._seq + 1
        body = {
            "test": self.key,
            "seq": seq,
            "delta": wire,
            "cpu": float(tick.cpu),
            "lag": float(tick.lag),
        }
        return seq, body

    def _send_stats(self, wire: dict[str, Any], requests: int, tick: Tick) -> None:
        seq, body = self._next_body(wire, tick)
        now = time.monotonic()
        self.unacked[seq] = (body, requests, now)
        self.agent.send("stats", **body)
        self._resend_due(now)
        while len(self.unacked) > MAX_UNACKED:  # bounded: give the oldest up, counted
            oldest = min(self.unacked)
            self.lost_seqs.append(oldest)
            self.lost_requests += self.unacked.pop(oldest)[1]

    def _send_final(self, wire: dict[str, Any], tick: Tick) -> None:
        seq, body = self._next_body(wire, tick)
        now = time.monotonic()
        # End of the test: every earlier delta acknowledged first, then the final one (the
        # controller merges each once), each resent until acknowledged or FINAL_DEADLINE.
        deadline = now + FINAL_DEADLINE
        while self.unacked and time.monotonic() < deadline and self.agent.refused is None:
            if self.agent.controller_silent():
                break
            self._resend_due(time.monotonic())
            gevent.sleep(min(0.05, self.agent.resend))
        for given_up in sorted(self.unacked):
            self.lost_seqs.append(given_up)
            self.lost_requests += self.unacked.pop(given_up)[1]
        body["lost"] = self.lost_requests
        left = max(deadline - time.monotonic(), self.agent.resend)
        try:
            # Waited for under "<test>@<seq>": the acks of earlier deltas do not answer it.
            msg = self.agent.request("final", "ack", f"{self.key}@{seq}", body, left)
        except LinkError as exc:
            raise LinkError(f"{exc}: the final statistics of {self.key} were lost") from None
        if msg.kind == "refuse":
            raise LinkError(
                f"the controller refused worker {self.agent.worker}: {msg.body['reason']}"
            )

    def finish(self) -> RunResult:
        self.agent._stoppers.pop(self.key, None)
        self.agent._ack_handlers.pop(self.key, None)
        msg = self.agent.request("result?", "result", self.key, {"test": self.key}, None)
        if msg.kind == "refuse":
            raise LinkError(
                f"the controller refused worker {self.agent.worker}: {msg.body['reason']}"
            )
        body = msg.body
        self.stopped = str(body["stopped"])
        cpu, lag, saturated = body["health"]
        return RunResult(
            snapshot=Snapshot.from_wire(body["snapshot"]),
            duration=float(body["duration"]),
            timeline=timeline_wire.unpack(body["timeline"]),
            timeline_requests=_name_timelines(body["timelines"]),
            problems=[str(p) for p in body["problems"]],
            health=Health(float(cpu), float(lag), bool(saturated)),
            workers=body["workers"],
        )


def _name_timelines(items: Any) -> dict[str, list[TimelinePoint]]:
    """The per-request-name series of a result message, validated (it comes off the wire)."""
    if not isinstance(items, list) or len(items) > MAX_TIMELINE_NAMES:
        raise WireError(f"result: timelines must be a list of at most {MAX_TIMELINE_NAMES} series")
    series: dict[str, list[TimelinePoint]] = {}
    for item in items:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)):
            raise WireError("result: a timeline series is not [name, points]")
        name, blob = item
        if len(name) > MAX_TEXT or name in series:
            raise WireError("result: a timeline series has a bad or repeated name")
        series[name] = timeline_wire.unpack(blob)
    return series
