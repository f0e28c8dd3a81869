"""The 4-byte uwsgi packet header: ``modifier1, u16le pktsize, modifier2``.

Models ``struct uwsgi_header`` (``uwsgi.h``) and the way every parser in uWSGI reads
it: the wire order is little-endian, pktsize counts only the payload that follows
(protocol.md §1). There is no magic number, version or checksum.

Left out: the host-order headers that a few 2.0 writers produce on big-endian hosts -
this module always emits little-endian, as protocol.md §1 recommends.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from ._errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "HEADER_SIZE",
    "MAX_PKTSIZE",
    "Header",
    "decode_header",
    "encode_header",
    "encode_packet",
]

HEADER_SIZE = 4
MAX_PKTSIZE = 0xFFFF

_HEADER = struct.Struct("<BHB")


class Header(NamedTuple):
    """A decoded packet header."""

    modifier1: int
    pktsize: int
    modifier2: int


def encode_header(modifier1: int, pktsize: int, modifier2: int) -> bytes:
    """Pack a header; every field must fit its width (u8, u16, u8)."""
    if not 0 <= modifier1 <= 0xFF or not 0 <= modifier2 <= 0xFF:
        raise LocalProtocolError(
            f"modifier1/modifier2 are single bytes (0..255), got {modifier1!r}/{modifier2!r}"
        )
    if not 0 <= pktsize <= MAX_PKTSIZE:
        raise LocalProtocolError(
            f"pktsize is a u16 (0..65535), got {pktsize!r}: payloads above 64 KiB must "
            "travel as a stream announced inside the payload"
        )
    return _HEADER.pack(modifier1, pktsize, modifier2)


def decode_header(data: bytes | bytearray | memoryview, offset: int = 0) -> Header:
    """Unpack the header at ``offset``; raises if fewer than 4 bytes are there."""
    if len(data) - offset < HEADER_SIZE:
        raise RemoteProtocolError(
            f"a uwsgi header is 4 bytes, only {max(0, len(data) - offset)} available"
        )
    return Header._make(_HEADER.unpack_from(data, offset))


def encode_packet(modifier1: int, modifier2: int, payload: bytes) -> bytes:
    """Header (with pktsize = ``len(payload)``) followed by the payload."""
    return encode_header(modifier1, len(payload), modifier2) + payload
