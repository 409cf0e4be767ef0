"""Content codings (RFC 9110 §8.4), decoded with a bound on the decoded size.

A 100 KB gzip body can decode to 100 MB: ``swarm_max_body`` bounds what the test gets, so it is
checked on the decoded bytes, while decoding, never after. ``Content-Encoding`` lists the
codings in the order they were applied (``deflate, gzip``: deflated, then gzipped), so they are
undone last first. gzip and deflate come with Python; brotli needs the ``brotli`` or
``brotlicffi`` module (a brotli body without it is a clear error, never raw bytes passed off as
the body). Unknown codings are left as they are, as urllib3 does.

Example:
    >>> import gzip
    >>> decode(gzip.compress(b"hi" * 3), "gzip", 100)
    b'hihihi'
    >>> decode(b"raw", "identity", 100)
    b'raw'
"""

from __future__ import annotations

import importlib
import zlib
from typing import Any

from .errors import BodyTooLarge, DecodeFailed


def _find_brotli() -> Any:
    """brotli or brotlicffi (the same Decompressor API), or None; neither is required."""
    for module in ("brotli", "brotlicffi"):
        try:
            return importlib.import_module(module)
        except ImportError:
            continue
    return None


_brotli: Any = _find_brotli()

# What the clients ask for: only what they can decode.
ACCEPT_ENCODING = "gzip, deflate, br" if _brotli is not None else "gzip, deflate"
_STEP = 256 * 1024


def decode(body: bytes, codings: str, max_size: int) -> bytes:
    """``body`` with every coding of the ``Content-Encoding`` value ``codings`` undone, at most
    ``max_size`` decoded bytes (``BodyTooLarge`` past it; ``DecodeFailed`` for a body that does
    not decode)."""
    for coding in reversed(codings.split(",")):
        coding = coding.strip().lower()
        if coding in ("gzip", "x-gzip"):
            body = _zlib(body, 16 + zlib.MAX_WBITS, max_size)
        elif coding == "deflate":
            try:
                body = _zlib(body, zlib.MAX_WBITS, max_size)
            except DecodeFailed:  # raw deflate without the zlib wrapper, as some servers send
                body = _zlib(body, -zlib.MAX_WBITS, max_size)
        elif coding == "br":
            body = _brotli_decode(body, max_size)
        # identity, empty or unknown: as is
    return body


def _zlib(body: bytes, wbits: int, max_size: int) -> bytes:
    if not body:
        return body
    decoder = zlib.decompressobj(wbits)
    out: list[bytes] = []
    size = 0
    data = body
    try:
        while data:
            # max_length bounds each step's output, so a bomb never expands in memory.
            piece = decoder.decompress(data, _STEP)
            size += len(piece)
            if size > max_size:
                raise BodyTooLarge(f"decoded response body larger than {max_size} bytes")
            out.append(piece)
            data = decoder.unconsumed_tail
            if decoder.eof:
                break
        piece = decoder.flush()
    except zlib.error as exc:
        raise DecodeFailed(f"failed to decode the response body: {exc}") from None
    size += len(piece)
    if size > max_size:
        raise BodyTooLarge(f"decoded response body larger than {max_size} bytes")
    out.append(piece)
    return b"".join(out)


def _brotli_decode(body: bytes, max_size: int) -> bytes:
    if _brotli is None:
        raise DecodeFailed(
            "the response is brotli-encoded (Content-Encoding: br) and neither brotli nor "
            "brotlicffi is installed"
        )
    decoder = _brotli.Decompressor()
    out: list[bytes] = []
    size = 0
    try:
        # Fed in slices: each slice's output is bounded by what it can expand to, and the
        # running total is checked between slices.
        for start in range(0, len(body), 4096):
            piece = decoder.process(body[start : start + 4096])
            size += len(piece)
            if size > max_size:
                raise BodyTooLarge(f"decoded response body larger than {max_size} bytes")
            out.append(piece)
    except _brotli.error as exc:
        raise DecodeFailed(f"failed to decode the response body: {exc}") from None
    return b"".join(out)


