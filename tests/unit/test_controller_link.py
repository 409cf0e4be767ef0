"""Tests of pytest_swarm.cluster.controller_link with real ZeroMQ sockets in one process: the
coordinator's ROUTER thread on one side, plain (blocking, not gevent) DEALER sockets playing the
workers on the other. RELIABILITY rows 5, 6, 7, 23 and 24."""

from __future__ import annotations

import doctest
import os
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import msgpack
import pytest
import zmq
from merge_implementations import merge_implementation  # noqa: F401  (autouse)
from zmq.utils.monitor import recv_monitor_message

import pytest_swarm.cluster.endpoint as endpoint_module
from pytest_swarm import PROTOCOL_VERSION
from pytest_swarm.cluster.controller_link import BindError, Coordinator
from pytest_swarm.cluster.endpoint import private_ipc
from pytest_swarm.cluster.wire import MAX_FRAME, Message, decode, encode
from pytest_swarm.feed import Feed
from pytest_swarm.stats.snapshot import Snapshot

WAIT = 5.0  # upper bound for anything that should happen at once
SILENCE = 1.0  # how long a refused peer is watched for a reply

DealerFactory = Callable[..., zmq.Socket[Any]]


def hello(worker: str) -> bytes:
    return encode("hello", worker=worker, version="0.1.0", load_tests=["t.py::test_load"])


def receive(sock: zmq.Socket[Any], timeout: float = WAIT) -> Message | None:
    """The next message on ``sock`` within ``timeout`` seconds, else None."""
    if sock.poll(int(timeout * 1000), zmq.POLLIN):
        return decode(sock.recv())
    return None


def receive_kind(sock: zmq.Socket[Any], kind: str, timeout: float = WAIT) -> Message:
    """The next ``kind`` message, skipping heartbeats (pong)."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        msg = receive(sock, max(left, 0.0))
        assert msg is not None, f"no {kind!r} within {timeout}s"
        if msg.kind == kind:
            return msg


def wait_until(condition: Callable[[], bool], timeout: float = WAIT) -> None:
    """Bounded poll of a condition the coordinator thread will make true."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        threading.Event().wait(0.005)


@pytest.fixture
def zctx() -> Iterator[zmq.Context[Any]]:
    ctx = zmq.Context()
    try:
        yield ctx
    finally:
        ctx.destroy(linger=0)


@pytest.fixture
def dealer(zctx: zmq.Context[Any]) -> Iterator[DealerFactory]:
    """Make DEALER sockets connected to an endpoint; all closed at teardown."""
    sockets: list[zmq.Socket[Any]] = []

    def make(
        address: str,
        identity: str | None = None,
        *,
        server_public: str | bytes | None = None,
        client_keys: tuple[bytes, bytes] | None = None,
    ) -> zmq.Socket[Any]:
        sock: zmq.Socket[Any] = zctx.socket(zmq.DEALER)
        sockets.append(sock)
        sock.setsockopt(zmq.LINGER, 0)
        if identity is not None:
            sock.setsockopt(zmq.IDENTITY, identity.encode())
        if server_public is not None and client_keys is not None:
            public, secret = client_keys
            sock.curve_serverkey = (
                server_public.encode() if isinstance(server_public, str) else server_public
            )
            sock.curve_publickey = public
            sock.curve_secretkey = secret
        sock.connect(address)
        return sock

    try:
        yield make
    finally:
        for sock in sockets:
            sock.close(linger=0)


@pytest.fixture
def make_coordinator() -> Iterator[Callable[..., Coordinator]]:
    made: list[Coordinator] = []

    def make(**kwargs: Any) -> Coordinator:
        coordinator = Coordinator(**kwargs)
        made.append(coordinator)
        return coordinator

    try:
        yield make
    finally:
        for coordinator in made:
            coordinator.close()


def swarm_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t is not threading.main_thread()}


# -- default bind -------------------------------------------------------------------------------


