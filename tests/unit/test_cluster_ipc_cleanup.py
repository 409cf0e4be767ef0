"""The private ipc directory of a killed controller is removed by the next run (issue 8,
section 1): only directories with our prefix, owned by this user, whose owner PID is gone."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from pytest_swarm.cluster import endpoint
from pytest_swarm.cluster.endpoint import PREFIX, private_ipc, remove_stale


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid  # reaped: no process has it (until the kernel reuses it)


def test_only_stale_directories_of_ours_are_removed(tmp_path: Path) -> None:
    stale = tmp_path / f"{PREFIX}{dead_pid()}-abc"
    alive = tmp_path / f"{PREFIX}{os.getpid()}-def"
    legacy = tmp_path / f"{PREFIX}xyz"  # no pid in the name: not judged
    other = tmp_path / "someone-else-123-abc"
    a_file = tmp_path / f"{PREFIX}{dead_pid()}-file"
    for d in (stale, alive, legacy, other):
        d.mkdir()
    (stale / "aggregator.sock").write_text("")
    a_file.write_text("")
    assert remove_stale(str(tmp_path)) == [str(stale)]
    assert not stale.exists()
    assert alive.exists() and legacy.exists() and other.exists() and a_file.exists()


def test_a_new_private_directory_names_its_owner_and_cleans_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    stale = tmp_path / f"{PREFIX}{dead_pid()}-left-by-kill-9"
    stale.mkdir()
    directory, address = private_ipc()
    assert not stale.exists()
    assert Path(directory).name.startswith(f"{PREFIX}{os.getpid()}-")
    assert address == f"ipc://{directory}/aggregator.sock"
    assert Path(directory).stat().st_mode & 0o777 == 0o700
    os.rmdir(directory)
    assert endpoint.remove_stale(str(tmp_path)) == []
