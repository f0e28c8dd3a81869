"""Real sockets for simuwsgi: thin trio adapters over the sans-IO codec.

* :class:`UwsgiServer` serves any handler ``(request, body, peer) -> Reply`` on TCP or
  UNIX listeners with uWSGI's connection handling (``--socket`` and ``--http-socket``);
* :class:`SimulatedNode` is the handler for a :class:`~simuwsgi.Simulation`, paced by
  the real clock (``simuwsgi.serve`` binds the sockets its options name: ``simuwsgi
  serve``);
* the client functions (:func:`ping`, :func:`rpc`, :func:`signal`, :func:`spool`,
  ``cache_*``, :func:`exchange`) and the blocking :class:`NodeClient` talk to any uWSGI
  node, real or simulated;
* the ``net`` subsystem (``Simulation(..., network='real')``) gives the simulated
  ``uwsgi`` module its remote forms (``uwsgi.rpc('host:port', ...)``...).

trio is used for real sockets only; nothing here parses bytes (see
:mod:`simuwsgi.protocol`).
"""

from ._address import Address as Address
from ._address import connect as connect
from ._address import listen as listen
from ._address import parse_address as parse_address
from ._client import DEFAULT_TIMEOUT as DEFAULT_TIMEOUT
from ._client import NodeClient as NodeClient
from ._client import Reply as Reply
from ._client import cache_clear as cache_clear
from ._client import cache_del as cache_del
from ._client import cache_exists as cache_exists
from ._client import cache_get as cache_get
from ._client import cache_set as cache_set
from ._client import cache_update as cache_update
from ._client import exchange as exchange
from ._client import ping as ping
from ._client import rpc as rpc
from ._client import run_blocking as run_blocking
from ._client import signal as signal
from ._client import spool as spool
from ._node import SimulatedNode as SimulatedNode
from ._server import limits_from as limits_from
from ._server import Limits as Limits
from ._server import Peer as Peer
from ._server import UwsgiServer as UwsgiServer
from ._subsystem import Net as Net

__all__ = [
    "DEFAULT_TIMEOUT",
    "Address",
    "Limits",
    "Net",
    "NodeClient",
    "Peer",
    "Reply",
    "SimulatedNode",
    "UwsgiServer",
    "cache_clear",
    "cache_del",
    "cache_exists",
    "cache_get",
    "cache_set",
    "cache_update",
    "connect",
    "exchange",
    "limits_from",
    "listen",
    "parse_address",
    "ping",
    "rpc",
    "run_blocking",
    "signal",
    "spool",
]
