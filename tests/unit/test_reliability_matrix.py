"""docs/reliability.md names, for every row of the reliability matrix, the tests that prove it.
This keeps that table true: every row has at least one test, and every test it names exists
(the file, the class and the function), so a renamed or deleted test fails the suite instead
of leaving the table pointing at nothing."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MATRIX = ROOT / "docs" / "reliability.md"
ROWS = 35
NODE_ID = re.compile(r"`(tests/[\w/]+\.py::[\w:\[\]-]+)`")


def matrix_rows() -> dict[int, list[str]]:
    """Row number -> the test node ids named in that row of the table."""
    rows: dict[int, list[str]] = {}
    for line in MATRIX.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and cells[0].isdigit():
            rows[int(cells[0])] = NODE_ID.findall(cells[-1])
    return rows


@cache
def defined_names(path: Path) -> frozenset[str]:
    """'func' and 'Class::method' names a test file defines."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            for member in node.body:
                if isinstance(member, ast.FunctionDef | ast.AsyncFunctionDef):
                    names.add(f"{node.name}::{member.name}")
    return frozenset(names)


def test_every_row_has_a_test() -> None:
    rows = matrix_rows()
    assert sorted(rows) == list(range(1, ROWS + 1))
    assert [n for n, tests in rows.items() if not tests] == []


@pytest.mark.parametrize("row", range(1, ROWS + 1))
def test_named_tests_exist(row: int) -> None:
    for node_id in matrix_rows()[row]:
        file, _, name = node_id.partition("::")
        name = name.split("[")[0]  # a parametrized id names its function
        path = ROOT / file
        assert path.is_file(), f"row {row}: {file} does not exist"
        assert name in defined_names(path), f"row {row}: {node_id} is not defined"


def test_the_parser_sees_a_missing_test(tmp_path: Path) -> None:
    # The check itself must be able to fail: a name that no file defines is caught.
    assert "test_named_tests_exist" in defined_names(Path(__file__))
    assert "no_such_test" not in defined_names(Path(__file__))
