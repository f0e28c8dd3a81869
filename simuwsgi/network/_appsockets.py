"""App code's own TCP connections to the cluster's nodes, and the test's raw clients.

Inside a cluster's node, ``socket.create_connection(("10.0.0.2", 3031))`` - and what is
built on it: ``http.client``, ``urllib.request.urlopen("http://10.0.0.2:8080/")``,
``smtplib``... - must reach the node with that address on the virtual network (its
links, their faults, virtual time), never a host. While a cluster is open,
``simuwsgi.server.containment`` sends such calls made by a node's virtual process to
:class:`NodeSockets`: an address that names a node (its IP, name or host name;
``127.0.0.1``/``localhost``: the calling node) gets a :class:`VirtualSocket` on a
:class:`~simuwsgi.network._sockets.Stream`; one the cluster allows
(``Cluster(host_addresses=["db.internal:5432"])``) goes to the host; any other is
refused with ``NotSimulatedError``, as is a raw ``socket.socket().connect()`` to an
internet address (its socket is the host's: it cannot cross the virtual network).
UNIX-socket paths stay the host's.

:class:`VirtualSocket` is the part of ``socket.socket`` that clients use: ``sendall``/
``send``, ``recv``/``recv_into``, ``makefile`` (what ``http.client`` reads),
``shutdown``, ``close`` (deferred while a ``makefile`` stream is open, as a real
socket's), ``settimeout``/``setblocking``, ``getpeername``/``getsockname``, and
``setsockopt(IPPROTO_TCP, TCP_NODELAY)`` (the virtual link sends every write at once:
there is no Nagle to turn off). A read waits in virtual time: the calling process is
parked until bytes or the EOF arrive, or its timeout passes (``TimeoutError('timed
out')``). A connect that finds no listener on the node is refused
(``ConnectionRefusedError``); a cut link makes it wait its timeout, or Linux's 127 s of
SYN retries without one (``TimeoutError(110, 'Connection timed out')``).

The test drives one too: ``cluster.connect("b:3031")`` is the same socket, its waits
running the cluster (``simuwsgi.Cluster.connect``).
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Callable
from typing import Any

from .._errors import NotSimulatedError
from ._network import Network
from ._sockets import Stream

__all__ = ["SYN_RETRIES_TIMEOUT", "NodeSockets", "VirtualSocket", "driver_block",
           "process_block"]

#: How long a connect without a timeout waits for a SYN-ACK on Linux
#: (``tcp_syn_retries`` 6: 1 + 2 + 4 + ... + 64 seconds).
SYN_RETRIES_TIMEOUT = 127.0
#: The first local port of a node's outgoing connections (Linux's
#: ``ip_local_port_range``: 32768-60999, 28232 ports).
_EPHEMERAL = 32768


def _os_error(kind: type[OSError], code: int) -> OSError:
    return kind(code, os.strerror(code))


class VirtualSocket:
    """A connected TCP socket of the virtual network (see the module doc)."""

    family = socket.AF_INET
    type = socket.SOCK_STREAM
    proto = 0

    def __init__(self, net: Network, src: str, address: tuple[str, int],
                 timeout: float | None, block: Block) -> None:
        self._net = net
        self._block = block
        self._timeout = timeout
        self._closed = False
        self._io_refs = 0
        self._rd_shut = False
        host, port = address
        net.connections += 1
        self._local = (net.nodes[src].host, _EPHEMERAL + net.connections % 28232)
        box: list[tuple[bool, Any]] = []
        wake: list[Callable[[], None]] = []

        def done(ok: bool, value: Any) -> None:
            box.append((ok, value))
            for waker in wake:
                waker()

        self._stream = Stream(net, src, f"{host}:{port}",
                              SYN_RETRIES_TIMEOUT if timeout is None else timeout, done)
        self._peer = (self._stream.dst.host if self._stream.dst is not None else host, port)
        block(lambda: bool(box), None, f"connect {host}:{port}", wake.append)
        ok, value = box[0]
        if not ok:
            if isinstance(value, ConnectionRefusedError):
                raise _os_error(ConnectionRefusedError, errno.ECONNREFUSED)
            if not isinstance(value, TimeoutError):  # a name no node has
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            if timeout is not None:
                raise TimeoutError("timed out")
            raise _os_error(TimeoutError, errno.ETIMEDOUT)

    # -- writing ---------------------------------------------------------------------------
    def sendall(self, data: Any) -> None:
        self.send(data)

    def send(self, data: Any) -> int:
        self._check_open()
        if self._stream.shut:
            raise _os_error(BrokenPipeError, errno.EPIPE)
        payload = bytes(data)
        self._stream.write(payload)
        return len(payload)

    # -- reading ---------------------------------------------------------------------------
    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        self._check_open()
        if flags:
            raise NotSimulatedError(f"recv flags {flags!r} on a virtual socket")
        stream = self._stream
        if self._rd_shut:
            return b""
        if not (stream.rbuf or stream.eof):
            if self._timeout == 0:
                raise _os_error(BlockingIOError, errno.EAGAIN)
            ready = self._block(lambda: bool(stream.rbuf or stream.eof), self._timeout,
                                f"recv {self._peer[0]}:{self._peer[1]}",
                                lambda waker: setattr(stream, "_waiter", waker))
            if not ready:
                raise TimeoutError("timed out")
        return stream.read(bufsize)

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        view = memoryview(buffer).cast("B")
        data = self.recv(nbytes or len(view), flags)
        view[:len(data)] = data
        return len(data)

    def makefile(self, *args: Any, **kwargs: Any) -> Any:
        """As ``socket.makefile`` (a buffered stream over ``recv_into``/``send``)."""
        return socket.socket.makefile(self, *args, **kwargs)  # type: ignore[arg-type]

    def _decref_socketios(self) -> None:
        if self._io_refs > 0:
            self._io_refs -= 1
        if self._closed:
            self.close()

    # -- ending ----------------------------------------------------------------------------
    def shutdown(self, how: int) -> None:
        """``SHUT_WR``: a FIN after what was written (the reply can still be read);
        ``SHUT_RD``: reads give ``b""``; ``SHUT_RDWR``: both."""
        self._check_open()
        if how not in (socket.SHUT_RD, socket.SHUT_WR, socket.SHUT_RDWR):
            raise _os_error(OSError, errno.EINVAL)
        if how != socket.SHUT_WR:
            self._rd_shut = True
        if how != socket.SHUT_RD:
            self._stream.shutdown()

    def close(self) -> None:
        self._closed = True
        if self._io_refs <= 0:  # a makefile() stream still open keeps the connection
            self._stream.close()

    def __enter__(self) -> VirtualSocket:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._stream.closed:
            raise _os_error(OSError, errno.EBADF)

    # -- the rest of the socket API clients use ----------------------------------------------
    def settimeout(self, value: float | None) -> None:
        if value is not None and (isinstance(value, bool) or value < 0):
            raise ValueError("Timeout value out of range")
        self._timeout = None if value is None else float(value)

    def gettimeout(self) -> float | None:
        return self._timeout

    def setblocking(self, flag: bool) -> None:
        self._timeout = None if flag else 0.0

    def setsockopt(self, level: int, option: int, value: Any, *rest: Any) -> None:
        if (level, option) != (socket.IPPROTO_TCP, socket.TCP_NODELAY):
            raise NotSimulatedError(f"setsockopt({level}, {option}) on a virtual socket "
                                    f"(only TCP_NODELAY, which changes nothing there)")

    def getpeername(self) -> tuple[str, int]:
        return self._peer

    def getsockname(self) -> tuple[str, int]:
        return self._local

    def fileno(self) -> int:
        raise NotSimulatedError("a virtual socket has no file descriptor (select/poll "
                                "cannot watch it)")

    def __repr__(self) -> str:
        return (f"<VirtualSocket {self._local[0]}:{self._local[1]} -> "
                f"{self._peer[0]}:{self._peer[1]}{' closed' if self._closed else ''}>")


#: How a socket waits: ``block(ready, timeout, reason, hook)`` returns ``ready()`` once
#: it is true or ``timeout`` passed (None: no limit); ``hook(wake)`` installs the call
#: that the awaited event makes.
Block = Callable[[Callable[[], bool], "float | None", str, Callable[[Callable[[], None]], None]], bool]


class _Waker:
    """A wake-up that acts once, and never after ``cancel``."""

    def __init__(self, action: Callable[[], None]) -> None:
        self.action: Callable[[], None] | None = action

    def __call__(self) -> None:
        action, self.action = self.action, None
        if action is not None:
            action()

    def cancel(self) -> None:
        self.action = None


def process_block(kernel: Any) -> Block:
    """A virtual process's waits: it is parked until woken or its timeout."""

    def block(ready: Callable[[], bool], timeout: float | None, reason: str,
              hook: Callable[[Callable[[], None]], None]) -> bool:
        if ready():
            return True
        proc = kernel.current
        timer = kernel.schedule(timeout, kernel.wake, proc, False) \
            if timeout is not None else None
        waker = _Waker(lambda: kernel.wake(proc, True))
        hook(waker)
        kernel.park(reason)
        if timer is not None:
            timer.cancel()
        waker.cancel()
        return ready()

    return block


