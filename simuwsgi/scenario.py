"""Scenarios: uWSGI options, an app, a timeline and expectations, in one file.

A scenario is a Python file with module-level names:

``OPTIONS`` (required, unless ``NODES``)
    the uWSGI options, as a list, a dict or the path of a configuration file (``.ini``,
    ``.yaml``, ``.json``, ``.xml``; relative to the scenario's directory);
``NODES``
    instead of ``OPTIONS``: the nodes of a :class:`~simuwsgi.Cluster`, by name, each
    its options or a dict of ``Cluster.add`` arguments (``{"options": [...],
    "address": "10.0.0.5", "ssl": True}``: ``ssl`` for Legion); the driver is then the
    cluster (``cluster["a"].get(...)``,
    ``cluster.net.partition(...)``), in ``sim`` mode only;
``SEED``, ``START``, ``TZ``, ``DURATION``
    the simulation's seed, first instant, time zone, and how long ``run`` lasts
    (seconds or ``"1d"``/``"2h"``/``"30m"``/``"10s"``; default 60 s); with a
    ``timeline`` it is how long the timeline runs (the progress bar and ``--mode
    real``'s confirmation read it; ``run --for`` is refused);
``APP_DIR``
    where relative paths in the options are resolved (default: the scenario's dir);
``timeline(sim)``
    drives the simulation (requests, signals, waits, kills, clock steps) — without it
    the simulation just runs for ``DURATION``;
``check(sim)``
    expectations on the trace; an ``AssertionError`` fails the run;
``state(sim)``
    optional: the final state to compare between modes (any JSON-able value, e.g. the
    body of a status request);
``CONFORM_IDENTITY``, ``CONFORM_TOLERANCE``, ``CONFORM_IGNORE``, ``KNOWN_DIFFERENCE``
    how ``simuwsgi conform`` normalises the comparison (see ``simuwsgi.conform``).
``FAULTS``, ``PROPERTIES``
    a fault plan applied to every run (``simuwsgi.faults``), and properties checked by
    ``simuwsgi explore`` (``simuwsgi.properties``: ``always``, ``eventually``,
    ``sometimes``).

``timeline``, ``check`` and ``state`` receive a driver (``simuwsgi.driver.Driver``): a
``Simulation`` in ``sim``/``fork`` mode, a ``simuwsgi.modes.real.RealRun`` in ``real`` mode
(``simuwsgi run SCENARIO --mode real``), so one file runs in every mode as long as it
sticks to the driver interface (``get``/``request``/``submit``/``wait``, ``advance``/
``run_until``, ``signal``, ``kill``, ``touch``, ``reload``, ``trace``, ``log``; a
``step_clock`` is refused in real mode).
"""

from __future__ import annotations

import importlib.util
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

__all__ = ["Scenario", "load_scenario", "parse_duration"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: Any) -> float:
    """Seconds for ``90``, ``"90"``, ``"1.5h"``, ``"1d"``, ``"2w"``, ``"1h30m"``."""
    if isinstance(text, (int, float)):
        return float(text)
    value = str(text).strip()
    try:
        return float(value)
    except ValueError:
        pass
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([smhdw])", value)
    if not parts or "".join(n + u for n, u in parts) != value.replace(" ", ""):
        raise ValueError(f"bad duration {text!r}: use seconds or a number with a unit "
                         f"s, m, h, d or w (e.g. '90', '10m', '1d', '1h30m')")
    return sum(float(n) * _UNITS[u] for n, u in parts)


@dataclass
class Scenario:
    """A loaded scenario (see the module docstring for the file format)."""

    name: str
    options: Any
    app_dir: Path
    seed: int = 0
    start: Any = None
    tz: str | None = None
    duration: float = 60.0
    timeline: Callable[[Any], Any] | None = None
    check: Callable[[Any], Any] | None = None
    module: ModuleType | None = field(default=None, repr=False)
    nodes: dict[str, Any] | None = None

    def simulation(self, **overrides: Any) -> Any:
        from .simulation import Simulation

        if self.nodes is not None:
            return self._cluster(**overrides)
        settings = {"seed": self.seed, "start": self.start, "tz": self.tz,
                    "app_dir": self.app_dir}
        settings.update({k: v for k, v in overrides.items() if v is not None})
        options = self.options
        from .server.config import config_reader

        if isinstance(options, str) and (config_reader(options)
                                         or config_reader(options.rpartition(":")[0])):
            options = str(self.app_dir / options) if not Path(options).is_absolute() else options
        return Simulation(options, **settings)

    def _cluster(self, **overrides: Any) -> Any:
        from .cluster import Cluster

        if overrides.get("subprocess") not in (None, "run"):
            raise ValueError(f"scenario {self.name}: a cluster (NODES) runs its apps' "
                             f"commands; subprocess={overrides['subprocess']!r} is not "
                             "available for it")
        for name in ("mode", "trace_kinds"):
            if overrides.get(name) not in (None, "sim"):
                raise ValueError(f"scenario {self.name}: a cluster (NODES) runs in sim mode "
                                 f"with its whole trace; {name}={overrides[name]!r} is not "
                                 f"available for it")
        settings = {"seed": self.seed, "start": self.start, "tz": self.tz,
                    "app_dir": self.app_dir}
        settings.update({k: v for k, v in overrides.items()
                         if v is not None and k in settings})
        cluster = Cluster(**settings)
        for name, spec in self.nodes.items():  # type: ignore[union-attr]
            if isinstance(spec, dict) and "options" in spec:
                cluster.add(name, **spec)
            else:
                cluster.add(name, spec)
        return cluster


def load_scenario(path: str | Path) -> Scenario:
    path = Path(path).resolve()
    name = f"simuwsgi_scenario_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ValueError(f"cannot load scenario {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)
    nodes = getattr(module, "NODES", None)
    if nodes is not None and (not isinstance(nodes, dict) or not nodes):
        raise ValueError(f"scenario {path}: NODES must be a non-empty dict of node name "
                         f"-> options, not {nodes!r}")
    if not hasattr(module, "OPTIONS") and nodes is None:
        raise ValueError(f"scenario {path} defines no OPTIONS (the uWSGI options to run)")
    seed = getattr(module, "SEED", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f"scenario {path}: SEED must be an integer, not {seed!r}")
    app_dir = Path(getattr(module, "APP_DIR", path.parent))
    if not app_dir.is_absolute():
        app_dir = path.parent / app_dir
    return Scenario(
        name=path.stem, options=getattr(module, "OPTIONS", None), app_dir=app_dir,
        seed=seed, start=getattr(module, "START", None),
        tz=getattr(module, "TZ", None),
        duration=parse_duration(getattr(module, "DURATION", 60)),
        timeline=getattr(module, "timeline", None), check=getattr(module, "check", None),
        module=module, nodes=nodes)
