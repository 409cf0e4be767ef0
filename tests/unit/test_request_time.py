"""What ``fast_http`` times as a request: from its first byte going out to its answer's last
bytes being there to read, on gevent's sockets as in a run.

Where the kernel stamps the connection (``clients.stamps``: Linux's ``SO_TIMESTAMPNS``), the
end is the kernel's time of the last bytes, so an answer that came while the process was busy
is not charged with that. Without the stamps (``poll clock`` below), the answers of several
users that come in one poll of the event loop are each timed at that poll
(``hub.PollClock``), not when each user's turn comes: otherwise the last of them would be
charged with the others' Python, and a generator's own load would pass for the server's
latency. Every test runs both ways, and the kernel's stamps with the C extension's receive and
with its Python twin.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import gevent
import pytest
from _pytest.fixtures import SubRequest
from gevent_sockets import _gevent_sockets  # noqa: F401  (autouse: the run's sockets)
from kernel_stamps import kernel_stamping  # noqa: F401  (a fixture)
from local_http import Local, QuietHandler, serve

import pytest_swarm.clients.reading as reading_module
from pytest_swarm.clients import stamps
from pytest_swarm.clients.fast import FastHttpSession
from pytest_swarm.clients.hub import hub_state
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


KERNEL_STAMPS = stamps.SO_TIMESTAMPNS is not None
pytestmark = pytest.mark.usefixtures("kernel_stamping")


@pytest.fixture(
    autouse=True,
    params=[
        pytest.param("kernel", marks=pytest.mark.skipif(not KERNEL_STAMPS, reason="not Linux")),
        pytest.param(
            "kernel, in Python", marks=pytest.mark.skipif(not KERNEL_STAMPS, reason="not Linux")
        ),
        "poll clock",
    ],
)
def clock(request: SubRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Where a request's time ends: the kernel's stamps (the C receive, or its Python twin),
    or the poll clock (a connection the kernel does not stamp)."""
    if request.param == "poll clock":
        monkeypatch.setattr(stamps, "SO_TIMESTAMPNS", None)
    elif request.param == "kernel, in Python":
        monkeypatch.setattr(reading_module, "recv_stamped", stamps._python_recv_stamped)
    return str(request.param)


def _hold_until_answered(times: int, then: float) -> float:
    """Block the process (not cooperatively) until the server has answered ``times`` requests
    to /together, then ``then`` seconds more; how long it held. Run from a greenlet once the
    users wait: one turn of the loop first, so that the hub's send queue goes out before this
    greenlet's turn comes again (both are loop callbacks, run in order)."""
    gevent.sleep(0)
    began = time.perf_counter()
    for _ in range(times):
        assert ANSWERED.acquire(timeout=30)
    if then:
        threading.Event().wait(then)
    return time.perf_counter() - began


def test_an_answer_that_came_while_the_process_was_busy_is_timed_when_it_came(
    local: Local, clock: str
) -> None:
    session = FastHttpSession(local.url, Recorder())
    assert session.get("/").status_code == 200  # the connection open: the exchange alone
    elapsed: list[float] = []

    def user() -> None:
        r = session.get("/together")
        assert r.status_code == 200
        elapsed.append(r.elapsed)

    users = [gevent.spawn(user)]  # first: its request is queued before the holder's turn
    holder = gevent.spawn(_hold_until_answered, 1, 0.3)
    gevent.joinall([*users, holder])
    [took] = elapsed
    held = holder.value
    assert held >= 0.3
    if clock == "poll clock":
        # The answer was found by the first poll after the process was free again.
        assert took >= 0.3
    else:
        # The kernel's time: the answer came before the 0.3 s the process then spent (a
        # client that ends the time at the poll, or at the user's turn, puts all of it in).
        assert took < 0.3 / 2


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

    # Once both users wait: blocks the process until the server has answered both, so that
    # one poll finds both answers.
    users = [gevent.spawn(user, s) for s in sessions]
    holder = gevent.spawn(_hold_until_answered, 2, 0.0)
    gevent.joinall([*users, holder])
    assert len(elapsed) == 2 and busy
    # Both were timed at the same poll (or by the kernel, before it): the second is not
    # charged with the first's 0.3 s (a client that stamps the end when each user runs, or a
    # poll clock that ticks after the first user's callback, would put nearly all of it
    # between the two; the second user sent a little after the first, so at the same poll
    # its time is a little shorter).
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


def test_a_kernel_stamp_from_before_the_request_went_is_not_its_answers(
    local: Local, clock: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Bytes that waited on the connection before the request went carry an older time: the
    # answer's time falls back to the poll's, never to before the request (a negative or
    # shortened figure).
    if clock == "poll clock":
        pytest.skip("no kernel stamps to distrust")
    real = reading_module.recv_stamped

    def stale(sock: object, size: int) -> tuple[bytes, float]:
        data, _at = real(sock, size)
        return data, time.perf_counter() - 3600.0

    monkeypatch.setattr(reading_module, "recv_stamped", stale)
    session = FastHttpSession(local.url, Recorder())
    for _ in range(2):  # a new connection, then a kept-alive one
        before = time.perf_counter()
        r = session.get("/")
        assert 0 < r.elapsed <= time.perf_counter() - before


def test_the_connections_of_a_run_are_stamped_by_the_kernel(local: Local, clock: str) -> None:
    session = FastHttpSession(local.url, Recorder())
    assert session.get("/").status_code == 200
    [conn] = session._connections.values()
    assert conn.stamped is (clock != "poll clock")
