"""Real uWSGI nodes inside a cluster (``Cluster.add_real``), talking UDP and TCP with
the virtual ones both ways.

A real node is a real uWSGI (pyuwsgi's, or one built with SSL for Legion:
``simuwsgi.modes.real._ssl_build``) started on loopback by the real-mode harness
(:class:`~simuwsgi.modes.real.RealUwsgi`: its own ``--http-socket``, which
``node.get(...)`` uses). It has a place on the virtual network (a name, a virtual IP) and
its datagrams and connections cross the same links as everyone's:

* the UDP addresses in its options are rewritten before it starts: its own
  (``--legion``'s ADDR, ``udp=``, ``--cache-udp-server``) become free loopback ports,
  and a peer's (``--legion-node``, ``nodes=``, ``--cache-udp-node``, the subscription
  server of ``--subscribe-to``/``--subscribe2 server=``: a virtual node's IP, name or
  host name and port) becomes a *bridge*, a real loopback socket whose datagrams enter
  the virtual network as sent by the real node (a subscription's announced address,
  its socket's real one, made its virtual one);
* what a virtual node sends to the real node's address goes out of a real socket to
  its real port, once the virtual link has carried it (so ``partition``, ``loss`` and
  latency apply both ways);
* its TCP sockets (``--socket``, ``--fastrouter``, ``--http``) are free loopback ports
  too, and stand on the virtual network at their virtual ports: a virtual node's
  ``uwsgi.rpc("r:3031", ...)``, ``cache_get(key, "c@r:3031")``, ``signal(n,
  "r:3031")``, a ``sync=``, ``cluster.request("r:8080")`` - its bytes cross the virtual
  link, then a helper thread writes them to the real socket and reads the reply, which
  crosses the link back;
* the TCP peers it names (``--http-to``, ``--fastrouter-to``, ``--cache-sync``,
  ``sync=``, and a ``KEY=host:port`` of ``--set``/``--set-placeholder``/``--env``
  whose host is another node, for its app to read) become TCP bridges
  (``simuwsgi.network._bridge``): its connections there are relayed onto the virtual
  network from the real node to that address. ``Cluster.real_address`` gives one for
  any other use (an rpc argument).

While a cluster has a real node it runs paced by the real clock (virtual time follows
real elapsed time) and its wall clock is the real one (a real node refuses Legion
announces from more than 60 s in its past). Nothing is deterministic there: the real
node's timing is the OS's. ``node.get`` runs the cluster while the real node answers
(its app may call virtual nodes).

Left out: ``--http-socket`` on a real node (the harness gives it one); UDP and TCP
peers in options not listed above; a real router's own subscription server
(``--*-subscription-server`` is not rewritten: virtual backends cannot subscribe to a
real router).
"""

from __future__ import annotations

import queue
import select
import socket
import threading
from dataclasses import replace
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._core.clock import RealClock
from .protocol import ProtocolError, decode_subscription, encode_subscription
from ._errors import ConfigError
from .server.config import parse_options
from .network._bridge import TcpBridge
from .server.containment import host_section

if TYPE_CHECKING:
    from .cluster import Cluster

__all__ = ["RealNode", "run_paced"]

_STREAMS = ("http-socket", "http11-socket", "https-socket")
#: Our own TCP sockets and what they speak (``network._network.SOCKET_OPTIONS``).
_OWN_TCP = {"socket": "uwsgi", "uwsgi-socket": "uwsgi", "fastrouter": "fastrouter",
            "http": "http-router"}
#: Options naming one TCP peer (``host:port``): its bridge takes its place.
_TCP_PEERS = ("http-to", "fastrouter-to", "cache-sync")
#: Options whose ``KEY=host:port`` value may name another node (the app reads it:
#: ``uwsgi.opt``, a placeholder, ``os.environ``): its bridge takes its place.
_SETTINGS = ("set", "set-placeholder", "set-ph", "env")
#: How long the helper thread waits for the real node (``--socket-timeout``'s default).
_TIMEOUT = 4.0
#: The pacing loop's longest sleep when nothing is scheduled (seconds).
_IDLE = 1.0


