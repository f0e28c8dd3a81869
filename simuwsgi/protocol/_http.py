"""The raw HTTP replies uWSGI writes on a uwsgi socket (no uwsgi header).

Models ``proto/base.c`` (``uwsgi_proto_base_prepare_headers`` and
``uwsgi_proto_base_add_header``) and ``core/errors.c`` (``uwsgi_404``, ``uwsgi_500``):

* status line = the request's ``SERVER_PROTOCOL`` (last occurrence, verbatim) + space
  + the status string the app gave, or ``HTTP/1.0`` when the var is absent or empty;
* each header is written ``Name: value\\r\\n`` exactly as given, a header with an empty
  name is written as a raw line; then ``\\r\\n`` and the body;
* uWSGI adds **no** header of its own (no Content-Length, Date, Server, Connection);
  the end of the response is the server closing the connection.

Left out: ``--cgi-mode`` (``Status:`` first line) and the HTTP *request* parser of
``--http-socket``; this module only frames and parses the reply head.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ._errors import LocalProtocolError, RemoteProtocolError
from ._vars import last_value

__all__ = [
    "MAX_HTTP_HEAD",
    "HttpResponse",
    "encode_http_head",
    "internal_error_response",
    "not_found_response",
    "read_http_head",
    "response_protocol",
]

MAX_HTTP_HEAD = 65536
"""A client refuses a reply head (status line + headers) larger than this."""

Headers = tuple[tuple[bytes, bytes], ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class HttpResponse:
    """Head of a raw HTTP reply (WSGI requests, RPC HTTP bridge, cache 404 page).

    ``status`` is everything after the protocol, e.g. ``b"200 OK"``. When sending,
    ``protocol=None`` lets the connection derive it from the request like uWSGI does;
    a received head always has the protocol that was on the wire.
    """

    status: bytes
    headers: Headers = ()
    protocol: bytes | None = None

    @property
    def status_code(self) -> int | None:
        """The numeric status (``200``), or ``None`` if it does not start with digits."""
        code = self.status.split(b" ", 1)[0]
        return int(code) if code.isdigit() else None


def response_protocol(vars: Sequence[tuple[bytes, bytes]] | None) -> bytes:
    """The status-line protocol uWSGI uses for a request with these vars."""
    proto = last_value(vars, b"SERVER_PROTOCOL") if vars else None
    return proto if proto else b"HTTP/1.0"


def encode_http_head(response: HttpResponse, protocol: bytes) -> bytes:
    """Status line and headers, terminated by the empty line."""
    proto = response.protocol if response.protocol is not None else protocol
    if not isinstance(response.status, bytes) or not isinstance(proto, bytes):
        raise LocalProtocolError(
            f"HTTP status and protocol must be bytes, got {response.status!r}/{proto!r}"
        )
    parts = [proto, b" ", response.status, b"\r\n"]
    for name, value in response.headers:
        if not isinstance(name, bytes) or not isinstance(value, bytes):
            raise LocalProtocolError(f"HTTP headers must be bytes pairs, got {(name, value)!r}")
        if name:
            parts += (name, b": ", value, b"\r\n")
        else:
            parts += (value, b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


def read_http_head(buf: bytes | bytearray, eof: bool) -> tuple[HttpResponse, int] | None:
    """Parse a reply head from the start of ``buf``: ``(head, bytes consumed)``.

    Returns ``None`` if more bytes are needed. A missing blank line at EOF or a head
    larger than :data:`MAX_HTTP_HEAD` is a :class:`RemoteProtocolError`.
    """
    end = buf.find(b"\r\n\r\n", 0, MAX_HTTP_HEAD + 4)
    if end < 0:
        if len(buf) >= MAX_HTTP_HEAD + 4:
            raise RemoteProtocolError(
                f"HTTP reply head exceeds {MAX_HTTP_HEAD} bytes without a blank line"
            )
        if eof:
            raise RemoteProtocolError(
                f"connection closed inside the HTTP reply head ({bytes(buf[:80])!r}...)"
            )
        return None
    lines = bytes(buf[:end]).split(b"\r\n")
    protocol, sep, status = lines[0].partition(b" ")
    if not sep:
        raise RemoteProtocolError(f"HTTP status line has no space: {lines[0]!r}")
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            headers.append((b"", line))
        else:
            headers.append((name, value.lstrip(b" \t")))
    return HttpResponse(status=status, headers=tuple(headers), protocol=protocol), end + 4


def _page(status: bytes, body: bytes) -> tuple[HttpResponse, bytes]:
    head = HttpResponse(
        status=status,
        headers=((b"Connection", b"close"), (b"Content-Type", b"text/plain")),
    )
    return head, body


def not_found_response() -> tuple[HttpResponse, bytes]:
    """``uwsgi_404``: head and body of uWSGI's built-in 404 page."""
    return _page(b"404 Not Found", b"Not Found")


def internal_error_response() -> tuple[HttpResponse, bytes]:
    """``uwsgi_500``: head and body of uWSGI's built-in 500 page."""
    return _page(b"500 Internal Server Error", b"Internal Server Error")
