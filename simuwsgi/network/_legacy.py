"""uWSGI 1.4's clustering subsystem (``--cluster ADDR``), for ``legacy=True`` nodes only.

uWSGI 2.0 deleted it (``shared/spec/cluster.md`` §1); this models the 1.4 code
(``git show uwsgi-1.4:core/cluster.c``, ``core/master.c``, ``core/master_utils.c``
``master_check_cluster_nodes``, ``core/socket.c`` ``bind_to_udp``) on the virtual
network. Every node given the same ``--cluster`` address (a multicast ``ip:port``, or
``:port`` for broadcast) is a member of one group; a datagram sent to the group reaches
every member, the sender included (1.4 sets ``IP_MULTICAST_LOOP``), over the virtual
links (latency, loss, partitions: the link settings of ``cluster.net``). A node alone
in a ``Simulation`` is the only member of its group.

At startup (``cluster_setup``): the node logs ``[uWSGI] joining multicast group: ...``
(multicast only), sends packet 73 (its host name), logs ``JOINED CLUSTER: ...`` and
sends packet 95 (``uwsgi_cluster_add_me``: {hostname, address (its first socket),
workers, requests "0"}); a node without a socket refuses to start, as 1.4 exits.

The master reads the group's datagrams once its loop runs (those that arrive earlier
wait in the socket buffer):

* 73: ``[uWSGI cluster G] new node available: HOST`` (a dated line);
* 95: the node table (``uwsgi.shared->nodes``, 100 slots): a new address takes the
  first free slot and logs ``[uWSGI cluster] added node ADDR``; a known one is marked
  OK and seen now; an address without ``:`` is ``invalid cluster node name``;
* 96: the payload is logged as a dated line (``--cluster-log``);
* 98: the master reloads gracefully (SIGHUP: ``--cluster-reload``); 97 and every other
  modifier are ignored, as 1.4's ``manage_cluster_message`` ignores them;
* 99 with modifier2 0 (a configuration request): ``requested configuration data,
  sending N bytes`` and the node's options (``uwsgi_setup_clusterbuf``: every option
  as a uwsgi dict, flags as ``"1"``) go back to the group as packet 99/1, which members
  ignore.

Once a second (the master's cycle) a node not heard from for more than 30 s is
removed (``no presence announce in the last 30 seconds by node ADDR, i assume it is
dead.``), and every 10th cycle the node announces itself again (packet 95).
``cluster_best_node()`` picks the OK node chosen least recently (the lowest slot on a
tie) and stamps it with the current second; a freed slot keeps its stamp, as 1.4's
shared memory does.

``--cluster`` turns the master on (1.4 flags it ``UWSGI_OPT_MASTER``), except when it
comes from an ``.ini`` file (read as a placeholder there, after the master is decided).

``--cluster-nodes`` (a flag in 1.4, whatever its value but false/off/no/0) makes a
member that only reads the group: it joins (packet 73, ``JOINED CLUSTER``) and keeps
the node table from the others' 95s, but never announces itself (so it needs no
socket) and does not answer configuration requests.

A node given only ``--cluster`` (no other option, no ``--cluster-nodes``) fetches its
options before it starts (``cluster_setup``, ``fetch_configuration``): it joins, logs
``asking "G" uWSGI cluster for configuration data:`` and sends packet 99/0 every 10 s
of silence until a member's 99/1 answer comes, then boots with those options (the
banner follows). Its group's members are those added before it (they boot first);
with nobody to answer, 1.4 asks forever, the simulation refuses to start after six
requests.

Left out: static nodes (``CLUSTER_NODE_STATIC``, with their ping retry), 1.4 counting
master cycles per event as well as per second, the 4096-byte limit of the answer
``cluster_setup`` reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._errors import StartRefusedError
from ..protocol import decode_dict_prefix, decode_header, encode_packet, encode_vars
from ..server.interface import AFTER_REAP
from ._network import LOOPBACK, _ports

if TYPE_CHECKING:
    from ..server.interface import Instance
    from ._network import Network

__all__ = ["LegacyCluster", "configure_from_cluster", "fetch_configuration",
           "send_datagram"]

MAX_CLUSTER_NODES = 100
#: Seconds without a 95 packet after which a node is taken for dead.
NODE_EXPIRY = 30
#: The master announces itself again every this many cycles.
ANNOUNCE_CYCLES = 10
#: The stream socket options whose first one is the node's announced address.
_SOCKETS = ("socket", "uwsgi-socket", "http-socket", "http11-socket", "fastcgi-socket",
            "scgi-socket", "raw-socket")


@dataclass(slots=True)
class Slot:
    """One entry of 1.4's ``uwsgi.shared->nodes``: ``name`` (the node's address, "" for
    a free slot), its host name, workers, requests, ``last_seen`` and
    ``last_choosen`` (whole wall-clock seconds)."""

    name: str = ""
    nodename: str = ""
    workers: int = 0
    requests: int = 0
    last_seen: int = 0
    last_choosen: int = 0


def _members(inst: Instance) -> dict[str, dict[str, LegacyCluster]]:
    """The groups ``inst`` can reach: its cluster's (``Network.groups``), or its own."""
    network: Network | None = getattr(inst, "cluster_network", None)
    if network is not None:
        return network.groups
    groups: dict[str, dict[str, LegacyCluster]] | None = getattr(inst, "legacy_groups", None)
    if groups is None:
        groups = inst.legacy_groups = {}  # type: ignore[attr-defined]
    return groups


