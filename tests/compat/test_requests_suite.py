"""requests' own test suite, run against the ``http`` client's transport, as one test.

``run_requests_suite.sh`` fetches the sdist of the installed requests (its tests are not in the
wheel), builds the suite's own virtualenv (pytest-httpbin, flask, trustme, ...: not project
dependencies), runs the suite with urllib3 and with ``FastTransportAdapter`` mounted on every
``Session``, and compares the two against ``expected_differences.txt``. This test fails on any
new difference and on any listed difference that is gone (the list stays true).

It needs the package index (PyPI) the first time; without it the test is skipped, unless
``SWARM_REQUIRE_COMPAT=1`` (CI sets it in ``.ci/run``), which makes it fail instead: CI can never
pass by skipping it. The virtualenv is kept in ``$COMPAT_DIR`` (default
``~/.cache/pytest-swarm-compat``): later runs take the two suite runs only, about 3 minutes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("run_requests_suite.sh")


@pytest.mark.slow
def test_requests_suite_on_the_transport_has_only_the_expected_differences() -> None:
    env = dict(os.environ, SWARM_PYTHON=sys.executable)
    env.pop("PYTHONPATH", None)
    result = subprocess.run(
        ["bash", str(SCRIPT)],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    output = result.stdout + result.stderr
    if "urllib3:" not in result.stdout:  # the set-up (download, virtualenv) did not get through
        message = f"requests' suite could not be set up:\n{output[-3000:]}"
        if os.environ.get("SWARM_REQUIRE_COMPAT") == "1":
            pytest.fail(message)
        pytest.skip(message.splitlines()[0] + " (no package index?)")
    assert "passed" in result.stdout.split("urllib3:")[1].splitlines()[0], output[-3000:]
    assert result.returncode == 0, result.stdout[-6000:]
