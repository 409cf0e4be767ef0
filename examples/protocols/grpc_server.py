"""A gRPC server without generated code, for the examples and the tests.

``python -m protocols.grpc_server`` listens on a free loopback port and prints its target
(``127.0.0.1:PORT``). Service ``demo.Echo``, unary methods on raw bytes (no protobuf):

- ``Echo``: returns the request.
- ``Fail``: fails with status ``INVALID_ARGUMENT`` and the request as details.
- ``Peer``: returns the caller's address as the server sees it (``ipv4:127.0.0.1:PORT``): one
  per connection.
- ``Barrier``: the request is ``N KEY``; the reply ``go`` comes only once N calls with this
  KEY are in flight (``timeout`` after 10 s). Callers taking turns would never all be waiting.
"""

from __future__ import annotations

import sys
import threading
from concurrent import futures
from typing import Any

import grpc

from .child import announce, exit_with_parent

SERVICE = "demo.Echo"
BARRIER_TIMEOUT = 10.0
MAX_MESSAGE = 1024 * 1024  # bytes, either way
WORKERS = 64  # calls handled at once (barrier calls hold one each)

_lock = threading.Lock()
_barriers: dict[bytes, tuple[int, threading.Event]] = {}


def echo(request: bytes, context: Any) -> bytes:
    return request


def fail(request: bytes, context: Any) -> bytes:
    context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.decode("utf-8", "replace")[:200])
    raise AssertionError("abort() raises")


def peer(request: bytes, context: Any) -> bytes:
    return str(context.peer()).encode()


def barrier(request: bytes, context: Any) -> bytes:
    parts = request.split()
    if len(parts) != 2 or not parts[0].isdigit() or not 1 <= int(parts[0]) < WORKERS:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"Barrier takes 'N KEY', N < {WORKERS}")
    needed, key = int(parts[0]), parts[1]
    with _lock:
        arrived, event = _barriers.get(key, (0, threading.Event()))
        arrived += 1
        _barriers[key] = (arrived, event)
        if arrived >= needed:
            del _barriers[key]
            event.set()
    return b"go" if event.wait(BARRIER_TIMEOUT) else b"timeout"


def main() -> None:
    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Echo": grpc.unary_unary_rpc_method_handler(echo),
            "Fail": grpc.unary_unary_rpc_method_handler(fail),
            "Peer": grpc.unary_unary_rpc_method_handler(peer),
            "Barrier": grpc.unary_unary_rpc_method_handler(barrier),
        },
    )
    limits = [
        ("grpc.max_receive_message_length", MAX_MESSAGE),
        ("grpc.max_send_message_length", MAX_MESSAGE),
    ]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=WORKERS), options=limits)
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    announce(f"127.0.0.1:{port}")
    server.wait_for_termination()


if __name__ == "__main__":
    exit_with_parent(sys.argv)
    main()
