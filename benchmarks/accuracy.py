"""Generator accuracy: the latency a load generator adds to what the server itself takes.

At light load (10 users or connections, zero wait, keep-alive) against a target that answers
every ``GET /`` after a fixed delay (10 ms), each generator's measured p50 and p99 are set
beside the server's own p50 and p99 *over the same requests* (the server times each request
from the moment its bytes arrived to the moment its answer was written, and hands the
percentiles out and resets at ``GET /__stats``). What is left over is the generator's own
share: its event loop, parser, clock and recording, plus the loopback, which both generators
pay alike. pytest-swarm ``fast_http`` and ``wrk`` run in the same invocation, interleaved round
by round, the generator pinned to CPU 0 and the server to CPU 1 (``taskset``).

Run (wrk from Debian: ``apt-get install wrk``; pytest-swarm from the venv running this):
    python benchmarks/accuracy.py [--rounds 3] [--duration 10] [--users 10] [--delay-ms 10]

Every load is bounded in time and goes to 127.0.0.1 only. The server is this script in a child
process (``--serve PORT``), stopped by its pid at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCENARIOS = HERE / "scenarios"
MAX_SAMPLES = 2_000_000  # bounded memory: 10 users at 10 ms make ~1,000 a second
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"


# -- the target --------------------------------------------------------------------------------
def serve(port: int, delay: float) -> None:
    """A keep-alive HTTP/1.1 server answering ``GET /`` after ``delay`` seconds, timing itself."""
    samples: list[float] = []
    loop = asyncio.new_event_loop()
    clock = time.perf_counter

    def stats() -> bytes:
        ordered = sorted(samples)
        samples.clear()

        def q(p: float) -> float:
            return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000 if ordered else 0

        body = json.dumps({"count": len(ordered), "p50_ms": q(0.50), "p99_ms": q(0.99)})
        head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n"
        return head.encode() + body.encode()

    class Http(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)
            self.transport = transport
            self.buffer = b""
            sock = transport.get_extra_info("socket")
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def data_received(self, data: bytes) -> None:
            arrived = clock()
            self.buffer += data
            if len(self.buffer) > 65536:  # not a benchmark client: drop it
                self.transport.close()
                return
            while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
                head, self.buffer = self.buffer[:end], self.buffer[end + 4 :]
                if head.split(b" ", 2)[1:2] == [b"/__stats"]:
                    self.transport.write(stats())
                else:
                    loop.call_later(delay, self.respond, arrived)

        def respond(self, arrived: float) -> None:
            if self.transport.is_closing():
                return
            self.transport.write(RESPONSE)
            if len(samples) < MAX_SAMPLES:
                samples.append(clock() - arrived)

    server = loop.run_until_complete(
        loop.create_server(Http, "127.0.0.1", port, backlog=1024, reuse_address=True)
    )
    print("ready", flush=True)
    try:
        loop.run_forever()
    finally:
        server.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_stats(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url + "/__stats", timeout=10) as reply:
        return dict(json.loads(reply.read()))


# -- the generators ----------------------------------------------------------------------------
_WRK_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(url: str, users: int, duration: int) -> dict[str, float]:
    out = subprocess.run(
        [
            "taskset",
            "-c",
            "0",
            "wrk",
            "-t1",
            f"-c{users}",
            f"-d{duration}s",
            "--latency",
            url + "/",
        ],
        capture_output=True,
        text=True,
        timeout=duration + 60,
        check=True,
    ).stdout
    found = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+(?:us|ms|s))$", out, re.M))
    if set(found) != {"50", "99"}:
        raise RuntimeError(f"cannot read wrk's latency distribution:\n{out}")

    def ms(text: str) -> float:
        number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
        return float(number) * _WRK_UNITS[unit]

    return {"p50_ms": ms(found["50"]), "p99_ms": ms(found["99"])}


def fast_http(url: str, users: int, duration: int, tmp: Path, python: str) -> dict[str, float]:
    report = tmp / "accuracy.json"
    pytest = [python, "-m", "pytest", f"{SCENARIOS / 'test_throughput.py'}::test_fast_http"]
    subprocess.run(
        [
            "taskset",
            "-c",
            "0",
            *pytest,
            "-p",
            "no:cacheprovider",
            "-q",
            "--swarm-patch=on",
            f"--swarm-users={users}",
            f"--swarm-rate={users * 100}",
            f"--swarm-duration={duration}s",
            f"--swarm-host={url}",
            f"--swarm-json={report}",
        ],
        capture_output=True,
        text=True,
        timeout=duration + 120,
        check=False,
        cwd=tmp,
    )
    (doc,) = json.loads(report.read_text())["load_tests"]
    row = doc["requests"]["GET /"]
    return {"p50_ms": row["p50_ms"], "p99_ms": row["p99_ms"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--users", type=int, default=10)
    ap.add_argument("--delay-ms", type=float, default=10.0)
    ap.add_argument("--python", default=sys.executable, help="a Python with pytest-swarm")
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve, args.delay_ms / 1000)
        return
    assert args.duration <= 60 and args.users <= 1000, "bounded runs only"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [
            "taskset",
            "-c",
            "1",
            sys.executable,
            __file__,
            "--serve",
            str(port),
            "--delay-ms",
            str(args.delay_ms),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    tmp = Path(tempfile.mkdtemp(prefix="swarm-accuracy-"))
    added: dict[str, dict[str, list[float]]] = {}
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        generators: dict[str, Callable[[], dict[str, float]]] = {
            "pytest-swarm fast_http": lambda: fast_http(
                url, args.users, args.duration, tmp, args.python
            ),
            f"wrk -t1 -c{args.users}": lambda: wrk(url, args.users, args.duration),
        }
        for r in range(args.rounds):
            for name, run in generators.items():
                server_stats(url)  # reset: only this generator's requests count
                measured = run()
                own = server_stats(url)
                row = added.setdefault(name, {"p50": [], "p99": [], "own50": [], "own99": []})
                row["p50"].append(measured["p50_ms"] - own["p50_ms"])
                row["p99"].append(measured["p99_ms"] - own["p99_ms"])
                row["own50"].append(own["p50_ms"])
                row["own99"].append(own["p99_ms"])
                print(
                    f"round {r + 1}/{args.rounds}  {name:<24} measured p50 "
                    f"{measured['p50_ms']:.3f} p99 {measured['p99_ms']:.3f} ms; server's own "
                    f"p50 {own['p50_ms']:.3f} p99 {own['p99_ms']:.3f} ms ({own['count']:,.0f} "
                    "requests)",
                    flush=True,
                )
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(
        f"\nLatency the generator adds (measured minus the server's own, ms; medians of "
        f"{args.rounds} rounds of {args.duration} s; {args.users} users, {args.delay_ms:g} ms "
        "server delay)"
    )
    print(f"{'generator':<26} {'p50 added':>10} {'p99 added':>10} {'server p50':>11} {'p99':>8}")
    for name, row in added.items():
        med = {k: statistics.median(v) for k, v in row.items()}
        print(
            f"{name:<26} {med['p50']:>10.3f} {med['p99']:>10.3f} {med['own50']:>11.3f} "
            f"{med['own99']:>8.3f}"
        )
    swarm, ref = added["pytest-swarm fast_http"], added[f"wrk -t1 -c{args.users}"]
    for q in ("p50", "p99"):
        mine, theirs = statistics.median(swarm[q]), statistics.median(ref[q])
        print(f"{q}: pytest-swarm adds {mine:.3f} ms, wrk {theirs:.3f} ms")


if __name__ == "__main__":
    main()
