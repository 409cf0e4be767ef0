"""What both HTTP clients share: request naming, URL joining, error grouping, and the
``catch_response`` context manager's verdict logic (Locust's semantics)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from ..stats.recorder import Recorder

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def error_message(exc: BaseException) -> str:
    """A stable message for grouping: object addresses vary from one failure to the next."""
    text = _ADDRESS.sub("", str(exc))
    return text.splitlines()[0][:200] if text else type(exc).__name__


def request_name(method: str, url: str) -> str:
    """Default name of a request: ``"GET /path"`` without query string or host.

    Example:
        >>> request_name("get", "http://example.test/items?page=2")
        'GET /items'
    """
    return f"{method.upper()} {urlsplit(url).path or '/'}"


def join_url(base: str | None, url: str) -> str:
    """Resolve ``url`` against ``base`` unless it is absolute.

    Example:
        >>> join_url("http://127.0.0.1:8089/api/", "/items")
        'http://127.0.0.1:8089/api/items'
    """
    if not base or urlsplit(url).scheme:
        return url
    return base.rstrip("/") + "/" + url.lstrip("/")


def status_message(status_code: int, reason: str | None) -> str:
    return f"{status_code} {reason or ''}".strip()


class CatchMixin:
    """``with client.get(..., catch_response=True) as r:`` — the block decides.

    The class using it sets ``_swarm = (recorder, name, elapsed, size)`` (size: content bytes
    received), ``_error`` (a connection
    error or None) and ``_verdict = None``, and has ``status_code`` and ``reason``.
    """

    _swarm: tuple[Recorder, str, float, int]
    _error: BaseException | None
    _verdict: BaseException | str | bool | None
    status_code: int
    reason: Any

    def success(self) -> None:
        """Count this request as a success, whatever its status."""
        self._verdict = True

    def failure(self, reason: BaseException | str) -> None:
        """Count this request as a failure with ``reason``."""
        self._verdict = reason

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        # (type, value, traceback), typed loosely to match requests.Response.__exit__.
        exc: BaseException | None = exc_info[1] if len(exc_info) > 1 else None
        recorder, name, elapsed, size = self._swarm
        if exc is not None and self._verdict is None:
            # The block raised: the request fails with that error, and the iteration fails too
            # but is not counted a second time.
            recorder.record_failure(
                name, elapsed, type(exc).__name__, error_message(exc), exc, size=size
            )
            exc._swarm_recorded = True  # type: ignore[attr-defined]
            return
        verdict = self._verdict
        if verdict is True:
            recorder.record(name, elapsed, size)
        elif isinstance(verdict, BaseException):
            recorder.record_failure(
                name, elapsed, type(verdict).__name__, error_message(verdict), size=size
            )
        elif isinstance(verdict, str):
            recorder.record_failure(name, elapsed, "Failure", verdict[:200], size=size)
        elif self._error is not None:
            err = self._error
            recorder.record_failure(name, elapsed, type(err).__name__, error_message(err))
        elif self.status_code >= 400:
            recorder.record_failure(
                name,
                elapsed,
                "HTTPError",
                status_message(self.status_code, self.reason),
                size=size,
            )
        else:
            recorder.record(name, elapsed, size)