class _Endpoint:
    """What the virtual network reads of a node's instance: its options (no stream
    ports), host name, and whether it runs."""

    def __init__(self, node: RealNode) -> None:
        self.node = node
        self.opts = parse_options([])
        self.hostname = node.name
        # what the virtual network's server side reads a request with (uWSGI's defaults)
        self.buffer_size = 4096
        self.max_vars = 128

    def log(self, line: str) -> None:
        """A line the virtual network would log for this node: the real one logs its own."""

    @property
    def stopped(self) -> bool:
        real = self.node.real
        return real is None or not real.running

    @property
    def ready(self) -> bool:
        return not self.stopped

    def forward(self, *args: Any) -> None:
        """A virtual node's request bytes reached us: ask the real socket."""
        self.node.forward(*args)


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
        #: The bridges to subscription servers (``--subscribe-to``, ``--subscribe2``).
        self.subscribing: set[socket.socket] = set()
        #: Our UDP ports: virtual port -> real loopback port.
        self.udp_ports: dict[int, int] = {}
        self._out: socket.socket | None = None
        #: Our TCP sockets: virtual port -> (real loopback port, what it speaks).
        self.tcp_ports: dict[int, tuple[int, str]] = {}
        #: TCP bridges: (node name or unreachable IP, port) we connect to -> its bridge.
        self.tcp_bridges: dict[tuple[str, Any], TcpBridge] = {}
        ports: set[str] = set()
        for name_, value in _pairs(self.options):
            if name_ in _STREAMS:
                raise ConfigError(f"add_real: --{name_} is not available on a real node of a "
                                  f"cluster; node.get() uses the harness's own HTTP socket")
            if name_ in _OWN_TCP:
                port = value.partition(",")[0].rpartition(":")[2]
                if not port.isdigit():
                    raise ConfigError(f"add_real: --{name_} {value}: a host:port address only")
                if port in ports:
                    raise ConfigError(f"add_real: --{name_} {value}: port {port} is taken by "
                                      f"another socket of the node")
                ports.add(port)

    # -- starting ---------------------------------------------------------------------
    def start(self) -> None:
        from .modes.real import RealUwsgi

        argv = self._rewritten()
        self._out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        net = self.cluster.net
        for vport, (_rport, protocol) in self.tcp_ports.items():
            net.nodes[self.name].ports[vport] = protocol
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
        if name in _OWN_TCP:  # checked by __init__
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                rport = probe.getsockname()[1]
            self.tcp_ports[int(value.partition(",")[0].rpartition(":")[2])] = \
                (rport, _OWN_TCP[name])
            return f"127.0.0.1:{rport}"
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
        if name in _TCP_PEERS:
            return self.bridge(value)
        if name == "subscribe-to" or name == "subscribe":  # SERVER:PORT:KEY
            host, _colon, rest = value.partition(":")
            port, colon, key = rest.partition(":")
            return f"{self._peer(f'{host}:{port}', subscribing=True)}{colon}{key}"
        if name == "subscribe2":
            return ",".join(f"server={self._peer(kv[7:], subscribing=True)}"
                            if kv.startswith("server=") else kv for kv in value.split(","))
        if name in _SETTINGS:
            key, eq, addr = value.partition("=")
            if eq and self._names_node(addr):
                return f"{key}={self.bridge(addr)}"
            return value
        if name == "cache2":
            items = []
            for kv in value.split(","):
                key, eq, val = kv.partition("=")
                if key in ("node", "nodes"):
                    val = ";".join(self._peer(a) for a in val.split(";") if a)
                elif key in ("udp", "udp_servers", "udp_server", "udpservers", "udpserver"):
                    val = ";".join(self._own(a) for a in val.split(";") if a)
                elif key == "sync":
                    val = ";".join(self.bridge(a) for a in val.split(";") if a)
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

    def _peer(self, addr: str, *, subscribing: bool = False) -> str:
        """A peer's UDP ``host:port``: a bridge into the virtual network
        (``subscribing``: a subscription server's, see :meth:`receive`)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        self.bridges[sock] = addr
        if subscribing:
            self.subscribing.add(sock)
        return f"127.0.0.1:{sock.getsockname()[1]}"

    def bridge(self, address: str) -> str:
        """The real ``127.0.0.1:port`` where our connections reach the virtual
        ``address`` (a node's name, IP or host name and a port) over the virtual link
        (``simuwsgi.network._bridge``), made on first use."""
        try:
            node, port = self.cluster.net.resolve(self.name, address)
        except OSError as exc:
            raise ConfigError(f"real node {self.name!r}: {exc}") from None
        key = (node.name if node is not None else address.rpartition(":")[0], port)
        found = self.tcp_bridges.get(key)
        if found is None:  # one per destination, whatever name the address gives it
            found = self.tcp_bridges[key] = TcpBridge(self.cluster.net, self.name, address)
        return f"127.0.0.1:{found.port}"

    def _names_node(self, value: str) -> bool:
        """Whether ``value`` is a ``host:port`` whose host is another node's."""
        try:
            node, _port = self.cluster.net.resolve(self.name, value)
        except OSError:
            return False
        return node is not None and node.name != self.name

    # -- running ------------------------------------------------------------------------
    def forward(self, net: Any, node: Any, vport: int, peer: str, data: bytes,
                reply: Callable[[bytes], None]) -> None:
        """A connection's request bytes from node ``peer`` reached our virtual port
        ``vport``: one connection to the real socket, in a helper thread; its answer's
        bytes (none: closed or no answer in time) cross the link back to ``reply``."""
        port = self.tcp_ports[vport][0]
        done = self.cluster._real_done

        def answer(out: bytes) -> None:
            net.transmit(node.name, peer, len(out), reply, out)

        def talk() -> None:
            chunks = []
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=_TIMEOUT) as conn:
                    conn.sendall(data)
                    while chunk := conn.recv(65536):
                        chunks.append(chunk)
            except OSError:
                pass
            done.put((answer, b"".join(chunks)))
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
            if sock in self.subscribing:
                data = self._announced(data)
            self.cluster.net.send_datagram(self.name, self.bridges[sock], data)

    def _announced(self, data: bytes) -> bytes:
        """A subscription datagram as the router must read it: the address it announces
        (our socket's real ``127.0.0.1:PORT``) made our virtual one."""
        try:
            sub = decode_subscription(data)
        except ProtocolError:
            return data
        real = {f"127.0.0.1:{rport}".encode(): vport
                for vport, (rport, _p) in self.tcp_ports.items()}
        vport = real.get(sub.address)
        if vport is None:
            return data
        return encode_subscription(replace(sub, address=f"{self.address}:{vport}".encode()))

    def close(self) -> None:
        if self.real is not None:
            self.real.stop()
        for sock in [*self.bridges, self._out]:
            if sock is not None:
                sock.close()
        self.bridges.clear()
        for bridge in self.tcp_bridges.values():
            bridge.close()
        self.tcp_bridges.clear()
        self._out = None

    # -- driving ------------------------------------------------------------------------
    def get(self, path: str, **kw: Any) -> Any:
        """A request to the real node through the harness's HTTP socket; the cluster
        runs meanwhile (the real node's app may call virtual nodes through bridges)."""
        box: list[tuple[bool, Any]] = []
        cluster = self.cluster

        def ask() -> None:
            try:
                box.append((True, self.real.get(path, **kw)))
            except Exception as exc:  # noqa: BLE001 - raised in the caller's thread
                box.append((False, exc))
            cluster._wake()

        cluster._ensure_started()
        threading.Thread(target=ask, daemon=True).start()
        run_paced(cluster, float("inf"), done=lambda: bool(box))
        ok, value = box[0]
        if not ok:
            raise value
        return value

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


