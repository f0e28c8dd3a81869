"""The pre-2.0 ``uwsgi`` names, installed only with ``Simulation(..., legacy=True)``.

uWSGI 2.0 removed them (``shared/spec/api.md`` §2: "Names that do not exist in 2.0.x");
a default simulation leaves them absent, as 2.0.30 does. With ``legacy=True`` the module
gets them back with the meaning they had in the 1.x Python plugin (``git show
1.4:plugins/python/uwsgi_pymodule.c``; ``0.9.8:plugins/python/python_plugin.c`` for the
attributes):

* ``get_option(id)``/``getoption`` and ``set_option(id, value)``/``setoption``: the 256
  shared 32-bit option slots (``uwsgi.shared->options``); ids are taken modulo 256,
  values stored as uint32; ``set_option`` returns the value given. The slots 1.x read
  live are wired to the instance: 0 logging, 1 max-requests, 2 socket-timeout (4),
  5 harakiri, 17 spooler-harakiri, 18 mule-harakiri; writing 1 or 5 changes the
  instance's max-requests / harakiri for the following requests, as in 1.x.
* ``sorry_i_need_to_block()``: True with a master, None without.
* ``has_hook(modifier1)``: None (its body was commented out in 1.x).
* 1.4's ``--cluster ADDR`` option (``LEGACY_OPTIONS``; 2.0.30 refuses it): the node
  joins that group on the virtual network (``simuwsgi.network._legacy``); then
  ``cluster()`` is the group (bytes), ``cluster_nodes()`` the addresses of the nodes
  in the table, ``cluster_node_name(addr)`` a node's host name (no argument: this
  host's), ``cluster_best_node()`` the node chosen least recently, stamped now. Without
  ``--cluster``: None, ``[]``, the host name / None, None.
* ``fastfuncs`` (256 slots, None) and ``message_manager_marshal`` (None): attributes the
  app fills in; 1.x called them for uwsgi-protocol requests with modifier1 26 and 33,
  which the simulated HTTP client never sends.
* ``grunt()``: in 1.x (``--grunt``) it fork()ed the worker in the middle of a request so
  the child could go on with it while the parent went back to accepting. It logs uWSGI's
  ``spawning a grunt ...`` line and raises ``NotSimulatedError``: the child returns from
  ``grunt()`` with a copy of the running Python stack, which a virtual process (a
  greenlet) cannot duplicate.
* ``send_message``, ``send_multi_message``, ``send_multicast_message``: 1.4's uwsgi
  client on the virtual network (``simuwsgi.network._messages``, the ``legacy_net``
  subsystem; a lone ``Simulation`` has no other node to talk to).
* ``connect``, ``close``, ``recv`` (2.0's, not simulated there) and 1.4's
  ``async_send_message``, ``recv_block``, ``recv_frame`` on virtual stream sockets
  (``simuwsgi.network._sockets``).
* ``fcgi(node, dict[, stdin_fd, stdin_size])`` against a virtual FastCGI responder
  (``Cluster.add_fastcgi``, ``simuwsgi.network._fastcgi``), and ``add_probe`` (the
  ``connect`` probe, run by the master once a second: ``simuwsgi.network._messages``).
* the ``erlang_*`` functions (the ``pyerl`` plugin) against a virtual Erlang node
  (``Cluster.add_erlang``, ``simuwsgi.network._erlang``), and the other direction:
  ``erlang_node``, ``erlang_register_process`` and 1.4's ``--erlang NAME`` /
  ``--erlang-cookie`` (the C-node gateway process; ``simuwsgi.network._erlang.CNode``).
* ``send_uwsgi_message`` (gone since 0.9.6) raises ``NotSimulatedError`` saying why.

Left out: the pre-1.9.21 sharedarea API (``sharedarea_read(pos, len)`` without an area
id), ``applist``, ``call_hook``, ``load_plugin``, ``offload_transfer``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._errors import ConfigError, NotSimulatedError
from ..server._pyarg import no_kwargs, parser

if TYPE_CHECKING:
    from ..server.interface import Instance

__all__ = ["LEGACY_NAMES", "LEGACY_OPTIONS", "apply_legacy_options", "legacy_entries",
           "split_legacy_options"]

#: The 1.4 options a ``legacy=True`` simulation accepts on top of 2.0.30's (2.0.30
#: refuses them: ``unrecognized option``). ``--cluster-reload``/``--cluster-log`` were
#: client commands (send one datagram and exit): ``Cluster.send_udp`` does what they did.
LEGACY_OPTIONS = ("cluster", "cluster-nodes", "erlang", "erlang-cookie")

#: 1.4's network functions: the ``legacy_net`` subsystem provides them
#: (``simuwsgi.network._messages``; in a lone ``Simulation`` they say they need a cluster).
_NETWORK = (
    "send_message", "send_multi_message", "async_send_message", "send_multicast_message",
    "recv_block", "recv_frame", "fcgi", "add_probe",
    *(f"erlang_{n}" for n in ("connect", "close", "send_message", "send", "recv_message",
                              "recv", "sr", "rpc", "lock", "unlock", "register_process")),
    "erlang_node")
#: Removed before the 1.4 API this module models: raise ``NotSimulatedError``.
_NOT_SIMULATED = {
    "send_uwsgi_message": "send_uwsgi_message(host, port, modifier1, modifier2, obj"
                          "[, timeout]) was replaced by send_message in 2010 (0.9.6), "
                          "before the 1.4 API the legacy mode models: use send_message "
                          "on a cluster node",
}

#: option slot -> (uWSGI option name, default) for the slots 1.x kept in sync
_SLOTS = {0: ("logging", 1), 1: ("max-requests", 0), 2: ("socket-timeout", 4),
          5: ("harakiri", 0), 17: ("spooler-harakiri", 0), 18: ("mule-harakiri", 0)}

#: every name this module installs
LEGACY_NAMES: tuple[str, ...] = (
    "get_option", "getoption", "set_option", "setoption", "sorry_i_need_to_block", "grunt",
    "has_hook", "cluster", "cluster_nodes", "cluster_node_name", "cluster_best_node",
    "fastfuncs", "message_manager_marshal", *_NETWORK, *_NOT_SIMULATED)


def split_legacy_options(options: Any) -> tuple[Any, dict[str, Any]]:
    """``options`` without 1.4's options (``LEGACY_OPTIONS``: a dict key or argv words)
    and their values (the last one given for each). An ``.ini`` file is left as it is:
    there ``cluster`` is read as a placeholder (``simuwsgi.network._legacy``)."""
    if isinstance(options, Mapping):
        rest = {k: v for k, v in options.items()
                if str(k).lstrip("-") not in LEGACY_OPTIONS}
        return rest, {str(k).lstrip("-"): v[-1] if isinstance(v, (list, tuple)) else v
                      for k, v in options.items() if str(k).lstrip("-") in LEGACY_OPTIONS}
    if isinstance(options, (list, tuple)):
        words, values, i = [], {}, 0
        while i < len(options):
            word = str(options[i])
            name, eq, inline = word.partition("=")
            if name.lstrip("-") in LEGACY_OPTIONS and name.startswith("--"):
                if eq:
                    values[name[2:]], i = inline, i + 1
                elif i + 1 < len(options):
                    values[name[2:]], i = options[i + 1], i + 2
                else:
                    raise ConfigError(f"option '{name}' requires an argument")
                continue
            words.append(options[i])
            i += 1
        return words, values
    return options, {}


def apply_legacy_options(inst: Instance, values: dict[str, Any]) -> None:
    """Set ``inst``'s 1.4 options (``split_legacy_options``'s values): ``--cluster``
    (``simuwsgi.network._legacy``), ``--cluster-nodes`` (1.4's ``uwsgi_opt_true``: any
    value but false/off/no/0), ``--erlang``/``--erlang-cookie``
    (``simuwsgi.network._erlang``). ``--cluster`` and ``--erlang`` turn the master on
    (1.4 flags them ``UWSGI_OPT_MASTER``)."""
    group = values.get("cluster")
    inst.legacy_cluster = _cluster_value(group) if group is not None else None
    inst.legacy_cluster_nodes = "cluster-nodes" in values and _flag(values["cluster-nodes"])
    erlang = values.get("erlang")
    if erlang is not None and (not isinstance(erlang, str) or not erlang
                               or erlang.startswith("@")):
        raise ConfigError(f"--erlang takes a node name (name or name@host), not {erlang!r}")
    inst.legacy_erlang = erlang
    inst.legacy_erlang_cookie = values.get("erlang-cookie")
    if inst.legacy_cluster or erlang:
        inst.has_master = True


def _flag(value: Any) -> bool:
    return str(value).lower() not in ("false", "off", "no", "0")


def _cluster_value(value: Any) -> str:
    if not isinstance(value, str) or ":" not in value:
        raise ConfigError(f"--cluster takes a multicast ip:port or a broadcast :port, "
                          f"not {value!r}")
    return value


def _option_table(inst: Instance) -> list[int]:
    table = [0] * 256
    for slot, (name, default) in _SLOTS.items():
        if name == "logging":
            table[slot] = 0 if inst.opts.flag("disable-logging") else 1
        else:
            table[slot] = inst.opts.int(name, default) & 0xFFFFFFFF
    return table


def _not_simulated(name: str, why: str) -> Any:
    def fn(*_args: Any, **kw: Any) -> Any:
        no_kwargs(name, kw)
        raise NotSimulatedError(f"uwsgi.{name}() (removed in uWSGI 2.0) is not simulated: "
                                f"{why}")

    fn.__name__ = name
    return fn


def legacy_entries(inst: Instance) -> dict[str, Any]:
    """The legacy names for ``inst``'s ``uwsgi`` module (functions and attributes)."""
    table: list[int] = getattr(inst, "legacy_options", None) or _option_table(inst)
    inst.legacy_options = table  # shared by every process, like uwsgi.shared
    p_get = parser("i:get_option")
    p_set = parser("ii:set_option")

    def get_option(*args: Any, **kw: Any) -> int:
        no_kwargs("get_option", kw)
        (opt_id,) = p_get(args)
        return table[opt_id & 0xFF]

    def set_option(*args: Any, **kw: Any) -> int:
        no_kwargs("set_option", kw)
        opt_id, value = p_set(args)
        slot = opt_id & 0xFF
        table[slot] = value & 0xFFFFFFFF
        if slot == 1:
            inst.max_requests = table[slot]
        elif slot == 5:
            inst.harakiri = table[slot]
        inst.record("legacy.set_option", None, slot=slot, value=table[slot])
        return value

    def sorry_i_need_to_block(*_args: Any, **kw: Any) -> bool | None:
        no_kwargs("sorry_i_need_to_block", kw)
        return True if inst.has_master else None

    def grunt(*_args: Any, **kw: Any) -> None:
        no_kwargs("grunt", kw)
        proc = inst.kernel.current
        inst.log(f"spawning a grunt from worker {getattr(proc, 'id', 0)} "
                 f"(pid :{getattr(proc, 'pid', 0)})...")
        raise NotSimulatedError(
            "uwsgi.grunt() (removed in uWSGI 2.0) is not simulated: it fork()s the worker "
            "in the middle of a request and the child returns from grunt() with a copy of "
            "the running Python stack, which a virtual process (a greenlet) cannot "
            "duplicate")

    p_hook = parser("i:has_hook")

    def has_hook(*args: Any, **kw: Any) -> None:
        no_kwargs("has_hook", kw)
        p_hook(args)

    def membership() -> Any:
        return inst.subsystems.get("legacy_cluster")  # None without --cluster

    def cluster(*_args: Any, **kw: Any) -> bytes | None:
        no_kwargs("cluster", kw)
        member = membership()
        return member.group.encode() if member is not None else None

    def cluster_nodes(*_args: Any, **kw: Any) -> list[bytes]:
        no_kwargs("cluster_nodes", kw)
        member = membership()
        return [n.encode() for n in member.nodes()] if member is not None else []

    p_node = parser("|s:cluster_node_name")

    def cluster_node_name(*args: Any, **kw: Any) -> bytes | None:
        no_kwargs("cluster_node_name", kw)
        given = p_node(args)
        if not given:
            return inst.hostname.encode()
        member = membership()
        name = member.node_name(given[0]) if member is not None else None
        return name.encode() if name is not None else None

    def cluster_best_node(*_args: Any, **kw: Any) -> bytes | None:
        no_kwargs("cluster_best_node", kw)
        member = membership()
        best = member.best_node() if member is not None else None
        return best.encode() if best else None

    entries: dict[str, Any] = {
        "get_option": get_option, "getoption": get_option, "set_option": set_option,
        "setoption": set_option, "sorry_i_need_to_block": sorry_i_need_to_block,
        "grunt": grunt, "has_hook": has_hook, "cluster": cluster,
        "cluster_nodes": cluster_nodes, "cluster_node_name": cluster_node_name,
        "cluster_best_node": cluster_best_node,
        "fastfuncs": [None] * 256, "message_manager_marshal": None,
    }
    for name, why in _NOT_SIMULATED.items():
        entries[name] = _not_simulated(name, why)
    entries.update(inst.subsystems["legacy_net"].legacy_functions())
    entries.update(inst.subsystems["legacy_erlang"].legacy_functions())
    return entries
