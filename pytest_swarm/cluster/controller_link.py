"""The controller side of the ZeroMQ link: a ROUTER socket served by its own thread.

xdist's controller runs every hook on one event loop, so nothing here may block a hook: the
socket lives in a daemon thread, and hooks only call the small lock-protected methods
(:meth:`Coordinator.expect`, :meth:`Coordinator.worker_down`, …). Decisions are made by
:class:`~pytest_swarm.cluster.controller_state.Control`; this module moves bytes and keeps time.

Security: by default the socket is an ``ipc://`` endpoint in a private (0700) temporary
directory. A TCP bind (``--swarm-bind tcp://0.0.0.0:PORT``) turns on CURVE with keys generated
for this run and handed to workers through ``workerinput``: a peer without the client key is
refused by the ZAP handler and never gets a byte in or out.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
import time
from collections.abc import Callable
from typing import Any

import zmq

from ..feed import Event, Feed, LoadStarted
from .controller_state import Control, Outbox
from .endpoint import Endpoint, private_ipc
from .wire import MAX_FRAME, VersionMismatch, WireError, decode

POLL_MS = 100
DRAIN_SECONDS = 0.25  # the most the thread merges before it ticks and sends again


class BindError(RuntimeError):
    """The aggregator address cannot be bound (e.g. the port is taken)."""


# After a second Ctrl-C, how long the controller still waits for the workers' final statistics.
HURRY_GRACE = 2.0


class Coordinator:
    """Owns the ROUTER socket and the thread that serves it."""

    def __init__(
        self,
        *,
        bind: str | None = None,
        advertise: str | None = None,
        interval: float = 1.0,
        heartbeat_timeout: float = 5.0,
        private_dir: str | None = None,
        feed: Feed | None = None,
    ) -> None:
        # Results and Progress are built by this module's thread outside the lock (defer):
        # a hook never waits for a merged result.
        self.control = Control(
            interval=interval,
            heartbeat_timeout=heartbeat_timeout,
            progress=feed is not None,
            defer=True,
        )
        # The session's live feed: published from this thread, outside the lock (a subscriber
        # may request a stop, which takes the lock).
        self.feed = feed
        self._lock = threading.Lock()
        self._pending: Outbox = []
        self._stop = threading.Event()
        # A private directory holding the ipc socket: removed at close (made here when no
        # address is given; the controller may make it itself to know the address early).
        self._tmpdir: str | None = private_dir
        self._auth: Any = None
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME)
        self.socket.setsockopt(zmq.RCVHWM, 100_000)
        self.socket.setsockopt(zmq.SNDHWM, 100_000)
        # Wakes the thread out of its poll when a hook queues a message or close() is called
        # (rather than after up to POLL_MS: the end of every run waits for the thread).
        wake = f"inproc://swarm-wake-{id(self)}"
        self._wake_rx = self.context.socket(zmq.PAIR)
        self._wake_rx.bind(wake)
        self._wake_tx = self.context.socket(zmq.PAIR)
        self._wake_tx.connect(wake)
        self.endpoint = self._bind(bind, advertise)
        self.cpu_seconds = 0.0
        self._thread = threading.Thread(target=self._serve, name="swarm-coordinator", daemon=True)
        self._thread.start()

    def _bind(self, bind: str | None, advertise: str | None) -> Endpoint:
        if not bind:
            self._tmpdir, bind = private_ipc()
        secure = bind.startswith("tcp://")
        keys: dict[str, str | None] = {}
        if secure:
            keys = self._enable_curve()
        try:
            self.socket.bind(bind)
        except zmq.ZMQError as exc:
            self.close()
            raise BindError(f"--swarm-bind {bind}: cannot bind the aggregator: {exc}") from None
        address = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        if secure:
            host = advertise
            if host is None:
                bound_host = address.split("://", 1)[1].rsplit(":", 1)[0]
                host = "127.0.0.1" if bound_host in ("0.0.0.0", "*") else bound_host
            port = address.rsplit(":", 1)[1]
            address = f"tcp://{host}:{port}"
        return Endpoint(address=address, **keys)

    def _enable_curve(self) -> dict[str, str | None]:
        # zmq.auth is imported here, in the controller only: in a gevent worker it would rebind
        # the blocking zmq module (see DESIGN.md).
        from zmq.auth.thread import ThreadAuthenticator

        server_public, server_secret = zmq.curve_keypair()
        client_public, client_secret = zmq.curve_keypair()
        self._auth = ThreadAuthenticator(self.context)
        self._auth.start()
        allowed = {client_public}
        self._auth.configure_curve_callback(domain="*", credentials_provider=_KeyCheck(allowed))
        self.socket.curve_secretkey = server_secret
        self.socket.curve_publickey = server_public
        self.socket.curve_server = True
        return {
            "server_public": server_public.decode(),
            "client_public": client_public.decode(),
            "client_secret": client_secret.decode(),
        }

    # -- called from the controller's hooks (never block) ----------------------------------
    def expect(self, worker: str) -> None:
        with self._lock:
            self.control.expect(worker)

    def worker_down(self, worker: str, reason: str) -> None:
        with self._lock:
            self._pending += self.control.worker_down(worker, reason, time.monotonic())
            self._wake()

    def _wake(self) -> None:
        """Interrupt the thread's poll (callers hold the lock: one sender at a time)."""
        with contextlib.suppress(zmq.ZMQError):
            self._wake_tx.send(b"", zmq.NOBLOCK)

    def load_tests(self) -> set[str]:
        with self._lock:
            return self.control.load_tests()

    def reporter_of(self, test: str) -> str | None:
        with self._lock:
            return self.control.reporter_of(test)

    def has_hello(self, worker: str) -> bool:
        with self._lock:
            return self.control.has_hello(worker)

    def interrupt(self, reason: str) -> None:
        """Stop the running load tests on every worker (see Control.interrupt)."""
        with self._lock:
            self._pending += self.control.interrupt(reason)
            self._wake()

    def request_stop(self, test: str, reason: str) -> None:
        """The feed's stopper of a running load test (from any thread): its workers are told
        to stop (see Control.request_stop)."""
        with self._lock:
            self._pending += self.control.request_stop(test, reason)
            self._wake()

    def _stopper(self, test: str) -> Callable[[str], None]:
        def stop(reason: str) -> None:
            self.request_stop(test, reason)

        return stop

    def _publish(self, events: list[Event], ended: list[str]) -> None:
        feed = self.feed
        if feed is None:
            return
        for event in events:
            if isinstance(event, LoadStarted):
                feed.register_stop(event.test, self._stopper(event.test))
            feed.publish(event)
        for test in ended:
            feed.unregister_stop(test)

    def interrupted_results(
        self, timeout: float, hurry: threading.Event | None = None
    ) -> list[tuple[str, Any]]:
        """(test key, merged result) of every load test that started, once each is complete
        (its workers' final deltas in), ``timeout`` passed or ``hurry`` was set (a second
        Ctrl-C): what an interrupted session still has to report."""
        deadline = time.monotonic() + timeout
        hurried = False
        try:
            while time.monotonic() < deadline:
                if hurry is not None and hurry.is_set() and not hurried:
                    # A second Ctrl-C: the workers got it too and hurry their finals out;
                    # give those a moment, no longer (a third Ctrl-C ends the wait at once).
                    hurried = True
                    deadline = min(deadline, time.monotonic() + HURRY_GRACE)
                with self._lock:
                    runs = [r for r in self.control.runs.values() if r.release_time is not None]
                    if all(r.complete for r in runs):
                        break
                time.sleep(0.05)  # the coordinator thread merges the finals meanwhile
        except KeyboardInterrupt:
            pass  # stop waiting, report what has arrived
        now = time.monotonic()
        found = []
        with self._lock:
            for run in self.control.runs.values():
                if run.aggregator is None or run.release_time is None:
                    continue
                end = run.end_time if run.end_time is not None else now
                result = run.aggregator.result(duration=max(end - run.release_time, 0.0))
                result.problems[:0] = run.problems
                result.workers = len(run.released)
                result.users = next(iter(run.ready.values()), 0)
                if not run.complete:
                    missing = ", ".join(sorted(run.remaining))
                    result.problems.append(f"final statistics never arrived from {missing}")
                found.append((run.test, result))
        return found

    def running_results(self) -> list[tuple[str, Any]]:
        """(test, merged result so far) of load tests still running."""
        now = time.monotonic()
        with self._lock:
            found = []
            for run in self.control.runs.values():
                if run.aggregator is not None and not run.complete and run.release_time:
                    result = run.aggregator.result(duration=now - run.release_time)
                    result.workers = len(run.released)
                    result.users = next(iter(run.ready.values()), 0)
                    result.problems.append("interrupted (Ctrl-C)")
                    found.append((run.test, result))
            return found

    @property
    def rejected(self) -> int:
        return self.control.rejected

    # -- the thread ------------------------------------------------------------------------
    def _serve(self) -> None:
        poller = zmq.Poller()
        poller.register(self.socket, zmq.POLLIN)
        poller.register(self._wake_rx, zmq.POLLIN)
        # Heartbeats and liveness run every second whatever the report interval: workers
        # declare a controller dead after a few silent seconds.
        every = min(self.control.interval, 1.0)
        next_tick = time.monotonic() + every
        cpu0 = time.thread_time()
        while not self._stop.is_set():
            try:
                events = dict(poller.poll(POLL_MS))
            except zmq.ZMQError:
                break
            out: Outbox = []
            if events.get(self._wake_rx):
                with contextlib.suppress(zmq.Again):
                    while True:
                        self._wake_rx.recv(zmq.NOBLOCK)
            if events.get(self.socket):
                out += self._drain()
            now = time.monotonic()
            with self._lock:
                out += self._pending
                self._pending = []
                if now >= next_tick:
                    next_tick = now + every
                    out += self.control.tick(now)
                due, self.control.progress_due = self.control.progress_due, []
            out += self._build_results()  # a worker_down may have completed a run
            # The feed's Progress, built outside the lock (see Control's doc on defer).
            progress: list[Event] = [self.control.progress(run, when) for run, when in due]
            with self._lock:
                feed_events, self.control.events = self.control.events, []
                ended, self.control.ended = self.control.ended, []
            self._send(out)
            self._publish(feed_events + progress, ended)
            self.cpu_seconds = time.thread_time() - cpu0

    def _build_results(self) -> Outbox:
        """Build the result frames of the runs that completed, outside the lock (they take
        tens of ms with 1,000 workers: hooks would wait for them), and install them under it.
        Only this thread feeds deltas, so nothing changes a complete run meanwhile."""
        if not self.control.unbuilt:  # the usual case: one read, no lock
            return []
        with self._lock:
            unbuilt, self.control.unbuilt = self.control.unbuilt, []
        out: Outbox = []
        for run, now in unbuilt:
            frame = self.control.build_result(run, now)
            with self._lock:
                out += self.control.result_built(run, frame)
        return out

    def _drain(self) -> Outbox:
        out: Outbox = []
        # Bounded in count and in time: under a flood (or with the CPU shared) ticks must
        # still run, since they carry the heartbeats every worker waits for, and the feed's
        # Progress (a delta of 20 names costs ~0.1 ms, ~0.25 ms without the C merge loop:
        # 10,000 of them would be 1-2.5 s without one).
        until = time.monotonic() + DRAIN_SECONDS
        for count in range(10_000):
            if count % 64 == 0 and time.monotonic() >= until:
                break
            try:
                frames = self.socket.recv_multipart(zmq.NOBLOCK, copy=True)
            except zmq.Again:
                break
            if len(frames) != 2:
                self.control.bad_frame()
                continue
            identity, frame = frames
            worker = identity.decode("utf-8", "replace")
            try:
                msg = decode(frame)
            except VersionMismatch as exc:
                with self._lock:
                    out += self.control.refuse(worker, f"worker {worker}: {exc}")
                continue
            except WireError:
                self.control.bad_frame()
                continue
            with self._lock:
                out += self.control.on_message(worker, msg, time.monotonic())
            out += self._build_results()  # this message completed a run: outside the lock
        return out

    def _send(self, out: Outbox) -> None:
        for worker, frame in out:
            # Unroutable (worker gone) or full: the worker's own timeouts handle it.
            with contextlib.suppress(zmq.ZMQError):
                self.socket.send_multipart([worker.encode(), frame], zmq.NOBLOCK)

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            self._wake()
        thread = getattr(self, "_thread", None)
        if thread is not None and thread.is_alive():
            thread.join(timeout=2.0)
        if self._auth is not None:
            self._auth.stop()
        self._wake_tx.close(linger=0)
        self._wake_rx.close(linger=0)
        self.socket.close(linger=0)
        self.context.term()
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)


class _KeyCheck:
    """ZAP credentials callback: only this run's client key may connect."""

    def __init__(self, allowed: set[bytes]) -> None:
        self.allowed = set(allowed)  # z85-encoded, as the authenticator passes them

    def callback(self, domain: str, key: bytes) -> bool:
        return key in self.allowed
