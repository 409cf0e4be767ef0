"""Proxies and client certificates in the ``http`` client's transport, as requests + urllib3 do
them, checked side by side with urllib3 against the same loopback servers.

The proxy is written here (raw sockets in threads): an ``http://`` request comes to it in
absolute form and it answers itself, echoing what it was sent; a ``CONNECT`` opens a tunnel to
the loopback TLS server, bytes piped both ways. The TLS server's certificates come from a
throw-away CA (``trustme``); one server requires a client certificate issued by that CA.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
import trustme
from local_http import Local, QuietHandler, closed_port, serve
from requests.adapters import HTTPAdapter

from pytest_swarm.clients.fast import FastHttpSession
from pytest_swarm.clients.http import HttpSession
from pytest_swarm.clients.transport import FastTransportAdapter
from pytest_swarm.stats.recorder import Recorder

KINDS = ["urllib3", "fast"]


# -- the proxy ------------------------------------------------------------------------------------


@dataclass
class Proxy:
    url: str
    port: int
    connections: int = 0
    seen: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    password: str | None = None  # when set, a Proxy-Authorization for user:password is required


def _read_head(conn: socket.socket) -> tuple[str, str, dict[str, str], bytes] | None:
    data = b""
    while b"\r\n\r\n" not in data:
        piece = conn.recv(65536)
        if not piece:
            return None
        data += piece
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return method, target, headers, rest


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    with suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


def _serve_proxy(conn: socket.socket, proxy: Proxy) -> None:
    import base64

    wanted = (
        "Basic " + base64.b64encode(f"user:{proxy.password}".encode()).decode()
        if proxy.password
        else None
    )
    with conn:
        while True:
            found = _read_head(conn)
            if found is None:
                return
            method, target, headers, rest = found
            proxy.seen.append((method, target, headers))
            if wanted and headers.get("proxy-authorization") != wanted:
                conn.sendall(
                    b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n"
                    b"Proxy-Authenticate: Basic\r\n\r\n"
                )
                continue
            if method == "CONNECT":
                host, _, port = target.rpartition(":")
                upstream = socket.create_connection((host, int(port)), timeout=30)
                conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                back = threading.Thread(target=_pipe, args=(upstream, conn), daemon=True)
                back.start()
                if rest:
                    upstream.sendall(rest)
                _pipe(conn, upstream)
                back.join(30)
                upstream.close()
                return
            length = int(headers.get("content-length") or 0)
            while len(rest) < length:
                rest += conn.recv(65536)
            body = json.dumps({"method": method, "target": target, "headers": headers}).encode()
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )


@contextmanager
def proxy_server(password: str | None = None) -> Iterator[Proxy]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.05)
    port = listener.getsockname()[1]
    proxy = Proxy(f"http://127.0.0.1:{port}", port, password=password)
    stop = threading.Event()
    conns: list[socket.socket] = []

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(30)
            conns.append(conn)
            proxy.connections += 1
            threading.Thread(target=_serve_proxy, args=(conn, proxy), daemon=True).start()

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield proxy
    finally:
        stop.set()
        acceptor.join()
        listener.close()
        for conn in conns:
            with suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


# -- TLS servers ----------------------------------------------------------------------------------


class _Handler(QuietHandler):
    def do_GET(self) -> None:
        peer = self.connection.getpeercert() if isinstance(self.connection, ssl.SSLSocket) else None
        names = [value for _, value in (peer or {}).get("subjectAltName", ())]
        body = json.dumps({"path": self.path, "client": names}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture(scope="module")
def client_cert(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    issued = ca.issue_cert("client.swarm.test")
    folder = tmp_path_factory.mktemp("client")
    paths = {name: str(folder / f"{name}.pem") for name in ("both", "cert", "key")}
    issued.private_key_and_cert_chain_pem.write_to_path(paths["both"])
    issued.cert_chain_pems[0].write_to_path(paths["cert"])
    issued.private_key_pem.write_to_path(paths["key"])
    return paths


@pytest.fixture(scope="module")
def tls(ca: trustme.CA) -> Iterator[Local]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    with serve(_Handler, tls=context) as local:
        yield local


@pytest.fixture(scope="module")
def mtls(ca: trustme.CA) -> Iterator[Local]:
    """A TLS server that requires a client certificate from the test CA."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    ca.configure_trust(context)
    context.verify_mode = ssl.CERT_REQUIRED
    with serve(_Handler, tls=context) as local:
        yield local


