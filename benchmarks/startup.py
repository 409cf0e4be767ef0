"""Start-up cost: the wall time of a whole ``pytest`` run holding one 1-second load test,
above its duration, solo and with ``-n 2``; beside it, a run of one trivial test (what pytest
and xdist cost by themselves on this machine). Medians over ``--runs`` runs, interleaved.

Run:  python benchmarks/startup.py --host http://127.0.0.1:8089 [--runs 5]
      [--python .venv/bin/python]
(the target must be up; the demo target is ``python -m pytest_swarm.demo``).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LOAD_TEST = """
import pytest

@pytest.mark.load(users=5, duration="1s")
def test_one_second(http):
    http.get("/")
"""

TRIVIAL_TEST = """
def test_nothing():
    pass
"""


def timed(cmd: list[str], cwd: Path) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", required=True)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--python", default=sys.executable)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="swarm-startup-"))
    (work / "load").mkdir()
    (work / "trivial").mkdir()
    (work / "load" / "test_load.py").write_text(LOAD_TEST)
    (work / "trivial" / "test_trivial.py").write_text(TRIVIAL_TEST)
    base = [args.python, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    cases = {
        "1 s load test, solo": ([*base, "load", f"--swarm-host={args.host}"], 1.0),
        "1 s load test, -n 2": ([*base, "load", "-n", "2", f"--swarm-host={args.host}"], 1.0),
        "trivial test, solo (floor)": ([*base, "trivial"], 0.0),
        "trivial test, -n 2 (floor)": ([*base, "trivial", "-n", "2"], 0.0),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.runs):
        for name, (cmd, _) in cases.items():
            times[name].append(timed(cmd, work))
    print(f"{'run':<30} {'median wall s':>14} {'above duration s':>18}")
    for name, (_, duration) in cases.items():
        med = statistics.median(times[name])
        print(f"{name:<30} {med:>14.2f} {med - duration:>18.2f}")
    solo = statistics.median(times["1 s load test, solo"]) - 1.0
    dist = statistics.median(times["1 s load test, -n 2"]) - 1.0
    print(
        f"\nabove duration: solo {solo:.2f} s, -n 2 {dist:.2f} s (target < 2 s each); "
        f"pytest-swarm's own share: solo "
        f"{solo - statistics.median(times['trivial test, solo (floor)']):.2f} s, -n 2 "
        f"{dist - statistics.median(times['trivial test, -n 2 (floor)']):.2f} s"
    )


if __name__ == "__main__":
    main()
