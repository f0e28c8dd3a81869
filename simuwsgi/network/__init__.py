"""The virtual network between the nodes of a :class:`~simuwsgi.Cluster`.

Not to be confused with :mod:`simuwsgi.net`, the trio adapters for *real* sockets. Here
nothing binds on the host: a node's addresses (``--socket 10.0.0.2:3031``,
``--http-socket :8080``) exist only in the cluster's address table, and every byte one
node sends another is the real encoding (:mod:`simuwsgi.protocol`) carried over a
virtual link in virtual time:

* :class:`LinkSettings`: per link and direction, seeded latency, jitter, loss,
  duplication, reordering and bandwidth (``_links``);
* :class:`Network`: the address table and the turmoil/Jepsen-style verbs
  (``partition``, ``heal``, ``hold``/``release``, ``isolate``, ``set_link``, ``slow``),
  each recorded in the cluster's trace (``_network``);
* the ``net`` subsystem of a cluster's node (``_remote``): ``uwsgi.rpc('b:3031', ...)``,
  ``cache_*(..., 'name@b:3031')``, ``uwsgi.signal(n, 'b:3031')`` as connections on the
  virtual links, served by the remote node's workers; HTTP to ``--http-socket`` ports;
* the ``routers`` subsystem (``_routers``): ``--fastrouter``/``--http`` routers and the
  backends' ``--subscribe-to`` datagrams (UDP: ``Network.send_datagram``), with the
  routers' subscription tables (``_subscriptions``).
"""

from ._links import LinkSettings as LinkSettings
from ._network import Network as Network

__all__ = ["LinkSettings", "Network"]
