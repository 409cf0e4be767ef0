"""The demo target, exercised through a real server process (the ``served`` fixture)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from pytest_swarm.demo.app import CHUNK_SIZE, DemoApp
from pytest_swarm.demo.server import DemoServer

TIMEOUT = 30.0


@pytest.fixture
def http() -> Iterator[requests.Session]:
    """A requests session that ignores proxy settings from the environment."""
    with requests.Session() as session:
        session.trust_env = False
        yield session


def test_root_is_ok_and_counted(served: DemoServer, http: requests.Session) -> None:
    response = http.get(served.url + "/", timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.text == "ok"
    assert response.headers["Content-Type"].startswith("text/plain")
    assert served.stats() == {"total": 1, "paths": {"/": 1}, "logins": 0, "logouts": 0}


def test_counting_is_exact_per_path(served: DemoServer, http: requests.Session) -> None:
    plan = {"/": 7, "/items": 3, "/items/42": 4, "/delay": 2, "/nowhere": 1}
    for path, count in plan.items():
        for _ in range(count):
            suffix = "?ms=1" if path == "/delay" else ""
            http.get(served.url + path + suffix, timeout=TIMEOUT)
    stats = served.stats()
    assert stats["paths"] == plan  # query strings are stripped from the key
    assert stats["total"] == sum(plan.values())


def test_counting_is_exact_under_concurrency(served: DemoServer) -> None:
    threads, per_thread = 16, 50

    def worker(_: int) -> int:
        with requests.Session() as session:
            session.trust_env = False
            return sum(
                session.get(served.url + "/", timeout=TIMEOUT).status_code == 200
                for _ in range(per_thread)
            )

    with ThreadPoolExecutor(threads) as pool:
        assert sum(pool.map(worker, range(threads))) == threads * per_thread
    stats = served.stats()
    assert stats["total"] == threads * per_thread
    assert stats["paths"] == {"/": threads * per_thread}


def test_stats_and_reset_are_not_counted(served: DemoServer, http: requests.Session) -> None:
    http.get(served.url + "/items", timeout=TIMEOUT)
    for _ in range(5):
        assert http.get(served.url + "/__stats", timeout=TIMEOUT).status_code == 200
    stats = served.stats()
    assert stats["total"] == 1
    assert stats["paths"] == {"/items": 1}


def test_reset_zeroes_everything(served: DemoServer, http: requests.Session) -> None:
    http.get(served.url + "/", timeout=TIMEOUT)
    http.post(served.url + "/login", json={"user": "ada"}, timeout=TIMEOUT)
    http.post(served.url + "/logout", timeout=TIMEOUT)
    http.post(served.url + "/login", json={"user": "ada"}, timeout=TIMEOUT)
    assert served.stats()["total"] == 4

    response = http.post(served.url + "/__reset", timeout=TIMEOUT)
    assert response.status_code == 200
    assert served.stats() == {"total": 0, "paths": {}, "logins": 0, "logouts": 0}
    # Sessions are gone too: the cookie from before the reset no longer works.
    assert http.get(served.url + "/cart", timeout=TIMEOUT).status_code == 401


def test_login_cart_logout_flow(served: DemoServer, http: requests.Session) -> None:
    assert http.get(served.url + "/cart", timeout=TIMEOUT).status_code == 401

    login = http.post(served.url + "/login", json={"user": "ada"}, timeout=TIMEOUT)
    assert login.status_code == 200
    assert login.json() == {"user": "ada"}
    assert http.cookies.get("session")

    cart = http.get(served.url + "/cart", timeout=TIMEOUT)
    assert cart.status_code == 200
    assert cart.json() == {"user": "ada", "items": [], "count": 0}

    added = http.post(served.url + "/cart", json={"item": 7, "qty": 2}, timeout=TIMEOUT)
    assert added.status_code == 200
    assert added.json()["items"] == [{"item": 7, "qty": 2}]
    assert http.get(served.url + "/cart", timeout=TIMEOUT).json()["count"] == 2

    logout = http.post(served.url + "/logout", timeout=TIMEOUT)
    assert logout.status_code == 200
    assert "session" not in http.cookies
    assert http.get(served.url + "/cart", timeout=TIMEOUT).status_code == 401

    stats = served.stats()
    assert stats["logins"] == 1
    assert stats["logouts"] == 1
    assert stats["paths"] == {"/cart": 5, "/login": 1, "/logout": 1}


def test_stale_session_cookie_is_rejected(served: DemoServer, http: requests.Session) -> None:
    http.post(served.url + "/login", json={"user": "ada"}, timeout=TIMEOUT)
    token = http.cookies["session"]
    http.post(served.url + "/logout", timeout=TIMEOUT)
    response = http.get(served.url + "/cart", cookies={"session": token}, timeout=TIMEOUT)
    assert response.status_code == 401


@pytest.mark.parametrize("body", [{}, {"user": ""}, {"user": 3}, "not json"])
def test_login_rejects_bad_bodies(served: DemoServer, http: requests.Session, body: object) -> None:
    if isinstance(body, str):
        response = http.post(served.url + "/login", data=body, timeout=TIMEOUT)
    else:
        response = http.post(served.url + "/login", json=body, timeout=TIMEOUT)
    assert response.status_code == 400
    assert "session" not in response.cookies
    assert served.stats()["logins"] == 0


def test_items(served: DemoServer, http: requests.Session) -> None:
    listing = http.get(served.url + "/items", timeout=TIMEOUT)
    assert listing.status_code == 200
    assert len(listing.json()) == 20
    item = http.get(served.url + "/items/1000", timeout=TIMEOUT)
    assert item.status_code == 200
    assert item.json()["id"] == 1000
    assert http.get(served.url + "/items/1001", timeout=TIMEOUT).status_code == 404


@pytest.mark.parametrize("code", [200, 201, 204, 404, 418, 503])
def test_status_endpoint(served: DemoServer, http: requests.Session, code: int) -> None:
    response = http.get(served.url + f"/status/{code}", timeout=TIMEOUT)
    assert response.status_code == code
    assert served.stats()["paths"] == {f"/status/{code}": 1}


def test_wrong_method_is_405(served: DemoServer, http: requests.Session) -> None:
    response = http.get(served.url + "/login", timeout=TIMEOUT)
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"


def test_delay_waits_at_least_the_requested_time(
    served: DemoServer, http: requests.Session
) -> None:
    started = time.monotonic()
    response = http.get(served.url + "/delay?ms=100", timeout=TIMEOUT)
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert elapsed >= 0.1
    assert served.stats()["paths"] == {"/delay": 1}


def test_slow_takes_at_least_200ms(served: DemoServer, http: requests.Session) -> None:
    started = time.monotonic()
    assert http.get(served.url + "/slow", timeout=TIMEOUT).status_code == 200
    assert time.monotonic() - started >= 0.2


def test_flaky_answers_200_or_500(served: DemoServer, http: requests.Session) -> None:
    codes = {http.get(served.url + "/flaky", timeout=TIMEOUT).status_code for _ in range(30)}
    assert codes <= {200, 500}
    assert served.stats()["paths"] == {"/flaky": 30}


@pytest.mark.parametrize("n", [0, 1, CHUNK_SIZE, 3 * CHUNK_SIZE + 17])
def test_bytes_streams_the_right_length(served: DemoServer, http: requests.Session, n: int) -> None:
    with http.get(served.url + f"/bytes?n={n}", stream=True, timeout=TIMEOUT) as response:
        assert response.status_code == 200
        assert response.headers["Content-Length"] == str(n)
        received = sum(len(chunk) for chunk in response.iter_content(chunk_size=8192))
    assert received == n


def test_bytes_rejects_bad_n(served: DemoServer, http: requests.Session) -> None:
    assert http.get(served.url + "/bytes?n=-1", timeout=TIMEOUT).status_code == 400
    assert http.get(served.url + "/bytes?n=lots", timeout=TIMEOUT).status_code == 400


def test_hang_does_not_answer_and_server_stays_responsive(
    served: DemoServer, http: requests.Session
) -> None:
    with pytest.raises(requests.exceptions.ReadTimeout):
        http.get(served.url + "/hang", timeout=(TIMEOUT, 0.3))
    assert http.get(served.url + "/", timeout=TIMEOUT).text == "ok"
    assert served.stats()["paths"] == {"/hang": 1, "/": 1}


def test_app_counts_without_a_server() -> None:
    app = DemoApp()
    statuses: list[str] = []

    def start_response(
        status: str, headers: list[tuple[str, str]], exc_info: object = None
    ) -> Callable[[bytes], object]:
        statuses.append(status)
        return lambda data: None

    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/status/404", "QUERY_STRING": ""}
    body = b"".join(app(environ, start_response))
    assert statuses == ["404 Not Found"]
    assert body
    assert app.stats()["paths"] == {"/status/404": 1}


def test_demo_server_lifecycle() -> None:
    with DemoServer.start() as server:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", server.url)
        assert server.running
        pid = server.pid
        assert server.stats()["total"] == 0
    assert not server.running
    server.stop()  # idempotent
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_cli_prints_url_writes_port_file_and_exits_on_sigterm(tmp_path: Path) -> None:
    port_file = tmp_path / "port"
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest_swarm.demo", "--port", "0", "--port-file", str(port_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode()
        match = re.fullmatch(
            r"pytest-swarm demo target listening on http://127\.0\.0\.1:(\d+)\n", line
        )
        assert match, line
        port = int(match.group(1))
        assert port > 0
        assert port_file.read_text() == f"{port}\n"
        with requests.Session() as session:
            session.trust_env = False
            stats = session.get(f"http://127.0.0.1:{port}/__stats", timeout=TIMEOUT)
            assert json.loads(stats.content)["total"] == 0
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=TIMEOUT) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()
        process.stderr.close()
