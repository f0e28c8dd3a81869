"""Real uWSGI nodes inside a cluster (``Cluster.add_real``), talking UDP with the
virtual ones.

A real node is a real uWSGI (pyuwsgi's, or one built with SSL for Legion:
``simuwsgi.modes.real._ssl_build``) started on loopback by the real-mode harness
(:class:`~simuwsgi.modes.real.RealUwsgi`: its own ``--http-socket``, which
``node.get(...)`` uses). It has a place on the virtual network (a name, a virtual IP) and
its datagrams cross the same links as everyone's:

* the UDP addresses in its options are rewritten before it starts: its own
  (``--legion``'s ADDR, ``udp=``, ``--cache-udp-server``) become free loopback ports,
  and a peer's (``--legion-node``, ``nodes=``, ``--cache-udp-node``: a virtual node's
  IP, name or host name and port) becomes a *bridge*, a real loopback socket whose
  datagrams enter the virtual network as sent by the real node;
* what a virtual node sends to the real node's address goes out of a real socket to
  its real port, once the virtual link has carried it (so ``partition``, ``loss`` and
  latency apply both ways).

While a cluster has a real node it runs paced by the real clock (virtual time follows
real elapsed time) and its wall clock is the real one (a real node refuses Legion
announces from more than 60 s in its past). Nothing is deterministic there: the real
node's timing is the OS's.

* its ``--socket`` (uwsgi protocol) is a free loopback port too, and stands on the
  virtual network at its virtual port: a virtual node's ``uwsgi.rpc("r:3031", ...)``,
  ``cache_get(key, "c@r:3031")``, ``signal(n, "r:3031")``, a ``sync=`` - its bytes cross
  the virtual link, then a helper thread writes them to the real socket and reads the
  reply, which crosses the link back.

Left out: connections from the real node to virtual ones (its ``uwsgi.rpc`` to a
virtual node's address reaches nothing: ``Cluster.expose`` serves virtual nodes to real
clients, in another run), ``--http-socket`` on a real node (the harness gives it one),
more than one ``--socket``.
"""

from __future__ import annotations

import queue
import select
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._core.clock import RealClock
from ._errors import ConfigError
from .server.config import parse_options
from .server.containment import host_section

if TYPE_CHECKING:
    from .cluster import Cluster

__all__ = ["RealNode", "run_paced"]

_STREAMS = ("http-socket", "http11-socket", "https-socket")
_UWSGI = ("socket", "uwsgi-socket")
#: How long the helper thread waits for the real node (``--socket-timeout``'s default).
_TIMEOUT = 4.0


class _Endpoint:
    """What the virtual network reads of a node's instance: its options (no stream
    ports), host name, and whether it runs."""

    def __init__(self, node: RealNode) -> None:
        self.node = node
        self.opts = parse_options([])
        self.hostname = node.name

    @property
    def stopped(self) -> bool:
        real = self.node.real
        return real is None or not real.running

    @property
    def ready(self) -> bool:
        return not self.stopped

    def forward(self, data: bytes, reply: Callable[[bytes], None]) -> None:
        """A virtual node's request bytes reached us: ask the real socket."""
        self.node.forward(data, reply)