@contextmanager
def session(kind: str) -> Iterator[requests.Session]:
    s = requests.Session()
    s.trust_env = False
    adapter = HTTPAdapter() if kind == "urllib3" else FastTransportAdapter()
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    try:
        yield s
    finally:
        s.close()


def raised(call: Any) -> BaseException:
    try:
        call()
    except Exception as exc:
        return exc
    raise AssertionError("no exception")


# -- http:// through a proxy ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_an_http_request_goes_to_the_proxy_in_absolute_form(kind: str) -> None:
    with proxy_server() as proxy, session(kind) as s:
        r = s.get("http://origin.swarm.test:8080/a/b?q=1", proxies={"http": proxy.url}, timeout=10)
        seen = r.json()
        assert (seen["method"], seen["target"]) == ("GET", "http://origin.swarm.test:8080/a/b?q=1")
        assert seen["headers"]["host"] == "origin.swarm.test:8080"
        # The session's proxies too, and the connection to the proxy is kept alive.
        s.proxies = {"http": proxy.url}
        assert s.get("http://other.swarm.test/x", timeout=10).json()["target"] == (
            "http://other.swarm.test/x"
        )
        assert proxy.connections == 1


@pytest.mark.parametrize("kind", KINDS)
def test_proxy_credentials_from_the_proxy_url(kind: str) -> None:
    with proxy_server(password="s3cret") as proxy, session(kind) as s:
        url = proxy.url.replace("http://", "http://user:s3cret@")
        r = s.get("http://origin.swarm.test/", proxies={"http": url}, timeout=10)
        assert r.status_code == 200
        r = s.get("http://origin.swarm.test/", proxies={"http": proxy.url}, timeout=10)
        assert r.status_code == 407


def test_proxy_headers_are_the_ones_urllib3_sends() -> None:
    sent = {}
    for kind in KINDS:
        with proxy_server() as proxy, session(kind) as s:
            url = proxy.url.replace("http://", "http://user:pw@")
            s.post("http://origin.swarm.test/p", data=b"x", proxies={"http": url}, timeout=10)
            method, target, headers = proxy.seen[0]
            sent[kind] = (method, target, headers["host"], headers["proxy-authorization"])
    assert sent["fast"] == sent["urllib3"]


def test_proxies_from_the_environment_with_trust_env(monkeypatch: pytest.MonkeyPatch) -> None:
    with proxy_server() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "direct.swarm.test")
        s = requests.Session()
        s.mount("http://", FastTransportAdapter())
        try:
            assert s.get("http://origin.swarm.test/env", timeout=10).json()["target"] == (
                "http://origin.swarm.test/env"
            )
        finally:
            s.close()
        # The http fixture does not read the environment (trust_env is off) ...
        h = HttpSession(None, Recorder(), timeout=10)
        try:
            port = closed_port()
            r = h.get(f"http://127.0.0.1:{port}/")
            assert isinstance(r.error, requests.ConnectionError)  # went direct, refused
            # ... but a proxy given to it is used.
            h.proxies = {"http": proxy.url}
            assert h.get("http://origin.swarm.test/set").json()["target"].endswith("/set")
        finally:
            h.close()
    assert [target for _, target, _ in proxy.seen] == [
        "http://origin.swarm.test/env",
        "http://origin.swarm.test/set",
    ]


# -- https:// through a CONNECT tunnel -----------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_an_https_request_goes_through_a_connect_tunnel(
    kind: str, tls: Local, ca_file: str
) -> None:
    port = tls.server.server_address[1]
    with proxy_server() as proxy, session(kind) as s:
        proxies = {"https": proxy.url}
        for _ in range(2):
            r = s.get(tls.url + "/tunnelled", proxies=proxies, verify=ca_file, timeout=10)
            assert r.json()["path"] == "/tunnelled"
        assert [(m, t) for m, t, _ in proxy.seen] == [("CONNECT", f"localhost:{port}")]
        # verified through the tunnel: the system CAs do not know the test CA
        error = raised(lambda: s.get(tls.url + "/", proxies=proxies, verify=True, timeout=10))
        assert isinstance(error, requests.exceptions.SSLError)


