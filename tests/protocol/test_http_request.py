"""The ``--http-socket`` request head parser (``parse_http_request``, ``http_url_decode``).

Byte-for-byte agreement with real uWSGI is checked in ``tests/test_net_real.py``; here
are the rules themselves and the fuzzing guarantee (only a head, ``None`` or a
``RemoteProtocolError``).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simuwsgi.protocol import (
    HttpRequestHead,
    RemoteProtocolError,
    http_url_decode,
    parse_http_request,
)


def parse(data: bytes, buffer_size: int = 4096) -> HttpRequestHead | None:
    return parse_http_request(data, hostname=b"vm", server_port=b"8000",
                              remote_addr=b"127.0.0.1", buffer_size=buffer_size)


def test_vars_in_uwsgis_order() -> None:
    data = (b"GET /p?q=1 HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nx-a:  2 \r\n"
            b"Content-Length: 3\r\nX-Long: a\r\n b\r\n\r\nabc")
    head = parse(data)
    assert head is not None and head.consumed == len(data) - 3  # the body follows
    assert head.request.vars == (
        (b"REQUEST_METHOD", b"GET"), (b"PATH_INFO", b"/p"), (b"REQUEST_URI", b"/p?q=1"),
        (b"QUERY_STRING", b"q=1"), (b"SERVER_PROTOCOL", b"HTTP/1.1"), (b"SCRIPT_NAME", b""),
        (b"SERVER_NAME", b"vm"), (b"SERVER_PORT", b"8000"), (b"REMOTE_ADDR", b"127.0.0.1"),
        (b"HTTP_HOST", b"h"), (b"HTTP_X_A", b"1, 2 "), (b"CONTENT_LENGTH", b"3"),
        (b"HTTP_X_LONG", b"a\r\n b"),
    )
    no_query = parse(b"GET /p HTTP/1.0\r\n\r\n")
    assert no_query is not None
    assert [k for k, _ in no_query.request.vars[:4]] == [
        b"REQUEST_METHOD", b"REQUEST_URI", b"PATH_INFO", b"QUERY_STRING"]


def test_incomplete_refused_and_quirks() -> None:
    assert parse(b"GET / HTTP/1.1\r\nHost: x\r\n") is None
    with pytest.raises(RemoteProtocolError, match=r"invalid HTTP request size \(max 64\)"):
        parse(b"GET /" + b"a" * 100, buffer_size=64)
    with pytest.raises(RemoteProtocolError):
        parse(b"GET / HTTP/1.1\r\nno colon\r\n\r\n")
    with pytest.raises(RemoteProtocolError):
        parse(b"GET / HTTP/1.1\r\n: empty name\r\n\r\n")
    # no space before the head ends: the method swallows the rest (real uWSGI agrees)
    odd = parse(b"GARBAGE\r\nno colon here\r\n\r\n")
    assert odd is not None and odd.request.get(b"SERVER_PROTOCOL") == b"here"
    # vars that do not fit the buffer are dropped with uWSGI's warning
    small = parse(b"GET / HTTP/1.1\r\n\r\n", buffer_size=60)
    assert small is not None and small.warnings
    assert small.request.get(b"REMOTE_ADDR") is None


@pytest.mark.parametrize(("raw", "decoded"), [
    (b"/a/b/../c", b"/a/c"), (b"/a/./b", b"/a/b"), (b"/%41%zz", b"/A\x00"), (b"a/b", b"a/b"),
    (b"/a/..", b"/"), (b"/..", b""), (b"//x", b"//x"), (b"/x#frag", b"/x"), (b"/%%", b"/%"),
    (b"/a/", b"/a/"), (b"/.", b"/"),
])
def test_url_decode(raw: bytes, decoded: bytes) -> None:
    assert http_url_decode(raw) == decoded


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600), st.integers(min_value=8, max_value=700))
def test_arbitrary_bytes_never_crash(data: bytes, buffer_size: int) -> None:
    for candidate in (data, b"GET /" + data + b" HTTP/1.1\r\n" + data + b"\r\n\r\n"):
        try:
            head = parse(candidate, buffer_size)
        except RemoteProtocolError:
            continue
        assert head is None or head.consumed <= min(len(candidate), buffer_size)
