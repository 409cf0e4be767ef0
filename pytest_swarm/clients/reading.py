"""One response being read off a connection, one receive at a time.

:class:`Reading` sends the request bytes and feeds what comes back to the parser of
:mod:`.wire`, with every bound applied on each receive (the read timeout, the request's
deadline, the head and body sizes). The fast client reads a response to its end in one go; a
streamed response of the ``http`` client (``stream=True``) stops after the head and reads the
body as the test asks for it, through the same :meth:`Reading.step`.

Example:
    >>> reading = Reading(conn, PARSERS.lend(max_body, False), 5.0, None)   # doctest: +SKIP
    >>> reading.send(b"GET / HTTP/1.1\\r\\nHost: h\\r\\n\\r\\n")                # doctest: +SKIP
    >>> while not reading.step():                                          # doctest: +SKIP
    ...     pass
"""

from __future__ import annotations

import time

import httptools
from gevent import get_hub

from .connect import Connection
from .errors import (
    BodyTooLarge,
    ConnectionClosed,
    DeadlineExceeded,
    HeadersTooLarge,
    IncompleteBody,
    InvalidFraming,
    StaleConnection,
)
from .hub import SEND, hub_state, wait_for
from .stamps import recv_stamped
from .wire import MAX_HEADER_BYTES, ResponseParse, reframe

# One receive's size: below glibc's mmap threshold (128 KiB), so the bytes object a receive
# allocates (and shrinks to what came) is heap memory; at 256 KiB every response cost an mmap,
# an mremap and a munmap (three system calls and fresh pages) on top of its recv.
_RECV = 64 * 1024
LATE = "the whole request took longer than its deadline"


