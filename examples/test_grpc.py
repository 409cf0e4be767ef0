"""gRPC: every unary call timed by a client interceptor, without wrapping calls by hand.

grpcio runs its own C core: under gevent it needs ``grpc.experimental.gevent.init_gevent()``
in the patched process before the first channel is made. pytest-swarm calls it for you when
grpcio is installed and the run has load tests (``SWARM_GRPC_GEVENT=off`` turns that off);
without it every call blocks the whole process: the users take turns.

The server (``protocols/grpc_server.py``, no generated code) runs in a child process;
``SWARM_GRPC_TARGET=host:port`` points the example at a server of your own instead.
"""

from __future__ import annotations

import os

import pytest

from pytest_swarm import measure

grpc = pytest.importorskip("grpc", reason="needs grpcio (pip install grpcio)")


class Measured(grpc.UnaryUnaryClientInterceptor):
    """Times every blocking unary call as ``gRPC <method>``; a failed call records its status
    code and details, and its ``grpc.RpcError`` still reaches the caller."""

    def intercept_unary_unary(self, continuation, details, request):
        with measure(f"gRPC {details.method}") as m:
            call = continuation(details, request)
            if call.exception() is not None:
                m.failure(f"{call.code().name}: {call.details()}")
                call.result()  # raises the RpcError inside the block: counted once
        return call


@pytest.fixture(scope="session")
def grpc_target():
    """The server: ``SWARM_GRPC_TARGET``, else the demo server started for this session."""
    if os.environ.get("SWARM_GRPC_TARGET"):
        yield os.environ["SWARM_GRPC_TARGET"]
        return
    from protocols.child import serve

    with serve("protocols.grpc_server") as target:
        yield target


@pytest.fixture
def echo_channel(grpc_target):
    """One channel per virtual user, with its own connection, every call on it measured."""
    # By default grpc shares one connection among all channels to the same target: a local
    # subchannel pool gives each user its own, as separate clients would have.
    own_connection = [("grpc.use_local_subchannel_pool", 1)]
    channel = grpc.insecure_channel(grpc_target, options=own_connection)
    yield grpc.intercept_channel(channel, Measured())
    channel.close()


@pytest.mark.load(users=10, rate=10, duration="3s", wait=(0.05, 0.1))
@pytest.mark.slo("[gRPC /demo.Echo/Echo] p95 < 100ms", "error_rate < 1%")
def test_unary_echo(echo_channel, swarm_user):
    echo = echo_channel.unary_unary("/demo.Echo/Echo")  # bytes in, bytes out: no protobuf
    payload = f"user {swarm_user.index}".encode()
    assert echo(payload, timeout=5) == payload
