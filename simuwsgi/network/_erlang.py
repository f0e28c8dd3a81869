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
in Python->Erlang translation``. The uWSGI side reads ``[]`` as None and a non-empty
list with its tail: ``[1, 2]`` is read as ``[1, 2, None]``, as 1.4 did.

Left out: ``erlang_register_process`` and the ``erlang_node`` attribute (the Erlang
node sending to uWSGI's registered processes), pids of the Erlang node's processes
(a message to a pid tuple reaches nobody).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._network import Network

__all__ = ["ErlangNode", "add_erlang", "erlang_functions", "from_erlang", "to_erlang",
           "translate"]


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
    """``erl_to_py``: ``[]`` is None, a list keeps its tail (``[1, 2]`` -> ``[1, 2,
    None]``)."""
    if isinstance(term, list):
        return [from_erlang(x) for x in term] + [None] if term else None
    if isinstance(term, tuple):
        return tuple(from_erlang(x) for x in term)
    return term


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


def add_erlang(net: Network, name: str, processes: Any, functions: Any,
               address: str) -> ErlangNode:
    if not isinstance(name, str) or name.count("@") != 1 or name.startswith("@"):
        raise ValueError(f"an Erlang node is named 'name@host', not {name!r}")
    node = ErlangNode(name, processes or {}, functions or {})
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
