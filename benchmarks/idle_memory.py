"""Where the memory of an idle virtual user goes: a breakdown for ``benchmarks/generators.py``'s
memory scenario (``test_idle_fast_http`` / ``test_idle_http``: users waiting 5-10 s between
requests, each holding its connection).

Two runs of the real scenario (pytest in a child process, ``--swarm-patch=on``), with N and 2N
users; in each, once every user is spawned and idle, a probe greenlet collects garbage and takes

- a ``tracemalloc`` snapshot (what Python's allocators hold, by the line, or by traceback, that
  allocated it), the difference between the two runs divided by N is the bytes per user;
- the count of live objects per type (``gc.get_objects``), divided the same way;
- the process's RSS (with tracemalloc on it includes tracemalloc's own bookkeeping: the RSS
  figure to quote is ``--no-trace``'s, or generators.py's).

What tracemalloc cannot see (the C heap of libraries that do not allocate through Python:
OpenSSL, libev's own loop, glibc's per-allocation overhead and fragmentation) is the gap
between its per-user figure and the RSS one.

Load goes to 127.0.0.1 only: ``--url`` (e.g. run.sh's nginx), or a small gevent server this
script starts in a child process and stops, by its pid, when done. Every run is bounded.

    python benchmarks/idle_memory.py --kind fast_http --users 1000
    python benchmarks/idle_memory.py --kind http --users 1000 --group traceback --top 15
    python benchmarks/idle_memory.py --kind http --users 5000 --no-trace   # RSS only
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
SCENARIO = HERE / "scenarios" / "test_throughput.py"


# -- the child: one pytest run with the probe ---------------------------------------------------
def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _rss_by_mapping() -> dict[str, int]:
    """Resident KiB by kind of mapping: ``[heap]`` (glibc's brk heap: malloc'd blocks below
    its mmap threshold, with their headers and fragmentation), ``anon`` (anonymous mmaps:
    pymalloc's 1 MiB arenas, CPython's 16 KiB frame data-stack chunks, one per greenlet that
    ran Python code, large mallocs), ``files`` (code and data of libraries)."""
    found: dict[str, int] = {"[heap]": 0, "anon": 0, "files": 0}
    kind = "files"
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()
            if not head:
                continue
            if "-" in head[0] and not head[0].endswith(":"):
                name = head[5] if len(head) > 5 else ""
                kind = "[heap]" if name == "[heap]" else ("anon" if not name else "files")
            elif head[0] == "Rss:":
                found[kind] += int(head[1])
    return found


def _pymalloc_kib() -> dict[str, float]:
    """pymalloc's own account (``sys._debugmallocstats``, which writes to fd 2): KiB in
    allocated blocks, in free blocks of used pools, in empty pools, and arenas held. Free
    space inside arenas that cannot be returned is fragmentation left by earlier objects."""
    import re

    with tempfile.TemporaryFile(mode="w+") as f:
        saved = os.dup(2)
        try:
            sys.stderr.flush()
            os.dup2(f.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        f.seek(0)
        text = f.read()

    def number(label: str) -> float:
        found = re.search(re.escape(label) + r"[ .]*=?\s*([\d,]+)", text)
        return float(found.group(1).replace(",", "")) if found else 0.0

    return {
        "allocated blocks": number("bytes in allocated blocks") / 1024,
        "free blocks": number("bytes in available blocks") / 1024,
        "empty pools": _unused_pools(text) * 16,
        "arenas": number("# arenas allocated current") * 1024,
    }


def _unused_pools(text: str) -> float:
    import re

    found = re.search(r"^(\d+) unused pools", text, re.M)
    return float(found.group(1)) if found else 0.0


class Probe:
    """A pytest plugin: once every one of ``users`` users is spawned and (nearly all of them)
    asleep between two requests, records the process's memory, then ends the load early."""

    def __init__(
        self, users: int, out: Path, trace: bool, limit: float, later: float, burst: bool
    ) -> None:
        self.later = later
        self.burst = burst
        self.users = users
        self.out = out
        self.trace = trace
        self.limit = limit

    def pytest_runtest_setup(self) -> None:
        # The marker form runs its load in the item's setup: the watch starts just before.
        import gevent

        gevent.spawn(self.watch)

    def watch(self) -> None:
        import gc

        import gevent

        from pytest_swarm.engine.runner import Runner

        deadline = time.monotonic() + self.limit
        # At most 0.5 % of the users in a request at the moment of the look: each one asleep
        # holds what an idle user holds, one in a request holds its transient buffers too.
        awake = max(1, self.users // 200)
        crowd = runner = None
        while time.monotonic() < deadline:
            gevent.sleep(0.01 if self.burst else 0.2)
            if runner is None:
                runner = next((o for o in gc.get_objects() if type(o) is Runner), None)
                crowd = runner._users if runner is not None else None
            if (
                crowd is not None
                and len(crowd._live) >= self.users
                and (self.burst or len(crowd._sleeping) >= self.users - awake)
            ):
                break
        else:
            raise RuntimeError(f"the {self.users} users were never all idle")
        if self.later:
            # Later in the run, when the users have made more requests: what the cyclic
            # collector has not freed yet is part of the RSS then.
            gevent.sleep(self.later)
        self.look(len(crowd._sleeping) if crowd is not None else 0)
        if runner is not None:
            runner.stop("the probe has looked")

    def look(self, sleeping: int) -> None:
        import gc
        import tracemalloc

        before = _rss_kib()
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        garbage = Counter(type(o).__qualname__ for o in gc.garbage)
        gc.garbage.clear()
        gc.set_debug(0)
        gc.collect()
        result: dict[str, Any] = {
            "rss_kib": _rss_kib(),
            "rss_before_collect_kib": before,
            "mappings": _rss_by_mapping(),
            "pymalloc": _pymalloc_kib(),
            "garbage": garbage,
            "sleeping": sleeping,
        }
        result["types"] = Counter(type(o).__qualname__ for o in gc.get_objects())
        if self.trace:
            snapshot = tracemalloc.take_snapshot().filter_traces(
                [tracemalloc.Filter(False, tracemalloc.__file__)]
            )
            result["snapshot"] = snapshot
        with open(self.out, "wb") as f:
            pickle.dump(result, f)


def child(args: argparse.Namespace) -> None:
    if args.trace:
        import tracemalloc

        tracemalloc.start(args.frames)
    import pytest

    limit = min(55.0, args.users / args.rate * 4 + 20)  # tracemalloc slows the spawn down
    test = "test_idle_fast_http" if args.kind == "fast_http" else "test_idle_http"
    code = pytest.main(
        [
            f"{SCENARIO}::{test}",
            "-p",
            "no:cacheprovider",
            "-q",
            "--swarm-patch=on",
            f"--swarm-users={args.users}",
            f"--swarm-rate={args.rate:g}",
            f"--swarm-duration={limit + args.later + 2:g}s",
            f"--swarm-host={args.url}",
        ],
        plugins=[Probe(args.users, Path(args.out), args.trace, limit, args.later, args.burst)],
    )
    sys.exit(0 if code in (0, 1) else code)


# -- a target when none is given -------------------------------------------------------------
SERVER = """
import sys
from gevent.server import StreamServer
ANSWER = b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\nContent-Type: text/plain\\r\\n\\r\\nok"
def serve(sock, _):
    buf = b""
    while True:
        data = sock.recv(65536)
        if not data:
            return
        buf += data
        while b"\\r\\n\\r\\n" in buf:
            _, buf = buf.split(b"\\r\\n\\r\\n", 1)
            sock.sendall(ANSWER)
server = StreamServer(("127.0.0.1", 0), serve, backlog=8192)
server.start()
print(server.server_port, flush=True)
server.serve_forever()
"""


def start_server() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port = proc.stdout.readline().strip()
    if not port.isdigit():
        proc.kill()
        raise RuntimeError("the helper server did not start")
    return proc, f"http://127.0.0.1:{port}"


# -- the parent: two runs and their difference ------------------------------------------------
def measure(args: argparse.Namespace, users: int, out: Path) -> dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        f"--kind={args.kind}",
        f"--users={users}",
        f"--url={args.url}",
        f"--out={out}",
        f"--frames={args.frames}",
        f"--later={args.later:g}",
        f"--rate={args.rate:g}",
    ]
    if args.burst:
        cmd.append("--burst")
    if not args.trace:
        cmd.append("--no-trace")
    subprocess.run(
        cmd, check=False, timeout=120, cwd=tempfile.gettempdir(), stdout=subprocess.DEVNULL
    )
    with open(out, "rb") as f:
        result: dict[str, Any] = pickle.load(f)
    return result


