"""Routing of packets and events to the per-modifier codecs.

Server side, a request is routed by modifier1 exactly like uWSGI's plugin table
(``core/utils.c``, ``wsgi_req_recv``), then by modifier2 inside the cache and RPC
plugins. Which reply heads may answer which request is the table ``REPLIES``;
``RawResponse`` (write raw bytes) and ``NoReply`` (close without a byte) can answer
anything. Client side, the request that was sent decides how the reply is read
(uWSGI's own clients never look at the reply's modifier1).

Left out: which plugins a server has loaded; the codec decodes every known format
and the server answers ``NoReply()`` for what it does not serve.
"""

from __future__ import annotations

from ._cache import (
    CacheDelete,
    CacheDictGet,
    CacheDump,
    CacheDumpResponse,
    CacheGet,
    CacheGetStream,
    CacheMagicRequest,
    CacheMagicResponse,
    CacheSet,
    CacheValue,
    encode_cache_reply,
    encode_cache_request,
    parse_cache,
    read_cache_reply,
)
from ._control import (
    Ack,
    Echo,
    Ping,
    Pong,
    SignalRequest,
    SpoolRequest,
    UnknownRequest,
    encode_ack,
    encode_echo,
    encode_ping,
    encode_pong,
    encode_signal,
    encode_spool,
    encode_unknown,
    parse_spool_request,
    read_ack,
    read_pong,
)
from ._errors import LocalProtocolError
from ._events import RawResponse
from ._header import Header
from ._http import HttpResponse, encode_http_head, read_http_head, response_protocol
from ._rpc import (
    RpcHttpRequest,
    RpcRequest,
    RpcResponse,
    encode_rpc_request,
    encode_rpc_response,
    parse_rpc,
    read_rpc_response,
)
from ._wsgi import Request, body_length, encode_request_head, parse_request

__all__ = [
    "REPLIES",
    "ReplyEvent",
    "RequestEvent",
    "encode_reply",
    "encode_request",
    "parse_packet",
    "read_reply",
]

RequestEvent = (
    Request
    | RpcRequest
    | RpcHttpRequest
    | CacheGet
    | CacheSet
    | CacheDelete
    | CacheDictGet
    | CacheGetStream
    | CacheDump
    | CacheMagicRequest
    | Ping
    | Echo
    | SignalRequest
    | SpoolRequest
    | UnknownRequest
)
ReplyEvent = (
    HttpResponse
    | RpcResponse
    | Pong
    | Ack
    | CacheValue
    | CacheMagicResponse
    | CacheDumpResponse
    | RawResponse
)

REQUEST_TYPES: tuple[type, ...] = RequestEvent.__args__
REPLY_TYPES: tuple[type, ...] = ReplyEvent.__args__

REPLIES: dict[type, tuple[type, ...]] = {
    Request: (HttpResponse,),
    RpcHttpRequest: (HttpResponse,),
    CacheDictGet: (HttpResponse,),
    RpcRequest: (RpcResponse,),
    Ping: (Pong,),
    SignalRequest: (Ack,),
    SpoolRequest: (Ack,),
    CacheGet: (CacheValue,),
    CacheGetStream: (CacheValue,),
    CacheMagicRequest: (CacheMagicResponse,),
    CacheDump: (CacheDumpResponse,),
    CacheSet: (),
    CacheDelete: (),
    Echo: (),
    UnknownRequest: (),
}
"""Reply heads a server may send for each request type (besides RawResponse/NoReply)."""


def parse_packet(
    header: Header,
    payload: bytes,
    *,
    max_vars: int,
    limit_post: int,
    request_modifiers: frozenset[int],
) -> tuple[RequestEvent, int]:
    """Server side: the request head event and the length of the stream after it."""
    m1 = header.modifier1
    if m1 in request_modifiers:
        request = parse_request(header, payload, max_vars=max_vars, limit_post=limit_post)
        return request, body_length(request, payload)
    if m1 == 173:
        return parse_rpc(header, payload, max_vars=max_vars, limit_post=limit_post), 0
    if m1 == 111:
        cache = parse_cache(header, payload)
        if cache is None:
            return UnknownRequest(modifier1=111, modifier2=header.modifier2, payload=payload), 0
        if isinstance(cache, CacheMagicRequest):
            return cache, cache.stream_length
        return cache, 0
    if m1 == 100:
        return Ping(), 0
    if m1 == 101:
        return Echo(payload=payload, modifier2=header.modifier2), 0
    if m1 == 110:
        return SignalRequest(signum=header.modifier2), 0
    if m1 == 17:
        return parse_spool_request(header, payload), 0
    return UnknownRequest(modifier1=m1, modifier2=header.modifier2, payload=payload), 0


def encode_request(event: RequestEvent) -> tuple[bytes, int]:
    """Client side: bytes of a request head and the stream length that must follow."""
    if isinstance(event, Request):
        return encode_request_head(event)
    if isinstance(event, (RpcRequest, RpcHttpRequest)):
        return encode_rpc_request(event), 0
    if isinstance(event, Ping):
        return encode_ping(), 0
    if isinstance(event, SignalRequest):
        return encode_signal(event), 0
    if isinstance(event, SpoolRequest):
        return encode_spool(event), 0
    if isinstance(event, Echo):
        return encode_echo(event), 0
    if isinstance(event, UnknownRequest):
        return encode_unknown(event), 0
    return encode_cache_request(event)


def encode_reply(request: RequestEvent, event: ReplyEvent) -> tuple[bytes, int | None]:
    """Server side: bytes of a reply head and its stream length (``None`` = until close)."""
    if isinstance(event, RawResponse):
        return b"", None
    if not isinstance(event, REPLIES[type(request)]):
        allowed = ", ".join(t.__name__ for t in REPLIES[type(request)] + (RawResponse,))
        raise LocalProtocolError(
            f"a {type(event).__name__} cannot answer a {type(request).__name__}; "
            f"allowed: {allowed} or NoReply"
        )
    if isinstance(event, HttpResponse):
        vars = request.vars if isinstance(request, (Request, RpcHttpRequest)) else None
        return encode_http_head(event, response_protocol(vars)), None
    if isinstance(event, RpcResponse):
        assert isinstance(request, RpcRequest)
        return encode_rpc_response(request, event), event.length
    if isinstance(event, Pong):
        return encode_pong(event), 0
    if isinstance(event, Ack):
        return encode_ack(event), 0
    return encode_cache_reply(request, event)  # type: ignore[arg-type]


def _read_http(buf: bytearray, eof: bool) -> tuple[HttpResponse, int, None] | None:
    result = read_http_head(buf, eof)
    return None if result is None else (result[0], result[1], None)


def _read_raw(buf: bytearray, eof: bool) -> tuple[RawResponse, int, None] | None:
    return (RawResponse(), 0, None) if buf else None


def read_reply(
    request: RequestEvent, buf: bytearray, eof: bool
) -> tuple[ReplyEvent, int, int | None] | None:
    """Client side: decode the reply head to ``request`` from the start of ``buf``."""
    if isinstance(request, (Request, RpcHttpRequest, CacheDictGet)):
        return _read_http(buf, eof)
    if isinstance(request, RpcRequest):
        return read_rpc_response(request, buf, eof)
    if isinstance(request, Ping):
        return read_pong(buf, eof)
    if isinstance(request, (SignalRequest, SpoolRequest)):
        return read_ack(buf, eof)
    if isinstance(request, (CacheGet, CacheGetStream, CacheDump, CacheMagicRequest)):
        return read_cache_reply(request, buf, eof)
    return _read_raw(buf, eof)
