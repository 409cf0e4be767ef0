"""Where workers find the controller's aggregator: what travels in ``workerinput['swarm']``.

Kept free of ZeroMQ so that the xdist controller can hand workers the default address (ipc in a
private directory) before its coordinator has even imported ZeroMQ.

Example:
    >>> Endpoint("ipc:///tmp/x/aggregator.sock").to_dict()["server_public"] is None
    True
"""

from __future__ import annotations

import os
import shutil
import stat
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


PREFIX = "pytest-swarm-"


def private_ipc() -> tuple[str, str]:
    """(a new directory only this user can enter, the ipc address of a socket in it): the
    default, so that no other local user can reach the aggregator. The owner removes it at
    the end of the run; directories left by a controller that was killed (``kill -9``) are
    removed by the next run (see :func:`remove_stale`)."""
    remove_stale()
    directory = tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-")
    os.chmod(directory, 0o700)
    return directory, f"ipc://{directory}/aggregator.sock"


def remove_stale(root: str | None = None) -> list[str]:
    """Remove the private ipc directories of controllers that are gone: only ours (our name
    prefix, owned by this OS user) and only those whose owner PID no longer runs. Returns
    what was removed."""
    root = root or tempfile.gettempdir()
    removed: list[str] = []
    try:
        names = os.listdir(root)
    except OSError:
        return removed
    for name in names:
        if not name.startswith(PREFIX):
            continue
        pid_text = name[len(PREFIX) :].split("-", 1)[0]
        if not pid_text.isdigit() or _running(int(pid_text)):
            continue
        path = os.path.join(root, name)
        try:
            info = os.lstat(path)
        except OSError:
            continue
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: not ours to judge
    return True
