"""What ``fast_http`` times as a request: from its first byte going out to its answer's last
bytes being there to read (``reading.PollClock``), on gevent's sockets as in a run.

The answers of several users that come in one poll of the event loop are each timed at that
poll, not when each user's turn comes: otherwise the last of them would be charged with the
others' Python, and a generator's own load would pass for the server's latency.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import gevent
import pytest
from gevent_sockets import _gevent_sockets  # noqa: F401  (autouse: the run's sockets)
from local_http import Local, QuietHandler, serve

from pytest_swarm.clients.fast import FastHttpSession
from pytest_swarm.clients.reading import hub_state
from pytest_swarm.stats.recorder import Recorder

ANSWERED = threading.Semaphore(0)  # released by the server after each answer to /together


class _Handler(QuietHandler):
    def do_GET(self) -> None:
        if self.path == "/hop":
            # The first hop of a redirect takes its time: the chain is timed from here.
            self.server.release.wait(0.2)
            self._answer(302, [("Location", "/end")])
            return
        self._answer(200)
        if self.path == "/together":
            ANSWERED.release()

    def _answer(self, status: int, headers: list[tuple[str, str]] | None = None) -> None:
        self.send_response(status)
        for name, value in headers or []:
            self.send_header(name, value)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


@pytest.fixture(scope="module")
def local() -> Iterator[Local]:
    with serve(_Handler) as served:
        yield served


def test_answers_in_one_poll_are_timed_at_that_poll_not_at_each_users_turn(local: Local) -> None:
    sessions = [FastHttpSession(local.url, Recorder()) for _ in range(2)]
    for s in sessions:  # connections open: the requests below are the exchanges alone
        assert s.get("/").status_code == 200
    elapsed: list[float] = []
    busy: list[float] = []

    def user(session: FastHttpSession) -> None:
        r = session.get("/together")
        assert r.status_code == 200
        elapsed.append(r.elapsed)
        if len(elapsed) == 1:
            # The first user woken runs Python for a while (here: blocks the process), before
            # the second gets its turn.
            began = time.perf_counter()
            threading.Event().wait(0.3)
            busy.append(time.perf_counter() - began)

    def hold_the_loop() -> None:
        # Runs once both users have queued their requests and wait. One turn of the loop
        # first: the hub's send queue goes out before this greenlet's turn comes again (both
        # are loop callbacks, run in order). Then blocks the process (not cooperatively)
        # until the server has answered both, so that one poll finds both answers.
        gevent.sleep(0)
        for _ in range(2):
            assert ANSWERED.acquire(timeout=30)

    gevent.joinall([gevent.spawn(user, s) for s in sessions] + [gevent.spawn(hold_the_loop)])
    assert len(elapsed) == 2 and busy
    # Both were timed at the same poll: the second is not charged with the first's 0.3 s (a
    # client that stamps the end when each user runs, or a poll clock that ticks after the
    # first user's callback, would put nearly all of it between the two; the second user
    # sent a little after the first, so at the same poll its time is a little shorter).
    assert elapsed[1] - elapsed[0] < busy[0] / 2


def test_a_request_is_timed_within_the_call_that_made_it(local: Local) -> None:
    session = FastHttpSession(local.url, Recorder())
    for _ in range(3):  # a new connection, then kept-alive ones
        before = time.perf_counter()
        r = session.get("/")
        after = time.perf_counter()
        assert 0 < r.elapsed <= after - before


def test_the_recorded_time_is_the_responses_elapsed(local: Local) -> None:
    recorder = Recorder()
    session = FastHttpSession(local.url, recorder)
    r = session.get("/")
    [entry] = recorder.drain().entries.values()
    assert entry.hist.total == 1
    # The histogram keeps 3 significant digits of microseconds.
    assert entry.hist.max_us == pytest.approx(r.elapsed * 1e6, rel=2e-3, abs=2)


def test_a_redirect_chain_is_timed_from_the_first_request(local: Local) -> None:
    session = FastHttpSession(local.url, Recorder())
    before = time.perf_counter()
    r = session.get("/hop", allow_redirects=True)
    after = time.perf_counter()
    assert r.status_code == 200 and r.url.endswith("/end")
    # The first hop took its 0.2 s: a time of the last hop alone would be far below it.
    assert 0.2 <= r.elapsed <= after - before


def test_the_poll_clock_is_one_per_hub_and_keeps_no_loop_alive() -> None:
    hub = gevent.get_hub()
    clock = hub_state(hub).clock
    assert hub_state(hub).clock is clock
    assert clock.watcher.ref is False  # the hub ends when nothing else is left
    before = clock.at
    gevent.sleep(0.001)  # a turn of the loop with a poll in it
    assert clock.at > before
