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
    ("locks", "simuwsgi.locks:Locks"),
    ("rpc", "simuwsgi.rpc:Rpc"),
    ("sharedarea", "simuwsgi.sharedarea:SharedAreas"),
    ("queue", "simuwsgi.queue:Queue"),
    ("cache", "simuwsgi.cache:Caches"),
    ("signals", "simuwsgi.signals:Signals"),
    ("timers", "simuwsgi.timers:Timers"),
    ("cron", "simuwsgi.cron:Cron"),
    ("filemon", "simuwsgi.filemon:FileMonitors"),
    ("mules", "simuwsgi.mules:Mules"),
    ("spooler", "simuwsgi.spooler:Spoolers"),
    ("metrics", "simuwsgi.metrics:Metrics"),
    ("cheaper", "simuwsgi.cheaper:Cheaper"),
    ("misc", "simuwsgi.misc:Misc"),
    ("net", "simuwsgi._net:Net"),  # only with Simulation(network='real')
    ("routers", "simuwsgi.network._routers:Routers"),  # a Cluster's nodes
]


def _load(path: str) -> Any:
    module_name, _, cls_name = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return None  # not written yet
        raise
    return getattr(module, cls_name)


def create_all(inst: Instance) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, path in SUBSYSTEMS:
        cls = _load(path)
        if cls is None:
            continue
        sub = cls.create(inst)
        if sub is not None:
            out[name] = sub
    return out
