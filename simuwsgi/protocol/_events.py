"""Generic events shared by every modifier, and the ``NEED_DATA`` sentinel.

Every message on a uwsgi connection - request or reply - is delivered (and must be
sent) as one *head* event (a per-modifier type such as ``Request`` or ``Pong``),
zero or more :class:`Data` events for the part that travels after the pktsize payload
(request body, cache value, RPC modifier2 5 result, raw replies that end at close),
and one :class:`EndOfMessage`.

uWSGI's only error signal is closing the connection without a byte; that outcome is
the first-class event :class:`NoReply` in both directions (protocol.md §3). There is no
error packet to model, and no request id: one exchange per connection.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "NEED_DATA",
    "ConnectionClosed",
    "Data",
    "EndOfMessage",
    "NeedData",
    "NoReply",
    "RawResponse",
]


class NeedData(enum.Enum):
    """Type of the :data:`NEED_DATA` sentinel."""

    NEED_DATA = "NEED_DATA"

    def __repr__(self) -> str:
        return "NEED_DATA"

    __str__ = __repr__


NEED_DATA = NeedData.NEED_DATA
"""Returned by ``Connection.next_event()`` when more bytes (or EOF) are needed."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Data:
    """A chunk of the stream that follows a head event (body, value, raw reply)."""

    data: bytes


@dataclass(frozen=True, kw_only=True, slots=True)
class EndOfMessage:
    """The current message is complete (for replies that end at close: EOF was seen)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class NoReply:
    """"No reply, close": the server closes the connection without writing a byte.

    A server sends it to refuse a request (``send(NoReply())`` returns ``b""``; the
    driver then closes the socket). A client receives it when the peer closes before
    the first byte of a reply. It is uWSGI's answer to every failure: unknown
    modifier1, invalid vars, cache miss, unknown RPC function...
    """


@dataclass(frozen=True, kw_only=True, slots=True)
class ConnectionClosed:
    """The peer closed the connection (EOF) after a complete exchange, or before any."""


@dataclass(frozen=True, kw_only=True, slots=True)
class RawResponse:
    """Head of a reply that is a raw byte stream with no header, ending at close.

    Echo (modifier1 101) replies and anything unframed use it: the bytes come as
    :class:`Data` events. Encodes to nothing; a client receives it with the first
    reply byte (an empty raw reply is indistinguishable from :class:`NoReply`).
    """
