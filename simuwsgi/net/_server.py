"""A trio server speaking uWSGI's ``--socket`` and ``--http-socket`` protocols.

It serves any *handler* - an async callable ``(request, body, peer) -> Reply`` - with
uWSGI's connection handling (``proto/uwsgi.c``, ``proto/http.c``, ``core/utils.c``
``wsgi_req_recv``, ``core/reader.c``; protocol.md §3):

* one request per connection: read the request (every wait for bytes bounded by
  ``--socket-timeout``, 4 s), call the handler, write the reply, close; bytes beyond
  the request are never read (a pipelined second request is not served, and closing
  with unread bytes makes the kernel send a RST, as it does for uWSGI);
* ``--socket``: the header, then ``pktsize`` bytes; a pktsize above ``--buffer-size``
  is refused as soon as the header is known (``invalid request block size: N (max
  M)...skip``); malformed packets and clients that disconnect or stall mid-packet are
  closed without a byte; the request body (``CONTENT_LENGTH``, cache ``size``) is read
  before the handler runs;
* ``--http-socket``: the head must end within ``--buffer-size`` bytes; the vars are
  built by :func:`simuwsgi.protocol.parse_http_request`; the reply is the same raw
  HTTP uWSGI writes on ``--socket``.

Every byte is produced and parsed by the sans-IO codec (:mod:`simuwsgi.protocol`).
Each connection is its own trio task, so a slow client never delays the others; a
request already complete at accept time that the handler can answer at once (a ping)
is answered inline. Listening sockets are made by :func:`simuwsgi.net.listen` (with
uWSGI's ``TCP_DEFER_ACCEPT``, a connection is accepted once its first bytes arrived).

Left out: uWSGI's worker occupancy while a request is being *read* (a real worker is
busy from ``accept`` on; here the handler is called once the request is complete),
lazy body reading by the app (the whole body is read first), ``--post-buffering``,
``--puwsgi-socket``, SSL and chunked request bodies.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio

from ..protocol import (
    NEED_DATA,
    SERVER,
    Connection,
    ConnectionClosed,
    Data,
    EndOfMessage,
    HttpResponse,
    NoReply,
    ProtocolError,
    RawResponse,
    RemoteProtocolError,
    RequestEvent,
    content_length,
    encode_http_head,
    last_value,
    parse_http_request,
    response_protocol,
)
from ._client import Reply

__all__ = ["Handler", "Limits", "Peer", "UwsgiServer"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Peer:
    """Who is on the other end, and on which of our sockets."""

    addr: str
    port: int = 0
    socket_name: str = ""
    protocol: str = "uwsgi"


@dataclass(frozen=True, kw_only=True, slots=True)
class Limits:
    """uWSGI's request limits: ``--buffer-size``, pairs (2 x ``--max-vars``),
    ``--limit-post`` and ``--socket-timeout``."""

    buffer_size: int = 4096
    max_vars: int = 128
    limit_post: int = 0
    socket_timeout: float = 4.0


Handler = Callable[[RequestEvent, bytes, Peer], Awaitable[Reply]]

_READ = 65536
_EOM = EndOfMessage()


class _Timeout(Exception):
    pass


def _peer_of(sock: socket.socket, socket_name: str, protocol: str) -> Peer:
    try:
        name = sock.getpeername()
    except OSError:
        name = None
    if isinstance(name, tuple):
        return Peer(addr=str(name[0]), port=int(name[1]), socket_name=socket_name,
                    protocol=protocol)
    return Peer(addr="", socket_name=socket_name, protocol=protocol)


def _stdlib_socket(listener: trio.SocketListener) -> socket.socket:
    """A non-blocking stdlib socket sharing the listener's file descriptor's fate."""
    lsock = socket.socket(fileno=listener.socket.detach())
    lsock.setblocking(False)
    return lsock


def _stream(sock: socket.socket) -> trio.SocketStream:
    return trio.SocketStream(trio.socket.from_stdlib_socket(sock))


class _Incoming:
    """A ``--socket`` request being read: the codec and what it delivered so far."""

    __slots__ = ("body", "complete", "conn", "first", "head")

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.head: RequestEvent | None = None
        self.body: list[bytes] = []
        self.first = b""
        self.complete = False

    def feed(self, data: bytes) -> bool:
        """Take bytes (b"" = EOF); True once the request is complete. Raises
        RemoteProtocolError for what uWSGI refuses, EOFError for a silent close."""
        if len(self.first) < 4:
            self.first += data[: 4 - len(self.first)]
        conn = self.conn
        conn.receive_data(data)
        while True:
            event = conn.next_event()
            if event is NEED_DATA:
                return False
            if isinstance(event, Data):
                self.body.append(event.data)
            elif isinstance(event, EndOfMessage):
                self.complete = True
                return True
            elif self.head is None and not isinstance(event, ConnectionClosed):
                self.head = event  # type: ignore[assignment]
            else:
                raise EOFError


class UwsgiServer:
    """Serve ``handler`` on listeners; ``log`` receives the lines uWSGI would log.

    ``answer_now(request, body, peer) -> Reply | None``, if given, is a synchronous
    answer for requests that need no waiting (a ping): a ``--socket`` request complete
    at accept time is then answered inline, without a task.
    """

    def __init__(
        self,
        handler: Handler,
        *,
        limits: Limits | None = None,
        hostname: bytes = b"simuwsgi",
        log: Callable[[str], None] | None = None,
        answer_now: Callable[[RequestEvent, bytes, Peer], Reply | None] | None = None,
    ) -> None:
        self.handler = handler
        self.answer_now = answer_now
        self.limits = limits or Limits()
        self.hostname = hostname
        self.log = log or (lambda line: None)
        #: connections accepted (for tests and benchmarks)
        self.accepted = 0

    # -- serving ----------------------------------------------------------------------
    async def serve(
        self,
        listener: trio.SocketListener,
        *,
        protocol: str = "uwsgi",
        socket_name: str | None = None,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Accept connections on ``listener`` forever (``protocol``: uwsgi or http).

        The listener is taken over (closing it is this method's business).
        """
        if protocol not in ("uwsgi", "http"):
            raise ValueError(f"protocol must be 'uwsgi' or 'http', not {protocol!r}")
        name = socket_name or _socket_name(listener)
        lsock = _stdlib_socket(listener)
        answer_now = self.answer_now
        try:
            async with trio.open_nursery() as nursery:
                task_status.started()
                while True:
                    await trio.lowlevel.wait_readable(lsock)
                    while True:  # drain the backlog: one wake-up, many connections
                        try:
                            sock, _addr = lsock.accept()
                        except BlockingIOError:
                            break
                        except OSError as exc:  # e.g. EMFILE: uWSGI logs and goes on
                            self.log(f"accept(): {exc.strerror}")
                            await trio.sleep(0.01)
                            break
                        self.accepted += 1
                        sock.setblocking(False)
                        if protocol == "http":
                            nursery.start_soon(self.handle_http, _stream(sock), name)
                            continue
                        incoming = _Incoming(self._new_connection())
                        if self._answer_inline(sock, incoming, name, answer_now):
                            continue
                        nursery.start_soon(self.handle_uwsgi, _stream(sock), name, incoming)
                    await trio.lowlevel.checkpoint()
        finally:
            lsock.close()

    def _new_connection(self) -> Connection:
        limits = self.limits
        return Connection(SERVER, buffer_size=limits.buffer_size, max_vars=limits.max_vars,
                          limit_post=limits.limit_post)

    def _answer_inline(self, sock: socket.socket, incoming: _Incoming, name: str,
                       answer_now: Callable[..., Reply | None] | None) -> bool:
        """Read what already arrived; answer at once if possible. False = a task must
        carry on with ``incoming``."""
        try:
            data = sock.recv(_READ)
        except BlockingIOError:
            return False
        except OSError:
            sock.close()
            return True
        try:
            if not incoming.feed(data):
                return False
        except RemoteProtocolError as exc:
            self._log_refusal(incoming.first, exc)
            sock.close()
            return True
        except EOFError:
            sock.close()
            return True
        if answer_now is None:
            return False
        assert incoming.head is not None
        reply = answer_now(incoming.head, b"".join(incoming.body),
                           _peer_of(sock, name, "uwsgi"))
        if reply is None:
            return False
        out = self._reply_bytes(incoming.conn, reply)
        try:
            if out and sock.send(out) < len(out):
                self.log("[simuwsgi] inline reply cut short by a full socket buffer")
        except OSError:
            pass  # the client went away: uWSGI counts a write error and goes on
        sock.close()
        return True

    # -- the uwsgi protocol -------------------------------------------------------------
    async def handle_uwsgi(self, stream: trio.SocketStream, socket_name: str = "",
                           incoming: _Incoming | None = None) -> None:
        """Serve one ``--socket`` connection (``incoming``: what was read already)."""
        if incoming is None:
            incoming = _Incoming(self._new_connection())
        try:
            try:
                while not incoming.complete:
                    incoming.feed(await self._read(stream))
            except RemoteProtocolError as exc:
                self._log_refusal(incoming.first, exc)
                return
            except (_Timeout, EOFError):
                return
            assert incoming.head is not None
            reply = await self.handler(incoming.head, b"".join(incoming.body),
                                       _peer_of(stream.socket, socket_name, "uwsgi"))
            await self._write(stream, self._reply_bytes(incoming.conn, reply))
        finally:
            with trio.CancelScope(shield=True):
                await stream.aclose()

    async def _read(self, stream: trio.SocketStream) -> bytes:
        """One read, bounded by ``--socket-timeout``; a reset reads as EOF."""
        with trio.move_on_after(self.limits.socket_timeout):
            try:
                return await stream.receive_some(_READ)
            except trio.BrokenResourceError:
                return b""
        raise _Timeout

    def _log_refusal(self, first: bytes, exc: RemoteProtocolError) -> None:
        if len(first) == 4:
            size = first[1] | first[2] << 8
            if size > self.limits.buffer_size:
                self.log(f"invalid request block size: {size} (max {self.limits.buffer_size})"
                         "...skip")
                return
            if size == 0 and first[0] in (0, 30):
                self.log("Empty python request. skip.")
            elif size == 0 and first[0] == 173:
                self.log("Empty RPC request. skip.")

    def _reply_bytes(self, conn: Connection, reply: Reply) -> bytes:
        """The bytes of ``reply`` (``b""`` for NoReply: just close)."""
        try:
            if isinstance(reply.head, NoReply):
                conn.send(reply.head)
                return b""
            out = conn.send(reply.head)
            if reply.body:
                out += conn.send(Data(data=reply.body))
            return out + conn.send(_EOM)
        except ProtocolError as exc:
            self.log(f"[simuwsgi] the handler's reply cannot be sent: {exc}")
            return b""

    async def _write(self, stream: trio.SocketStream, data: bytes) -> None:
        if not data:
            return
        try:
            with trio.move_on_after(self.limits.socket_timeout):
                await stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client went away: uWSGI counts a write error and goes on

    # -- the http protocol ----------------------------------------------------------------
    async def handle_http(self, stream: trio.SocketStream, socket_name: str = "") -> None:
        """Serve one ``--http-socket`` connection."""
        limits = self.limits
        peer = _peer_of(stream.socket, socket_name, "http")
        port = socket_name.rpartition(":")[2] if ":" in socket_name else "80"
        buf = bytearray()
        try:
            try:
                while True:
                    head = parse_http_request(
                        buf, hostname=self.hostname, server_port=port.encode(),
                        remote_addr=peer.addr.encode(), buffer_size=limits.buffer_size)
                    if head is not None:
                        break
                    data = await self._read(stream)
                    if not data:
                        if buf:
                            self.log("uwsgi_proto_http_parser() -> client closed connection")
                        return
                    buf += data
                for line in head.warnings:
                    self.log(line)
                request = head.request
                cl = last_value(request.vars, b"CONTENT_LENGTH")
                wanted = content_length(cl) if cl is not None else 0
                if limits.limit_post and wanted > limits.limit_post:
                    self.log("Invalid (too big) CONTENT_LENGTH. skip.")
                    return
                body = bytearray(buf[head.consumed:])
                while len(body) < wanted:
                    data = await self._read(stream)
                    if not data:
                        return
                    body += data
            except RemoteProtocolError as exc:
                self.log(str(exc))
                return
            except _Timeout:
                return
            reply = await self.handler(request, bytes(body[:wanted]), peer)
            await self._write(stream, _http_bytes(request.vars, reply))
        finally:
            with trio.CancelScope(shield=True):
                await stream.aclose()


def _http_bytes(vars: tuple[tuple[bytes, bytes], ...], reply: Reply) -> bytes:
    head = reply.head
    if isinstance(head, NoReply):
        return b""
    if isinstance(head, HttpResponse):
        return encode_http_head(head, response_protocol(vars)) + reply.body
    if isinstance(head, RawResponse):
        return reply.body
    return b""  # a uwsgi-framed reply cannot travel on --http-socket


def _socket_name(listener: trio.SocketListener) -> str:
    name = listener.socket.getsockname()
    if isinstance(name, tuple):
        return f"{name[0]}:{name[1]}"
    if isinstance(name, bytes):
        return "@" + name[1:].decode("latin-1") if name[:1] == b"\0" else name.decode()
    return str(name)
