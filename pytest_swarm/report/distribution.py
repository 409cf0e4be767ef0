"""The latency distribution as a percentile curve, as HdrHistogram's plotter draws it.

One definition for every view that draws it: the HTML report reads the HDR histograms of the
JSON documents, the live dashboard the running aggregate's histograms; both pick the same
levels and the same series (the total and the busiest request names).

Example:
    >>> from pytest_swarm.stats.histogram import Histogram
    >>> h = Histogram(); h.record_values([1_000] * 99 + [100_000])
    >>> dict(curve(h.percentiles))[99.0], dict(curve(h.percentiles))[100.0]
    (1.0, 100.0)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from hdrh.histogram import HdrHistogram

from ..stats.histogram import Histogram, bucket_index
from ..stats.result import RunResult

__all__ = ["LEVELS", "MAX_SERIES", "busiest", "curve", "document_curve", "result_curves"]

# HdrHistogram's plotter steps: each halves the remaining tail, with the usual "nines" added.
LEVELS = (
    0.0, 25.0, 50.0, 75.0, 87.5, 90.0, 93.75, 95.0, 96.875, 98.4375, 99.0, 99.21875,
    99.609375, 99.8046875, 99.9, 99.90234375, 99.951171875, 99.99, 99.999, 100.0,
)  # fmt: skip
MAX_SERIES = 12  # the total and the busiest names: a chart with more lines is unreadable

Curve = list[tuple[float, float]]


def busiest(counts: Mapping[str, int]) -> list[str]:
    """The request names drawn beside the total: the busiest first, ties by name."""
    return sorted(counts, key=lambda n: (-counts[n], n))[: MAX_SERIES - 1]


def curve(percentiles_us: Callable[[Iterable[float]], Mapping[float, int]]) -> Curve:
    """(percentile, milliseconds) at every level, from a function that gives microseconds
    at several percentiles in one walk (:meth:`Histogram.percentiles`)."""
    at = percentiles_us(LEVELS)
    return [(q, at[q] / 1000) for q in LEVELS]


def result_curves(result: RunResult) -> dict[str, Curve]:
    """The curves of a running or finished result: ``Total`` first, then the busiest names."""
    out: dict[str, Curve] = {}
    if result.total.count:
        out["Total"] = curve(result.total.hist.percentiles)
    entries = result.snapshot.entries
    for name in busiest({n: e.hist.total for n, e in entries.items() if e.hist.total}):
        out[name] = curve(entries[name].hist.percentiles)
    return out


def document_curve(blob: str, min_us: int, max_us: int) -> Curve:
    """The curve of a JSON document's HDR histogram (``hdr_histogram_us``), computed by the
    statistics' own percentile rule (the live dashboard's), not hdrh's: hdrh reports a
    bucket's highest equivalent value where the run's exact minimum and maximum are known."""
    hdr = HdrHistogram.decode(blob)
    hist = Histogram()
    for step in hdr.get_recorded_iterator():
        index = bucket_index(step.value_iterated_to)
        hist.counts[index] = hist.counts.get(index, 0) + step.count_added_in_this_iter_step
        hist.total += step.count_added_in_this_iter_step
    hist.min_us, hist.max_us = min_us, max_us
    return curve(hist.percentiles)
