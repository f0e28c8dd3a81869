"""uWSGI RPC: ``register_rpc``, ``call``, ``rpc``, ``rpc_list``.

What it models (``core/rpc.c``, ``plugins/python/uwsgi_pymodule.c``,
``plugins/python/python_plugin.c`` ``uwsgi_python_rpc``; ``shared/spec/api.md`` §12,
``semantics.md`` §11):

* per-slot tables of ``--rpc-max`` entries (default 64), like the signal table: slot 0
  for the master (mules and spoolers read it too), one per worker. A registration in
  the master writes slot 0 and copies the whole table into every worker slot
  (``registered shared/inherited RPC function "x"``); in worker N it writes slot N only
  (``registered RPC function "x" on worker N``). Mules and spoolers cannot register
  (``only the master and the workers can register RPC functions``); a name of 256 bytes
  or more, or a full table, fails. Re-registering a name replaces the function in place.
* ``call``/local ``rpc`` run the function synchronously in the caller with bytes
  arguments (lengths truncated to uint16, the count to uint8), looked up in the
  caller's own slot only (names compare as C strings: up to the first NUL). The result
  is returned only if it is non-empty ``bytes``; anything else, an unknown name or an
  exception (printed) gives None. Non-bytes names or arguments raise
  ``ValueError('unable to call rpc function')``.
* ``rpc(node, ...)``: ``node`` None, ``''``, ``b''`` (or any non-string) is local; a
  ``host:port`` node goes to ``inst.subsystems['net'].remote_rpc(node, name, args)``.

Left out: calling an RPC function with more than 256 arguments (a stack overflow in
uWSGI's C code: here the count simply wraps modulo 256).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._errors import NotSimulatedError
from ..server._pyarg import no_kwargs, parser
from ..server.processes import Mule, Spooler, Worker

if TYPE_CHECKING:
    from ..server.interface import Instance

__all__ = ["Rpc"]


class _Entry:
    __slots__ = ("argc", "func", "name", "shared")

    def __init__(self, name: bytes, func: Any, argc: int, shared: bool) -> None:
        self.name = name
        self.func = func
        self.argc = argc
        self.shared = shared


class Rpc:
    """The RPC tables of one instance."""

    @classmethod
    def create(cls, inst: Instance) -> Rpc:
        return cls(inst)

    def __init__(self, inst: Instance) -> None:
        self.inst = inst
        self.max = inst.opts.int("rpc-max", 64)
        self.tables: dict[int, list[_Entry]] = {0: []}

    def slot_of(self, proc: Any) -> int:
        return proc.id if isinstance(proc, Worker) else 0

    def table(self, slot: int) -> list[_Entry]:
        table = self.tables.get(slot)
        if table is None:
            table = self.tables[slot] = [_copy(e) for e in self.tables[0]]
        return table

    def register(self, name: str, func: Any, argc: int) -> bool:
        inst = self.inst
        proc = inst.kernel.current
        if isinstance(proc, (Mule, Spooler)):
            inst.log("only the master and the workers can register RPC functions")
            return False
        raw = name.encode()
        if len(raw) >= 256:
            inst.log("the supplied RPC name string is too long, max size is 255")
            return False
        slot = self.slot_of(proc)
        table = self.table(slot)
        ok = False
        for entry in table:
            if entry.name == raw:
                entry.func, entry.argc, entry.shared = func, argc, slot == 0
                ok = True
                break
        else:
            if len(table) < self.max:
                table.append(_Entry(raw, func, argc, slot == 0))
                ok = True
        if ok:
            if slot == 0:
                inst.log(f'registered shared/inherited RPC function "{name}"')
            else:
                inst.log(f'registered RPC function "{name}" on worker {slot}')
            inst.record("rpc.register", proc, name=name, slot=slot)
        if slot == 0:
            for wid in range(1, inst.numproc + 1):
                self.tables[wid] = [_copy(e) for e in self.tables[0]]
        return ok

    def names(self) -> tuple[bytes, ...]:
        return tuple(e.name for e in self.table(self.slot_of(self.inst.kernel.current)))

    def call_local(self, name: bytes, args: list[bytes]) -> bytes | None:
        """``uwsgi_rpc`` + ``uwsgi_python_rpc`` in the calling process."""
        inst = self.inst
        cname = name.split(b"\0", 1)[0]
        argc = len(args) & 0xFF
        args = [a[:len(a) & 0xFFFF] for a in args[:argc]]
        for entry in self.table(self.slot_of(inst.kernel.current)):
            if entry.name == cname:
                inst.record("rpc.call", None, name=cname.decode("latin-1"), argc=argc)
                ok, result = inst.call_python(entry.func, *args)
                if ok and type(result) is bytes and result:
                    return result
                if ok and isinstance(result, bytes) and result:
                    return bytes(result)
                return None
        return None

    # -- the uwsgi module ------------------------------------------------------------------
    def facade_functions(self) -> dict[str, Any]:
        p_register = parser("sO|B:register_rpc")

        def register_rpc(*args: Any, **kw: Any) -> bool:
            no_kwargs("register_rpc", kw)
            v = p_register(args)
            if not self.register(v[0], v[1], v[2] if len(v) > 2 else 0):
                raise ValueError("unable to register rpc function")
            return True

        def bytes_args(values: tuple[Any, ...]) -> list[bytes]:
            out = []
            for a in values:
                if not isinstance(a, bytes):
                    raise ValueError("unable to call rpc function")
                out.append(bytes(a))
            return out

        def call(*args: Any, **kw: Any) -> bytes | None:
            no_kwargs("call", kw)
            if not args or not isinstance(args[0], bytes):
                raise ValueError("unable to call rpc function")
            return self.call_local(bytes(args[0]), bytes_args(args[1:]))

        def rpc(*args: Any, **kw: Any) -> bytes | None:
            no_kwargs("rpc", kw)
            if len(args) < 2:
                raise ValueError("unable to call rpc function")
            node_obj = args[0]
            node: bytes | None = None
            if isinstance(node_obj, bytes):
                node = bytes(node_obj)
            elif isinstance(node_obj, str):
                node = node_obj.encode("latin-1")
            if not isinstance(args[1], bytes):
                raise ValueError("unable to call rpc function")
            name = bytes(args[1])
            rest = bytes_args(args[2:])
            node = node.split(b"\0", 1)[0] if node is not None else None
            if not node:
                return self.call_local(name, rest)
            net = self.inst.subsystems.get("net")
            if net is None:
                raise NotSimulatedError(
                    f"uwsgi.rpc({node.decode('latin-1')!r}, ...) calls another node: it "
                    "needs the virtual network of a multi-node simulation; this instance "
                    "has none")
            return net.remote_rpc(node.decode("latin-1"), name, rest)

        def rpc_list(*_args: Any, **kw: Any) -> tuple[bytes, ...]:
            no_kwargs("rpc_list", kw)
            return self.names()

        return {"register_rpc": register_rpc, "call": call, "rpc": rpc,
                "rpc_list": rpc_list}


def _copy(e: _Entry) -> _Entry:
    return _Entry(e.name, e.func, e.argc, e.shared)
