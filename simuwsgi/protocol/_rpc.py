"""modifier1 173: RPC requests and replies, including the HTTP bridge.

Models ``plugins/rpc/rpc_plugin.c`` (server) and ``core/rpc.c`` (``uwsgi_do_rpc``,
client), protocol.md §5.9:

* request ``[173, len(array), m2]`` + uwsgi array ``[function, arg1, ...]``; pktsize 0
  is refused ("Empty RPC request"); array rules of ``uwsgi_parse_array`` (at most 255
  items, empty items in the middle vanish, an empty last item kills the request);
* reply for modifier2 0: ``[173, n, 0]`` + result when n <= 65535, else
  ``[173, len(dict), 5]`` + ``{CONTENT_LENGTH: n}`` + n raw bytes; for every other
  modifier2 (1, 3 without libxml2, 4, 5, ...) the raw result with no header;
* modifier2 2 is the HTTP bridge: the payload is a request vars block, ``PATH_INFO``
  ``/func/a/b`` is split on ``/`` (empty segments vanish) and the reply is HTTP with
  ``Content-Length`` and ``Content-Type`` (``application/binary`` unless
  ``HTTP_ACCEPT`` is present and not ``*``/``*/*``); unknown function or empty
  result -> 404 page, empty PATH_INFO -> 500 page;
* uWSGI never sends an empty result: an unknown function, a ``b""`` result and a
  Python 3 ``str`` result all give no reply. uWSGI's client reads the header, then
  pktsize bytes, or for modifier2 5 the dict and ``CONTENT_LENGTH`` raw bytes; it
  never checks the reply's modifier1 and maps a zero-length result to ``None``.

Left out: the XML-RPC bridge (modifier2 3 in libxml2 builds): like the pyuwsgi wheel,
modifier2 3 is treated as a plain array request.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._errors import LocalProtocolError, RemoteProtocolError
from ._header import Header, decode_header, encode_header
from ._http import HttpResponse
from ._numbers import format_signed, str_num
from ._vars import (
    Pairs,
    decode_array,
    decode_dict,
    decode_request_vars,
    encode_array,
    encode_vars,
    last_value,
)

__all__ = [
    "RpcHttpRequest",
    "RpcRequest",
    "RpcResponse",
    "rpc_http_call",
    "rpc_http_response",
]

_FRAMED = 0
_HTTP_BRIDGE = 2
_BIG = 5


@dataclass(frozen=True, kw_only=True, slots=True)
class RpcRequest:
    """Call ``function(*args)``; ``modifier2`` 0 = framed reply, anything else raw."""

    function: bytes
    args: tuple[bytes, ...] = ()
    modifier2: int = 0


@dataclass(frozen=True, kw_only=True, slots=True)
class RpcHttpRequest:
    """modifier2 2 (HTTP bridge): a request vars block whose PATH_INFO names the call."""

    vars: Pairs

    def get(self, key: bytes) -> bytes | None:
        """The value of the last var named ``key`` (``uwsgi_get_var``)."""
        return last_value(self.vars, key)


@dataclass(frozen=True, kw_only=True, slots=True)
class RpcResponse:
    """Head of an RPC result; the result bytes follow as ``Data``.

    ``length`` is the result size (framed replies); ``None`` for a raw reply, whose
    end is the connection close.
    """

    length: int | None


def parse_rpc(header: Header, payload: bytes, *, max_vars: int, limit_post: int) -> (
    RpcRequest | RpcHttpRequest
):
    if not payload:
        raise RemoteProtocolError("Empty RPC request (modifier1 173, pktsize 0)")
    if header.modifier2 == _HTTP_BRIDGE:
        return RpcHttpRequest(
            vars=decode_request_vars(payload, max_vars=max_vars, limit_post=limit_post)
        )
    items = decode_array(payload, max_items=255)
    return RpcRequest(function=items[0], args=items[1:], modifier2=header.modifier2)


def encode_rpc_request(event: RpcRequest | RpcHttpRequest) -> bytes:
    if isinstance(event, RpcHttpRequest):
        payload = encode_vars(event.vars)
        modifier2 = _HTTP_BRIDGE
    else:
        payload = encode_array((event.function, *event.args))
        modifier2 = event.modifier2
    if len(payload) > 0xFFFF:
        raise LocalProtocolError(
            f"RPC packet length overflow: {len(payload)} bytes, must be <= 65535"
        )
    return encode_header(173, len(payload), modifier2) + payload


def encode_rpc_response(request: RpcRequest, event: RpcResponse) -> bytes:
    """Head bytes of the reply to ``request``; the result follows as ``length`` bytes."""
    length = event.length
    if length is None or length <= 0:
        raise LocalProtocolError(
            f"uWSGI never sends an empty or unsized RPC result (length={length!r}): "
            "an empty result is answered with NoReply()"
        )
    if request.modifier2 != _FRAMED:
        return b""
    if length <= 0xFFFF:
        return encode_header(173, length, _FRAMED)
    body = encode_vars(((b"CONTENT_LENGTH", format_signed(length)),))
    return encode_header(173, len(body), _BIG) + body


def read_rpc_response(
    request: RpcRequest, buf: bytearray, eof: bool
) -> tuple[RpcResponse, int, int | None] | None:
    """Client side: ``(head, bytes consumed, stream length or None)`` or need more."""
    if request.modifier2 != _FRAMED:
        return (RpcResponse(length=None), 0, None) if buf else None
    if len(buf) < 4:
        return None
    header = decode_header(buf)
    if header.modifier2 != _BIG:
        return RpcResponse(length=header.pktsize), 4, header.pktsize
    if len(buf) < 4 + header.pktsize:
        return None
    pairs = decode_dict(bytes(buf[4 : 4 + header.pktsize]), what="RPC modifier2 5 dict")
    value = last_value(pairs, b"CONTENT_LENGTH")
    size = str_num(value) if value is not None else 0
    return RpcResponse(length=size), 4 + header.pktsize, size


def rpc_http_call(request: RpcHttpRequest) -> tuple[bytes, tuple[bytes, ...]] | None:
    """Function name and arguments the HTTP bridge derives from ``PATH_INFO``.

    ``None`` means uWSGI answers the 500 page (PATH_INFO empty or only slashes).
    The path is cut at a NUL byte, as C string functions do.
    """
    path = request.get(b"PATH_INFO") or b""
    if not path:
        return None
    if path[:1] == b"/":
        path = path[1:]
    tokens = [t for t in path.split(b"\0", 1)[0].split(b"/") if t]
    if not tokens:
        return None
    return tokens[0], tuple(tokens[1:])


def rpc_http_response(result: bytes, *, http_accept: bytes | None) -> HttpResponse:
    """Head of the HTTP bridge reply for a non-empty ``result`` (body = ``result``)."""
    if not result:
        raise LocalProtocolError("an empty RPC result is answered with the 404 page")
    ctype = b"application/binary" if http_accept in (None, b"*/*", b"*") else http_accept
    assert ctype is not None
    return HttpResponse(
        status=b"200 OK",
        headers=((b"Content-Length", b"%d" % len(result)), (b"Content-Type", ctype)),
    )
