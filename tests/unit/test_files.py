"""Unit tests for pytest_swarm.report.files: report files are written atomically (row 31).

Disk full while writing ``--swarm-json`` gave an uncaught OSError traceback and a stray
``.tmp`` file. Now: a one-line :class:`ReportFileError`, no debris, an earlier file intact.
"""

from __future__ import annotations

import doctest
import errno
import json
import os
from pathlib import Path

import pytest

import pytest_swarm.report.files as files
from pytest_swarm.report.files import ReportFileError, write_json, write_report_file
from pytest_swarm.report.html import write_html

DOCS = [{"test": "t.py::test_x", "requests": {"GET /": {"count": 1}}}]


def test_module_doctests() -> None:
    assert doctest.testmod(files).failed == 0


def disk_full_after(monkeypatch: pytest.MonkeyPatch, limit: int) -> list[int]:
    """Make the report's writes fail with ENOSPC once ``limit`` bytes are written (a part of
    the file really is on disk, as on a full device)."""
    written = [0]

    def write(fd: int, data: bytes) -> None:
        room = limit - written[0]
        if len(data) > room:
            os.write(fd, data[: max(room, 0)])
            written[0] = limit
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        os.write(fd, data)
        written[0] += len(data)

    monkeypatch.setattr(files, "_write_fd", write)
    return written


def test_a_report_is_written_whole_with_no_debris(tmp_path: Path) -> None:
    target = write_json(tmp_path / "sub" / "swarm.json", DOCS)
    assert json.loads(target.read_text())["load_tests"] == DOCS
    assert [p.name for p in target.parent.iterdir()] == ["swarm.json"]


def test_disk_full_keeps_the_earlier_file_and_leaves_no_tmp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "swarm.json"
    write_json(target, DOCS)
    earlier = target.read_bytes()
    disk_full_after(monkeypatch, limit=10)
    with pytest.raises(ReportFileError) as caught:
        write_json(target, DOCS * 100)
    message = str(caught.value)
    assert message == (
        f"--swarm-json: could not write {target}: no space left on the device "
        "(the earlier file is unchanged)"
    )
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert target.read_bytes() == earlier
    assert sorted(p.name for p in tmp_path.iterdir()) == ["swarm.json"]


def test_disk_full_with_no_earlier_file_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk_full_after(monkeypatch, limit=0)
    with pytest.raises(ReportFileError, match=r"no space left on the device$"):
        write_json(tmp_path / "swarm.json", DOCS)
    assert list(tmp_path.iterdir()) == []


def test_a_failing_fsync_leaves_no_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fsync(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(files.os, "fsync", fsync)
    with pytest.raises(ReportFileError, match="Input/output error"):
        write_report_file(tmp_path / "r.html", "<html>")
    assert list(tmp_path.iterdir()) == []


def test_a_path_through_a_file_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    with pytest.raises(ReportFileError, match=r"^--swarm-json: could not write .*not-a-dir"):
        write_json(blocker / "swarm.json", DOCS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-a-dir"]


def test_the_html_report_is_written_the_same_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "report.html"
    target.write_text("earlier")
    disk_full_after(monkeypatch, limit=100)
    with pytest.raises(ReportFileError, match=r"^--swarm-html: .*no space left.*unchanged"):
        write_html(target, [], {"started": "now"})
    assert target.read_text() == "earlier"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]
