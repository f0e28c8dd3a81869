"""Virtual TCP connections written a piece at a time: app code's sockets
(``network._appsockets``), the test's ``Cluster.connect`` and 1.4's fd-level functions
(``legacy=True`` cluster nodes).

The server's end reads the request as 2.0.30 does (``proto/uwsgi.c``,
``proto/http.c``, ``core/reader.c``; checked in ``tests/real/test_half_closed_real.py``):
once the request is whole it is served (its codec, its workers) and the server closes
after the reply. Until then each wait for the client's bytes lasts ``--socket-timeout``,
and the client's FIN (``shutdown(SHUT_WR)``, ``close``) reads as EOF:

* in the uwsgi packet: ``uwsgi_proto_uwsgi_parser(): Resource temporarily unavailable
  [proto/uwsgi.c line 40]`` (the errno of the read before) and a close without a byte;
  on an ``--http-socket``, ``uwsgi_proto_http_parser() -> client closed connection``;
  nothing for a connection that sent nothing, nor for one gone silent (closed after
  the timeout);
* in the body (the head is in): the app runs, and its ``wsgi.input`` read past the cut
  logs ``[uwsgi-body-read] Error reading N bytes. ... message: Client closed
  connection`` and raises ``OSError('error during read(...)')`` (after a silence:
  ``Timeout reading`` and ``timeout during read``); its reply still reaches a client
  that only shut its write side;
* after a whole request: nothing changes, the reply comes.

A client that closed its socket gets nothing more (the reply's bytes are dropped, as
its kernel refuses them). Not as real: the app of a request whose body is incomplete
starts when the body is cut (FIN or silence), where uWSGI starts it as soon as the
head is in, so a body that stalls shows in the request's time as 0 ms, not the
timeout; the routers' ports close a cut request without a log line (not checked).

1.4's fd-level functions:

1.4's ``uwsgi.connect(addr[, timeout])`` returned a file descriptor that
``async_send_message``, ``recv``, ``recv_block``, ``recv_frame`` and ``close`` worked on
(``git show uwsgi-1.4:plugins/python/uwsgi_pymodule.c``). Here the descriptor is a
number in the node's table of :class:`Stream` objects, connections on the virtual
network (:class:`~simuwsgi.network._remote.Exchange`'s connect: refused at once, or
-1 after the timeout for an IP no node has). What the app writes crosses the link;
once the other node has a whole request it answers it as any request (its codec, its
workers) and closes, and the reply's bytes wait in the descriptor for the reads. A read
waits in virtual time (``recv`` and ``recv_frame`` without a limit, as 1.4's blocking
``read``; ``recv_block`` up to its ``timeout``).

Each function is 1.4's, debug lines included: ``recv_block`` logs ``remains size
timeout`` before each read and ``error waiting for block data`` on a timeout;
``recv_frame`` (Hixie-76 WebSocket frames, ``\\x00`` ... ``\\xff``, whatever its two
separator arguments say) logs ``read N bytes ...``, a ``byte frame_size`` line for each
buffered byte and ``returning a frame``, and keeps its leftover bytes per descriptor
(1.4: in the request). Its bugs are kept: the scan for the prefix in buffered bytes
looks at every other byte, and the copy after a prefix runs one byte past the data
read (a stale byte of the buffer: zeros here, whatever the request left in 1.4).

Left out: ``async_connect`` (the non-blocking connect), descriptors of real files, and
``connection_fd()``'s socket (the simulated client is not a stream).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..protocol import (
    NEED_DATA,
    SERVER,
    Connection,
    EndOfMessage,
    RemoteProtocolError,
    content_length,
    last_value,
    parse_http_request,
)
from ..server.reading import reading
from ._remote import _SEGMENT, _SPEAKS, Exchange, serve, serve_http

if TYPE_CHECKING:
    from ._network import Endpoint, Network

__all__ = ["Stream", "read_frame"]

#: The first descriptor number given out (0-2 are stdio; uWSGI's own sockets follow).
FIRST_FD = 10


class Stream(Exchange):
    """One virtual TCP connection opened by ``uwsgi.connect`` (the client side, and the
    bytes the server side has received so far)."""

    def __init__(self, net: Network, src: str, address: str, timeout: float,
                 done: Callable[[bool, Any], None]) -> None:
        from ..protocol import UnknownRequest

        self.connected = False
        self.rbuf = bytearray()
        self.eof = False
        self._sent = bytearray()  # what the server side has received
        self._served = False
        self._waiter: Callable[[], None] | None = None
        #: The client shut its write side (``shutdown``) / closed its socket (``close``).
        self.shut = False
        self.closed = False
        #: The server's wait for the client's next bytes (``--socket-timeout``).
        self._stall: Any = None
        super().__init__(net, src, address, UnknownRequest(modifier1=0), b"", timeout, done)

    def _established(self) -> None:
        if self.finished:
            return
        self._timer.cancel()
        self.connected = True
        self._finish(True, self)

    def abandon(self) -> None:
        """``close(fd)`` while connecting: whatever the connect does next is ignored."""
        self._timer.cancel()
        self.finished = True

    # -- the client's end: writing, shutdown(SHUT_WR), close --------------------------
    def write(self, data: bytes) -> None:
        dst = self.dst
        if dst is None or self.eof or self.shut or not data:
            return
        self.net.transmit(self.src, dst.name, len(data), self._arrived, bytes(data))

    def shutdown(self) -> None:
        """``shutdown(fd, SHUT_WR)``: a FIN follows the bytes written; the client can
        still read the reply."""
        if self.dst is not None and self.connected and not self.shut:
            self.shut = True
            self.net.transmit(self.src, self.dst.name, _SEGMENT, self._fin)

    def close(self) -> None:
        """``close(fd)``: a FIN too, and what the server sends after is refused (its
        bytes are dropped)."""
        self.shutdown()
        self.closed = True
        self.rbuf.clear()

    # -- the server's end: reading the request as uWSGI does (module doc) -------------
    def _arrived(self, data: bytes) -> None:
        if self._served:
            return
        self._sent += data
        dst = self.dst
        assert dst is not None
        protocol = dst.ports.get(self.port)
        if protocol == "fastcgi":  # a virtual FastCGI responder (network._fastcgi)
            reply = dst.inst.respond(bytes(self._sent))
            if reply is not None:
                self._served = True
                self.net.transmit(dst.name, self.src, len(reply), self._replied, reply)
            return
        whole, _head = _progress(dst, self.port, bytes(self._sent))
        if whole:
            self._serve(None)
            return
        # each wait for more bytes lasts at most --socket-timeout
        if self._stall is not None:
            self._stall.cancel()
        self._stall = self.net.kernel.schedule(reading(dst.inst).socket_timeout,
                                               self._stalled)

    def _stalled(self) -> None:
        """The client sent nothing for ``--socket-timeout``: a request whose head is in
        fails its next body read (``Timeout reading``); else the server closes."""
        if not self._served:
            self._cut("timeout")

    def _fin(self) -> None:
        """The client's FIN reached the server: the read gives 0 (EOF)."""
        if self._served:
            return
        if self._stall is not None:
            self._stall.cancel()
        self._cut("closed")

    def _cut(self, why: str) -> None:
        dst = self.dst
        assert dst is not None
        data = bytes(self._sent)
        protocol = dst.ports.get(self.port, "")
        if protocol in ("uwsgi", "http") and _progress(dst, self.port, data)[1]:
            self._serve(why)  # the app runs; its body read fails
            return
        self._served = True
        if why == "closed" and data and protocol == "uwsgi":
            # read() gave 0: uwsgi_error() prints the errno of the EAGAIN before it
            dst.inst.log("uwsgi_proto_uwsgi_parser(): Resource temporarily unavailable "
                         "[proto/uwsgi.c line 40]")
        elif why == "closed" and data and protocol == "http":
            dst.inst.log("uwsgi_proto_http_parser() -> client closed connection")
        self.net.record("net.cut", src=self.src, address=self.address, why=why,
                        received=len(data))
        self.net.transmit(dst.name, self.src, _SEGMENT, self._replied, b"")

    def _serve(self, cut: str | None) -> None:
        self._served = True
        dst = self.dst
        assert dst is not None
        protocol = dst.ports.get(self.port)
        handler: Callable[..., None]
        if protocol == "uwsgi":
            handler = functools.partial(serve, cut=cut)
        elif protocol == "http":
            handler = functools.partial(serve_http, cut=cut)
        else:
            # a real node (simuwsgi.cluster_real) forwards to its real router
            handler = getattr(dst.inst, "forward", None) or dst.inst.subsystems["routers"].serve
        handler(self.net, dst, self.port, self.src, bytes(self._sent), self._replied)

    def _replied(self, data: bytes) -> None:
        if self.closed:
            return  # the client closed its socket: the kernel drops the bytes
        self.rbuf += data
        self.eof = True  # the server closes after its reply
        self._wake()

    # -- reading ----------------------------------------------------------------------------
    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            waiter()

    def wait_readable(self, kernel: Any, timeout: float | None, reason: str) -> bool:
        """``uwsgi_waitfd``: park the calling process until there is something to read
        (or EOF); False after ``timeout`` seconds (None: no limit)."""
        if self.rbuf or self.eof:
            return True
        proc = kernel.current
        timer = None
        if timeout is not None:
            timer = kernel.schedule(timeout, kernel.wake, proc, False)
        self._waiter = lambda: kernel.wake(proc, True)
        ready = kernel.park(reason)
        if timer is not None:
            timer.cancel()
        self._waiter = None
        return bool(ready)

    def read(self, size: int) -> bytes:
        """``read(fd, buf, size)`` once readable: up to ``size`` bytes, b"" at EOF."""
        data = bytes(self.rbuf[:size])
        del self.rbuf[:size]
        return data


