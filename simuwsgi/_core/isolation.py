"""What a simulation imports stays in that simulation.

A real uWSGI instance is a fresh interpreter: whatever its app imports (its own
modules, ``uwsgidecorators``, a cache backend a framework loads lazily from
site-packages) is gone when it exits, and the next instance imports it afresh. In one
test process, a simulation's imports land in the one ``sys.modules``; an
``ImportLedger`` per simulation keeps them apart:

* ``begin()`` (at ``start()``) remembers ``sys.modules``; ``close()`` puts it back as it
  was: every module imported while the simulation was open is dropped (so the next
  simulation starts clean) and every module it replaced or hid comes back, ``uwsgi``
  and ``uwsgidecorators`` included. The entries it added to ``sys.path`` (the app's
  directory, an app's own ``sys.path.insert``) go too.
* Several simulations open at once (nested, or one left open — stopped, never closed):
  ``sys.modules`` holds the imports of one of them at a time, the *owner*. ``enter()``
  (at ``start()`` and whenever a simulation runs) takes the previous owner's imports out
  and puts this one's back, so no app state leaks from one simulation into another; when
  it closes, the one it took over from gets its imports back. With one simulation open
  this costs nothing.
* Simulations open at the same time in several threads share ``sys.modules`` (one of
  them may be importing while another runs): their imports are dropped when the last of
  them closes.
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

from .._errors import SimulationError

__all__ = ["ImportLedger", "kept_module"]

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


def kept_module(name: str) -> bool:
    """Whether the module is the simulator's or the test runner's (never dropped)."""
    return name.partition(".")[0] in _KEEP


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
        #: ``sys.modules`` and ``sys.path`` when this ledger last became the owner.
        self._base: dict[str, Any] = {}
        self._base_path: list[str] = []
        #: The ``sys.path`` entries it added (while it is not the owner).
        self._paths: list[str] = []
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
        #: The thread that opened or last ran it.
        self._thread = 0
        #: Open ledgers of other threads sharing this owner's ``sys.modules``, and the owner
        #: this one shares (see ``enter``).
        self._guests: list[ImportLedger] = []
        self._host: ImportLedger | None = None
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
            if owner is self or (owner is not None and owner is self._host):
                return
            self._thread = threading.get_ident()
            if owner is not None and owner._thread != self._thread \
                    and owner._thread in threading._active:  # type: ignore[attr-defined]
                # Another thread's simulation may be running (``_active``, not
                # ``enumerate()``: in a virtual process that lists its own threads): never
                # pull its modules from under it. Share its imports; the last of them to
                # close drops them.
                self._host = owner
                owner._guests.append(self)
                return
            if owner is not None:
                owner._leave()
            self._previous = owner
            modules = sys.modules
            for name, module in self._own.items():
                self._origin[name] = modules.get(name, _MISSING)
                _put(name, module)
            self._base = dict(modules)
            self._base_path = list(sys.path)
            sys.path[:0] = self._paths
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
        before = set(self._base_path)
        self._paths = [p for p in sys.path if p not in before]
        sys.path[:] = [p for p in sys.path if p in before]
        self._base, self._base_path = {}, []
        _owner[0] = None

    def close(self) -> None:
        """Put ``sys.modules`` (and ``sys.path``) back as before ``begin()``."""
        with _lock:
            if not self.open:
                return
            self.open = False
            for parent, attr, module in self._detached:
                setattr(parent, attr, module)
            self._detached = []
            if self._host is not None:  # its imports are its host's to drop
                if self in self._host._guests:
                    self._host._guests.remove(self)
                self._host = None
                return
            owned = _owner[0] is self
            guests = [g for g in self._guests if g.open]
            self._guests = []
            if owned and guests:
                self._hand_over(guests)
                return
            if owned:
                self._leave()
            self._own, self._origin, self._paths = {}, {}, []
            previous = self._previous
            while previous is not None and not previous.open:
                previous = previous._previous
            self._previous = None
            if owned and previous is not None:
                previous.enter()  # as a nested ``with`` ends: the outer one's imports

    def _hand_over(self, guests: list[ImportLedger]) -> None:
        """Closing while other threads' simulations share ``sys.modules``: the first of
        them becomes the owner, with everything this one would have put back."""
        heir = guests[0]
        heir._host = None
        heir._guests = guests[1:]
        for guest in heir._guests:
            guest._host = heir
        heir._base, heir._own, heir._origin = self._base, self._own, self._origin
        heir._base_path, heir._previous = self._base_path, self._previous
        self._base, self._own, self._origin, self._previous = {}, {}, {}, None
        self._base_path = []
        _owner[0] = heir

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
