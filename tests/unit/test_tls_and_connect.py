"""HTTPS and connection set-up in both clients: certificate verification (True, False, a CA
bundle path, changed between requests of one user) and connect timeouts.

The HTTPS server is the module's keep-alive test server wrapped in TLS with a certificate from a
throw-away CA (``trustme``); everything stays on 127.0.0.1. A connect timeout is produced
without leaving loopback: a listener whose accept backlog is full drops further SYNs, so
``connect()`` waits until its timeout.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import trustme
from local_http import Local, QuietHandler, serve

from pytest_swarm.clients.fast import ConnectTimeout, FastHttpSession
from pytest_swarm.clients.http import HttpSession
from pytest_swarm.stats.recorder import Recorder


class _Handler(QuietHandler):
    def do_GET(self) -> None:
        self.server.hits[self.path] += 1
        body = b"secure"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture(scope="module")
def tls(ca: trustme.CA) -> Iterator[Local]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    with serve(_Handler, tls=context) as local:
        yield local


def _fast(url: str, verify: bool | str) -> tuple[FastHttpSession, Recorder]:
    rec = Recorder()
    return FastHttpSession(url, rec, timeout=5, verify=verify), rec


# -- fast_http ------------------------------------------------------------------------------------


def test_fast_https_with_a_ca_bundle_path(tls: Local, ca_file: Path) -> None:
    s, _ = _fast(tls.url, str(ca_file))
    try:
        r = s.get("/")
        assert (r.status_code, r.content, r.error) == (200, b"secure", None)
        assert s.get("/").status_code == 200
    finally:
        s.close()
    assert tls.connections >= 1


def test_fast_https_refuses_an_unknown_ca_by_default(tls: Local) -> None:
    s, rec = _fast(tls.url, True)
    try:
        r = s.get("/")
    finally:
        s.close()
    assert r.status_code == 0 and isinstance(r.error, ssl.SSLCertVerificationError)
    (key,) = rec.drain().errors
    assert key[:2] == ("GET /", "SSLCertVerificationError")


def test_fast_https_without_verification(tls: Local) -> None:
    s, _ = _fast(tls.url, False)
    try:
        assert s.get("/").content == b"secure"
    finally:
        s.close()


def test_a_connection_made_without_verification_is_not_reused_with_it(
    tls: Local, ca_file: Path
) -> None:
    s, _ = _fast(tls.url, False)
    try:
        assert s.get("/").status_code == 200
        s.verify = True  # the system CAs do not know the test CA
        r = s.get("/")
        assert r.status_code == 0 and isinstance(r.error, ssl.SSLCertVerificationError)
        s.verify = str(ca_file)
        assert s.get("/").status_code == 200
    finally:
        s.close()


# -- http (requests API on the same transport) -----------------------------------------------------


@pytest.fixture
def session() -> Iterator[HttpSession]:
    s = HttpSession(None, Recorder(), timeout=5)
    yield s
    s.close()


def test_http_verify_per_request(session: HttpSession, tls: Local, ca_file: Path) -> None:
    assert session.get(tls.url + "/", verify=False).text == "secure"
    # The next request asks for verification: it must not ride the unverified connection.
    r = session.get(tls.url + "/")
    assert r.status_code == 0 and isinstance(
        getattr(r, "error", None), requests.exceptions.SSLError
    )
    assert session.get(tls.url + "/", verify=str(ca_file)).text == "secure"
    (key,) = session.recorder.drain().errors
    assert key[:2] == ("GET /", "SSLError")


# -- connect timeouts ------------------------------------------------------------------------------


@pytest.fixture
def full_backlog() -> Iterator[str]:
    """A loopback listener that never accepts, its backlog filled: connecting to it hangs."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):  # enough to fill a backlog of 0 (Linux admits backlog + 1)
            f = socket.socket()
            f.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                f.connect(("127.0.0.1", port))
            fillers.append(f)
        yield f"http://127.0.0.1:{port}"
    finally:
        for f in fillers:
            f.close()
        listener.close()


def test_fast_connect_timeout_is_its_own_error(full_backlog: str) -> None:
    rec = Recorder()
    s = FastHttpSession(full_backlog, rec, timeout=0.3)
    try:
        r = s.get("/")
    finally:
        s.close()
    assert r.status_code == 0 and isinstance(r.error, ConnectTimeout)
    assert isinstance(r.error, TimeoutError)
    (key,) = rec.drain().errors
    assert key[1] == "ConnectTimeout" and "0.3s" in key[2]


def test_http_connect_timeout_is_requests_connect_timeout(
    session: HttpSession, full_backlog: str
) -> None:
    r = session.get(full_backlog + "/", timeout=(0.3, 30))
    assert r.status_code == 0 and isinstance(
        getattr(r, "error", None), requests.exceptions.ConnectTimeout
    )
    (key,) = session.recorder.drain().errors
    assert key[1] == "ConnectTimeout" and "0.3s" in key[2]
