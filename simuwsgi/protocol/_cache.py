"""modifier1 111: the cache plugin's commands, as uWSGI 2.0.30 really answers them.

Models ``plugins/cache/cache.c`` (server) and the magic client of ``core/cache.c``
(``uwsgi_cache_prepare_magic_*``, ``cache_magic_send_and_manage``), protocol.md §5.8.
modifier2 selects the command:

====  =========================  ==============================================
 m2   request payload            reply
====  =========================  ==============================================
 0    raw key                    4 garbage bytes (low bytes of a heap pointer)
                                 + the value until close; nothing if missing
 1    array [key, value]         never (at most 3 items parsed, items 1-2 used)
 2    raw key                    never (delete)
 3,4  dict {key|get: K}           a shadowed length makes every lookup miss:
                                 ``get`` -> the 404 page, ``key`` -> nothing
 5    raw key                    4 garbage bytes, then the value until close
 6    cache name (empty=default)  ``[111, len, 7]`` + {items, blocksize} + raw image
 17   "magic" dict (+ value)     ``[111, len, 17]`` + {status: ok[, size, expires]}
                                 (+ value for get); every failure -> no reply
====  =========================  ==============================================

Every command except 6 does nothing on an empty payload. Magic dict keys: ``cmd``
(get/set/update/del/exists/clear), ``key``, ``size``, ``expires``, ``cache``; numbers
are read with ``uwsgi_str_num``, the last occurrence wins. uWSGI's own client sends
``size`` twice for set/update and always a ``cache`` key (possibly empty).

Left out: cache semantics (lookups, expiry, limits such as ``max_item_size``) - the
server decides and answers ``NoReply()`` - and the layout of the dump image.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._errors import LocalProtocolError, RemoteProtocolError
from ._header import Header, decode_header, encode_packet
from ._numbers import format_signed, str_num
from ._vars import (
    Pairs,
    decode_array,
    decode_dict,
    decode_dict_prefix,
    encode_array,
    encode_vars,
    last_value,
)

__all__ = [
    "CacheDelete",
    "CacheDictGet",
    "CacheDump",
    "CacheDumpResponse",
    "CacheGet",
    "CacheGetStream",
    "CacheMagicRequest",
    "CacheMagicResponse",
    "CacheSet",
    "CacheValue",
]

MAGIC = 17
DUMP_REPLY = 7


@dataclass(frozen=True, kw_only=True, slots=True)
class CacheGet:
    """m2 0: get ``key`` from the default cache."""

    key: bytes


@dataclass(frozen=True, kw_only=True, slots=True)
class CacheSet:
    """m2 1: set ``key`` (only if absent) in the default cache; never answered."""

    key: bytes
    value: bytes


@dataclass(frozen=True, kw_only=True, slots=True)
class CacheDelete:
    """m2 2: delete ``key`` from the default cache; never answered."""

    key: bytes


@dataclass(frozen=True, kw_only=True, slots=True)
class CacheDictGet:
    """m2 3/4: dict command ``{key: K}`` / ``{get: K}`` (broken in 2.0.30, see module doc).

    ``pairs`` are those uWSGI's dict parser delivered before any error; uWSGI acts on
    them in order even when ``valid`` is false.
    """

    pairs: Pairs
    modifier2: int = 4
    valid: bool = True


@dataclass(frozen=True, kw_only=True, slots=True)
class CacheGetStream:
    """m2 5: get ``key`` and stream it."""

    key: bytes


@dataclass(frozen=True, kw_only=True, slots=True)
class CacheDump:
    """m2 6: dump the cache named ``cache`` (empty = default), used by ``sync=``."""

    cache: bytes = b""


def _num_field(pairs: Pairs, key: bytes) -> int:
    """A numeric field of a cache dict, read as uWSGI's ``uwsgi_str_num`` does (0 if absent)."""
    value = last_value(pairs, key)
    return str_num(value) if value is not None else 0


