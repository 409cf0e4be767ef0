"""What an idle ``http`` user holds: requests' session state of its own, nothing more.

``HttpSession`` sets requests' session attributes itself (requests' ``Session.__init__``
would mount two ``HTTPAdapter``s for the transport to replace at once) and writes out the
steps of ``Session.request`` (one frame less on the deepest path of a request); the transport
does not keep a recorder per user. These tests hold it to requests' behaviour.
"""

from __future__ import annotations

import inspect

import pytest
import requests
from requests.cookies import RequestsCookieJar

from pytest_swarm.clients.decoding import ACCEPT_ENCODING
from pytest_swarm.clients.http import HttpSession
from pytest_swarm.clients.transport import FastTransportAdapter
from pytest_swarm.stats.recorder import Recorder


def _new() -> HttpSession:
    return HttpSession("http://127.0.0.1:9", Recorder())


def test_every_attribute_requests_sets_is_set_with_its_default() -> None:
    plain, ours = requests.Session(), _new()
    ours_vars = vars(ours)
    missing = set(vars(plain)) - set(ours_vars)
    assert not missing, f"requests.Session sets {missing}, HttpSession does not"
    expected = {"trust_env": False}  # off on purpose (see the http module's docstring)
    for name, value in vars(plain).items():
        if name in ("headers", "cookies", "adapters", "hooks"):
            continue
        assert ours_vars[name] == expected.get(name, value), name
    assert ours.hooks == plain.hooks
    assert isinstance(ours.cookies, RequestsCookieJar) and not ours.cookies
    assert dict(ours.headers) == {**plain.headers, "Accept-Encoding": ACCEPT_ENCODING}
    assert type(ours.headers) is type(plain.headers)
    assert list(ours.adapters) == ["https://", "http://"]  # requests' mount order
    assert all(isinstance(a, FastTransportAdapter) for a in ours.adapters.values())


def test_each_user_has_its_own_headers_cookies_and_hooks() -> None:
    a, b = _new(), _new()
    a.headers["X-User"] = "a"
    a.headers["Accept"] = "text/plain"
    del a.headers["Connection"]
    a.cookies.set("sid", "1")
    a.hooks["response"].append(lambda r, **_: r)
    assert "X-User" not in b.headers
    assert b.headers["Accept"] == "*/*" and b.headers["Connection"] == "keep-alive"
    assert not b.cookies and b.hooks["response"] == []
    assert _new().headers["Accept"] == "*/*"  # nor the next user's


def test_request_takes_every_argument_of_requests_session_request() -> None:
    theirs = inspect.signature(requests.Session.request).parameters
    ours = inspect.signature(HttpSession.request).parameters
    missing = [name for name in theirs if name not in ours]
    assert not missing, f"HttpSession.request does not take {missing}"


def test_the_transports_keep_no_recorder_each() -> None:
    # The transport's client only exchanges bytes; the http client records. A recorder and
    # its snapshot per user cost about a KiB of every idle user.
    assert FastTransportAdapter()._client.recorder is FastTransportAdapter()._client.recorder


def test_prepared_headers_share_the_sessions_pairs_and_are_still_checked() -> None:
    s = _new()
    s.headers["X-Team"] = "perf"
    prepared = s.prepare_request(requests.Request("GET", "http://127.0.0.1:9/"))
    ours = s.headers._store  # type: ignore[attr-defined]
    theirs = prepared.headers._store  # type: ignore[attr-defined]
    assert list(theirs) == list(ours)
    assert all(theirs[k] is ours[k] for k in ours)  # no new pair per header and request
    prepared.headers["X-Team"] = "other"  # the request's own copy
    assert s.headers["X-Team"] == "perf"
    s.headers["X-Bad"] = "a\nb"
    with pytest.raises(requests.exceptions.InvalidHeader):
        s.prepare_request(requests.Request("GET", "http://127.0.0.1:9/"))
