"""A requests transport adapter on the fast client's sockets and parser.

The ``http`` client keeps everything users rely on in ``requests`` (sessions, cookies, auth,
hooks, redirects, ``Response`` objects) but sends through this adapter instead of urllib3 +
http.client + the email header parser, which are about a third of the CPU of a request. What it
does not do, by design of a load generator: proxies (``trust_env`` is off anyway; mount
``requests.adapters.HTTPAdapter()`` on the session to use one), client certificates, and
streaming bodies (a body is read whole, bounded by ``swarm_max_body``; ``stream=True`` is
accepted and ``iter_content`` works on the read body). Content encodings gzip and deflate are
decoded (the session asks for no others).

Example:
    >>> import requests
    >>> s = requests.Session()
    >>> s.mount("http://", FastTransportAdapter())   # what the http fixture does
"""

from __future__ import annotations

import ssl
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

import httptools
import requests
from requests.adapters import BaseAdapter
from requests.cookies import extract_cookies_to_jar
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import (
    ConnectTimeout,
    ContentDecodingError,
    InvalidSchema,
    InvalidURL,
    ProxyError,
    ReadTimeout,
    RequestException,
    SSLError,
)
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers

from ..defaults import DEFAULT_MAX_BODY, DEFAULT_TIMEOUT
from ..stats.recorder import Recorder
from .fast import BodyTooLarge as FastBodyTooLarge
from .fast import ConnectTimeout as FastConnectTimeout
from .fast import FastHttpError, FastHttpSession, FastResponse, _route


class BodyTooLarge(RequestException):
    """The response body exceeded ``swarm_max_body``; it was discarded."""


class _Message:
    """What ``http.cookiejar`` reads from a response: ``get_all(name)``."""

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._raw = raw

    def get_all(self, name: str, default: Any = None) -> Any:
        wanted = name.lower().encode("latin-1")
        found = [v.decode("latin-1") for k, v in self._raw if k.lower() == wanted]
        return found or default


class _Raw:
    """Stands in for urllib3's response where requests looks at ``response.raw``."""

    def __init__(self, raw: list[tuple[bytes, bytes]], status: int, reason: str) -> None:
        self._original_response = self
        self.msg = _Message(raw)
        self.status = status
        self.reason = reason

    def read(self, *args: Any, **kwargs: Any) -> bytes:
        return b""  # the body was read already (requests drains redirect bodies this way)

    def stream(self, *args: Any, **kwargs: Any) -> Iterable[bytes]:
        return iter(())

    def close(self) -> None:
        pass

    def release_conn(self) -> None:
        pass


def _decode(content: bytes, encoding: str | None) -> bytes:
    if not encoding or not content:
        return content
    encoding = encoding.strip().lower()
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompress(content, 16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        try:
            return zlib.decompress(content)
        except zlib.error:
            return zlib.decompress(content, -zlib.MAX_WBITS)  # raw deflate, as some servers
    return content


class FastTransportAdapter(BaseAdapter):
    """One user's connections (one keep-alive connection per host), as a requests adapter."""

    def __init__(self, max_body: int = DEFAULT_MAX_BODY) -> None:
        super().__init__()
        self._client = FastHttpSession(None, Recorder(), max_body=max_body)

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float | None, float | None] | None = None,
        verify: bool | str = True,
        cert: Any = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        if proxies and any(proxies.values()):
            raise ProxyError(
                "the http client's transport does not use proxies; mount "
                "requests.adapters.HTTPAdapter() on the session for that"
            )
        if cert is not None:
            raise InvalidSchema("client certificates need requests.adapters.HTTPAdapter()")
        url = request.url or ""
        try:
            route = _route(url)
        except ValueError as exc:
            raise InvalidURL(str(exc), request=request) from None
        method = (request.method or "GET").upper()
        target = request.path_url
        body = request.body
        if body is not None and not isinstance(body, bytes):
            if isinstance(body, str):
                body = body.encode("utf-8")
            elif hasattr(body, "read"):
                body = body.read()
                if isinstance(body, str):
                    body = body.encode("utf-8")
            else:
                body = b"".join(part.encode() if isinstance(part, str) else part for part in body)
        # The body is sent whole: an iterable one (which requests marks chunked) gets a
        # Content-Length instead of its Transfer-Encoding.
        own_length = body is not None and "content-length" not in request.headers
        host = route.netloc
        lines = []
        for name, value in request.headers.items():
            if isinstance(name, bytes):
                name = name.decode("latin-1")
            if isinstance(value, bytes):
                value = value.decode("latin-1")
            lower = name.lower()
            if lower == "host":
                host = value  # a Host header the test sets wins, as with urllib3
            elif not (own_length and lower == "transfer-encoding"):
                lines.append(f"{name}: {value}\r\n")
        lines.insert(0, f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n")
        if own_length:
            lines.append(f"Content-Length: {len(body or b'')}\r\n")
        lines.append("\r\n")
        data = "".join(lines).encode("latin-1") + (body or b"")
        connect_timeout, read_timeout = (
            timeout if isinstance(timeout, tuple) else (timeout, timeout)
        )
        per_op = read_timeout or connect_timeout or DEFAULT_TIMEOUT
        client = self._client
        client.verify = verify if isinstance(verify, str) else verify is not False
        try:
            answer = client.exchange(route, data, method, per_op, target, connect_timeout)
        except FastBodyTooLarge as exc:
            raise BodyTooLarge(str(exc), request=request) from None
        except FastConnectTimeout as exc:
            raise ConnectTimeout(str(exc), request=request) from None
        except TimeoutError as exc:
            raise ReadTimeout(str(exc) or "timed out", request=request) from None
        except ssl.SSLError as exc:  # certificate verification, handshake: as requests says
            raise SSLError(str(exc), request=request) from None
        except (OSError, FastHttpError, httptools.HttpParserError) as exc:
            raise RequestsConnectionError(str(exc), request=request) from None
        return self._response(request, answer)

    def _response(
        self, request: requests.PreparedRequest, answer: FastResponse
    ) -> requests.Response:
        response = requests.Response()
        response.status_code = answer.status_code
        response.reason = answer.reason
        # Repeated headers are joined with ", " and names keep their case, as urllib3 does.
        headers: CaseInsensitiveDict[str] = CaseInsensitiveDict()
        for raw_name, raw_value in answer._raw:
            name = raw_name.decode("latin-1")
            value = raw_value.decode("latin-1")
            previous = headers.get(name)
            headers[name] = value if previous is None else f"{previous}, {value}"
        response.headers = headers
        response.encoding = get_encoding_from_headers(headers)
        try:
            response._content = _decode(answer.content, headers.get("content-encoding"))
        except zlib.error as exc:
            raise ContentDecodingError(
                f"failed to decode the response body: {exc}", request=request
            ) from None
        response._content_consumed = True  # type: ignore[attr-defined]
        raw = _Raw(answer._raw, answer.status_code, answer.reason)
        response.raw = raw
        response.url = request.url or ""
        response.request = request
        response.connection = self  # type: ignore[assignment]
        if "set-cookie" in headers:
            extract_cookies_to_jar(response.cookies, request, raw)  # type: ignore[no-untyped-call]
        return response

    def close(self) -> None:
        self._client.close()


__all__ = ["BodyTooLarge", "FastTransportAdapter"]
