"""The uWSGI 2.0 spool-file format: bytes, names, ``at`` values and ``versionsort``.

What it models (``core/spooler.c`` ``uwsgi_spool_request``/``spooler_manage_task``,
``core/protocol.c`` ``uwsgi_hooked_parse``, ``core/utils.c`` ``uwsgi_str_num``,
``core/buffer.c`` ``uwsgi_buffer_append_keyval``, glibc ``strverscmp``;
``shared/spec/spoolfile.md``):

* a spool file is ``[17, u16le len(vars), 0]`` + a uwsgi vars block (``u16le klen, key,
  u16le vlen, value`` ...) + the raw body up to EOF (not length-prefixed);
* key and value lengths are cast to ``uint16``: longer keys/values are silently
  truncated modulo 65536 (``encode_vars``), as ``uwsgi.spool`` does;
* reading: fewer than 4 bytes -> the file is skipped (a writer may still be busy); a
  vars block shorter than announced -> the file is deleted; a block that
  ``uwsgi_hooked_parse`` refuses (empty key, dangling bytes) -> the Python plugin deletes
  the file without calling the spooler function;
* names: ``uwsgi_spoolfile_on_<hostname>_<pid>_<counter>_<rand>_<sec>_<usec>``;
* ``at``: the digits before the first ``.``, converted with ``uwsgi_str_num`` (no
  validation: other characters give garbage, reproduced here with 64-bit wraparound);
* ``versionsort``: glibc ``strverscmp`` (a port), with a fast sort key used when no
  digit run starts with ``0`` (then it agrees exactly with ``strverscmp``).

This module is pure (no I/O); the spooler subsystem (``simuwsgi.spooler``) does the
file-system work. It is meant to be merged into ``simuwsgi.protocol`` later.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

__all__ = [
    "PREFIX",
    "SKIP",
    "TRUNCATED",
    "SpoolFile",
    "at_value",
    "decode",
    "encode",
    "encode_vars",
    "file_name",
    "parse_name",
    "parse_vars",
    "strverscmp",
    "versionsort",
]

PREFIX = "uwsgi_spoolfile_on_"
MODIFIER1 = 17

#: ``decode`` results for files the spooler does not run.
SKIP = "skip"            # fewer than 4 bytes: left alone this round
TRUNCATED = "truncated"  # vars block shorter than announced: the file is deleted


@dataclass(frozen=True, slots=True)
class SpoolFile:
    """A decoded spool file. ``vars`` is None when the block cannot be parsed."""

    modifier1: int
    modifier2: int
    block: bytes
    vars: list[tuple[bytes, bytes]] | None
    body: bytes


def encode_vars(items: list[tuple[bytes, bytes]]) -> bytes:
    """A uwsgi vars block; lengths are cast to uint16 (truncation, as in uWSGI)."""
    out = bytearray()
    for key, value in items:
        klen = len(key) & 0xFFFF
        vlen = len(value) & 0xFFFF
        out += klen.to_bytes(2, "little")
        out += key[:klen]
        out += vlen.to_bytes(2, "little")
        out += value[:vlen]
    return bytes(out)


def encode(block: bytes, body: bytes = b"") -> bytes:
    """The whole file: header (modifier1 17, u16le size, modifier2 0), block, body.

    The block must be at most 65535 bytes (``uwsgi.spool`` refuses bigger ones).
    """
    if len(block) > 0xFFFF:
        raise ValueError("vars block larger than 65535 bytes")
    return bytes((MODIFIER1, len(block) & 0xFF, len(block) >> 8, 0)) + block + body


def parse_vars(block: bytes, partial: bool = False) -> list[tuple[bytes, bytes]] | None:
    """``uwsgi_hooked_parse``: the pairs, or None where uWSGI returns -1.

    Its rules: a key needs more than 2 bytes left at its start (``ptr + 2 >= end``
    fails), a zero key length fails, a key or value running past the end fails. With
    ``partial`` the pairs seen before a failure are returned (the hook already saw
    them: that is how ``uwsgi_spool_request`` reads ``spooler``/``priority``/``at``).
    """
    out: list[tuple[bytes, bytes]] = []
    pos = 0
    end = len(block)
    while pos < end:
        if pos + 2 >= end:
            return out if partial else None
        klen = block[pos] | (block[pos + 1] << 8)
        if not klen:
            return out if partial else None
        pos += 2
        if pos + klen > end:
            return out if partial else None
        key = block[pos:pos + klen]
        pos += klen
        if pos + 2 > end:
            return out if partial else None
        vlen = block[pos] | (block[pos + 1] << 8)
        pos += 2
        if pos + vlen > end:
            return out if partial else None
        out.append((key, block[pos:pos + vlen]))
        pos += vlen
    return out


def decode(data: bytes) -> SpoolFile | str:
    """Decode file content as the spooler reads it: ``SKIP``, ``TRUNCATED`` or a file."""
    if len(data) < 4:
        return SKIP
    size = data[1] | (data[2] << 8)
    if len(data) - 4 < size:
        return TRUNCATED
    block = data[4:4 + size]
    return SpoolFile(data[0], data[3], block, parse_vars(block), data[4 + size:])


def file_name(hostname: str, pid: int, counter: int, rand: int, sec: int, usec: int) -> str:
    return f"{PREFIX}{hostname}_{pid}_{counter}_{rand}_{sec}_{usec}"


def parse_name(name: str) -> dict[str, str] | None:
    """The fields of a spool file name (the hostname may itself contain ``_``)."""
    if not name.startswith(PREFIX):
        return None
    parts = name[len(PREFIX):].rsplit("_", 5)
    if len(parts) != 6:
        return None
    keys = ("hostname", "pid", "counter", "rand", "tv_sec", "tv_usec")
    return dict(zip(keys, parts))


def at_value(value: bytes) -> int:
    """``uwsgi_str_num`` of the digits before the first ``.``, as a signed time_t."""
    dot = value.find(b".")
    if dot >= 0:
        value = value[:dot]
    n = len(value)
    delta = _c_double_to_u64(10.0 ** n) if n < 400 else 0
    num = 0
    for byte in value:
        delta //= 10
        char = byte - 256 if byte >= 128 else byte  # a signed C char
        num = (num + delta * (char - 48)) & 0xFFFFFFFFFFFFFFFF
    return num - (1 << 64) if num >= (1 << 63) else num


def _c_double_to_u64(x: float) -> int:
    """``(uint64_t) pow(10, len)``; out of range gives x86-64's 0x8000000000000000."""
    if x >= 2.0 ** 64:
        return 1 << 63
    return int(x)


