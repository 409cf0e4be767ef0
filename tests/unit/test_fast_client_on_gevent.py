"""test_fast_client again, on gevent's cooperative sockets (a run's sockets): the fast client's own
waits instead of the sockets' blocking calls (see gevent_sockets)."""

from gevent_sockets import _gevent_sockets  # noqa: F401  (autouse)
from test_fast_client import *  # noqa: F403  (every test of the module, collected again here)


def test_timeout_is_a_failure_with_a_timeout_kind(local: Local) -> None:  # noqa: F405
    """As in test_fast_client, with a deadline well past the read timeout: the default
    deadline equals the timeout, and a scheduling delay of a tenth of it before the request
    is sent (a loaded machine) makes the deadline the nearer bound, and the error its."""
    rec = Recorder()  # noqa: F405
    s = FastHttpSession(local.url, rec, timeout=0.2, deadline=30)  # noqa: F405
    try:
        r = s.get("/hang")
        assert r.status_code == 0 and isinstance(r.error, TimeoutError)
        assert "timeout=0.2s" in str(r.error)
        r = s.get("/hang", timeout=0.1, name="hang once more")
        assert isinstance(r.error, TimeoutError) and "timeout=0.1s" in str(r.error)
        assert s.get("/").status_code == 200  # the session goes on
    finally:
        s.close()
    snap = rec.drain()
    assert counts(snap) == {"GET /hang": (1, 1), "hang once more": (1, 1), "GET /": (1, 0)}  # noqa: F405
