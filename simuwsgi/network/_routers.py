"""Routers and subscriptions between a cluster's nodes: ``--fastrouter``, ``--http``,
``--subscribe-to``/``--subscribe2``.

The ``routers`` subsystem of a cluster's node. What it models (uWSGI 2.0.30
``plugins/corerouter/{corerouter,cr_common,cr_map}.c``, ``plugins/fastrouter``,
``plugins/http``, ``core/subscription.c``, ``core/master.c``; cluster.md §4):

* **A router** (``--fastrouter ADDR``, ``--http ADDR``) is a gateway process the master
  spawns once its loop starts (``spawned uWSGI fastrouter 1 (pid: N)``), listening on
  ADDR's port of the node. Each connection is one session: the fastrouter reads a uwsgi
  packet and takes its key from ``UWSGI_FASTROUTER_KEY``, else ``HTTP_HOST``, else
  ``SERVER_NAME``; the HTTP router parses the HTTP head (as ``--http-socket`` does,
  adding ``UWSGI_ROUTER`` and ``REMOTE_PORT``) and keys on the ``Host`` header. It picks a backend (below), connects to it over the
  virtual network with ``--<router>-timeout`` (60 s) per wait, sends the request as a
  uwsgi packet with the node's modifier1/modifier2, and relays the reply's bytes. No key,
  no backend, or every retry failed: the client's connection is closed with no byte.
* **Backends**, in uWSGI's mapper order: the subscription table when the router has a
  ``--<router>-subscription-server`` (:mod:`._subscriptions`: pools, wrr/lrc/wlrc,
  ``--subscription-tolerance``); else ``--<router>-to`` nodes in turn (a failed one is
  skipped for ``--<router>-gracetime``, 30 s); else, for ``--http``, the node's own
  first socket (uWSGI's ``--http`` in front of the workers: with no ``--socket`` the
  requests go straight to the node's workers, as uWSGI's auto-assigned socket 0 does).
* **Failures**: a refused or timed-out connection logs ``[uwsgi-ROUTER] unable to
  connect() to node "ADDR" (N retries): ...``, death-marks the subscribed node (``=>
  marking ADDR as failed``; removed when no session uses it) or the static node, and
  the session retries with a new lookup, at most 3 times (``max_retries``).
* **Subscription servers** receive modifier1 224 datagrams on UDP (``bind_udp``):
  cmd 0 subscribes, anything else unsubscribes (``[uWSGI ROUTER pid N] KEY => marking
  ADDR as failed``).
* **A subscriber** (a node with ``--subscribe-to [ADDR=]SERVER:KEY[,modifier1]`` or
  ``--subscribe2 server=,key=,addr=,socket=,weight=,modifier1=,modifier2=,check=``)
  has its master send the datagrams when its loop starts (``subscribing to ...``), at
  its first cycle (1 s later), then every ``--subscribe-freq`` cycles (10 s; a master
  cycle is one per second), unless ``--start-unsubscribed``; the announced address is
  the first socket's name, cores = workers x cores, weight ``--weight`` (``--auto-weight``:
  the cores; ``--subscribe2 weight=`` sets ``--weight`` for every later datagram, as
  uWSGI's global does). A stop or a brutal reload unsubscribes first (``unsubscribing
  from ...``); a graceful reload only with ``--unsubscribe-on-graceful-reload``; a
  SIGKILLed master says nothing (the router notices through the tolerance, or a
  refused connection).

Outside a cluster these options log a warning and do nothing (a lone simulation has no
network). Left out: signed subscriptions (``sign``, ``--subscriptions-sign-check``), SNI,
UNIX-socket subscription servers and backends, ``--<router>-resubscribe``,
``--subscription-dotsplit``, fallback nodes and keys, ``--<router>-use-cache/-pattern/
-base/-code-string``, cheap mode, several router processes, post-buffering, keep-alive,
the routers' stats servers, ``--http-var`` and ``--http-server-name-as-http-host``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._errors import ConfigError, OptionNotSimulatedError
from ..protocol import (
    SERVER,
    Connection,
    RemoteProtocolError,
    Request,
    Subscription,
    decode_subscription,
    encode_subscription,
    last_value,
    parse_http_request,
    response_protocol,
    str_num,
)
from ..server import banner as _banner
from ..server.config import atoi
from ._subscriptions import SubscribedNode, SubscriptionTable

if TYPE_CHECKING:
    from ..server.master import Instance
    from ._network import Network

# ``._remote`` (the connections) imports trio, which every simulation would then import
# when it looks for its subsystems: the routers import it when a node uses them (a
# Cluster imported it already, before its clock patch).

__all__ = ["Routers"]

#: The routers this module serves, and the names of their options.
OPTION_NAMES = {
    "fastrouter": {"to": "fastrouter-to", "server": "fastrouter-subscription-server",
                   "timeout": "fastrouter-timeout", "gracetime": "fastrouter-gracetime",
                   "buffer-size": "fastrouter-buffer-size"},
    "http": {"to": "http-to", "server": "http-subscription-server",
             "timeout": "http-timeout", "gracetime": "http-gracetime",
             "buffer-size": "http-buffer-size"},
}
ROUTERS = tuple(OPTION_NAMES)
#: ``ucr->max_retries`` (corerouter.c: 3 unless set).
MAX_RETRIES = 3
#: The clients' ports (``REMOTE_PORT``) count up from here: a real client's ephemeral
#: port is the system's choice.
_CLIENT_PORTS = 40000


def _port(address: str) -> int | None:
    _host, sep, port = address.partition(",")[0].rpartition(":")
    return int(port) if sep and port.isdigit() else None


class Routers:
    """The routers and the subscriber of one cluster node (see the module doc)."""

    @classmethod
    def create(cls, inst: Instance) -> Routers | None:
        o = inst.opts
        given = [name for name in (*ROUTERS, "subscribe-to", "subscribe2") if o.strings(name)]
        if not given:
            return None
        if getattr(inst, "network", None) != "virtual":
            if getattr(inst, "strict", False):
                raise OptionNotSimulatedError(
                    f"{' '.join('--' + n for n in given)}: routers and subscriptions are "
                    f"simulated between the nodes of a Cluster only")
            inst.log(f"[simuwsgi] {', '.join('--' + n for n in given)}: routers and "
                     f"subscriptions are simulated between the nodes of a Cluster only; "
                     f"ignored here")
            return None
        return cls(inst)

    def __init__(self, inst: Instance) -> None:
        self.inst = inst
        self.net = inst.cluster_network  # type: ignore[attr-defined]
        self.by_port: dict[int, Router] = {}
        o = inst.opts
        # ``--http`` with no backend option and no socket: uWSGI makes socket 0 on
        # 127.0.0.1 (fd 3) before the routers bind theirs (and logs it after them)
        sockets = len(_banner.sockets(inst))
        auto = not sockets and bool(o.strings("http")) and not o.strings(
            OPTION_NAMES["http"]["server"], OPTION_NAMES["http"]["to"])
        fd = 3 + sockets + auto
        self.routers: list[Router] = []
        for kind in ROUTERS:
            if o.strings(kind):
                router = Router(self, kind, fd, auto_fd=3 if auto else None)
                fd += len(router.listen) + len(router.servers)
                self.routers.append(router)
        has_subscriptions = inst.opts.strings("subscribe-to", "subscribe2")
        self.subscriber = Subscriber(inst, self.net) if has_subscriptions else None

    def facade_functions(self) -> dict[str, Any]:
        return {}

    def master_loop_started(self) -> None:
        """uwsgi_master_loop: spawn the gateways, then the first subscription."""
        for router in self.routers:
            router.spawn()
        if self.subscriber is not None:
            self.subscriber.start()

    def unsubscribe_all(self) -> None:
        if self.subscriber is not None:
            self.subscriber.announce(1, verbose=True)

    def close(self) -> None:
        for router in self.routers:
            router.close()
        if self.subscriber is not None:
            self.subscriber.close()

    def serve(self, net: Any, node: Any, port: int, peer: str, data: bytes,
              reply: Callable[[bytes], None]) -> None:
        """A connection's request bytes on one of the routers' ports."""
        self.by_port[port].accept(peer, data, reply)


@dataclasses.dataclass(slots=True, eq=False)
class _Session:
    """One client connection a router serves."""

    peer: str
    key: bytes
    request: Request
    body: bytes
    protocol: bytes
    reply: Callable[[bytes], None]
    retries: int = 0
    node: SubscribedNode | None = None
    static: list[Any] | None = None
    address: str = ""


class Router:
    """One gateway: ``--fastrouter`` or ``--http`` (``kind``) on its node."""

    def __init__(self, owner: Routers, kind: str, fd: int, *, auto_fd: int | None) -> None:
        inst = self.inst = owner.inst
        o = inst.opts
        self.net = owner.net
        self.kind = kind
        self.name = f"uWSGI {kind}"
        self.tag = f"[uwsgi-{kind}]"
        self.pid = 0
        names = OPTION_NAMES[kind]
        self.timeout = o.int(names["timeout"], 0) or 60
        self.gracetime = o.int(names["gracetime"], 0) or 30
        self.algo = o.str("subscription-algo") or "wrr"
        self.tolerance = o.int("subscription-tolerance", 17)
        #: ``--<router>-to`` nodes: [address, when it failed (0: alive)]
        self.static: list[list[Any]] = [[a, 0] for a in o.strings(names["to"])]
        self._next_static = 0
        self.listen = o.strings(kind)
        self.modifiers = ((o.int("http-modifier1", 0), o.int("http-modifier2", 0))
                          if kind == "http" else (0, 0))
        self.servers = o.strings(names["server"])
        #: ``--fastrouter-buffer-size``/``--http-buffer-size`` (0: the node's
        #: ``--buffer-size``)
        self.buffer_size = o.int(names["buffer-size"], 0)
        self.table: SubscriptionTable | None = None
        self._sessions = 0
        self._early: list[tuple[bytes, str]] = []
        for value in self.listen:
            port = _port(value)
            if port is None:
                raise ConfigError(f"--{kind} {value}: only host:port addresses cross "
                                  f"the virtual network")
            owner.by_port[port] = self
            inst.log(f"{self.name} bound on {value} fd {fd}")
            fd += 1
        for value in self.servers:
            port = _port(value)
            if port is None:
                raise ConfigError(f"--{kind}-subscription-server {value}: only "
                                  f"host:port addresses cross the virtual network")
            self.net.bind_udp(inst.node, port, self.subscription)
            inst.log(f"{self.name} subscription server bound on {value} fd {fd}")
            fd += 1
        #: ``--http`` with no backend option: the node's own socket 0, made on
        #: 127.0.0.1 with a port the system picks when the node has none
        self.own_address: str | None = None
        self._auto_port: int | None = None
        if kind == "http" and not (self.servers or self.static):
            port = next((_port(a) for a in o.strings("socket", "uwsgi-socket")
                         if _port(a) is not None), None)
            if auto_fd is not None:
                port = self._auto_port = inst.kernel.rng.randrange(32768, 61000)
                self.net.nodes[inst.node].ports[port] = "uwsgi"  # ip_local_port_range
                inst.log(f"uwsgi socket 0 bound to TCP address 127.0.0.1:{port} "
                         f"(port auto-assigned) fd {auto_fd}")
            if port is not None:
                self.own_address = f"127.0.0.1:{port}"

    # -- the process ------------------------------------------------------------------
    def spawn(self) -> None:
        inst = self.inst
        self.pid = inst.next_pid()
        inst.log(f"spawned {self.name} 1 (pid: {self.pid})")
        self._record("router.spawn", pid=self.pid)
        if self.servers:
            self.table = SubscriptionTable(now=lambda: int(inst.wall()), log=self._log,
                                           pid=self.pid, name=self.name,
                                           tolerance=self.tolerance, algo=self.algo,
                                           record=self._record)
        for datagram, src in self._early:  # queued in the socket while it was not running
            self.subscription(datagram, src)
        self._early.clear()

    def close(self) -> None:
        for value in self.servers:
            port = _port(value)
            if port is not None:
                self.net.unbind_udp(self.inst.node, port)
        if self._auto_port is not None:  # a reload binds socket 0 on another port
            self.net.nodes[self.inst.node].ports.pop(self._auto_port, None)
        self.pid = 0

    def _log(self, line: str) -> None:
        self.inst.log(line, self.inst.master)

    def _record(self, kind: str, **fields: Any) -> None:
        self.inst.trace.add(self.inst.now, f"{self.kind}1", kind, fields)

    # -- subscriptions ------------------------------------------------------------------
    def subscription(self, datagram: bytes, src: str) -> None:
        """A datagram on the subscription server (``uwsgi_corerouter_manage_subscription``)."""
        if not self.pid:
            self._early.append((datagram, src))
            return
        try:
            sub = decode_subscription(datagram)
        except RemoteProtocolError as exc:
            self._record("subscription.invalid", why=str(exc))  # the router says nothing
            return
        assert self.table is not None
        self._record("subscription.receive", key=sub.key.decode("latin-1"),
                     address=sub.address.decode("latin-1"), command=sub.command)
        if sub.command == 0:
            self.table.subscribe(sub)
        else:
            self.table.unsubscribe(sub)

    # -- sessions ---------------------------------------------------------------------------
    def accept(self, peer: str, data: bytes, reply: Callable[[bytes], None]) -> None:
        """A client connection's bytes (``peer``: the client's node)."""
        parsed = self._parse(peer, data, reply) if self.pid and not self.inst.stopped else None
        if parsed is None or not parsed.key:
            self._close(reply, peer)
            return
        self._route(parsed)

    def _parse(self, peer: str, data: bytes, reply: Callable[[bytes], None]
               ) -> _Session | None:
        from ._remote import read_request

        inst = self.inst
        if self.kind == "fastrouter":
            conn = Connection(SERVER, buffer_size=self.buffer_size or inst.buffer_size,
                              max_vars=inst.max_vars)
            conn.receive_data(data)
            received = read_request(conn)
            if received is None or not isinstance(received[0], Request):
                return None
            request, body = received
            key = (last_value(request.vars, b"UWSGI_FASTROUTER_KEY")
                   or last_value(request.vars, b"HTTP_HOST")
                   or next((v for k, v in request.vars if k == b"SERVER_NAME"), b""))
        else:
            try:
                head = parse_http_request(
                    data, hostname=inst.hostname.encode(),
                    server_port=str(_port(self.listen[0])).encode(),
                    remote_addr=self.net.nodes[peer].host.encode(),
                    buffer_size=self.buffer_size or inst.buffer_size)
            except RemoteProtocolError:
                return None
            if head is None:
                return None
            request, body = self._http_vars(head.request), data[head.consumed:]
            key = last_value(request.vars, b"HTTP_HOST") or b""
        if len(key) > 0xFF:
            return None
        return _Session(peer=peer, key=key, request=request, body=body,
                        protocol=response_protocol(request.vars), reply=reply)

    def _http_vars(self, request: Request) -> Request:
        """The vars the HTTP router sends: ``--http-socket``'s, with ``UWSGI_ROUTER``
        before ``REMOTE_ADDR`` and the client's ``REMOTE_PORT`` after it (http.c)."""
        self._sessions += 1
        pairs = list(request.vars)
        at = next(i for i, (k, _v) in enumerate(pairs) if k == b"REMOTE_ADDR")
        pairs[at:at + 1] = [(b"UWSGI_ROUTER", b"http"), pairs[at],
                            (b"REMOTE_PORT", str(_CLIENT_PORTS + self._sessions).encode())]
        return dataclasses.replace(request, vars=tuple(pairs))

    def _close(self, reply: Callable[[bytes], None], peer: str) -> None:
        self.net.transmit(self.inst.node, peer, 0, reply, b"")

    def _route(self, session: _Session) -> None:
        from ._remote import Exchange

        address = self._map(session)
        if address is None:
            self._record("router.no_backend", key=session.key.decode("latin-1"))
            self._close(session.reply, session.peer)
            return
        session.address = address
        request = session.request
        node = session.node
        if node is not None and (node.modifier1, node.modifier2) != (request.modifier1,
                                                                      request.modifier2):
            request = dataclasses.replace(request, modifier1=node.modifier1,
                                          modifier2=node.modifier2)
        if self.modifiers != (0, 0):  # --http-modifier1/2 win over the node's
            request = dataclasses.replace(
                request, modifier1=self.modifiers[0] or request.modifier1,
                modifier2=self.modifiers[1] or request.modifier2)
        exchange: list[Any] = []  # (popped when done: no exchange <-> callback cycle)
        exchange.append(Exchange(self.net, self.inst.node, address, request, session.body,
                                 self.timeout,
                                 lambda ok, value: self._done(session, exchange.pop(), ok,
                                                              value)))

    def _map(self, session: _Session) -> str | None:
        """The backend address for the session (``ucr->mapper``)."""
        session.node = session.static = None
        if self.servers:
            assert self.table is not None
            node = session.node = self.table.lookup(session.key)
            return node.address.decode("latin-1") if node is not None else None
        if self.own_address is not None:
            return self.own_address
        if self.static:
            return self._static_node(session)
        return None

    def _static_node(self, session: _Session) -> str | None:
        """``uwsgi_cr_map_use_static_nodes``: the next node, skipping failed ones until
        their grace time passed."""
        nodes = self.static
        i = self._next_static % len(nodes)
        now = int(self.inst.wall())
        chosen: int | None = i
        if nodes[i][1] > 0:
            if nodes[i][1] + self.gracetime <= now:
                nodes[i][1] = 0
            else:
                chosen = next(((i + k) % len(nodes) for k in range(1, len(nodes))
                               if nodes[(i + k) % len(nodes)][1] == 0), None)
        if chosen is None:
            self._next_static = i + 1
            return None
        self._next_static = chosen + 1
        session.static = nodes[chosen]
        return str(nodes[chosen][0])

    def _done(self, session: _Session, exchange: Any, ok: bool, value: Any) -> None:
        from ._remote import http_bytes

        node = session.node
        table = self.table
        if node is not None and table is not None:
            table.release(node)
        if ok:
            self._record("router.route", key=session.key.decode("latin-1"),
                         backend=session.address)
            out = http_bytes(value, getattr(value.head, "protocol", b"") or session.protocol)
            self.net.transmit(self.inst.node, session.peer, len(out), session.reply, out)
            return
        if not exchange.connected:
            why = "Connection refused" if isinstance(value, ConnectionRefusedError) else \
                "timeout" if isinstance(value, TimeoutError) else str(value)
            self._log(f'{self.tag} unable to connect() to node "{session.address}" '
                      f'({session.retries} retries): {why}')
        key = session.key.decode("latin-1")
        if node is not None and table is not None:
            table.fail(node, self.tag)
        elif session.static is not None:
            session.static[1] = int(self.inst.wall())
            self._log(f"{self.tag} {key} => marking {session.address} as failed")
        self._record("router.fail", key=key, backend=session.address, retries=session.retries)
        if session.retries >= MAX_RETRIES:
            self._close(session.reply, session.peer)
            return
        session.retries += 1
        self._route(session)