def driver_block(kernel: Any, run_to: Callable[[float, Callable[[], bool]], None],
                 patience: float) -> Block:
    """The test's waits: the cluster runs until the event, or the timeout passed
    (None: ``patience`` virtual seconds); ``run_to(when, ready)`` may also end when
    ``ready()`` (a cluster paced by the real clock does)."""

    def block(ready: Callable[[], bool], timeout: float | None, _reason: str,
              hook: Callable[[Callable[[], None]], None]) -> bool:
        deadline = kernel.now + (patience if timeout is None else timeout)
        waker = _Waker(lambda: setattr(kernel, "stopping", True))
        hook(waker)
        while not ready() and kernel.now < deadline:
            run_to(deadline, ready)
        waker.cancel()
        return ready()

    return block


class NodeSockets:
    """What ``simuwsgi.server.containment`` calls for node ``name``'s app code: its
    ``socket.create_connection`` (:meth:`connect`) and raw ``connect`` (:meth:`check`);
    ``host_addresses`` are the ``host`` or ``host:port`` the cluster lets reach the
    host."""

    def __init__(self, net: Network, name: str, host_addresses: frozenset[str]) -> None:
        self.net = net
        self.name = name
        self.host_addresses = host_addresses

    def _allowed(self, host: str, port: int) -> bool:
        return host in self.host_addresses or f"{host}:{port}" in self.host_addresses

    def connect(self, address: Any, timeout: float | None) -> VirtualSocket | None:
        """A :class:`VirtualSocket` to the node at ``address``; None for an address
        the cluster lets reach the host; refused otherwise."""
        host, port = _host_port(address)
        try:
            dst, _port = self.net.resolve(self.name, f"{host}:{port}")
        except OSError:
            dst = None
        if dst is None:
            if self._allowed(host, port):
                return None
            raise self._refused(host, port, "socket.create_connection")
        return VirtualSocket(self.net, self.name, (host, port), timeout,
                             process_block(self.net.kernel))

    def check(self, address: Any) -> None:
        """A raw socket's ``connect(address)``: only to what the cluster allows."""
        host, port = _host_port(address)
        if not self._allowed(host, port):
            raise self._refused(host, port, "socket.connect")

    def _refused(self, host: str, port: int, call: str) -> NotSimulatedError:
        raw = call == "socket.connect"
        return NotSimulatedError(
            f"{call}(({host!r}, {port})) from node {self.name!r}: app code's connections "
            f"go over the cluster's virtual network, "
            + ("and a raw socket is the host's (socket.create_connection reaches a node)"
               if raw else f"where no node has the address {host!r}")
            + f"; to let the nodes reach it on the host: Cluster(host_addresses="
              f"[{f'{host}:{port}'!r}])")


def _host_port(address: Any) -> tuple[str, int]:
    if not isinstance(address, tuple) or len(address) < 2:
        raise TypeError(f"an internet address is a (host, port) tuple, not {address!r}")
    return str(address[0]), int(address[1])
