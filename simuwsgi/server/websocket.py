"""A request's WebSocket, as uWSGI 2.0.30 serves it (``core/websockets.c``).

The app upgrades its request with ``uwsgi.websocket_handshake([key, origin, proto])``
and then talks on the connection with ``websocket_send``/``websocket_send_binary`` and
``websocket_recv``/``websocket_recv_nb``. What this models (frames in
``protocol/_websocket.py``):

* The handshake exists only in a build with SSL (``Simulation(ssl=True)``, as uWSGI
  built from source); the pyuwsgi wheel's logs ``you need to build uWSGI with SSL
  support to use the websocket handshake api function !!!`` and fails, as observed.
  With SSL it writes ``101 Web Socket Protocol Handshake`` with ``Upgrade:
  WebSocket``, ``Connection: Upgrade``, ``Sec-WebSocket-Origin`` (the origin given, else
  the request's ``Origin``, else ``*``), ``Sec-WebSocket-Protocol`` (when given or
  requested) and ``Sec-WebSocket-Accept``; the key is the one given, else the request's
  ``Sec-WebSocket-Key``; without one it fails.
* Keepalive: a blocking ``websocket_recv`` waits ``--websockets-ping-freq`` (30) seconds
  at a time for the client; each time nothing came, and on every ``websocket_recv_nb``
  that finds nothing, the ping-pong check runs: the first one sends a ping, then one
  more each ``ping-freq`` seconds once the client's pong came; a pong overdue by more
  than ``--websocket-pong-tolerance`` (3) seconds fails the read with ``[uwsgi-websocket]
  "GET /ws" (addr) no PONG received in 3 seconds !!!``. Times are whole seconds of the
  wall clock (``uwsgi_now``).
* A failed read or write closes the WebSocket for good: every later call fails
  (``OSError``). A close frame from the client is answered with a close frame and
  fails the read; a client that went away fails the read, and a write after that fails
  with ``Broken pipe`` in the log.
"""

from __future__ import annotations

import base64
import hashlib
from typing import TYPE_CHECKING, Any

from ..protocol._websocket import CLOSE, NEED_MORE, PING, PONG, FrameReader, WebSocketError

if TYPE_CHECKING:
    from .interface import Instance
    from .workers import Request

__all__ = ["ServerWebSocket"]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_key(key: bytes) -> str:
    """``Sec-WebSocket-Accept`` for the client's key (RFC 6455 §4.2.2)."""
    return base64.b64encode(hashlib.sha1(key + _GUID).digest()).decode("ascii")


