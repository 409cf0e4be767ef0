"""Unit tests for pytest_swarm.engine.patching: when gevent patches, and the early file scan.

The source snippets written to tmp_path are assembled from pieces (``MARK``, ``RUN``, ``FIX``)
so that this file itself does not match the scan: otherwise running the unit tests would make
the plugin gevent-patch the whole test process.
"""

from __future__ import annotations

import doctest
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import pytest_swarm.engine.cooperative as cooperative
import pytest_swarm.engine.patching as patching
from pytest_swarm.engine.patching import (
    decide,
    is_xdist_controller,
    is_xdist_worker,
    scan_for_load_tests,
)

MARK = "@pytest.mark." + "load(users=5)"
RUN = "swa" + "rm.run(duration=1)"
FIX = "swa" + "rm"
DEFAULT_PATTERNS = ["test_*.py", "*_test.py"]

# When this suite itself runs under xdist (``pytest -n 2 tests``), this very process is a
# worker: its stack holds execnet's ``__channelexec__`` frame, which is what is detected.
IN_XDIST_WORKER = pytest.mark.skipif(
    "PYTEST_XDIST_WORKER" in os.environ,
    reason="the test process is itself an xdist worker",
)


def write(root: Path, relative: str, text: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def scan(*paths: Path, patterns: list[str] | None = None) -> bool:
    return scan_for_load_tests(list(paths), patterns or DEFAULT_PATTERNS)


def test_module_doctests() -> None:
    assert doctest.testmod(patching).failed == 0


def test_this_file_does_not_trip_the_scan() -> None:
    assert not scan(Path(__file__))


# -- decide ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["auto", "on", "off"])
@pytest.mark.parametrize("has_load_tests", [True, False])
def test_a_controller_never_patches(mode: str, has_load_tests: bool) -> None:
    assert decide(mode=mode, controller=True, has_load_tests=has_load_tests) is False


@pytest.mark.parametrize(
    ("mode", "has_load_tests", "expected"),
    [
        ("on", False, True),
        ("on", True, True),
        ("off", True, False),
        ("off", False, False),
        ("auto", True, True),
        ("auto", False, False),
    ],
)
def test_decide_outside_a_controller(mode: str, has_load_tests: bool, expected: bool) -> None:
    assert decide(mode=mode, controller=False, has_load_tests=has_load_tests) is expected


# -- xdist roles ----------------------------------------------------------------------------------


def as_channelexec(func: Callable[[], bool]) -> bool:
    """Call ``func`` from code running as execnet's ``__channelexec__`` module, the way xdist's
    remote code runs pytest inside a real worker."""
    namespace: dict[str, Any] = {"__name__": "__channelexec__", "func": func}
    exec(compile("result = func()", "<channelexec>", "exec"), namespace)
    return bool(namespace["result"])


def nested_in_channelexec(func: Callable[[], bool]) -> bool:
    """As above, with more frames in between (pytest's own)."""
    return as_channelexec(lambda: (lambda: func())())


@pytest.mark.parametrize(
    ("env", "remote", "expected"),
    [
        ("gw0", as_channelexec, True),
        ("gw0", nested_in_channelexec, True),
        pytest.param(  # a pytest run started from inside a worker
            "gw3", lambda f: f(), False, marks=IN_XDIST_WORKER
        ),
        (None, as_channelexec, False),
        (None, lambda f: f(), False),
    ],
    ids=["worker", "worker-nested", "inherited-env", "no-env", "plain"],
)
def test_is_xdist_worker(
    monkeypatch: pytest.MonkeyPatch,
    env: str | None,
    remote: Callable[[Callable[[], bool]], bool],
    expected: bool,
) -> None:
    if env is None:
        monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    else:
        monkeypatch.setenv("PYTEST_XDIST_WORKER", env)
    assert remote(is_xdist_worker) is expected


@pytest.mark.parametrize(
    ("args", "numprocesses", "dist", "expected"),
    [
        ([], None, None, False),
        ([], None, "no", False),
        ([], 0, "no", False),
        ([], "0", "no", False),
        (["-n", "4"], 4, "no", True),
        (["-n", "auto"], "auto", "no", True),
        (["-n", "logical"], "logical", "load", True),
        ([], None, "loadscope", True),
        (["--tx", "popen//python=python3"], None, "no", True),
        (["--tx=2*popen"], None, "no", True),
        (["--txt", "x"], None, "no", False),
        (["tests/", "-k", "tx"], None, "no", False),
    ],
)
def test_is_xdist_controller(
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    numprocesses: object,
    dist: object,
    expected: bool,
) -> None:
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    assert is_xdist_controller(args, numprocesses, dist) is expected


@IN_XDIST_WORKER
def test_a_worker_is_never_a_controller(monkeypatch: pytest.MonkeyPatch) -> None:
    # A worker's options repeat -n and --dist: it still must patch.
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    assert as_channelexec(lambda: is_xdist_controller(["-n", "4"], 4, "load")) is False
    assert is_xdist_controller(["-n", "4"], 4, "load") is True  # not from a worker's code


# -- scan_for_load_tests --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        f"import pytest\n\n{MARK}\ndef test_browse(http):\n    http.get('/')\n",
        "import pytest\n\npytestmark = pytest.mark." + "load(users=2)\n",
        "from pytest import mark\n\n@mark." + "load\ndef test_x(http): ...\n",
        f"def test_x():\n    from pytest_swarm import api\n    api.{RUN}\n",
        f"def test_x({FIX}):\n    {RUN}\n",
        f"def test_x(http, {FIX}):\n    pass\n",
        f"def test_x({FIX}, http):\n    pass\n",
        f"def test_x(\n    {FIX},\n):\n    pass\n",
        f"def test_x({FIX}: object) -> None:\n    pass\n",
    ],
    ids=[
        "mark",
        "pytestmark",
        "bare-mark",
        "run",
        "fixture",
        "last-arg",
        "first-arg",
        "multi-line",
        "annotated",
    ],
)
def test_scan_finds_load_tests(tmp_path: Path, source: str) -> None:
    write(tmp_path, "tests/test_load.py", source)
    assert scan(tmp_path)
    assert scan(tmp_path / "tests")
    assert scan(tmp_path / "tests" / "test_load.py")


