"""The ``uwsgi`` module that app code imports inside a simulation.

Built per instance (and again after a binary reload) the way
``init_uwsgi_embedded_module()`` builds it (``plugins/python/python_plugin.c``): the
module attributes are snapshots taken at startup; method groups of subsystems the
options did not enable are absent (``AttributeError``), as in uWSGI. Every function
parses its arguments with the C format string uWSGI uses (``_pyarg``), takes no
keyword arguments unless uWSGI's does, and returns uWSGI's types: ``bytes`` for
strings, ``None`` (not ``False``) for most failures.

This module holds the attributes and the process-information functions; each
subsystem adds its own functions (``subsystems``).
"""

from __future__ import annotations

import os

import types
from typing import TYPE_CHECKING, Any

from ._pyarg import no_kwargs, parser
from .config import CONFIG_READERS, socket_fds
from .processes import Mule, Spooler, Worker

if TYPE_CHECKING:
    from .master import Instance

__all__ = ["build_module"]

SPOOL_OK = -2
SPOOL_RETRY = -1
SPOOL_IGNORE = 0


#: The attributes app code sets for uWSGI to call back (``uwsgi.spooler = f``); uWSGI
#: reads them from the module of the process that calls them. Each virtual process has
#: its own (``UProcess.hooks``), a forked one starting with a copy of the master's: a
#: hook set only in a worker (at request time, or by a ``--lazy-apps`` import) is not
#: seen by the spooler or the mules, as under uWSGI. ``uwsgi.atexit`` is called as the
#: process exits (``containment.run_atexit``).
HOOKS = frozenset({"spooler", "mule_msg_hook", "post_fork_hook", "atexit"})


class _UwsgiModule(types.ModuleType):
    """The module type: hooks per process; its repr says where it comes from."""

    __slots__ = ("_inst",)
    _inst: Instance

    def _hooks(self) -> dict[str, Any]:
        """The running process's hooks; the master's for the test's own calls."""
        inst = self._inst
        hooks: dict[str, Any] | None = getattr(inst.kernel.current, "hooks", None)
        if hooks is None:
            assert inst.master is not None  # made before the module
            hooks = inst.master.hooks
        return hooks

    def __setattr__(self, name: str, value: Any) -> None:
        if name in HOOKS:
            self._hooks()[name] = value
        else:
            super().__setattr__(name, value)

    def __delattr__(self, name: str) -> None:
        if name not in HOOKS:
            super().__delattr__(name)
        elif self._hooks().pop(name, _MISSING) is _MISSING:
            raise AttributeError(name)

    def __repr__(self) -> str:
        return "<module 'uwsgi' (simuwsgi)>"


_MISSING: Any = object()


def build_module(inst: Instance) -> types.ModuleType:
    """A fresh ``uwsgi`` module for ``inst``."""
    module = _UwsgiModule("uwsgi")
    object.__setattr__(module, "_inst", inst)

    def __getattr__(name: str) -> Any:  # PEP 562: the hooks are not in the dict
        if name in HOOKS:
            hooks = module._hooks()
            if name in hooks:
                return hooks[name]
        raise AttributeError(f"module 'uwsgi' has no attribute '{name}'")

    module.__dict__["__getattr__"] = __getattr__
    module.__dict__.update(_attributes(inst))
    module.__dict__.update(_process_functions(inst))
    for sub in inst.subsystems.values():
        module.__dict__.update(sub.facade_functions())
    if getattr(inst, "legacy", False):  # Simulation(..., legacy=True): pre-2.0 names
        from ..subsystems.legacy import legacy_entries

        module.__dict__.update(legacy_entries(inst))
    return module


def _attributes(inst: Instance) -> dict[str, Any]:
    opts = inst.opts
    attrs: dict[str, Any] = {
        "version": b"2.0.30",
        "version_info": (2, 0, 30, 0, b""),
        "hostname": inst.hostname.encode(),
        "numproc": inst.numproc,
        "buffer_size": inst.buffer_size,
        "cores": inst.cores,
        "has_threads": 1,
        "started_on": inst.started_on,
        "is_a_reload": inst.is_a_reload,
        "loop": opts.str("loop").encode() if opts.str("loop") else None,
        "opt": opts.exported(),
        "magic_table": _magic_table(inst),
        "sockets": socket_fds(inst.opts),
        "unbit": None,
        "applications": None,
        "SPOOL_OK": SPOOL_OK,
        "SPOOL_RETRY": SPOOL_RETRY,
        "SPOOL_IGNORE": SPOOL_IGNORE,
    }
    for name in ("mode", "pidfile"):
        value = opts.str(name)
        if value is not None:
            attrs[name] = value.encode()
    return attrs