class Subscriber:
    """A backend node's master announcing itself to subscription servers."""

    def __init__(self, inst: Instance, net: Any) -> None:
        self.inst = inst
        self.net = net
        o = inst.opts
        self.entries = [(n, v) for n, v in o.items
                        if n in ("subscribe-to", "subscribe", "subscribe2") and isinstance(v, str)]
        self.freq = o.int("subscribe-freq", 10)
        if self.freq <= 0:
            raise ConfigError(f"--subscribe-freq {self.freq}: uWSGI divides by it "
                             f"(master_cycles % subscribe_freq) and dies with SIGFPE")
        self.blocked = o.flag("start-unsubscribed")
        self.weight = o.int("weight", 0)
        self.auto_weight = o.flag("auto-weight")
        self.with_modifier1 = o.str("subscribe-with-modifier1")
        self.on_graceful_reload = o.flag("unsubscribe-on-graceful-reload")
        self._timer: Any = None
        self._warned: set[tuple[str, str]] = set()

    # -- when ------------------------------------------------------------------------------
    def start(self) -> None:
        self.started = self.inst.now
        self.announce(0, verbose=True)
        self._plan(1)

    def _plan(self, cycle: int) -> None:
        """The next announce: master cycle 1, then every ``freq`` cycles (one a second)."""
        interval = max(1, self.inst.opts.int("master-interval", 1))
        self._timer = self.inst.kernel.schedule(self.started + cycle * interval - self.inst.now,
                                                self._cycle, cycle)

    def _cycle(self, cycle: int) -> None:
        if self.inst.stopped:
            return
        if not self.inst.reloading:  # nor while it reloads (uwsgi_instance_is_reloading)
            self.announce(0, verbose=False)
        self._plan((cycle // self.freq + 1) * self.freq)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- what -------------------------------------------------------------------------------
    def announce(self, command: int, *, verbose: bool) -> None:
        """``uwsgi_subscribe_all(command, verbose)``."""
        if self.blocked:
            return
        inst = self.inst
        for name, value in self.entries:
            if verbose:
                inst.log(f"{'unsubscribing from' if command else 'subscribing to'} {value}",
                         inst.master)
            parse = self._subscribe2 if name == "subscribe2" else self._subscribe_to
            for server, sub in parse(value, command):
                self.inst.record("subscription.send", inst.master, server=server,
                                 key=sub.key.decode("latin-1"), command=command)
                self.net.send_datagram(inst.node, server, encode_subscription(sub))

    def _sockets(self) -> list[str]:
        return _banner.sockets(self.inst)

    def _datagram(self, key: bytes, address: str | None, modifier1: int, modifier2: int,
                  command: int) -> Subscription | None:
        if address is None:
            sockets = self._sockets()
            if not sockets:
                return None  # uwsgi_send_subscription_from_fd: no socket, nothing sent
            address = sockets[0]
        inst = self.inst
        cores = inst.numproc * inst.cores
        if self.with_modifier1 is not None:
            modifier1 = str_num(self.with_modifier1.encode())
        return Subscription(key=key, address=address.encode(), command=command,
                            modifier1=modifier1 & 0xFF, modifier2=modifier2 & 0xFF,
                            cores=cores, load=0,
                            weight=cores if self.auto_weight else self.weight)

    def _unsupported(self, value: str, why: str, what: str = "not sent") -> None:
        """One ``[simuwsgi]`` warning per subscription and reason: where uWSGI says
        nothing (a malformed value sends nothing), or the simulation lacks a feature."""
        if (value, why) not in self._warned:
            self._warned.add((value, why))
            self.inst.log(f"[simuwsgi] subscription {value}: {why}; {what}", self.inst.master)

    def _subscribe_to(self, value: str, command: int) -> list[tuple[str, Subscription]]:
        """``uwsgi_subscribe``: ``[ADDR=]SERVER:KEY[,modifier1[,sign]]`` or ``SERVER:@file``."""
        address: str | None = None
        rest = value
        if "=" in value:
            address, _, rest = value.partition("=")
            if address.startswith("="):
                self._unsupported(value, "shared sockets (=N) are not simulated")
                return []
        if rest.startswith("/"):
            self._unsupported(value, "UNIX datagram sockets do not cross the virtual network")
            return []
        colon = rest.find(":")
        key_at = rest.find(":", colon + 1) if colon >= 0 else -1
        if key_at < 0:
            self._unsupported(value, "no SERVER:KEY (uWSGI sends nothing and says nothing)")
            return []
        server, spec = rest[:key_at], rest[key_at + 1:]
        if spec.startswith("@"):
            path = self.inst.opts.path(spec[1:])
            if not path.is_file():
                self._unsupported(value, f"no key file {path} (uWSGI sends nothing)")
                return []
            specs = [line for line in path.read_text().split("\n")
                     if line and not line.startswith("#")]
        else:
            specs = [spec]
        out = []
        for item in specs:
            key, _, modifier = item.partition(",")
            if "," in modifier:
                self._unsupported(value, "signed subscriptions are not simulated")
                return []
            sub = self._datagram(key.encode(), address, str_num(modifier.encode()), 0, command)
            if sub is not None:
                out.append((server, sub))
        return out

    def _subscribe2(self, value: str, command: int) -> list[tuple[str, Subscription]]:
        """``uwsgi_subscribe2``: ``server=...,key=...[,addr=,socket=,weight=,...]``."""
        fields: dict[str, str] = {}
        for item in _kvlist_items(value):
            name, sep, field = item.partition("=")
            if not sep or name not in _SUBSCRIBE2_KEYS:
                self._unsupported(value, f"{item!r} is not a key=value uWSGI knows",
                                  "ignored, as uWSGI does")
                continue
            fields[name] = field
        server, key = fields.get("server"), fields.get("key")
        if not server or not key:
            self._unsupported(value, "no server= or no key= (uWSGI sends nothing)")
            return []
        if "check" in fields and self.inst.opts.path(fields["check"]).exists():
            return []
        for unsupported in ("sign", "sni_key", "sni_crt", "sni_ca"):
            if unsupported in fields:
                self._unsupported(value, f"{unsupported}= is not simulated")
                return []
        if "weight" in fields:
            self.weight = atoi(fields["weight"])  # uwsgi.weight, for good
        address = fields.get("addr")
        if "socket" in fields:
            sockets = self._sockets()
            n = atoi(fields["socket"])
            if n < len(sockets):
                address = sockets[n]
        sub = self._datagram(key.encode(), address, atoi(fields.get("modifier1", "0")),
                             atoi(fields.get("modifier2", "0")), command)
        return [(server, sub)] if sub is not None else []


#: The keys ``uwsgi_subscribe2`` reads (others are ignored).
_SUBSCRIBE2_KEYS = {"server", "key", "socket", "addr", "weight", "modifier1", "modifier2",
                    "sign", "check", "sni_key", "sni_crt", "sni_ca"}


def _kvlist_items(value: str) -> list[str]:
    """``uwsgi_kvlist_parse``'s items: split on unescaped commas, ``\\`` escaping."""
    items, current, escaped = [], [], False
    for char in value:
        if char == "," and not escaped:
            items.append("".join(current))
            current = []
        elif char == "\\" and not escaped:
            escaped = True
        else:
            current.append(char)
            escaped = False
    if current:
        items.append("".join(current))
    return items


def signal_nodes(net: Network, inst: Instance, target: str, num: int) -> None:
    """Signal target ``cluster``/``subscribed`` with ``legacy=True`` (a simulation
    extension: 2.0.30 logs ``cluster`` as unsupported and does nothing for
    ``subscribed``): the signal goes, as a datagram, to the master of every other node
    of the cluster, or of every node subscribed to this node's routers, which routes it
    by its own signal table."""
    if target == "cluster":
        names = [name for name in net.nodes if name != inst.node]
    else:
        routers = inst.subsystems.get("routers")
        addresses = [node.address.decode("latin-1")
                     for router in (routers.routers if routers is not None else ())
                     if router.table is not None
                     for pool in router.table.pools.values() for node in pool]
        names = []
        for address in addresses:
            try:
                endpoint, _port = net.resolve(inst.node, address)
            except OSError:
                continue
            if endpoint is not None and endpoint.name not in names:
                names.append(endpoint.name)
    inst.record("signal.nodes", inst.master, num=num, target=target, nodes=names)
    for name in names:
        net.transmit(inst.node, name, 3, _master_signal, net.nodes[name].inst, num,
                     stream=False)


def _master_signal(inst: Instance, num: int) -> None:
    signals = inst.subsystems.get("signals")
    if signals is not None and not inst.stopped:
        signals.master_read(num)