@pytest.mark.parametrize("kind", KINDS)
def test_a_tunnel_the_proxy_refuses_is_a_proxy_error(kind: str, tls: Local, ca_file: str) -> None:
    with proxy_server(password="s3cret") as proxy, session(kind) as s:
        error = raised(
            lambda: s.get(tls.url + "/", proxies={"https": proxy.url}, verify=ca_file, timeout=10)
        )
    assert isinstance(error, requests.exceptions.ProxyError)
    assert "407" in str(error)


@pytest.mark.parametrize("kind", KINDS)
def test_an_unreachable_proxy_is_a_proxy_error(kind: str) -> None:
    with session(kind) as s:
        dead = f"http://127.0.0.1:{closed_port()}"
        error = raised(lambda: s.get("http://origin.swarm.test/", proxies={"http": dead}))
    assert isinstance(error, requests.exceptions.ProxyError)


@pytest.mark.parametrize("url", ["http://:8080", "http:///example.com:8080", "https://"])
def test_a_malformed_proxy_url_is_invalid_proxy_url(url: str) -> None:
    with session("fast") as s, pytest.raises(requests.exceptions.InvalidProxyURL):
        s.get("http://origin.swarm.test/", proxies={"http": url})


def test_a_socks_proxy_is_refused_by_name() -> None:
    with (
        session("fast") as s,
        pytest.raises(requests.exceptions.InvalidSchema, match=r"'socks5://127\.0\.0\.1:9'"),
    ):
        s.get("http://origin.swarm.test/", proxies={"http": "socks5://127.0.0.1:9"})


# -- client certificates --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_a_client_certificate_is_presented(
    kind: str, mtls: Local, ca_file: str, client_cert: dict[str, str]
) -> None:
    with session(kind) as s:
        for cert in (client_cert["both"], (client_cert["cert"], client_cert["key"])):
            r = s.get(mtls.url + "/", cert=cert, verify=ca_file, timeout=10)
            assert r.json()["client"] == ["client.swarm.test"]


@pytest.mark.parametrize("kind", KINDS)
def test_without_a_client_certificate_the_server_refuses(
    kind: str, mtls: Local, ca_file: str, client_cert: dict[str, str]
) -> None:
    with session(kind) as s:
        assert s.get(mtls.url + "/", cert=client_cert["both"], verify=ca_file, timeout=10).ok
        # Not the connection made with the certificate: a new one, without, which fails.
        error = raised(lambda: s.get(mtls.url + "/", verify=ca_file, timeout=10))
        assert isinstance(error, requests.ConnectionError)


def test_missing_certificate_files_are_named_as_requests_names_them(
    tls: Local, ca_file: str
) -> None:
    for kind in KINDS:
        with session(kind) as s:
            error = raised(lambda s=s: s.get(tls.url + "/", cert="/garbage", verify=ca_file))
            assert isinstance(error, OSError)
            assert str(error) == "Could not find the TLS certificate file, invalid path: /garbage"
            error = raised(lambda s=s: s.get(tls.url + "/", cert=(".", "/garbage"), verify=ca_file))
            assert str(error) == "Could not find the TLS key file, invalid path: /garbage"


def test_http_session_with_a_client_certificate(
    mtls: Local, ca_file: str, client_cert: dict[str, str]
) -> None:
    rec = Recorder()
    s = HttpSession(mtls.url, rec, timeout=10)
    s.cert = client_cert["both"]
    s.verify = ca_file
    try:
        assert s.get("/mine").json()["client"] == ["client.swarm.test"]
    finally:
        s.close()
    assert rec.drain().entries["GET /mine"].failures == 0


def test_fast_http_with_a_client_certificate(
    mtls: Local, ca_file: str, client_cert: dict[str, str]
) -> None:
    s = FastHttpSession(mtls.url, Recorder(), timeout=10, verify=ca_file)
    try:
        s.cert = (client_cert["cert"], client_cert["key"])
        assert json.loads(s.get("/fast").content)["client"] == ["client.swarm.test"]
        s.cert = None  # not the connection made with the certificate: a new one, refused
        assert s.get("/fast").status_code == 0
    finally:
        s.close()
