"""The controller's bookkeeping of a distributed run, without any socket or thread.

:class:`Control` takes decoded messages from workers, worker-down notices and clock ticks, and
answers with the frames to send. The ZeroMQ thread (``controller_link.py``) only moves bytes; all
decisions live here, so they are unit-tested with plain method calls.

Per load test it runs a start barrier (every expected worker says ``ready`` or ``abort``), then
splits the users among the released workers, merges their deltas in an
:class:`~pytest_swarm.stats.aggregator.Aggregator`, acknowledges final deltas, notices lost
workers, and hands the merged result to every worker that asks. Exactly one worker per test is
the *reporter*: the one whose pytest reports reach the terminal and JUnit.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..engine.link import short_name
from ..feed import Event, LoadStarted, Progress
from ..stats.aggregator import Aggregator
from ..stats.snapshot import Snapshot, check_wire
from . import timeline_wire
from .wire import Message, WireError, check_settings, encode

Outbox = list[tuple[str, bytes]]
_PONG = encode("pong")

# A delta numbered this far beyond the worker's last one is refused: reporting the gap would
# enumerate every missing number (a seq of 2**63 would hang the aggregator's thread).
MAX_SEQ_JUMP = 10_000
# The most event-loop lag a worker may report and have added to its heartbeat timeout: a
# worker starved of CPU pings late, but one silent for longer than this is lost whatever it
# said before (a stopped worker reports nothing).
MAX_LAG_GRACE = 10.0


def rank(worker: str) -> tuple[int, str]:
    """Order workers gw0 < gw1 < gw10 (numeric suffix first)."""
    match = re.search(r"(\d+)$", worker)
    return (int(match.group(1)) if match else 1 << 30, worker)


@dataclass
class WorkerState:
    last_seen: float
    load_tests: list[str] = field(default_factory=list)
    gone: str | None = None  # why it left (None while alive)
    lag: float = 0.0  # its own heartbeat's latest lateness, as it reported (see tick)


@dataclass
class TestRun:
    """One load test across the swarm."""

    test: str
    ready: dict[str, int] = field(default_factory=dict)  # worker -> users it expects
    aborted: dict[str, str] = field(default_factory=dict)
    released: list[str] = field(default_factory=list)
    # Sets beside the list: with hundreds of workers every message asks "is it released?".
    released_set: frozenset[str] = frozenset()
    remaining: set[str] = field(default_factory=set)  # released, neither finished nor lost
    release_time: float | None = None
    aggregator: Aggregator | None = None
    finished: set[str] = field(default_factory=set)
    lost: dict[str, str] = field(default_factory=dict)
    end_time: float | None = None
    result_frame: bytes | None = None
    waiting: set[str] = field(default_factory=set)  # workers that asked for the result
    problems: list[str] = field(default_factory=list)
    late: dict[str, int] = field(default_factory=dict)  # worker -> deltas refused after final
    settings: dict[str, Any] = field(default_factory=dict)  # from the first ready (the feed's)
    next_progress: float = 0.0
    # worker -> its latest (cpu %, lag s, users): the feed's per-worker figures.
    health: dict[str, tuple[float, float, int]] = field(default_factory=dict)
    stopped: str = ""  # why it was stopped on request (abort rule, dashboard), "" if not
    building: bool = False  # complete, its result handed to the caller to build (see defer)

    @property
    def complete(self) -> bool:
        if self.release_time is None:
            return False
        return not self.remaining


class Control:
    """Decisions of the controller. Not thread-safe: the coordinator serialises calls.

    With ``defer``, the two expensive things it does with a run's merged figures (its result
    frame once it is complete, the feed's Progress every interval) are left to the caller:
    they are queued in :attr:`unbuilt` and :attr:`progress_due`, built by
    :meth:`build_result` / :meth:`progress` and handed back with :meth:`result_built`. The
    coordinator builds them outside its lock, so that xdist's hooks never wait for a merged
    result (tens of ms with 1,000 workers). That is safe because only the coordinator's thread
    changes an aggregator, a run's health or its ready set (every delta goes through it), and
    nothing changes a complete run's figures."""

    def __init__(
        self,
        *,
        interval: float = 1.0,
        heartbeat_timeout: float = 5.0,
        progress: bool = True,
        defer: bool = False,
    ) -> None:
        self.interval = interval
        self.defer = defer
        # (run, when it completed): complete runs whose result frame the caller builds.
        self.unbuilt: list[tuple[TestRun, float]] = []
        # (run, now): running tests whose Progress the caller builds and publishes.
        self.progress_due: list[tuple[TestRun, float]] = []
        # Build the feed's Progress at every interval (a merged result: not free with many
        # workers); off when nobody subscribes.
        self.progress_events = progress
        self.heartbeat_timeout = heartbeat_timeout
        self.workers: dict[str, WorkerState] = {}
        self.expected: set[str] = set()  # workers the scheduler gave the load tests to
        self.runs: dict[str, TestRun] = {}
        self.rejected = 0  # malformed frames dropped
        self.durations: dict[str, float] = {}  # test -> configured duration, for live lines
        # Per test item (node id): which workers finished it and asked whether to report it.
        self.claims: dict[str, set[str]] = {}
        self.reporters: dict[str, str] = {}
        # Workers refused at the handshake (another protocol or package version): every load
        # test then names them, so the run cannot pass on the others' figures alone.
        self.refused: dict[str, str] = {}
        self.interrupted: str | None = None  # the session was interrupted: start nothing new
        # For the live feed, drained by the coordinator and published outside its lock: the
        # events, and the tests whose users are all done (their stoppers unregistered).
        self.events: list[Event] = []
        self.ended: list[str] = []

    # -- inputs ---------------------------------------------------------------------------
    def expect(self, worker: str) -> None:
        """The scheduler sent the load tests to ``worker``: barriers wait for it."""
        self.expected.add(worker)

    def load_tests(self) -> set[str]:
        return {t for w in self.workers.values() for t in w.load_tests}

    def has_hello(self, worker: str) -> bool:
        return worker in self.workers

    def bad_frame(self) -> None:
        self.rejected += 1

    def refuse(self, worker: str, reason: str) -> Outbox:
        """Refuse ``worker`` for good (e.g. it speaks another protocol version)."""
        self.rejected += 1
        self.refused[worker] = reason
        return [(worker, encode("refuse", reason=reason))]

    def on_message(self, worker: str, msg: Message, now: float) -> Outbox:
        state = self.workers.get(worker)
        if state is None and msg.kind != "hello":
            self.rejected += 1  # must say hello first
            return []
        if state is not None:
            if state.gone is not None:
                # Declared lost: late messages cannot resurrect it, but it must learn why, so
                # that it blames itself rather than a controller that no longer answers it.
                return [
                    (
                        worker,
                        encode(
                            "refuse",
                            reason=f"the controller declared worker {worker} lost ({state.gone})",
                        ),
                    )
                ]
            state.last_seen = now
        handler = _HANDLERS.get(msg.kind)
        if handler is None:
            self.rejected += 1
            return []
        try:
            return handler(self, worker, msg.body, now)
        except (WireError, ValueError) as exc:
            if msg.kind == "hello":
                return self.refuse(worker, str(exc))
            self.rejected += 1
            return []

    def worker_down(self, worker: str, reason: str, now: float) -> Outbox:
        """A worker died or left (xdist noticed, or its heartbeats stopped)."""
        state = self.workers.get(worker)
        if state is not None and state.gone is not None:
            return []
        if state is None:
            state = self.workers[worker] = WorkerState(last_seen=now)
        state.gone = reason
        self.expected.discard(worker)
        out: Outbox = []
        for run in self.runs.values():
            if run.release_time is None:
                out += self._maybe_release(run, now)
            elif worker in run.remaining:
                run.lost[worker] = reason
                run.remaining.discard(worker)
                out += [
                    (w, encode("stop", test=run.test, reason=f"worker {worker} lost: {reason}"))
                    for w in sorted(run.remaining, key=rank)
                ]
                out += self._maybe_complete(run, now)
        for item in list(self.claims):
            out += self._answer_claims(item)
        return out

    def request_stop(self, test: str, reason: str) -> Outbox:
        """Stop a running load test on request (the feed: an abort rule, the dashboard): every
        worker still running it is told to stop with ``reason``, and the result says so.
        Nothing for a test that is not running (any more), or already stopped."""
        run = self.runs.get(test)
        if run is None or run.release_time is None or run.complete or run.stopped:
            return []
        run.stopped = reason[:2000]
        return [
            (w, encode("stop", test=run.test, reason=run.stopped))
            for w in sorted(run.remaining, key=rank)
        ]

    def progress(self, run: TestRun, now: float) -> Progress:
        """The feed's Progress of a running test: the swarm's aggregate so far (a new result,
        which nothing here touches again) and each worker's latest health."""
        agg = run.aggregator
        assert agg is not None and run.release_time is not None
        elapsed = max(now - run.release_time, 0.0)
        result = agg.result(duration=elapsed, users=next(iter(run.ready.values()), 0))
        result.workers = len(run.released)
        return Progress(
            run.test,
            short_name(run.test),
            elapsed=elapsed,
            duration=self.durations.get(run.test, 0.0),
            result=result,
            workers={
                w: {"cpu": cpu, "lag": lag, "users": float(users)}
                for w, (cpu, lag, users) in sorted(run.health.items())
            },
        )

    def tick(self, now: float) -> Outbox:
        """Heartbeats out, silent workers declared lost, the feed's Progress of each running
        test at every report interval (the terminal's live line and the dashboard read it)."""
        out: Outbox = []
        for name, state in list(self.workers.items()):
            if state.gone is not None:
                continue
            # A worker that reported a lagging loop pings late: allow for the lag it measured.
            allowed = self.heartbeat_timeout + min(state.lag, MAX_LAG_GRACE)
            if now - state.last_seen > allowed and self._busy(name):
                silent = now - state.last_seen
                out += self.worker_down(name, f"no heartbeat for {silent:.1f}s", now)
                continue
            out.append((name, _PONG))
        if not self.progress_events:
            return out
        for run in self.runs.values():
            if run.aggregator is not None and not run.complete and now >= run.next_progress:
                run.next_progress = max(run.next_progress + self.interval, now)
                if self.defer:
                    self.progress_due.append((run, now))
                else:
                    self.events.append(self.progress(run, now))
        return out

    def _busy(self, worker: str) -> bool:
        """Only silence during a load test matters (between tests a worker may be busy with
        a long ordinary test, or already done)."""
        return any(worker in r.remaining for r in self.runs.values()) or any(
            r.release_time is None and worker in r.ready for r in self.runs.values()
        )

    # -- handlers -------------------------------------------------------------------------
    def _alive(self) -> set[str]:
        """Workers the barriers wait for: given the load tests, welcomed, not gone. A worker
        that was refused at hello (another version) never takes part, so never blocks."""
        return {
            w
            for w in self.expected
            if (state := self.workers.get(w)) is not None and state.gone is None
        }

    def _hello(self, worker: str, body: dict[str, Any], now: float) -> Outbox:
        from .. import __version__

        tests = body["load_tests"]
        if not all(isinstance(t, str) for t in tests):
            raise WireError("hello: load_tests must be strings")
        if body["version"] != __version__:
            raise WireError(
                f"worker {worker} runs pytest-swarm {body['version'][:64]}, the controller "
                f"{__version__}: install the same version everywhere"
            )
        state = self.workers.get(worker)
        if state is None:  # a resent hello (its welcome was lost) changes nothing
            self.workers[worker] = WorkerState(last_seen=now, load_tests=list(tests))
        return [(worker, encode("welcome", interval=self.interval))]

    def _run(self, test: str) -> TestRun:
        run = self.runs.get(test)
        if run is None:
            run = self.runs[test] = TestRun(test)
        return run

    def interrupt(self, reason: str) -> Outbox:
        """Ctrl-C or SIGTERM in the controller: stop every running load test now (workers
        that were not signalled themselves would otherwise run on until their heartbeats
        notice the controller gone), and start no new one."""
        self.interrupted = reason
        out: Outbox = []
        for run in self.runs.values():
            if run.release_time is not None and not run.complete:
                run.problems.append(f"interrupted ({reason})")
                out += [
                    (w, encode("stop", test=run.test, reason=f"interrupted ({reason})"))
                    for w in sorted(run.remaining, key=rank)
                ]
        return out

    def _ready(self, worker: str, body: dict[str, Any], now: float) -> Outbox:
        run = self._run(body["test"])
        if self.interrupted is not None and run.release_time is None:
            return [(worker, encode("stop", test=run.test, reason=self.interrupted))]
        if run.release_time is not None:
            if worker in run.released_set:  # a resent ready: its "go" was lost
                index = run.released.index(worker)
                return [
                    (worker, encode("go", test=run.test, index=index, workers=len(run.released)))
                ]
            # Too late to join (e.g. a replacement worker): it runs nothing for this test.
            return [(worker, encode("stop", test=run.test, reason="test already started"))]
        run.ready[worker] = body["users"]
        self.durations[run.test] = float(body["duration"])
        if not run.settings:
            try:
                run.settings = dict(check_settings(body["settings"]))
            except WireError as exc:
                # Without its settings the test's abort rules would silently not apply.
                run.settings = {"invalid": str(exc)}
                run.problems.append(f"worker {worker} sent unreadable load settings: {exc}")
        return self._maybe_release(run, now)

    def _abort(self, worker: str, body: dict[str, Any], now: float) -> Outbox:
        run = self._run(body["test"])
        run.aborted[worker] = body["reason"]
        if run.release_time is None:
            return self._maybe_release(run, now)
        return []

    def _maybe_release(self, run: TestRun, now: float) -> Outbox:
        # Released once every live expected worker answered (ready or abort), and one at least.
        # The scan stops at the first live worker that has not: rebuilding the set of live
        # workers and of answers at every ready made the barrier O(n**2) (~7 % of the
        # controller's CPU in benchmarks/aggregator.py at 1,000 workers).
        ready, aborted, workers = run.ready, run.aborted, self.workers
        if not ready and not aborted:
            return []
        for w in self.expected:
            if w not in ready and w not in aborted:
                state = workers.get(w)
                if state is not None and state.gone is None:
                    return []
        alive = self._alive()
        run.release_time = now
        run.released = sorted((w for w in run.ready if w in alive), key=rank)
        run.released_set = frozenset(run.released)
        run.remaining = set(run.released)
        if len(set(run.ready.values())) > 1:
            run.problems.append(f"workers disagree on the number of users: {run.ready}")
        for worker, reason in sorted(run.aborted.items()):
            run.problems.append(f"worker {worker} could not start: {reason}")
        for worker, reason in sorted(self.refused.items()):
            run.problems.append(f"worker {worker} was refused at the handshake: {reason}")
        run.aggregator = Aggregator(start=now, interval=self.interval)
        run.next_progress = now + self.interval
        self.events.append(
            LoadStarted(
                run.test,
                short_name(run.test),
                duration=self.durations.get(run.test, 0.0),
                users=next(iter(run.ready.values()), 0),
                workers=len(run.released),
                settings=dict(run.settings),
            )
        )
        out = [
            (w, encode("go", test=run.test, index=i, workers=len(run.released)))
            for i, w in enumerate(run.released)
        ]
        return out + self._maybe_complete(run, now)

    def _delta(self, worker: str, body: dict[str, Any], now: float, final: bool) -> Outbox:
        run = self.runs.get(body["test"])
        if run is None or run.aggregator is None or worker not in run.released_set:
            self.rejected += 1
            return []
        source = run.aggregator.sources.get(worker)
        seq = body["seq"]
        if seq > (source.next_seq if source else 0) + MAX_SEQ_JUMP:
            raise WireError(f"{run.test}: implausible sequence number {seq} from {worker}")
        if source is not None and source.final_seq is not None and seq > source.final_seq:
            # The final delta was the worker's last word: anything numbered after it would be
            # merged into a result already decided (or about to be). Refused and counted.
            self.rejected += 1
            run.late[worker] = run.late.get(worker, 0) + 1
            return []
        if source is not None and seq in source.seen and not final:
            # A resend of a delta already merged (its ack was late or lost): acknowledged
            # again without decoding it anew, so resends of large deltas cost next to nothing
            # (checking a 6 MB delta takes ~0.1 s; resent every second it once starved the
            # heartbeats).
            run.aggregator.duplicates += 1
            return [(worker, encode("ack", test=run.test, seq=seq))]
        delta = check_wire(body["delta"])
        if run.aggregator.add(worker, seq, delta, now, final=final):
            # A resent delta is one interval, not two: its health sample counts once.
            run.aggregator.set_health(worker, float(body["cpu"]), float(body["lag"]))
            run.health[worker] = (float(body["cpu"]), float(body["lag"]), delta.users)
            if final and body["lost"]:
                run.problems.append(
                    f"worker {worker}: {body['lost']} request(s) lost: their statistics were "
                    "resent until the deadline and never acknowledged"
                )
        # Every delta is acknowledged (again when resent): the worker resends until it is.
        out = [(worker, encode("ack", test=run.test, seq=seq))]
        if not final:
            return out
        # The final delta is the worker's last word. One ordered connection: a delta missing
        # now was dropped, not delayed, so waiting for it would hang the run; the aggregator
        # reports the gap as a problem instead (RELIABILITY row 9).
        if worker not in run.finished:
            run.finished.add(worker)
            run.remaining.discard(worker)
            run.end_time = now
        return out + self._maybe_complete(run, now)

    def _stats(self, worker: str, body: dict[str, Any], now: float) -> Outbox:
        return self._delta(worker, body, now, final=False)

    def _final(self, worker: str, body: dict[str, Any], now: float) -> Outbox:
        return self._delta(worker, body, now, final=True)

    def _result_request(self, worker: str, body: dict[str, Any], now: float) -> Outbox:
        run = self._run(body["test"])
        run.waiting.add(worker)
        return self._maybe_complete(run, now)

    def _claim(self, worker: str, body: dict[str, Any], now: float) -> Outbox:
        item = body["test"]
        out: Outbox = []
        # A worker that claims a test has ended it: if its final delta never arrived (it gave
        # up resending), it is lost for that test now, so the others' result does not wait.
        for run in list(self.runs.values()):
            if worker in run.remaining and (run.test == item or run.test.startswith(item + "#")):
                run.lost[worker] = "it ended the test without delivering its final statistics"
                run.remaining.discard(worker)
                out += self._maybe_complete(run, now)
        if item in self.reporters:  # a resent claim (its answer was lost): the same answer
            return [
                *out,
                (worker, encode("reporter", test=item, yes=worker == self.reporters[item])),
            ]
        self.claims.setdefault(item, set()).add(worker)
        return out + self._answer_claims(item)

    def _ping(self, worker: str, body: dict[str, Any], now: float) -> Outbox:
        self.workers[worker].lag = float(body["lag"])
        return [(worker, _PONG)]

    # -- completion -----------------------------------------------------------------------
    def _maybe_complete(self, run: TestRun, now: float) -> Outbox:
        if not run.complete:
            return []
        if run.result_frame is None:
            if self.defer:
                # Built by the caller (see the class doc); the workers waiting for it get it
                # from result_built.
                if not run.building:
                    run.building = True
                    self.unbuilt.append((run, now))
                return []
            return self.result_built(run, self._result_frame(run, now))
        out = [(w, run.result_frame) for w in sorted(run.waiting)]
        run.waiting.clear()
        return out

    def build_result(self, run: TestRun, now: float) -> bytes:
        """The result frame of a complete run (queued in :attr:`unbuilt`). With ``defer``,
        callable without the caller's lock from the thread that feeds the deltas: nothing
        changes a complete run meanwhile."""
        return self._result_frame(run, now)

    def result_built(self, run: TestRun, frame: bytes) -> Outbox:
        """Install a complete run's result frame: the workers waiting for it get it now, any
        that ask later at once."""
        run.result_frame = frame
        run.building = False
        self.ended.append(run.test)
        out = [(w, frame) for w in sorted(run.waiting)]
        run.waiting.clear()
        return out

    def _answer_claims(self, item: str) -> Outbox:
        """Once every live worker that runs the load tests has finished ``item``, the
        lowest-ranked of them reports it; the others stay silent."""
        claimed = self.claims.get(item, set())
        alive = self._alive()
        if not claimed or not alive <= claimed:
            return []
        # A claimant that died while waiting for the answer cannot report: prefer live ones.
        live = [w for w in claimed if self.workers.get(w, WorkerState(0)).gone is None]
        reporter = min(live or claimed, key=rank)
        self.reporters[item] = reporter
        del self.claims[item]
        return [(w, encode("reporter", test=item, yes=(w == reporter))) for w in sorted(claimed)]

    def _result_frame(self, run: TestRun, now: float) -> bytes:
        agg = run.aggregator
        assert agg is not None and run.release_time is not None
        end = run.end_time if run.end_time is not None else now
        problems = list(run.problems)
        for worker, n in sorted(run.late.items()):
            problems.append(f"worker {worker} sent {n} delta(s) numbered after its final one")
        for worker, reason in sorted(run.lost.items()):
            problems.append(
                f"worker {worker} was lost during the test ({reason}); its statistics since "
                "its last delivered interval are missing"
            )
        result = agg.result(duration=max(end - run.release_time, 0.0))
        problems += [p for p in result.problems if not _about_lost(p, run.lost)]
        h = result.health
        snapshot = result.snapshot.to_wire()
        total_budget, names_budget = timeline_wire.TOTAL_BUDGET, timeline_wire.NAMES_BUDGET
        error: WireError | None = None
        # A long run's timeline may not fit beside a wide snapshot: coarser points first
        # (timeline_wire.fit), the error result below only when even a short one does not.
        while total_budget >= 100:
            per_name = names_budget // max(len(result.timeline_requests), 1)
            try:
                return encode(
                    "result",
                    test=run.test,
                    snapshot=snapshot,
                    duration=result.duration,
                    problems=problems,
                    timeline=timeline_wire.pack(timeline_wire.fit(result.timeline, total_budget)),
                    timelines=[
                        [name, timeline_wire.pack(timeline_wire.fit(points, per_name))]
                        for name, points in result.timeline_requests.items()
                    ],
                    health=[h.cpu_max, h.lag_max, h.saturated],
                    workers=len(run.released),
                    stopped=run.stopped,
                )
            except WireError as exc:
                error = exc
                total_budget //= 4
                names_budget //= 4
        cause = error if error is not None else WireError("result: nothing could be sent")
        # A result too large for one frame must still end the test: the reporting worker
        # gets an error result with the reason instead of waiting for a frame that can
        # never be sent (its requests for the result would be answered with nothing).
        total = result.total
        problems.append(
            f"the merged result could not be sent to the reporting worker ({cause}): "
            f"{total.count} requests under {len(result.snapshot.entries)} names; give "
            "requests a name= that groups them"
        )
        return encode(
            "result",
            test=run.test,
            snapshot=Snapshot().to_wire(),
            duration=result.duration,
            problems=problems[:100],
            timeline=b"",
            timelines=[],
            health=[h.cpu_max, h.lag_max, h.saturated],
            workers=len(run.released),
            stopped=run.stopped,
        )

    def reporter_of(self, item: str) -> str | None:
        return self.reporters.get(item)


def _about_lost(problem: str, lost: Iterable[str]) -> bool:
    # A lost worker's gaps are already explained by the "was lost" line.
    return any(problem.startswith(f"worker {w}:") for w in lost)


_HANDLERS = {
    "hello": Control._hello,
    "ready": Control._ready,
    "abort": Control._abort,
    "stats": Control._stats,
    "final": Control._final,
    "result?": Control._result_request,
    "claim": Control._claim,
    "ping": Control._ping,
}
