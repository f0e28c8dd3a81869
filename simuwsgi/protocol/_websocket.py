"""WebSocket frames as uWSGI 2.0.30 writes and reads them (``core/websockets.c``), sans-IO.

uWSGI writes unmasked frames with FIN set: the opcode byte (``0x81`` text, ``0x82``
binary; ``0x89`` ping, ``0x8A`` pong and ``0x88`` close with an empty payload), the
length in 7 bits, or 126 + 16 bits, or 127 + 64 bits (big-endian), then the payload.

``FrameReader`` is its reader's state machine over the bytes the client sent: a header
of 2 bytes, then the extended length, then the mask if the frame has one, then the
payload, unmasked. What it does with each frame:

* opcodes 0, 1, 2 (continuation, text, binary) carry a message; a frame without FIN
  starts or extends the process's *continuation buffer* (one per process, as uWSGI's
  is global) and the read answers a single NUL byte; the FIN frame answers the whole
  message; a continuation (0) with no buffer is an error
  (``Error continuation with empty previous buffer``, no newline);
* 8 (close): the close is answered with a close frame and the read fails;
* 9 (ping): answered with a pong; 10 (pong): remembered (``last_pong``);
* other opcodes are skipped; nothing checks the RSV bits or the FIN of control frames;
* a 16- or 64-bit length over ``--websockets-max-size`` KiB (1024 by default) is an
  error, logged with the request (the 7-bit lengths are never checked).

``read()`` answers one of the ``Frame`` events or ``NEED_MORE``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = ["CLOSE", "NEED_MORE", "PING", "PONG", "Frame", "FrameReader", "WebSocketError",
           "client_frame", "server_frame"]

#: The three control frames uWSGI writes (``uwsgi_websockets_init``).
PING = b"\x89\x00"
PONG = b"\x8a\x00"
CLOSE = b"\x88\x00"

#: ``read()``: the bytes fed so far end inside a frame.
NEED_MORE = None


class WebSocketError(ValueError):
    """The frame cannot be read; ``log`` is uWSGI's line for it, if it writes one, and
    ``about_request`` whether uWSGI starts it with the request (``[uwsgi-websocket]
    "GET /ws" (addr) ...``)."""

    def __init__(self, message: str, log: str, *, about_request: bool) -> None:
        super().__init__(message)
        self.log = log
        self.about_request = about_request


def server_frame(payload: bytes, opcode: int) -> bytes:
    """``uwsgi_websocket_message``: one unmasked frame (``opcode`` includes FIN)."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", opcode, n)
    elif n <= 0xFFFF:
        head = struct.pack("!BBH", opcode, 126, n)
    else:
        head = struct.pack("!BBQ", opcode, 127, n)
    return head + payload


def client_frame(payload: bytes, opcode: int, mask: bytes, *, fin: bool = True) -> bytes:
    """A frame as a browser sends it: masked with the 4 bytes ``mask``."""
    n = len(payload)
    first = (0x80 if fin else 0) | opcode
    if n < 126:
        head = struct.pack("!BB", first, 0x80 | n)
    elif n <= 0xFFFF:
        head = struct.pack("!BBH", first, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", first, 0x80 | 127, n)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + body


@dataclass(frozen=True, slots=True)
class Frame:
    """What one complete frame means to the reader: ``kind`` is ``message`` (``data``
    is what ``websocket_recv`` answers), ``close``, ``ping``, ``pong`` or ``other``."""

    kind: str
    data: bytes = b""


class FrameReader:
    """The frames of one request's client (see the module doc). ``continuation`` is
    the process's buffer: share one list between the readers of a process."""

    __slots__ = ("_buf", "continuation", "max_size")

    def __init__(self, max_size: int, continuation: list[bytearray]) -> None:
        self._buf = bytearray()
        self.max_size = max_size
        self.continuation = continuation

    def feed(self, data: bytes) -> None:
        self._buf += data

    def read(self) -> Frame | None:
        """The next frame's meaning, or ``NEED_MORE``."""
        buf = self._buf
        if len(buf) < 2:
            return NEED_MORE
        first, second = buf[0], buf[1]
        fin, opcode = first >> 7, first & 0x0F
        masked, size = second >> 7, second & 0x7F
        at = 2
        if size == 126 or size == 127:
            width = 2 if size == 126 else 8
            if len(buf) < 2 + width:
                return NEED_MORE
            size = int.from_bytes(buf[2:2 + width], "big")
            at += width
            if size > self.max_size * 1024:
                raise WebSocketError(
                    "message over --websockets-max-size",
                    f"invalid packet size received: {size}, max allowed: "
                    f"{self.max_size * 1024}", about_request=True)
        mask = b""
        if masked:
            if len(buf) < at + 4:
                return NEED_MORE
            mask = bytes(buf[at:at + 4])
            at += 4
        if len(buf) < at + size:
            return NEED_MORE
        payload = bytes(buf[at:at + size])
        del buf[:at + size]
        if mask:
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        if opcode in (0, 1, 2):
            return self._message(opcode, fin, payload)
        kind = {0x8: "close", 0x9: "ping", 0xA: "pong"}.get(opcode, "other")
        return Frame(kind)

    def _message(self, opcode: int, fin: int, payload: bytes) -> Frame:
        """``uwsgi_websockets_parse``: a whole message, or a NUL while it is in parts."""
        cont = self.continuation
        if opcode == 0:
            if not cont:
                raise WebSocketError("continuation without a first part",
                                     "Error continuation with empty previous buffer",
                                     about_request=False)
            cont[0] += payload
            whole = cont[0]
        else:
            whole = bytearray(payload)
        if fin:
            cont.clear()
            return Frame("message", bytes(whole))
        if opcode != 0:
            cont[:] = [whole]
        return Frame("message", b"\x00")
