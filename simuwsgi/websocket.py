"""The test's WebSocket client: a browser talking to a simulated instance.

``sim.websocket(path)`` sends the upgrade request (``GET`` with ``Upgrade: websocket``,
``Connection: Upgrade``, ``Sec-WebSocket-Version: 13`` and a key from the simulation's
seeded RNG) and runs the simulation until the app has answered it: a ``101`` when it
called ``uwsgi.websocket_handshake()`` (``status``, ``headers``), else the request's
plain response. Then, as a browser does:

* ``send(data)`` sends a text frame (``str``) or a binary one (``bytes``), masked;
  ``send_frame(payload, opcode, fin=False)`` sends one frame as given (fragments,
  control frames); ``ping()``; ``close()`` sends a close frame; ``disconnect()`` drops
  the connection without one;
* ``recv(timeout=None)`` runs the simulation until the app's next message and returns
  its bytes. A closed connection raises ``WebSocketClosed``;
* uWSGI's pings are answered with pongs as they come, whatever the test is doing
  (``auto_pong=False`` leaves them unanswered: the app's reads fail once the pong is
  overdue); ``pings`` counts them;
* ``response`` is the request's response once the app returned.

Everything runs in virtual time and the bytes are the ones uWSGI writes and reads
(``protocol/_websocket.py``).
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from ._errors import SimulationError
from .protocol._websocket import NEED_MORE, FrameReader, client_frame

if TYPE_CHECKING:
    from .server.workers import Request, Response
    from .simulation import Simulation

__all__ = ["WebSocket", "WebSocketClosed"]


class WebSocketClosed(SimulationError):
    """The server closed the WebSocket (a close frame, or the request ended)."""


class WebSocket:
    """A WebSocket client connection to a simulated instance (see the module doc)."""

    def __init__(self, sim: Simulation, path: str, *, headers: Any = None,
                 origin: str | None = None, protocol: str | None = None,
                 auto_pong: bool = True, timeout: float | None = None) -> None:
        self._sim = sim
        rng = sim.kernel.rng
        self.key = base64.b64encode(bytes(rng.getrandbits(8) for _ in range(16))).decode()
        sent = dict(headers or {})
        sent.update({"Upgrade": "websocket", "Connection": "Upgrade",
                     "Sec-WebSocket-Key": self.key, "Sec-WebSocket-Version": "13"})
        if origin is not None:
            sent["Origin"] = origin
        if protocol is not None:
            sent["Sec-WebSocket-Protocol"] = protocol
        self.auto_pong = auto_pong
        self.request: Request = sim.submit("GET", path, headers=sent)
        self.status: int | None = None
        self.headers: list[tuple[str, str]] = []
        #: Every message the app sent, in order; ``pings``: the pings uWSGI sent.
        self.messages: list[bytes] = []
        self.pings = 0
        self.closed = False
        self._conn: Any = None
        self._seen = 0  # wire chunks read
        self._stream = bytearray()
        self._frames = FrameReader(1 << 40, [])
        self._unread = 0  # messages not yet returned by recv()
        self._run(lambda: self.status is not None or self.request.done, timeout,
                  "handshake")
        if self.status is None and self.request.response is not None:
            self.status = self.request.response.status
            self.headers = self.request.response.headers

    @property
    def response(self) -> Response | None:
        return self.request.response

    # -- sending ---------------------------------------------------------------------------
    def _mask(self) -> bytes:
        return bytes(self._sim.kernel.rng.getrandbits(8) for _ in range(4))

    def send_frame(self, payload: bytes, opcode: int, *, fin: bool = True) -> None:
        """One frame, masked, as given (``opcode``: 0 continuation, 1 text, 2 binary,
        8 close, 9 ping, 10 pong)."""
        if self.closed or self.status != 101:
            raise WebSocketClosed("the WebSocket is not open")
        ws = self.request.websocket
        if ws is None or self.request.done:
            raise WebSocketClosed("the request has ended")
        ws.deliver(client_frame(bytes(payload), opcode, self._mask(), fin=fin))

    def send(self, data: str | bytes) -> None:
        if isinstance(data, str):
            self.send_frame(data.encode(), 1)
        else:
            self.send_frame(bytes(data), 2)

    def ping(self, payload: bytes = b"") -> None:
        self.send_frame(payload, 9)

    def close(self) -> None:
        """A close frame: uWSGI answers with one and the app's read fails."""
        self.send_frame(b"", 8)

    def disconnect(self) -> None:
        """The connection goes away without a close frame."""
        ws = self.request.websocket
        if ws is not None:
            ws.hang_up()
        self.closed = True

    # -- receiving -------------------------------------------------------------------------
    def recv(self, timeout: float | None = None) -> bytes:
        """Run the simulation until the app's next message; its bytes."""
        if not self._unread:
            self._run(lambda: bool(self._unread) or self.request.done, timeout, "message")
        if not self._unread:
            if self.request.done or self.closed:
                raise WebSocketClosed(f"no message: the server closed the WebSocket "
                                      f"({self._why()})")
            raise SimulationError(f"no message within {timeout} virtual seconds")
        self._unread -= 1
        return self.messages[-1 - self._unread]

    def _why(self) -> str:
        resp = self.request.response
        if resp is None:
            return "a close frame"
        return f"the request ended: {resp.status or resp.reason}"

    def _run(self, done: Any, timeout: float | None, what: str) -> None:
        sim = self._sim
        kernel = sim.kernel
        limit = kernel.now + (timeout if timeout is not None else _PATIENCE)

        def stop() -> bool:
            self._read_wire()
            return bool(done())

        if stop():
            return
        began = kernel.now
        if sim._run_patiently(limit, stop, timeout is None):
            raise SimulationError(sim._impatience(began, what))

    def server_wrote(self) -> None:
        """uWSGI wrote on the connection (a frame): read it now."""
        self._read_wire()

    def _read_wire(self) -> None:
        """Take what uWSGI wrote since the last look: the response head, then frames."""
        req = self.request
        conn = req.conn if req.conn is not None else self._conn
        self._conn = conn
        if conn is None:
            return
        if req.websocket is not None and req.websocket.client is None:
            req.websocket.client = self
        wire = conn.wire
        while self._seen < len(wire):
            self._stream += wire[self._seen]
            self._seen += 1
        if self.status is None:
            end = self._stream.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self._stream[:end]).decode("latin-1").split("\r\n")
            del self._stream[:end + 4]
            self.status = int(head[0].split(" ")[1])
            self.headers = [tuple(line.split(": ", 1)) for line in head[1:]]  # type: ignore[misc]
        if self.status != 101:
            return
        self._frames.feed(bytes(self._stream))
        self._stream.clear()
        while (frame := self._frames.read()) is not NEED_MORE:
            if frame.kind == "message":
                self.messages.append(frame.data)
                self._unread += 1
            elif frame.kind == "ping":
                self.pings += 1
                if self.auto_pong and not self.closed and not req.done:
                    req.websocket.deliver(client_frame(b"", 10, self._mask()))
            elif frame.kind == "close":
                self.closed = True


#: How long ``recv()`` and the handshake wait without a timeout, in virtual seconds.
_PATIENCE = 7 * 24 * 3600.0