@dataclass(frozen=True, kw_only=True, slots=True)
class CacheMagicRequest:
    """m2 17: the "magic" interface used by ``cache_*(..., "name@host:port")``.

    ``pairs`` is the dict exactly as on the wire; the properties read it like the
    server does. For ``set``/``update`` the value (``size`` bytes) follows as
    ``Data``. Build requests the way uWSGI's client does with the classmethods.
    """

    pairs: Pairs

    @property
    def command(self) -> bytes:
        return last_value(self.pairs, b"cmd") or b""

    @property
    def key(self) -> bytes:
        return last_value(self.pairs, b"key") or b""

    @property
    def size(self) -> int:
        return _num_field(self.pairs, b"size")

    @property
    def expires(self) -> int:
        return _num_field(self.pairs, b"expires")

    @property
    def cache(self) -> bytes:
        """Target cache name; empty means the server's default cache."""
        return last_value(self.pairs, b"cache") or b""

    @property
    def stream_length(self) -> int:
        """Bytes of value that follow the dict (``size`` for set/update, else 0)."""
        return self.size if self.command in (b"set", b"update") else 0

    @classmethod
    def get(cls, key: bytes, cache: bytes | None = None) -> CacheMagicRequest:
        return cls(pairs=_with_cache(((b"cmd", b"get"), (b"key", key)), cache))

    @classmethod
    def exists(cls, key: bytes, cache: bytes | None = None) -> CacheMagicRequest:
        return cls(pairs=_with_cache(((b"cmd", b"exists"), (b"key", key)), cache))

    @classmethod
    def delete(cls, key: bytes, cache: bytes | None = None) -> CacheMagicRequest:
        return cls(pairs=_with_cache(((b"cmd", b"del"), (b"key", key)), cache))

    @classmethod
    def clear(cls, cache: bytes | None = None) -> CacheMagicRequest:
        return cls(pairs=_with_cache(((b"cmd", b"clear"),), cache))

    @classmethod
    def set(
        cls, key: bytes, size: int, expires: int = 0, cache: bytes | None = None
    ) -> CacheMagicRequest:
        """What uWSGI's client sends for ``cache_set``: note the duplicated ``size``."""
        return cls(pairs=_set_pairs(b"set", key, size, expires, cache))

    @classmethod
    def update(
        cls, key: bytes, size: int, expires: int = 0, cache: bytes | None = None
    ) -> CacheMagicRequest:
        """What uWSGI's client sends for ``cache_update`` (and remote inc/dec/mul/div)."""
        return cls(pairs=_set_pairs(b"update", key, size, expires, cache))


def _with_cache(pairs: Pairs, cache: bytes | None) -> Pairs:
    return pairs if cache is None else (*pairs, (b"cache", cache))


def _set_pairs(cmd: bytes, key: bytes, size: int, expires: int, cache: bytes | None) -> Pairs:
    num = format_signed(size)
    pairs: Pairs = ((b"cmd", cmd), (b"key", key), (b"size", num))
    if expires > 0:
        pairs += ((b"expires", format_signed(expires)),)
    return _with_cache((*pairs, (b"size", num)), cache)


@dataclass(frozen=True, kw_only=True, slots=True)
class CacheMagicResponse:
    """Reply to a magic request: ``[111, len, 17]`` + dict (+ value for ``get``)."""

    pairs: Pairs

    @property
    def status(self) -> bytes:
        return last_value(self.pairs, b"status") or b""

    @property
    def size(self) -> int:
        return _num_field(self.pairs, b"size")

    @property
    def expires(self) -> int:
        """Absolute unix time of expiry (0 = never), as the server reports it."""
        return _num_field(self.pairs, b"expires")

    @classmethod
    def ok(cls, size: int | None = None, expires: int = 0) -> CacheMagicResponse:
        """The only reply uWSGI sends: ``{status: ok}``, for ``get`` plus size/expires."""
        pairs: Pairs = ((b"status", b"ok"),)
        if size is not None:
            pairs += ((b"size", format_signed(size)),)
            if expires:
                pairs += ((b"expires", format_signed(expires)),)
        return cls(pairs=pairs)


@dataclass(frozen=True, kw_only=True, slots=True)
class CacheValue:
    """Reply to m2 0/5: 4 ``prefix`` bytes, then the value as ``Data`` until close.

    In 2.0.30 the prefix is the low 4 bytes of a heap address (a bug: the intended
    header was ``[111, n, 0]`` / ``[111, 0, 1|0]``); clients must skip it. m2 5 sends
    the prefix alone for a missing key.
    """

    prefix: bytes = b"\x00\x00\x00\x00"


@dataclass(frozen=True, kw_only=True, slots=True)
class CacheDumpResponse:
    """Reply to m2 6: ``[111, len, 7]`` + dict; the raw cache image follows until close."""

    pairs: Pairs

    @property
    def items(self) -> int:
        value = last_value(self.pairs, b"items")
        return str_num(value) if value is not None else 0

    @property
    def blocksize(self) -> int:
        value = last_value(self.pairs, b"blocksize")
        return str_num(value) if value is not None else 0

    @classmethod
    def of(cls, items: int, blocksize: int) -> CacheDumpResponse:
        pairs = ((b"items", format_signed(items)), (b"blocksize", format_signed(blocksize)))
        return cls(pairs=pairs)


