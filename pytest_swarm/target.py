"""The pre-flight check of the target: one clear error early instead of thousands of identical
failures.

Example:
    >>> check_target("http://127.0.0.1:8089")
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit


class TargetError(Exception):
    """The target cannot be reached at all (e.g. its host name does not resolve)."""


def check_target(url: str | None) -> None:
    """One clear error early instead of thousands of identical failures."""
    if not url:
        return
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetError(f"target {url!r} is not an http(s) URL with a host")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.getaddrinfo(parts.hostname, port, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        raise TargetError(f"target host {parts.hostname!r} does not resolve: {exc}") from None
