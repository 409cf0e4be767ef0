"""The dashboard serves while the users' gevent loop is busy: in a process gevent has patched
(threads and sockets included, as a one-process run does), a server built on the patched
``threading`` would be greenlets on that loop, and a page would wait for the loop to yield."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import urllib.request

CHILD = r"""
import _thread, sys
from gevent import monkey
monkey.patch_all(subprocess=False, os=False, signal=False)
from pytest_swarm.feed import Feed
from pytest_swarm.web.server import DashboardServer
from pytest_swarm.web.service import Dashboard

dashboard = Dashboard(Feed()); dashboard.start()
server = DashboardServer(dashboard, "127.0.0.1", 0); server.start()
print(server.port, flush=True)
# The main thread never yields to gevent's hub from here on: it waits on a native lock, as
# a CPU-bound iteration would hold the loop. Only real OS threads can answer now.
hold = monkey.get_original("_thread", "allocate_lock")()
hold.acquire()
hold.acquire(timeout=float(sys.argv[1]))
"""


def test_the_server_answers_while_the_patched_main_loop_is_blocked() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, "120"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.append(child.stdout.readline()))  # type: ignore[union-attr]
        reader.start()
        reader.join(60)  # a guard: a server on greenlets never lets the child print its port
        assert lines and lines[0].strip(), "the child never got its server started"
        port = int(lines[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/state", timeout=60) as r:
            assert r.status == 200 and json.load(r)["state"]["running"] == []
    finally:
        child.kill()  # the child we started, by its handle
        child.wait(60)
