"""Requests framed as vars block + body: modifier1 0 (WSGI) and the language plugins.

Client -> server: ``[m1, len(vars), m2]`` + vars block + ``CONTENT_LENGTH`` body bytes
(not counted in pktsize). modifier2 is ignored by the Python plugin; modifier1 30 is
the Python plugin again (its SCRIPT_NAME stripping is a no-op on Python 3). Every
language plugin refuses an empty (pktsize 0) request ("Empty python request") and
parses the vars with ``uwsgi_parse_vars`` (``core/protocol.c``,
``plugins/python/wsgi_handlers.c``, protocol.md §5.1-5.2).

The body length is ``get_content_length`` of the *last* ``CONTENT_LENGTH`` var
(digits up to the first non-digit). Server -> client is raw HTTP (see ``_http``).

Left out: which of these plugins a given server has loaded - the server decides
whether to serve a :class:`Request` or answer ``NoReply``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._errors import LocalProtocolError, RemoteProtocolError
from ._header import Header, encode_header
from ._numbers import content_length
from ._vars import Pairs, decode_request_vars, encode_request_vars, last_value

__all__ = [
    "VARS_MODIFIERS",
    "Request",
    "encode_request_head",
    "parse_request",
]

VARS_MODIFIERS: frozenset[int] = frozenset(
    {0, 5, 6, 7, 8, 9, 11, 14, 15, 18, 19, 23, 24, 25, 27, 28, 30, 35}
)
"""modifier1 values whose request is a vars block + body (WSGI and language plugins)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Request:
    """A vars-framed request (modifier1 0 = WSGI); the body follows as ``Data``.

    ``vars`` keeps the wire order and duplicates; uWSGI and the Python environ use
    the *last* occurrence of a key (:meth:`get`).
    """

    vars: Pairs
    modifier1: int = 0
    modifier2: int = 0

    def get(self, key: bytes) -> bytes | None:
        """The value of the last var named ``key``, or ``None``."""
        return last_value(self.vars, key)

    @property
    def content_length(self) -> int:
        """Body length announced by the last ``CONTENT_LENGTH`` (0 if absent)."""
        value = last_value(self.vars, b"CONTENT_LENGTH")
        return content_length(value) if value is not None else 0


def parse_request(
    header: Header, payload: bytes, *, max_vars: int, limit_post: int
) -> Request:
    """Decode a vars-framed request payload with the Python plugin's rules."""
    if not payload:
        raise RemoteProtocolError(
            f"empty request (modifier1 {header.modifier1}, pktsize 0): every language "
            "plugin skips it and closes"
        )
    pairs = decode_request_vars(payload, max_vars=max_vars, limit_post=limit_post)
    return Request(vars=pairs, modifier1=header.modifier1, modifier2=header.modifier2)


_CL_KEY = b"\x0e\x00CONTENT_LENGTH"


def body_length(request: Request, payload: bytes) -> int:
    """``request.content_length``, knowing the encoded vars block ``payload``.

    A block without the bytes ``\\x0e\\x00CONTENT_LENGTH`` cannot hold that key, so the
    common case (no body) costs one C-level search instead of a scan of the pairs.
    """
    return request.content_length if _CL_KEY in payload else 0


def encode_request_head(event: Request) -> tuple[bytes, int]:
    """Header + vars block, and the body length the peer will expect after it."""
    payload = encode_request_vars(event.vars)
    if not payload:
        raise LocalProtocolError("an empty request (no vars) is refused by every plugin")
    return encode_header(event.modifier1, len(payload), event.modifier2) + payload, (
        body_length(event, payload)
    )
