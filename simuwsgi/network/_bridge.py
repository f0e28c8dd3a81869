"""TCP bridges: a real loopback port whose connections enter the virtual network.

A real uWSGI node of a cluster (``simuwsgi.cluster_real``) cannot reach a virtual
address: nothing listens on ``10.0.0.1:3031`` on the host. Each virtual ``host:port``
it names gets a :class:`TcpBridge` instead, a real socket listening on a free loopback
port. A connection the real node opens there is relayed byte for byte onto a
:class:`~simuwsgi.network._sockets.Stream` from the real node to that address, the
same virtual connection app code's sockets and ``Cluster.connect`` use: the SYN, the
request and the reply cross the links (latency, partitions, holds, ``slow``), the
virtual node reads the request as 2.0.30 does (its ``--socket``, ``--http-socket``,
``--fastrouter``/``--http`` router ports) and answers once, then closes.

Refusals are the host's: while the destination would refuse (a stopped node, a port
nothing listens on) and the link between them works, the bridge does not listen
(:meth:`TcpBridge.sync`, a ``net.bridge.listen`` record each time it changes), so the
real client's connect is refused as it would be (uWSGI's routers log ``unable to
connect() to node ...: Connection refused`` and try another node). What differs from a
wire is a cut link: the host's kernel completes the handshake with the bridge before
the virtual SYN has crossed, so the real client sees a connected peer that does not
answer (its read times out, where a real partition times out its connect; uWSGI's rpc,
cache and signal clients fail silently either way, after ``--socket-timeout``), and a
connection accepted so that is refused once the link heals is reset.

The relay is driven by the cluster's pacing loop (``cluster_real.run_paced``): it
selects on the bridges and their connections and calls :meth:`TcpBridge.accept`,
:meth:`Relay.readable` and :meth:`Relay.writable`; the virtual side's answers arrive
in kernel events and wait in :attr:`Relay.out` for the loop to write them.
"""

from __future__ import annotations

import socket
import struct
from typing import TYPE_CHECKING, Any

from ._appsockets import SYN_RETRIES_TIMEOUT
from ._sockets import Stream

if TYPE_CHECKING:
    from ._network import Network

__all__ = ["Relay", "TcpBridge"]

#: ``SO_LINGER`` on, 0 s: ``close`` sends a reset (a virtual connect that failed after
#: the host had accepted the real one).
_RESET = struct.pack("ii", 1, 0)


class TcpBridge:
    """A real listening socket on ``127.0.0.1`` for node ``src``'s connections to the
    virtual ``address`` (see the module doc)."""

    def __init__(self, net: Network, src: str, address: str) -> None:
        self.net = net
        self.src = src
        self.address = address
        self.port = 0
        #: The listening socket; None while the destination refuses (see :meth:`sync`).
        self.listener: socket.socket | None = None
        self._listen()
        #: The connections being relayed.
        self.relays: set[Relay] = set()

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind(("127.0.0.1", self.port))
        except OSError:
            listener.close()  # the port was taken meanwhile: refused until it is free
            return
        listener.listen(128)
        listener.setblocking(False)
        self.port = listener.getsockname()[1]
        self.listener = listener

    def sync(self) -> None:
        """Listen while the destination would take a connection, or while the link
        hides whether it would (cut or held: the connection waits); else close the
        listener, so that the real client's connect is refused, as it would be by a
        stopped node or a port nothing listens on."""
        try:
            dst, port = self.net.resolve(self.src, self.address)
        except OSError:
            return
        refuses = dst is not None and not self.net.waits(self.src, dst.name) and (
            port not in dst.ports or dst.inst.stopped or not dst.inst.ready)
        listening = self.listener is not None
        if refuses and self.listener is not None:
            self.listener.close()
            self.listener = None
        elif not refuses and self.listener is None:
            self._listen()
        if listening != (self.listener is not None):
            self.net.record("net.bridge.listen", src=self.src, address=self.address,
                            listening=not listening)

    def accept(self) -> None:
        """Relay every connection waiting on the listener."""
        while self.listener is not None:
            try:
                conn, _peer = self.listener.accept()
            except (BlockingIOError, OSError):
                return
            conn.setblocking(False)
            self.net.record("net.bridge", src=self.src, address=self.address)
            self.relays.add(Relay(self, conn))

    def close(self) -> None:
        for relay in list(self.relays):
            relay.end(reset=True)
        if self.listener is not None:
            self.listener.close()
            self.listener = None


class Relay:
    """One real connection to a bridge and its virtual :class:`Stream`."""

    def __init__(self, bridge: TcpBridge, conn: socket.socket) -> None:
        self.bridge = bridge
        self.conn = conn
        #: What the real client sent before the virtual connection was made.
        self._early = bytearray()
        self._fin = False
        #: The reply's bytes waiting for the real client's socket.
        self.out = bytearray()
        self._closing = False
        self.stream = Stream(bridge.net, bridge.src, bridge.address, SYN_RETRIES_TIMEOUT,
                             self._connected)

    def _connected(self, ok: bool, _value: Any) -> None:
        if not ok:  # refused, unreachable: the record is the Stream's (net.refused...)
            self.end(reset=True)
            return
        stream = self.stream
        stream._waiter = self._replied
        if self._early:
            stream.write(bytes(self._early))
            self._early.clear()
        if self._fin:
            stream.shutdown()

    def _replied(self) -> None:
        stream = self.stream
        stream._waiter = self._replied
        self.out += stream.read(len(stream.rbuf))
        if stream.eof:
            self._closing = True  # the virtual node closed after its reply
            if not self.out:
                self.end()

    # -- driven by the pacing loop -------------------------------------------------------
    def readable(self) -> None:
        """The real client sent bytes, a FIN or a reset."""
        try:
            data = self.conn.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            self.end(reset=True)
            return
        stream = self.stream
        if not data:
            self._fin = True
            if stream.connected:
                stream.shutdown()
        elif stream.connected:
            stream.write(data)
        else:
            self._early += data

    def writable(self) -> None:
        """Write what the virtual node answered; close once it is all written."""
        try:
            sent = self.conn.send(self.out)
        except BlockingIOError:
            return
        except OSError:
            self.end(reset=True)
            return
        del self.out[:sent]
        if self._closing and not self.out:
            self.end()

    @property
    def wants_read(self) -> bool:
        return not self._fin

    def end(self, *, reset: bool = False) -> None:
        """Close the real connection (``reset``: with an RST) and forget the virtual one."""
        if self not in self.bridge.relays:
            return
        self.bridge.relays.discard(self)
        stream = self.stream
        if not stream.connected:
            if not stream.finished:
                stream.abandon()
        elif not stream.closed:
            stream.close()
        if reset:
            self.conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
        self.conn.close()
