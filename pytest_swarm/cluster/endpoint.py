"""Where workers find the controller's aggregator: what travels in ``workerinput['swarm']``.

Kept free of ZeroMQ so that the xdist controller can hand workers the default address (ipc in a
private directory) before its coordinator has even imported ZeroMQ.

Example:
    >>> Endpoint("ipc:///tmp/x/aggregator.sock").to_dict()["server_public"] is None
    True
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Endpoint:
    """What a worker needs to connect (CURVE keys only for a TCP address)."""

    address: str
    server_public: str | None = None
    client_public: str | None = None
    client_secret: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "server_public": self.server_public,
            "client_public": self.client_public,
            "client_secret": self.client_secret,
        }


def private_ipc() -> tuple[str, str]:
    """(a new directory only this user can enter, the ipc address of a socket in it): the
    default, so that no other local user can reach the aggregator. The owner removes it."""
    directory = tempfile.mkdtemp(prefix="pytest-swarm-")
    os.chmod(directory, 0o700)
    return directory, f"ipc://{directory}/aggregator.sock"
