"""A requests transport adapter on the fast client's sockets and parser.

The ``http`` client keeps everything users rely on in ``requests`` (sessions, cookies, auth,
hooks, redirects, ``Response`` objects) but sends through this adapter instead of urllib3 +
http.client + the email header parser, which are about a third of the CPU of a request. A body
is read inside ``send()`` unless ``stream=True``; a streamed body is read from the connection as
``r.raw.read(n)`` / ``iter_content`` ask for it, and the connection goes back to the user when
the body has been read to its end (closed when the response is closed first). Either way the
body is bounded by ``swarm_max_body`` (received and decoded bytes) and the request's deadline,
and decoded (gzip, deflate, brotli when installed) only when it is read: redirect bodies are
drained undecoded, as requests does with urllib3.

Example:
    >>> import requests
    >>> s = requests.Session()
    >>> s.mount("http://", FastTransportAdapter())   # what the http fixture does
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import httptools
import requests
import urllib3
from requests.adapters import BaseAdapter
from requests.auth import _basic_auth_str
from requests.cookies import extract_cookies_to_jar
from requests.exceptions import (
    ChunkedEncodingError,
    ConnectTimeout,
    ContentDecodingError,
    InvalidHeader,
    InvalidProxyURL,
    InvalidSchema,
    InvalidURL,
    ProxyError,
    ReadTimeout,
    RequestException,
    SSLError,
)
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.structures import CaseInsensitiveDict
from requests.utils import (
    get_auth_from_url,
    get_encoding_from_headers,
    prepend_scheme_if_needed,
    select_proxy,
    urldefragauth,
)

from ..defaults import DEFAULT_MAX_BODY
from ..stats.recorder import Recorder
from . import errors
from .connect import Proxy
from .decoding import StreamDecoder, decode
from .fast import FastHttpSession, FastResponse, route_of


class BodyTooLarge(RequestException):
    """The response body (decoded size) exceeded ``swarm_max_body``; it was discarded."""


class DeadlineExceeded(ReadTimeout):
    """The whole request took longer than its deadline (each read may have been in time)."""


class HeadersTooLarge(RequestsConnectionError):
    """The response head exceeded the bound on header bytes or count."""


_NOT_RECORDING = Recorder()  # the transports' clients' (see FastTransportAdapter)

_BAD_TIMEOUT = (
    "Invalid timeout {0}. Pass a (connect, read) timeout tuple, or a single float to set both "
    "timeouts to the same value."
)


class _Message:
    """What ``http.cookiejar`` reads from a response: ``get_all(name)``."""

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._raw = raw

    def get_all(self, name: str, default: Any = None) -> Any:
        wanted = name.lower().encode("latin-1")
        found = [v.decode("latin-1") for k, v in self._raw if k.lower() == wanted]
        return found or default


class _Raw:
    """Stands in for urllib3's response where requests looks at ``response.raw``: the body read
    from the connection as it is asked for (``stream=True``: ``read(n)``, ``stream()``,
    ``iter_content``), decoded when read with ``decode_content``, bounded by
    ``swarm_max_body`` (received and decoded bytes) and the request's deadline. The connection
    goes back to the user's session when the body has been read to its end, and is closed
    when the response is closed before that."""

    def __init__(
        self,
        answer: FastResponse,
        headers: CaseInsensitiveDict[str],
        request: requests.PreparedRequest,
        adapter: FastTransportAdapter,
        key: tuple[str, str, int],
    ) -> None:
        # What requests' extract_cookies_to_jar reads (through http.cookiejar, a few µs
        # even for a response without cookies): absent when no Set-Cookie header came.
        self._original_response = self if answer._cookies else None
        self.msg = _Message(answer._raw)
        self.headers = headers  # the Response's own: its Content-Encoding decides, when read
        self.status = answer.status_code
        self.reason = answer.reason
        self._received = answer.content  # body bytes received and not read yet
        self._rest = answer._rest  # the reading of the rest of the body, until its end
        self._adapter = adapter
        self._key = key
        self._request = request
        self._out = bytearray()  # bytes read (decoded, when asked) and not returned yet
        self._decoder: StreamDecoder | None = None
        self._flushed = False
        self._taken = 0  # body bytes (as received) read so far: urllib3's tell()
        self._closed = False

    def _more(self) -> bytes | None:
        """The next body bytes as received; None at the end of the body."""
        if self._received:
            data, self._received = self._received, b""
        else:
            rest = self._rest
            if rest is None:
                return None
            try:
                while not rest.step():
                    data = rest.take()
                    if data:
                        break
                else:
                    data = rest.take()
                    self._rest = None
                    self._adapter._client.release(self._key, rest)
            except BaseException as exc:
                self._rest = None
                rest.parse.drop_body()
                rest.conn.close()
                if isinstance(exc, Exception):
                    raise _body_error(exc, self._request) from None
                raise
        self._taken += len(data)
        return data

    def _decode(self, data: bytes | None) -> bytes:
        decoder = self._decoder
        if decoder is None:
            decoder = self._decoder = StreamDecoder(
                self.headers.get("content-encoding", ""), self._adapter.max_body
            )
        try:
            if data is not None:
                return decoder.feed(data)
            if self._flushed:
                return b""
            self._flushed = True
            return decoder.flush()
        except errors.DecodeFailed as exc:
            raise ContentDecodingError(str(exc), request=self._request) from None
        except errors.BodyTooLarge as exc:
            raise BodyTooLarge(f"{exc} (swarm_max_body)", request=self._request) from None

    def read(self, amt: int | None = None, decode_content: bool | None = None, **_: Any) -> bytes:
        """Up to ``amt`` bytes of the body (all that is left when None), decoded when
        ``decode_content`` and the response has a ``Content-Encoding``."""
        decode = bool(decode_content) and bool(self.headers.get("content-encoding"))
        out = self._out
        if self._closed:
            return b""
        if amt is None:  # the rest: gathered in pieces and joined once (no bytearray copies)
            parts = [bytes(out)] if out else []
            out.clear()
            try:
                while (data := self._more()) is not None:
                    parts.append(self._decode(data) if decode else data)
                if decode:
                    parts.append(self._decode(None))
            except BaseException:
                parts.clear()  # the traceback keeps this frame: not the partial body
                data = None
                raise
            return b"".join(parts)
        try:
            while len(out) < amt:
                data = self._more()
                if decode:
                    out += self._decode(data)
                elif data is not None:
                    out += data
                if data is None:
                    break
        except BaseException:
            out.clear()
            data = None
            raise
        if len(out) <= amt:
            result = bytes(out)
            out.clear()
        else:
            result = bytes(out[:amt])
            del out[:amt]
        return result

    def decoded(self) -> bytes:
        """The rest of the body, decoded (what is read is gone, as from a socket)."""
        if self._rest is None and not self._out and self._decoder is None:
            data, self._received = self._received, b""  # the common case: all of it is here
            self._taken += len(data)
            coding = self.headers.get("content-encoding")
            if not coding or not data:
                return data
            try:
                return decode(data, coding, self._adapter.max_body)
            except errors.DecodeFailed as exc:
                raise ContentDecodingError(str(exc), request=self._request) from None
            except errors.BodyTooLarge as exc:
                raise BodyTooLarge(f"{exc} (swarm_max_body)", request=self._request) from None
        return self.read(decode_content=True)

    def stream(
        self, amt: int | None = 2**16, decode_content: bool | None = None
    ) -> Iterator[bytes]:
        while True:
            chunk = self.read(amt, decode_content)
            if not chunk:
                return
            yield chunk

    def tell(self) -> int:
        """Body bytes read so far, as received (before decoding), as urllib3 counts them."""
        return self._taken

    @property
    def closed(self) -> bool:
        return self._closed or (self._rest is None and not self._received and not self._out)

    def close(self) -> None:
        """Done with the response: a body not read to its end closes its connection."""
        self._closed = True
        self._received = b""
        self._out.clear()
        rest, self._rest = self._rest, None
        if rest is not None:
            rest.parse.drop_body()
            rest.conn.close()

    def release_conn(self) -> None:
        # A connection goes back when its body has been read to the end; one in the middle
        # of a body cannot carry another request.
        if self._rest is not None:
            self.close()


def _body_error(exc: Exception, request: requests.PreparedRequest) -> RequestException:
    """A failure while reading a body after its head, as requests' ``iter_content`` words the
    urllib3 errors: a read timeout is a ``ConnectionError``, a cut body (closed, reset, bad
    framing) a ``ChunkedEncodingError``."""
    if isinstance(exc, errors.BodyTooLarge):
        return BodyTooLarge(f"{exc} (swarm_max_body)", request=request)
    if isinstance(exc, errors.DeadlineExceeded):
        return DeadlineExceeded(str(exc), request=request)
    if isinstance(exc, TimeoutError):
        return RequestsConnectionError(f"Read timed out. ({exc})", request=request)
    if isinstance(exc, ssl.SSLError):
        return SSLError(str(exc), request=request)
    return ChunkedEncodingError(str(exc) or type(exc).__name__, request=request)


def _timeouts(timeout: Any) -> tuple[float | None, float | None]:
    """(connect, read) as requests reads ``timeout``: a number, a pair, a ``urllib3.Timeout``
    or None (no timeout: the ``http`` client's own default is set before this)."""
    if isinstance(timeout, tuple):
        if len(timeout) != 2:
            raise ValueError(_BAD_TIMEOUT.format(timeout))
        connect, read = timeout
    elif isinstance(timeout, urllib3.Timeout):
        connect = urllib3.Timeout.resolve_default_timeout(timeout.connect_timeout)
        read = urllib3.Timeout.resolve_default_timeout(timeout.read_timeout)
    else:
        connect = read = timeout
    for value in (connect, read):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"Timeout value was {value!r}, but it must be an int, float or None.")
        if value <= 0:
            raise ValueError(f"Timeout value was {value!r}, but it must be greater than 0.")
    return connect, read


