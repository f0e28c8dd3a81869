"""The lines uWSGI 2.0.30 logs while it starts (``core/uwsgi.c`` ``uwsgi_init`` and
``uwsgi_start``, ``core/init.c`` ``uwsgi_setup_workers``, ``core/utils.c``
``uwsgi_as_root``, ``plugins/python/python_plugin.c``), in three parts the master logs at
the matching points of its boot:

1. :func:`before_subsystems`: the ``*** Starting uWSGI`` banner, the build and machine
   facts, the root warnings, the process/fd limits, the lock engine and thunder lock
   (then the cache and queue subsystems log their own lines);
2. :func:`before_app`: the sockets (``bound to`` at the first start, ``inherited`` after
   a reload), the Python interpreter lines, the listen backlog, the workers' mercy,
   the ``--cron`` tasks, the shared memory mapped for the cores, the farms and the
   operational mode;
3. :func:`after_app`: the last root warning, the multiple-interpreter line and the
   master's ``spawned`` (``gracefully (RE)spawned`` after a reload) line.

The machine facts (``uname``, CPU count, page size, process and file-descriptor limits,
whether uWSGI runs as root, the binary's path) are the simulated machine's: by default
:data:`VIRTUAL_MACHINE`, an ordinary Linux box whose node name is the simulation's
``hostname``, so that the log is the same on every machine as the trace is;
``Simulation(..., machine="host")`` prints this machine's instead, as the real server
would here (``simuwsgi conform`` uses it to diff logs line by line). The Python version
is the interpreter's that runs the app. The build line is the pyuwsgi 2.0.30 wheel's. Left out:
``--uid``/``--gid`` privilege dropping (no warning once ``--uid`` is set is all that is
modelled), screen sessions, ``--safe-pidfile``, ``--vhost`` and KSM (the offload threads' line is the
worker's, logged as it starts).
"""

from __future__ import annotations

import functools
import os
import resource
import sys
import time
from typing import TYPE_CHECKING

from .cheaper import algo_list_lines
from .config import socket_fds
from . import static as _static

if TYPE_CHECKING:
    from .master import Instance

__all__ = ["after_app", "before_app", "before_subsystems"]

#: what the pyuwsgi 2.0.30 wheel was compiled with (its ``compiled with`` line)
COMPILED_WITH = "14.2.1 20250110 (Red Hat 14.2.1-10) on 24 February 2026 19:10:01"
#: ``sizeof`` of uWSGI's per-process and per-core structures on 64-bit Linux, as the
#: ``mapped N bytes`` line of 2.0.30 reveals them: apps table (64 × ``struct
#: uwsgi_app``) and ``struct uwsgi_core``
_APPS_TABLE = 64 * 976
_CORE = 1656
#: the socket options, in the order uWSGI binds them
_SOCKET_OPTIONS = ("socket", "uwsgi-socket", "http-socket", "http11-socket", "https-socket",
                   "fastcgi-socket", "scgi-socket", "raw-socket", "suwsgi-socket",
                   "shared-socket")


#: The simulated machine of ``machine="virtual"`` (the default).
VIRTUAL_MACHINE = {"os": "Linux-6.1.0-simuwsgi #1 SMP PREEMPT_DYNAMIC", "machine": "x86_64",
                   "cpus": "4", "nproc": "63704", "page": "4096", "max_fd": "1024",
                   "max_fd_hard": "524288", "root": "False", "binary": "/usr/local/bin/uwsgi"}
MACHINES = ("virtual", "host")


@functools.cache
def _host() -> dict[str, str]:
    u = os.uname()
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[0]
    nofile, nofile_hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return {"os": f"{u.sysname}-{u.release} {u.version}", "nodename": u.nodename,
            "machine": u.machine, "cpus": str(os.cpu_count() or 1),
            "nproc": "" if nproc == resource.RLIM_INFINITY else str(nproc),
            "page": str(os.sysconf("SC_PAGE_SIZE")), "max_fd": str(nofile),
            "max_fd_hard": str(nofile_hard),
            "root": str(os.getuid() == 0),
            "binary": os.path.realpath(sys.executable)}  # uWSGI reads /proc/self/exe


def _max_fd(inst: Instance, m: dict[str, str]) -> list[str]:
    """``--max-fd N``: uWSGI sets the descriptor limit (soft and hard) to N, which only
    root may raise above the hard limit; then it logs the limit (the simulated
    machine's: the test process keeps its own)."""
    requested, max_fd, lines = inst.opts.int("max-fd", 0), m["max_fd"], []
    if requested > 0:
        hard = m["max_fd_hard"]
        if m["root"] == "True" or not hard.isdigit() or requested <= int(hard):
            max_fd = str(requested)
        else:
            lines.append("setrlimit(): Operation not permitted [core/uwsgi.c line 2691]")
    return [*lines, f"detected max file descriptor number: {max_fd}"]


