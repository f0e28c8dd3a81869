"""What a simulation imports stays in that simulation.

A real uWSGI instance is a fresh interpreter: whatever its app imports (its own
modules, ``uwsgidecorators``, a cache backend a framework loads lazily from
site-packages) is gone when it exits, and the next instance imports it afresh. In one
test process, a simulation's imports land in the one ``sys.modules``; an
``ImportLedger`` per simulation keeps them apart:

* ``begin()`` (at ``start()``) remembers ``sys.modules``; ``close()`` puts it back as it
  was: every module imported while the simulation was open is dropped (so the next
  simulation starts clean) and every module it replaced or hid comes back, ``uwsgi``
  and ``uwsgidecorators`` included.
* Several simulations open at once (nested, or one left open — stopped, never closed):
  ``sys.modules`` holds the imports of one of them at a time, the *owner*. ``enter()``
  (at ``start()`` and whenever a simulation runs) takes the previous owner's imports out
  and puts this one's back, so no app state leaks from one simulation into another; when
  it closes, the one it took over from gets its imports back. With one simulation open
  this costs nothing. Simulations running at the same moment
  in several threads share ``sys.modules``, as threads do.
* ``try: import uwsgi`` / ``except ImportError: uwsgi = None`` in a library imported
  before the simulation (job and cache libraries do this) would run the app as "not
  under uWSGI". Such a module (a global ``uwsgi`` that is None) is hidden for the
  simulation's lifetime, so the app imports it afresh and its ``import uwsgi`` finds the
  simulated one; the log says so. If the app still reaches the stale module (a function
  re-exported by a package imported earlier), ``check_stale()`` fails ``start()`` naming
  both modules and the fix.

Kept across simulations: extension modules (C code cannot be initialised twice in one
process), the simulator and test runner themselves (``simuwsgi``, ``pytest``,
``pluggy``, ``hypothesis``), whose classes must keep their identity, and the modules
those use.
"""

from __future__ import annotations

import importlib.machinery
import sys
import threading
import types
from typing import Any

from ._errors import SimulationError

__all__ = ["ImportLedger"]

#: Packages whose modules are never dropped (their classes must stay the same objects).
_KEEP = ("simuwsgi", "_pytest", "pytest", "pluggy", "hypothesis", "_hypothesis_pytestplugin")
_EXTENSION_LOADERS = (importlib.machinery.ExtensionFileLoader, importlib.machinery.BuiltinImporter)
_MISSING: Any = object()
_lock = threading.RLock()
#: The ledger whose imports are in ``sys.modules`` now.
_owner: list[ImportLedger | None] = [None]


def _put(name: str, module: Any) -> None:
    if module is _MISSING:
        sys.modules.pop(name, None)
    else:
        sys.modules[name] = module


def _kept(name: str, module: Any) -> bool:
    if name.partition(".")[0] in _KEEP:
        return True
    spec = getattr(module, "__spec__", None)
    loader = getattr(spec, "loader", None)
    return isinstance(loader, _EXTENSION_LOADERS) or loader in _EXTENSION_LOADERS


def _kept_closure(new: dict[str, Any]) -> set[str]:
    """The names in ``new`` that stay: kept modules, and what they use (a library the
    simulator imported lazily, ``cryptography`` under ``simuwsgi.protocol``), with its
    parent packages."""
    keep = {name for name, module in new.items() if _kept(name, module)}
    todo = list(keep)
    while todo:
        for value in list(getattr(new[todo.pop()], "__dict__", {}).values()):
            if isinstance(value, types.ModuleType):
                used = value.__name__
            elif isinstance(value, (type, types.FunctionType)):
                used = value.__module__
            else:
                continue
            while isinstance(used, str) and used in new and used not in keep:
                keep.add(used)
                todo.append(used)
                used = used.rpartition(".")[0]
    return keep


