"""The fast client's own errors (the ``http`` transport maps each to its requests exception)."""

from __future__ import annotations


class FastHttpError(Exception):
    """Base of the fast client's own errors (connection, protocol, size)."""


class ConnectionClosed(FastHttpError):
    """The server closed the connection before a complete response."""


class IncompleteBody(ConnectionClosed):
    """The response was cut short after its status line (a head never ended, a Content-Length
    not reached, a chunked body ended mid-chunk): what requests calls
    ``ChunkedEncodingError``."""


class InvalidFraming(FastHttpError):
    """The response's length cannot be trusted (``Content-Length`` fields that disagree):
    requests' ``InvalidHeader``."""


class StaleConnection(ConnectionClosed):
    """A kept-alive connection turned out closed or reset before any byte of the answer."""


class ConnectTimeout(FastHttpError, TimeoutError):
    """The connection (TCP and, for HTTPS, the TLS handshake) took longer than the timeout:
    the request was never sent."""


class DeadlineExceeded(FastHttpError, TimeoutError):
    """The whole request (connect, send, every read) took longer than its deadline, however
    steadily the server trickled bytes."""


class BodyTooLarge(FastHttpError):
    """The response body (decoded size) exceeded ``swarm_max_body``; it was discarded."""


class HeadersTooLarge(FastHttpError):
    """The response head exceeded the bound on header bytes or header count."""


class DecodeFailed(FastHttpError):
    """The body does not decode with its ``Content-Encoding`` (or the coding needs a module
    that is not installed)."""
