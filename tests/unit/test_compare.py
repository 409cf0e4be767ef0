"""Unit tests for report/compare.py: rules, direction, noise, validity, hostile stored files."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from pytest_swarm.report.compare import (
    CompareError,
    compare,
    find,
    load,
    parse_rule,
    save,
    valid_name,
    worse,
)
from pytest_swarm.report.files import result_document
from pytest_swarm.stats.result import RunResult
from pytest_swarm.stats.snapshot import Snapshot


def doc(
    values_us: list[int], users: int = 10, duration: float = 10.0, failures: int = 0
) -> dict[str, Any]:
    snap = Snapshot()
    snap.entry("GET /").hist.record_values(values_us)
    snap.entry("GET /").failures = failures
    return result_document("t.py::test_x", RunResult(snap, duration=duration, users=users), None)


def sample(n: int, median_us: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    return [max(1, int(rng.lognormvariate(0, 0.3) * median_us)) for _ in range(n)]


@pytest.mark.parametrize(
    ("text", "metric", "limit"),
    [("p95:10%", "p95", 0.1), ("p99.9:5%", "p99.9", 0.05), ("mean : 2.5 %", "mean", 0.025),
     ("rps:5%", "rps", 0.05), ("error_rate:50%", "error_rate", 0.5)],
)  # fmt: skip
def test_rules_parse(text: str, metric: str, limit: float) -> None:
    rule = parse_rule(text)
    assert (rule.metric, rule.limit) == (metric, limit)


@pytest.mark.parametrize("text", ["p95", "p95:10", "p0:1%", "p101:1%", "median:1%", "p95:-1%"])
def test_bad_rules_say_what_is_expected(text: str) -> None:
    with pytest.raises(CompareError, match=r"METRIC:LIMIT%|percentile must be"):
        parse_rule(text)


def test_worse_knows_which_way_is_bad() -> None:
    assert worse("p95", 0.1, 0.12) == pytest.approx(0.2)  # slower: worse
    assert worse("rps", 100, 120) == pytest.approx(-0.2)  # more throughput: better
    assert worse("error_rate", 0.0, 0.01) == float("inf")
    assert worse("mean", 0.0, 0.0) == 0.0


def test_a_slower_run_fails_the_rule_beyond_noise() -> None:
    old = doc(sample(5000, 10_000, 1))
    new = doc(sample(5000, 13_000, 2))  # 30 % slower
    result = compare(old, new, (parse_rule("p95:10%"),))
    assert result["valid"]
    assert len(result["exceeded"]) == 1 and "p95" in result["exceeded"][0]
    p95 = next(c for c in result["changes"] if c["name"] == "Total" and c["metric"] == "p95")
    assert p95["beyond_noise"] and p95["worse_ratio"] == pytest.approx(0.3, abs=0.08)


def test_two_samples_of_one_distribution_are_within_noise() -> None:
    old, new = doc(sample(2000, 10_000, 3)), doc(sample(2000, 10_000, 4))
    result = compare(old, new, (parse_rule("p95:50%"),))
    assert result["exceeded"] == []
    assert not any(c["beyond_noise"] for c in result["changes"] if c["metric"] != "rps")


def test_a_tiny_run_is_within_noise_even_when_it_looks_slower() -> None:
    # 20 samples: a 10 % higher p95 is what chance gives.
    old, new = doc(sample(20, 10_000, 5)), doc([int(v * 1.1) for v in sample(20, 10_000, 5)])
    p95 = next(c for c in compare(old, new)["changes"] if c["metric"] == "p95")
    assert p95["worse_ratio"] > 0 and not p95["beyond_noise"]


@pytest.mark.parametrize(
    ("changed", "why"),
    [({"users": 20}, "users 10 vs 20"), ({"duration": 20.0}, "duration 10.0s vs 20.0s")],
)
def test_a_different_load_makes_the_comparison_invalid(changed: dict[str, Any], why: str) -> None:
    old = doc(sample(1000, 10_000, 6))
    new = doc(sample(1000, 20_000, 7), **changed)
    result = compare(old, new, (parse_rule("p95:1%"),))
    assert not result["valid"] and why in result["invalid_because"]
    assert result["exceeded"] == []  # an invalid comparison never fails a test


def test_save_find_and_load_round_trip(tmp_path: Path) -> None:
    documents = [doc(sample(100, 10_000, 8))]
    first = save(tmp_path, "", documents)
    second = save(tmp_path, "main", documents)
    assert first.name.startswith("0001_") and second.name.startswith("0002_main_")
    assert find(tmp_path, "latest") == second
    assert find(tmp_path, "main") == second and find(tmp_path, "1") == first
    assert load(second)["t.py::test_x"]["total"]["count"] == 100
    with pytest.raises(CompareError, match="no baseline 'nope'"):
        find(tmp_path, "nope")


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b'{"format": 99}', b'{"format": 1, "load_tests": {}}',
     b'{"format": 1, "load_tests": [{"test": 1}]}',
     b'{"format": 1, "load_tests": [{"test": "x", "total": {"count": "many"}}]}',
     b"\xff\xfe"],
)  # fmt: skip
def test_hostile_stored_files_are_refused_with_their_name(tmp_path: Path, body: bytes) -> None:
    path = tmp_path / "0001_x_20260101T000000Z.json"
    path.write_bytes(body)
    with pytest.raises(CompareError, match="0001_x"):
        load(path)


def test_an_oversized_stored_file_is_not_parsed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pytest_swarm.report.compare as module

    path = tmp_path / "0001_x_20260101T000000Z.json"
    path.write_text(json.dumps({"format": 1, "load_tests": []}) + " " * 2000)
    monkeypatch.setattr(module, "MAX_FILE_BYTES", 1000)
    with pytest.raises(CompareError, match="over the 1,000 bound"):
        load(path)


def test_names_cannot_leave_the_storage() -> None:
    assert not valid_name("../x") and not valid_name("a/b") and not valid_name("x" * 65)