def test_default_bind_is_ipc_in_a_private_directory(
    make_coordinator: Callable[..., Coordinator], dealer: DealerFactory
) -> None:
    coordinator = make_coordinator()
    address = coordinator.endpoint.address
    assert address.startswith("ipc://")
    path = address[len("ipc://") :]
    directory = os.path.dirname(path)
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    assert os.stat(directory).st_uid == os.getuid()
    assert coordinator.endpoint.server_public is None  # ipc: file permissions, no CURVE
    sock = dealer(address, "gw0")
    sock.send(hello("gw0"))
    assert receive_kind(sock, "welcome").body == {"interval": 1.0}
    assert coordinator.has_hello("gw0")
    coordinator.close()
    assert not os.path.exists(directory)


# -- hostile input ------------------------------------------------------------------------------


def test_malformed_bytes_are_dropped_counted_and_the_coordinator_keeps_serving(
    make_coordinator: Callable[..., Coordinator], dealer: DealerFactory
) -> None:
    # RELIABILITY row 5.
    coordinator = make_coordinator()
    bad = dealer(coordinator.endpoint.address, "gw9")
    garbage = [
        b"",
        b"\xc1\xc1\xc1",
        b"\x91" * 10_000,
        b"\xdd\xff\xff\xff\xff",
        encode("ping")[:-1],
        msgpack.packb([PROTOCOL_VERSION, "hello", {"worker": 1}]),
        msgpack.packb({"not": "a frame"}),
    ]
    for frame in garbage:
        bad.send(frame)
    bad.send_multipart([b"two", b"frames"])  # one message of several frames
    wait_until(lambda: coordinator.rejected >= len(garbage) + 1)
    assert coordinator.rejected == len(garbage) + 1
    assert receive(bad, 0.05) is None  # nothing answered to garbage
    assert not coordinator.has_hello("gw9")
    # The same peer, and another one, are still served.
    bad.send(hello("gw9"))
    assert receive_kind(bad, "welcome") is not None
    good = dealer(coordinator.endpoint.address, "gw0")
    good.send(hello("gw0"))
    assert receive_kind(good, "welcome") is not None
    assert coordinator.has_hello("gw0") and coordinator.has_hello("gw9")


def test_oversized_frame_is_refused(
    make_coordinator: Callable[..., Coordinator], dealer: DealerFactory
) -> None:
    # RELIABILITY row 6: libzmq refuses it (MAXMSGSIZE) before anything is unpacked.
    coordinator = make_coordinator()
    assert coordinator.socket.getsockopt(zmq.MAXMSGSIZE) == MAX_FRAME
    big = dealer(coordinator.endpoint.address, "gw5")
    monitor = big.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    try:
        load_tests = ["x" * (1024 * 1024 - 16)] * 9  # each string within msgpack's limit
        frame = msgpack.packb(
            [PROTOCOL_VERSION, "hello", {"worker": "gw5", "version": "0", "load_tests": load_tests}]
        )
        assert len(frame) > MAX_FRAME
        big.send(frame)
        # The coordinator hangs up on the sender as soon as it reads the frame's size.
        assert monitor.poll(int(WAIT * 1000), zmq.POLLIN), "oversized sender not disconnected"
        assert recv_monitor_message(monitor)["event"] == zmq.EVENT_DISCONNECTED
    finally:
        big.disable_monitor()
        monitor.close(linger=0)
    good = dealer(coordinator.endpoint.address, "gw0")
    good.send(hello("gw0"))
    assert receive_kind(good, "welcome") is not None
    assert receive(big, 0.05) is None
    assert not coordinator.has_hello("gw5")
    assert coordinator.rejected == 0  # never reached the decoder
    assert coordinator.control.load_tests() == {"t.py::test_load"}


def test_frames_that_expand_hugely_are_refused_and_the_coordinator_keeps_serving(
    make_coordinator: Callable[..., Coordinator], dealer: DealerFactory
) -> None:
    # RELIABILITY row 29 (issue 8, section 2): six 8 MB frames of empty maps (8 million
    # objects each, ~600 MiB once decoded; six of them used to end in an INTERNALERROR) are
    # refused from their headers, and the coordinator answers the next hello.
    import tracemalloc

    coordinator = make_coordinator()
    chunk = 100_000
    array = b"\xdd" + chunk.to_bytes(4, "big") + b"\x80" * chunk
    frame = b"\xdd" + (80).to_bytes(4, "big") + array * 80
    assert len(frame) <= MAX_FRAME
    hostile = dealer(coordinator.endpoint.address, "gw7")
    tracemalloc.start()
    try:
        for _ in range(6):
            hostile.send(frame)
        wait_until(lambda: coordinator.rejected >= 6, timeout=120)  # tracemalloc is slow
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert coordinator.rejected == 6
    # The frames themselves (received by libzmq, copied once into Python) but no decoding.
    assert peak < 4 * len(frame), peak
    good = dealer(coordinator.endpoint.address, "gw0")
    good.send(hello("gw0"))
    assert receive_kind(good, "welcome") is not None