def _payload(request: requests.PreparedRequest, chunked: bool) -> bytes:
    body: Any = request.body
    if body is None:
        return b""
    if isinstance(body, bytes):
        parts = [body]
    elif isinstance(body, str):
        parts = [body.encode("utf-8")]
    elif hasattr(body, "read"):
        data = body.read()
        parts = [data.encode("utf-8") if isinstance(data, str) else data]
    else:  # an iterable (a generator): requests marked it chunked
        parts = [p.encode("utf-8") if isinstance(p, str) else p for p in body]
    if chunked:  # as the headers say (and r.request.headers shows)
        return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts if p) + b"0\r\n\r\n"
    return parts[0] if len(parts) == 1 else b"".join(parts)


class FastTransportAdapter(BaseAdapter):
    """One user's connections (one keep-alive connection per host), as a requests adapter.

    ``deadline`` (seconds, None: none) bounds each request whole; the ``http`` client sets
    ``until`` (a ``time.perf_counter()`` time) to bound a request and its redirects together.
    """

    def __init__(self, max_body: int = DEFAULT_MAX_BODY, deadline: float | None = None) -> None:
        super().__init__()
        # Only the client's exchange() is used here, which records nothing (the http client
        # records): one recorder for every user's transport rather than one each (a recorder
        # and its snapshot cost about a KiB per idle user).
        self._client = FastHttpSession(None, _NOT_RECORDING, max_body=max_body)
        self.max_body = max_body
        self.deadline = deadline
        self.until: float | None = None

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: bool | str = True,
        cert: Any = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        connect_timeout, read_timeout = _timeouts(timeout)
        url = request.url or ""
        try:
            route = route_of(url)
        except ValueError as exc:
            raise InvalidURL(str(exc), request=request) from None
        method = (request.method or "GET").upper()
        target = request.path_url
        proxy = proxy_of(select_proxy(url, proxies), request) if proxies else None
        if proxy is not None and route.scheme == "http":
            # Through an HTTP proxy: the absolute form (RFC 9112 §3.2.2), as urllib3 sends it.
            target = urldefragauth(url)
        headers = request.headers
        chunked = "chunked" in _header(headers, "transfer-encoding").lower()
        payload = _payload(request, chunked)
        # A body with neither framing header (a hand-made PreparedRequest) gets its length.
        own_length = bool(payload) and not chunked and "content-length" not in headers
        host = route.netloc
        lines = []
        for name, value in _pairs(headers):
            if isinstance(name, bytes):
                name = name.decode("latin-1")
            if isinstance(value, bytes):
                value = value.decode("latin-1")
            if name.lower() == "host":
                host = value  # a Host header the test sets wins, as with urllib3
            else:
                lines.append(f"{name}: {value}\r\n")
        lines.insert(0, f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n")
        if own_length:
            lines.append(f"Content-Length: {len(payload)}\r\n")
        if (
            proxy is not None
            and proxy.auth
            and route.scheme == "http"
            and "proxy-authorization" not in headers
        ):
            lines.append(f"Proxy-Authorization: {proxy.auth}\r\n")
        lines.append("\r\n")
        data = "".join(lines).encode("latin-1") + payload
        # Not kept while the request waits on its connection: with thousands of users
        # starting together, every user's pieces would be alive at once, and the allocator
        # keeps what such a peak scattered (benchmarks/idle_memory.py).
        del lines
        until = self.until
        if until is None and self.deadline is not None:
            until = time.perf_counter() + self.deadline
        client = self._client
        client.verify = verify if isinstance(verify, str) else verify is not False
        client.cert = tuple(cert) if isinstance(cert, list) else cert
        try:
            answer = client.exchange(
                route, data, method, target, read_timeout, connect_timeout, until, stream, proxy
            )
        except errors.BodyTooLarge as exc:
            raise BodyTooLarge(f"{exc} (swarm_max_body)", request=request) from None
        except errors.ConnectTimeout as exc:
            raise ConnectTimeout(str(exc), request=request) from None
        except errors.DeadlineExceeded as exc:
            raise DeadlineExceeded(str(exc), request=request) from None
        except TimeoutError:
            # Worded, and nested, as requests + urllib3 word it (e.args[0].args[0]).
            late = TimeoutError(f"Read timed out. (read timeout={read_timeout})")
            raise ReadTimeout(late, request=request) from None
        except ssl.SSLError as exc:  # certificate verification, handshake: as requests says
            raise SSLError(str(exc), request=request) from None
        except errors.IncompleteBody as exc:
            raise ChunkedEncodingError(str(exc), request=request) from None
        except errors.InvalidFraming as exc:
            raise InvalidHeader(str(exc), request=request) from None
        except errors.HeadersTooLarge as exc:
            raise HeadersTooLarge(str(exc), request=request) from None
        except OSError as exc:
            if proxy is not None:  # the proxy refused, or could not be reached
                raise ProxyError(f"Unable to connect to proxy: {exc}", request=request) from None
            raise RequestsConnectionError(str(exc), request=request) from None
        except (errors.FastHttpError, httptools.HttpParserError) as exc:
            raise RequestsConnectionError(str(exc), request=request) from None
        return self.build_response(
            request, answer, route.key if proxy is None else proxy.key(route)
        )

    def build_response(
        self,
        request: requests.PreparedRequest,
        answer: FastResponse,
        key: tuple[str, str, int] | None = None,
    ) -> requests.Response:
        """A ``requests.Response`` for ``answer`` (requests' HTTPAdapter has the same hook)."""
        response = requests.Response()
        response.status_code = answer.status_code
        response.reason = answer.reason
        # Repeated headers are joined with ", " and names keep their case, as urllib3 does.
        headers: CaseInsensitiveDict[str] = CaseInsensitiveDict()
        store = getattr(headers, "_store", None)
        if isinstance(store, dict):
            # A plain dict (ordered as well, all a CaseInsensitiveDict asks of its store)
            # rather than requests' OrderedDict: less than half its size.
            store = headers._store = {}  # type: ignore[attr-defined]
            # Its store directly: (name as received, value) under the lower-case name, the
            # last name's case kept, as its __setitem__ does (Mapping.get raises a KeyError
            # inside for every new name).
            for raw_name, raw_value in answer._raw:
                name = raw_name.decode("latin-1")
                value = raw_value.decode("latin-1")
                lower = name.lower()
                found = store.get(lower)
                store[lower] = (name, value) if found is None else (name, f"{found[1]}, {value}")
        else:
            for raw_name, raw_value in answer._raw:
                name = raw_name.decode("latin-1")
                value = raw_value.decode("latin-1")
                previous = headers.get(name)
                headers[name] = value if previous is None else f"{previous}, {value}"
        response.headers = headers
        response.encoding = get_encoding_from_headers(headers)
        # Not decoded here: requests reads it through raw when (and if) the body is wanted.
        if key is None:
            key = route_of(request.url or "").key
        raw = _Raw(answer, headers, request, self, key)
        response.raw = raw
        response.url = request.url or ""
        response.request = request
        response.connection = self  # type: ignore[assignment]
        if "set-cookie" in headers:
            extract_cookies_to_jar(response.cookies, request, raw)  # type: ignore[no-untyped-call]
        return response

    def close(self) -> None:
        self._client.close()


def _pairs(headers: Any) -> Any:
    """``headers.items()``; a CaseInsensitiveDict's from its store of (name, value) pairs
    (its items() goes through the Mapping mixins, a Python call per header)."""
    store = getattr(headers, "_store", None) if type(headers) is CaseInsensitiveDict else None
    return store.values() if isinstance(store, dict) else headers.items()


def _header(headers: Any, name: str) -> str:
    """``headers.get(name, "")`` for a lower-case ``name``, without the KeyError that a
    CaseInsensitiveDict's get raises inside for a header that is absent."""
    store = getattr(headers, "_store", None) if type(headers) is CaseInsensitiveDict else None
    if isinstance(store, dict):
        found = store.get(name)
        return "" if found is None else found[1]
    return headers.get(name, "")  # type: ignore[no-any-return]


@lru_cache(maxsize=256)
def _proxy(proxy_url: str) -> Proxy:
    parsed = urlsplit(proxy_url)
    if not parsed.hostname:
        raise InvalidProxyURL(
            "Please check proxy URL. It is malformed and could be missing the host."
        )
    if parsed.scheme != "http":
        raise InvalidSchema(
            f"the http client's transport supports http:// proxies only, not {proxy_url!r}; "
            "mount requests.adapters.HTTPAdapter() on the session for that one"
        )
    try:
        port = parsed.port or 80
    except ValueError:
        raise InvalidProxyURL(f"the proxy URL {proxy_url!r} has an invalid port") from None
    username, password = get_auth_from_url(proxy_url)
    auth = _basic_auth_str(username, password) if username else ""
    return Proxy(parsed.hostname, port, auth)


def proxy_of(proxy_url: str | None, request: requests.PreparedRequest) -> Proxy | None:
    """The proxy requests chose for this request (``select_proxy`` over ``proxies=``,
    ``session.proxies`` and, with ``trust_env``, the environment), or None.

    Example:
        >>> proxy_of("http://u:p@127.0.0.1:3128", requests.PreparedRequest())
        Proxy(host='127.0.0.1', port=3128, auth='Basic dTpw')
    """
    if not proxy_url:
        return None
    try:
        return _proxy(prepend_scheme_if_needed(proxy_url, "http"))  # type: ignore[no-untyped-call]
    except (InvalidSchema, InvalidProxyURL) as exc:
        exc.request = request
        raise


def read_body(response: requests.Response) -> bool:
    """Read a response of this transport whole, decoded (one call, no chunking); False when
    the response came from another adapter."""
    raw = response.raw
    if not isinstance(raw, _Raw):
        return False
    response._content = raw.decoded()
    response._content_consumed = True  # type: ignore[attr-defined]
    return True


__all__ = ["BodyTooLarge", "DeadlineExceeded", "FastTransportAdapter", "HeadersTooLarge"]