class StreamDecoder:
    """The codings of a ``Content-Encoding`` value undone piece by piece, for a body read as
    it arrives (``stream=True``), with the same bound on the decoded size as :func:`decode`.

    Example:
        >>> import gzip
        >>> data = gzip.compress(b"abc" * 1000)
        >>> d = StreamDecoder("gzip", 10_000)
        >>> len(d.feed(data[:10]) + d.feed(data[10:]) + d.flush())
        3000
    """

    __slots__ = ("_max_size", "_size", "_stages")

    def __init__(self, codings: str, max_size: int) -> None:
        self._max_size = max_size
        self._size = 0
        self._stages: list[_Stage] = []
        for coding in reversed(codings.split(",")):
            coding = coding.strip().lower()
            if coding in ("gzip", "x-gzip"):
                self._stages.append(_ZlibStage(16 + zlib.MAX_WBITS))
            elif coding == "deflate":
                self._stages.append(_ZlibStage(zlib.MAX_WBITS, raw_fallback=True))
            elif coding == "br":
                if _brotli is None:
                    _brotli_decode(b"", 0)  # raises the clear error
                self._stages.append(_BrotliStage())

    def feed(self, data: bytes) -> bytes:
        for stage in self._stages:
            data = stage.feed(data, self._max_size)
        return self._count(data)

    def flush(self) -> bytes:
        data = b""
        for stage in self._stages:
            data = stage.feed(data, self._max_size) + stage.flush()
        return self._count(data)

    def _count(self, data: bytes) -> bytes:
        self._size += len(data)
        if self._size > self._max_size:
            raise BodyTooLarge(f"decoded response body larger than {self._max_size} bytes")
        return data


class _Stage:
    def feed(self, data: bytes, max_size: int) -> bytes:
        raise NotImplementedError

    def flush(self) -> bytes:
        return b""


class _ZlibStage(_Stage):
    __slots__ = ("_decoder", "_first", "_raw_fallback", "_wbits")

    def __init__(self, wbits: int, raw_fallback: bool = False) -> None:
        self._wbits = wbits
        self._decoder: Any = zlib.decompressobj(wbits)
        self._raw_fallback = raw_fallback
        self._first = True

    def feed(self, data: bytes, max_size: int) -> bytes:
        if not data:
            return b""
        out: list[bytes] = []
        size = 0
        try:
            while data and not self._decoder.eof:
                try:
                    piece = self._decoder.decompress(data, _STEP)
                except zlib.error:
                    if not (self._first and self._raw_fallback):
                        raise
                    # Raw deflate without the zlib wrapper, as some servers send.
                    self._decoder = zlib.decompressobj(-zlib.MAX_WBITS)
                    piece = self._decoder.decompress(data, _STEP)
                self._first = False
                size += len(piece)
                if size > max_size:  # each step's output is bounded: a bomb never expands
                    raise BodyTooLarge(f"decoded response body larger than {max_size} bytes")
                out.append(piece)
                data = self._decoder.unconsumed_tail
        except zlib.error as exc:
            raise DecodeFailed(f"failed to decode the response body: {exc}") from None
        return b"".join(out)

    def flush(self) -> bytes:
        try:
            return bytes(self._decoder.flush())
        except zlib.error as exc:
            raise DecodeFailed(f"failed to decode the response body: {exc}") from None


class _BrotliStage(_Stage):
    __slots__ = ("_decoder",)

    def __init__(self) -> None:
        self._decoder = _brotli.Decompressor()

    def feed(self, data: bytes, max_size: int) -> bytes:
        out: list[bytes] = []
        size = 0
        try:
            for start in range(0, len(data), 4096):
                piece = self._decoder.process(data[start : start + 4096])
                size += len(piece)
                if size > max_size:
                    raise BodyTooLarge(f"decoded response body larger than {max_size} bytes")
                out.append(piece)
        except _brotli.error as exc:
            raise DecodeFailed(f"failed to decode the response body: {exc}") from None
        return b"".join(out)