def test_other_protocol_version_is_refused_with_a_clear_reason(
    make_coordinator: Callable[..., Coordinator], dealer: DealerFactory
) -> None:
    # RELIABILITY row 23.
    coordinator = make_coordinator()
    old = dealer(coordinator.endpoint.address, "gw3")
    old.send(
        msgpack.packb(
            [PROTOCOL_VERSION + 1, "hello", {"worker": "gw3", "version": "9.0", "load_tests": []}]
        )
    )
    refuse = receive_kind(old, "refuse")
    reason = refuse.body["reason"]
    assert "protocol" in reason
    assert str(PROTOCOL_VERSION + 1) in reason and str(PROTOCOL_VERSION) in reason
    assert not coordinator.has_hello("gw3")
    assert coordinator.rejected == 1


# -- TCP and CURVE ------------------------------------------------------------------------------


def test_tcp_bind_requires_this_runs_curve_keys(
    make_coordinator: Callable[..., Coordinator], dealer: DealerFactory
) -> None:
    # RELIABILITY row 7.
    coordinator = make_coordinator(bind="tcp://127.0.0.1:0")
    endpoint = coordinator.endpoint
    assert endpoint.address.startswith("tcp://127.0.0.1:")
    assert not endpoint.address.endswith(":0")
    assert endpoint.server_public and endpoint.client_public and endpoint.client_secret
    assert set(endpoint.to_dict()) == {"address", "server_public", "client_public", "client_secret"}
    client_keys = (endpoint.client_public.encode(), endpoint.client_secret.encode())

    # Peers without this run's client key: no keys at all, and a valid CURVE handshake with a
    # key pair of their own. Watched together, so the silence costs SILENCE once.
    plain = dealer(endpoint.address, "gw7")
    stranger = dealer(
        endpoint.address,
        "gw8",
        server_public=endpoint.server_public,
        client_keys=zmq.curve_keypair(),
    )
    plain.send(hello("gw7"))
    stranger.send(hello("gw8"))

    trusted = dealer(
        endpoint.address, "gw0", server_public=endpoint.server_public, client_keys=client_keys
    )
    trusted.send(hello("gw0"))
    assert receive_kind(trusted, "welcome") is not None

    poller = zmq.Poller()
    poller.register(plain, zmq.POLLIN)
    poller.register(stranger, zmq.POLLIN)
    deadline = time.monotonic() + SILENCE
    while (left := deadline - time.monotonic()) > 0:
        assert poller.poll(int(left * 1000) + 1) == []
    assert not coordinator.has_hello("gw7")
    assert not coordinator.has_hello("gw8")
    assert coordinator.has_hello("gw0")
    assert coordinator.rejected == 0  # refused by the handshake: not a byte reached us


def test_advertised_host_replaces_the_bound_one(
    make_coordinator: Callable[..., Coordinator],
) -> None:
    coordinator = make_coordinator(bind="tcp://127.0.0.1:0", advertise="swarm-host.example")
    assert coordinator.endpoint.address.startswith("tcp://swarm-host.example:")


def test_port_already_in_use_raises_bind_error_naming_the_address() -> None:
    # RELIABILITY row 24.
    before = swarm_threads()
    taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        address = f"tcp://127.0.0.1:{port}"
        with pytest.raises(BindError) as info:
            Coordinator(bind=address)
        assert address in str(info.value)
        assert "in use" in str(info.value).lower()
    finally:
        taken.close()
    wait_until(lambda: swarm_threads() <= before)  # the authenticator was stopped


def test_unusable_address_raises_bind_error() -> None:
    with pytest.raises(BindError, match="nonsense://x"):
        Coordinator(bind="nonsense://x")