def _progress(node: Endpoint, port: int, data: bytes) -> tuple[bool, bool]:
    """What the server has of a request in ``data``: (whole, its head is in). A
    request the server refuses counts as whole (the server answers it by closing)."""
    inst = node.inst
    if not data:
        return False, False
    if _SPEAKS.get(node.ports.get(port, ""), "") != "http":
        conn = Connection(SERVER, buffer_size=inst.buffer_size, max_vars=inst.max_vars)
        head = False
        try:
            conn.receive_data(data)
            while True:
                event = conn.next_event()
                if event is NEED_DATA:
                    return False, head
                if isinstance(event, EndOfMessage):
                    return True, True
                head = True
        except RemoteProtocolError:
            return True, True
    try:
        parsed = parse_http_request(data, hostname=b"", server_port=b"", remote_addr=b"",
                                    buffer_size=inst.buffer_size)
    except RemoteProtocolError:
        return True, True
    if parsed is None:
        return False, False
    length = last_value(parsed.request.vars, b"CONTENT_LENGTH")
    wanted = content_length(length) if length is not None else 0
    return len(data) - parsed.consumed >= wanted, True


def _signed(byte: int) -> int:
    return byte - 256 if byte > 127 else byte


class FrameState:
    """``wsgi_req->buffer``/``frame_pos``/``frame_len`` of 1.4's ``recv_frame``."""

    def __init__(self, size: int) -> None:
        self.buffer = bytearray(size)
        self.pos = 0
        self.len = 0