class ServerWebSocket:
    """The WebSocket state of one request (``wsgi_req->websocket_*``)."""

    def __init__(self, inst: Instance, req: Request, continuation: list[bytearray]) -> None:
        self.inst = inst
        self.req = req
        opts = inst.opts
        self.ping_freq = opts.int("websockets-ping-freq", 30)
        self.pong_tolerance = opts.int("websockets-pong-tolerance", 3)
        self.reader = FrameReader(opts.int("websockets-max-size", 1024), continuation)
        self.closed = False  # wsgi_req->websocket_closed
        self.last_ping = 0
        self.last_pong = 0
        #: The client closed its end (``Simulation.websocket``'s ``disconnect()``).
        self.peer_gone = False
        #: (worker, timer) while a blocking read waits for the client.
        self._waiting: tuple[Any, Any] | None = None
        #: The simulated client, told of every write (``simuwsgi.websocket``): it
        #: answers pings at once, as a browser does, whatever the test is doing.
        self.client: Any = None

    def _now(self) -> int:
        return int(self.inst.wall())

    def _header(self, name: str) -> str:
        lname = name.lower()
        return next((v for k, v in self.req.headers if k.lower() == lname), "")

    def _log(self, what: str) -> None:
        req = self.req
        self.inst.log(f'[uwsgi-websocket] "{req.method} {req.path}" ({req.remote_addr}) {what}')

    # -- the handshake -------------------------------------------------------------------
    def handshake(self, key: bytes, origin: bytes, proto: bytes) -> bool:
        """``uwsgi_websocket_handshake``: True once the 101 is on the wire."""
        if not getattr(self.inst, "ssl", False):
            self.inst.log("you need to build uWSGI with SSL support to use the websocket "
                          "handshake api function !!!")
            return False
        key = key or self._header("Sec-WebSocket-Key").encode("latin-1")
        if not key:
            return False
        conn = self.req.conn
        if not conn._prepare(b"101 Web Socket Protocol Handshake"):
            return False
        origin_text = (origin.decode("latin-1") if origin
                       else self._header("Origin") or "*")
        proto_text = proto.decode("latin-1") if proto else self._header("Sec-WebSocket-Protocol")
        headers = [("Upgrade", "WebSocket"), ("Connection", "Upgrade"),
                   ("Sec-WebSocket-Origin", origin_text)]
        if proto_text:
            headers.append(("Sec-WebSocket-Protocol", proto_text))
        headers.append(("Sec-WebSocket-Accept", accept_key(key)))
        if not all(conn._add_header(k, v) for k, v in headers):
            return False
        self.last_pong = self._now()
        return conn.write_headers()

    # -- writes --------------------------------------------------------------------------
    def _write(self, data: bytes) -> bool:
        conn = self.req.conn
        if self.peer_gone and not conn.write_errors:
            conn.write_error("uwsgi_response_write_body_do()", 429, "Broken pipe")
            conn.write_errors += 1
        ok = conn.write_body(data)
        if ok and self.client is not None:
            self.client.server_wrote()
        return ok

    def send(self, frame: bytes) -> bool:
        """``uwsgi_websocket_send``/``_binary`` of an encoded frame; a failure closes."""
        if self.closed:
            return False
        if not self._write(frame):
            self.closed = True
            return False
        return True

    def _ping(self) -> bool:
        if not self._write(PING):
            return False
        self.last_ping = self._now()
        return True

    def _check_pingpong(self) -> bool:
        """``uwsgi_websockets_check_pingpong``: False when the read must fail."""
        now = self._now()
        if self.last_ping == 0:
            return self._ping()
        if self.last_pong < self.last_ping:
            if now - self.last_ping > self.pong_tolerance:
                self._log(f"no PONG received in {self.pong_tolerance} seconds !!!")
                return False
            return True
        if now - self.last_ping >= self.ping_freq:
            return self._ping()
        return True

    # -- reads ---------------------------------------------------------------------------
    def recv(self, nonblocking: bool) -> bytes | None:
        """``uwsgi_websocket_recv``/``_nb``: a message, ``b""`` (non-blocking, nothing
        there), or None: the read failed and the WebSocket is closed."""
        if self.closed:
            return None
        got = self._recv(nonblocking)
        if got is None:
            self.reader.continuation.clear()
            self.closed = True
        return got

    def _recv(self, nonblocking: bool) -> bytes | None:
        reader = self.reader
        while True:
            try:
                frame = reader.read()
            except WebSocketError as exc:
                if exc.about_request:
                    self._log(exc.log)
                else:
                    self.inst.log(exc.log)
                return None
            if frame is NEED_MORE:
                if self.peer_gone:  # read() gives 0: the client closed
                    return None
                if nonblocking:
                    return b"" if self._check_pingpong() else None
                if not self._wait(self.ping_freq) and not self._check_pingpong():
                    return None
                continue
            if frame.kind == "message":
                return frame.data
            if frame.kind == "close":
                self._write(CLOSE)
                return None
            if frame.kind == "ping" and not self._write(PONG):
                return None
            if frame.kind == "pong":
                self.last_pong = self._now()

    def _wait(self, seconds: int) -> bool:
        """Park the worker until the client sends (True) or ``seconds`` pass."""
        kernel = self.inst.kernel
        worker = kernel.current
        self._waiting = (worker, kernel.schedule(seconds, self._wake, False))
        return bool(kernel.park("websocket_recv"))

    # -- the client's side ---------------------------------------------------------------
    def deliver(self, data: bytes) -> None:
        """Bytes from the client arrive (a read waiting for them goes on)."""
        self.reader.feed(data)
        self._wake(True)

    def hang_up(self) -> None:
        """The client closes its end of the connection."""
        self.peer_gone = True
        self._wake(True)

    def _wake(self, came: bool) -> None:
        """The waiting read goes on: the client sent (``came``) or its time is up."""
        if self._waiting is not None:
            worker, timer = self._waiting
            self._waiting = None
            timer.cancel()
            self.inst.kernel.wake(worker, came)
