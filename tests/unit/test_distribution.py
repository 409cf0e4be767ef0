"""The latency distribution curve: the dashboard (running histograms) and the HTML report
(the JSON document's HDR histograms) draw the same points for the same run."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_swarm.report.distribution import LEVELS, MAX_SERIES, busiest, result_curves
from pytest_swarm.report.files import result_document
from pytest_swarm.report.html import distribution
from pytest_swarm.stats.result import RunResult
from pytest_swarm.stats.snapshot import Snapshot

latencies = st.lists(st.integers(min_value=1, max_value=3_600_000_000), min_size=1, max_size=60)


@settings(max_examples=30, deadline=None)
@given(
    st.dictionaries(st.text("abcdef", min_size=1, max_size=4), latencies, min_size=1, max_size=14)
)
def test_the_dashboard_and_the_report_draw_the_same_curve(names: dict[str, list[int]]) -> None:
    snap = Snapshot()
    for name, values in names.items():
        snap.entry(name).hist.record_values(values)
    result = RunResult(snap, duration=10.0)
    live = result_curves(result)
    report = distribution(result_document("t.py::test_x", result, None))
    assert list(live) == list(report)
    assert len(live) == min(len(names), MAX_SERIES - 1) + 1
    for name, points in live.items():
        assert [q for q, _ in points] == list(LEVELS)
        assert points == report[name], name


def test_the_busiest_names_are_drawn_ties_by_name() -> None:
    counts = {f"n{i:02}": i // 2 for i in range(20)}
    drawn = busiest(counts)
    assert len(drawn) == MAX_SERIES - 1
    assert drawn[:3] == ["n18", "n19", "n16"]


def test_an_empty_run_draws_nothing() -> None:
    assert result_curves(RunResult(Snapshot(), duration=1.0)) == {}