def machine(inst: Instance) -> dict[str, str]:
    """The facts uWSGI prints about the machine it runs on (see the module docstring)."""
    facts = dict(_host()) if inst.machine == "host" else {**VIRTUAL_MACHINE,
                                                          "nodename": inst.hostname}
    facts["python"] = sys.version.replace("\n", " ")
    return facts


def _as_root(inst: Instance, *, first: bool = False, early: bool = True) -> list[str]:
    """``uwsgi_as_root``, only while uWSGI runs as root: the ``as root`` hooks and
    commands, the privileges drop, the ``as user`` ones, and the two warnings unless
    ``--uid`` is set (then only its ``first`` call of the first start runs: the
    privileges are dropped). ``early``: before the workers exist (``hooks.py``)."""
    if machine(inst)["root"] != "True":
        return []
    when = " early" if early else ""
    if inst.opts.has("uid"):
        return [PHASE + "as root" + when, PHASE + "as user" + when] \
            if first and not inst.is_a_reload else []
    return ["uWSGI running as root, you can use --uid/--gid/--chroot options",
            PHASE + "as root" + when,
            "*** WARNING: you are running uWSGI as root !!! (use the --uid flag) *** ",
            PHASE + "as user" + when]


#: In the banner's lines: ``--logto2``'s file is opened here (after the privileges
#: drop), and gets the lines from then on.
OPEN_LOGTO2 = "\0open logto2"
#: In the banner's lines: the hooks and commands of the phase named after it run here
#: (``Instance.run_phase``).
PHASE = "\0phase "
#: The mark of a line written to the terminal before the log is set up (not to the
#: log's files nor through the log master: ``[log-encoder] registered ...``).
TERMINAL = "\0terminal "


def _write_pidfile(inst: Instance, option: str) -> list[str]:
    """``uwsgi_write_pidfile`` (``--pidfile`` before the privileges drop, ``--pidfile2``
    after it; not again at a reload): the line, and the file with the master's virtual
    pid (the one it is about to get; ``Instance.update_pidfiles`` writes the pid again
    once known). A file that cannot be written ends the start as uWSGI's exit(1)."""
    name = inst.opts.str(option)
    if name is None or inst.is_a_reload:
        return []
    path = inst.opts.path(name)
    try:
        path.write_text(f"{inst.pid_peek()}\n")
    except OSError as exc:
        from .._errors import StartRefusedError

        raise StartRefusedError(f'open("{name}"): {exc.strerror} [core/utils.c line 3602]') \
            from None
    return [f"writing pidfile to {name}"]


def identity(inst: Instance) -> tuple[int, int]:
    """The uid and gid uWSGI runs as once ``uwsgi_as_root`` dropped its privileges to
    ``--uid``/``--gid`` (a number or a name), root's (or the host's) otherwise."""
    import grp
    import pwd

    ids = []
    for option, lookup in (("uid", lambda n: pwd.getpwnam(n).pw_uid),
                           ("gid", lambda n: grp.getgrnam(n).gr_gid)):
        value = inst.opts.str(option)
        if value is None:
            ids.append(0 if machine(inst)["root"] == "True" else 1000)
        else:
            ids.append(int(value) if value.isdigit() else lookup(value))
    return ids[0], ids[1]


def binary_path(inst: Instance) -> str:
    return inst.opts.str("binary-path") or machine(inst)["binary"]


def sockets(inst: Instance) -> list[str]:
    """The listen sockets, argv order (``--http-socket`` after ``--socket``, as bound)."""
    out = []
    for name in _SOCKET_OPTIONS:
        out.extend(inst.opts.strings(name))
    return out


