"""The request side of ``--http-socket``: raw HTTP in, the uwsgi vars uWSGI builds.

Models ``proto/http.c`` (``uwsgi_proto_http_parser``, ``http_parse``,
``http_header_to_cgi``, ``http_add_uwsgi_header``), ``proto/base.c``
(``proto_base_add_uwsgi_var``) and ``http_url_decode`` (``core/utils.c``):

* the head must end (``\\r\\n\\r\\n``) within the first ``--buffer-size`` bytes, else
  ``invalid HTTP request size (max N)...skip`` and close; bytes after the head are the
  start of the body;
* vars, in this order: ``REQUEST_METHOD`` (up to the first space), then for a URI
  with ``?``: ``PATH_INFO`` (url-decoded, dot segments resolved), ``REQUEST_URI``,
  ``QUERY_STRING``; without: ``REQUEST_URI``, ``PATH_INFO``, ``QUERY_STRING`` (empty);
  ``SERVER_PROTOCOL`` (up to ``\\r``, which must be followed by ``\\n``),
  ``SCRIPT_NAME`` (empty), ``SERVER_NAME`` (the host name), ``SERVER_PORT`` (after the
  last ``:`` of the socket name, else ``80``), ``REMOTE_ADDR``; then the headers in
  order of first appearance, names upper-cased with ``-`` -> ``_`` and prefixed
  ``HTTP_`` except ``CONTENT_LENGTH``/``CONTENT_TYPE``; repeated headers are merged
  with ``", "``; a continuation line stays inside the value, ``\\r\\n`` included; a
  value starts at the first non-space after ``:`` and keeps trailing blanks;
* a header line without ``:`` is ``invalid HTTP request`` (close); a var that does
  not fit the buffer is dropped with a warning, a header that does not fit kills the
  request.

Left out: the PROXY protocol (``--enable-proxy-protocol``), HTTPS vars, chunked
request bodies, ``--manage-script-name`` and ``--http-modifier1``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._errors import RemoteProtocolError
from ._wsgi import Request

__all__ = ["HttpRequestHead", "http_url_decode", "parse_http_request"]

_HEX = {c: int(chr(c), 16) for c in b"0123456789abcdefABCDEF"}


@dataclass(frozen=True, kw_only=True, slots=True)
class HttpRequestHead:
    """A parsed ``--http-socket`` request head.

    ``request`` carries the vars uWSGI built (modifier1 0), ``consumed`` is the length
    of the head including the blank line, ``warnings`` the lines uWSGI logged while
    building the vars.
    """

    request: Request
    consumed: int
    warnings: tuple[str, ...] = ()


def _hex2num(a: int, b: int) -> int:
    """``hex2num``: a ``char``; an invalid digit makes the whole byte 0."""
    if a not in _HEX or b not in _HEX:
        return 0
    return (_HEX[a] << 4 | _HEX[b]) & 0xFF


def http_url_decode(path: bytes) -> bytes:
    """``http_url_decode``: percent-decoding and ``.``/``..`` segment removal."""
    zero, pct1, pct2, slash, dot, dotdot = range(6)
    out = bytearray()
    status = zero
    no_slash = False
    if path and path[0] != 0x2F:
        status = slash
        no_slash = True
    first = 0
    for i, c in enumerate(path):
        if c == 0x23:  # '#'
            break
        if status == zero:
            if c == 0x25:
                status = pct1
            elif c == 0x2F:
                status = slash
            else:
                out.append(c)
        elif status == pct1:
            if c == 0x25:
                out.append(c)
                status = zero
            else:
                first = c
                status = pct2
        elif status == pct2:
            out.append(_hex2num(first, c))
            status = zero
        elif status == slash:
            if c == 0x2E:
                status = dot
                continue
            if i > 0 or not no_slash:
                out.append(0x2F)
            if c == 0x25:
                status = pct1
            elif c == 0x2F:
                status = slash
            else:
                out.append(c)
                status = zero
        elif status == dot:
            if c == 0x2E:
                status = dotdot
                continue
            if c == 0x2F:
                status = slash
                continue
            if i > 1:
                out.append(0x2F)
            out.append(0x2E)
            if c == 0x25:
                status = pct1
            else:
                out.append(c)
                status = zero
        else:  # dotdot
            if c == 0x2F:
                cut = len(out)
                while cut:
                    cut -= 1
                    if out[cut] == 0x2F:
                        break
                del out[cut:]
                status = slash
                continue
            if i > 2:
                out.append(0x2F)
            out += b".."
            if c == 0x25:
                status = pct1
            else:
                out.append(c)
                status = zero
    if status in (slash, dot):
        out.append(0x2F)
    elif status == dotdot:
        cut = len(out)
        while cut and out[cut - 1] != 0x2F:
            cut -= 1
        del out[cut:]
    return bytes(out)


def _cgi_header(line: bytes) -> tuple[bytes, bytes, bool] | None:
    """``http_header_to_cgi``: (key, value, needs HTTP_ prefix) or None (no ``:``)."""
    colon = line.find(b":")
    if colon <= 0:
        return None
    key = line[:colon].upper().replace(b"-", b"_")
    value = line[colon + 1 :].lstrip(b" ")
    return key, value, key not in (b"CONTENT_LENGTH", b"CONTENT_TYPE")


def parse_http_request(
    data: bytes | bytearray,
    *,
    hostname: bytes,
    server_port: bytes,
    remote_addr: bytes,
    buffer_size: int = 4096,
) -> HttpRequestHead | None:
    """The request head at the start of ``data``, or ``None`` if more bytes are needed.

    Raises :class:`RemoteProtocolError` where uWSGI closes the connection without a
    reply (head larger than ``buffer_size``, malformed request line or header, a
    header that does not fit the vars buffer).
    """
    end = bytes(data[:buffer_size]).find(b"\r\n\r\n")
    if end < 0:
        if len(data) >= buffer_size:
            raise RemoteProtocolError(f"invalid HTTP request size (max {buffer_size})...skip")
        return None
    watermark = end + 4
    head = bytes(data[:watermark])
    builder = _VarsBuilder(buffer_size)
    pos = _request_line(head, watermark, builder, buffer_size)
    builder.add(b"SCRIPT_NAME", b"")
    builder.add(b"SERVER_NAME", hostname)
    builder.add(b"SERVER_PORT", server_port)
    builder.add(b"REMOTE_ADDR", remote_addr)
    _headers(head, pos, watermark, builder)
    return HttpRequestHead(
        request=Request(vars=tuple(builder.pairs)),
        consumed=watermark,
        warnings=tuple(builder.warnings),
    )


class _VarsBuilder:
    """``proto_base_add_uwsgi_var``: vars that do not fit the buffer are dropped."""

    def __init__(self, buffer_size: int) -> None:
        self.buffer_size = buffer_size
        self.size = 0
        self.pairs: list[tuple[bytes, bytes]] = []
        self.warnings: list[str] = []

    def fits(self, key: bytes, value: bytes) -> bool:
        return self.size + len(key) + len(value) + 4 < self.buffer_size

    def add(self, key: bytes, value: bytes) -> bool:
        if not self.fits(key, value):
            self.warnings.append(
                f"[WARNING] unable to add {key.decode('latin-1')}={value.decode('latin-1')} "
                "to uwsgi packet, consider increasing buffer size"
            )
            return False
        self.size += len(key) + len(value) + 4
        self.pairs.append((key, value))
        return True


def _request_line(head: bytes, watermark: int, vars: _VarsBuilder, buffer_size: int) -> int:
    pos = 0
    space = head.find(b" ", 0, watermark)
    if space < 0:
        return watermark
    vars.add(b"REQUEST_METHOD", head[:space])
    pos = base = space + 1
    query: int | None = None
    while pos < watermark:
        c = head[pos]
        if c == 0x3F and query is None:  # '?'
            _path_info(head[base:pos], watermark, buffer_size, vars)
            query = pos + 1
        elif c == 0x20:
            vars.add(b"REQUEST_URI", head[base:pos])
            if query is None:
                _path_info(head[base:pos], watermark, buffer_size, vars)
                vars.add(b"QUERY_STRING", b"")
            else:
                vars.add(b"QUERY_STRING", head[query:pos])
            pos += 1
            break
        pos += 1
    base = pos
    while pos < watermark:
        if head[pos] == 0x0D:
            if pos + 1 >= watermark or head[pos + 1] != 0x0A:
                raise RemoteProtocolError("invalid HTTP request line: \\r not followed by \\n")
            vars.add(b"SERVER_PROTOCOL", head[base:pos])
            return pos + 2
        pos += 1
    return pos


def _path_info(raw: bytes, watermark: int, buffer_size: int, vars: _VarsBuilder) -> None:
    if watermark + len(raw) >= buffer_size:
        raise RemoteProtocolError(
            "not enough space in wsgi_req http proto_parser_buf to decode PATH_INFO, "
            "consider tuning it with --buffer-size"
        )
    vars.add(b"PATH_INFO", http_url_decode(raw))


def _headers(head: bytes, pos: int, watermark: int, vars: _VarsBuilder) -> None:
    merged: dict[bytes, list[bytes]] = {}
    prefixed: dict[bytes, bool] = {}
    base = pos
    while pos < watermark:
        if head[pos] == 0x0D:
            if pos + 1 >= watermark or head[pos + 1] != 0x0A:
                raise RemoteProtocolError("invalid HTTP request: \\r not followed by \\n")
            if pos + 2 < watermark and head[pos + 2] in (0x20, 0x09):
                pos += 2  # a continuation line: it stays in the value
                continue
            if pos == base:
                break
            parsed = _cgi_header(head[base:pos])
            if parsed is None:
                raise RemoteProtocolError(f"invalid HTTP request: header {head[base:pos]!r}")
            key, value, prefix = parsed
            if key in merged:
                merged[key].append(value)
            else:
                merged[key] = [value]
                prefixed[key] = prefix
            pos += 1
            base = pos + 1
        pos += 1
    for key, values in merged.items():
        name = b"HTTP_" + key if prefixed[key] else key
        if not vars.add(name, b", ".join(values)):
            raise RemoteProtocolError(
                f"invalid HTTP request: header {name.decode('latin-1')} does not fit the "
                "buffer (--buffer-size)"
            )
