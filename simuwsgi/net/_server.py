"""A trio server speaking uWSGI's ``--socket`` and ``--http-socket`` protocols.

It serves any *handler* - an async callable ``(request, body, peer) -> Reply`` - with
uWSGI's connection handling (``proto/uwsgi.c``, ``proto/http.c``, ``core/utils.c``
``wsgi_req_recv``, ``core/reader.c``; protocol.md §3):

* one request per connection: read the request (every wait for bytes bounded by
  ``--socket-timeout``, 4 s), call the handler, write the reply (or let the handler
  write it as it is produced, through ``peer.stream``), close; bytes beyond
  the request are never read (a pipelined second request is not served, and closing
  with unread bytes makes the kernel send a RST, as it does for uWSGI);
* ``--socket``: the header, then ``pktsize`` bytes; a pktsize above ``--buffer-size``
  is refused as soon as the header is known (``invalid request block size: N (max
  M)...skip``); malformed packets and clients that disconnect or stall mid-packet are
  closed without a byte; the request body (``CONTENT_LENGTH``, cache ``size``) is read
  before the handler runs, in memory up to ``--post-buffering`` bytes (64 KiB without
  it) and in a temporary file beyond, so the handler gets ``bytes`` or a binary file;
* ``--http-socket``: the head must end within ``--buffer-size`` bytes; the vars are
  built by :func:`simuwsgi.protocol.parse_http_request`; the reply is the same raw
  HTTP uWSGI writes on ``--socket``.

Every byte is produced and parsed by the sans-IO codec (:mod:`simuwsgi.protocol`) and
the HTTP parser, but for the common case their C twin takes (``_cserve.c``, when
built: accept, the first read, and the vars of a plain WSGI packet or a simple HTTP
head complete in it; the reply to a vars-framed request is the raw HTTP the codec
would write, made without its states). Each connection is its own trio task; a request
already complete at accept time that the handler can answer at once (a ping, a
simulated request that completes) is answered inline. Listening sockets are made by
:func:`simuwsgi.net.listen` (with uWSGI's ``TCP_DEFER_ACCEPT``, a connection is
accepted once its first bytes arrived).

With ``workers=N`` (``simuwsgi serve``: processes x cores) at most N connections are
served at once, on all listeners together, as a uWSGI worker is busy from ``accept``
until it closes the connection: a slow client holds its worker while its request is
read, and the next connections wait in the listen queue, not accepted. Without it,
every connection is accepted and served at once.

Left out: lazy body reading by the app (the whole body is read first, as with
``--post-buffering``), ``--post-buffering-bufsize``, ``--puwsgi-socket``, SSL and
chunked request bodies.
"""

from __future__ import annotations

import math
import select
import socket
import tempfile
from _socket import socket as _raw_socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import trio

from .._core.accel import load
from ..protocol import (
    NEED_DATA,
    SERVER,
    Connection,
    ConnectionClosed,
    Data,
    EndOfMessage,
    HttpResponse,
    NoReply,
    Ping,
    Pong,
    ProtocolError,
    RawResponse,
    RemoteProtocolError,
    Request,
    RequestEvent,
    content_length,
    encode_http_head,
    last_value,
    parse_http_request,
    response_protocol,
)
from ..protocol._control import encode_pong
from ..protocol._dispatch import encode_reply
from ._client import Reply

_cserve = load(f"{__package__}._cserve", "Taker", "text_vars")

