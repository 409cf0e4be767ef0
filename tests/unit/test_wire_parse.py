"""The parser callbacks in C (``pytest_swarm._speedups.ResponseParse``) and in Python
(``wire.PyResponseParse``) read every response alike: the same responses, cut into the same
pieces, fed to both, leave every field equal after every piece, and fail with the same error.
"""

from __future__ import annotations

import itertools
import os
from typing import Any

import httptools
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_swarm.clients import wire
from pytest_swarm.clients.wire import MAX_HEADERS, PyResponseParse

C_PARSE: Any = wire.ResponseParse if wire.ResponseParse is not PyResponseParse else None
needs_c = pytest.mark.skipif(C_PARSE is None, reason="pytest_swarm._speedups is not built")

FIELDS = (
    "headers",
    "body",
    "reason",
    "coding",
    "size",
    "max_body",
    "status",
    "done",
    "complete",
    "headers_done",
    "too_large",
    "keep_alive",
    "chunked",
    "close_after",
    "cookies",
    "head_only",
)


def state(parse: Any) -> dict[str, Any]:
    return {f: getattr(parse, f) for f in FIELDS}


def feed(parse: Any, piece: bytes) -> str | None:
    """Feed one piece; the error's kind (and the callback's own error inside it), if any."""
    try:
        parse.parser.feed_data(piece)
    except httptools.HttpParserCallbackError as exc:
        return f"callback:{type(exc.__context__).__name__}:{exc.__context__}"
    except httptools.HttpParserError as exc:
        return f"{type(exc).__name__}:{exc}"
    return None


def test_the_c_parser_is_built_where_ci_requires_it() -> None:
    if os.environ.get("SWARM_REQUIRE_SPEEDUPS") != "1":
        pytest.skip("SWARM_REQUIRE_SPEEDUPS=1 is not set")
    assert C_PARSE is not None, "pytest_swarm._speedups was not built or failed to import"


header_names = st.sampled_from(
    [
        b"Content-Type",
        b"content-encoding",
        b"Content-Encoding",
        b"Set-Cookie",
        b"set-cookie2",
        b"SET-COOKIE",
        b"Transfer-Encoding",
        b"X-Trace",
        b"Content-Lengtx",
        b"Set-Cookiex",
        b"Cache-Control",
    ]
)
header_values = st.sampled_from([b"gzip", b"a=b", b"text/plain", b"", b"x" * 40, b"chunked"])


@st.composite
def responses(draw: st.DrawFn) -> bytes:
    """A response (or two, or an interim one first), well-framed or not."""
    status = draw(st.sampled_from([200, 204, 301, 404, 500, 101, 103, 100]))
    headers = draw(st.lists(st.tuples(header_names, header_values), max_size=8))
    body = draw(st.binary(max_size=64))
    framing = draw(st.sampled_from(["length", "chunked", "both", "close", "none"]))
    head = [b"HTTP/1.1 %d %s" % (status, draw(st.sampled_from([b"OK", b"", b"Not Found"])))]
    head += [name + b": " + value for name, value in headers]
    if framing in ("length", "both"):
        head.append(b"Content-Length: %d" % len(body))
    if framing in ("chunked", "both"):
        head.append(b"Transfer-Encoding: chunked")
    if framing == "close":
        head.append(b"Connection: close")
    payload = body
    if framing in ("chunked", "both"):
        payload = (b"%x\r\n" % len(body) + body + b"\r\n" if body else b"") + b"0\r\n\r\n"
    message = b"\r\n".join(head) + b"\r\n\r\n" + payload
    if status in (100, 103):  # an interim response: the final one follows
        message += b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    if draw(st.booleans()):  # bytes after the response
        message += draw(st.sampled_from([b"HTTP/1.1 200 OK\r\n\r\n", b"junk"]))
    return message


@needs_c
@settings(max_examples=300, deadline=None)
@given(
    message=responses(),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=6),
    max_body=st.sampled_from([0, 5, 64, 10_000]),
    head_only=st.booleans(),
)
def test_c_and_python_callbacks_agree_on_any_response(
    message: bytes, cuts: list[int], max_body: int, head_only: bool
) -> None:
    parses = [C_PARSE(), PyResponseParse()]
    for p in parses:
        p.max_body = max_body
        p.head_only = head_only
    points = sorted({min(c, len(message)) for c in cuts} | {0, len(message)})
    for start, end in itertools.pairwise(points):
        piece = message[start:end]
        errors = [feed(p, piece) for p in parses]
        assert errors[0] == errors[1]
        assert state(parses[0]) == state(parses[1])
        if errors[0] is not None:
            break


@needs_c
def test_too_many_headers_fail_alike() -> None:
    head = b"HTTP/1.1 200 OK\r\n" + b"X-A: 1\r\n" * (MAX_HEADERS + 1) + b"Content-Length: 0\r\n\r\n"
    parses = [C_PARSE(), PyResponseParse()]
    errors = [feed(p, head) for p in parses]
    assert (
        errors[0]
        == errors[1]
        == (f"callback:HeadersTooLarge:more than {MAX_HEADERS} response headers")
    )


@needs_c
def test_reset_renew_and_drop_body_leave_the_same_state() -> None:
    response = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 2\r\n\r\nok"
    parses = [C_PARSE(), PyResponseParse()]
    for p in parses:
        p.max_body = 100
        assert feed(p, response) is None
    assert state(parses[0]) == state(parses[1])
    for method in ("drop_body", "reset", "renew"):
        for p in parses:
            getattr(p, method)()
        assert state(parses[0]) == state(parses[1]), method
    # A renewed parser reads the next response from its start.
    for p in parses:
        p.max_body = 100
        assert feed(p, response) is None and p.done and p.body == [b"ok"]


@needs_c
def test_the_c_parse_and_its_parser_are_collected() -> None:
    import gc
    import weakref

    class Held:
        pass

    parse = C_PARSE()  # parse -> parser -> its bound callbacks -> parse: a cycle
    held = Held()
    parse.body = [held]  # freed only with the parse
    ref = weakref.ref(held)
    del parse, held
    gc.collect()
    assert ref() is None


@needs_c
def test_flags_take_bools_only() -> None:
    parse = C_PARSE()
    with pytest.raises(TypeError):
        parse.done = 1
    parse.done = True
    assert parse.done is True
