"""The sans-IO uwsgi connection: bytes in, events out; events in, bytes out.

Models how a uWSGI worker reads a request on ``--socket`` (``proto/uwsgi.c``): the
4-byte header, then pktsize bytes (a pktsize above ``--buffer-size`` is refused as soon
as the header is known, pktsize == buffer-size is accepted), then the per-modifier
payload rules; bytes received beyond ``4 + pktsize`` are the beginning of the request
body (``proto_parser_remains``), anything beyond the body is never read - a pipelined
second packet is not served (protocol.md §3). The server writes one reply and closes.

As a client it models uWSGI's own remote calls (``core/rpc.c``, ``core/cache.c``,
``core/signal.c``, ``plugins/ping``): write the whole request, read the reply the way
the matching uWSGI client reads it, then close.

``persistent=True`` models ``--puwsgi-socket`` (``proto/puwsgi.c``): perfectly framed
packets, no request body, pktsize 0 never served, and the connection is kept after a
reply only if the handler did not rewrite the request header with a different
pktsize (RPC, ping and simple cache get replies do) - see :attr:`Connection.keep_alive`.

Left out: sockets, timeouts (``--socket-timeout``), ``--http-socket``, and a puwsgi
server's habit of keeping the connection after a malformed packet (here any decoding
error ends the connection).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from ._cache import CacheGet, CacheGetStream, CacheValue
from ._control import Pong
from ._dispatch import (
    ReplyEvent,
    RequestEvent,
    encode_reply,
    encode_request,
    parse_packet,
    read_reply,
)
from ._errors import LocalProtocolError, RemoteProtocolError
from ._events import NEED_DATA, ConnectionClosed, Data, EndOfMessage, NeedData, NoReply
from ._header import Header
from ._rpc import RpcResponse
from ._state import CLIENT, SERVER, TRANSITIONS, Kind, Role, State
from ._wsgi import VARS_MODIFIERS

__all__ = ["Connection", "Event"]

Event = RequestEvent | ReplyEvent | Data | EndOfMessage | NoReply | ConnectionClosed

_IDLE, _BODY, _DONE, _CLOSED, _ERROR = (
    State.IDLE,
    State.BODY,
    State.DONE,
    State.CLOSED,
    State.ERROR,
)
# (module names: an Enum member read as a class attribute costs a lookup each time)
_HEAD, _DATA, _END, _NO_REPLY = Kind.HEAD, Kind.DATA, Kind.END, Kind.NO_REPLY
_HEADER = struct.Struct("<BHB")
_EOM = EndOfMessage()  # events are frozen values: one instance serves every message
_KINDS: dict[type, Kind] = {Data: Kind.DATA, EndOfMessage: Kind.END, NoReply: Kind.NO_REPLY}
_HINTS = {
    Kind.HEAD: "one message per direction per exchange",
    Kind.DATA: "Data follows a head event and precedes EndOfMessage",
    Kind.END: "EndOfMessage closes a message that was started with a head event",
    Kind.NO_REPLY: "NoReply replaces the whole reply; bytes were already produced",
}


class Connection:
    """One uwsgi connection, seen from the ``role`` end.

    * ``receive_data(data)`` feeds bytes received from the peer (``b""`` = EOF);
    * ``next_event()`` returns the next event, :data:`NEED_DATA`, or raises
      :class:`RemoteProtocolError` - the server's answer to which is ``NoReply``;
    * ``send(event)`` returns the bytes to write for ``event``.

    Server options mirror uWSGI's: ``buffer_size`` (``--buffer-size``), ``max_vars``
    (maximum number of request var *pairs*, i.e. 2 x ``--max-vars``), ``limit_post``
    (``--limit-post``, 0 = unlimited), ``persistent`` (``--puwsgi-socket``).
    ``request_modifiers`` are the modifier1 values decoded as vars + body requests.

    Buffering is bounded: once ``next_event()`` has returned ``NEED_DATA``, at most
    ``buffer_size + 4`` bytes (server) or one reply head of at most 64 KiB + 4
    (client) stay buffered; bytes uWSGI would never read are dropped on arrival.
    """

    __slots__ = (
        "_buf",
        "_eof",
        "_our_remaining",
        "_our_sent",
        "_reply",
        "_reply_head",
        "_request",
        "_request_header",
        "_their_remaining",
        "buffer_size",
        "limit_post",
        "max_vars",
        "our_state",
        "persistent",
        "request_modifiers",
        "role",
        "their_state",
    )

    def __init__(
        self,
        role: Role,
        *,
        buffer_size: int = 4096,
        max_vars: int = 128,
        limit_post: int = 0,
        persistent: bool = False,
        request_modifiers: Iterable[int] = VARS_MODIFIERS,
    ) -> None:
        if role is not CLIENT and role is not SERVER:
            raise LocalProtocolError(f"role must be CLIENT or SERVER, got {role!r}")
        if not isinstance(buffer_size, int) or buffer_size < 0:
            raise LocalProtocolError(f"buffer_size must be an int >= 0, got {buffer_size!r}")
        if not isinstance(max_vars, int) or max_vars < 0:
            raise LocalProtocolError(f"max_vars must be an int >= 0, got {max_vars!r}")
        if persistent and role is CLIENT:
            raise LocalProtocolError(
                "persistent=True models a --puwsgi-socket *server*; a client cannot frame "
                "replies that end at close, so it uses one connection per request"
            )
        self.role: Role = role
        self.buffer_size = buffer_size
        self.max_vars = max_vars
        self.limit_post = limit_post
        self.persistent = persistent
        self.request_modifiers = (
            request_modifiers
            if isinstance(request_modifiers, frozenset)
            else frozenset(request_modifiers)
        )
        self.our_state: State = _IDLE
        self.their_state: State = _IDLE
        self._buf = bytearray()
        self._eof = False
        self._request: RequestEvent | None = None
        self._request_header: Header | None = None
        self._reply: ReplyEvent | None = None
        self._reply_head = b""
        self._their_remaining: int | None = 0
        self._our_remaining: int | None = 0
        self._our_sent = 0

    def __repr__(self) -> str:
        return (
            f"<Connection {self.role!r} our_state={self.our_state!r} "
            f"their_state={self.their_state!r} buffered={len(self._buf)}>"
        )

    # -- inspection -------------------------------------------------------------

    @property
    def request(self) -> RequestEvent | None:
        """The request head of the current exchange (received or sent), if any."""
        return self._request

    @property
    def reply(self) -> ReplyEvent | None:
        """The reply head of the current exchange (sent or received), if any."""
        return self._reply

    @property
    def trailing_data(self) -> tuple[bytes, bool]:
        """Bytes received but not consumed, and whether EOF was received."""
        return bytes(self._buf), self._eof

    @property
    def keep_alive(self) -> bool:
        """Whether uWSGI keeps the connection after this exchange (puwsgi only).

        ``proto/puwsgi.c`` closes unless the handler left the request header's
        pktsize unchanged: ping, RPC modifier2 0 and simple cache get replies rewrite
        it (so they close unless the new size happens to be equal). A reply of
        ``NoReply`` keeps the connection open, as in uWSGI.
        """
        if not self.persistent or self._request_header is None:
            return False
        if self.our_state is _ERROR or self.their_state is _ERROR:
            return False
        return self._rewritten_pktsize() == self._request_header.pktsize

    def _rewritten_pktsize(self) -> int:
        assert self._request_header is not None
        reply = self._reply
        head = self._reply_head
        if isinstance(reply, (Pong, RpcResponse)) and len(head) >= 4:
            return int(head[1] | head[2] << 8)
        if isinstance(reply, CacheValue):
            if isinstance(self._request, CacheGet):
                return self._our_sent & 0xFFFF
            if isinstance(self._request, CacheGetStream):
                return 0
        return self._request_header.pktsize

    # -- receiving --------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the peer; ``b""`` means the peer closed its side (EOF)."""
        if self._eof:
            if data:
                raise LocalProtocolError(
                    f"receive_data() got {len(data)} byte(s) after EOF was already signalled"
                )
            return
        if not data:
            self._eof = True
            return
        state = self.their_state
        if state is _CLOSED or state is _ERROR or (state is _DONE and not self.persistent):
            return  # never read by uWSGI: dropped, so buffering stays bounded
        self._buf += data

    def next_event(self) -> Event | NeedData:
        """The next event from the peer, or :data:`NEED_DATA`."""
        if self.their_state is _ERROR:
            raise RemoteProtocolError(
                f"cannot receive: the peer ({'server' if self.role is CLIENT else 'client'}) "
                "already violated the protocol on this connection"
            )
        try:
            if self.their_state is _IDLE:
                if self.role is SERVER:
                    return self._next_request()
                return self._next_reply()
            if self.their_state is _BODY:
                return self._next_body()
            if self.their_state is _DONE:
                if not self.persistent:
                    self._buf.clear()
                if self._eof and not self._buf:
                    self.their_state = _CLOSED
                    return ConnectionClosed()
                return NEED_DATA
            return ConnectionClosed()
        except RemoteProtocolError:
            self.their_state = _ERROR
            raise

    def _next_request(self) -> Event | NeedData:
        buf = self._buf
        have = len(buf)
        if have < 4:
            if self._eof:
                if have:
                    raise RemoteProtocolError(
                        f"connection closed after {have} byte(s) of a uwsgi header: "
                        f"{bytes(buf)!r}"
                    )
                self.their_state = _CLOSED
                return ConnectionClosed()
            return NEED_DATA
        header = Header._make(_HEADER.unpack_from(buf))
        size = header.pktsize
        if size > self.buffer_size:
            raise RemoteProtocolError(
                f"invalid request block size: {size} (max {self.buffer_size})...skip "
                f"(modifier1 {header.modifier1}); raise buffer_size (--buffer-size) to accept it"
            )
        if self.persistent and size == 0:
            raise RemoteProtocolError(
                f"a puwsgi connection cannot serve a pktsize-0 packet (modifier1 "
                f"{header.modifier1}): uWSGI takes the empty payload read for EOF"
            )
        end = 4 + size
        if have < end:
            if self._eof:
                raise RemoteProtocolError(
                    f"connection closed {end - have} byte(s) before the end of a "
                    f"{size}-byte payload (modifier1 {header.modifier1})"
                )
            return NEED_DATA
        payload = bytes(buf[4:end])
        del buf[:end]
        event, stream = parse_packet(
            header,
            payload,
            max_vars=self.max_vars,
            limit_post=self.limit_post,
            request_modifiers=self.request_modifiers,
        )
        self._request = event
        self._request_header = header
        self._their_remaining = 0 if self.persistent else stream
        self.their_state = _BODY
        return event

    def _next_reply(self) -> Event | NeedData:
        buf = self._buf
        request = self._request
        if request is None:
            if buf:
                raise RemoteProtocolError(
                    f"the server sent {len(buf)} byte(s) before any request: {bytes(buf[:16])!r}"
                )
            if self._eof:
                self.their_state = _CLOSED
                return ConnectionClosed()
            return NEED_DATA
        if not buf:
            if self._eof:
                self.their_state = _CLOSED
                return NoReply()
            return NEED_DATA
        result = read_reply(request, buf, self._eof)
        if result is None:
            if self._eof:
                raise RemoteProtocolError(
                    f"connection closed inside the reply to {type(request).__name__} "
                    f"after {len(buf)} byte(s): {bytes(buf[:16])!r}"
                )
            return NEED_DATA
        event, consumed, stream = result
        del buf[:consumed]
        self._reply = event
        self._their_remaining = stream
        self.their_state = _BODY
        return event

    def _next_body(self) -> Event | NeedData:
        buf = self._buf
        remaining = self._their_remaining
        if remaining is None:
            if buf:
                data = bytes(buf)
                buf.clear()
                return Data(data=data)
            if self._eof:
                self.their_state = _DONE
                return EndOfMessage()
            return NEED_DATA
        if remaining == 0:
            self.their_state = _DONE
            if not self.persistent:
                buf.clear()
            return _EOM
        if buf:
            if len(buf) <= remaining:
                data = bytes(buf)
                buf.clear()
            else:
                data = bytes(buf[:remaining])
                del buf[:remaining]
            self._their_remaining = remaining - len(data)
            return Data(data=data)
        if self._eof:
            what = type(self._request if self.role is SERVER else self._reply).__name__
            raise RemoteProtocolError(
                f"connection closed {remaining} byte(s) before the end of the stream "
                f"announced by the {what}"
            )
        return NEED_DATA

    # -- sending ----------------------------------------------------------------

    def send(self, event: Event) -> bytes:
        """The bytes to write for ``event`` (``b""`` for EndOfMessage and NoReply)."""
        try:
            return self._send(event)
        except LocalProtocolError:
            if not isinstance(event, NoReply):
                self.our_state = _ERROR
            raise

    def send_message(self, head: RequestEvent | ReplyEvent, body: bytes = b"") -> bytes:
        """Convenience: ``send(head)``, ``send(Data(body))`` if any, ``send(EndOfMessage())``."""
        out = self.send(head)
        remaining = self._our_remaining
        if self.our_state is _BODY and type(body) is bytes and (
                remaining is None or remaining == len(body)):
            # the Data and EndOfMessage steps, which cannot fail here, in one
            self._our_remaining = None if remaining is None else 0
            self._our_sent += len(body)
            self.our_state = _DONE
            return out + body
        if body:
            out += self.send(Data(data=body))
        return out + self.send(_EOM)

    def _send(self, event: Event) -> bytes:
        state = self.our_state
        kind = _KINDS.get(type(event), _HEAD)
        new_state = TRANSITIONS[state].get(kind)
        if kind is _NO_REPLY:
            if self.role is not SERVER:
                raise LocalProtocolError("only a server answers NoReply (it closes the connection)")
            if state is _ERROR and self._reply is None:
                new_state = _CLOSED  # nothing was written yet: closing is still possible
        if new_state is None:
            raise LocalProtocolError(
                f"cannot send {type(event).__name__} as {self.role!r} in state {state!r} "
                f"({_HINTS[kind]})"
            )
        if kind is _DATA:
            assert isinstance(event, Data)
            data = event.data
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise LocalProtocolError(f"Data.data must be bytes, got {type(data).__name__}")
            remaining = self._our_remaining
            if remaining is not None:
                if len(data) > remaining:
                    raise LocalProtocolError(
                        f"Data of {len(data)} byte(s) exceeds the {remaining} byte(s) left of "
                        f"the stream announced by the {self._head_name()}"
                    )
                self._our_remaining = remaining - len(data)
            self._our_sent += len(data)
            return bytes(data)
        if kind is _END and self._our_remaining:
            raise LocalProtocolError(
                f"EndOfMessage with {self._our_remaining} byte(s) of the stream announced "
                f"by the {self._head_name()} still unsent"
            )
        if kind is not _HEAD:
            self.our_state = new_state
            return b""
        stream: int | None
        if self.role is CLIENT:
            if not isinstance(event, RequestEvent):
                raise LocalProtocolError(f"a client sends request events, not {event!r}")
            out, stream = encode_request(event)
            self._request = event
        else:
            if not isinstance(event, ReplyEvent):
                raise LocalProtocolError(f"a server sends reply events or NoReply, not {event!r}")
            request = self._request
            if request is None or self.their_state is _IDLE:
                raise LocalProtocolError(
                    f"cannot send {type(event).__name__} before a request head was received "
                    f"(their state {self.their_state!r})"
                )
            out, stream = encode_reply(request, event)
            self._reply = event
            self._reply_head = out
        self._our_remaining = stream
        self._our_sent = 0
        self.our_state = new_state
        return out

    def _head_name(self) -> str:
        head = self._request if self.role is CLIENT else self._reply
        return type(head).__name__

    # -- persistent (puwsgi) connections ----------------------------------------

    def start_next_cycle(self) -> None:
        """Reset a persistent server connection for the next packet.

        Allowed only when the request is complete, the reply was sent (or was
        ``NoReply``) and :attr:`keep_alive` is true; otherwise uWSGI closes.
        """
        if not self.persistent:
            raise LocalProtocolError(
                "start_next_cycle() needs persistent=True (--puwsgi-socket): a --socket "
                "connection serves exactly one request"
            )
        if self.their_state is not _DONE or self.our_state not in (_DONE, _CLOSED):
            raise LocalProtocolError(
                f"start_next_cycle() needs a complete request and reply; their state is "
                f"{self.their_state!r}, ours {self.our_state!r}"
            )
        if not self.keep_alive:
            raise LocalProtocolError(
                f"uWSGI closes this puwsgi connection: the {type(self._reply).__name__} "
                "rewrote the request header's pktsize"
            )
        self.our_state = self.their_state = _IDLE
        self._request = self._reply = None
        self._request_header = None
        self._reply_head = b""
        self._their_remaining = self._our_remaining = 0
        self._our_sent = 0
