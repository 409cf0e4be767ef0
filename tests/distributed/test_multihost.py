"""A multi-host run: one xdist worker in a separate network namespace.

The worker "host" is a network namespace joined to this one by a veth pair, so the worker's
statistics really cross an interface to reach the controller's aggregator (TCP + CURVE, bound
on the veth address and advertised to the workers). The worker is an execnet socket gateway
(``--tx socket=HOST:PORT//chdir=DIR``), the supported route for remote workers; code and venv
are shared through the file system, as they would be pre-installed on a real host.

Needs root and iproute2; skipped otherwise.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from pytest_swarm.demo.server import DemoServer

pytestmark = pytest.mark.slow


@dataclass
class Namespace:
    name: str
    host_ip: str  # this side of the veth
    peer_ip: str  # inside the namespace

    def run(self, *cmd: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["ip", "netns", "exec", self.name, *cmd], check=True, timeout=30)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, timeout=30, capture_output=True)


@pytest.fixture
def namespace() -> Iterator[Namespace]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 to create a network namespace")
    tag = uuid.uuid4().hex[:6]
    name, host_if, peer_if = f"swarm-{tag}", f"sw{tag}a", f"sw{tag}b"
    octet = int(tag[:2], 16) % 200 + 20
    ns = Namespace(name, f"10.{octet}.77.1", f"10.{octet}.77.2")
    try:
        _ip("netns", "add", name)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"cannot create a network namespace here: {exc}")
    try:
        _ip("link", "add", host_if, "type", "veth", "peer", "name", peer_if)
        _ip("link", "set", peer_if, "netns", name)
        _ip("addr", "add", f"{ns.host_ip}/24", "dev", host_if)
        _ip("link", "set", host_if, "up")
        _ip("netns", "exec", name, "ip", "addr", "add", f"{ns.peer_ip}/24", "dev", peer_if)
        _ip("netns", "exec", name, "ip", "link", "set", peer_if, "up")
        _ip("netns", "exec", name, "ip", "link", "set", "lo", "up")
        yield ns
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True, timeout=30)
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)


def _wait_port(host: str, port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)  # polling a port until it accepts: bounded by the deadline
    raise TimeoutError(f"{host}:{port} never accepted a connection")


@pytest.fixture
def socket_gateway(namespace: Namespace) -> Iterator[str]:
    """An execnet socket server inside the namespace (the 'remote host')."""
    port = 8888
    from execnet.script import socketserver

    proc = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            namespace.name,
            sys.executable,
            socketserver.__file__,
            f"{namespace.peer_ip}:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_port(namespace.peer_ip, port)
        yield f"{namespace.peer_ip}:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def test_worker_in_another_namespace(
    pytester: pytest.Pytester, namespace: Namespace, socket_gateway: str
) -> None:
    with DemoServer.start(host=namespace.host_ip) as target:
        pytester.makepyfile(
            """
            import pytest

            @pytest.mark.load(users=6, rate=20, duration="2s", wait=0.05)
            def test_home(http):
                http.get("/")
            """
        )
        workdir = str(pytester.path)
        result = pytester.runpytest_subprocess(
            "-p",
            "no:cacheprovider",
            "--dist",
            "load",
            "--tx",
            "popen",
            "--tx",
            f"socket={socket_gateway}//chdir={workdir}",
            "--swarm-bind",
            f"tcp://{namespace.host_ip}:0",
            "--swarm-advertise",
            namespace.host_ip,
            "--swarm-host",
            target.url,
            f"--junitxml={workdir}/junit.xml",
            timeout=120,
        )
        result.assert_outcomes(passed=1)
        result.stdout.fnmatch_lines(["*6 users on 2 workers*"])
        served = target.stats()["total"]
    import xml.etree.ElementTree as ET

    from pytest_swarm.report.junit import figures

    props = figures(ET.parse(f"{workdir}/junit.xml").getroot(), "test_home")
    assert props["swarm_workers"] == "2"
    assert int(props["swarm_requests"]) == served
