"""Loading the user's app as uWSGI's Python plugin does, and the virtual fork.

Loading (``plugins/python/pyloader.c``, ``python_plugin.c``):

* ``--shared-import`` modules first (in every process, before the app), then the app,
  then ``--import`` modules; ``--wsgi-file path`` is executed as a module named
  ``uwsgi_file_<path with '.' and '/' turned into '_', without '_py'>``; ``--module
  pkg.mod[:callable]`` is imported; the callable defaults to ``application``
  (``--callable``); ``uwsgi.applications`` (a dict mountpoint → callable), when the
  module sets it, is used instead.
* A module that raises, or lacks the callable, leaves the instance with no app: uWSGI
  logs the traceback and ``*** no app loaded. going in full dynamic mode ***`` and
  keeps running.

The virtual fork (``_vfork``): after the master imported the app, each forked virtual
process gets its own copy of the *app's own modules* (modules loaded from the app's
directory tree or the ``--wsgi-file``'s directory, plus ``uwsgidecorators``): new
module objects, deep copies of the globals, functions and classes rebuilt on the
process's globals. ``sys.modules`` shows the running process's modules through one
``ModuleView`` per module, so a switch between processes changes one reference.
That switch, the look-up of the running process's copy of a master object
(``resolve``) and ``Instance.call_python`` have optional C twins (``_cvfork.c``).

Everything imported is removed from ``sys.modules`` when the simulation closes, and
modules the test process had imported under the same names are put back.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import traceback
import types
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._errors import VirtualForkWarning
from ._vfork import Copier, ModuleView, ProcessImage
from .._core.accel import load

if TYPE_CHECKING:
    from .master import Instance

#: the optional C accelerator: switch, resolve, call_python (see _cvfork.c)
_c = load(f"{__package__}._cvfork")

__all__ = ["AppLoader", "pythonize"]


def _control() -> tuple[type[BaseException], ...]:
    from .interface import CONTROL

    return CONTROL


def pythonize(path: str) -> str:
    """uWSGI's module name for a file path (``uwsgi_pythonize``)."""
    for prefix in ("sym://", "http://", "data://"):
        if path.startswith(prefix):
            path = path[len(prefix):]
            break
    name = path.replace(".", "_").replace("/", "_")
    if len(name) >= 3 and name[-3] in "._" and name.endswith("py"):
        name = name[:-3]
    return name


