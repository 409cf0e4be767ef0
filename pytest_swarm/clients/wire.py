"""Parsing one HTTP/1.1 response with httptools (llhttp), with every input bounded.

:class:`ResponseParse` holds the callbacks of one response and the parser feeding them;
:class:`ParserPool` lends them for one response at a time. The bounds: header bytes and header
count (as urllib3/h11 do: an endless head fails instead of growing memory), the body size (the
bytes past ``swarm_max_body`` are not kept: ``too_large`` is set and the caller stops reading).

Framing (RFC 9112 §6.3): ``Transfer-Encoding: chunked`` with a ``Content-Length`` is read as
chunked and the connection is not reused; a ``Content-Length`` repeated with one value (as
separate fields or a list) is that value. llhttp refuses the latter; :func:`reframe` rewrites
such a head once, on that error path only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httptools

from ..native import pure_python
from .errors import HeadersTooLarge

# The bounds on a response head (urllib3 via http.client: 64 KiB a line and 100 headers).
MAX_HEADER_BYTES = 64 * 1024
MAX_HEADERS = 100


class TrailingBytes(Exception):
    """Raised in the parser's callback when bytes follow a complete response."""


class PyResponseParse:
    """httptools callbacks for one response, and the parser feeding them.

    This is the pure-Python implementation; :data:`ResponseParse` is the C one from
    ``pytest_swarm._speedups`` where it was built (the same logic, line for line: httptools
    then calls C methods instead of a dozen Python frames per response), and this class
    otherwise.
    """

    __slots__ = (
        "body",
        "chunked",
        "close_after",
        "coding",
        "complete",
        "cookies",
        "done",
        "head_only",
        "headers",
        "headers_done",
        "keep_alive",
        "max_body",
        "parser",
        "reason",
        "size",
        "status",
        "too_large",
    )

    def __init__(self) -> None:
        self.max_body = 0
        self.head_only = False
        self.parser: Any = _new_parser(self)
        self.reset()

    def reset(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.size = 0
        self.reason = ""
        self.done = False
        self.complete = False  # llhttp reached the end of the message (and can parse another)
        self.headers_done = False
        self.too_large = False
        self.keep_alive = False
        self.chunked = False
        self.close_after = False
        self.status = 0
        self.coding = b""  # the last Content-Encoding value
        self.cookies = False  # a Set-Cookie header came

    def renew(self) -> None:
        """A fresh llhttp state (after a parser error the old one is unusable)."""
        self.parser = _new_parser(self)
        self.reset()

    def drop_body(self) -> None:
        """Let go of the partial body now: an exception's traceback keeps this object alive
        (and the parser, which points back at it, is a cycle only the collector frees)."""
        self.body = []

    def on_message_begin(self) -> None:
        if self.done:
            # Bytes after the complete response, in the same read: the connection cannot be
            # trusted with another request. Stopping here keeps the response as it was
            # (feed_data raises HttpParserCallbackError, which the caller expects).
            self.keep_alive = False
            raise TrailingBytes

    def on_status(self, status: bytes) -> None:
        self.reason = status.decode("latin-1")

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.headers_done:
            return  # a chunked body's trailer fields: not headers of the response
        self.headers.append((name, value))
        # One length test per header; the full comparison only for a name of the length
        # of one of the three that matter here.
        size = len(name)
        if size == 17:
            if name.lower() == b"transfer-encoding":
                self.chunked = True
        elif size == 16:
            if name.lower() == b"content-encoding":
                self.coding = value
        elif (size == 10 or size == 11) and name.lower() in (b"set-cookie", b"set-cookie2"):
            self.cookies = True

    def on_headers_complete(self) -> None:
        self.headers_done = True
        headers = self.headers
        if len(headers) > MAX_HEADERS:
            raise HeadersTooLarge(f"more than {MAX_HEADERS} response headers")
        status = self.parser.get_status_code()
        if self.chunked and any(k.lower() == b"content-length" for k, _ in headers):
            # Chunked wins over Content-Length (llhttp lets it, leniently), and such a message
            # may hide a second one: the connection is not reused (RFC 9112 §6.3).
            self.close_after = True
        if self.head_only and not 100 <= status < 200:
            # A response to HEAD has no body whatever its Content-Length says; llhttp does not
            # know the method, so the message ends here for us (the parser is not reused).
            self.keep_alive = self.parser.should_keep_alive() and not self.close_after
            self.status = status
            self.done = True

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > self.max_body:
            if not self.too_large:
                self.too_large = True
                self.body = []  # freed now, not when an exception's frames go
        elif not self.too_large:
            self.body.append(body)

    def on_message_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            # An interim response (100 Continue, 103 Early Hints): the final one follows.
            self.headers = []
            self.headers_done = False
            self.chunked = False
            self.coding = b""
            self.cookies = False
            return
        self.complete = True
        if self.done:  # a HEAD response, ended at its headers already
            return
        # Read here: llhttp resets its state once the message is complete, after which
        # should_keep_alive() answers False.
        self.keep_alive = self.parser.should_keep_alive() and not self.close_after
        self.status = status
        self.done = True


def _new_parser(parse: PyResponseParse) -> Any:
    parser = httptools.HttpResponseParser(parse)
    parser.set_dangerous_leniencies(lenient_chunked_length=True)
    return parser


def _accelerated() -> type[Any] | None:
    """The C ResponseParse, bound to this module, or None where it was not built (or
    ``SWARM_PURE_PYTHON=1`` asks for the pure-Python one)."""
    if pure_python():
        return None
    try:
        from .. import _speedups
    except ImportError:
        return None
    _speedups.bind_wire(_new_parser, TrailingBytes, HeadersTooLarge, MAX_HEADERS)
    return _speedups.ResponseParse


_fast = _accelerated()
if TYPE_CHECKING:
    ResponseParse = PyResponseParse
else:
    ResponseParse = _fast or PyResponseParse


class ParserPool:
    """Parsers lent for one response and given back after a complete keep-alive message, whose
    end leaves llhttp ready for the next one. An idle user then holds no parser: a parser, its
    bound callbacks and their object cost ~0.9 KiB, on each of thousands of idle users. The
    pool holds as many as were ever in flight at once, at most ``limit``; a parser left in any
    other state (an error, a cut-off or HEAD response, Connection: close) is dropped."""

    __slots__ = ("free", "limit")

    def __init__(self, limit: int = 4096) -> None:
        self.free: list[ResponseParse] = []
        self.limit = limit

    def lend(self, max_body: int, head_only: bool) -> ResponseParse:
        parse = self.free.pop() if self.free else ResponseParse()
        parse.max_body = max_body
        parse.head_only = head_only
        return parse

    def shrink(self) -> None:
        """Let go of the pooled parsers: the runner calls this (through engine/heap.py's trim)
        once a crowd's start is over and its users are idle, when as many parsers as were in
        flight at the peak (up to ``limit``, ~0.9 KiB each) would otherwise stay for good.
        The next busy spell fills the pool again, one parser per response in flight."""
        self.free.clear()

    def give_back(self, parse: ResponseParse) -> None:
        if len(self.free) < self.limit:
            parse.reset()
            self.free.append(parse)


def reframe(data: bytes) -> bytes | None:
    """``data`` (a response's first bytes, the whole head in them) with a repeated
    ``Content-Length`` of one value folded into one field; None when the head is not complete
    here or the values differ (then the framing is invalid and the response fails)."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = data[:end].split(b"\r\n")
    values: set[bytes] = set()
    kept = [lines[0]]
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if sep and name.strip().lower() == b"content-length":
            values.update(v.strip() for v in value.split(b","))
        else:
            kept.append(line)
    if len(values) != 1:
        return None
    (value,) = values
    if not value.isdigit():
        return None
    kept.append(b"Content-Length: " + value)
    return b"\r\n".join(kept) + data[end:]
