"""integrations: grpcio's init_gevent is called once the process is patched, when grpcio is
there, unless switched off; a missing or broken grpcio changes nothing."""

from __future__ import annotations

import sys
import types

import pytest

from pytest_swarm import integrations


@pytest.fixture
def fake_grpc(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A stand-in grpc.experimental.gevent that logs its calls (no real grpc core touched)."""
    calls: list[str] = []
    module = types.ModuleType("grpc.experimental.gevent")
    module.init_gevent = lambda: calls.append("init_gevent")  # type: ignore[attr-defined]
    for name in ("grpc", "grpc.experimental"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "grpc.experimental.gevent", module)
    monkeypatch.setattr(integrations, "find_spec", lambda name: object())
    return calls


def test_grpc_is_made_cooperative_when_installed(fake_grpc: list[str]) -> None:
    assert integrations.init_grpc_gevent(environ={}) is True
    assert fake_grpc == ["init_gevent"]
    assert integrations.after_patch() == ["grpc"]


@pytest.mark.parametrize("value", ["off", "0", "no", "FALSE", " off "])
def test_the_variable_switches_it_off(fake_grpc: list[str], value: str) -> None:
    assert integrations.init_grpc_gevent(environ={integrations.GRPC_ENV: value}) is False
    assert fake_grpc == []


def test_without_grpc_nothing_is_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(integrations, "find_spec", lambda name: None)

    def no_import(name: str) -> None:
        raise AssertionError(f"imported {name}")

    monkeypatch.setattr(integrations, "import_module", no_import)
    assert integrations.init_grpc_gevent(environ={}) is False
    assert integrations.after_patch() == []


def test_a_broken_grpc_is_left_to_the_users_own_import(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(integrations, "find_spec", lambda name: object())

    def broken(name: str) -> None:
        raise ImportError("libgrpc.so: cannot open shared object file")

    monkeypatch.setattr(integrations, "import_module", broken)
    assert integrations.init_grpc_gevent(environ={}) is False