class AppLoader:
    """Imports the app for an instance and keeps the per-process globals."""

    def __init__(self, inst: Instance) -> None:
        self.inst = inst
        opts = inst.opts
        chdir = opts.str("chdir")  # relative to uWSGI's current directory, as chdir(2)
        self.base_dir = (opts.path(chdir) if chdir else opts.base_dir).resolve()
        self.callable_name = opts.str("callable", "application") or "application"
        self.wsgi_file = opts.str("wsgi-file")
        self.module_spec = opts.str("module")
        self.mount = opts.strings("mount")  # --worker-mount is an alias of it
        #: ``--pyrun``/``--python``/``--py``: the script worker 1 runs (command mode)
        pyrun = opts.last("pyrun", "python", "py")
        self.pyrun = pyrun if isinstance(pyrun, str) else None
        self.imports = opts.strings("import", "pyimport", "py-import", "python-import")
        self.shared_imports = opts.strings("shared-import", "shared-pyimport",
                                           "shared-py-import", "shared-python-import")
        self.vfork = inst.vfork
        #: The WSGI callables by app id (0 = the default app).
        self.apps: dict[int, Any] = {}
        self.mountpoints: dict[int, str] = {}
        #: ``uwsgi.default_app``: the app a request no mountpoint matches goes to
        self.default_app = -1
        #: The modules each forked process gets its own copy of, by sys.modules name.
        self.app_modules: dict[str, types.ModuleType] = {}
        #: The image the ``ModuleView``s in sys.modules show now (a one-element list
        #: they share), and the master's.
        self._live: list[Any] = [None]
        self._master_image: ProcessImage | None = None
        #: App modules first imported after the fork, as their first importer has them;
        #: and the names in sys.modules when last looked at for them.
        self._late_modules: dict[str, types.ModuleType] = {}
        self._modules_seen: set[str] = set()
        self._shared_reported = False
        self._saved_modules: dict[str, types.ModuleType] = {}
        self._added_modules: set[str] = set()
        self._path_added = False
        self.load_error: str | None = None
        #: ``uwsgi.after_req_hook`` as the apps were initialised (``uwsgi_python_init_apps``
        #: reads it once, in the process that loads them), or None
        self.after_req_hook: Any = None
        if _c is not None:  # the per-switch and per-call steps in C (see _cvfork.c)
            self.switch = _c.switcher(  # type: ignore[method-assign]
                (self._live, self._modules_seen, self.switch))
            self.resolve = _c.resolver((self._live, self.resolve))  # type: ignore[method-assign]
        from .startup import ProcessEnvironment

        #: --env/--unenv/--pythonpath, undone by restore()
        self.environment = ProcessEnvironment(inst)

    # -- sys.path and sys.modules bookkeeping -----------------------------------
    def prepare(self) -> None:
        base = str(self.base_dir)
        if base not in sys.path:
            sys.path.insert(0, base)
            self._path_added = True
        self.environment.apply()  # --pythonpath entries go before the app directory
        self._before = set(sys.modules)

    def _forget(self, name: str) -> None:
        """Take ``name`` out of ``sys.modules`` so that importing it runs it afresh."""
        if name in sys.modules and name not in self._added_modules:
            self._saved_modules.setdefault(name, sys.modules[name])
        sys.modules.pop(name, None)

    def _track_new_modules(self) -> None:
        for name in list(sys.modules):
            if name not in self._before:
                self._added_modules.add(name)

    def restore(self) -> None:
        """Undo every import made by the simulation (called when it closes)."""
        self.environment.restore()
        before = getattr(self, "_before", None)
        if before is not None:  # app modules imported later (a mule script's imports)
            for name in set(sys.modules) - before - self._added_modules:
                module = sys.modules.get(name)
                if module is not None and self._is_app_module(module):
                    self._added_modules.add(name)
        for name in list(self._added_modules):
            sys.modules.pop(name, None)
        sys.modules.update(self._saved_modules)
        self._added_modules.clear()
        self._saved_modules.clear()
        if self._path_added:
            try:
                sys.path.remove(str(self.base_dir))
            except ValueError:
                pass
            self._path_added = False

    # -- importing ---------------------------------------------------------------
    def _import_name(self, spec: str) -> types.ModuleType | None:
        if "/" in spec or spec.endswith(".py"):
            return self._import_file(spec, pythonize(spec))
        self._forget_package_tree(spec)
        module = importlib.import_module(spec)
        return module

    def _forget_package_tree(self, dotted: str) -> None:
        parts = dotted.split(".")
        for i in range(1, len(parts) + 1):
            name = ".".join(parts[:i])
            mod = sys.modules.get(name)
            if mod is not None and self._is_app_module(mod):
                self._forget(name)

    def _import_file(self, filename: str, name: str) -> types.ModuleType:
        path = Path(filename)
        if not path.is_absolute():
            path = self.base_dir / path
        self._forget(name)
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"unable to load {filename}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        # ours from now on, even if the process dies inside the import (os._exit)
        self._added_modules.add(name)
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(name, None)
            raise
        return module

    def import_list(self, specs: list[str]) -> None:
        for spec in specs:
            try:
                self._import_name(spec)
            except Exception:  # uWSGI: PyErr_Print() and go on
                self.inst.log_exception()
            finally:
                self._track_new_modules()

    def load(self) -> bool:
        """Import the apps (in the current process) as uWSGI does: the main app
        (``--wsgi-file``/``--module``), the ``--import`` modules, then each ``--mount``
        (``uwsgi_init_all_apps``); True if any app loaded."""
        inst = self.inst
        current = inst.kernel.current
        proc = getattr(current, "main", current)  # (a fork-mode child's stand-in has none)
        inst.run_phase("pre app", proc)
        self.apps.clear()
        self.mountpoints.clear()
        self.default_app = -1
        self.load_error = None
        if self.wsgi_file:
            self._init_app("", lambda: self._file_loader(self.wsgi_file or ""))
        elif self.module_spec:
            self._init_app("", lambda: self._module_loader(self.module_spec or ""))
        self.import_list(self.imports)
        for mount in self.mount:
            self._mount(mount)
        self._collect_app_modules()
        facade = sys.modules.get("uwsgi")  # the process's uwsgi module, as the app left it
        self.after_req_hook = getattr(facade, "after_req_hook", None)
        if not self.apps:
            self._log_no_app()
            if inst.opts.flag("need-app") and inst.numproc > 0 and not self.pyrun:
                return False  # uWSGI exits right after (22): no post-app command
            inst.run_phase("post app", proc)
            return False
        inst.run_phase("post app", proc)
        return True

    # -- the loaders (pyloader.c): a callable, a multiapp dict, or None (logged) -------------
    def _guarded(self, load: Any) -> Any:
        """Run a loader as uWSGI runs Python code at start: ``sys.exit`` ends the process,
        any other exception is printed (``PyErr_Print``) and gives None."""
        try:
            return load()
        except SystemExit as exc:
            from .interface import ProcessExit

            raise ProcessExit.from_system_exit(exc) from None
        except _control():
            raise
        except BaseException:  # noqa: BLE001 - uWSGI prints any import error
            self.load_error = traceback.format_exc()
            self.inst.log_exception()
            return None
        finally:
            self._track_new_modules()

    def _file_loader(self, filename: str) -> Any:
        """``uwsgi_file_loader``: the file run as ``uwsgi_file_<name>``, then its callable
        (``--callable``; the message names ``application`` whatever it is, as uWSGI's)."""
        if not (self.base_dir / filename).exists():
            self.inst.log(f"failed to open python file {filename}")
            self.load_error = f"failed to open python file {filename}"
            return None
        name = "uwsgi_file_" + pythonize(filename)
        module = self._guarded(lambda: self._import_file(filename, name))
        if module is None:
            return None
        app = getattr(module, self.callable_name, None)
        if app is None:
            self.inst.log(f'unable to find "application" callable in file {filename}')
        return app

    def _module_loader(self, spec: str) -> Any:
        """``uwsgi_uwsgi_loader``: ``pkg.mod[:callable]`` imported; a dict in
        ``uwsgi.applications`` (or the module's own ``applications``) is a multiapp."""
        name, _, attr = spec.partition(":")
        module = self._guarded(lambda: self._import_name(name))
        if module is None:
            return None
        for source in (self.inst.facade, module):
            applications = getattr(source, "applications", None)
            if isinstance(applications, dict):
                return applications
        return getattr(module, attr or self.callable_name, None)  # None: nothing logged

    def _mount(self, mount: str) -> None:
        """``--mount MOUNTPOINT=APP`` (``uwsgi_python_mount_app``, ``uwsgi_mount_loader``):
        a ``.py``/``.wsgi`` file, or ``module:callable``; anything else mounts nothing. A
        mounted file that does not load ends uWSGI at start (status 22)."""
        mountpoint, sep, what = mount.partition("=")
        if not sep:
            from .._errors import StartRefusedError

            raise StartRefusedError(f"invalid mountpoint: {mount}")
        self.inst.log(f"mounting {what} on {mountpoint}")
        if what.endswith((".py", ".wsgi")):
            if self._init_app(mountpoint, lambda: self._file_loader(what)) == -2:
                from .._errors import AppLoadError

                raise AppLoadError(
                    f"the app mounted on {mountpoint} did not load: uWSGI exits with "
                    "status 22", log=[line for _t, _p, line in self.inst.log_lines],
                    exit_status=22)
        elif ":" in what:
            self._init_app(mountpoint, lambda: self._module_loader(what))

    def _init_app(self, mountpoint: str, loader: Any, *, multi: bool = True) -> int:
        """``init_uwsgi_app``: the app's id, -1 when the mountpoint is taken, -2 when the
        loader gave nothing (logged)."""
        if mountpoint in self.mountpoints.values():
            self.inst.log(f"mountpoint {mountpoint} already configured. skip.")
            return -1
        app_id = len(self.apps)
        app = loader()
        if app is None:
            self.inst.log(f"unable to load app {app_id} (mountpoint='{mountpoint}') "
                          "(callable not found or import error)")
            return -2
        rest: list[tuple[Any, Any]] = []
        if isinstance(app, dict) and multi:
            # A multiapp: the first key's app gets this mountpoint's length of the key
            # (``strlen(wi->mountpoint)``: none for the main app); keys must be bytes
            # (``PyString_Check`` is ``PyBytes_Check`` on Python 3), a bytes value names
            # a callable of the module (never found: the module's keys are str).
            self.inst.log("found a multiapp module...")
            items = list(app.items())
            if not items:
                self.inst.log("you have to define at least one app in the applications "
                              "dictionary")
                return -2
            key, app = items[0]
            if not isinstance(key, bytes):
                self.inst.log("the app mountpoint must be a string")
                return -2
            mountpoint = key[:len(mountpoint)].decode("latin-1")
            rest = items[1:]
            if isinstance(app, bytes):
                self.inst.log(f"skipping broken app {mountpoint}")
                app = None
        if app is not None:
            self._register(app_id, mountpoint, app)
        for key, value in rest:
            if not isinstance(key, bytes):
                self.inst.log("applications dictionary key must be a string, skipping.")
            elif isinstance(value, bytes):
                self.inst.log(f"skipping broken app {key.decode('latin-1')}")
            else:
                self._init_app(key.decode("latin-1"), lambda v=value: v, multi=False)
        return app_id

    def _register(self, app_id: int, mountpoint: str, app: Any) -> None:
        # The first app mounted on '' or on anything starting with '/' is the default app
        # (uWSGI's test assigns instead of comparing: ``appid_len = 1 && ...``).
        default = ""
        if self.default_app < 0 and (not mountpoint or mountpoint.startswith("/")):
            default = " (default app)"
            self.default_app = app_id
        self.apps[app_id] = app
        self.mountpoints[app_id] = mountpoint
        pid = self.inst.kernel.current.pid if self.inst.kernel.current else 0
        self.inst.log(f"WSGI app {app_id} (mountpoint='{mountpoint}') ready in 0 seconds "
                      f"on interpreter 0x0 pid: {pid}{default}")

    def app_id(self, script_name: str, apps: dict[int, Any] | None = None) -> int:
        """``uwsgi_get_app_id`` with the request's ``SCRIPT_NAME``, then the default app
        (``uwsgi_request_wsgi``): -1 for uWSGI's 'no python application found'."""
        apps = self.apps if apps is None else apps
        for app_id, mountpoint in self.mountpoints.items():
            if mountpoint == script_name and app_id in apps:
                return app_id
        return self.default_app if self.default_app in apps else -1

    def run_command(self) -> None:
        """``uwsgi_python_hijack`` (``--pyrun``): the worker runs the file as
        ``__main__`` instead of serving, then exits: 0, ``sys.exit``'s status, 1 when
        the file cannot be opened; an exception is printed and the exit is 0."""
        from .interface import ProcessExit

        path = self.base_dir / (self.pyrun or "")
        if not path.is_file():
            self.inst.log(f'open("{self.pyrun}"): No such file or directory '
                          "[plugins/python/python_plugin.c line 1940]")
            raise ProcessExit("exited", 1)
        sys.argv = [self.pyrun or ""]  # as pyuwsgi's command mode sets it
        try:
            code = compile(path.read_bytes(), self.pyrun or "", "exec")
            exec(code, {"__name__": "__main__", "__file__": self.pyrun,  # noqa: S102
                        "__builtins__": __builtins__})
        except SystemExit as exc:
            raise ProcessExit.from_system_exit(exc) from None
        except _control():
            raise
        except BaseException:  # noqa: BLE001 - PyRun_SimpleFile prints it
            self.inst.log_exception()
        finally:
            self._track_new_modules()
        raise ProcessExit("exited", 0)

    def _log_no_app(self) -> None:
        # uWSGI's last word on loading: with --need-app it exits right after (status 22);
        # nothing without workers (uwsgi_init_all_apps: numproc > 0) or in command mode
        if self.inst.numproc == 0 or self.pyrun:
            return
        if self.inst.opts.flag("need-app"):
            self.inst.log("*** no app loaded. GAME OVER ***")
        else:
            self.inst.log("*** no app loaded. going in full dynamic mode ***")

    def forget_app_modules(self) -> None:
        """Drop the app's modules from ``sys.modules`` so the next import runs afresh
        (``--lazy-apps``: every worker imports the app in its own address space)."""
        for name in sorted(self._added_modules):
            module = sys.modules.get(name)
            if module is not None and self._is_app_module(module):
                sys.modules.pop(name, None)

    def own_module_names(self) -> list[str]:
        """The names in ``sys.modules`` this instance's app owns (its app modules and
        ``uwsgidecorators``): what another instance sharing the interpreter must not see
        (a cluster's nodes each import the app)."""
        names = []
        for name in self._added_modules:
            module = sys.modules.get(name)
            if isinstance(module, ModuleView) or (
                    isinstance(module, types.ModuleType) and self._is_app_module(module)):
                names.append(name)
        return sorted(names)

    @property
    def imports_made(self) -> int:
        """How many modules the app imported so far (grows with late imports)."""
        return len(self._added_modules)

    # -- the virtual fork ------------------------------------------------------------
    def _is_app_module(self, module: types.ModuleType) -> bool:
        if module.__name__ == "uwsgidecorators":
            return True
        if module.__name__.partition(".")[0] == __package__:
            return False  # the simulator itself, even when the app's tree holds it
        path = getattr(module, "__file__", None)
        if not path:
            return False
        try:
            resolved = Path(path).resolve()
        except OSError:
            return False
        if "site-packages" in resolved.parts or "dist-packages" in resolved.parts:
            return False
        return any(d in resolved.parents or resolved.parent == d for d in self._app_dirs())

    def _app_dirs(self) -> tuple[Path, ...]:
        """The app's directory tree, and the ``--wsgi-file``'s directory wherever it is."""
        if not self.wsgi_file:
            return (self.base_dir,)
        return (self.base_dir, (self.base_dir / self.wsgi_file).resolve().parent)

    def _collect_app_modules(self) -> None:
        if not self.vfork or self.inst.lazy_apps:
            return
        seen = {id(m) for m in self.app_modules.values()}
        for name in sorted(self._added_modules):
            module = sys.modules.get(name)
            if module is None or id(module) in seen:
                continue
            if self._is_app_module(module):
                self.app_modules[name] = module
                seen.add(id(module))

    def master_context(self) -> ProcessImage | None:
        """The master's image (the modules it imported), installed behind a
        ``ModuleView`` in ``sys.modules`` for each app module."""
        if not self.vfork or not self.app_modules:
            return None
        image = ProcessImage(dict(self.app_modules), None)
        self._live[0] = self._master_image = image
        for name in image.modules:
            sys.modules[name] = ModuleView(name, self._live, self._import_late)
        self._see_modules()
        return image

    def _adopt_late_imports(self) -> None:
        """App modules imported since the last switch belong to the process that ran
        (the image still installed): theirs, behind a view like the others."""
        new_names = sys.modules.keys() - self._modules_seen
        self._see_modules()
        image = self._live[0]
        for name in sorted(new_names):
            module = sys.modules[name]
            if (module is None or isinstance(module, ModuleView) or name in image.modules
                    or name in self._late_modules or not self._is_app_module(module)):
                continue
            image.modules[name] = self._late_modules[name] = module
            sys.modules[name] = ModuleView(name, self._live, self._import_late)

    def _see_modules(self) -> None:
        """Remember the names in sys.modules (in place: the C ``switch`` holds the set)."""
        self._modules_seen.clear()
        self._modules_seen.update(sys.modules)

    def _import_late(self, image: ProcessImage, name: str) -> types.ModuleType:
        """``name`` for a process that has not imported it: its own import, now. The
        master (the test's code) sees the first importer's module."""
        origin = self._late_modules[name]
        if image.copier is None or origin.__spec__ is None or origin.__spec__.loader is None:
            return origin
        module = importlib.util.module_from_spec(origin.__spec__)
        image.modules[name] = module  # what sys.modules shows while it runs, as import does
        try:
            origin.__spec__.loader.exec_module(module)
        except BaseException:
            del image.modules[name]
            raise
        return module

    def fork(self, threads: dict[int, Any] | None = None) -> ProcessImage | None:
        """A fresh copy of the master's app modules, as ``fork()`` would give a child
        (``threads``: the forking thread's ``threading.local`` owner -> the child's).

        The first fork reports what could not be copied (in the trace and in one
        warning); the master's objects do not change, so neither does that list.
        """
        if self._master_image is None:
            return None
        if len(sys.modules) != len(self._modules_seen):
            self._adopt_late_imports()
        # the log stream (fd 1 and 2) and stdin: every process's, as fork() leaves them
        copier = Copier(self._master_image.modules, threads,
                        (self.inst.errors_stream(), self.inst.stdin_stream()))
        if not self._shared_reported:
            self._shared_reported = True
            self._report_shared(copier.shared)
        return ProcessImage(copier.modules, copier)

    def _report_shared(self, shared: list[tuple[str, str]]) -> None:
        if not shared:
            return
        self.inst.record("vfork.shared", self.inst.master,
                         objects=[f"{where} ({what})" for where, what in shared])
        listing = "; ".join(f"{where} ({what})" for where, what in shared)
        # once per simulation, not once per place in this file as Python's registry
        # has it (a second simulation of the same app would say nothing)
        globals().get("__warningregistry__", {}).clear()
        warnings.warn(
            f"the virtual fork shares {len(shared)} object(s) of the app between "
            f"processes instead of copying them: {listing}. Every process sees the "
            f"master's object; mode='fork' gives each process its own, exactly as uWSGI's "
            f"fork() does", VirtualForkWarning, stacklevel=1)

    def switch(self, outgoing: ProcessImage | None, incoming: ProcessImage | None) -> None:
        """Make ``incoming``'s modules the ones ``sys.modules`` shows (one reference)."""
        if len(sys.modules) != len(self._modules_seen):
            self._adopt_late_imports()
        self._live[0] = incoming if incoming is not None else self._master_image

    @property
    def installed(self) -> ProcessImage | None:
        """The image the ``ModuleView``s show now (the process that ran last)."""
        return self._live[0]  # type: ignore[no-any-return]

    def resolve(self, obj: Any) -> Any:
        """The running process's copy of ``obj`` (a callable the master registered)."""
        image = self._live[0]
        return obj if image is None else image.resolve(obj)

    def module_globals(self, context: ProcessImage | None) -> dict[str, dict[str, Any]]:
        """A read-only view of one process's app globals, by module name."""
        image = context or self._master_image
        modules = image.modules if image is not None else self.app_modules
        out: dict[str, dict[str, Any]] = {}
        for name, module in modules.items():
            out[module.__name__] = {
                k: v for k, v in vars(module).items()
                if not (k.startswith("__") and k.endswith("__"))
                and not isinstance(v, types.ModuleType)}
        return out
