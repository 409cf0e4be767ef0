"""Scale-out: do two xdist workers generate twice what one does?

On a machine with enough cores the question is "-n 2 against a target on a third CPU set". A
2-core machine has no third CPU set, so this script makes each load-generating process the
bottleneck another way: every xdist worker runs in a CPU cgroup of its own capped at
``--quota`` of one core (cgroup v1 ``cpu.cfs_quota_us``, or v2 ``cpu.max``). The controller and
the target (nginx with one worker when installed, else the demo target) are not capped, and the
caps leave them the rest of the machine. Then ``-n 1`` and ``-n 2`` (each worker with 50
``fast_http`` users, zero wait, ``GET /`` with a 2-byte body) are run in interleaved rounds and
the medians of their requests/s compared: with linear scale-out the ratio is 2, the target of
issue 13 is >= 1.8. The workers' throttling counts are printed to show that the cap, not the
target, bounded them.

Needs root (cgroups). Every load is bounded by ``--duration``; traffic goes to 127.0.0.1 only;
the cgroups made here are removed at the end.

Run:  python benchmarks/scale_out.py [--rounds 3] [--duration 10] [--quota 0.3]
      [--python .venv/bin/python]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script from anywhere

from open_model import start_target  # the same nginx / demo target

PREFIX = f"swarm-scale-{os.getpid()}"

CONFTEST = """
import os


def pytest_configure(config):
    # Each xdist worker moves itself into its own capped cgroup (made by scale_out.py).
    worker = getattr(config, "workerinput", {}).get("workerid")
    if worker:
        procs = os.path.join(os.environ["SCALE_CGROUPS"], f"{PREFIX}-{worker}", "cgroup.procs")
        with open(procs, "w") as f:
            f.write(str(os.getpid()))
"""

TEST = """
import pytest


@pytest.mark.load(users=50, rate=1000, duration="{duration}s")
def test_fast(fast_http):
    fast_http.get("/")
"""


class CpuCaps:
    """One capped CPU cgroup per worker name, v1 or v2, removed by :meth:`close`."""

    def __init__(self, quota: float, workers: list[str]) -> None:
        v1 = Path("/sys/fs/cgroup/cpu")
        v2 = Path("/sys/fs/cgroup")
        if (v1 / "cpu.cfs_quota_us").exists():
            self.root, self.v2 = v1, False
        elif (v2 / "cgroup.controllers").exists():
            self.root, self.v2 = v2, True
            (v2 / "cgroup.subtree_control").write_text("+cpu")
        else:
            raise SystemExit("no CPU cgroup controller found (cgroup v1 cpu or v2)")
        self.dirs: list[Path] = []
        period = 100_000
        for worker in workers:
            path = self.root / f"{PREFIX}-{worker}"
            path.mkdir()
            self.dirs.append(path)
            if self.v2:
                (path / "cpu.max").write_text(f"{int(quota * period)} {period}")
            else:
                (path / "cpu.cfs_period_us").write_text(str(period))
                (path / "cpu.cfs_quota_us").write_text(str(int(quota * period)))

    def throttled(self) -> dict[str, int]:
        """Periods each worker's cgroup was throttled in, so far."""
        out = {}
        for path in self.dirs:
            stat = dict(line.split() for line in (path / "cpu.stat").read_text().splitlines())
            out[path.name.rsplit("-", 1)[1]] = int(stat.get("nr_throttled", 0))
        return out

    def close(self) -> None:
        for path in self.dirs:
            if path.exists():
                path.rmdir()  # empty once its worker exited


def run(python: str, project: Path, host: str, workers: int, duration: float) -> dict[str, float]:
    out = project / f"r{workers}.json"
    cmd = [
        python, "-m", "pytest", "-p", "no:cacheprovider", "-n", str(workers),
        f"--swarm-users={50 * workers}", f"--swarm-host={host}", f"--swarm-json={out}",
    ]  # fmt: skip
    proc = subprocess.run(
        cmd, cwd=project, capture_output=True, text=True, timeout=duration + 120, check=False
    )
    if not out.exists():
        raise SystemExit(
            f"the -n {workers} run failed:\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}"
        )
    (doc,) = json.loads(out.read_text())["load_tests"]
    cpu = re.search(r"aggregator thread CPU ([\d.]+) s", proc.stdout)
    return {
        "rps": float(doc["total"]["rps"]),
        "failures": float(doc["total"]["failures"]),
        "controller_cpu_s": float(cpu.group(1)) if cpu else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--quota", type=float, default=0.3, help="of one core, per worker")
    parser.add_argument("--python", default=sys.executable)
    args = parser.parse_args()
    if not 0.05 <= args.quota <= 1.0:
        raise SystemExit("--quota: between 0.05 and 1.0 of a core")
    caps = CpuCaps(args.quota, ["gw0", "gw1"])
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        project = work / "project"
        project.mkdir()
        (project / "conftest.py").write_text(CONFTEST.replace("{PREFIX}", PREFIX))
        (project / "test_scale.py").write_text(TEST.format(duration=args.duration))
        os.environ["SCALE_CGROUPS"] = str(caps.root)
        target, host, kind = start_target(work, args.python)
        rps: dict[int, list[float]] = {1: [], 2: []}
        try:
            print(f"target: {kind}; each worker capped at {args.quota:.0%} of a core")
            for r in range(args.rounds):
                for n in (1, 2):
                    before = caps.throttled()
                    got = run(args.python, project, host, n, args.duration)
                    after = caps.throttled()
                    throttled = {w: after[w] - before[w] for w in after}
                    rps[n].append(got["rps"])
                    print(
                        f"  round {r + 1}, -n {n}: {got['rps']:>9,.1f} req/s, failures "
                        f"{got['failures']:.0f}, controller CPU {got['controller_cpu_s']:.2f} s, "
                        f"throttled periods {throttled}",
                        flush=True,
                    )
        finally:
            target.terminate()  # only the target this script started, by its handle
            target.wait(timeout=10)
            caps.close()
    one, two = statistics.median(rps[1]), statistics.median(rps[2])
    print(f"median -n 1: {one:,.1f} req/s; -n 2: {two:,.1f} req/s; ratio {two / one:.2f}x")


if __name__ == "__main__":
    main()
