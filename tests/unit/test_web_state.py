"""Unit tests of what the dashboard shows: the same figures as the report's document, the
objectives judged so far, a slow pump that never makes the feed wait, addresses."""

from __future__ import annotations

import doctest
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from web_session import TEST, finished, progress, result_at, started

import pytest_swarm.web.address as address_module
import pytest_swarm.web.page as page_module
import pytest_swarm.web.state as state_module
from pytest_swarm.feed import Feed, Progress, SessionFinished
from pytest_swarm.report.files import result_document
from pytest_swarm.web.address import AddressError, parse_address
from pytest_swarm.web.service import MAX_INBOX, Dashboard
from pytest_swarm.web.state import DashboardState, json_safe


def test_module_doctests() -> None:
    for module in (address_module, page_module, state_module):
        assert doctest.testmod(module).failed == 0, module.__name__


def test_progress_figures_are_the_reports_document() -> None:
    state = DashboardState()
    state.apply(started())
    _, message = state.apply(progress(5))[0]
    doc = result_document(TEST, result_at(5), None)
    assert message["total"] == {k: v for k, v in doc["total"].items() if k != "hdr_histogram_us"}
    assert message["requests"]["GET /cart"]["p95_ms"] == doc["requests"]["GET /cart"]["p95_ms"]
    assert "hdr_histogram_us" not in json.dumps(message)  # histograms stay out of the stream
    shown = {o["objective"]: (o["met"], o["measured"]) for o in message["objectives"]}
    assert set(shown) == {"p95 < 250ms", "[POST /checkout] p99 < 400ms", "error_rate < 1%"}
    assert shown["error_rate < 1%"][1].endswith("%")


def test_objectives_missed_so_far_are_shown_missed() -> None:
    state = DashboardState()
    event = started()
    event.settings["objectives"] = ["p95 < 1ms"]
    state.apply(event)
    _, message = state.apply(progress(3))[0]
    assert message["objectives"][0]["met"] is False
    assert message["objectives"][0]["measured"].endswith("ms")


def test_swarm_run_without_objectives_shows_none() -> None:
    state = DashboardState()
    event = started()
    del event.settings["objectives"]
    state.apply(event)
    assert state.apply(progress(1))[0][1]["objectives"] == []


def test_finished_tests_are_listed_with_their_verdict_and_leave_the_running_set() -> None:
    state = DashboardState()
    state.apply(started())
    state.apply(progress(2))
    name, message = state.apply(finished(outcome="aborted"))[0]
    assert name == "finished" and message["outcome"] == "aborted"
    assert message["total"]["count"] == result_at(30).total.count
    snapshot = state.snapshot()
    assert snapshot["running"] == [] and [f["test"] for f in snapshot["finished"]] == [TEST]
    state.apply(SessionFinished())
    assert state.snapshot()["session_finished"] is True


def test_the_feed_never_waits_for_the_pump() -> None:
    """A pump that is stuck (here: never started) must not block nor grow the inbox."""
    feed = Feed()
    dashboard = Dashboard(feed)
    feed.subscribe(dashboard.on_event)
    feed.publish(started())
    for _ in range(1, MAX_INBOX * 3):
        feed.publish(progress(1))  # one test: coalesced into one
    assert len(dashboard._inbox) == 2
    for i in range(MAX_INBOX * 2):  # many tests' progress at once: bounded, counted
        feed.publish(Progress(f"t::{i}", "x", 1.0, 1.0, result_at(1)))
    assert len(dashboard._inbox) == MAX_INBOX and dashboard.dropped > 0
    assert feed.errors == []


def test_a_broken_event_is_kept_as_an_error_and_the_pump_goes_on() -> None:
    feed = Feed()
    dashboard = Dashboard(feed)
    dashboard.start()
    bad = Progress(TEST, "x", 1.0, 1.0, None)  # type: ignore[arg-type]
    feed.publish(bad)
    feed.publish(started())
    assert dashboard.drain(30)
    assert dashboard.errors and dashboard.history.last_id == 1
    dashboard.close()


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda c: st.lists(c) | st.dictionaries(st.text(), c),
    max_leaves=30,
)


@given(JSONISH)
def test_json_safe_always_gives_strict_json(value: object) -> None:
    json.dumps(json_safe(value), allow_nan=False)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("8089", ("127.0.0.1", 8089)), ("", ("127.0.0.1", 0)), ("0.0.0.0:", ("0.0.0.0", 0)),
     ("[::]:8089", ("::", 8089)), ("myhost:1", ("myhost", 1))],
)  # fmt: skip
def test_addresses(value: str, expected: tuple[str, int]) -> None:
    assert parse_address(value) == expected


@pytest.mark.parametrize(
    "value", ["99999", "host:abc", "::1:80", "[::1", "a b:80", "host:0x10", "h/x:1", "x" * 400]
)
def test_bad_addresses_say_what_is_wrong(value: str) -> None:
    with pytest.raises(AddressError, match="--swarm-web"):
        parse_address(value)
