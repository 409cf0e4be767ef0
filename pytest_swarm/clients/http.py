"""The ``http`` client: a ``requests.Session`` that times and records every request.

Semantics follow Locust's ``HttpSession`` so its users feel at home:

- relative URLs are resolved against the target (``--swarm-host`` or the ``base_url`` fixture);
- each request is recorded under ``name=`` if given, else ``"METHOD /path"`` (no query string);
- a status >= 400 or a connection error is a failure; a connection error does not raise, it
  returns a response with ``status_code == 0`` and ``.error`` set (``raise_for_status()`` raises
  it), so the user goes on;
- ``catch_response=True`` returns a context manager in which the code decides:
  ``r.success()`` / ``r.failure("too slow")``.

Differences that matter in a load tester: every request has a finite default timeout
(``swarm_timeout``), the body is read with a size bound (``swarm_max_body``; a larger body is a
failure and is not kept in memory), proxy lookup from the environment is off (``trust_env``
scans the environment on every request and costs ~30 % of throughput; ``proxies=`` and
``session.proxies`` work), and there are no retries
(a retried request would be served twice and recorded once).

Example:
    >>> def test_browse(http):                                  # doctest: +SKIP
    ...     http.get("/items/42", name="GET /items/:id")
    ...     with http.get("/cart", catch_response=True) as r:
    ...         if r.elapsed.total_seconds() > 0.5:
    ...             r.failure("too slow")
"""

from __future__ import annotations

import contextlib
import time
from collections import OrderedDict
from http import cookiejar
from typing import Any, ClassVar

import requests
from requests.cookies import RequestsCookieJar, cookiejar_from_dict, merge_cookies
from requests.exceptions import RequestException
from requests.hooks import default_hooks
from requests.models import DEFAULT_REDIRECT_LIMIT
from requests.sessions import merge_hooks, merge_setting
from requests.structures import CaseInsensitiveDict
from requests.utils import check_header_validity, default_headers

from ..defaults import DEFAULT_MAX_BODY, DEFAULT_TIMEOUT
from ..stats.recorder import Recorder
from .common import CatchMixin, error_message, join_url, request_name, status_message
from .decoding import ACCEPT_ENCODING
from .transport import BodyTooLarge, FastTransportAdapter, read_body

__all__ = [
    "BodyTooLarge",
    "CatchResponse",
    "HttpSession",
    "error_message",
    "join_url",
    "request_name",
]

_CHUNK = 256 * 1024
_UNSET: Any = object()  # an argument the test did not give (None means none: a timeout)

# requests' default headers with this client's Accept-Encoding (only what the transport
# decodes; requests would also offer zstd when installed), made once: each user's headers
# start as a copy of its store, sharing the (name, value) pairs, which are never changed in
# place (setting a header replaces its pair in that user's own store).
_HEADERS = default_headers()
_HEADERS["Accept-Encoding"] = ACCEPT_ENCODING


def _default_headers() -> CaseInsensitiveDict[str]:
    """A new ``CaseInsensitiveDict`` equal to requests' default headers (this client's
    Accept-Encoding), sharing the template's (immutable) entries. Its store is a plain
    ``dict`` (ordered too, and all a CaseInsensitiveDict asks of its store) rather than the
    ``OrderedDict`` requests makes: 193 bytes instead of 479 for five headers.

    Example:
        >>> h = _default_headers()
        >>> h["accept-encoding"] == ACCEPT_ENCODING and h["Accept"] == "*/*"
        True
        >>> h["Accept"] = "text/plain"; _HEADERS["Accept"]
        '*/*'
    """
    headers: CaseInsensitiveDict[str] = CaseInsensitiveDict()
    store = getattr(_HEADERS, "_store", None)
    if isinstance(store, dict) and isinstance(getattr(headers, "_store", None), dict):
        headers._store = dict(store)  # type: ignore[attr-defined]
    else:  # another requests' layout: its own copy
        headers.update(_HEADERS)
    return headers


