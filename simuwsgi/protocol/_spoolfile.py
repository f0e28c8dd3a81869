"""Spool files: the on-disk task format of uWSGI's spooler, and their names.

Models ``core/spooler.c`` (writer ``uwsgi_spool_request``, reader
``spooler_manage_task`` / ``uwsgi_spooler_read_header`` / ``read_content``) and the
Python hook ``uwsgi_python_spooler`` (``plugins/python/python_plugin.c``), spoolfile.md:

* content = ``[17, len(vars) u16le, 0]`` + vars block + body (raw, up to EOF, its size
  is ``file size - 4 - pktsize``); vars over 65535 bytes are refused;
* name = ``uwsgi_spoolfile_on_<hostname>_<pid>_<counter>_<rand>_<sec>_<usec>``, inside
  a sub-directory named by the verbatim ``priority`` var when there is one;
* reader: a file shorter than 4 bytes is skipped (the writer may be busy), a file
  with fewer vars bytes than announced is deleted; the header's modifier1/modifier2
  are not checked; a vars block that is not a valid dict makes the Python hook
  return "done" without calling the function (the file is deleted);
* ``spooler``/``priority``/``at`` are read by the writer from the pairs its dict
  parser delivers (last occurrence wins); ``at`` is cut at the first ``.`` and read
  with ``uwsgi_str_num``.

* writers differ on oversize keys/values: ``uwsgi.spool`` casts each length to
  ``uint16`` and silently truncates (``core/buffer.c``, ``uwsgi_buffer_append_keyval``),
  a wire encoder must refuse them - :func:`encode_spool_vars` takes ``truncate``;
* the spooler scans a directory in ``scandir(..., versionsort)`` order with
  ``--spooler-ordered``: :func:`versionsort`, built on a port of glibc's
  ``strverscmp``, with a fast sort key used when no digit run starts with ``0`` (then
  it agrees exactly with ``strverscmp``).

This is the only implementation of the format: the spooler subsystem
(``simuwsgi.subsystems.spooler``) uses it for the file-system work.

Left out: directories, locking, mtimes and the scan loop (simulator business). The
name builder refuses a priority containing ``/`` or equal to ``.``/``..``, which real
uWSGI would happily use as a path (spoolfile.md §2).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

from ._errors import LocalProtocolError, RemoteProtocolError, SpoolFileError
from ._header import encode_header
from ._numbers import str_num
from ._vars import Pairs, _c_join, decode_dict_prefix, encode_vars, last_value

__all__ = [
    "SPOOL_FILE_PREFIX",
    "SpoolFile",
    "SpoolFileName",
    "decode_spool_file",
    "decode_spool_task",
    "encode_spool_file",
    "encode_spool_vars",
    "parse_spool_file_name",
    "spool_at",
    "spool_file_name",
    "spool_options",
    "strverscmp",
    "versionsort",
]

SPOOL_FILE_PREFIX = "uwsgi_spoolfile_on_"


@dataclass(frozen=True, kw_only=True, slots=True)
class SpoolFile:
    """A decoded spool file.

    ``vars_block`` is the raw vars bytes; ``vars`` are the pairs a dict parser
    delivers before any error and ``valid`` whether the whole block parsed (if not,
    the Python spooler deletes the task without running it).
    """

    vars: Pairs
    body: bytes = b""
    valid: bool = True
    vars_block: bytes = b""
    modifier1: int = 17
    modifier2: int = 0


def encode_spool_vars(pairs: Iterable[tuple[bytes, bytes]], *, truncate: bool = False) -> bytes:
    """A spool task's vars block.

    ``truncate=False`` (a wire encoder) refuses a key or value over 65535 bytes;
    ``truncate=True`` is what ``uwsgi.spool`` does: each length is cast to ``uint16``
    and only that many bytes are copied (70000 bytes -> 4464), silently.
    """
    if not truncate:
        return encode_vars(pairs)
    if _c_join is not None and isinstance(pairs, (list, tuple)):
        block = _c_join(pairs)  # every length fits: nothing to truncate
        if block is not None:
            return block
    out = bytearray()
    for key, value in pairs:
        klen = len(key) & 0xFFFF
        vlen = len(value) & 0xFFFF
        out += klen.to_bytes(2, "little")
        out += key[:klen]
        out += vlen.to_bytes(2, "little")
        out += value[:vlen]
    return bytes(out)


def encode_spool_file(
    vars: Iterable[tuple[bytes, bytes]] | bytes, body: bytes = b"", *, truncate: bool = False
) -> bytes:
    """File content for a task; ``vars`` may be pairs or an already encoded block.

    A remote spool request (modifier1 17) stores its payload verbatim, even when it
    is not a valid dict: pass the payload bytes. ``truncate`` applies to pairs (see
    :func:`encode_spool_vars`); a block over 65535 bytes is always refused.
    """
    block = vars if isinstance(vars, bytes) else encode_spool_vars(vars, truncate=truncate)
    if len(block) > 0xFFFF:
        raise LocalProtocolError(
            f"[uwsgi-spooler] args buffer is limited to 64k ({len(block)} bytes), "
            "use the 'body' for bigger values"
        )
    return encode_header(17, len(block), 0) + block + body


def decode_spool_file(data: bytes) -> SpoolFile:
    """Read a spool file as the spooler does; raises :class:`SpoolFileError` if unrunnable."""
    pairs, body, valid, block = _decode_spool_file(data)
    return SpoolFile(vars=pairs, body=body, valid=valid, vars_block=block,
                     modifier1=data[0], modifier2=data[3])


def decode_spool_task(data: bytes) -> tuple[Pairs, bytes, bool]:
    """:func:`decode_spool_file`'s ``(vars, body, valid)``, without building the
    :class:`SpoolFile` (the spooler's path, once per task)."""
    return _decode_spool_file(data)[:3]


def _decode_spool_file(data: bytes) -> tuple[Pairs, bytes, bool, bytes]:
    if len(data) < 4:
        raise SpoolFileError(
            f"spool file of {len(data)} byte(s) is shorter than its 4-byte header: "
            "skipped (the writer may still be busy)",
            disposition="skip",
        )
    pktsize = data[1] | data[2] << 8  # the header's u16le (``decode_header``)
    end = 4 + pktsize
    if len(data) < end:
        raise SpoolFileError(
            f"spool file header announces {pktsize} bytes of vars, only "
            f"{len(data) - 4} present: the spooler deletes it",
            disposition="delete",
        )
    block = data[4:end]
    pairs, error = decode_dict_prefix(block)
    return pairs, data[end:], error is None, block


def spool_options(vars: Pairs) -> tuple[bytes | None, bytes | None, int]:
    """``(spooler, priority, at)`` as the writer's hook reads them from the task vars.

    ``spooler``/``priority`` are ``None`` when absent or empty; ``at`` is 0 when absent.
    """
    spooler = last_value(vars, b"spooler") or None
    priority = last_value(vars, b"priority") or None
    at_value = last_value(vars, b"at")
    return spooler, priority, 0 if at_value is None else spool_at(at_value)


def spool_at(value: bytes) -> int:
    """The ``at`` var as uWSGI reads it: cut at the first ``.``, ``uwsgi_str_num``, as a
    signed ``time_t`` (garbage, never an error, for non-digits)."""
    at = str_num(value.split(b".", 1)[0])
    return at - (1 << 64) if at >= 1 << 63 else at


@dataclass(frozen=True, kw_only=True, slots=True)
class SpoolFileName:
    """The fields of a spool file name (path relative to the spool directory)."""

    hostname: str
    pid: int
    counter: int
    rand: int
    sec: int
    usec: int
    priority: str | None = None


def spool_file_name(name: SpoolFileName) -> str:
    """``[<priority>/]uwsgi_spoolfile_on_<host>_<pid>_<counter>_<rand>_<sec>_<usec>``."""
    base = (
        f"{SPOOL_FILE_PREFIX}{name.hostname}_{name.pid}_{name.counter}_{name.rand}_"
        f"{name.sec}_{name.usec}"
    )
    if name.priority is None:
        return base
    if not name.priority or "/" in name.priority or name.priority in (".", ".."):
        raise LocalProtocolError(
            f"refusing spool priority {name.priority!r} as a directory name "
            "(uWSGI uses it verbatim as a path component)"
        )
    return f"{name.priority}/{base}"


def parse_spool_file_name(path: str) -> SpoolFileName:
    """Inverse of :func:`spool_file_name` (the hostname may contain ``_``)."""
    priority, _, base = path.rpartition("/")
    if not base.startswith(SPOOL_FILE_PREFIX):
        raise RemoteProtocolError(f"not a spool file name: {path!r}")
    parts = base[len(SPOOL_FILE_PREFIX) :].rsplit("_", 5)
    if len(parts) != 6 or not all(p.isdigit() for p in parts[1:]):
        raise RemoteProtocolError(f"malformed spool file name: {path!r}")
    host, pid, counter, rand, sec, usec = parts
    return SpoolFileName(
        hostname=host,
        pid=int(pid),
        counter=int(counter),
        rand=int(rand),
        sec=int(sec),
        usec=int(usec),
        priority=priority or None,
    )


# -- versionsort ----------------------------------------------------------------------
# glibc's strverscmp state machine (string/strverscmp.c): states S_N (normal), S_I
# (comparing integral part), S_F (fractional part), S_Z (idem but with leading zeros).
_S_N, _S_I, _S_F, _S_Z = 0, 3, 6, 9
_CMP, _LEN = 2, 3
_NEXT_STATE = (_S_N, _S_I, _S_Z, _S_N, _S_I, _S_I, _S_N, _S_F, _S_F, _S_N, _S_F, _S_Z)
_RESULT = (
    _CMP, _CMP, _CMP, _CMP, _LEN, _CMP, _CMP, _CMP, _CMP,
    _CMP, -1, -1, +1, _LEN, _LEN, +1, _LEN, _LEN,
    _CMP, _CMP, _CMP, _CMP, _CMP, _CMP, _CMP, _CMP, _CMP,
    _CMP, +1, +1, -1, _CMP, _CMP, -1, _CMP, _CMP,
)  # fmt: skip


def _cls(c: int) -> int:
    return 2 if c == 0x30 else (1 if 0x30 < c <= 0x39 else 0)


def strverscmp(a: bytes, b: bytes) -> int:
    """glibc ``strverscmp`` (the sign of the result is what matters)."""
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