def _where(stat: Any, frames: int) -> str:
    lines = []
    for frame in reversed(list(stat.traceback)[-frames:]):  # innermost first
        name = frame.filename
        for marker in ("site-packages/", "lib/python3"):
            if marker in name:
                name = name.split(marker, 1)[1]
        name = name.split("/pytest_swarm/", 1)[-1] if "/pytest_swarm/" in name else name
        lines.append(f"{name}:{frame.lineno}")
    return " <- ".join(lines)


def report(args: argparse.Namespace, small: dict[str, Any], large: dict[str, Any]) -> str:
    n = args.users
    lines = [
        f"{args.kind}: {n} and {2 * n} idle users "
        f"(RSS {small['rss_kib']:,} and {large['rss_kib']:,} KiB: "
        f"{(large['rss_kib'] - small['rss_kib']) / n:.2f} KiB per user"
        f"; asleep at the look: {small['sleeping']} and {large['sleeping']}"
        f"{', tracemalloc on' if args.trace else ''})"
    ]
    maps = {k: (large["mappings"][k] - small["mappings"][k]) / n for k in large["mappings"]}
    lines.append(
        "resident per user by mapping: " + ", ".join(f"{k} {v:.2f} KiB" for k, v in maps.items())
    )
    pym = {k: (large["pymalloc"][k] - small["pymalloc"][k]) / n for k in large["pymalloc"]}
    lines.append("pymalloc per user: " + ", ".join(f"{k} {v:.2f} KiB" for k, v in pym.items()))
    before = (large["rss_before_collect_kib"] - small["rss_before_collect_kib"]) / n
    garbage = large["garbage"].total() - small["garbage"].total()
    lines.append(
        f"before the probe's gc.collect(): {before:.2f} KiB per user; the collection found "
        f"{garbage / n:.1f} unreachable objects per user (cycles not collected yet)"
    )
    cyclic = {k: (large["garbage"][k] - small["garbage"].get(k, 0)) / n for k in large["garbage"]}
    shown_garbage = sorted(cyclic.items(), key=lambda kv: -kv[1])[: min(args.top, 12)]
    lines.extend(f"{v:>8.2f}  {k} (unreachable)" for k, v in shown_garbage if v >= 0.1)
    if args.trace:
        group = "traceback" if args.group == "traceback" else "lineno"
        stats = large["snapshot"].compare_to(small["snapshot"], group)
        total = sum(s.size_diff for s in stats)
        lines.append(f"traced by Python's allocators: {total / n:,.0f} B per user")
        lines.append(f"{'B/user':>8} {'blocks/user':>11}  where (allocated)")
        for stat in sorted(stats, key=lambda s: -s.size_diff)[: args.top]:
            lines.append(
                f"{stat.size_diff / n:>8.0f} {stat.count_diff / n:>11.2f}  "
                f"{_where(stat, args.show_frames if group == 'traceback' else 1)}"
            )
    counts = {k: (large["types"][k] - small["types"].get(k, 0)) / n for k in large["types"]}
    shown = [(k, v) for k, v in sorted(counts.items(), key=lambda kv: -kv[1]) if v >= 0.5]
    lines.append(f"live objects per user by type ({sum(counts.values()):.1f} in all):")
    lines.extend(f"{v:>8.2f}  {k}" for k, v in shown[: args.top])
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kind", choices=["fast_http", "http"], default="fast_http")
    ap.add_argument("--users", type=int, default=1000, help="N: runs with N and 2N users")
    ap.add_argument("--url", default="", help="a loopback target (default: a helper server)")
    ap.add_argument("--no-trace", dest="trace", action="store_false", help="RSS and types only")
    ap.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="users spawned per second (default: as generators.py, max(2N, 1000))",
    )
    ap.add_argument(
        "--later",
        type=float,
        default=0.0,
        help="look this many seconds after the users are first all idle (default: at once)",
    )
    ap.add_argument(
        "--burst",
        action="store_true",
        help="look as soon as every user is spawned, most of them still in their setup or "
        "first request (what users in flight hold, on top of what idle ones do)",
    )
    ap.add_argument("--group", choices=["lineno", "traceback"], default="lineno")
    ap.add_argument("--frames", type=int, default=12, help="frames tracemalloc keeps")
    ap.add_argument("--show-frames", type=int, default=4, help="frames shown per traceback")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    assert args.users <= 10_000, "bounded runs only"
    if not args.rate:
        args.rate = max(2 * args.users, 1000)
    if args.child:
        child(args)
        return
    server = None
    if not args.url:
        server, args.url = start_server()
    host = urlsplit(args.url).hostname or ""
    assert host.startswith("127.") or host == "localhost", "loopback targets only"
    try:
        with tempfile.TemporaryDirectory(prefix="swarm-idle-") as tmp:
            small = measure(args, args.users, Path(tmp) / "small.pickle")
            large = measure(args, 2 * args.users, Path(tmp) / "large.pickle")
    finally:
        if server is not None:
            server.kill()
            server.wait(timeout=10)
    text = report(args, small, large)
    print(text)
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "kind": args.kind,
                    "users": args.users,
                    "rss_kib_per_user": (large["rss_kib"] - small["rss_kib"]) / args.users,
                    "at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                }
            )
        )


if __name__ == "__main__":
    os.environ.pop("PYTEST_XDIST_WORKER", None)
    main()
