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
