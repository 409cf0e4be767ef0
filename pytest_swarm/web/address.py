"""``--swarm-web [HOST:]PORT``: where the dashboard listens, parsed and validated.

A bare number is a port on loopback; anything else is a host, optionally followed by
``:PORT``; no port (or ``0``, or ``auto``) picks a free one. IPv6 hosts go in brackets.

Example:
    >>> parse_address("8089"), parse_address("auto"), parse_address("0.0.0.0:9000")
    (('127.0.0.1', 8089), ('127.0.0.1', 0), ('0.0.0.0', 9000))
    >>> parse_address("[::1]:0"), parse_address("localhost")
    (('::1', 0), ('localhost', 0))
    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0")
    (True, True, False)
"""

from __future__ import annotations

import ipaddress

__all__ = ["DEFAULT_HOST", "AddressError", "is_loopback", "parse_address"]

DEFAULT_HOST = "127.0.0.1"
_MAX_LENGTH = 300  # a hostname is at most 253 characters


class AddressError(ValueError):
    """A ``--swarm-web`` value that is not ``[HOST:]PORT``; the message says what is wrong."""


def _port(text: str, value: str) -> int:
    if text in ("", "0", "auto"):
        return 0
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise AddressError(f"--swarm-web: expected a port 1-65535, got {text!r} in {value!r}")
    return int(text)


def parse_address(value: str) -> tuple[str, int]:
    """``(host, port)`` of a ``--swarm-web`` value; port 0 means a free one."""
    text = value.strip()
    if len(text) > _MAX_LENGTH:
        raise AddressError(f"--swarm-web: value too long ({len(text)} characters)")
    if text in ("", "auto") or text.isdigit():
        return DEFAULT_HOST, _port(text, value)
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise AddressError(f"--swarm-web: expected [IPV6]:PORT, got {value!r}")
        port = _port(rest[1:], value)
    elif text.count(":") > 1:
        raise AddressError(
            f"--swarm-web: put an IPv6 address in brackets, e.g. [::1]:8089, not {value!r}"
        )
    else:
        host, _, port_text = text.partition(":")
        port = _port(port_text, value)
    if not host or any(c.isspace() or c in "/?#@" for c in host):
        raise AddressError(f"--swarm-web: expected HOST:PORT, got {value!r}")
    return host, port


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (no other machine can connect to it)."""
    if host.lower() in ("localhost", "localhost.", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
