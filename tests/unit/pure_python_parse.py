"""The fast client on the pure-Python parser callbacks (``wire.PyResponseParse``), for a
process where the C ones are built: the ``*_pure_python`` modules run whole client test modules
again on this path, so the fallback is tested wherever the extension is."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pytest_swarm.clients import fast, wire


@pytest.fixture(autouse=True)
def _pure_python_parse(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(wire, "ResponseParse", wire.PyResponseParse)
    monkeypatch.setattr(fast.PARSERS, "free", [])  # no C parser lent from the pool
    yield
    # What the test's requests gave back to the pool: the Python ones, as the test meant.
    assert all(type(p) is wire.PyResponseParse for p in fast.PARSERS.free)