class ImportLedger:
    """The modules one simulation imported, replaced or hid (see the module docs)."""

    def __init__(self) -> None:
        #: ``sys.modules`` when this ledger last became the owner.
        self._base: dict[str, Any] = {}
        #: Every name this simulation changed: its module there (``_MISSING``: removed).
        self._own: dict[str, Any] = {}
        #: The same names as they were before it changed them.
        self._origin: dict[str, Any] = {}
        #: Modules hidden because their global ``uwsgi`` is None, by name.
        self.stale: dict[str, types.ModuleType] = {}
        #: Parent-package attributes removed with them: (package, attribute, module).
        self._detached: list[tuple[types.ModuleType, str, types.ModuleType]] = []
        #: The owner this one took over from: its imports come back when this one closes.
        self._previous: ImportLedger | None = None
        self.open = False

    # -- ownership ----------------------------------------------------------------------
    def begin(self) -> list[str]:
        """At ``start()``: become the owner and hide stale ``uwsgi = None`` modules.
        Returns their names (for the log)."""
        with _lock:
            self.open = True
            self.enter()
            for name, module in list(sys.modules.items()):
                namespace = getattr(module, "__dict__", None)
                if isinstance(namespace, dict) and "uwsgi" in namespace \
                        and namespace["uwsgi"] is None and not _kept(name, module):
                    self.stale[name] = module
            for name, module in self.stale.items():
                del sys.modules[name]
                parent_name, _, attr = name.rpartition(".")
                parent = sys.modules.get(parent_name) if parent_name else None
                if parent is not None and getattr(parent, attr, None) is module:
                    delattr(parent, attr)  # so that ``from pkg import mod`` imports it afresh
                    self._detached.append((parent, attr, module))
            return sorted(self.stale)

    def enter(self) -> None:
        """Make this simulation's imports the ones in ``sys.modules``."""
        with _lock:
            owner = _owner[0]
            if owner is self:
                return
            if owner is not None:
                owner._leave()
            self._previous = owner
            modules = sys.modules
            for name, module in self._own.items():
                self._origin[name] = modules.get(name, _MISSING)
                _put(name, module)
            self._base = dict(modules)
            _owner[0] = self

    def _leave(self) -> None:
        """Take this simulation's imports out of ``sys.modules`` (the ledger keeps them)."""
        modules = sys.modules
        base = self._base
        new = {name: module for name, module in modules.items()
               if base.get(name, _MISSING) is not module}
        kept = _kept_closure(new)
        changed = [name for name in new if name not in kept]
        changed.extend(name for name in base if name not in modules)
        for name in changed:
            self._origin.setdefault(name, base.get(name, _MISSING))
            self._own[name] = modules.get(name, _MISSING)
        for name in self._own:
            _put(name, self._origin[name])
        self._base = {}
        _owner[0] = None

    def close(self) -> None:
        """Put ``sys.modules`` back as it was before ``begin()``."""
        with _lock:
            if not self.open:
                return
            self.open = False
            owned = _owner[0] is self
            if owned:
                self._leave()
            for parent, attr, module in self._detached:
                setattr(parent, attr, module)
            self._own.clear()
            self._origin.clear()
            self._detached.clear()
            previous = self._previous
            while previous is not None and not previous.open:
                previous = previous._previous
            self._previous = None
            if owned and previous is not None:
                previous.enter()  # as a nested ``with`` ends: the outer one's imports

    # -- the stale ``uwsgi = None`` modules -------------------------------------------------
    def check_stale(self) -> None:
        """Fail if a module imported by the simulation holds an object of a hidden stale
        module: that code would run as if not under uWSGI."""
        if not self.stale:
            return
        stale_dicts = {id(m.__dict__): name for name, m in self.stale.items()}
        stale_modules = {id(m): name for name, m in self.stale.items()}
        for name, module in list(sys.modules.items()):
            if self._base.get(name, _MISSING) is module or _kept(name, module):
                continue
            for key, value in list(getattr(module, "__dict__", {}).items()):
                globals_ = getattr(value, "__globals__", None)
                origin = stale_modules.get(id(value)) or (
                    stale_dicts.get(id(globals_)) if globals_ is not None else None)
                if origin is not None:
                    raise SimulationError(
                        f"module {name!r} uses {key!r} from {origin!r}, which was imported "
                        f"before the simulation and bound uwsgi = None (its 'import uwsgi' "
                        f"failed outside uWSGI), so it would run as if not under uWSGI. "
                        f"Fix: do not import {origin!r} (nor a module re-exporting it) in "
                        f"the test process before the simulation starts; let the app "
                        f"import it")