def send_datagram(inst: Instance, group: str, modifier1: int, payload: bytes = b"",
                  modifier2: int = 0) -> int:
    """``send_udp_message``: one uwsgi datagram from ``inst``'s host to every member of
    ``group`` (none: it is lost, as toward a group nobody joined). Returns the bytes
    sent."""
    data = encode_packet(modifier1, modifier2, payload)
    network: Network | None = getattr(inst, "cluster_network", None)
    members = _members(inst).get(group, {})
    inst.record("cluster.send", None, group=group, modifier1=modifier1,
                modifier2=modifier2, size=len(data), members=sorted(members))
    for name in sorted(members):
        if network is None:
            inst.kernel.post(LOOPBACK.latency, _arrive, members, name, data)
        else:
            network.transmit(getattr(inst, "node", name), name, len(data), _arrive,
                             members, name, data, stream=False)
    return len(data)


def _join_group(inst: Instance, group: str, member: Any) -> None:
    """``uwsgi_cluster_join`` and its ``JOINED CLUSTER`` line: ``member`` receives the
    group's datagrams."""
    if group.partition(":")[0]:
        inst.log(f"[uWSGI] joining multicast group: {group}")
    _members(inst).setdefault(group, {})[getattr(inst, "node", "node0")] = member
    send_datagram(inst, group, 73, inst.hostname.encode())
    inst.log(f"JOINED CLUSTER: {group}")


#: Seconds ``cluster_setup`` waits for a configuration before it asks again.
ASK_INTERVAL = 10
#: Requests without an answer after which the simulation gives up (1.4 asks forever).
ASK_ROUNDS = 6


class _Asker:
    """The group socket of a node waiting for its configuration (``cluster_setup``)."""

    def __init__(self) -> None:
        self.answer: list[tuple[bytes, bytes]] | None = None
        self.other = False  # a datagram that was not a configuration came

    def receive(self, data: bytes) -> None:
        header = decode_header(data) if len(data) >= 4 else None
        if header is not None and (header.modifier1, header.modifier2) == (99, 1):
            if self.answer is None:
                self.answer = decode_dict_prefix(data[4:4 + header.pktsize])[0]
        else:
            self.other = True


