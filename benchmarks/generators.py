"""Side-by-side load-generator benchmark: pytest-swarm vs Locust, hey, autocannon and wrk.

Started by ``benchmarks/run.sh`` (which installs nginx, wrk, hey, autocannon and the two
virtualenvs and starts nginx pinned to CPU 1). hey (Go) runs with ``GOMAXPROCS=1``, autocannon
(Node.js) is single-threaded by nature. Every generator is pinned to CPU 0 with ``taskset``,
so its requests per second are requests per second per core. Generators are interleaved round
by round (so a noisy neighbour hurts all of them alike) and the table shows medians and ratios.

Throughput: 50 users, zero wait, ``GET /`` (2-byte body) for ``--duration`` seconds.
Memory: ``--idle-users`` users waiting 5-10 s between requests, each holding its connection;
per-user memory = (RSS with N users - RSS with 10 users) / (N - 10).
Holding: ``--hold-users`` (10,000) ``fast_http`` users on one process for ``--hold-duration``
seconds, read from the run's JSON timeline: all running to the end, at the expected rate.

Every load loop is bounded in time and goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCENARIOS = HERE / "scenarios"


def pinned(cmd: list[str]) -> list[str]:
    return ["taskset", "-c", "0", *cmd]


def run(
    cmd: list[str], timeout: float, cwd: Path | None = None, env: dict[str, str] | None = None
) -> str:
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        check=False,
        env={**os.environ, **env} if env else None,
    )
    if proc.returncode not in (0, 1):
        raise RuntimeError(
            f"{cmd[:6]} exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        )
    return proc.stdout + proc.stderr


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.url = f"http://127.0.0.1:{args.port}"
        self.tmp = Path(tempfile.mkdtemp(prefix="swarm-bench-"))

    # -- pytest-swarm ------------------------------------------------------------------------
    def swarm_cmd(self, test: str, users: int, rate: float, duration: float) -> list[str]:
        """pytest on one scenario of scenarios/test_throughput.py, in the pytest-swarm venv."""
        return [
            str(Path(self.args.swarm_venv) / "bin" / "pytest"),
            f"{SCENARIOS / 'test_throughput.py'}::{test}",
            "-p",
            "no:cacheprovider",
            "-q",
            "--swarm-patch=on",
            f"--swarm-users={users}",
            f"--swarm-rate={rate:g}",
            f"--swarm-duration={duration:g}s",
            f"--swarm-host={self.url}",
        ]

    def swarm(self, test: str, users: int, duration: float) -> tuple[float, Path]:
        junit = self.tmp / f"{test}.xml"
        cmd = [*self.swarm_cmd(test, users, max(users, 1000), duration), f"--junitxml={junit}"]
        run(pinned(cmd), timeout=duration + 120, cwd=self.tmp)
        # One load test per file: the suite's "<node id>::swarm_rps" (the default layout) or
        # the testcase's "swarm_rps" (--swarm-junit=properties) alike.
        props = {
            str(p.get("name")).rpartition("::")[2]: p.get("value")
            for p in ET.parse(junit).iter("property")
        }
        return float(props["swarm_rps"]), junit

    def swarm_fast(self) -> float:
        return self.swarm("test_fast_http", 50, self.args.duration)[0]

    def swarm_http(self) -> float:
        return self.swarm("test_http", 50, self.args.duration)[0]

    # -- Locust ------------------------------------------------------------------------------
    def locust_cmd(
        self,
        locustfile: str,
        users: int,
        duration: float,
        prefix: Path,
        rate: float | None = None,
    ) -> list[str]:
        return [
            str(Path(self.args.locust_venv) / "bin" / "locust"),
            "-f",
            str(SCENARIOS / locustfile),
            "--headless",
            "-u",
            str(users),
            "-r",
            f"{rate if rate is not None else max(users, 1000):g}",
            "-t",
            f"{int(duration)}s",
            "--host",
            self.url,
            "--csv",
            str(prefix),
            "--only-summary",
            "--loglevel",
            "ERROR",
            "--stop-timeout",
            "2",
        ]

    def locust(self, locustfile: str) -> float:
        prefix = self.tmp / Path(locustfile).stem
        run(
            pinned(self.locust_cmd(locustfile, 50, self.args.duration, prefix)),
            timeout=self.args.duration + 120,
            cwd=self.tmp,
        )
        with open(f"{prefix}_stats.csv", newline="") as f:
            for row in csv.DictReader(f):
                if row["Name"] == "Aggregated":
                    return float(row["Requests/s"])
        raise RuntimeError("no Aggregated row in Locust's CSV")

    def locust_fast(self) -> float:
        return self.locust("locust_fast.py")

    def locust_http(self) -> float:
        return self.locust("locust_http.py")

    # -- wrk ---------------------------------------------------------------------------------
    def wrk(self) -> float:
        out = run(
            pinned(["wrk", "-t1", "-c50", f"-d{int(self.args.duration)}s", self.url + "/"]),
            timeout=self.args.duration + 60,
        )
        match = re.search(r"Requests/sec:\s+([\d.]+)", out)
        if not match:
            raise RuntimeError(f"cannot read wrk output:\n{out}")
        return float(match.group(1))

    # -- hey (Go) and autocannon (Node.js) ---------------------------------------------------
    def hey(self) -> float:
        """hey -z: as many requests as 50 workers make in the duration, keep-alive (its
        default), Go limited to one OS thread running Go code."""
        out = run(
            pinned(["hey", "-z", f"{int(self.args.duration)}s", "-c", "50", self.url + "/"]),
            timeout=self.args.duration + 60,
            env={"GOMAXPROCS": "1"},
        )
        match = re.search(r"Requests/sec:\s+([\d.]+)", out)
        if not match:
            raise RuntimeError(f"cannot read hey output:\n{out[-2000:]}")
        return float(match.group(1))

    def autocannon(self) -> float:
        """autocannon, 50 connections, keep-alive, no pipelining: total requests / duration."""
        out = run(
            pinned(
                [
                    "node",
                    self.args.autocannon,
                    "-c",
                    "50",
                    "-d",
                    str(int(self.args.duration)),
                    "--json",
                    self.url + "/",
                ]
            ),
            timeout=self.args.duration + 60,
        )
        line = next((x for x in out.splitlines() if x.startswith("{")), None)
        if line is None:
            raise RuntimeError(f"cannot read autocannon output:\n{out[-2000:]}")
        doc = json.loads(line)
        if doc.get("errors") or doc.get("non2xx"):
            raise RuntimeError(f"autocannon saw errors: {line[:500]}")
        return float(doc["requests"]["total"]) / float(doc["duration"])

    # -- memory ------------------------------------------------------------------------------
    def steady_rss(self, cmd: list[str], seconds: float) -> float:
        """RSS (KiB) once every user is spawned and idle: the median of the samples taken in
        the second half of the load (from /proc, every 0.2 s). The peak would include the
        transient buffers of thousands of users connecting at once."""
        proc = subprocess.Popen(
            pinned(cmd), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.tmp
        )
        samples: list[tuple[float, float]] = []
        start = time.monotonic()
        deadline = start + seconds + 90
        try:
            while proc.poll() is None and time.monotonic() < deadline:
                rss = _rss_kib(proc.pid)
                if rss:
                    samples.append((time.monotonic() - start, rss))
                time.sleep(0.2)
        finally:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)
        window = [rss for t, rss in samples if seconds * 0.5 <= t <= seconds * 0.95]
        return statistics.median(window or [rss for _, rss in samples] or [0.0])

    def memory_per_user(self, kind: str, users: int) -> float:
        d = self.args.idle_duration

        def cmd(n: int) -> list[str]:
            # The spawn rate matters: by default every user starts within about a second,
            # and a generator that cannot keep up has thousands of users in their first
            # request at once; what the allocators kept of that peak stays in the RSS
            # (benchmarks/idle_memory.py shows it as free blocks in pymalloc's arenas).
            rate = self.args.idle_rate or max(n, 1000)
            if kind.startswith("swarm"):
                test = "test_idle_fast_http" if kind == "swarm_fast" else "test_idle_http"
                return self.swarm_cmd(test, n, rate, d)
            locustfile = "locust_idle_fast.py" if kind == "locust_fast" else "locust_idle_http.py"
            return self.locust_cmd(locustfile, n, d, self.tmp / f"mem-{kind}-{n}", rate)

        small = self.steady_rss(cmd(10), d)
        large = self.steady_rss(cmd(users), d)
        return (large - small) / (users - 10)

    # -- holding many users ------------------------------------------------------------------
    def hold(self, users: int, seconds: float) -> str:
        """``users`` fast_http users on one process (wait 5-10 s) for ``seconds``, from the
        run's JSON timeline: do they all start, and do they keep running and requesting at the
        expected rate to the end? Returns the report section; raises if they do not hold."""
        out = self.tmp / "hold.json"
        rate = users / 5  # all started within 5 s
        cmd = [*self.swarm_cmd("test_idle_fast_http", users, rate, seconds), f"--swarm-json={out}"]
        run(pinned(cmd), timeout=seconds + 120, cwd=self.tmp)
        (doc,) = json.loads(out.read_text())["load_tests"]
        timeline = doc["timeline"]
        ramp_end = next((p["t"] for p in timeline if p["users"] >= users), None)
        if ramp_end is None:
            raise RuntimeError(f"never reached {users} users: {timeline}")
        steady = [p for p in timeline if ramp_end + 2 <= p["t"] <= seconds - 2]
        held = min(p["users"] for p in steady)
        rates = [p["requests"] for p in steady]
        expected = users / 7.5  # each user: one request per 5-10 s
        health = doc["generator"]
        lines = [
            f"\nHolding {users:,} fast_http users on one process (wait 5-10 s, {seconds:g} s, "
            "from the JSON timeline)",
            f"all {users:,} running at t={ramp_end:g} s; fewest running from t={ramp_end + 2:g} "
            f"to t={seconds - 2:g} s: {held:,}",
            f"requests per second over that window: min {min(rates):,}, median "
            f"{statistics.median(rates):,.0f}, max {max(rates):,} (expected ~{expected:,.0f})",
            f"failures: {doc['total']['failures']:,}; generator CPU max "
            f"{health['cpu_max_percent']:.0f} %, event-loop lag max {health['lag_max_ms']:.0f} ms"
            f"{' (saturated: the ramp)' if health['saturated'] else ''}",
        ]
        if held < users or doc["total"]["failures"]:
            raise RuntimeError("\n".join(["the users did not hold:", *lines]))
        return "\n".join(lines)


def _rss_kib(pid: int) -> float:
    """RSS of ``pid`` and its children (Locust may fork), in KiB."""
    total = 0.0
    for p in [pid, *_children(pid)]:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += float(line.split()[1])
        except OSError:
            pass
    return total


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            kids = [int(x) for x in f.read().split()]
    except OSError:
        return []
    return kids + [g for k in kids for g in _children(k)]


def table(
    title: str, results: dict[str, list[float]], unit: str, base: str, higher_is_better: bool = True
) -> str:
    lines = [
        f"\n{title}",
        f"{'generator':<34} {'median ' + unit:>16} {'min':>10} {'max':>10} {'x ' + base:>14}",
    ]
    ref = statistics.median(results[base])
    for name, values in results.items():
        med = statistics.median(values)
        ratio = med / ref if higher_is_better else ref / med
        lines.append(
            f"{name:<34} {med:>16,.1f} {min(values):>10,.1f} {max(values):>10,.1f} {ratio:>13.2f}x"
        )
    return "\n".join(lines)


HEY = "hey -c50 (Go, GOMAXPROCS=1)"
AUTOCANNON = "autocannon -c50 (Node.js)"
WRK = "wrk -t1 -c50 (ceiling)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--port", type=int, default=18080)
    ap.add_argument("--swarm-venv", required=True)
    ap.add_argument("--locust-venv", required=True)
    ap.add_argument("--autocannon", required=True, help="path of autocannon.js")
    ap.add_argument("--idle-users", type=int, default=5000)
    ap.add_argument("--idle-duration", type=float, default=15.0)
    ap.add_argument(
        "--idle-rate",
        type=float,
        default=0.0,
        help="spawn rate of the memory runs, users/s (default: max(users, 1000))",
    )
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--hold-users", type=int, default=10_000, help="0 skips the hold check")
    ap.add_argument("--hold-duration", type=float, default=30.0)
    args = ap.parse_args()
    assert max(args.duration, args.idle_duration, args.hold_duration) <= 60, "bounded runs only"
    bench = Bench(args)

    generators: dict[str, Callable[[], float]] = {
        "Locust HttpUser": bench.locust_http,
        "pytest-swarm http (requests)": bench.swarm_http,
        "Locust FastHttpUser": bench.locust_fast,
        "pytest-swarm fast_http": bench.swarm_fast,
        HEY: bench.hey,
        AUTOCANNON: bench.autocannon,
        WRK: bench.wrk,
    }
    rps: dict[str, list[float]] = {name: [] for name in generators}
    for r in range(0 if args.skip_throughput else args.rounds):
        for name, fn in generators.items():
            value = fn()
            rps[name].append(value)
            print(f"round {r + 1}/{args.rounds}  {name:<32} {value:>12,.1f} req/s", flush=True)
    report: list[str] = []
    fast_ratio = http_ratio = 0.0
    if not args.skip_throughput:
        report.append(
            table(
                "Throughput, requests/s on one core (50 users, zero wait, GET /)",
                rps,
                "req/s",
                "Locust HttpUser",
            )
        )
        med = {name: statistics.median(values) for name, values in rps.items()}
        fast = med["pytest-swarm fast_http"]
        fast_ratio = fast / med["Locust FastHttpUser"]
        http_ratio = med["pytest-swarm http (requests)"] / med["Locust HttpUser"]
        report.append("\nRatios of medians (issue 13's targets in brackets)")
        report.append(
            f"pytest-swarm fast_http / hey:                 {fast / med[HEY]:.2f}x (>= 0.8)"
        )
        cannon = fast / med[AUTOCANNON]
        report.append(f"pytest-swarm fast_http / autocannon:          {cannon:.2f}x (>= 0.8)")
        report.append(f"pytest-swarm fast_http / Locust FastHttpUser: {fast_ratio:.2f}x (>= 4)")
        report.append(f"pytest-swarm http / Locust HttpUser:          {http_ratio:.2f}x (>= 3)")
        report.append(f"pytest-swarm fast_http / wrk:                 {fast / med[WRK]:.2f}x")

    if not args.skip_memory:
        mem: dict[str, list[float]] = {}
        kinds = {
            "Locust HttpUser": "locust_http",
            "pytest-swarm http": "swarm_http",
            "Locust FastHttpUser": "locust_fast",
            "pytest-swarm fast_http": "swarm_fast",
        }
        for name, kind in kinds.items():
            mem[name] = [bench.memory_per_user(kind, args.idle_users)]
            print(f"memory  {name:<32} {mem[name][0]:>8.1f} KiB per idle user", flush=True)
        spawn = f"{args.idle_rate:g}/s" if args.idle_rate else f"{max(args.idle_users, 1000)}/s"
        report.append(
            table(
                f"Memory per idle user, KiB ({args.idle_users} users spawned at {spawn}, "
                "wait 5-10 s)",
                mem,
                "KiB",
                "Locust HttpUser",
                higher_is_better=False,
            )
        )
    if args.hold_users:
        report.append(bench.hold(args.hold_users, args.hold_duration))
    text = "\n".join(report)
    print(text)
    out = HERE / "results.txt"
    out.write_text(
        f"# {time.strftime('%Y-%m-%d %H:%M:%S')}  rounds={args.rounds} "
        f"duration={args.duration}s\n{text}\n"
    )
    print(f"\n(saved to {out})")
    if os.environ.get("SWARM_BENCH_STRICT"):
        sys.exit(0 if fast_ratio >= 2 and http_ratio >= 1.1 else 1)


if __name__ == "__main__":
    main()