# -- life cycle ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bind", [None, "tcp://127.0.0.1:0"], ids=["ipc", "tcp-curve"])
def test_close_leaves_no_thread_running(bind: str | None) -> None:
    before = swarm_threads()
    coordinator = Coordinator(bind=bind)
    try:
        started = swarm_threads() - before
        assert any(t.name == "swarm-coordinator" for t in started)
    finally:
        coordinator.close()
    assert swarm_threads() <= before
    assert coordinator.socket.closed
    assert coordinator.context.closed


def test_messages_flow_between_hooks_and_workers(
    make_coordinator: Callable[..., Coordinator], dealer: DealerFactory
) -> None:
    """The lock-protected hook API and the thread meet: a barrier, then a worker lost through
    the xdist hook, its peer told to stop."""
    coordinator = make_coordinator(interval=0.2)
    workers = {w: dealer(coordinator.endpoint.address, w) for w in ("gw0", "gw1")}
    for name, sock in workers.items():
        sock.send(hello(name))
        assert receive_kind(sock, "welcome").body == {"interval": 0.2}
        coordinator.expect(name)
    assert coordinator.load_tests() == {"t.py::test_load"}
    for sock in workers.values():
        sock.send(encode("ready", test="t.py::test_load", users=2, duration=1.0, settings={}))
    gos = {name: receive_kind(sock, "go").body["index"] for name, sock in workers.items()}
    assert gos == {"gw0": 0, "gw1": 1}
    # Heartbeats arrive on their own.
    assert receive_kind(workers["gw0"], "pong") is not None
    coordinator.worker_down("gw1", "crashed: killed")
    stop = receive_kind(workers["gw0"], "stop")
    assert "gw1" in stop.body["reason"]
    workers["gw0"].send(encode("claim", test="t.py::test_load"))
    assert receive_kind(workers["gw0"], "reporter").body["yes"] is True
    assert coordinator.reporter_of("t.py::test_load") == "gw0"


def test_endpoint_module_doctests() -> None:
    assert doctest.testmod(endpoint_module).failed == 0


def test_a_private_directory_made_by_the_caller_is_removed_at_close() -> None:
    # The controller makes the directory (to know the address before ZeroMQ is imported) and
    # hands it over: the coordinator binds there and removes it when it closes.
    directory, address = private_ipc()
    coordinator = Coordinator(bind=address, private_dir=directory)
    try:
        assert coordinator.endpoint.address == address
        assert os.path.exists(address[len("ipc://") :])
    finally:
        coordinator.close()
    assert not os.path.exists(directory)


def test_results_and_progress_are_built_outside_the_coordinators_lock(
    make_coordinator: Callable[..., Coordinator],
    dealer: DealerFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A merged result takes tens of ms with 1,000 workers: xdist's hooks, which take the
    coordinator's lock, must not wait for one (the end of a run, every Progress)."""
    coordinator = make_coordinator(interval=0.2, feed=Feed())
    control = coordinator.control
    held: dict[str, list[bool]] = {"result": [], "progress": []}
    build, progress = control._result_frame, control.progress

    def spy_build(run: Any, now: float) -> bytes:
        held["result"].append(coordinator._lock.locked())
        return build(run, now)

    def spy_progress(run: Any, now: float) -> Any:
        held["progress"].append(coordinator._lock.locked())
        return progress(run, now)

    monkeypatch.setattr(control, "_result_frame", spy_build)
    monkeypatch.setattr(control, "progress", spy_progress)
    sock = dealer(coordinator.endpoint.address, "gw0")
    sock.send(hello("gw0"))
    receive_kind(sock, "welcome")
    coordinator.expect("gw0")
    sock.send(encode("ready", test="t.py::test_load", users=1, duration=1.0, settings={}))
    receive_kind(sock, "go")
    wait_until(lambda: bool(held["progress"]))  # one per interval
    body = {"seq": 0, "delta": Snapshot().to_wire(), "cpu": 1.0, "lag": 0.0, "lost": 0}
    sock.send(encode("final", test="t.py::test_load", **body))
    sock.send(encode("result?", test="t.py::test_load"))
    assert receive_kind(sock, "result").body["test"] == "t.py::test_load"
    assert held["result"] == [False]
    assert held["progress"] and not any(held["progress"])
