"""Chunked request bodies as uWSGI 2.0.30 reads them (``core/chunked.c``), sans-IO.

A request sent with ``Transfer-Encoding: chunked`` has no ``CONTENT_LENGTH``: its
``wsgi.input`` is empty and the app reads the body chunk by chunk with
``uwsgi.chunked_read()`` / ``chunked_read_nb()``, which parse the bytes of the
connection themselves. Their parser, kept here byte for byte:

* a size line is letters and digits up to ``\\r``, which must be followed by ``\\n``
  (anything else, or ``\\r`` not followed by ``\\n``, is an error); its value is
  ``strtoul(line, 16)``: the hexadecimal prefix, so ``zz`` reads as 0;
* a size of 0 ends the body: every read after it gives ``b""`` (trailers are not read);
* otherwise the chunk is the next *size* bytes; the two bytes after it are skipped
  unread (uWSGI does not check that they are ``\\r\\n``);
* a chunk (with its two trailing bytes) larger than ``--chunked-input-limit``
  (1 MiB by default) is an error: the buffer cannot grow to hold it.

``ChunkedReader.read()`` answers from the bytes fed so far: a chunk, ``b""`` at the
end, ``NEED_MORE`` when the next chunk is not all there yet, or raises
``ChunkedError``.
"""

from __future__ import annotations

__all__ = ["ChunkedError", "ChunkedReader", "NEED_MORE", "DEFAULT_LIMIT"]

#: ``--chunked-input-limit``'s default (``uwsgi.chunked_input_limit``, 1 MiB).
DEFAULT_LIMIT = 1024 * 1024

#: ``read()``: the bytes fed so far end inside a size line or a chunk.
NEED_MORE = None


class ChunkedError(ValueError):
    """The chunked stream cannot be parsed (``uwsgi_chunked_read`` returns NULL)."""


def _strtoul16(line: bytes) -> int:
    digits = 0
    for c in line:
        if 48 <= c <= 57:
            d = c - 48
        elif 97 <= c <= 102:
            d = c - 87
        elif 65 <= c <= 70:
            d = c - 55
        else:
            break
        digits = digits * 16 + d
    return digits


class ChunkedReader:
    """The chunked body of one request, parsed as it arrives (see the module doc)."""

    __slots__ = ("_buf", "_complete", "limit")

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self._buf = bytearray()
        self._complete = False
        self.limit = limit

    def feed(self, data: bytes) -> None:
        """Bytes of the connection, in order."""
        self._buf += data

    def read(self) -> bytes | None:
        """The next chunk, ``b""`` once the body ended, or ``NEED_MORE``."""
        if self._complete:
            return b""
        buf = self._buf
        end = None
        for i, c in enumerate(buf):
            if c == 13:  # '\r'
                if i + 1 == len(buf):
                    return NEED_MORE
                if buf[i + 1] != 10:
                    raise ChunkedError("a chunk size line without \\r\\n")
                end = i
                break
            if not (48 <= c <= 57 or 97 <= c <= 122 or 65 <= c <= 90):
                raise ChunkedError(f"a chunk size line with the byte {c:#04x}")
        if end is None:
            return NEED_MORE
        size = _strtoul16(buf[:end])
        if size == 0:
            self._complete = True
            del buf[: end + 2]
            return b""
        if size + 2 > self.limit:
            raise ChunkedError(f"a chunk of {size} bytes is over --chunked-input-limit "
                               f"({self.limit})")
        start = end + 2
        if len(buf) < start + size + 2:
            return NEED_MORE
        chunk = bytes(buf[start:start + size])
        del buf[: start + size + 2]
        return chunk