class HttpSession(requests.Session):
    """One virtual user's HTTP session (cookies, auth and adapters are this user's own)."""

    def __init__(
        self,
        base_url: str | None,
        recorder: Recorder,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_body: int = DEFAULT_MAX_BODY,
        deadline: float | None = None,
    ) -> None:
        # requests.Session.__init__'s settings, without the two HTTPAdapters (each with its
        # urllib3 PoolManager) it mounts only for the transport to replace them at once: a
        # few KiB of garbage per user, made by thousands of users spawning together
        # (what the allocators keep of such a burst stays in the process's RSS).
        # test_http_client checks that every attribute requests sets is set here too.
        self.headers = _default_headers()  # type: ignore[assignment]
        self.auth = None
        self.proxies = {}
        self.hooks = default_hooks()
        self.params = {}
        self.stream = False
        self.verify = True
        self.cert = None
        self.max_redirects = DEFAULT_REDIRECT_LIMIT
        self.cookies = cookiejar_from_dict({})  # type: ignore[no-untyped-call]
        self.adapters = OrderedDict()
        self.base_url = base_url
        self.recorder = recorder
        self.default_timeout = timeout
        # The whole request (redirects included) however steadily the server trickles; the
        # timeout bounds each read. Default: the timeout.
        self.default_deadline = timeout if deadline is None else deadline
        self.max_body = max_body
        self.trust_env = False
        # The transport: the fast client's sockets and parser under requests' session logic
        # (a third of the CPU per request, and no urllib3 pool manager per idle user).
        self._transport = adapter = FastTransportAdapter(max_body=max_body)
        self.mount("https://", adapter)
        self.mount("http://", adapter)

    def prepare_request(self, request: requests.Request) -> requests.PreparedRequest:
        """requests' own preparation, without three costs of a plain request (about a third
        of this client's CPU on Python 3.11): the settings merged without requests' protocol
        check (:func:`_merged`), no empty request cookie jar merged in, no empty
        ``params`` encoded, the URL prepared once per distinct URL and no cookie header
        looked for in an empty jar (:class:`_Prepared`). With ``trust_env`` (off here unless
        the test turns it on) or cookies given to the request, requests' own path runs.

        Example:
            >>> p = HttpSession(None, Recorder()).prepare_request(
            ...     requests.Request("GET", "http://127.0.0.1:8089/a", params={"q": "1"}))
            >>> p.url, p.headers["Accept-Encoding"] == ACCEPT_ENCODING
            ('http://127.0.0.1:8089/a?q=1', True)
        """
        if self.trust_env or request.cookies:
            return super().prepare_request(request)
        method = request.method
        params = _merged(request.params, self.params)
        if not params and type(params) in _PLAIN:
            params = None  # encodes to nothing, as an empty mapping does, without the check
        prepared = _Prepared()
        prepared.prepare(
            method=method.upper() if isinstance(method, str) else method,
            url=request.url,
            files=request.files,
            data=request.data,
            json=request.json,
            headers=_session_headers(self.headers)
            if not request.headers and type(request.headers) in _PLAIN
            else _merged(request.headers, self.headers, CaseInsensitiveDict),
            params=params,
            auth=merge_setting(request.auth, self.auth),  # type: ignore[no-untyped-call]
            cookies=_session_jar(self.cookies),
            hooks=merge_hooks(request.hooks, self.hooks),  # type: ignore[no-untyped-call]
        )
        return prepared

    def merge_environment_settings(
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> Any:
        """requests' merge, its proxies merged by :func:`_merged` when nothing comes from
        the environment (``trust_env`` off)."""
        if self.trust_env:
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        return {
            "proxies": _merged(proxies, self.proxies),
            "stream": merge_setting(stream, self.stream),  # type: ignore[no-untyped-call]
            "verify": merge_setting(verify, self.verify),  # type: ignore[no-untyped-call]
            "cert": merge_setting(cert, self.cert),  # type: ignore[no-untyped-call]
        }

    def request(  # type: ignore[override]
        self,
        method: str | bytes,
        url: str | bytes,
        name: str | None = None,
        catch_response: bool = False,
        *,
        params: Any = None,
        data: Any = None,
        headers: Any = None,
        cookies: Any = None,
        files: Any = None,
        auth: Any = None,
        timeout: Any = _UNSET,
        allow_redirects: bool = True,
        proxies: Any = None,
        hooks: Any = None,
        stream: Any = None,
        verify: Any = None,
        cert: Any = None,
        json: Any = None,
        deadline: Any = _UNSET,
    ) -> Any:
        """requests' ``Session.request`` (same arguments and steps), timed and recorded,
        and ``name=`` / ``catch_response=`` / ``deadline=`` as well. Its steps are written
        out here rather than called: one Python frame less on the deepest path of a user's
        request, which decides how many pages of its greenlet's frame stack stay resident
        for as long as the user lives (4 KiB each, see engine/crowd.py)."""
        method = method.decode() if isinstance(method, bytes) else method
        url = url.decode() if isinstance(url, bytes) else url
        joined = _JOINED.get((self.base_url, url))
        if joined is None:
            full = join_url(self.base_url, url)
            joined = (full, request_name("", full))  # " /path": the method goes in front
            if len(_JOINED) < _JOINED_LIMIT:
                _JOINED[(self.base_url, url)] = joined
        full_url, path_name = joined
        name = name or f"{method.upper()}{path_name}"
        # The product's finite default when the test does not say; timeout=None (no read
        # timeout) is requests' meaning when it does.
        if timeout is _UNSET:
            timeout = self.default_timeout
        if deadline is _UNSET:
            deadline = self.default_deadline
        user_stream = bool(stream)
        start = time.perf_counter()
        transport = self._transport
        transport.until = None if deadline is None else start + deadline
        try:
            # requests.Session.request: the Request, prepared, the environment's settings
            # merged (the body is always streamed from the transport: read below, bounded).
            prepared = self.prepare_request(
                requests.Request(
                    method=method.upper(),
                    url=full_url,
                    headers=headers,
                    files=files,
                    data=data or {},
                    json=json,
                    params=params or {},
                    auth=auth,
                    cookies=cookies,
                    hooks=hooks,
                )
            )
            settings = self.merge_environment_settings(
                prepared.url, proxies or {}, True, verify, cert
            )
            response = self.send(
                prepared, timeout=timeout, allow_redirects=allow_redirects, **settings
            )
            if not user_stream:
                self._read_body(response)
        except RequestException as exc:
            elapsed = time.perf_counter() - start
            response = _error_response(method, full_url, exc)
            if catch_response:
                return CatchResponse(response, self.recorder, name, elapsed, exc)
            self.recorder.record_failure(name, elapsed, type(exc).__name__, error_message(exc))
            return response
        finally:
            transport.until = None
        elapsed = time.perf_counter() - start
        if catch_response:
            return CatchResponse(response, self.recorder, name, elapsed, None)
        size = _size(response)
        if response.status_code >= 400:
            self.recorder.record_failure(
                name, elapsed, "HTTPError", _status_message(response), size=size
            )
        else:
            self.recorder.record(name, elapsed, size)
        return response

    def _read_body(self, response: requests.Response) -> None:
        """Read the body into memory, refusing more than ``max_body`` bytes (the fast
        transport has done so already; a user-mounted adapter may not have)."""
        if getattr(response, "_content_consumed", False) or read_body(response):
            return
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_content(_CHUNK):
            size += len(chunk)
            if size > self.max_body:
                response.close()  # drop the connection rather than drain a huge body
                raise BodyTooLarge(
                    f"response body larger than {self.max_body} bytes (swarm_max_body)",
                    response=response,
                )
            chunks.append(chunk)
        response._content = b"".join(chunks)


# (base URL, URL as given) -> (the joined URL, " /path" of its default name): joined and split
# once per process (a load test sends the same few URLs over and over), bounded.
_JOINED: dict[tuple[str | None, str], tuple[str, str]] = {}
_JOINED_LIMIT = 4096

# The mapping types whose items _merged reads itself (exact types: a subclass may define
# items() its own way, and goes through requests).
_PLAIN = (dict, OrderedDict, CaseInsensitiveDict)


def _merged(request_setting: Any, session_setting: Any, dict_class: type = OrderedDict) -> Any:
    """``requests.sessions.merge_setting`` (the request's setting over the session's, a key
    set to None removed) with the same result, reading the items of plain mappings directly:
    requests reaches them through an ``isinstance`` against a runtime-checkable protocol,
    about 5 µs each on Python 3.11, and a request made eight of them.

    Example:
        >>> dict(_merged({"b": None, "c": 3}, {"a": 1, "b": 2}))
        {'a': 1, 'c': 3}
    """
    if type(request_setting) not in _PLAIN or type(session_setting) not in _PLAIN:
        return merge_setting(  # type: ignore[no-untyped-call]
            request_setting, session_setting, dict_class=dict_class
        )
    merged = dict_class(_items(session_setting))
    merged.update(_items(request_setting))
    for key in [k for k, v in merged.items() if v is None]:
        del merged[key]
    return merged


def _session_headers(headers: Any) -> Any:
    """The merge of no request headers over the session's: the session's own
    ``CaseInsensitiveDict`` when none of its values is None (a copy would be equal; the
    prepared request copies it anyway, sharing its pairs), else :func:`_merged`'s."""
    store = getattr(headers, "_store", None) if type(headers) is CaseInsensitiveDict else None
    if isinstance(store, dict) and all(pair[1] is not None for pair in store.values()):
        return headers
    return _merged({}, headers, CaseInsensitiveDict)


def _items(mapping: Any) -> list[tuple[Any, Any]]:
    """``list(mapping.items())``; a CaseInsensitiveDict's from its store of (key, value)
    pairs (its items() goes through the Mapping mixins, a Python call per key)."""
    store = getattr(mapping, "_store", None) if type(mapping) is CaseInsensitiveDict else None
    if isinstance(store, dict):
        return list(store.values())
    return list(mapping.items())


def _empty_jar(jar: Any) -> bool:
    """True when ``jar`` (a cookie jar) certainly holds no cookie: its store is empty (a
    store that only has emptied domains counts as not empty: requests' own path then)."""
    return isinstance(jar, cookiejar.CookieJar) and not getattr(jar, "_cookies", True)


def _session_jar(cookies: Any) -> Any:
    """requests' ``merge_cookies(RequestsCookieJar(), session.cookies)``: a new jar with the
    session's cookies (none to copy when its jar is empty)."""
    if _empty_jar(cookies):
        return RequestsCookieJar()
    return merge_cookies(RequestsCookieJar(), cookies)  # type: ignore[no-untyped-call]


class _Prepared(requests.PreparedRequest):
    """A ``PreparedRequest`` that prepares a URL without parameters once per process (the
    same few URLs come back on every iteration) and does not ask an empty cookie jar for a
    Cookie header (``http.cookiejar`` walks its policy even then). Copies (redirects) are
    requests' own class."""

    _urls: ClassVar[dict[str, str]] = {}
    _URLS_LIMIT: ClassVar[int] = 4096

    def prepare_url(self, url: Any, params: Any) -> None:
        if params or not isinstance(url, str):
            super().prepare_url(url, params)
            return
        found = self._urls.get(url)
        if found is not None:
            self.url = found
            return
        super().prepare_url(url, params)
        if len(self._urls) < self._URLS_LIMIT and isinstance(self.url, str):
            self._urls[url] = self.url

    def prepare_headers(self, headers: Any) -> None:
        """requests' copy of the headers (each pair checked by ``check_header_validity``,
        names made native strings), sharing the session's (name, value) pairs and their
        lower-case keys when they are already ``str``: the same dictionary without a new
        key and pair per header and request (and a plain ``dict`` store, as
        :func:`_default_headers`)."""
        store = getattr(headers, "_store", None) if type(headers) is CaseInsensitiveDict else None
        if not isinstance(store, dict) or any(type(p[0]) is not str for p in store.values()):
            super().prepare_headers(headers)
            return
        for pair in store.values():
            check_header_validity(pair)
        own: CaseInsensitiveDict[Any] = CaseInsensitiveDict()
        own._store = dict(store)  # type: ignore[attr-defined]
        self.headers = own

    def prepare_cookies(self, cookies: Any) -> None:
        if _empty_jar(cookies):
            self._cookies = cookies
            return
        super().prepare_cookies(cookies)


def _size(response: requests.Response) -> int:
    """Content bytes as Locust counts them: the decoded body; for a body streamed to the test
    (``stream=True``, recorded when its head arrived), the ``Content-Length`` it announced
    (0 without one)."""
    content = response._content
    if isinstance(content, bytes):
        return len(content)
    announced = response.headers.get("content-length", "") if response.headers else ""
    return int(announced) if announced.isdigit() else 0


def _status_message(response: requests.Response) -> str:
    return status_message(response.status_code, response.reason)


def _error_response(method: str, url: str, exc: RequestException) -> requests.Response:
    response = requests.Response()
    response.status_code = 0
    response.url = url
    response.error = exc  # type: ignore[attr-defined]
    # When the URL itself was the problem (no scheme, no host) there is no request to show.
    with contextlib.suppress(RequestException):
        response.request = requests.Request(method, url).prepare()
    response._content = b""

    def raise_for_status() -> None:
        raise exc

    response.raise_for_status = raise_for_status  # type: ignore[method-assign]
    return response


class CatchResponse(CatchMixin, requests.Response):
    """The response of ``catch_response=True``: the ``with`` block decides success or failure.

    Example:
        >>> with http.get("/", catch_response=True) as r:       # doctest: +SKIP
        ...     if "ok" not in r.text:
        ...         r.failure("unexpected body")
    """

    def __init__(
        self,
        response: requests.Response,
        recorder: Recorder,
        name: str,
        elapsed: float,
        error: BaseException | None,
    ) -> None:
        self.__dict__.update(response.__dict__)
        if error is not None:
            self.raise_for_status = response.raise_for_status  # type: ignore[method-assign]
        self._swarm = (recorder, name, elapsed, _size(response))
        self._error = error
        self._verdict = None