# -- versionsort ----------------------------------------------------------------------
_S_N, _S_I, _S_F, _S_Z = 0, 3, 6, 9
_CMP, _LEN = 2, 3
_NEXT_STATE = (_S_N, _S_I, _S_Z, _S_N, _S_I, _S_I, _S_N, _S_F, _S_F, _S_N, _S_F, _S_Z)
_RESULT = (
    _CMP, _CMP, _CMP, _CMP, _LEN, _CMP, _CMP, _CMP, _CMP,
    _CMP, -1, -1, +1, _LEN, _LEN, +1, _LEN, _LEN,
    _CMP, _CMP, _CMP, _CMP, _CMP, _CMP, _CMP, _CMP, _CMP,
    _CMP, +1, +1, -1, _CMP, _CMP, -1, _CMP, _CMP,
)


def _cls(c: int) -> int:
    return 2 if c == 0x30 else (1 if 0x30 < c <= 0x39 else 0)


def strverscmp(a: bytes, b: bytes) -> int:
    """glibc ``strverscmp`` (sign of the result is what matters)."""
    a = a + b"\0"
    b = b + b"\0"
    i = 0
    c1, c2 = a[0], b[0]
    state = _S_N + _cls(c1)
    while c1 == c2:
        if c1 == 0:
            return 0
        state = _NEXT_STATE[state]
        i += 1
        c1, c2 = a[i], b[i]
        state += _cls(c1)
    diff = c1 - c2
    result = _RESULT[state * 3 + _cls(c2)]
    if result == _CMP:
        return diff
    if result == _LEN:
        k = i + 1
        while 0x30 <= a[k] <= 0x39:
            if not 0x30 <= b[k] <= 0x39:
                return 1
            k += 1
        return -1 if 0x30 <= b[k] <= 0x39 else diff
    return result


_DIGITS = re.compile(rb"[0-9]+")
_LEADING_ZERO = re.compile(rb"(?<![0-9])0")


def _fast_key(name: bytes) -> bytes:
    return _DIGITS.sub(lambda m: b"0" + bytes((len(m.group()),)) + m.group(), name)


def versionsort(names: list[str]) -> list[str]:
    """``scandir(..., versionsort)`` order of directory entry names."""
    encoded = [(n.encode("utf-8", "surrogateescape"), n) for n in names]
    if any(_LEADING_ZERO.search(e) for e, _ in encoded) or any(len(e) > 255 for e, _ in encoded):
        cmp = functools.cmp_to_key(lambda x, y: strverscmp(x[0], y[0]))
        return [n for _, n in sorted(encoded, key=cmp)]
    return [n for _, n in sorted(encoded, key=lambda pair: _fast_key(pair[0]))]
