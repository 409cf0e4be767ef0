# The C implementation of pytest_swarm.stats.histogram's merge loop (see _merge.c).
from collections.abc import Iterable
from typing import Any

def configure(
    top_index: int,
    half_magnitude: int,
    coarse_bits: int,
    highest_us: int,
    max_value_us: int,
    max_sum_us: int,
    max_packed_bytes: int,
    /,
) -> None: ...
def unpack(data: Any, n: int, /) -> list[tuple[list[int], list[int], int, int, int, int, int]]: ...
def accumulate(
    into: dict[int, int] | list[int],
    pooled: dict[int, int] | None,
    indices: Iterable[int],
    numbers: Iterable[int],
    /,
) -> None: ...
def add_pooled(
    counts: dict[int, int], indices: Iterable[int], numbers: Iterable[int], /
) -> None: ...
