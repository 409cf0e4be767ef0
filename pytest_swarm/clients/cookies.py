"""The fast client's cookie jar: RFC 6265 scoping (domain, path, secure, expiry), cheap to ask.

A cookie set by one host is sent back to that host only (or, with ``Domain=``, to that domain
and its subdomains), on paths under its ``Path`` (by default the directory of the request that
set it), over HTTPS only when ``Secure``; ``Max-Age`` / ``Expires`` in the past delete it. As a
mapping, the jar reads and writes cookies by name (``"sid" in fast_http.cookies``); one set
by the test with ``jar[name] = value`` is sent to every host.

Example:
    >>> jar = CookieJar()
    >>> jar.store("api.test", "/login", "sid=1; Path=/")
    >>> jar.header("api.test", "/items", False), jar.header("other.test", "/", False)
    ('sid=1', '')
"""

from __future__ import annotations

import time
from collections.abc import Iterator, MutableMapping
from email.utils import parsedate_to_datetime


class _Cookie:
    __slots__ = ("domain", "expires", "host_only", "name", "path", "secure", "value")

    def __init__(
        self,
        name: str,
        value: str,
        domain: str,
        host_only: bool,
        path: str,
        secure: bool,
        expires: float | None,
    ) -> None:
        self.name = name
        self.value = value
        self.domain = domain  # "" for a cookie the test set: every host
        self.host_only = host_only
        self.path = path
        self.secure = secure
        self.expires = expires

    def matches(self, host: str, path: str, https: bool, now: float) -> bool:
        if self.expires is not None and self.expires <= now:
            return False
        if self.secure and not https:
            return False
        domain = self.domain
        if domain and host != domain and (self.host_only or not host.endswith("." + domain)):
            return False
        cookie_path = self.path
        return path == cookie_path or (
            path.startswith(cookie_path)
            and (cookie_path.endswith("/") or path[len(cookie_path)] == "/")
        )


class CookieJar(MutableMapping[str, str]):
    """One user's cookies, scoped as browsers scope them."""

    __slots__ = ("_cookies", "_expiring")

    def __init__(self) -> None:
        self._cookies: dict[tuple[str, str, str], _Cookie] = {}
        self._expiring = False  # any cookie with an expiry (only then is the clock read)

    # -- the request path -----------------------------------------------------------------
    def header(self, host: str, path: str, https: bool) -> str:
        """The ``Cookie`` header value for a request (empty when none applies)."""
        if not self._cookies:
            return ""
        now = time.time() if self._expiring else 0.0
        return "; ".join(
            f"{c.name}={c.value}"
            for c in self._cookies.values()
            if c.matches(host, path, https, now)
        )

    def store(self, host: str, request_path: str, line: str) -> None:
        """Keep the cookie of one ``Set-Cookie`` line received from ``host``."""
        pair, _, rest = line.partition(";")
        name, sep, value = pair.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name:
            return
        domain, host_only, path, secure = host.lower(), True, "", False
        expires: float | None = None
        max_age_seen = False
        for attribute in rest.split(";"):
            key, _, arg = attribute.partition("=")
            key, arg = key.strip().lower(), arg.strip()
            if key == "domain" and arg:
                wanted = arg.lstrip(".").lower()
                if domain != wanted and not domain.endswith("." + wanted):
                    return  # a host may not set cookies for another domain (RFC 6265 §5.3)
                domain, host_only = wanted, False
            elif key == "path" and arg.startswith("/"):
                path = arg
            elif key == "secure":
                secure = True
            elif key == "max-age":
                try:
                    expires = time.time() + int(arg)
                except ValueError:
                    continue
                max_age_seen = True
            elif key == "expires" and not max_age_seen:
                try:
                    expires = parsedate_to_datetime(arg).timestamp()
                except (TypeError, ValueError, IndexError):
                    continue
        if not path:  # the default path: the request path's directory (RFC 6265 §5.1.4)
            path = request_path[: request_path.rfind("/")] or "/"
        key3 = (domain, path, name)
        if expires is not None and expires <= time.time():
            self._cookies.pop(key3, None)
            return
        self._cookies[key3] = _Cookie(name, value, domain, host_only, path, secure, expires)
        if expires is not None:
            self._expiring = True

    # -- the mapping view (by name) ---------------------------------------------------------
    def __getitem__(self, name: str) -> str:
        for cookie in self._cookies.values():
            if cookie.name == name:
                return cookie.value
        raise KeyError(name)

    def __setitem__(self, name: str, value: str) -> None:
        self._cookies[("", "/", name)] = _Cookie(name, value, "", False, "/", False, None)

    def __delitem__(self, name: str) -> None:
        keys = [k for k in self._cookies if k[2] == name]
        if not keys:
            raise KeyError(name)
        for key in keys:
            del self._cookies[key]

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(k[2] for k in self._cookies))

    def __bool__(self) -> bool:  # asked on every request: no set built
        return bool(self._cookies)

    def __len__(self) -> int:
        return len({k[2] for k in self._cookies})

    def clear(self) -> None:
        self._cookies.clear()
        self._expiring = False

    def __repr__(self) -> str:
        return f"CookieJar({dict(self.items())!r})"
