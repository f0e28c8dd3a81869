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
    ("misc", "simuwsgi.subsystems.misc:Misc"),
    ("net", "simuwsgi.subsystems._net:Net"),  # only with Simulation(network='real')
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
