"""Cache replication datagrams (modifier1 111, modifier2 10/11, UDP).

Models ``core/cache.c``: ``cache_send_udp_command`` (sender: after every successful
*local* set/update ``[111, len, 10]`` + array ``[key, value, expires]`` with expires as
``%llu`` decimal, after every successful local delete ``[111, len, 11]`` + ``[key]``)
and ``cache_udp_server_loop`` (receiver of ``--cache2 ...,udp=ADDR``), protocol.md §5.8
and cluster.md §5. The receiver's checks are reproduced byte for byte, including its
bug: it requires ``4 + keylen <= pktsize``, which no delete datagram satisfies, so
**every delete is dropped** (``drop_deletes=False`` decodes them anyway). Nothing is
ever sent back over UDP.

Left out: applying the update (absolute expiry, UPDATE|LOCAL flags) - cache business.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._errors import RemoteProtocolError
from ._header import encode_packet
from ._numbers import format_unsigned, str_num
from ._vars import encode_array

__all__ = [
    "CacheUdpDelete",
    "CacheUdpUpdate",
    "decode_cache_udp_datagram",
    "encode_cache_udp_datagram",
]

MAX_DATAGRAM = 0xFFFF


@dataclass(frozen=True, kw_only=True, slots=True)
class CacheUdpUpdate:
    """cmd 10: set/update ``key`` to ``value``; ``expires`` as given by the writer.

    The receiver applies it as an update with ``expires`` taken as an *absolute*
    unix time (0 = never).
    """

    key: bytes
    value: bytes
    expires: int = 0


@dataclass(frozen=True, kw_only=True, slots=True)
class CacheUdpDelete:
    """cmd 11: delete ``key`` (dropped by every 2.0.30 receiver)."""

    key: bytes


def encode_cache_udp_datagram(event: CacheUdpUpdate | CacheUdpDelete) -> bytes:
    """The datagram a writer with ``nodes=`` sends after a successful local write."""
    if isinstance(event, CacheUdpDelete):
        return encode_packet(111, 11, encode_array((event.key,)))
    # vallen is narrowed to 16 bits by the sender; a simulator should not go there.
    payload = encode_array((event.key, event.value, format_unsigned(event.expires)))
    return encode_packet(111, 10, payload)


def _u16(buf: bytes, at: int) -> int:
    return buf[at] | buf[at + 1] << 8 if at + 1 < len(buf) else 0


def decode_cache_udp_datagram(
    datagram: bytes, *, drop_deletes: bool = True
) -> CacheUdpUpdate | CacheUdpDelete:
    """Decode a datagram as ``cache_udp_server_loop`` would, or raise why it is dropped."""
    buf = datagram[:MAX_DATAGRAM]
    size = len(buf)
    if size < 4 or buf[0] != 111:
        raise RemoteProtocolError(
            f"dropped: not a cache datagram (first bytes {buf[:4]!r}, modifier1 must be 111)"
        )
    pktsize = buf[1] | buf[2] << 8
    if pktsize != size - 4:
        raise RemoteProtocolError(
            f"dropped: pktsize {pktsize} differs from the datagram payload ({size - 4} bytes)"
        )
    cmd = buf[3]
    keylen = _u16(buf, 4)
    key = buf[6 : 6 + keylen]
    if cmd == 11 and not drop_deletes and 2 + keylen == pktsize:
        return CacheUdpDelete(key=key)
    if 4 + keylen > pktsize:
        raise RemoteProtocolError(
            f"dropped: the receiver requires 4 + keylen ({4 + keylen}) <= pktsize ({pktsize})"
            + (" - uWSGI 2.0.30 drops every delete this way" if cmd == 11 else "")
        )
    if cmd == 11:
        return CacheUdpDelete(key=key)
    if cmd != 10:
        raise RemoteProtocolError(f"dropped: unknown cache udp command {cmd} (10 = set, 11 = del)")
    vallen = _u16(buf, 6 + keylen)
    if 4 + keylen + vallen > pktsize:
        raise RemoteProtocolError(
            f"dropped: value of {vallen} bytes overruns the datagram (pktsize {pktsize})"
        )
    value = buf[8 + keylen : 8 + keylen + vallen]
    expires = 0
    if 2 + keylen + 2 + vallen + 2 < pktsize:
        eslen = _u16(buf, 8 + keylen + vallen)
        if 6 + keylen + vallen + eslen > pktsize:
            raise RemoteProtocolError(
                f"dropped: expires of {eslen} bytes overruns the datagram (pktsize {pktsize})"
            )
        start = 10 + keylen + vallen
        expires = str_num(buf[start : start + eslen])
    return CacheUdpUpdate(key=key, value=value, expires=expires)