def _magic_table(inst: Instance) -> dict[bytes, bytes]:
    """``uwsgi.magic_table``: the option parser's ``%x`` magic variables that are not
    empty (``core/uwsgi.c`` ``uwsgi_init``; ``config_magic_table_fill`` for a config
    file: its path, directory, name, extension, inode, hash, the directory's parts)."""
    import grp
    import pwd

    from .banner import binary_path, machine

    now = inst.wall()
    uid, gid = os.getuid(), os.getgid()
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    try:
        group = grp.getgrgid(gid).gr_name
    except KeyError:
        group = str(gid)
    table = {"%": "%", "(": "%(", "v": str(inst.app.base_dir), "h": inst.hostname,
             "t": str(int(now)), "T": str(int(now * 1_000_000)), "V": "2.0.30",
             "k": machine(inst)["cpus"], "[": "\x1b", "u": str(uid), "U": user, "g": str(gid),
             "G": group}
    cfg = next((v for n, v in inst.opts.given if n in CONFIG_READERS and isinstance(v, str)),
               None)
    if cfg:
        name, colon, section = cfg.rpartition(":") if ":" in cfg else (cfg, "", "")
        path = os.path.realpath(os.path.join(inst.opts.base_dir, name))
        directory, _, base = path.rpartition("/")
        stem, dot, ext = base.rpartition(".")
        fill = {"o": cfg, "b": binary_path(inst), "p": path, "s": base, "d": directory + "/",
                "c": directory.rpartition("/")[2], "n": stem if dot else base,
                "e": ext if dot else "", "x": section if colon else "",
                "j": _djb33x_hex(path)}
        try:
            fill["i"] = str(os.lstat(path).st_ino)
        except OSError:
            pass
        for n, part in enumerate([x for x in directory.split("/") if x][:10]):
            fill[str(n)] = part
        for key in "odspcenxij":  # the first config file also fills the upper case
            if key in fill:
                fill[key.upper()] = fill[key]
        table.update(fill)
    return {k.encode(): v.encode() for k, v in table.items() if v}


def _djb33x_hex(text: str) -> str:
    """``%j``: the djb33x hash of the config path, its 4 bytes (little endian) in hex
    (upper case, as ``uwsgi_str_to_hex``)."""
    from ..subsystems.cache import djb33x

    return djb33x(text.encode()).to_bytes(4, "little").hex().upper()


