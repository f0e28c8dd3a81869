"""A virtual Erlang node for 1.4's ``erlang_*`` functions (the pyerl plugin).

Simulation-only: ``cluster.add_erlang("erl@host", processes={...}, functions={...})``
puts an Erlang node on the cluster's network (its own IP, so links, latency and
partitions apply). It has:

* registered processes: ``processes={"name": fn}``; a message sent to ``name``
  (``erlang_send``/``erlang_sr``) calls ``fn(message)`` when it arrives; what ``fn``
  returns (unless None) is sent back on the same connection, as an Erlang process
  answering its sender, for ``erlang_recv``/``erlang_sr`` to read;
* functions for ``rpc:call``: ``functions={"mod:fun": fn}``; ``erlang_rpc(node, "mod",
  "fun", args)`` calls ``fn(*args)`` and gets its result; an unknown function (or one
  that raises) answers ``{badrpc, {'EXIT', {undef | Reason, ...}}}``, as Erlang does.

Terms cross as 1.4 translated them (``py_to_erl``/``erl_to_py`` in ``git show
uwsgi-1.4:plugins/pyerl/pyerl.c``); the Erlang side's callables see Erlang terms as
Python: ``bytes`` binary, ``str`` atom, ``int``, ``tuple``, ``list`` (None is sent as
``[]``); anything else (float, dict) is refused with ``ValueError: Unsupported object
in Python->Erlang translation``. The uWSGI side reads ``[]`` as None, a non-empty list
with its tail (``[1, b"x"]`` is read as ``[1, b"x", None]``, as 1.4 did) and a list of
bytes values as the string the Erlang VM sends for it (``[104, 105]``: ``b"hi"``).

The other direction (``uwsgi-1.4:plugins/erlang/erlang.c``, ``CNode``): every
``legacy=True`` node has ``uwsgi.erlang_node`` (pyerl's C-node name: ``--erlang NAME``
as given when it has ``@``, else ``NAME@host``; without ``--erlang``, ``uwsgi@host``,
``host`` being the host name up to its first dot, as ``ei_connect_init`` makes it) and
``uwsgi.erlang_register_process(name, callable)`` (``ValueError: Invalid erlang process
name`` over 254 bytes; the list lives in the calling process's memory, the first of
two same names wins). 1.4's ``--erlang NAME`` (turns the master on; ``--erlang-cookie``
is accepted, with a warning: cookies are not checked) logs ``Erlang C-Node NAME
registered on port P`` and the master spawns the gateway ``uWSGI erlang c-node 1``
(forked from the master: it sees what the master registered, at import unless
``--lazy-apps``; respawned, ``respawned uWSGI erlang c-node 1``, when it dies). The
Erlang node reaches it with ``erl.send(cnode, process, term)`` and ``erl.rpc(cnode,
function, arg)`` (recorded ``erlang.send`` in the trace): the gateway logs ``[erlang]
message From: NODE To (process): NAME`` and, in order,

* to ``rex`` (``uwsgi_erlang_rpc``): an ``rpc:call`` (``{'$gen_call', {Pid, Ref},
  {call, Module, Function, Args, _}}``; any other shape is dropped) calls the uWSGI rpc
  function ``Function`` (Module ignored) with ``Args`` as its one argument when it is
  an atom or a string, with none otherwise (a list of arguments included), and answers
  ``{Ref, String}`` with its result (``[]`` for none or an unknown function): the
  ``ErlangCall`` that ``erl.rpc`` returned gets it. 1.4 stores the argument's length
  in ``argvs[1]`` instead of ``argvs[0]``, so the length the rpc function was given is
  whatever the stack held (undefined behaviour): the simulation passes the whole
  argument;
* to a registered process: its callable runs in the gateway with the message
  (``erl_to_py``; floats too); an exception is printed, as ``python_call`` does;
* to another name: ``!!! unregistered erlang process requested, dumping it !!!``.

Left out: pids of the Erlang node's processes (a message to a pid tuple reaches
nobody), the term dump after the ``unregistered`` line (``dump_eterm``'s ``etype:``
lines), 1.4's ``ei_send to ...`` line after an rpc answer (its descriptor and pid
numbers have no simulated counterpart), the C-node's TCP port (logged, not listening:
only the Erlang node's API reaches the gateway), the ``@host`` part of ``--erlang``
choosing the address it binds, pyerl's ``Erlang C-Node name:``/``enabled
Python<->Erlang bridge`` lines.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..server.processes import UProcess

if TYPE_CHECKING:
    from ._network import Network

__all__ = ["CNode", "ErlangCall", "ErlangNode", "add_erlang", "erlang_functions",
           "from_erlang", "to_erlang", "translate"]


def to_erlang(obj: Any) -> Any:
    """``py_to_erl``: the term the Erlang side gets, as Python (``[]`` for None, an
    atom as ``str``); ``ValueError`` for what it cannot translate."""
    if obj is None:
        return []
    if isinstance(obj, (bytes, str, int)):
        return int(obj) if isinstance(obj, int) else obj
    if isinstance(obj, list):
        return [to_erlang(x) for x in obj]
    if isinstance(obj, tuple):
        return tuple(to_erlang(x) for x in obj)
    raise ValueError("Unsupported object in Python->Erlang translation")


def from_erlang(term: Any) -> Any:
    """``erl_to_py`` of a term the Erlang node encoded: ``[]`` is None, a list keeps its
    tail (``[1, b"x"]`` -> ``[1, b"x", None]``), and a list of bytes values is a
    string (the VM encodes it ``STRING_EXT``): ``bytes``, up to a NUL (``[104, 105]``
    -> ``b"hi"``)."""
    if isinstance(term, list):
        if _charlist(term):
            return bytes(term).split(b"\0", 1)[0]
        return [from_erlang(x) for x in term] + [None] if term else None
    if isinstance(term, tuple):
        return tuple(from_erlang(x) for x in term)
    return term


def _charlist(term: Any) -> bool:
    """An Erlang string: what ``term_to_binary`` writes as ``STRING_EXT``."""
    return (isinstance(term, list) and 0 < len(term) < 65535
            and all(type(x) is int and 0 <= x <= 255 for x in term))


def translate(obj: Any) -> Any:
    """``erl_to_py(py_to_erl(obj))``: what the other side of pyerl reads of ``obj``."""
    return from_erlang(to_erlang(obj))


class _Options:
    @staticmethod
    def strings(_name: str) -> list[str]:
        return []


class ErlangNode:
    """The virtual Erlang node (what ``Network.attach`` keeps as the host's instance)."""

    opts = _Options()
    stopped = False
    ready = True

    def __init__(self, name: str, processes: dict[str, Callable[[Any], Any]],
                 functions: dict[str, Callable[..., Any]]) -> None:
        for table, what in ((processes, "processes"), (functions, "functions")):
            if not isinstance(table, dict) or not all(
                    isinstance(k, str) and callable(v) for k, v in table.items()):
                raise TypeError(f"{what} maps names to callables, not {table!r}")
        if any(":" not in key for key in functions):
            raise ValueError("functions are named 'module:function'")
        self.hostname = name
        self.processes = dict(processes)
        self.functions = dict(functions)
        #: Every message a registered process got: (process name, message).
        self.received: list[tuple[str, Any]] = []
        self.net: Network | None = None  # set by add_erlang
        self._refs = 0
        #: rpc calls into uWSGI waiting for their answer, by reference
        self._calls: dict[int, ErlangCall] = {}

    # -- the Erlang node sending to uWSGI's C-nodes (``--erlang``) ----------------------
    def send(self, cnode: str, process: str, term: Any) -> None:
        """``{Process, CNode} ! Term``: ``term`` (Erlang as Python: ``bytes`` binary,
        ``str`` atom, ``int``, ``float``, ``tuple``, ``list``; a list of bytes values is
        a string) reaches the registered process ``process`` of the uWSGI node whose
        ``--erlang`` C-node is ``cnode``."""
        _check_term(term)
        self._post(cnode, str(process), term)

    def rpc(self, cnode: str, function: str, arg: Any = (), *,
            module: str = "uwsgi") -> ErlangCall:
        """``rpc:call(CNode, Module, Function, Arg)``: the C-node calls the uWSGI rpc
        function ``function`` (``module`` is read and ignored, as 1.4 did) with ``arg``
        as its one argument when it is an atom (``str``) or a string (a list of bytes
        values; ``b"..."`` is taken for one), with none otherwise (1.4 reads no list
        of arguments). Returns the call; its ``result`` (a string: a list of bytes
        values, ``[]`` for an empty answer or an unknown function) is set when the
        answer arrives."""
        if isinstance(arg, bytes):
            arg = list(arg)
        _check_term(arg)
        self._refs += 1
        call = self._calls[self._refs] = ErlangCall(cnode, function, arg)
        pid = ErlangPid(self.hostname, self._refs)
        self._post(cnode, "rex", ("$gen_call", (pid, ErlangRef(self._refs)),
                                  ("call", module, function, arg, "user")))
        return call

    def _post(self, cnode: str, process: str, term: Any) -> None:
        net = self.net
        sub = _cnode(net, cnode) if net is not None else None
        if sub is None:
            raise ValueError(f"no C-node {cnode!r} on the network (a legacy=True node "
                             f"with --erlang)")
        net.record("erlang.send", src=self.hostname, to=cnode, process=process)
        net.transmit(self.hostname, sub.inst.node, len(repr(term)), sub.arrive,
                     self.hostname, process, term)

    def answer(self, pid: ErlangPid, term: Any) -> None:
        """A message to one of this node's pids: the answer of an rpc call."""
        if isinstance(term, tuple) and len(term) == 2 and isinstance(term[0], ErlangRef):
            call = self._calls.pop(term[0].id, None)
            if call is not None:
                call.result, call.done = term[1], True

    def deliver(self, process: str, message: Any) -> Any:
        """A message for ``process`` arrives: its answer (None: it sends none)."""
        self.received.append((process, message))
        fn = self.processes.get(process)
        if fn is None:
            return None  # no such registered process: Erlang drops the message
        try:
            answer = fn(message)
            return None if answer is None else to_erlang(answer)
        except Exception:  # the process crashes (or answers what has no term): no answer
            return None

    def call(self, module: str, function: str, args: Any) -> Any:
        """``rpc:call(Node, Module, Function, Args)``."""
        fn = self.functions.get(f"{module}:{function}")
        arguments = args if isinstance(args, list) else [args]
        if fn is None:
            return ("badrpc", ("EXIT", ("undef", [(module, function, args, [])])))
        try:
            return to_erlang(fn(*arguments))
        except Exception as exc:
            return ("badrpc", ("EXIT", (type(exc).__name__, str(exc))))


@dataclass(slots=True)
class ErlangCall:
    """An rpc call of the Erlang node into a C-node (``ErlangNode.rpc``)."""

    cnode: str
    function: str
    arg: Any
    result: Any = None
    done: bool = False


@dataclass(frozen=True, slots=True)
class ErlangPid:
    node: str
    num: int


@dataclass(frozen=True, slots=True)
class ErlangRef:
    id: int


def _check_term(term: Any) -> None:
    if isinstance(term, (list, tuple)):
        for item in term:
            _check_term(item)
    elif not isinstance(term, (bytes, str, int, float, ErlangPid, ErlangRef)):
        raise ValueError(f"{term!r} is not an Erlang term (bytes, str, int, float, "
                         f"tuple, list)")


def add_erlang(net: Network, name: str, processes: Any, functions: Any,
               address: str) -> ErlangNode:
    if not isinstance(name, str) or name.count("@") != 1 or name.startswith("@"):
        raise ValueError(f"an Erlang node is named 'name@host', not {name!r}")
    node = ErlangNode(name, processes or {}, functions or {})
    node.net = net
    net.attach(name, address, node, None)  # type: ignore[arg-type]
    net.record("net.add_erlang", name=name, address=address)
    return node


class ErlangConnection:
    """A C node's connection to the Erlang node (``ei_connect``'s descriptor): the
    messages sent back to it wait here for ``erlang_recv``."""

    def __init__(self, node: ErlangNode, name: str) -> None:
        self.node = node
        self.name = name  # the Erlang node's name on the network
        self.inbox: list[Any] = []
        self.waiter: Callable[[], None] | None = None

    def receive(self, message: Any) -> None:
        self.inbox.append(message)
        waiter, self.waiter = self.waiter, None
        if waiter is not None:
            waiter()


def erlang_functions(sub: Any) -> dict[str, Callable[..., Any]]:
    """The ``erlang_*`` functions of a ``legacy=True`` node (``sub``: its
    ``LegacyNet``), as the pyerl plugin's (see the module doc)."""
    from ..server._pyarg import no_kwargs, parser

    inst = sub.inst
    kernel = inst.kernel
    fds: dict[int, Any] = sub.fds
    src = getattr(inst, "node", "")
    lock: dict[str, Any] = {"owner": None, "waiting": []}

    def round_trip(conn_name: str, nbytes: int, there: Callable[[], Any],
                   reason: str) -> Any:
        """Carry ``nbytes`` to the Erlang node, run ``there()`` on arrival and bring its
        result back; the calling process waits (no limit, as ``ei_*`` calls)."""
        proc = sub._process(reason)
        net = sub.network

        def arrive() -> None:
            result = there()
            net.transmit(conn_name, src, len(repr(result)), kernel.wake, proc, result)

        net.transmit(src, conn_name, nbytes, arrive)
        return kernel.park(f"{reason} {conn_name}")

    def connect_to(name: str) -> int:
        network = sub.network
        sub._process("erlang_connect")
        endpoint = network.nodes.get(name) if network is not None else None
        if endpoint is None or not isinstance(endpoint.inst, ErlangNode):
            return -1  # no EPMD knows that node
        round_trip(name, 0, lambda: None, "erlang_connect")
        from ._sockets import FIRST_FD

        fd = max(fds, default=FIRST_FD - 1) + 1
        fds[fd] = ErlangConnection(endpoint.inst, name)
        return fd

    def node_fd(node: Any, what: str) -> tuple[int, bool]:
        """(descriptor, opened here) for a node name or a descriptor."""
        if isinstance(node, (str, bytes)):
            name = node.decode("utf-8", "replace") if isinstance(node, bytes) else node
            fd = connect_to(name)
            if fd < 0:
                raise ValueError("Unable to connect to erlang node")
            return fd, True
        if isinstance(node, int):
            if node < 0:
                raise ValueError("Unable to connect to erlang node")
            return node, False
        raise ValueError(f"{what} erlang node/descriptor")

    def send_to(fd: int, reg: Any, message: Any) -> ErlangConnection | None:
        conn = fds.get(fd)
        term = to_erlang(message)
        if isinstance(reg, tuple) and len(reg) == 3:
            process = None  # a pid: no process of the virtual node has one
        elif isinstance(reg, (str, bytes)):
            process = reg.decode("utf-8", "replace") if isinstance(reg, bytes) else reg
        else:
            raise ValueError("Invalid Erlang process")
        if not isinstance(conn, ErlangConnection):
            return None  # ei_send on a descriptor that is not a connection fails
        inst.record("legacy.erlang_send", None, node=conn.name, process=process)

        def arrive() -> None:
            answer = conn.node.deliver(process, term) if process is not None else None
            if answer is not None:
                reply = from_erlang(answer)
                sub.network.transmit(conn.name, src, len(repr(reply)), conn.receive, reply)

        sub.network.transmit(src, conn.name, len(repr(term)), arrive)
        return conn

    def receive(conn: Any) -> Any:
        if not isinstance(conn, ErlangConnection):
            return None
        if not conn.inbox:
            proc = sub._process("erlang_recv")
            conn.waiter = lambda: kernel.wake(proc, None)
            kernel.park(f"erlang_recv {conn.name}")
        return conn.inbox.pop(0)

    p_connect = parser("s:erlang_connect")
    p_close = parser("i:erlang_close")
    p_send = parser("OOO:erlang_send")
    p_recv = parser("i:erlang_recv")
    p_sr = parser("OOO:erlang_sr")
    p_rpc = parser("OssO:erlang_rpc")

    def erlang_connect(*args: Any, **kw: Any) -> int:
        no_kwargs("erlang_connect", kw)
        (name,) = p_connect(args)
        fd = connect_to(name)
        if fd < 0:
            raise ValueError("Unable to connect to erlang node")
        return fd

    def erlang_close(*args: Any, **kw: Any) -> None:
        no_kwargs("erlang_close", kw)
        (fd,) = p_close(args)
        fds.pop(fd, None)

    def erlang_send(*args: Any, **kw: Any) -> int:
        no_kwargs("erlang_send", kw)
        node, reg, message = p_send(args)
        fd, _opened = node_fd(node, "invalid")
        send_to(fd, reg, message)
        return fd  # 1.4 returns it, open, even when it connected by name

    def erlang_recv(*args: Any, **kw: Any) -> Any:
        no_kwargs("erlang_recv", kw)
        (fd,) = p_recv(args)
        return receive(fds.get(fd))

    def erlang_sr(*args: Any, **kw: Any) -> Any:
        no_kwargs("erlang_sr", kw)
        node, reg, message = p_sr(args)
        fd, opened = node_fd(node, "invalid")
        try:
            return receive(send_to(fd, reg, message))
        finally:
            if opened:
                fds.pop(fd, None)

    def erlang_rpc(*args: Any, **kw: Any) -> Any:
        no_kwargs("erlang_rpc", kw)
        node, module, function, arguments = p_rpc(args)
        fd, opened = node_fd(node, "Invalid")
        try:
            term = to_erlang(arguments)
            conn = fds.get(fd)
            if not isinstance(conn, ErlangConnection):
                raise ValueError("Error in Erlang rpc")
            inst.record("legacy.erlang_rpc", None, node=conn.name,
                        function=f"{module}:{function}")
            return from_erlang(round_trip(conn.name, len(repr(term)),
                                          lambda: conn.node.call(module, function, term),
                                          "erlang_rpc"))
        finally:
            if opened:
                fds.pop(fd, None)

    def erlang_lock(*_args: Any, **kw: Any) -> None:
        no_kwargs("erlang_lock", kw)
        proc = sub._process("erlang_lock")
        while lock["owner"] is not None:
            lock["waiting"].append(proc)
            kernel.park("erlang_lock")
        lock["owner"] = proc

    def erlang_unlock(*_args: Any, **kw: Any) -> None:
        no_kwargs("erlang_unlock", kw)
        lock["owner"] = None
        if lock["waiting"]:
            kernel.wake(lock["waiting"].pop(0), None)

    return {"erlang_connect": erlang_connect, "erlang_close": erlang_close,
            "erlang_send_message": erlang_send, "erlang_send": erlang_send,
            "erlang_recv_message": erlang_recv, "erlang_recv": erlang_recv,
            "erlang_sr": erlang_sr, "erlang_rpc": erlang_rpc, "erlang_lock": erlang_lock,
            "erlang_unlock": erlang_unlock}


def _cnode(net: Network, name: str) -> CNode | None:
    """The ``--erlang`` C-node called ``name`` on the network (None: none)."""
    for endpoint in net.nodes.values():
        subsystems = getattr(endpoint.inst, "subsystems", None) or {}
        sub = subsystems.get("legacy_erlang")
        if sub is not None and sub.cnode and sub.name == name:
            return sub
    return None


class Gateway(UProcess):
    """The ``uWSGI erlang c-node`` gateway process (``erlang_loop``)."""

    kind = "erlang c-node"

    @property
    def spawn_verb(self) -> str:  # type: ignore[override]
        return "respawned" if self.respawn_count else "spawned"  # gateway_respawn


class CNode:
    """The pyerl side of a ``legacy=True`` node: ``uwsgi.erlang_node``,
    ``erlang_register_process`` and, with 1.4's ``--erlang NAME``, the C-node gateway
    process that runs the registered processes and answers ``rex`` rpc calls (see
    ``erlang_loop`` and ``uwsgi_erlang_rpc`` in ``git show
    uwsgi-1.4:plugins/erlang/erlang.c``)."""

    @classmethod
    def create(cls, inst: Any) -> CNode | None:
        return cls(inst) if getattr(inst, "legacy", False) else None

    def __init__(self, inst: Any) -> None:
        self.inst = inst
        given = getattr(inst, "legacy_erlang", None)
        self.cnode = bool(given)
        # ei_thisnodename: NAME@host as given, else ei_connect_init's alive@short-host
        # (pyerl's own node "uwsgi" without --erlang)
        alive = given or "uwsgi"
        self.name = alive if "@" in alive else f"{alive}@{inst.hostname.split('.')[0]}"
        #: Each process's registered processes (1.4's ``uerl.uep`` list, in its own
        #: memory: a forked process starts with a copy of the master's).
        self.registered: dict[Any, list[tuple[str, Any]]] = {}
        self.gateway: Gateway | None = None
        self.inbox: list[tuple[str, str, Any]] = []
        if not self.cnode:
            return
        if getattr(inst, "legacy_erlang_cookie", None) is not None:
            inst.log("[simuwsgi] --erlang-cookie: the virtual network does not "
                     "authenticate Erlang nodes; the cookie is not checked")
        port = inst.kernel.rng.randrange(32768, 61000)  # bind_to_tcp("", ...): any port
        inst.log(f"Erlang C-Node {self.name} registered on port {port}")

    def facade_functions(self) -> dict[str, Any]:
        return {}  # installed with the other legacy names (simuwsgi.subsystems.legacy)

    def legacy_functions(self) -> dict[str, Any]:
        from ..server._pyarg import no_kwargs, parser

        p_register = parser("sO:erlang_register_process")

        def erlang_register_process(*args: Any, **kw: Any) -> None:
            no_kwargs("erlang_register_process", kw)
            name, fn = p_register(args)
            if len(name.encode()) > 0xFF - 1:
                raise ValueError("Invalid erlang process name")
            self._table(self.inst.kernel.current).append((name, fn))
            self.inst.record("legacy.erlang_register", None, name=name)

        return {"erlang_node": self.name.encode(),
                "erlang_register_process": erlang_register_process}

    def _table(self, proc: Any) -> list[tuple[str, Any]]:
        owner = proc.main if isinstance(proc, UProcess) else self.inst.master
        return self.registered.setdefault(owner, [])

    # -- the gateway ----------------------------------------------------------------------
    def master_loop_started(self) -> None:
        """uwsgi_master_loop spawns the gateways."""
        if self.cnode:
            self._spawn(0)

    def process_died(self, proc: Any) -> None:
        """The master respawns a dead gateway when it reaps it (its next cycle)."""
        inst = self.inst
        if proc is self.gateway and not inst.stopped:
            inst.kernel.at(inst.next_tick(inst.kernel.now), self._respawn, proc)

    def _respawn(self, dead: Gateway) -> None:
        if dead is self.gateway and not self.inst.stopped:
            self._spawn(dead.respawn_count + 1)

    def _spawn(self, respawns: int) -> None:
        inst = self.inst
        holder: list[Gateway] = []
        gateway = Gateway(inst, 1, lambda: inst.run_process(holder[0], self._loop))
        gateway.respawn_count = respawns
        holder.append(gateway)
        self.registered[gateway] = list(self._table(inst.master))
        self.gateway = gateway
        inst._fork(gateway)  # logs "spawned uWSGI erlang c-node 1 (pid: N)"

    def close(self) -> None:
        if self.gateway is not None and self.gateway.alive:
            self.inst.kernel.discard(self.gateway)

    def arrive(self, source: str, process: str, term: Any) -> None:
        """A message from Erlang node ``source`` reaches the C-node's socket."""
        self.inbox.append((source, process, term))
        gateway = self.gateway
        if gateway is not None and gateway.wait_reason == "ei_xreceive_msg":
            self.inst.kernel.wake(gateway, None)

    def _loop(self, proc: Gateway) -> None:
        inst = self.inst
        while True:
            while not self.inbox:
                inst.kernel.park("ei_xreceive_msg")
            source, process, term = self.inbox.pop(0)
            inst.log(f"[erlang] message From: {source} To (process): {process}", proc)
            inst.record("legacy.erlang_message", proc, source=source, process=process)
            if process == "rex":
                self._rpc(term)
                continue
            fn = next((f for name, f in self.registered[proc] if name == process), None)
            if fn is None:
                inst.log("!!! unregistered erlang process requested, dumping it !!!", proc)
            else:
                inst.call_python(fn, from_erlang(term))  # pyerl_call_registered

    def _rpc(self, term: Any) -> None:
        """``uwsgi_erlang_rpc``: ``{'$gen_call', {Pid, Ref}, {call, M, F, Arg, _}}``
        calls the rpc function F with Arg (an atom or a string) or nothing, and answers
        ``{Ref, String}``; any other shape is dropped, as 1.4 returns."""
        if not (isinstance(term, tuple) and len(term) == 3 and _name(term[0]) is not None
                and isinstance(term[1], tuple) and len(term[1]) == 2
                and isinstance(term[2], tuple) and len(term[2]) == 5
                and _name(term[2][0]) == "call" and _name(term[2][1]) is not None
                and _name(term[2][2]) is not None):
            return
        pid, ref = term[1]
        arg = term[2][3]
        # 1.4 stores the argument's length in argvs[1], not argvs[0]: the length
        # uwsgi_rpc reads is whatever was on the stack. The simulation passes the
        # whole argument (see the module doc).
        args = [] if _name(arg) is None else [_name(arg).encode("latin-1")]
        rpc = self.inst.subsystems["rpc"]
        result = rpc.call_local(_name(term[2][2]).encode(), args) or b""
        reply = (ref, list(result[:0xFFFF]))
        if isinstance(pid, ErlangPid):
            node = self.inst.cluster_network.nodes.get(pid.node)
            if node is not None and isinstance(node.inst, ErlangNode):
                self.inst.cluster_network.transmit(self.inst.node, pid.node,
                                                   len(repr(reply)), node.inst.answer,
                                                   pid, reply)


def _name(term: Any) -> str | None:
    """An atom or a string as text (1.4 decodes both with ``ei_decode_atom/string``);
    None for any other term."""
    if isinstance(term, str):
        return term
    if _charlist(term):
        return bytes(term).split(b"\0", 1)[0].decode("latin-1")
    return None
