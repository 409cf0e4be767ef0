"""CPU per request of the ``fast_http`` and ``http`` clients, without the test runner.

``--users`` greenlets each send ``GET /`` over one keep-alive connection to ``--url`` (a
local keep-alive server: ``benchmarks/run.sh``'s nginx, or any) until ``--requests`` have been
sent in all; the process's CPU time (user + system) divided by the requests is the figure.
Run it pinned to one CPU with the server on another, take the median of a few rounds, and
compare builds in the same session (the machine may be shared). ``--profile`` prints
cProfile's top functions instead (the CPU figure is then inflated by the profiler).

    taskset -c 0 python benchmarks/client_cpu.py --url http://127.0.0.1:18080 --rounds 5
    taskset -c 0 python benchmarks/client_cpu.py --client http --profile

Only loopback targets are accepted; every loop is bounded by ``--requests``.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all(thread=False, subprocess=False, os=False, signal=False)

import argparse  # noqa: E402
import cProfile  # noqa: E402
import pstats  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

import gevent  # noqa: E402

from pytest_swarm.clients.fast import FastHttpSession  # noqa: E402
from pytest_swarm.clients.http import HttpSession  # noqa: E402
from pytest_swarm.engine.crowd import Crowd  # noqa: E402
from pytest_swarm.stats.recorder import Recorder  # noqa: E402


def one_round(client: str, url: str, users: int, total: int, crowd_pause: bool) -> float:
    """CPU seconds per request of one round of ``total`` requests by ``users`` greenlets."""
    recorder = Recorder()
    per_user = total // users
    crowd = Crowd()
    failures: list[str] = []

    def user(_: int) -> None:
        session: Any
        if client == "fast_http":
            session = FastHttpSession(url, recorder)
        else:
            session = HttpSession(url, recorder)
        get: Callable[[str], Any] = session.get
        pause = crowd.pause
        try:
            for _ in range(per_user):
                r = get("/")
                if r.status_code != 200:
                    failures.append(f"{r.status_code} {getattr(r, 'error', '')}")
                    return
                if crowd_pause:
                    pause(0.0)
        finally:
            session.close()

    cpu0 = time.process_time()
    for i in range(users):
        crowd.spawn(user, i)
    crowd.join()
    cpu = time.process_time() - cpu0
    if failures:
        raise SystemExit(f"requests failed: {failures[:3]}")
    return cpu / (per_user * users)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:18080")
    parser.add_argument("--client", choices=("fast_http", "http"), default="fast_http")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-pause", action="store_true", help="no Crowd.pause(0) per request")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    if urlsplit(args.url).hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("loopback targets only")
    if not 0 < args.users <= 10_000 or not 0 < args.requests <= 10_000_000:
        raise SystemExit("--users in 1..10000, --requests in 1..10,000,000")
    pause = not args.no_pause
    one_round(args.client, args.url, args.users, min(args.requests, 5000), pause)  # warm up
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        one_round(args.client, args.url, args.users, args.requests, pause)
        profiler.disable()
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(30)
        return
    figures = []
    for i in range(args.rounds):
        us = one_round(args.client, args.url, args.users, args.requests, pause) * 1e6
        figures.append(us)
        print(f"round {i + 1}/{args.rounds}: {us:.1f} us CPU per request", flush=True)
    median = statistics.median(figures)
    print(f"{args.client}: median {median:.1f} us CPU per request ({1e6 / median:,.0f} req/s/core)")
    gevent.get_hub().destroy()


if __name__ == "__main__":
    main()
