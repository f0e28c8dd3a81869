"""Small request plugins: ping (100), echo (101), remote signal (110), remote spool
(17), the generic ack (255), and any modifier1 nobody handles.

* Ping (``plugins/ping/ping_plugin.c``): request ``64 00 00 00``; the server echoes the
  request header with modifier2 = 1 and pktsize = length of the warning message,
  followed by the message (protocol.md §5.5). The request payload, if any, is ignored.
* Echo (``plugins/echo/echo_plugin.c``): the pktsize payload is written back raw,
  without a header; modifier2 ignored (§5.6).
* Signal (``plugins/signal/signal_plugin.c``): ``6e 00 00 NN``, the signal number is
  modifier2; reply ``ff 00 00 01`` (queued to the master) or ``ff 00 00 00`` (pipe
  full). uWSGI's client (``core/signal.c``) reads exactly 4 bytes and only looks at
  modifier2 (§5.7).
* Remote spool (``plugins/spooler/spooler_plugin.c``): ``[17, len, m2]`` + vars; the
  vars are written verbatim into the spool file **even if they are not a valid dict**
  (only the pairs before the first error are seen by the ``spooler``/``priority``/
  ``at`` hook); bytes after the payload are ignored; reply ``ff 00 00 01``/``00``
  (§5.3).
* Unknown modifier1 (``core/uwsgi.c``, ``unconfigured_hook``): closed without reply.

Left out: what the server does with a signal or a spool task (simulator business).
"""

from __future__ import annotations

from dataclasses import dataclass

from ._errors import LocalProtocolError
from ._header import Header, decode_header, encode_header, encode_packet
from ._vars import Pairs, decode_dict_prefix, encode_vars

__all__ = [
    "Ack",
    "Echo",
    "Ping",
    "Pong",
    "SignalRequest",
    "SpoolRequest",
    "UnknownRequest",
    "parse_spool_request",
]


@dataclass(frozen=True, kw_only=True, slots=True)
class Ping:
    """modifier1 100 request (a health check)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Pong:
    """Reply to :class:`Ping`: ``[100, len(message), 1]`` + the warning message."""

    message: bytes = b""


@dataclass(frozen=True, kw_only=True, slots=True)
class Echo:
    """modifier1 101 request; the reply is ``payload`` written back raw."""

    payload: bytes
    modifier2: int = 0


@dataclass(frozen=True, kw_only=True, slots=True)
class SignalRequest:
    """modifier1 110: raise uWSGI signal ``signum`` (0..255) on the remote master."""

    signum: int


@dataclass(frozen=True, kw_only=True, slots=True)
class SpoolRequest:
    """modifier1 17: enqueue a spool task whose arguments are ``vars``.

    On receipt, ``raw`` is the payload exactly as it arrived (it is what uWSGI writes
    into the spool file), ``vars`` are the pairs uWSGI's dict parser delivered before
    stopping, and ``valid`` says whether it parsed the whole payload. When sending,
    leave ``raw=None`` to encode ``vars``.
    """

    vars: Pairs
    raw: bytes | None = None
    valid: bool = True
    modifier2: int = 0

    @property
    def payload(self) -> bytes:
        """The vars block that travels (and lands in the spool file)."""
        return self.raw if self.raw is not None else encode_vars(self.vars)


@dataclass(frozen=True, kw_only=True, slots=True)
class Ack:
    """The generic reply ``[255, 0, status]``: 1 = done/queued, 0 = failed.

    uWSGI's signal client treats 0 as "rejected" (ValueError) and any other value as
    success; modifier1 and pktsize of the reply are not checked.
    """

    status: int = 1

    @property
    def ok(self) -> bool:
        return self.status != 0


@dataclass(frozen=True, kw_only=True, slots=True)
class UnknownRequest:
    """A packet whose modifier1 (or cache/RPC command) no plugin handles."""

    modifier1: int
    modifier2: int = 0
    payload: bytes = b""


def parse_spool_request(header: Header, payload: bytes) -> SpoolRequest:
    pairs, error = decode_dict_prefix(payload)
    return SpoolRequest(vars=pairs, raw=payload, valid=error is None, modifier2=header.modifier2)


def encode_ping() -> bytes:
    return encode_header(100, 0, 0)


def encode_pong(event: Pong) -> bytes:
    return encode_packet(100, 1, event.message)


def encode_ack(event: Ack) -> bytes:
    return encode_header(255, 0, event.status)


def encode_signal(event: SignalRequest) -> bytes:
    return encode_header(110, 0, event.signum)


def encode_spool(event: SpoolRequest) -> bytes:
    return encode_packet(17, event.modifier2, event.payload)


def encode_echo(event: Echo) -> bytes:
    return encode_packet(101, event.modifier2, event.payload)


def encode_unknown(event: UnknownRequest) -> bytes:
    if not isinstance(event.payload, bytes):
        raise LocalProtocolError(f"UnknownRequest.payload must be bytes, got {event.payload!r}")
    return encode_packet(event.modifier1, event.modifier2, event.payload)


def read_pong(buf: bytearray, eof: bool) -> tuple[Pong, int, int] | None:
    """Client side (``uwsgi_read_response``): header, then pktsize message bytes."""
    if len(buf) < 4:
        return None
    header = decode_header(buf)
    if len(buf) < 4 + header.pktsize:
        return None
    return Pong(message=bytes(buf[4 : 4 + header.pktsize])), 4 + header.pktsize, 0


def read_ack(buf: bytearray, eof: bool) -> tuple[Ack, int, int] | None:
    """Client side: exactly 4 bytes are read; only modifier2 matters."""
    if len(buf) < 4:
        return None
    return Ack(status=buf[3]), 4, 0