CacheRequest = (
    CacheGet
    | CacheSet
    | CacheDelete
    | CacheDictGet
    | CacheGetStream
    | CacheDump
    | CacheMagicRequest
)


def parse_cache(header: Header, payload: bytes) -> CacheRequest | None:
    """Server side; ``None`` means "not a cache command" (an unknown modifier2)."""
    m2 = header.modifier2
    if m2 == 6:
        return CacheDump(cache=payload)
    if m2 not in (0, 1, 2, 3, 4, 5, MAGIC):
        return None
    if not payload:
        raise RemoteProtocolError(
            f"empty cache request (modifier2 {m2}, pktsize 0): uWSGI does nothing and closes"
        )
    if m2 == 0:
        return CacheGet(key=payload)
    if m2 == 5:
        return CacheGetStream(key=payload)
    if m2 == 2:
        return CacheDelete(key=payload)
    if m2 == 1:
        items = decode_array(payload, max_items=3)
        if len(items) < 2:
            raise RemoteProtocolError(
                f"simple cache set needs an array [key, value], got {len(items)} item(s)"
            )
        return CacheSet(key=items[0], value=items[1])
    if m2 == MAGIC:
        return CacheMagicRequest(pairs=decode_dict(payload, what="cache magic dict"))
    pairs, error = decode_dict_prefix(payload)
    return CacheDictGet(pairs=pairs, modifier2=m2, valid=error is None)


def encode_cache_request(event: CacheRequest) -> tuple[bytes, int]:
    """Client side: packet bytes and the length of the value that must follow."""
    if isinstance(event, CacheGet):
        return encode_packet(111, 0, event.key), 0
    if isinstance(event, CacheGetStream):
        return encode_packet(111, 5, event.key), 0
    if isinstance(event, CacheDelete):
        return encode_packet(111, 2, event.key), 0
    if isinstance(event, CacheSet):
        return encode_packet(111, 1, encode_array((event.key, event.value))), 0
    if isinstance(event, CacheDump):
        return encode_packet(111, 6, event.cache), 0
    if isinstance(event, CacheDictGet):
        return encode_packet(111, event.modifier2, encode_vars(event.pairs)), 0
    return encode_packet(111, MAGIC, encode_vars(event.pairs)), event.stream_length


def encode_cache_reply(
    request: CacheRequest, event: CacheValue | CacheMagicResponse | CacheDumpResponse
) -> tuple[bytes, int | None]:
    """Server side: head bytes and the stream length (``None`` = until close)."""
    if isinstance(event, CacheValue):
        if not isinstance(event.prefix, bytes) or len(event.prefix) != 4:
            raise LocalProtocolError(f"CacheValue.prefix must be 4 bytes, got {event.prefix!r}")
        return event.prefix, None
    if isinstance(event, CacheDumpResponse):
        return encode_packet(111, DUMP_REPLY, encode_vars(event.pairs)), None
    assert isinstance(request, CacheMagicRequest)
    stream = event.size if request.command == b"get" and event.status == b"ok" else 0
    return encode_packet(111, MAGIC, encode_vars(event.pairs)), stream


def read_cache_reply(
    request: CacheRequest, buf: bytearray, eof: bool
) -> tuple[CacheValue | CacheMagicResponse | CacheDumpResponse, int, int | None] | None:
    """Client side: ``(head, consumed, stream length or None)`` or need more bytes."""
    if isinstance(request, (CacheGet, CacheGetStream)):
        if len(buf) < 4:
            return None
        return CacheValue(prefix=bytes(buf[:4])), 4, None
    if len(buf) < 4:
        return None
    header = decode_header(buf)
    if len(buf) < 4 + header.pktsize:
        return None
    pairs = decode_dict(bytes(buf[4 : 4 + header.pktsize]), what="cache reply dict")
    if isinstance(request, CacheDump):
        return CacheDumpResponse(pairs=pairs), 4 + header.pktsize, None
    reply = CacheMagicResponse(pairs=pairs)
    assert isinstance(request, CacheMagicRequest)
    stream = 0
    if request.command == b"get" and reply.status == b"ok":
        stream = reply.size
    return reply, 4 + header.pktsize, stream