def run_paced(cluster: Cluster, until: float, done: Callable[[], bool] | None = None) -> None:
    """Run the cluster until virtual ``until`` (or until ``done()``), virtual time
    following real time, the real nodes' datagrams and connections carried into the
    virtual network as they come."""
    kernel = cluster.kernel
    reals = cluster.real_nodes.values()
    bridges = {sock: node for node in reals for sock in node.bridges}
    waker = cluster._waker[0]
    zero = cluster._real_zero
    while kernel.now < until and not (done is not None and done()):
        due = kernel.peek()
        target = until if due is None else min(due, until)
        wait = min(_IDLE, max(0.0, zero + target - RealClock.monotonic()))
        # the TCP bridges and their connections (simuwsgi.network._bridge)
        tcp = [b for node in reals for b in node.tcp_bridges.values()]
        for bridge in tcp:
            bridge.sync()
        listeners = {b.listener: b for b in tcp if b.listener is not None}
        relays = [r for b in tcp for r in b.relays]
        reading = {r.conn: r for r in relays if r.wants_read}
        writing = {r.conn: r for r in relays if r.out}
        readable, writable, _x = select.select([waker, *bridges, *listeners, *reading],
                                               list(writing), [], wait)
        now = min(until, max(kernel.now, RealClock.monotonic() - zero))
        cluster._run(lambda: kernel.run_until(now))
        for sock in writable:
            writing[sock].writable()
        for sock in readable:
            if sock is waker:
                _drain(waker)
            elif sock in bridges:
                bridges[sock].receive(sock)
            elif sock in listeners:
                listeners[sock].accept()
            else:
                reading[sock].readable()
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