class Reading:
    """The request on ``conn`` and its response as far as it has been read into ``parse``.

    ``timeout``: each receive (None: none); ``deadline``: a ``time.perf_counter()`` time the
    whole exchange must end by (None: none). :meth:`step` raises the fast client's errors; the
    caller closes the connection on any of them (a response read in part cannot be resumed).
    """

    __slots__ = (
        "arrived",
        "conn",
        "deadline",
        "deadline_first",
        "failed",
        "feed",
        "fresh",
        "parse",
        "received",
        "reused",
        "sent",
        "timeout",
        "unsent",
        "wait",
    )

    def __init__(
        self,
        conn: Connection,
        parse: ResponseParse,
        timeout: float | None,
        deadline: float | None,
    ) -> None:
        self.conn = conn
        self.parse = parse
        self.feed = parse.parser.feed_data
        self.timeout = timeout
        self.deadline = deadline
        self.received = 0
        # Which bound ends a silent wait: the deadline when it is clearly the nearer one (the
        # default deadline equals the timeout, and a silent target is then a read timeout).
        self.deadline_first = False
        self.wait = timeout  # the bound of the next wait for bytes (None: none)
        # Nothing received since the request went: the answer cannot be there yet, so the
        # first receive waits before it reads (a receive that fails costs an exception).
        self.fresh = False
        # perf_counter() times of the request's send and of its answer's last bytes: what the
        # fast client reports as the request's time (see _recv for why not the time it ends).
        self.sent = 0.0
        self.arrived = 0.0
        # The request while it waits in the hub's SendQueue (then the rest of it, if the
        # socket took only part), and what sending it raised there.
        self.unsent: bytes | None = None
        self.failed: OSError | None = None
        self.reused = False

    def send(self, data: bytes) -> None:
        """Send the request: on a gevent socket, queue it for the hub's :class:`SendQueue`
        (a failure then shows in :meth:`step`); otherwise send it now. ``StaleConnection``
        when a reused connection turns out closed."""
        conn = self.conn
        timeout = wait = self.timeout
        deadline = self.deadline
        if deadline is not None:
            left = deadline - time.perf_counter()
            if left <= 0:
                raise DeadlineExceeded("the request's deadline passed before it was sent")
            if wait is None or left < wait:
                wait = left
                self.deadline_first = timeout is None or left < 0.9 * timeout
        self.wait = wait
        reused, conn.used = conn.used, True
        if conn.raw is not None:
            # Queued, and sent by the hub at the end of this turn of the event loop with the
            # requests of every other user that runs in it (see SendQueue). This greenlet
            # waits for the answer meanwhile; a send that fails or is cut short wakes it.
            self.unsent = data
            self.reused = reused
            hub = get_hub()
            queue = (getattr(hub, "_swarm", None) or hub_state(hub)).sends
            pending = queue.readings
            pending.append(self)  # SendQueue.add, inlined: per request
            if len(pending) == 1:
                queue.loop.run_callback(queue.flush)
            self.fresh = True
        else:
            self.sent = time.perf_counter()
            self._send_all(data, reused)
            self.fresh = False
        if not reused:
            self.received = -1  # marks a fresh connection: no StaleConnection for it
        else:
            self.received = 0

    def _send_all(self, data: bytes, reused: bool) -> None:
        """Send ``data`` from this greenlet, waiting as long as the socket needs."""
        sock = self.conn.sock
        try:
            sock.settimeout(self.wait)
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            if reused:
                raise StaleConnection("kept-alive connection closed by the server") from None
            raise

    def flush(self) -> None:
        """Send the queued request (the hub's :class:`SendQueue` calls this). One plain send
        nearly always takes all of it; when it does not, or fails, the waiting greenlet is
        woken to send the rest itself or to raise."""
        data = self.unsent
        if data is None:
            return  # the user gave up on this request before its turn came (abandon())
        conn = self.conn
        self.sent = time.perf_counter()
        try:
            sent = conn.raw.send(data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            self.unsent = None
            self.failed = exc
            self._wake()
            return
        if sent < len(data):
            self.unsent = data[sent:]
            self._wake()
        else:
            self.unsent = None

    def _wake(self) -> None:
        switch = self.conn.watcher.callback  # the greenlet waiting for the answer
        if switch is not None:
            switch(SEND)

    def abandon(self) -> None:
        """The request is not to be sent any more (its user left the exchange)."""
        self.unsent = None

    def _sent_in_part(self) -> None:
        """After a wake by :meth:`flush`: raise what sending raised, or send the rest."""
        failed, rest = self.failed, self.unsent
        self.failed = self.unsent = None
        if failed is not None:
            if self.reused and isinstance(failed, BrokenPipeError | ConnectionResetError):
                raise StaleConnection("kept-alive connection closed by the server") from None
            raise failed
        if rest:
            self._send_all(rest, self.reused)

    def _recv(self) -> bytes:
        """One receive of up to 64 KiB, waiting at most ``self.wait`` for bytes
        (``TimeoutError`` when none came in time). Sets ``arrived``: when these bytes were
        there to be read.

        Where the kernel stamps the connection (``conn.stamped``, :mod:`.stamps`), that is the
        kernel's time of the last segment read. Otherwise, after a wait, it is the moment the
        event loop came back from its poll and found them, not the moment this greenlet got
        its turn: the users whose answers came in the same poll run one after the other, and
        the last one's figure would otherwise include the others' Python (at 10 users, about
        as much as the server's own jitter); without a wait, the moment of the receive (the
        bytes may have come earlier: never later).
        """
        conn = self.conn
        raw = conn.raw
        if raw is None:
            sock = conn.sock
            if sock.gettimeout() != self.wait:
                sock.settimeout(self.wait)
            chunk: bytes = sock.recv(_RECV)
            self.arrived = time.perf_counter()
            return chunk
        if self.fresh:
            self.fresh = False
            woke = wait_for(conn.watcher, self.wait)
            while woke <= 0:
                if not woke:
                    raise TimeoutError
                self._sent_in_part()  # woken by the send queue, not by an answer
                woke = wait_for(conn.watcher, self.wait)
            # A wake-up that no poll made (another greenlet switched here) has an older stamp.
            self.arrived = woke if woke > self.sent else time.perf_counter()
        else:
            self.arrived = time.perf_counter()
        while True:
            try:
                if not conn.stamped:
                    return raw.recv(_RECV)  # type: ignore[no-any-return]
                chunk, at = recv_stamped(raw, _RECV)
                # The kernel's time of the last bytes: earlier than any poll's when the process
                # was busy as they came (see stamps). One from before the request went (bytes
                # that were waiting) is not this answer's: the poll's time stands.
                if at > self.sent:
                    self.arrived = at
                return chunk
            except BlockingIOError:
                pass
            woke = wait_for(conn.watcher, self.wait)
            if woke <= 0:
                if not woke:
                    raise TimeoutError
                self._sent_in_part()
                continue
            self.arrived = woke if woke > self.sent else time.perf_counter()

    def step(self) -> bool:
        """One receive fed to the parser; True when the response is complete (or delimited by
        the end of the connection)."""
        parse = self.parse
        deadline = self.deadline
        timeout = self.timeout
        try:
            chunk = self._recv()
        except TimeoutError:
            # An answer that keeps coming, too slowly, is the deadline's case; silence from the
            # start is the read timeout's (a hanging target), unless the deadline was nearer.
            if self.deadline_first or (
                self.received > 0 and deadline is not None and time.perf_counter() >= deadline
            ):
                raise DeadlineExceeded(LATE) from None
            raise TimeoutError(f"read timed out (timeout={timeout}s)") from None
        except ConnectionResetError:
            if self.received == 0:
                raise StaleConnection("kept-alive connection reset by the server") from None
            raise
        if not chunk:
            if self.received == 0:
                raise StaleConnection("kept-alive connection closed by the server")
            if parse.headers_done:
                if not _has(parse.headers, b"content-length") and not _has(
                    parse.headers, b"transfer-encoding"
                ):
                    # The body is delimited by the end of the connection: complete now.
                    parse.status = parse.parser.get_status_code()
                    parse.keep_alive = False
                    parse.done = True
                    return self._complete()
                raise IncompleteBody("connection closed before the end of the body")
            if parse.parser.get_status_code():  # a status line came, the head did not end
                raise IncompleteBody("connection closed in the response head")
            raise ConnectionClosed("connection closed before the response was complete")
        try:
            first = self.received <= 0
            self.received = max(self.received, 0) + len(chunk)
            try:
                self.feed(chunk)
            except httptools.HttpParserCallbackError as exc:
                if isinstance(exc.__context__, HeadersTooLarge):
                    raise exc.__context__ from None
                if not parse.done:
                    raise
                return self._complete()  # bytes after a complete response (wire.on_message_begin)
            except httptools.HttpParserError as exc:
                # Refused framing: a Content-Length repeated with one value is read as that value
                # (RFC 9112 §6.3), when the head came in this first read.
                if "Content-Length" not in str(exc):
                    raise
                fixed = reframe(chunk) if first else None
                if fixed is None:
                    raise InvalidFraming(f"{exc} with different values") from None
                parse.renew()
                self.feed = parse.parser.feed_data
                self.feed(fixed)
            if parse.too_large:
                raise BodyTooLarge(f"response body larger than {parse.max_body} bytes")
            if parse.done:
                # _complete's test first, inlined: per response.
                return self.received <= MAX_HEADER_BYTES or self._complete()
            if not parse.headers_done and self.received > MAX_HEADER_BYTES:
                raise HeadersTooLarge(f"response head larger than {MAX_HEADER_BYTES} bytes")
            if deadline is not None:
                left = deadline - time.perf_counter()
                if left <= 0:
                    raise DeadlineExceeded(LATE)
                if timeout is None or left < timeout:
                    self.wait = left
            return False
        except BaseException:
            # The last read (up to 64 KiB) would live on in the traceback's frame.
            chunk = b""
            raise

    def _complete(self) -> bool:
        if self.received > MAX_HEADER_BYTES and _head_size(self.parse.headers) > MAX_HEADER_BYTES:
            # A complete head past the bound (one that never ends is stopped in step).
            raise HeadersTooLarge(f"response head larger than {MAX_HEADER_BYTES} bytes")
        return True

    def take(self) -> bytes:
        """The body bytes received and not taken yet."""
        body = self.parse.body
        if not body:
            return b""
        self.parse.body = []
        return body[0] if len(body) == 1 else b"".join(body)

    @property
    def reusable(self) -> bool:
        """The response ended where its framing said and the server keeps the connection."""
        parse = self.parse
        return parse.done and parse.keep_alive and not (parse.head_only and parse.size)


def _head_size(headers: list[tuple[bytes, bytes]]) -> int:
    return sum(len(k) + len(v) + 4 for k, v in headers)


def _has(headers: list[tuple[bytes, bytes]], name: bytes) -> bool:
    return any(k.lower() == name for k, _ in headers)
