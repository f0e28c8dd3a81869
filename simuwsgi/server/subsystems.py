"""The registry of uWSGI subsystems an instance is made of.

Each subsystem lives in its own module and is a class with:

* ``create(inst)`` (classmethod): the subsystem for this instance, or None when the
  options do not enable it (no ``--spooler``, no ``--queue``, ...);
* ``facade_functions()``: the ``uwsgi`` module functions (and attributes) it provides,
  by name; a disabled subsystem provides none, so they are absent, as in uWSGI;
* optional hooks the master calls: ``after_import()`` (the app is imported),
  ``master_loop_started()`` (everything is forked), ``process_died(proc)``, ``close()``;
* for process-owning subsystems (mules, spooler): ``process_ids()``, ``main(proc)``.

Facade functions parse arguments and shape return values exactly as uWSGI's C code;
state lives in the subsystem objects, whose methods take and return plain data. That
narrow interface is what ``fork`` mode carries between processes.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .master import Instance

__all__ = ["create_all", "SUBSYSTEMS"]

#: (name, "module:Class"), in the order uWSGI creates them at startup.
SUBSYSTEMS: list[tuple[str, str]] = [
    ("locks", "simuwsgi.subsystems.locks:Locks"),
    ("rpc", "simuwsgi.subsystems.rpc:Rpc"),
    ("sharedarea", "simuwsgi.subsystems.sharedarea:SharedAreas"),
    ("queue", "simuwsgi.subsystems.queue:Queue"),
    ("cache", "simuwsgi.subsystems.cache:Caches"),
    ("signals", "simuwsgi.subsystems.signals:Signals"),
    ("timers", "simuwsgi.subsystems.timers:Timers"),
    ("cron", "simuwsgi.subsystems.cron:Cron"),
    ("filemon", "simuwsgi.subsystems.filemon:FileMonitors"),
    ("mules", "simuwsgi.subsystems.mules:Mules"),
    ("spooler", "simuwsgi.subsystems.spooler:Spoolers"),
    ("metrics", "simuwsgi.subsystems.metrics:Metrics"),
    ("cheaper", "simuwsgi.server.cheaper:Cheaper"),
    ("logrotate", "simuwsgi.server.logsink:LogRotation"),  # --log-maxsize
    ("fifo", "simuwsgi.subsystems.fifo:MasterFifo"),  # --master-fifo
    ("misc", "simuwsgi.subsystems.misc:Misc"),
    ("legion", "simuwsgi.subsystems.legion:Legions"),  # only in a build with SSL (ssl=True)
    ("legacy_cluster", "simuwsgi.network._legacy:LegacyCluster"),  # 1.4 --cluster
    ("legacy_net", "simuwsgi.network._messages:LegacyNet"),  # 1.4's uwsgi client calls
    ("legacy_erlang", "simuwsgi.network._erlang:CNode"),  # 1.4 pyerl, --erlang
    ("net", ""),  # the remote forms of rpc/cache/signal/spool: see _NET
    # routers and subscriptions, between a Cluster's nodes (a lone instance warns)
    ("routers", "simuwsgi.network._routers:Routers"),
]

#: The ``net`` subsystem by the instance's network: a cluster's node talks over the
#: virtual network, ``Simulation(network='real')`` over real sockets. Otherwise there
#: is none, and neither package is imported: ``simuwsgi.net`` imports trio, which must
#: not happen after the clock patch is installed (trio would keep the virtual
#: ``perf_counter``); ``Simulation(network='real')`` imports it before.
_NET = {"virtual": "simuwsgi.network._remote:VirtualNet",
        "real": "simuwsgi.net._subsystem:Net"}


def _load(path: str) -> Any:
    module_name, _, cls_name = path.partition(":")
    return getattr(importlib.import_module(module_name), cls_name)


def create_all(inst: Instance) -> dict[str, Any]:
    # filled as they are created: each sees those created before it (the cheaper's
    # busyness algorithm registers its metrics)
    out: dict[str, Any] = {}
    inst.subsystems = out
    for name, path in SUBSYSTEMS:
        if name.startswith("legacy_") and not getattr(inst, "legacy", False):
            continue  # the 1.4 API's, with Simulation(legacy=True) only
        if name == "net":
            path = _NET.get(getattr(inst, "network", None), "")
            if not path:
                continue
        sub = _load(path).create(inst)
        if sub is not None:
            out[name] = sub
    return out
