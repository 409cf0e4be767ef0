"""Row 31: the disk fills up while pytest-swarm writes ``--swarm-json``.

A real full device: a 64 KiB tmpfs mounted for the test (root only; skipped elsewhere, where
tests/unit/test_files.py injects ENOSPC at the write instead). Before: an uncaught OSError
traceback and a stray ``.tmp`` file. Now: one clear line, exit code 1, the earlier file intact,
no debris.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_swarm.demo.server import DemoServer

from .harness import RunSwarm


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A tiny tmpfs holding an earlier report, then filled to the last byte."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
        capture_output=True,
        timeout=30,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    try:
        (mount / "swarm.json").write_text('{"earlier": true}')
        with (mount / "filler").open("wb", buffering=0) as filler:
            for _ in range(64):  # bounded: 64 KiB at most
                try:
                    filler.write(b"x" * 1024)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
                    break
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], timeout=30, check=False)


def test_disk_full_while_writing_the_json_report(
    pytester: pytest.Pytester, served: DemoServer, swarm_pytest: RunSwarm, full_disk: Path
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.load(users=2, rate=100, duration="30s", iterations=3)
        def test_home(http):
            http.get("/")
        """
    )
    target = full_disk / "swarm.json"
    run = swarm_pytest(f"--swarm-json={target}")
    run.result.assert_outcomes(passed=1)
    assert run.result.ret == pytest.ExitCode.TESTS_FAILED  # the results did not reach the file
    run.result.stdout.fnmatch_lines(
        [
            f"swarm: ERROR: --swarm-json: could not write {target}: no space left on the device "
            "(the earlier file is unchanged)"
        ]
    )
    assert "Traceback" not in run.output and "INTERNALERROR" not in run.output
    assert target.read_text() == '{"earlier": true}'
    assert sorted(os.listdir(full_disk)) == ["filler", "swarm.json"]