def fetch_configuration(inst: Instance) -> Any:
    """1.4's ``cluster_setup`` for a node given only ``--cluster`` (no other option, no
    ``--cluster-nodes``): join, then ``asking "G" uWSGI cluster for configuration
    data:`` (packet 99/0) every 10 s until a member answers (its 99/1); a datagram
    that is not an answer restarts the 10 s wait without asking again, as 1.4's ``goto
    waitfd``. Runs the network (the other nodes) meanwhile; returns the answer's options
    as a dict of lists (flags are ``"1"``), None when the node has options of its own.
    1.4 asks forever: the simulation gives up after 6 requests (``StartRefusedError``).
    """
    group = getattr(inst, "legacy_cluster", None)
    if (not getattr(inst, "legacy", False) or not group or inst.opts.items
            or getattr(inst, "legacy_cluster_nodes", False)
            or getattr(inst, "legacy_erlang", None)):
        return None
    kernel = inst.kernel
    asker = _Asker()
    _join_group(inst, group, asker)
    try:
        for _round in range(ASK_ROUNDS):
            inst.log(f'asking "{group}" uWSGI cluster for configuration data:')
            send_datagram(inst, group, 99)
            while True:
                asker.other = False
                kernel.run_until(kernel.now + ASK_INTERVAL,
                                 lambda: asker.answer is not None or asker.other)
                if asker.answer is not None:
                    options: dict[str, list[str]] = {}
                    for key, value in asker.answer:
                        options.setdefault(key.decode("utf-8", "replace"), []).append(
                            value.decode("utf-8", "replace"))
                    inst.record("cluster.configured", None, group=group,
                                options=sorted(options))
                    return options
                if not asker.other:
                    break  # 10 s of silence: ask again
    finally:
        _members(inst).get(group, {}).pop(getattr(inst, "node", "node0"), None)
    raise StartRefusedError(
        f"no member of the cluster {group} answered {ASK_ROUNDS} requests for the "
        f"configuration in {ASK_ROUNDS * ASK_INTERVAL} s (1.4 would ask forever): add a "
        f"configured node to the group before this one")


def configure_from_cluster(inst: Instance) -> bool:
    """A node given only ``--cluster``: fetch its options (``fetch_configuration``) and
    take them, as 1.4's ``uwsgi_configure()`` does, before anything else starts. False
    when the node has options of its own."""
    options = fetch_configuration(inst)
    if options is None:
        return False
    from ..server.config import parse_options
    from ..server.logsink import LogSink
    from ..subsystems.legacy import apply_legacy_options, split_legacy_options

    rest, values = split_legacy_options(options)
    inst.opts = parse_options(rest, base_dir=inst.opts.base_dir,
                              ssl=bool(getattr(inst, "ssl", False)))
    inst._read_options()
    sink = LogSink(inst.opts, Path(inst.opts.str("chdir") or inst.opts.base_dir))
    inst.log_sink = sink if sink.active else None
    inst.app = inst.app_loader_class(inst)  # what it loads comes from the options
    apply_legacy_options(inst, values)
    inst.legacy_config_fetched = True  # LegacyCluster does not join a second time
    network: Network | None = getattr(inst, "cluster_network", None)
    if network is not None:
        network.nodes[inst.node].ports = _ports(inst.opts)
    return True


def _arrive(members: dict[str, LegacyCluster], name: str, data: bytes) -> None:
    member = members.get(name)
    if member is not None:  # it may have left the group (stopped, reloading) meanwhile
        member.receive(data)


