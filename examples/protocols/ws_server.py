"""A WebSocket echo server (the ``websockets`` package) for the examples and the tests.

``python -m protocols.ws_server`` listens on a free loopback port and prints its URL. Every
text or binary message is sent back as it is, except one control message used by the tests
to prove that users run at the same time:

- ``barrier N KEY``: the reply ``go`` comes only once N connections have sent this message
  with this KEY (``timeout`` after 10 s). Users taking turns would never all be waiting.
"""

from __future__ import annotations

import asyncio
import sys

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from .child import announce, exit_with_parent

BARRIER_TIMEOUT = 10.0
MAX_MESSAGE = 1024 * 1024  # bytes: a larger frame closes the connection (1009)
MAX_WAITING = 1000  # connections waiting at barriers at once

_barriers: dict[str, tuple[int, asyncio.Event]] = {}


async def barrier(arguments: list[str]) -> str:
    """Wait until ``N`` arrivals with the same key; the N-th releases them all."""
    if len(arguments) != 2 or not arguments[0].isdigit():
        return "bad barrier: barrier N KEY"
    needed, key = int(arguments[0]), arguments[1]
    if not 1 <= needed <= MAX_WAITING:
        return f"bad barrier: N must be 1..{MAX_WAITING}"
    arrived, event = _barriers.get(key, (0, asyncio.Event()))
    arrived += 1
    _barriers[key] = (arrived, event)
    if arrived >= needed:
        del _barriers[key]
        event.set()
        return "go"
    try:
        await asyncio.wait_for(event.wait(), BARRIER_TIMEOUT)
    except asyncio.TimeoutError:  # the builtin TimeoutError only from Python 3.11
        return "timeout"
    return "go"


async def echo(connection: ServerConnection) -> None:
    try:
        async for message in connection:
            if isinstance(message, str) and message.startswith("barrier "):
                await connection.send(await barrier(message.split()[1:]))
            else:
                await connection.send(message)
    except ConnectionClosed:
        pass  # a client that drops its connection is the client's failure, not the server's


async def main() -> None:
    async with serve(echo, "127.0.0.1", 0, max_size=MAX_MESSAGE, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        announce(f"ws://127.0.0.1:{port}")
        await server.serve_forever()


if __name__ == "__main__":
    exit_with_parent(sys.argv)
    asyncio.run(main())