class RealNode:
    """A real uWSGI in a cluster (see the module doc). ``real`` is its
    :class:`~simuwsgi.modes.real.RealUwsgi` once the cluster started."""

    def __init__(self, cluster: Cluster, name: str, options: list[str], *, address: str,
                 binary: str | None, app_dir: Path | None, allow_no_app: bool) -> None:
        self.cluster = cluster
        self.name = name
        self.address = address
        self.options = [str(o) for o in options]
        self.binary = binary
        self.app_dir = app_dir
        self.allow_no_app = allow_no_app
        self.real: Any = None
        self.inst = _Endpoint(self)
        #: Bridges: real socket -> the virtual ``host:port`` its datagrams are for.
        self.bridges: dict[socket.socket, str] = {}
        #: Our UDP ports: virtual port -> real loopback port.
        self.udp_ports: dict[int, int] = {}
        self._out: socket.socket | None = None
        #: Our uwsgi socket: (virtual port, real loopback port), once given.
        self.tcp: tuple[int, int] | None = None
        for name_, _value in _pairs(self.options):
            if name_ in _STREAMS:
                raise ConfigError(f"add_real: --{name_} is not available on a real node of a "
                                  f"cluster; node.get() uses the harness's own HTTP socket")
        if sum(name_ in _UWSGI for name_, _value in _pairs(self.options)) > 1:
            raise ConfigError("add_real: one --socket at the most on a real node")

    # -- starting ---------------------------------------------------------------------
    def start(self) -> None:
        from .modes.real import RealUwsgi

        argv = self._rewritten()
        self._out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        net = self.cluster.net
        if self.tcp is not None:
            net.nodes[self.name].ports[self.tcp[0]] = "uwsgi"
        for vport, rport in self.udp_ports.items():
            net.bind_udp(self.name, vport, self._sender(rport))
        self.real = RealUwsgi(argv, binary=self.binary, app_dir=self.app_dir,
                              allow_no_app=self.allow_no_app, max_lifetime=3600)
        self.real.start()
        self.cluster._record("node.real", name=self.name, argv=argv)

    def _sender(self, port: int) -> Callable[[bytes, str], None]:
        def send(data: bytes, _src: str) -> None:
            if self._out is not None and not self.inst.stopped:
                self._out.sendto(data, ("127.0.0.1", port))
        return send

    def _rewritten(self) -> list[str]:
        """The options with every UDP address made real (see the module doc)."""
        out: list[str] = []
        pending = ""
        for item in self.options:
            if item.startswith("--"):
                name, eq, value = item[2:].partition("=")
                out.append(f"--{name}={self._value(name, value)}" if eq else item)
                pending = "" if eq else name
            else:
                out.append(self._value(pending, item) if pending else item)
                pending = ""
        return out

    def _value(self, name: str, value: str) -> str:
        if name in _UWSGI:
            port = value.partition(",")[0].rpartition(":")[2]
            if not port.isdigit():
                raise ConfigError(f"add_real: --{name} {value}: a host:port address only")
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                self.tcp = (int(port), probe.getsockname()[1])
            return f"127.0.0.1:{self.tcp[1]}"
        if name in ("legion", "legion-mcast"):
            parts = value.split(" ")
            if len(parts) > 1:
                parts[1] = self._own(parts[1])
            return " ".join(parts)
        if name == "legion-node":
            legion, _sp, addr = value.partition(" ")
            return f"{legion} {self._peer(addr)}"
        if name == "cache-udp-server":
            return self._own(value)
        if name == "cache-udp-node":
            return self._peer(value)
        if name == "cache2":
            items = []
            for kv in value.split(","):
                key, eq, val = kv.partition("=")
                if key in ("node", "nodes"):
                    val = ";".join(self._peer(a) for a in val.split(";") if a)
                elif key in ("udp", "udp_servers", "udp_server", "udpservers", "udpserver"):
                    val = ";".join(self._own(a) for a in val.split(";") if a)
                items.append(f"{key}{eq}{val}")
            return ",".join(items)
        return value

    def _own(self, addr: str) -> str:
        """Our UDP ``host:port``: a free loopback port standing for the virtual one."""
        _host, _colon, port = addr.rpartition(":")
        if not port.isdigit():
            return addr
        vport = int(port)
        if vport not in self.udp_ports:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                probe.bind(("127.0.0.1", 0))
                self.udp_ports[vport] = probe.getsockname()[1]
        return f"127.0.0.1:{self.udp_ports[vport]}"

    def _peer(self, addr: str) -> str:
        """A peer's UDP ``host:port``: a bridge into the virtual network."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        self.bridges[sock] = addr
        return f"127.0.0.1:{sock.getsockname()[1]}"

    # -- running ------------------------------------------------------------------------
    def forward(self, data: bytes, reply: Callable[[bytes], None]) -> None:
        """One connection to the real socket, in a helper thread; ``reply`` gets the
        answer's bytes (none: closed or no answer in time) in the pacing loop."""
        assert self.tcp is not None
        port = self.tcp[1]
        done = self.cluster._real_done

        def talk() -> None:
            chunks = []
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=_TIMEOUT) as conn:
                    conn.sendall(data)
                    while chunk := conn.recv(65536):
                        chunks.append(chunk)
            except OSError:
                pass
            done.put((reply, b"".join(chunks)))
            self.cluster._wake()

        with host_section():  # a worker may be the caller: the thread's locks are the host's
            threading.Thread(target=talk, daemon=True).start()

    def receive(self, sock: socket.socket) -> None:
        """Datagrams the real node sent to a bridge enter the virtual network."""
        while True:
            try:
                data = sock.recv(65536)
            except (BlockingIOError, OSError):
                return
            self.cluster.net.send_datagram(self.name, self.bridges[sock], data)

    def close(self) -> None:
        if self.real is not None:
            self.real.stop()
        for sock in [*self.bridges, self._out]:
            if sock is not None:
                sock.close()
        self.bridges.clear()
        self._out = None

    # -- driving ------------------------------------------------------------------------
    def get(self, path: str, **kw: Any) -> Any:
        """A request to the real node through the harness's HTTP socket."""
        return self.real.get(path, **kw)

    @property
    def log(self) -> list[str]:
        return self.real.log if self.real is not None else []

    def stop(self) -> None:
        self.real.stop()

    def kill(self) -> None:
        self.real.kill()

    def __repr__(self) -> str:
        return f"<RealNode {self.name} {self.address}>"


def _pairs(options: list[str]) -> list[tuple[str, str]]:
    out = []
    for i, item in enumerate(options):
        if item.startswith("--"):
            name, eq, value = item[2:].partition("=")
            nxt = options[i + 1] if i + 1 < len(options) else ""
            out.append((name, value if eq else nxt))
    return out


def run_paced(cluster: Cluster, until: float) -> None:
    """Run the cluster until virtual ``until``, virtual time following real time, the
    real nodes' datagrams carried into the virtual network as they come."""
    kernel = cluster.kernel
    bridges = {sock: node for node in cluster.real_nodes.values() for sock in node.bridges}
    waker = cluster._waker[0]
    zero = cluster._real_zero
    while kernel.now < until:
        due = kernel.peek()
        target = until if due is None else min(due, until)
        wait = max(0.0, zero + target - RealClock.monotonic())
        readable = select.select([waker, *bridges], [], [], wait)[0]
        now = min(until, max(kernel.now, RealClock.monotonic() - zero))
        cluster._run(lambda: kernel.run_until(now))
        for sock in readable:
            if sock is waker:
                _drain(waker)
            else:
                bridges[sock].receive(sock)
        while True:  # the helper threads' answers
            try:
                reply, data = cluster._real_done.get_nowait()
            except queue.Empty:
                break
            reply(data)


def _drain(sock: socket.socket) -> None:
    try:
        while sock.recv(4096):
            pass
    except (BlockingIOError, OSError):
        pass
