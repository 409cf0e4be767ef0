"""The layers keep apart (docs/architecture.md): reports, the live views and the feed read
results and the feed's events, never the engine or the cluster code that produce them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "pytest_swarm"

# Module (or package) -> the subpackages of pytest_swarm it must never import.
RULES: dict[str, tuple[str, ...]] = {
    "report": ("engine", "cluster"),
    "web": ("engine", "cluster"),
    "feed.py": ("engine", "cluster", "report", "web"),
}


def _imports(path: Path, source: str | None = None) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in ``path`` (or in ``source`` as if it were
    there), those inside functions and ``if TYPE_CHECKING:`` blocks too (a type-only import
    is a dependency all the same)."""
    package = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]
    text = path.read_text(encoding="utf-8") if source is None else source
    found = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            found.append((node.lineno, module))
            # `from .. import engine` names the subpackage in the alias.
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def _files(target: str) -> list[Path]:
    path = PACKAGE / target
    return sorted(path.rglob("*.py")) if path.is_dir() else [path]


@pytest.mark.parametrize("target", sorted(RULES))
def test_layer_imports_nothing_it_must_not(target: str) -> None:
    banned = tuple(f"pytest_swarm.{name}" for name in RULES[target])
    offences = [
        f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}"
        for path in _files(target)
        for line, module in _imports(path)
        if any(module == b or module.startswith(b + ".") for b in banned)
    ]
    assert not offences, "\n".join(offences)


def test_the_check_sees_relative_type_only_and_late_imports() -> None:
    # report/terminal.py once imported LiveStatus from ..engine.link under TYPE_CHECKING,
    # and report code imports inside functions: both shapes must count.
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from ..engine.link import LiveStatus\n"
        "def f():\n    from .. import cluster\n    import pytest_swarm.engine.runner\n"
    )
    found = {m for _, m in _imports(PACKAGE / "report" / "terminal.py", source)}
    assert {"pytest_swarm.engine.link", "pytest_swarm.cluster", "pytest_swarm.engine.runner"} <= (
        found
    )
