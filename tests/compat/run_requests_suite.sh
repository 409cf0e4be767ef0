#!/usr/bin/env bash
# requests' own test suite as a conformance check of the http client's transport.
#
#   bash tests/compat/run_requests_suite.sh            # both runs, then the comparison
#
# CI runs it through tests/compat/test_requests_suite.py (a few minutes, PyPI needed). It needs
# packages outside the project's extras (pytest-httpbin, httpbin, flask, pytest-mock, trustme,
# PySocks, brotlicffi): it builds them into its own virtualenv under $COMPAT_DIR (default
# ~/.cache/pytest-swarm-compat), fetches the sdist of the requests version installed beside
# this checkout ($SWARM_PYTHON, default .venv/bin/python; its tests/ are not in the wheel), and
# runs the suite twice: with plain urllib3, and with FastTransportAdapter mounted on every
# Session (tests/compat/swarm_mount.py). The 4 tests that connect to 10.255.255.1 (a tarpit
# outside this machine) are deselected: traffic stays on loopback. compare.py prints the tests
# whose outcome differs, each listed in expected_differences.txt with its reason or reported as
# new, and exits 1 on a new difference or on a listed one that no longer differs.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
DIR=${COMPAT_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/pytest-swarm-compat}
mkdir -p "$DIR"
PY=${SWARM_PYTHON:-$REPO/.venv/bin/python}
REQ=$("$PY" -c "import requests; print(requests.__version__)")
U3=$("$PY" -c "import urllib3; print(urllib3.__version__)")
if [ ! -d "$DIR/requests-$REQ" ]; then
  "$PY" -m pip download -q --no-deps --no-binary :all: "requests==$REQ" -d "$DIR"
  tar xzf "$DIR/requests-$REQ.tar.gz" -C "$DIR"
fi
if [ ! -x "$DIR/venv/bin/pytest" ]; then
  python3 -m venv "$DIR/venv"
  "$DIR/venv/bin/pip" install -q -U pip
  # httpbin pins greenlet<3 (gevent needs >= 3), and 0.10.0 does not import with Werkzeug 3.
  "$DIR/venv/bin/pip" install -q -e "$REPO" "requests==$REQ" "urllib3==$U3" pytest pytest-mock \
    trustme PySocks "pytest-httpbin==2.1.0" flask "greenlet>=3" brotlicffi decorator six
  "$DIR/venv/bin/pip" install -q --no-deps "httpbin>=0.10.4"
else
  "$DIR/venv/bin/pip" install -q --no-deps -e "$REPO"  # this checkout, wherever it is
fi
cd "$DIR/requests-$REQ"
deselect=(
  --deselect "tests/test_requests.py::TestTimeout::test_connect_timeout"
  --deselect "tests/test_requests.py::TestTimeout::test_total_timeout_connect"
)
run() {  # $1: name; the rest: extra pytest arguments
  local name=$1
  shift
  PYTHONPATH="$REPO/tests/compat" "$DIR/venv/bin/pytest" tests -q -p no:cacheprovider \
    -p no:swarm -o addopts="" "${deselect[@]}" --junitxml="$DIR/$name.xml" "$@" \
    >"$DIR/$name.log" 2>&1 || true
  tail -n 1 "$DIR/$name.log"
}
echo "urllib3:               $(run urllib3)"
echo "FastTransportAdapter:  $(run fast -p swarm_mount)"
"$DIR/venv/bin/python" "$REPO/tests/compat/compare.py" "$DIR/urllib3.xml" "$DIR/fast.xml" \
  "$REPO/tests/compat/expected_differences.txt"