class LegacyCluster:
    """A ``legacy=True`` node's membership of its ``--cluster`` group (module doc)."""

    @classmethod
    def create(cls, inst: Instance) -> LegacyCluster | None:
        if not getattr(inst, "legacy", False):
            return None
        # an .ini file's ``cluster`` key is a placeholder to 2.0.30's option parser
        group = getattr(inst, "legacy_cluster", None) or inst.opts.placeholders.get("cluster")
        if not group and getattr(inst, "legacy_cluster_nodes", False):
            inst.log("[simuwsgi] --cluster-nodes without --cluster: no group to read, it "
                     "does nothing")
        return cls(inst, group) if group else None

    def __init__(self, inst: Instance, group: str) -> None:
        self.inst = inst
        self.group = group
        #: ``--cluster-nodes``: a member that only learns the nodes (no announce, no
        #: configuration for others, no socket needed).
        self.nodes_only = bool(getattr(inst, "legacy_cluster_nodes", False))
        self.slots = [Slot() for _ in range(MAX_CLUSTER_NODES)]
        self._inbox: list[bytes] | None = []  # until the master loop reads the socket
        self._cycles = 0
        self.closed = False
        self._join()

    # -- cluster_setup ---------------------------------------------------------------------
    def _join(self) -> None:
        inst = self.inst
        group = self.group
        host, sep, port = group.partition(":")
        if not sep or not port.isdigit():
            raise StartRefusedError(f"invalid cluster address {group!r}: give ip:port "
                                    f"(multicast) or :port (broadcast)")
        address = self._address()
        if address is None and not self.nodes_only:
            if not inst.opts.items:  # a lone Simulation: nobody to fetch options from
                raise StartRefusedError(
                    f"a node given only --cluster asks {group} for its options and, "
                    f"alone, waits forever (1.4 asks forever): run it in a Cluster, "
                    f"added after a configured member")
            raise StartRefusedError("you need to specify at least a socket to start a "
                                    "uWSGI cluster")
        fetched = getattr(inst, "legacy_config_fetched", False)
        if not fetched:  # else fetch_configuration joined and logged it already
            _join_group(inst, group, self)
        else:
            _members(inst).setdefault(group, {})[getattr(inst, "node", "node0")] = self
        inst.record("cluster.join", None, group=group, address=address)
        if not self.nodes_only:
            self._announce()

    def _address(self) -> str | None:
        for name, value in self.inst.opts.items:
            if name in _SOCKETS and isinstance(value, str):
                return value.partition(",")[0]
        return None

    def _announce(self) -> None:
        """``uwsgi_cluster_add_me``: packet 95 to the group."""
        inst = self.inst
        pairs = [(b"hostname", inst.hostname.encode()),
                 (b"address", (self._address() or "").encode()),
                 (b"workers", str(inst.numproc).encode()), (b"requests", b"0")]
        send_datagram(inst, self.group, 95, encode_vars(pairs))

    def close(self) -> None:
        """The node stops or re-executes itself: its socket leaves the group."""
        self.closed = True
        members = _members(self.inst).get(self.group, {})
        if members.get(getattr(self.inst, "node", "node0")) is self:
            del members[getattr(self.inst, "node", "node0")]

    def facade_functions(self) -> dict[str, Any]:
        return {}  # the legacy names are installed by simuwsgi.subsystems.legacy

    # -- the master loop -------------------------------------------------------------------
    def master_loop_started(self) -> None:
        inbox, self._inbox = self._inbox or [], None
        for data in inbox:
            self._manage(data)
        self._schedule_cycle()

    def _schedule_cycle(self) -> None:
        inst = self.inst
        inst.kernel.at(inst.next_tick(inst.kernel.now), self._cycle, priority=AFTER_REAP)

    def _cycle(self) -> None:
        if self.closed or self.inst.stopped:
            return
        self._cycles += 1
        self._check_nodes()
        if self._cycles % ANNOUNCE_CYCLES == 0 and not self.nodes_only:
            self._announce()
        self._schedule_cycle()

    def _check_nodes(self) -> None:
        """``master_check_cluster_nodes``: forget the nodes silent for over 30 s."""
        now = int(self.inst.wall())
        for slot in self.slots:
            if slot.name and now - slot.last_seen > NODE_EXPIRY:
                self.inst.log_verbose(f"no presence announce in the last {NODE_EXPIRY} "
                                      f"seconds by node {slot.name}, i assume it is dead.",
                                      self.inst.master)
                self.inst.record("cluster.node_dead", self.inst.master, node=slot.name)
                slot.name = ""

    def receive(self, data: bytes) -> None:
        if self.closed:
            return
        if self._inbox is not None:
            self._inbox.append(data)
        else:
            self._manage(data)

    def _manage(self, data: bytes) -> None:
        """``manage_cluster_message``."""
        inst = self.inst
        if self.closed or inst.stopped or len(data) < 4:
            return
        header = decode_header(data)
        payload = data[4:4 + header.pktsize]
        master = inst.master
        inst.record("cluster.recv", master, modifier1=header.modifier1,
                    modifier2=header.modifier2, size=len(data))
        if header.modifier1 == 95:
            fields = dict(decode_dict_prefix(payload)[0])
            if fields.get(b"address"):
                self._add_node(fields)
        elif header.modifier1 == 96:
            inst.log_verbose(payload.decode("utf-8", "replace"), master)
        elif header.modifier1 == 98:
            inst.request_reload()
        elif header.modifier1 == 99 and header.modifier2 == 0 and not self.nodes_only:
            buf = self._options_packet()
            inst.log(f"requested configuration data, sending {len(buf)} bytes", master)
            send_datagram(inst, self.group, 99, buf[4:], 1)
        elif header.modifier1 == 73:
            inst.log_verbose(f"[uWSGI cluster {self.group}] new node available: "
                             f"{payload.decode('utf-8', 'replace')}", master)

    def _add_node(self, fields: dict[bytes, bytes]) -> None:
        """``uwsgi_cluster_add_node`` for a dynamic node."""
        inst = self.inst
        name = fields[b"address"][:100].decode("utf-8", "replace")
        now = int(inst.wall())
        requests = _number(fields.get(b"requests", b""))
        if ":" not in name:
            inst.log(f"invalid cluster node name {name}", inst.master)
            return
        for slot in self.slots:
            if slot.name == name:
                slot.last_seen = now
                slot.requests = requests
                return
        for slot in self.slots:
            if not slot.name:
                slot.name = name
                slot.nodename = fields.get(b"hostname", b"")[:254].decode("utf-8", "replace")
                slot.workers = _number(fields.get(b"workers", b""))
                slot.requests = requests
                slot.last_seen = now
                inst.log(f"[uWSGI cluster] added node {name}", inst.master)
                inst.record("cluster.node_add", inst.master, node=name)
                return
        inst.log(f"unable to add node {name}", inst.master)

    def _options_packet(self) -> bytes:
        """``uwsgi_setup_clusterbuf``: the exported options as packet 99/1."""
        pairs = [(b"cluster", self.group.encode())]
        pairs += [(name.encode(), b"1" if value is True else str(value).encode())
                  for name, value in self.inst.opts.items]
        return encode_packet(99, 1, encode_vars(pairs))

    # -- what the Python functions read ---------------------------------------------------------
    def nodes(self) -> list[str]:
        return [slot.name for slot in self.slots if slot.name]

    def node_name(self, name: str) -> str | None:
        for slot in self.slots:
            if slot.name and slot.name == name:
                return slot.nodename
        return None

    def best_node(self) -> str | None:
        """``uwsgi_cluster_best_node``."""
        best: Slot | None = None
        for slot in self.slots:
            if slot.name and (best is None or slot.last_choosen < best.last_choosen):
                best = slot
        if best is None:
            return None
        best.last_choosen = int(self.inst.wall())
        self.inst.record("cluster.best_node", None, node=best.name)
        return best.name


def _number(value: bytes) -> int:
    """C's ``atoi``: the leading digits, 0 without any."""
    digits = value.decode("ascii", "replace")
    n = 0
    while n < len(digits) and digits[n].isdigit():
        n += 1
    return int(digits[:n]) if n else 0
