# The C implementation of pytest_swarm.timing's measure block (see _speedups.c).
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

class Measurement:
    name: str
    elapsed: float
    size: int
    def __init__(self, name: str) -> None: ...
    def __enter__(self) -> Measurement: ...
    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
    def success(self) -> None: ...
    def failure(self, reason: BaseException | str) -> None: ...
    def __call__(self, func: F) -> F: ...

def bind(
    timing_globals: dict[str, Any],
    settle: Callable[..., None],
    checked_name: Callable[[object], str],
    checked_size: Callable[[str, object], int],
    decorate: Callable[[str, Callable[..., Any]], Callable[..., Any]],
    max_size: int,
    /,
) -> None: ...

class ResponseParse:
    headers: list[tuple[bytes, bytes]]
    body: list[bytes]
    reason: str
    coding: bytes
    parser: Any
    size: int
    max_body: int
    status: int
    done: bool
    complete: bool
    headers_done: bool
    too_large: bool
    keep_alive: bool
    chunked: bool
    close_after: bool
    cookies: bool
    head_only: bool
    def reset(self) -> None: ...
    def renew(self) -> None: ...
    def drop_body(self) -> None: ...
    def on_message_begin(self) -> None: ...
    def on_status(self, status: bytes, /) -> None: ...
    def on_header(self, name: bytes, value: bytes, /) -> None: ...
    def on_headers_complete(self) -> None: ...
    def on_body(self, body: bytes, /) -> None: ...
    def on_message_complete(self) -> None: ...

def bind_wire(
    new_parser: Callable[[Any], Any],
    trailing_bytes: type[BaseException],
    headers_too_large: type[BaseException],
    max_headers: int,
    /,
) -> None: ...
def readable(fd: int, /) -> bool: ...
def recv_stamped(sock: Any, size: int, /) -> tuple[bytes, float]: ...

SO_TIMESTAMPNS: int