def _process_functions(inst: Instance) -> dict[str, Any]:
    kernel = inst.kernel

    def current() -> Any:
        return kernel.current

    def worker_id(*_args: Any) -> int:
        proc = kernel.current
        # (0 in a worker's fork hooks: uWSGI sets it after them)
        return proc.id if isinstance(proc, Worker) and not proc.main.forking else 0

    def mule_id(*_args: Any) -> int:
        proc = kernel.current
        return proc.id if isinstance(proc, Mule) else 0

    def masterpid(*_args: Any) -> int:
        if not inst.has_master or inst.master is None:
            return 0
        return inst.master.pid

    def total_requests(*_args: Any) -> int:
        return inst.total_requests

    def request_id(*_args: Any) -> int:
        proc = kernel.current
        return proc.core_counts[proc.core] if isinstance(proc, Worker) else 0

    def i_am_the_spooler(*_args: Any) -> bool | None:
        return True if isinstance(kernel.current, Spooler) else None

    def ready(*_args: Any) -> bool | None:
        return True if inst.ready else None

    # py_uwsgi_workers refills one tuple of dicts, created with the interpreter: every
    # call returns the same objects, updated in place
    table: tuple[dict[str, Any], ...] = tuple({} for _ in range(inst.numproc))

    def workers(*_args: Any) -> tuple[dict[str, Any], ...]:
        for wid, entry in enumerate(table, start=1):
            entry.clear()
            entry.update(_worker_info(inst, wid, inst.workers.get(wid)))
        return table

    def reload(*_args: Any) -> bool:
        inst.record("api.reload")
        inst.request_reload()
        return True

    def stop(*_args: Any) -> bool:
        inst.record("api.stop")
        inst.request_stop()
        return True

    p_accepting = parser("|i:accepting")

    def accepting(*args: Any, **kw: Any) -> None:
        no_kwargs("accepting", kw)
        values = p_accepting(args)
        proc = kernel.current
        if isinstance(proc, Worker):
            proc.accepting = bool(values[0] if values else 1)
            inst.some_refuse = inst.some_refuse or not proc.accepting
        return None

    p_harakiri = parser("i:set_user_harakiri")

    def set_user_harakiri(*args: Any, **kw: Any) -> None:
        no_kwargs("set_user_harakiri", kw)
        (seconds,) = p_harakiri(args)
        proc = kernel.current
        if not inst.has_master:
            inst.log("!!! unable to set user harakiri without the master process !!!")
            return None
        if proc is not None and proc is not inst.master:
            inst.arm_harakiri(proc, seconds, user=True)
        return None

    p_log = parser("s:log")

    def log(*args: Any, **kw: Any) -> bool:
        no_kwargs("log", kw)
        (msg,) = p_log(args)
        inst.log(msg)
        return True

    p_procname = parser("s:setprocname")

    def setprocname(*args: Any, **kw: Any) -> None:
        no_kwargs("setprocname", kw)
        (name,) = p_procname(args)
        proc = kernel.current
        if proc is not None:
            proc.procname = name
            inst.record("setprocname", proc, name=name)
        return None

    def micros(*_args: Any) -> int:
        return int(inst.wall() * 1_000_000)

    return {
        "worker_id": worker_id, "mule_id": mule_id, "masterpid": masterpid,
        "total_requests": total_requests, "request_id": request_id,
        "i_am_the_spooler": i_am_the_spooler, "ready": ready, "workers": workers,
        "reload": reload, "stop": stop, "accepting": accepting,
        "set_user_harakiri": set_user_harakiri, "log": log, "setprocname": setprocname,
        "micros": micros,
    }


def _worker_info(inst: Instance, wid: int, w: Worker | None) -> dict[str, Any]:
    """One entry of ``uwsgi.workers()`` with uWSGI's keys and types."""
    if w is None:  # not forked yet (the app's import in the master): the id is the
        # worker's own to set, once it runs
        cheaper = inst.subsystems.get("cheaper")
        cheap = cheaper is not None and cheaper.cheaped_at_start(wid)
        return {"id": 0, "pid": 0, "requests": 0, "delta_requests": 0,
                "signals": 0, "exceptions": 0, "status": b"cheap" if cheap else b"idle", "rss": 0, "vsz": 0, "running_time": 0,
                "last_spawn": 0, "respawn_count": 0, "tx": 0, "avg_rt": 0, "apps": ()}
    if w.in_handler >= 0:
        status = b"sig%d" % w.in_handler
    elif w.cheaped:
        status = b"cheap"
    elif w.paused:
        status = b"pause"
    elif w.busy:
        status = b"busy"
    else:
        status = b"idle"
    apps = ()
    if inst.app.apps or w.apps:
        apps = tuple({
            "id": app_id, "modifier1": 0, "mountpoint": inst.app.mountpoints.get(app_id, "").encode(),
            "startup_time": 0, "interpreter": 0, "callable": id(app),
            "requests": w.app_requests.get(app_id, 0),
            "exceptions": w.app_exceptions.get(app_id, 0), "chdir": b"",
        } for app_id, app in (w.apps or inst.app.apps).items())
    return {
        "id": wid, "pid": w.pid if w.alive else 0,
        "requests": w.requests, "delta_requests": w.delta_requests,
        "signals": w.signals, "exceptions": w.exceptions, "status": status, "rss": w.rss_size, "vsz": w.vsz_size, "running_time": w.running_time,
        "last_spawn": w.last_spawn, "respawn_count": w.respawn_count, "tx": w.tx,
        "avg_rt": w.avg_rt, "apps": apps,
    }
