"""The ``net`` subsystem: the remote forms of the ``uwsgi`` API over real loopback sockets.

Enabled by ``Simulation(..., network='real')`` (and by ``simuwsgi serve``). It serves:

* ``uwsgi.rpc('host:port', func, *args)`` -> ``remote_rpc``: ``core/rpc.c``
  ``uwsgi_do_rpc``: the result bytes, None for no reply, an empty result or any error
  (connection refused, timeout, an array over 65535 bytes, logged as uWSGI does);
* ``cache_get/set/update/del/exists/clear(..., 'name@host:port')`` (and remote
  ``cache_inc``... sent as a plain update, as uWSGI does) -> ``remote_cache``
  (``core/cache.c`` magic client): get returns the value or None, the others True on
  ``status: ok`` and None otherwise;
* ``uwsgi.signal(num, 'host:port')`` -> ``remote_signal`` (``core/signal.c``; its
  ``sending signal N to node X`` line is an ``UWSGI_DEBUG`` build's only): None if
  acked, ``ValueError`` ``node X rejected signal N`` for an ack of 0, ``OSError``
  ``unable to deliver signal N to node X`` otherwise.

Each wait is bounded by ``--socket-timeout`` (default 4 s). **The calling virtual
process blocks while the real I/O happens.** In a plain ``Simulation`` the whole
simulation (and the test) waits, in *real* time, and virtual time does not move -
so a call to a node that only this simulation serves cannot be answered. Under
``simuwsgi serve`` (a :class:`~simuwsgi.net.SimulatedNode` is attached) only the
calling virtual process is parked; the node keeps serving and virtual time keeps
tracking real time.

The subsystem also wraps the apps the instance loads so that requests arriving on
real sockets reach them with the environ uWSGI builds (see ``_wire``).

Left out: UNIX-socket and abstract nodes are supported by the client but untested;
``uwsgi.send_message``-style calls do not exist in 2.0.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..protocol import RequestEvent, RpcRequest, SignalRequest
from . import _client
from ._client import Reply
from ._wire import install

if TYPE_CHECKING:
    from ..server.master import Instance

__all__ = ["Net"]


class Net:
    """Remote calls over real sockets for one instance (see the module doc)."""

    @classmethod
    def create(cls, inst: Instance) -> Net | None:
        return cls(inst) if getattr(inst, "network", None) == "real" else None

    def __init__(self, inst: Instance) -> None:
        self.inst = inst
        self.timeout = float(inst.opts.int("socket-timeout", 4))
        install(inst)

    def facade_functions(self) -> dict[str, Any]:
        return {}

    def _call(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        host = getattr(self.inst, "net_host", None)
        if host is not None:
            return host.call_blocking(fn, *args)
        return _client.run_blocking(fn, *args)

    def exchange(self, node: str, request: RequestEvent, body: bytes = b"") -> Reply:
        """One exchange with ``node`` for the calling virtual process; OSError when it
        cannot be reached (the transport: real sockets here, virtual links in a
        cluster)."""
        timeout = self.timeout

        async def call() -> Reply:
            return await _client.exchange(node, request, body, timeout=timeout)

        return self._call(call)  # type: ignore[no-any-return]

    def _record(self, what: str, node: str, **fields: Any) -> None:
        self.inst.record("net.call", None, what=what, node=node, **fields)

    # -- what the facade calls --------------------------------------------------------
    def remote_rpc(self, node: str, name: bytes, args: list[bytes]) -> bytes | None:
        size = 2 + len(name) + 2 * len(args) + sum(map(len, args))
        if size > 0xFFFF:
            self.inst.log("RPC packet length overflow!!! Must be less than or equal to "
                          f"65535, have {size}")
            return None
        self._record("rpc", node, name=name.decode("latin-1"), argc=len(args))
        try:
            reply = self.exchange(node, RpcRequest(function=name, args=tuple(args)))
        except OSError:
            return None
        return _client.rpc_result(reply)

    def remote_cache(self, server: str, name: str, cmd: str, key: bytes = b"",
                     value: bytes = b"", expires: int = 0) -> Any:
        self._record("cache", server, cmd=cmd, cache=name)
        request = _client.cache_request(cmd, key, value, expires, name.encode("latin-1"))
        try:
            result = _client.cache_result(cmd, self.exchange(server, request, value))
        except OSError:
            return None
        if cmd == "get":
            return result
        return True if result else None

    def remote_signal(self, node: str, num: int) -> None:
        self._record("signal", node, num=num)
        try:
            acked = _client.signal_result(self.exchange(node, SignalRequest(signum=num)))
        except OSError:
            acked = None
        if acked is None:
            raise OSError(f"unable to deliver signal {num} to node {node}")
        if not acked:
            raise ValueError(f"node {node} rejected signal {num}")
