"""The stats server document (``--stats``, ``--stats-http``).

Models uWSGI's hand-written JSON emitter (``core/stats.c``) as driven by
``uwsgi_master_generate_stats`` (``core/master_utils.c``), protocol.md §6, so that a
document built from the same values is byte-identical to the real one:

* pretty mode: ``{`` + newline, one tab per nesting level, members separated by
  ``,`` + newline, no trailing newline; an object opened after a key gets the
  indentation tabs *after* the colon (``"req_info":\\t\\t\\t\\t\\t{``); an empty list is
  ``[`` + two newlines + tabs + ``]``; strings inside lists get no indentation;
* minified mode (``--stats-minified``): no whitespace at all;
* strings are written verbatim (uWSGI escapes only a few of them, with
  :func:`escape_json`), so a value containing ``"`` yields invalid JSON, as in uWSGI;
* ``--stats-http`` prefixes fixed ``HTTP/1.0`` headers (``core/utils.c``,
  ``uwsgi_send_http_stats``) and only answers after the client sent something.

The document is plain data: ``dict`` (ordered) -> object, ``list`` -> list, ``int`` ->
number, ``str``/``bytes`` -> string.

Left out: *which* keys an instance emits and in which order (protocol.md §6 and the
vectors ``stats_server_*``) - the simulator builds the document, this module writes it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ._errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "STATS_HTTP_HEAD",
    "decode_stats",
    "decode_stats_http",
    "encode_stats",
    "encode_stats_http",
    "escape_json",
]

STATS_HTTP_HEAD = (
    b"HTTP/1.0 200 OK\r\n"
    b"Connection: close\r\n"
    b"Access-Control-Allow-Origin: *\r\n"
    b"Content-Type: application/json\r\n"
    b"\r\n"
)


def escape_json(value: str) -> str:
    """uWSGI's ``escape_json``: only TAB, LF, CR, ``"`` and ``\\`` are escaped."""
    return (
        value.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\t", "\\t")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
    )


class _Writer:
    def __init__(self, minified: bool) -> None:
        self.minified = minified
        self.tabs = 1
        self.out: list[str] = ["{" if minified else "{\n"]

    def nl(self, sym: str) -> None:
        self.out.append(sym if self.minified else sym + "\n")

    def indent(self) -> None:
        if not self.minified:
            self.out.append("\t" * self.tabs)

    def scalar(self, value: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, (int, str, bytes)):
            raise LocalProtocolError(
                f"stats values are dict, list, int, str or bytes; got {value!r}"
            )
        if isinstance(value, int):
            return str(value)
        text = value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value
        return f'"{text}"'

    def members(self, obj: Mapping[str, Any]) -> None:
        items = list(obj.items())
        for i, (key, value) in enumerate(items):
            self.indent()
            self.out.append(f'"{key}":')
            self.value(value)
            if i < len(items) - 1:
                self.nl(",")

    def value(self, value: Any) -> None:
        if isinstance(value, Mapping):
            self.open_object()
            self.members(value)
            self.close("}")
        elif isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
            self.tabs += 1
            self.nl("[")
            for i, item in enumerate(value):
                if isinstance(item, Mapping):
                    self.open_object()
                    self.members(item)
                    self.close("}")
                else:
                    self.out.append(self.scalar(item))
                if i < len(value) - 1:
                    self.nl(",")
            self.close("]")
        else:
            self.out.append(self.scalar(value))

    def open_object(self) -> None:
        self.indent()
        if not self.minified:
            self.tabs += 1
        self.nl("{")

    def close(self, sym: str) -> None:
        if not self.minified:
            self.out.append("\n")
            self.tabs -= 1
            self.indent()
        self.out.append(sym)


def encode_stats(document: Mapping[str, Any], *, minified: bool = False) -> bytes:
    """The bytes the stats server writes for ``document`` (then it closes)."""
    writer = _Writer(minified)
    writer.members(document)
    writer.close("}")
    return "".join(writer.out).encode("utf-8", "surrogateescape")


def encode_stats_http(document: Mapping[str, Any], *, minified: bool = False) -> bytes:
    """The ``--stats-http`` reply: fixed HTTP/1.0 head + the document."""
    return STATS_HTTP_HEAD + encode_stats(document, minified=minified)


def decode_stats(data: bytes) -> dict[str, Any]:
    """Parse a stats document (key order kept); invalid JSON is a RemoteProtocolError."""
    try:
        doc = json.loads(data.decode("utf-8", "surrogateescape"))
    except ValueError as exc:
        raise RemoteProtocolError(f"stats document is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise RemoteProtocolError(f"stats document must be a JSON object, got {type(doc).__name__}")
    return doc


def decode_stats_http(data: bytes) -> dict[str, Any]:
    """Parse a ``--stats-http`` reply (any HTTP head, then the document)."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep or not head.startswith(b"HTTP/"):
        raise RemoteProtocolError(f"not an HTTP stats reply: {data[:40]!r}")
    return decode_stats(body)
