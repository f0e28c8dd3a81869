"""The cluster's address table, its links, and the verbs that control them.

Addresses: a node has one IP (``cluster.add(..., address="10.0.0.2")``) and listens on
the ports of its ``--socket``/``--uwsgi-socket``/``--http-socket``/``--http11-socket``
options, whatever host part they give (nothing binds on the host). A UNIX socket of
those options (``--socket /tmp/app.sock``) is reachable by its path from the node
itself only (each node is a host of its own: no file is shared), over its loopback. A peer is named
``host:port`` where host is the node's IP, its name or its host name; ``127.0.0.1`` and
``localhost`` are the calling node itself. An IP no node has is unreachable (a connect
waits for its timeout, as toward a dead host); a name no node has does not resolve.

Links: one :class:`~simuwsgi.network.LinkSettings` per direction of each pair of nodes
(default: 100 µs, nothing lost). Traffic on a cut link (``partition``, ``isolate``)
or a held one (``hold``) waits: a TCP stream's bytes are retransmitted until the link
works again (``heal``/``release`` delivers them, in order; a connection given up in
the meantime ignores them), a datagram on a cut link is lost and on a held link queued.
Each verb is recorded in the cluster's trace (``net.partition``, ``net.heal``, ...).

Datagrams (UDP: subscriptions...): a node binds a port with :meth:`Network.bind_udp`;
:meth:`Network.send_datagram` carries one datagram there as ``sendto()`` does: nothing
tells the sender whether it arrived (a lost, cut or unbound one is a ``net.drop``
record).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._links import LinkSettings

if TYPE_CHECKING:
    from .._core.kernel import Kernel

__all__ = ["Endpoint", "Network", "UnknownHost"]

#: The options whose ``host:port`` values are a node's stream sockets, and what they
#: speak (the routers' ports are served by the node's ``routers`` subsystem).
SOCKET_OPTIONS = {"socket": "uwsgi", "uwsgi-socket": "uwsgi", "http-socket": "http",
                  "http11-socket": "http", "fastrouter": "fastrouter", "http": "http-router"}
#: A node talking to itself (loopback).
LOOPBACK = LinkSettings(latency=0.00001)
_SELF = ("127.0.0.1", "localhost", "")


class UnknownHost(OSError):
    """A host name no node has (the client's name resolution fails)."""


@dataclass(slots=True)
class Endpoint:
    """A node on the network: its name, IP, ports, instance and how a connection's
    request enters it (``submit``)."""

    name: str
    host: str
    inst: Any
    submit: Callable[..., Any]
    #: The listening ports and their protocol (``uwsgi``, ``http``, ``fastrouter``,
    #: ``http-router``); a UNIX socket's key is its path.
    ports: dict[int | str, str] = field(default_factory=dict)
    #: The bound UDP ports: ``handler(datagram, sender_name)``.
    udp: dict[int, Callable[[bytes, str], None]] = field(default_factory=dict)


def _ports(opts: Any) -> dict[int | str, str]:
    ports: dict[int | str, str] = {}
    for option, protocol in SOCKET_OPTIONS.items():
        for value in opts.strings(option):
            address = str(value).partition(",")[0]
            _host, sep, port = address.rpartition(":")
            if sep and port.isdigit():
                ports.setdefault(int(port), protocol)
            elif not sep and address:  # a UNIX socket: its path is the "port"
                ports.setdefault(address, protocol)
    return ports


class Network:
    """The links between a cluster's nodes (see the module doc)."""

    def __init__(self, kernel: Kernel, record: Callable[..., None]) -> None:
        self.kernel = kernel
        #: Adds a record to the cluster's trace: ``record(kind, **fields)``.
        self.record = record
        self.nodes: dict[str, Endpoint] = {}
        self._by_host: dict[str, Endpoint] = {}
        self._links: dict[tuple[str, str], LinkSettings] = {}
        self._default = LinkSettings()
        #: Directed pairs whose traffic waits (cut: partition/isolate; held: hold).
        self._cut: set[tuple[str, str]] = set()
        self._held: set[tuple[str, str]] = set()
        self._waiting: dict[tuple[str, str], list[tuple[int, Callable[..., Any], tuple[Any, ...], bool]]] = {}
        self._slow: dict[str, float] = {}
        #: When the last stream bytes on each directed pair arrive (TCP keeps order).
        self._last: dict[tuple[str, str], float] = {}
        #: 1.4's ``--cluster`` groups: address -> node name -> member (``_legacy``).
        self.groups: dict[str, dict[str, Any]] = {}
        #: Outgoing connections made by sockets (``_appsockets``): their local ports.
        self.connections = 0
        #: ``resolve``'s answers, (src, address) -> (node, port): a client calls the
        #: same few addresses again and again; a new node forgets them.
        self._resolved: dict[tuple[str, str], tuple[Endpoint | None, Any]] = {}

    # -- addresses ---------------------------------------------------------------------
    def attach(self, name: str, host: str, inst: Any, submit: Callable[..., Any]) -> Endpoint:
        if host in self._by_host:
            raise ValueError(f"address {host} is already node {self._by_host[host].name!r}'s")
        node = Endpoint(name, host, inst, submit, _ports(inst.opts))
        self.nodes[name] = node
        for key in (name, host, inst.hostname):
            self._by_host.setdefault(key, node)
        self._resolved.clear()
        return node

    def resolve(self, src: str, address: str) -> tuple[Endpoint | None, Any]:
        """The node and port ``address`` names for node ``src``; (None, port) for an
        unreachable IP; a UNIX socket's path (no ``:``, as ``uwsgi_connect`` tells
        them) names a file of ``src``'s own host: (``src``'s node, the path). Raises
        :class:`UnknownHost` (an OSError, as the client's failed lookup or connect)."""
        known = self._resolved.get((src, address))
        if known is not None:
            return known
        host, sep, port = address.rpartition(":")
        if not sep and address:
            return self.nodes[src], address
        if not sep or not port.isdigit():
            raise UnknownHost(f"{address!r} is not a host:port address")
        if host in _SELF or host == "0.0.0.0":
            node: Endpoint | None = self.nodes[src]
        else:
            node = self._by_host.get(host)
            if node is None and not _is_ip(host):
                raise UnknownHost(f"unable to resolve {host!r}: no node has that name")
        known = self._resolved[(src, address)] = (node, int(port))
        return known

    def bind_udp(self, name: str, port: int, handler: Callable[[bytes, str], None]) -> None:
        """Node ``name`` receives the datagrams sent to ``port`` with ``handler``."""
        self.nodes[name].udp[port] = handler

    def unbind_udp(self, name: str, port: int) -> None:
        self.nodes[name].udp.pop(port, None)

    def send_datagram(self, src: str, address: str, data: bytes) -> None:
        """Node ``src`` sends one datagram to ``address`` (``host:port``)."""
        try:
            dst, port = self.resolve(src, address)
        except OSError:
            dst = None
        if dst is None:
            self.record("net.drop", src=src, dst=address, size=len(data), why="no such host")
            return
        settings = self._links.get((src, dst.name)) if self._links else None
        if settings is not None and settings.corrupt:
            damaged = settings.damage(self.kernel.rng, data)
            if damaged != data:
                self.record("net.corrupt", src=src, dst=dst.name, size=len(data))
                data = damaged
        self.transmit(src, dst.name, len(data), self._datagram, src, dst, port, data,
                      stream=False)

    def _datagram(self, src: str, dst: Endpoint, port: int, data: bytes) -> None:
        handler = dst.udp.get(port)
        if handler is None or dst.inst.stopped:
            self.record("net.drop", src=src, dst=dst.name, size=len(data),
                        why=f"port {port} not bound")
            return
        handler(data, src)

    def signal_masters(self, inst: Any, target: str, num: int) -> None:
        """Signal target ``cluster``/``subscribed`` of a ``legacy=True`` node (the
        signals subsystem's way here: ``network._routers.signal_nodes``)."""
        from ._routers import signal_nodes

        signal_nodes(self, inst, target, num)

    def _node(self, name: str) -> str:
        if name not in self.nodes:
            raise KeyError(f"no node named {name!r} (there are: {', '.join(self.nodes)})")
        return name

    # -- carrying bytes ------------------------------------------------------------------
    def transmit(self, src: str, dst: str, nbytes: int, fn: Callable[..., Any], *args: Any,
                 stream: bool = True) -> None:
        """Deliver ``nbytes`` from ``src`` to ``dst``: call ``fn(*args)`` when they
        arrive (never for a lost datagram; twice for a duplicated one)."""
        key = (src, dst)
        if (self._cut or self._held) and (key in self._cut or key in self._held):
            if stream or key in self._held:
                self._waiting.setdefault(key, []).append((nbytes, fn, args, stream))
            else:
                self.record("net.drop", src=src, dst=dst, size=nbytes, why="cut")
            return
        self._send(key, nbytes, fn, args, stream)

    def _send(self, key: tuple[str, str], nbytes: int, fn: Callable[..., Any],
              args: tuple[Any, ...], stream: bool) -> None:
        src, dst = key
        settings = LOOPBACK if src == dst else self._links.get(key, self._default)
        slow = self._slow.get(src, 1.0) * self._slow.get(dst, 1.0) if self._slow else 1.0
        kernel = self.kernel
        rng = kernel.rng
        if stream:
            when = kernel.now + settings.stream_delay(rng, nbytes, slow)
            last = self._last.get(key, 0.0)
            if when < last:
                when = last
            self._last[key] = when
            kernel.post_at(when, fn, *args)
            return
        delays = settings.datagram_delays(rng, nbytes, slow)
        if not delays:
            self.record("net.drop", src=src, dst=dst, size=nbytes, why="loss")
        for delay in delays:
            kernel.post(delay, fn, *args)

    def _flush(self) -> None:
        """Send what waits on links that work again, in the order it was sent."""
        for key in sorted(self._waiting):
            if key in self._cut or key in self._held:
                continue
            for nbytes, fn, args, stream in self._waiting.pop(key):
                self._send(key, nbytes, fn, args, stream)

    # -- the verbs -------------------------------------------------------------------------
    def partition(self, *groups: Iterable[str]) -> None:
        """Cut every link between nodes of different groups
        (``partition(["a"], ["b", "c"])``); other links are unchanged."""
        sets = [[self._node(n) for n in ([g] if isinstance(g, str) else g)] for g in groups]
        if len(sets) < 2:
            raise ValueError("partition needs at least two groups of node names")
        for i, group in enumerate(sets):
            for other in sets[i + 1:]:
                for a in group:
                    for b in other:
                        self._cut.update(((a, b), (b, a)))
        self.record("net.partition", groups=sets)

    def isolate(self, name: str) -> None:
        """Cut every link of node ``name``."""
        self._node(name)
        for other in self.nodes:
            if other != name:
                self._cut.update(((name, other), (other, name)))
        self.record("net.isolate", name=name)

    def heal(self) -> None:
        """Undo every partition and isolation; waiting stream bytes go on."""
        self._cut.clear()
        self.record("net.heal")
        self._flush()

    def hold(self, a: str, b: str) -> None:
        """Queue everything between ``a`` and ``b`` (both ways) until ``release``."""
        self._held.update(((self._node(a), self._node(b)), (b, a)))
        self.record("net.hold", a=a, b=b)

    def release(self, a: str, b: str) -> None:
        """Deliver what ``hold(a, b)`` queued, in order, and stop holding."""
        self._held.difference_update(((self._node(a), self._node(b)), (b, a)))
        self.record("net.release", a=a, b=b)
        self._flush()

    def set_link(self, a: str, b: str, *, one_way: bool = False, **settings: Any) -> None:
        """Change the link from ``a`` to ``b`` (and back, unless ``one_way``):
        ``latency``, ``jitter``, ``loss``, ``duplicate``, ``reorder``, ``corrupt``,
        ``bandwidth`` (see :class:`~simuwsgi.network.LinkSettings`)."""
        pairs = [(self._node(a), self._node(b))] + ([] if one_way else [(b, a)])
        for key in pairs:
            try:
                self._links[key] = self._links.get(key, self._default).changed(**settings)
            except TypeError:
                raise TypeError(f"set_link takes {', '.join(LinkSettings.__slots__)}, "
                                f"not {', '.join(sorted(settings))}") from None
        self.record("net.set_link", a=a, b=b, one_way=one_way, **settings)

    def waits(self, src: str, dst: str) -> bool:
        """Whether traffic from ``src`` to ``dst`` waits (a cut or held link)."""
        return (src, dst) in self._cut or (src, dst) in self._held

    def link(self, a: str, b: str) -> LinkSettings:
        """The settings of the link from ``a`` to ``b``."""
        return self._links.get((self._node(a), self._node(b)), self._default)

    def slow(self, name: str, factor: float) -> None:
        """Multiply every delay to and from node ``name`` by ``factor`` (1: normal)."""
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not factor > 0:
            raise ValueError(f"slow factor must be a number > 0, not {factor!r}")
        self._slow[self._node(name)] = float(factor)
        self.record("net.slow", name=name, factor=factor)


def _is_ip(host: str) -> bool:
    parts = host.split(".")
    return len(parts) == 4 and all(p.isdigit() and int(p) < 256 for p in parts)