def read_frame(stream: Stream, state: FrameState, log: Callable[[str], None],
               wait: Callable[[], bool]) -> bytes | None:
    """``py_uwsgi_recv_frame`` transcribed (see the module doc); ``wait`` is its
    ``uwsgi_waitfd(fd, -1)``. None: 1.4 spins forever (EOF in the middle of a frame)."""
    prefix, suffix = 0x00, 0xFF
    frame = bytearray()
    found_start = False
    buf = state.buffer

    def fill() -> None:
        data = stream.read(len(buf))
        buf[:len(data)] = data
        state.pos, state.len = 0, len(data)

    while True:  # get_data
        frame.clear()
        if state.len > 0:
            ptr = state.pos
            i = 0
            while i < state.len:
                if buf[ptr + i] == prefix:
                    ptr += 1
                    found_start = True
                    break
                ptr += 1
                state.pos += 1
                i += 1
            state.len -= i
            if found_start:
                for i in range(state.len):
                    log(f"{_signed(buf[ptr + i])} {len(frame)}")
                    if buf[ptr + i] == suffix:
                        state.len -= i
                        log("returning a frame")
                        return bytes(frame)
                    frame.append(buf[ptr + i])
                    state.pos += 1
        if found_start:
            while True:  # read_more_data
                wait()
                if stream.eof and not stream.rbuf:
                    return None  # read() gives 0 for ever: 1.4 loops without end
                fill()
                for i in range(state.len):
                    if buf[i] == suffix:
                        log("returning a frame")
                        return bytes(frame)
                    frame.append(buf[i])
        wait()
        fill()
        log(f"read {state.len} bytes {bytes(buf[:state.len]).decode('latin-1')}")
        if state.len == 0:
            log("returning a frame")
            return bytes(frame)