@pytest.mark.parametrize(
    "source",
    [
        "def test_plain():\n    assert 1 + 1 == 2\n",
        "import pytest\n\n@pytest.mark.slow\ndef test_x(): ...\n",
        "def test_x(swarming, my_swa" + "rm):\n    pass\n",
        "# a bee " + "swarm is not a fixture\n",
        "def test_x():\n    pytest_" + "swarm = 1\n",
        "x = mark.loader\n",
    ],
    ids=["plain", "other-mark", "other-names", "comment", "prefixed", "longer-word"],
)
def test_scan_ignores_unrelated_files(tmp_path: Path, source: str) -> None:
    write(tmp_path, "tests/test_plain.py", source)
    assert not scan(tmp_path)


def test_conftest_files_are_scanned(tmp_path: Path) -> None:
    write(tmp_path, "tests/conftest.py", f"{MARK}\n")
    assert scan(tmp_path)


def test_scan_respects_python_files(tmp_path: Path) -> None:
    write(tmp_path, "tests/helpers.py", f"{MARK}\n")  # not a test file
    write(tmp_path, "tests/check_load.py", f"{MARK}\n")
    write(tmp_path, "tests/test_plain.py", "def test_x(): pass\n")
    write(tmp_path, "tests/notes.txt", f"{MARK}\n")
    assert not scan(tmp_path)
    assert scan(tmp_path, patterns=["check_*.py"])
    assert not scan(tmp_path, patterns=["check_?.py"])
    assert scan(tmp_path, patterns=["check_????.py"])
    assert not scan(tmp_path, patterns=["test_*.py", "*_check.py"])


def test_scan_suffix_pattern(tmp_path: Path) -> None:
    write(tmp_path, "pkg/load_test.py", f"def test_x({FIX}): pass\n")
    write(tmp_path, "pkg/load_test.pyc", "")
    assert scan(tmp_path)
    assert not scan(tmp_path, patterns=["test_*.py"])


@pytest.mark.parametrize(
    "directory",
    [".venv", "venv", ".tox", ".git", "node_modules", "__pycache__", "build", ".hidden"],
)
def test_scan_skips_environment_and_tool_directories(tmp_path: Path, directory: str) -> None:
    write(tmp_path, f"{directory}/lib/site-packages/pkg/test_x.py", f"{MARK}\n")
    write(tmp_path, f"{directory}/test_y.py", f"{MARK}\n")
    write(tmp_path, "tests/test_plain.py", "def test_x(): pass\n")
    assert not scan(tmp_path)


def test_a_file_named_explicitly_is_scanned_whatever_its_name(tmp_path: Path) -> None:
    path = write(tmp_path, "scenarios/checkout.py", f"{MARK}\n")
    assert not scan(tmp_path)
    assert scan(path)


def test_scan_of_several_roots(tmp_path: Path) -> None:
    write(tmp_path, "a/test_a.py", "def test_a(): pass\n")
    write(tmp_path, "b/test_b.py", f"{MARK}\n")
    assert not scan(tmp_path / "a")
    assert scan(tmp_path / "a", tmp_path / "b")


def test_scan_of_missing_or_empty_paths(tmp_path: Path) -> None:
    assert not scan(tmp_path / "does-not-exist")
    assert not scan(tmp_path)
    assert not scan_for_load_tests([], DEFAULT_PATTERNS)


def test_unreadable_files_are_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "test_a.py", f"{MARK}\n")
    real_open = Path.open

    def failing_open(self: Path, *args: object, **kwargs: object) -> object:
        if self.name == "test_a.py":
            raise PermissionError(self)
        return real_open(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "open", failing_open)
    assert not scan(tmp_path)


def test_scan_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "test_a.py", f"{MARK}\n")
    monkeypatch.setattr(patching, "_MAX_FILES", 0)
    assert not scan(tmp_path)
    monkeypatch.setattr(patching, "_MAX_FILES", 5_000)
    monkeypatch.setattr(patching, "_MAX_BYTES", 10)
    write(tmp_path, "test_a.py", "#" * 20 + f"\n{MARK}\n")
    assert not scan(tmp_path)


@pytest.mark.parametrize(("worker", "threads"), [(False, True), (True, False)])
def test_threads_are_patched_except_in_an_xdist_worker(
    monkeypatch: pytest.MonkeyPatch, worker: bool, threads: bool
) -> None:
    # Row 35: a threading.Lock held across a request deadlocks a process whose threads are
    # not patched; only an xdist worker (execnet's IO thread) must keep real threads.
    from gevent import monkey

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(monkey, "is_module_patched", lambda name: False)
    monkeypatch.setattr(monkey, "patch_all", lambda **kwargs: calls.append(kwargs))
    monkeypatch.setattr(patching, "_numeric_hosts_skip_the_resolver", lambda: None)
    monkeypatch.setattr(patching, "is_xdist_worker", lambda: worker)
    installed: list[bool] = []
    monkeypatch.setattr(cooperative, "install", lambda: installed.append(True))
    patching.patch()
    assert len(calls) == 1
    assert calls[0]["thread"] is threads and calls[0]["queue"] is threads
    assert calls[0]["subprocess"] is False and calls[0]["os"] is False
    # Where threads stay real, the locks user code creates are made cooperative instead.
    assert installed == ([] if threads else [True])
