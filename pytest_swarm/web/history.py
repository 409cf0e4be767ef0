"""The dashboard's bounded event history: what a reconnecting browser catches up from.

Every event the dashboard pushes gets the next integer id and is kept, already framed as
server-sent-event bytes, in a ring bounded both by count and by total size. A browser that
reconnects with ``Last-Event-ID: N`` gets the events after ``N`` when they are all still here,
else (``None``) it must start again from a full state snapshot. Nothing here is per client:
a slow client only holds a cursor (an id), so it costs no memory however far behind it is.

Example:
    >>> h = History(max_events=2, max_bytes=1 << 20)
    >>> [h.append("progress", '{"n":%d}' % i) for i in (1, 2, 3)]
    [1, 2, 3]
    >>> [frame.decode() for frame in h.after(1)]  # doctest: +NORMALIZE_WHITESPACE
    ['id: 2\\nevent: progress\\ndata: {"n":2}\\n\\n',
     'id: 3\\nevent: progress\\ndata: {"n":3}\\n\\n']
    >>> h.after(0) is None, h.after(3), h.after(99) is None   # too old, up to date, unknown
    (True, [], True)
"""

from __future__ import annotations

import itertools
from collections import deque

__all__ = ["History", "frame"]


def frame(event_id: int, name: str, data: str) -> bytes:
    """One server-sent event. ``data`` is one line of JSON (``json.dumps`` escapes newlines),
    so it fits one ``data:`` field; a stray newline would end the event, and is refused."""
    if "\n" in data or "\r" in data or "\n" in name or "\r" in name:
        raise ValueError("an event's name and data must be single lines")
    return f"id: {event_id}\nevent: {name}\ndata: {data}\n\n".encode()


class History:
    """Ring of framed events; not thread-safe (the dashboard's service lock guards it)."""

    def __init__(self, max_events: int = 1024, max_bytes: int = 16 << 20) -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._frames: deque[tuple[int, bytes]] = deque()
        self.bytes = 0
        self.last_id = 0

    def __len__(self) -> int:
        return len(self._frames)

    def append(self, name: str, data: str) -> int:
        """Frame and keep one event; the oldest ones go when a bound is passed. Returns its id."""
        self.last_id += 1
        framed = frame(self.last_id, name, data)
        self._frames.append((self.last_id, framed))
        self.bytes += len(framed)
        # Keep the newest event even when it alone passes max_bytes: a client must see it.
        while len(self._frames) > 1 and (
            len(self._frames) > self.max_events or self.bytes > self.max_bytes
        ):
            _, old = self._frames.popleft()
            self.bytes -= len(old)
        return self.last_id

    def after(self, cursor: int, max_bytes: int | None = None) -> list[bytes] | None:
        """Frames of the events after id ``cursor``, oldest first, at most ``max_bytes`` of them
        (always at least one); ``None`` when some were already dropped or ``cursor`` is not an
        id of this history (a page from an earlier session)."""
        if cursor > self.last_id or cursor < 0:
            return None
        if cursor == self.last_id:
            return []
        first = self._frames[0][0] if self._frames else self.last_id + 1
        if cursor + 1 < first:
            return None
        out: list[bytes] = []
        size = 0
        # Ids in the ring are consecutive: the first one after the cursor is at this index.
        for _, framed in itertools.islice(self._frames, cursor + 1 - first, None):
            if out and max_bytes is not None and size + len(framed) > max_bytes:
                break
            out.append(framed)
            size += len(framed)
        return out