__all__ = ["Body", "ClientStream", "Handler", "Limits", "Peer", "UwsgiServer"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Peer:
    """Who is on the other end, and on which of our sockets; ``stream`` writes on the
    connection while the request is served (for a reply written as it is produced)."""

    addr: str
    port: int = 0
    socket_name: str = ""
    protocol: str = "uwsgi"
    stream: ClientStream | None = field(default=None, compare=False, repr=False)


class ClientStream:
    """The client's connection while its request is served: a handler that writes the
    reply itself, as it is produced, sends here instead of returning it (every wait for
    the client bounded by ``--socket-timeout``). After a failed write (the client went
    away or stopped reading) ``error`` says why and later writes are dropped, as uWSGI
    drops a response after a write error."""

    __slots__ = ("_server", "_sock", "error")

    def __init__(self, server: UwsgiServer, sock: socket.socket) -> None:
        self._server = server
        self._sock = sock
        #: why a write failed: the system's words (``Connection reset by peer``...),
        #: or :data:`TIMEOUT`; None while every write succeeded
        self.error: str | None = None

    def try_send(self, data: bytes | memoryview) -> int:
        """Write what the socket takes now; how many bytes are done with."""
        if self.error is not None:
            return len(data)
        try:
            return self._sock.send(data)
        except BlockingIOError:
            return 0
        except OSError as exc:
            self.error = exc.strerror or str(exc)
            return len(data)

    async def send_all(self, data: bytes | memoryview) -> None:
        """Write all of ``data``, waiting for the client as long as it reads."""
        if self.error is None:
            self.error = await self._server._send_all(self._sock, data)


@dataclass(frozen=True, kw_only=True, slots=True)
class Limits:
    """uWSGI's request limits: ``--buffer-size``, pairs (2 x ``--max-vars``),
    ``--limit-post``, ``--socket-timeout`` and ``--post-buffering`` (a body larger than
    this is kept in a temporary file; 0: above :data:`SPOOL_ABOVE` bytes)."""

    buffer_size: int = 4096
    max_vars: int = 128
    limit_post: int = 0
    socket_timeout: float = 4.0
    post_buffering: int = 0


def limits_from(opts: Any) -> Limits:
    """The server limits a uWSGI instance with these options applies."""
    return Limits(
        buffer_size=min(0xFFFF, opts.int("buffer-size", 4096)),
        max_vars=2 * opts.int("max-vars", 64),
        limit_post=opts.int("limit-post", 0),
        socket_timeout=float(opts.int("socket-timeout", 4)),
        post_buffering=opts.int("post-buffering", 0),
    )


#: A request body: bytes, or a binary file at offset 0 when it was too big for memory.
Body = bytes | BinaryIO
Handler = Callable[[RequestEvent, Body, Peer], Awaitable[Reply]]

_READ = 65536
#: Connections accepted per wake-up before the other tasks get a turn.
_ACCEPT_BATCH = 64
#: Without ``--post-buffering``, a request body above this many bytes goes to a file.
SPOOL_ABOVE = 65536
#: :attr:`ClientStream.error` of a client that stopped reading for ``--socket-timeout``.
TIMEOUT = "TIMEOUT"
_EOM = EndOfMessage()
_PING = Ping()
#: A ping (modifier1 100), as ``uwsgi --ping`` sends it.
_PING_PACKET = b"\x64\x00\x00\x00"
#: The replies to a vars-framed request (a WSGI one): raw HTTP, or nothing.
_HTTP_REPLIES = (HttpResponse, RawResponse, NoReply)


class _Timeout(Exception):
    """A wait for the client outlived ``--socket-timeout``."""


class _Refused(Exception):
    """uWSGI closes this connection without a reply (already logged)."""


#: What ``uwsgi_parse_vars`` logs when it refuses a request (core/protocol.c), by the
#: start of the codec's message.
_PARSE_VARS_LINES = (
    ("max vec size reached", "max vec size reached. skip this var."),
    ("Invalid (too big) CONTENT_LENGTH", "Invalid (too big) CONTENT_LENGTH. skip."),
)


def _peer_of(name: Any, socket_name: str, protocol: str,
             stream: ClientStream | None = None) -> Peer:
    """The peer of a connection whose address ``accept()`` returned (a host and port
    for TCP; anything else, a UNIX socket's, is no address)."""
    if isinstance(name, tuple):
        return Peer(addr=str(name[0]), port=int(name[1]), socket_name=socket_name,
                    protocol=protocol, stream=stream)
    return Peer(addr="", socket_name=socket_name, protocol=protocol, stream=stream)


def _stdlib_socket(listener: trio.SocketListener) -> socket.socket:
    """A non-blocking stdlib socket sharing the listener's file descriptor's fate."""
    lsock = socket.socket(fileno=listener.socket.detach())
    lsock.setblocking(False)
    return lsock


def _acceptor(lsock: socket.socket) -> Callable[[], tuple[_raw_socket, Any]]:
    """``lsock.accept()`` returning the C-level socket: ``socket.socket.accept`` builds
    its Python wrapper class and converts family and type to enums (a third of the
    call's cost, per connection); the server only sends, receives and closes."""
    family, kind, proto = int(lsock.family), int(lsock.type), lsock.proto
    accept = lsock._accept  # type: ignore[attr-defined]

    def accept_one() -> tuple[_raw_socket, Any]:
        fd, addr = accept()
        return _raw_socket(family, kind, proto, fd), addr

    return accept_one


def _python_taker(lsock: socket.socket,
                  other: Callable[[socket.socket, Any, bytes | None], Any]) -> Callable[[], Any]:
    """The Python twin of ``_cserve.Taker.take``: accept a connection, read once and give
    ``other`` the socket, the peer's address and the bytes (None: none yet). False when
    no connection waits, None when the read failed (closed), the OSError of a failed
    accept; else what ``other`` returned."""
    accept = _acceptor(lsock)

    def take() -> Any:
        try:
            sock, addr = accept()
        except BlockingIOError:
            return False
        except OSError as exc:
            return exc
        sock.setblocking(False)
        try:
            data = sock.recv(_READ)
        except BlockingIOError:
            data = None
        except OSError:
            sock.close()
            return None
        return other(sock, addr, data)

    return take


def _idle_wait(lsock: socket.socket) -> Callable[[], bool] | None:
    """What waits for the next connection on ``lsock`` while trio has nothing else to do,
    without a pass through trio's run loop (a third of a ping's cost): returns True once
    the listener is readable and trio still has nothing to do; False when a task is
    runnable, a deadline is due or another descriptor trio waits on is ready (trio's
    epoll descriptor is watched with the listener), so the caller goes back to trio.

    This is the wait trio itself would do (blocked in ``epoll_wait`` until a descriptor
    or the next deadline); it reads trio's run state, so it is used only with the run
    state of the trio this was written for (0.23 to 0.35: the epoll backend, trio's
    system clock, not a guest run); None otherwise: every wait goes through trio.
    """
    try:
        from trio._core._run import GLOBAL_RUN_CONTEXT, SystemClock

        runner = GLOBAL_RUN_CONTEXT.runner
        epoll = runner.io_manager._epoll
        runq, waiting_for_idle = runner.runq, runner.waiting_for_idle
        next_deadline, clock = runner.deadlines.next_deadline, runner.clock
    except (ImportError, AttributeError):
        return None
    if type(clock) is not SystemClock or getattr(runner, "is_guest", True):
        return None  # a test's clock (its time is not the real one), or a guest run (its
        # host loop waits on the descriptors, in a thread of its own)
    poller = select.poll()
    poller.register(epoll.fileno(), select.POLLIN)
    poller.register(lsock.fileno(), select.POLLIN)
    listener = lsock.fileno()
    now = clock.current_time

    def wait() -> bool:
        if runq or waiting_for_idle:
            return False
        left = next_deadline() - now()
        if left <= 0:
            return False
        ready = poller.poll(-1 if left > 86400 else math.ceil(left * 1000))
        return len(ready) == 1 and ready[0][0] == listener

    return wait


class _Body:
    """A request body as it arrives: in memory up to ``spool_above`` bytes, then in an
    anonymous temporary file, as uWSGI's ``--post-buffering`` moves a larger body to a
    ``uwsgi_tmpfile`` (core/reader.c): a big POST does not grow the process."""

    __slots__ = ("_file", "_memory", "size", "spool_above")

    def __init__(self, spool_above: int) -> None:
        self.spool_above = spool_above
        self._memory = bytearray()
        self._file: BinaryIO | None = None
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.size += len(data)
        if self._file is not None:
            self._file.write(data)
            return
        self._memory += data
        if len(self._memory) > self.spool_above:
            self._file = tempfile.TemporaryFile(prefix="uwsgi-body-")  # noqa: SIM115
            self._file.write(self._memory)
            self._memory = bytearray()

    def value(self) -> bytes | BinaryIO:
        """The body: bytes, or the file (at offset 0) once it outgrew memory."""
        if self._file is None:
            return bytes(self._memory)
        self._file.seek(0)
        return self._file

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


class _Incoming:
    """A ``--socket`` request being read: the codec and what it delivered so far."""

    __slots__ = ("body", "complete", "conn", "first", "head")

    def __init__(self, conn: Connection | None, body: _Body) -> None:
        #: the codec reading the request (None: the C twin read a plain one)
        self.conn = conn
        self.head: RequestEvent | None = None
        self.body = body
        self.first = b""
        self.complete = False

    def feed(self, data: bytes) -> bool:
        """Take bytes (b"" = EOF); True once the request is complete. Raises
        RemoteProtocolError for what uWSGI refuses, EOFError for a silent close."""
        if len(self.first) < 4:
            self.first += data[: 4 - len(self.first)]
        conn = self.conn
        assert conn is not None
        conn.receive_data(data)
        while True:
            event = conn.next_event()
            if event is NEED_DATA:
                return False
            if isinstance(event, Data):
                self.body.write(event.data)
            elif isinstance(event, EndOfMessage):
                self.complete = True
                return True
            elif self.head is None and not isinstance(event, ConnectionClosed):
                self.head = event  # type: ignore[assignment]
            else:
                raise EOFError


class UwsgiServer:
    """Serve ``handler`` on listeners; ``log`` receives the lines uWSGI would log.

    ``answer_now(request, body, peer)``, if given, is tried first for every complete
    request: a ``Reply`` is the answer (given at once: a request complete at accept time
    is then answered inline, without a task), an awaitable is the answer under way
    (awaited in a task), ``None`` means "call ``handler``".
    """

    def __init__(
        self,
        handler: Handler,
        *,
        limits: Limits | None = None,
        hostname: bytes = b"simuwsgi",
        log: Callable[[str], None] | None = None,
        answer_now: Callable[[RequestEvent, Body, Peer], Reply | Awaitable[Reply] | None]
        | None = None,
        workers: int | None = None,
    ) -> None:
        self.handler = handler
        #: How many connections are served at once, on all listeners (None: any
        #: number); the others wait in the listen queue, not accepted.
        self.workers = workers
        self._free: trio.Semaphore | None = None
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
        take = self._taker(lsock, name, protocol)
        if self.workers is not None and self._free is None:
            self._free = trio.Semaphore(self.workers)
        free = self._free
        idle = _idle_wait(lsock)
        try:
            async with trio.open_nursery() as nursery:
                task_status.started()
                while True:
                    await trio.lowlevel.wait_readable(lsock)
                    while True:
                        if not await self._take_batch(take, nursery, free):
                            await trio.lowlevel.checkpoint()  # a full batch: others first
                        elif idle is None or not idle():  # trio has work of its own
                            break
        finally:
            lsock.close()

    async def _take_batch(self, take: Callable[[], Any], nursery: trio.Nursery,
                          free: trio.Semaphore | None) -> bool:
        """Take the connections waiting, up to a batch (one wake-up, many connections);
        False when the batch was full."""
        for _ in range(_ACCEPT_BATCH):
            # a worker free to accept it; one served inline (and closed) before
            # anything else runs never holds it
            held = False
            if free is not None and free.value == 0:  # all busy: wait
                await free.acquire()
                held = True
            task = take()
            if type(task) is tuple:  # what serves the rest, in a task
                if free is not None and not held:
                    free.acquire_nowait()  # free since the check: nothing ran
                self.accepted += 1
                nursery.start_soon(self._in_worker, *task)
                continue
            if held:
                self._release()
            if task is None:  # served (or refused) and closed
                self.accepted += 1
            elif task is False:  # none waiting
                return True
            else:  # accept failed, e.g. EMFILE: uWSGI logs and goes on
                self.log(f"accept(): {task.strerror}")
                await trio.sleep(0.01)
                return True
        return False

    def _taker(self, lsock: socket.socket, name: str, protocol: str) -> Callable[[], Any]:
        """What takes one connection off ``lsock`` (see :func:`_python_taker`): the C
        twin on an IPv4 listener when it is built, else the Python one."""

        def other(sock: socket.socket, addr: Any, data: bytes | None) -> Any:
            return self._accepted(sock, addr, name, protocol, data)

        if _cserve is None or lsock.family != socket.AF_INET:
            return _python_taker(lsock, other)

        def plain(sock: socket.socket, addr: Any, vars: tuple[tuple[bytes, bytes], ...],
                  modifier1: int, modifier2: int) -> Any:
            body = _Body(self.limits.post_buffering or SPOOL_ABOVE)
            reading = _Incoming(None, body) if protocol == "uwsgi" else _HttpIncoming(body)
            reading.head = Request(vars=vars, modifier1=modifier1, modifier2=modifier2)
            reading.complete = True
            return self._answer_inline(sock, reading, _peer_of(addr, name, protocol,
                                                               ClientStream(self, sock)))

        limits = self.limits
        family, kind = int(lsock.family), int(lsock.type) | socket.SOCK_NONBLOCK
        http = () if protocol == "uwsgi" else ((self.hostname, _server_port(name)),)
        answer_now = self.answer_now

        def ping(fd: int, addr: Any) -> bytes | tuple[Any, ...] | None:
            """A ping alone in the first read: the bytes of a Pong (or of no reply) given
            at once; any other answer goes the way of every request (the codec reads
            the ping again)."""
            assert answer_now is not None
            answer = answer_now(_PING, b"", _peer_of(addr, name, protocol))
            if isinstance(answer, Reply) and not answer.body:
                if isinstance(answer.head, NoReply):
                    return b""
                if isinstance(answer.head, Pong):
                    return encode_pong(answer.head)
            sock = _raw_socket(family, kind, lsock.proto, fd)
            reading = _Incoming(self._new_connection(),
                                _Body(self.limits.post_buffering or SPOOL_ABOVE))
            reading.feed(_PING_PACKET)
            peer = _peer_of(addr, name, protocol, ClientStream(self, sock))
            return self._send_answer(sock, reading, peer, answer)

        return _cserve.Taker(
            lsock.fileno(), family, kind, lsock.proto, _raw_socket, limits.buffer_size,
            limits.max_vars, plain, other, *http,
            ping=ping if answer_now is not None and protocol == "uwsgi" else None).take

    def _release(self) -> None:
        if self._free is not None:
            self._free.release()

    async def _in_worker(self, serve: Callable[..., Awaitable[None]], *args: Any) -> None:
        """Serve a connection in a task; its worker is busy until it is closed."""
        try:
            await serve(*args)
        finally:
            self._release()

    def _accepted(self, sock: socket.socket, addr: Any, name: str, protocol: str,
                  data: bytes | None) -> tuple[Any, ...] | None:
        """Serve a new connection inline while nothing has to wait (with
        ``TCP_DEFER_ACCEPT`` a small request has arrived whole in ``data``, the first
        read, and a simulated node answers it at once): None once it is closed; else
        what serves the rest in a task of its own, and its arguments."""
        body = _Body(self.limits.post_buffering or SPOOL_ABOVE)
        reading = (_Incoming(self._new_connection(), body) if protocol == "uwsgi"
                   else _HttpIncoming(body))
        peer = _peer_of(addr, name, protocol, ClientStream(self, sock))
        if data is None:
            return self._serve_connection, sock, peer, reading
        try:
            if not self._feed(reading, data, peer):
                return self._serve_connection, sock, peer, reading
        except _Refused:
            body.close()
            sock.close()
            return None
        return self._answer_inline(sock, reading, peer)

    def _answer_inline(self, sock: socket.socket, reading: _Incoming | _HttpIncoming,
                       peer: Peer) -> tuple[Any, ...] | None:
        """Answer a complete request, inline if the answer is known now (see
        :meth:`_accepted`)."""
        return self._send_answer(sock, reading, peer, self._answer_now(reading, peer))

    def _send_answer(self, sock: socket.socket, reading: _Incoming | _HttpIncoming,
                     peer: Peer, answer: Reply | Awaitable[Reply] | None
                     ) -> tuple[Any, ...] | None:
        """Send ``answer`` and close (None) if it is a Reply; else what serves the rest
        in a task, and its arguments."""
        body = reading.body
        if not isinstance(answer, Reply):
            return self._respond, sock, reading, peer, answer
        body.close()
        out = self._reply_bytes(reading, answer)
        try:
            sent = sock.send(out) if out else 0
        except OSError:
            sent = len(out)  # the client went away: uWSGI counts a write error, goes on
        if sent < len(out):
            return self._write_and_close, sock, memoryview(out)[sent:]
        sock.close()
        return None

    def _new_connection(self) -> Connection:
        limits = self.limits
        return Connection(SERVER, buffer_size=limits.buffer_size, max_vars=limits.max_vars,
                          limit_post=limits.limit_post)

    def _feed(self, reading: _Incoming | _HttpIncoming, data: bytes, peer: Peer) -> bool:
        """Give ``reading`` the bytes read (b"" = EOF); True once the request is whole.
        Raises _Refused (after logging what uWSGI logs) when the connection must close."""
        try:
            if isinstance(reading, _Incoming):
                return reading.feed(data)
            return reading.feed(data, self, peer)
        except RemoteProtocolError as exc:
            self._log_refusal(reading.first, exc)
            raise _Refused from None
        except EOFError:
            raise _Refused from None

    async def _serve_connection(self, sock: socket.socket, peer: Peer,
                                reading: _Incoming | _HttpIncoming) -> None:
        """Finish reading a request (each wait bounded by ``--socket-timeout``), then
        answer it."""
        try:
            while not self._feed(reading, await self._read(sock), peer):
                pass
        except (_Refused, _Timeout):
            reading.body.close()
            sock.close()
            return
        answer = self._answer_now(reading, peer)
        if isinstance(answer, Reply):
            reading.body.close()
            await self._write_and_close(sock, self._reply_bytes(reading, answer))
        else:
            await self._respond(sock, reading, peer, answer)

    def _answer_now(self, reading: _Incoming | _HttpIncoming,
                    peer: Peer) -> Reply | Awaitable[Reply] | None:
        if self.answer_now is None:
            return None
        assert reading.head is not None
        return self.answer_now(reading.head, reading.body.value(), peer)

    async def _respond(self, sock: socket.socket, reading: _Incoming | _HttpIncoming,
                       peer: Peer, pending: Awaitable[Reply] | None) -> None:
        """Wait for the reply (``pending``, or the handler's) and write it."""
        try:
            if pending is None:
                assert reading.head is not None
                pending = self.handler(reading.head, reading.body.value(), peer)
            reply = await pending
        except BaseException:
            sock.close()
            raise
        finally:
            reading.body.close()
        await self._write_and_close(sock, self._reply_bytes(reading, reply))

    async def _read(self, sock: socket.socket) -> bytes:
        """One read, bounded by ``--socket-timeout``; a reset reads as EOF."""
        while True:
            try:
                return sock.recv(_READ)
            except BlockingIOError:
                pass
            except OSError:
                return b""
            with trio.move_on_after(self.limits.socket_timeout) as scope:
                await trio.lowlevel.wait_readable(sock)
            if scope.cancelled_caught:
                raise _Timeout

    async def _write_and_close(self, sock: socket.socket, data: bytes | memoryview) -> None:
        try:
            await self._send_all(sock, data)  # a failure: uWSGI counts it and goes on
        finally:
            sock.close()

    async def _send_all(self, sock: socket.socket, data: bytes | memoryview) -> str | None:
        """Write ``data``, each wait for the client bounded by ``--socket-timeout`` (a
        slow reader gets everything; one that stops reading is dropped). None, or why
        it failed (see :attr:`ClientStream.error`)."""
        view = memoryview(data)
        while view:
            try:
                view = view[sock.send(view):]
                continue
            except BlockingIOError:
                pass
            except OSError as exc:  # the client went away
                return exc.strerror or str(exc)
            with trio.move_on_after(self.limits.socket_timeout) as scope:
                await trio.lowlevel.wait_writable(sock)
            if scope.cancelled_caught:
                self.log("uwsgi_response_write_body_do() TIMEOUT !!!")
                return TIMEOUT
        return None

    def _log_refusal(self, first: bytes, exc: RemoteProtocolError) -> None:
        if len(first) != 4:  # the http parser: its message is uWSGI's log line
            self.log(str(exc))
            return
        for start, line in _PARSE_VARS_LINES:
            if str(exc).startswith(start):
                self.log(line)
                return
        size = first[1] | first[2] << 8
        if size > self.limits.buffer_size:
            self.log(f"invalid request block size: {size} (max {self.limits.buffer_size})"
                     "...skip")
            return
        if size == 0 and first[0] in (0, 30):
            self.log("Empty python request. skip.")
        elif size == 0 and first[0] == 173:
            self.log("Empty RPC request. skip.")

    def _reply_bytes(self, reading: _Incoming | _HttpIncoming, reply: Reply) -> bytes:
        """The bytes of ``reply`` (``b""`` for NoReply: just close)."""
        head = reading.head
        if isinstance(reading, _HttpIncoming):
            assert head is not None
            return _http_bytes(head.vars, reply)
        if isinstance(head, Request):  # raw HTTP, as the codec writes it
            if not isinstance(reply.head, _HTTP_REPLIES):
                try:  # the codec's refusal
                    encode_reply(head, reply.head)
                except ProtocolError as exc:
                    self.log(f"[simuwsgi] the handler's reply cannot be sent: {exc}")
                    return b""
            return _http_bytes(head.vars, reply)
        conn = reading.conn
        assert conn is not None
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


class _HttpIncoming:
    """An ``--http-socket`` request being read: the head, then ``CONTENT_LENGTH`` bytes."""

    __slots__ = ("body", "buffer", "complete", "first", "head", "wanted")

    def __init__(self, body: _Body) -> None:
        self.buffer = bytearray()  # the head as it arrives
        self.body = body
        self.head: RequestEvent | None = None
        self.wanted = 0
        self.first = b""
        self.complete = False

    def feed(self, data: bytes, server: UwsgiServer, peer: Peer) -> bool:
        """Take bytes (b"" = EOF); True once the request is complete."""
        if not data:
            if self.buffer and self.head is None:
                server.log("uwsgi_proto_http_parser() -> client closed connection")
            raise EOFError
        if self.head is not None:
            self.body.write(memoryview(data)[:self.wanted - self.body.size])
        else:
            self.buffer += data
            limits = server.limits
            head = parse_http_request(
                self.buffer, hostname=server.hostname,
                server_port=_server_port(peer.socket_name),
                remote_addr=peer.addr.encode(), buffer_size=limits.buffer_size)
            if head is None:
                return False
            for line in head.warnings:
                server.log(line)
            if len(head.request.vars) > limits.max_vars:  # uwsgi_parse_vars, as --socket
                raise RemoteProtocolError("max vec size reached. skip this var.")
            self.head = head.request
            cl = last_value(head.request.vars, b"CONTENT_LENGTH")
            self.wanted = content_length(cl) if cl is not None else 0
            if limits.limit_post and self.wanted > limits.limit_post:
                raise RemoteProtocolError("Invalid (too big) CONTENT_LENGTH. skip.")
            self.body.write(memoryview(self.buffer)[head.consumed:head.consumed + self.wanted])
            self.buffer = bytearray()
        self.complete = self.body.size >= self.wanted
        return self.complete


def _server_port(socket_name: str) -> bytes:
    """``SERVER_PORT`` of an ``--http-socket`` request: after the socket name's last
    ``:``, else 80."""
    return (socket_name.rpartition(":")[2] if ":" in socket_name else "80").encode()


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
