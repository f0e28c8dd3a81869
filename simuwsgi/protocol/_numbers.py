"""Decimal numbers inside uwsgi dicts, as uWSGI writes and (mis)reads them.

* Writers use ``%lld`` (``core/buffer.c``, ``uwsgi_buffer_append_keynum``) or ``%llu``
  (``uwsgi_long2str2n``, ``core/utils.c``): :func:`format_signed` and
  :func:`format_unsigned` reproduce the 64-bit wrap-around of those formats.
* Readers use ``uwsgi_str_num`` (``core/utils.c``), which does **no validation**: every
  byte contributes ``(signed char(byte) - '0') * 10**position`` modulo 2**64, so
  non-digits give garbage instead of an error (protocol.md §2.1). :func:`str_num`
  reproduces that, including the x86-64 result for 20 digits or more (the
  ``pow(10, len)`` double no longer fits a ``uint64_t`` and converts to 0).
* Request ``CONTENT_LENGTH`` uses the stricter ``get_content_length``
  (``core/protocol.c``): digits up to the first non-digit (:func:`content_length`).

Left out: ``strtol``/``atoi`` parsing of option values (configuration, not wire).
"""

from __future__ import annotations

__all__ = [
    "content_length",
    "format_signed",
    "format_unsigned",
    "str_num",
]

_U64 = (1 << 64) - 1


def str_num(value: bytes) -> int:
    """uWSGI's ``uwsgi_str_num``: unvalidated decimal conversion, result in 0..2**64-1."""
    n = len(value)
    if n > 19:
        return 0
    if value.isdigit():
        return int(value)
    num = 0
    delta = 10**n
    for byte in value:
        delta //= 10
        digit = (byte - 256 if byte > 127 else byte) - 48
        num += delta * digit
    return num & _U64


def content_length(value: bytes) -> int:
    """``get_content_length``: the leading decimal digits of ``value`` (0 if none), in
    a ``size_t`` (a value beyond 2**64 wraps, observed on 2.0.30)."""
    i = 0
    for byte in value:
        if not 48 <= byte <= 57:
            break
        i += 1
    return int(value[:i]) & _U64 if i else 0


def format_signed(num: int) -> bytes:
    """``%lld`` of the value truncated to a signed 64-bit integer."""
    num &= _U64
    if num >= 1 << 63:
        num -= 1 << 64
    return b"%d" % num


def format_unsigned(num: int) -> bytes:
    """``%llu`` of the value truncated to an unsigned 64-bit integer."""
    return b"%d" % (num & _U64)