def before_subsystems(inst: Instance) -> list[str]:
    m = machine(inst)
    stamp = time.asctime(time.localtime(int(inst.wall())))
    # --cheaper-algo-list's list comes out first
    lines = algo_list_lines() if inst.opts.flag("cheaper-algo-list") else []
    static_lines, mime_lines = _static.startup_lines(inst)
    lines += static_lines
    sink = inst.log_sink
    if sink is not None:  # uwsgi_setup_log: the encoders first
        lines += [TERMINAL + line for line in sink.registered]
    lines += [f"*** Starting uWSGI 2.0.30 (64bit) on [{stamp}] ***",
             f"compiled with version: {COMPILED_WITH}",
             f"os: {m['os']}", f"nodename: {m['nodename']}", f"machine: {m['machine']}",
             "clock source: unix", "pcre jit disabled",
             f"detected number of CPU cores: {m['cpus']}",
             f"current working directory: {inst.app.base_dir}",
             *_write_pidfile(inst, "pidfile"),
             f"detected binary path: {binary_path(inst)}"]
    for table in ("routes", "error_routes", "response_routes", "final_routes"):
        routes = getattr(inst, table, None)
        if routes is not None:
            lines += routes.dump()
    if not inst.is_a_reload:
        lines.append(PHASE + "pre-jail early")
    lines.append(PHASE + "in-jail early")  # uwsgi_start
    lines += _as_root(inst, first=True)
    if inst.opts.str("logto2") is not None and not inst.is_a_reload:
        lines.append(OPEN_LOGTO2)  # uwsgi_start's logto(logto2): the file from here on
    lines += _write_pidfile(inst, "pidfile2")
    if not inst.has_master:
        lines.append("*** WARNING: you are running uWSGI without its master process manager ***")
    if m["nproc"]:
        lines.append(f"your processes number limit is {m['nproc']}")
    lines.append(f"your memory page size is {m['page']} bytes")
    if inst.harakiri > 0 and not inst.opts.int("post-buffering", 0):
        lines.append(" *** WARNING: you have enabled harakiri without post buffering. Slow "
                     "upload could be rejected on post-unbuffered webservers *** ")
    lines += _max_fd(inst, m)
    lines += mime_lines
    lines.append("lock engine: pthread robust mutexes")
    if inst.opts.flag("thunder-lock"):
        lines.append("thunder lock: enabled")
    else:
        lines.append("thunder lock: disabled (you can enable it with --thunder-lock)")
    return lines


def before_app(inst: Instance) -> list[str]:
    o = inst.opts
    lines = []
    how = "inherited" if inst.is_a_reload else "bound to"
    fds = socket_fds(o)
    for n, address in enumerate(sockets(inst)):
        kind = "UNIX" if "/" in address or ":" not in address else "TCP"
        if inst.is_a_reload:
            kind = "UNIX" if kind == "UNIX" else "INET"
        fd = fds[n] if n < len(fds) else 3 + n
        lines.append(f"uwsgi socket {n} {how} {kind} address {address} fd {fd}")
    lines += _as_root(inst)
    lines += [f"Python version: {machine(inst)['python']}", "--- Python VM already initialized ---",
              "Python main interpreter initialized at 0x0"]
    lines += _as_root(inst)
    # with or without "enable-threads": pyuwsgi 2.0.30 always initialises Python threads
    lines.append("python threads support enabled")
    if sockets(inst) and not inst.command_mode:  # command mode drops the sockets
        lines.append(f"your server socket listen backlog is limited to {inst.listen} "
                     "connections")
    lines.append("your mercy for graceful operations on workers is "
                 f"{o.int('worker-reload-mercy', 60)} seconds")
    cron = inst.subsystems.get("cron")
    for spec in cron.command_crons if cron is not None else ():
        legion = f' for legion "{spec.legion}"' if spec.legion and "legion" in \
            inst.subsystems else ""
        lines.append(f'[uwsgi-cron] command "{spec.command}" registered as cron task{legion}')
    threads = max(1, o.int("threads", 0))
    cores = inst.cores
    vec = 4 + 1 + 4 * o.int("max-vars", 64)
    per_core = _CORE + 8 * 64 + inst.buffer_size + 16 * vec
    total = (_APPS_TABLE + cores * per_core) * (inst.numproc + (1 if inst.has_master else 0))
    lines.append(f"mapped {total} bytes ({total // 1024} KB) for {cores * inst.numproc} cores")
    mules = inst.subsystems.get("mules")
    lines += mules.setup_lines if mules is not None else []
    multi = inst.numproc > 1
    if inst.command_mode:
        mode = "command"
    elif inst.numproc == 0:
        mode = "no-workers"
    elif threads > 1:
        mode = "preforking+threaded" if multi else "threaded"
    elif o.int("async", 0) > 0:
        mode = "preforking+async" if multi else "async"
    else:
        mode = "preforking" if multi else "single process"
    lines.append(f"*** Operational MODE: {mode} ***")
    return lines


def after_app(inst: Instance) -> list[str]:
    lines = _as_root(inst, early=False)
    if not inst.opts.flag("single-interpreter") and inst.numproc > 0:
        lines.append("*** uWSGI is running in multiple interpreter mode ***")
    if inst.has_master and inst.master is not None:
        again = "gracefully (RE)spawned" if inst.is_a_reload else "spawned"
        lines.append(f"{again} uWSGI master process (pid: {inst.master.pid})")
    return lines
