"""Bridging a cluster's virtual nodes to real sockets (``Cluster.expose``/``serve``).

An exposed node also listens on a real loopback address: real clients (``uwsgi
--ping``, the ``simuwsgi`` client commands, a real uWSGI node's ``uwsgi.rpc``) reach it
through the same handler ``simuwsgi serve`` uses for a simulation
(:class:`simuwsgi.net.SimulatedNode`: every packet answered as the node's plugins and
workers would). While the cluster is served, it runs paced by the real clock: virtual
time tracks real elapsed time, the nodes keep talking to each other on the virtual
network meanwhile.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio

from ..net._address import listen
from ..net._node import SimulatedNode
from ..net._server import UwsgiServer, limits_from
from ..net._stats import serve_stats

if TYPE_CHECKING:
    from ..cluster import Cluster

__all__ = ["serve_cluster"]


async def serve_cluster(cluster: Cluster, exposed: dict[str, tuple[str, str]], *,
                        duration: float | None = None,
                        client: Callable[[dict[str, str]], Any] | None = None) -> Any:
    """Serve the ``exposed`` nodes (name -> (address, protocol)) on real sockets.

    Ends after ``duration`` real seconds, or when ``client(bound)`` (run in a helper
    thread once every socket listens; ``bound`` maps node names to the bound
    addresses) returns; returns what ``client`` returned.
    """
    listeners = []
    bound: dict[str, str] = {}
    for name, (address, protocol) in exposed.items():
        node = cluster[name]
        listener = await listen(address, backlog=node.inst.listen)
        here = listener.socket.getsockname()
        bound[name] = f"{here[0]}:{here[1]}" if isinstance(here, tuple) else address
        listeners.append((node, listener, protocol))
    result = None
    try:
        async with trio.open_nursery() as nursery:
            for node, listener, protocol in listeners:
                handler = SimulatedNode(node)
                inst = node.inst
                await nursery.start(handler.run)
                if protocol == "stats":
                    nursery.start_soon(serve_stats, listener, inst)
                else:
                    server = UwsgiServer(handler.handle, limits=limits_from(node.opts),
                                         answer_now=handler.answer_now,
                                         hostname=inst.hostname.encode(), log=inst.log)
                    await nursery.start(functools.partial(
                        server.serve, listener, protocol=protocol,
                        socket_name=bound[node.name]))
                inst.log(f"simuwsgi: serving {protocol} on {bound[node.name]} (exposed)")
            with trio.move_on_after(float("inf") if duration is None else duration):
                if client is not None:
                    result = await trio.to_thread.run_sync(client, bound)
                else:
                    await trio.sleep_forever()
            nursery.cancel_scope.cancel()
    finally:
        for _node, listener, _protocol in listeners:
            with trio.CancelScope(shield=True):
                await listener.aclose()
    return result
