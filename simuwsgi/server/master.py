"""The master: one simulated uWSGI instance, its startup, lifecycle and respawns.

What it models (``core/uwsgi.c`` ``uwsgi_start``, ``core/master.c``,
``core/master_utils.c``; ``shared/spec/semantics.md`` §1, §2, §12):

* startup order: shared state is created, the ``uwsgi`` module is built, the app is
  imported in the master (unless ``--lazy-apps``), spoolers are forked, ``ready()``
  becomes True, workers 1..N are forked, then the master loop forks the mules; every
  forked process runs ``uwsgi.post_fork_hook`` first (lazy-apps workers run it before
  importing the app, so the app's hooks never run there). Startup takes no virtual
  time.
* death and respawn: the master notices a death at its next loop iteration (one
  ``waitpid`` per iteration; the ``death`` record and uWSGI's log line are from then)
  and respawns the process there, in the same slot (same id, new pid,
  ``respawn_count`` + 1, counters and queued signals kept); respawning more than
  ``numproc`` workers within a second makes the master sleep ``--forkbomb-delay``
  (2 s), as uWSGI does.
* the master's checks run every ``--check-interval`` seconds (1), in phase with the
  start (``next_tick``): deaths, harakiri, touches, mercy, cheaper, idle.
* harakiri (``--harakiri``, ``set_user_harakiri``): the worker is SIGKILLed when its
  deadline passes; the request in flight gets no reply. With
  ``--harakiri-graceful-timeout`` the first attempt sends ``--harakiri-graceful-signal``
  (SIGTERM) and the next one, that much later, SIGKILL. ``--harakiri-verbose`` adds
  the worker's /proc syscall and wchan lines (``proc_lines``).
* reload mercy: a worker or mule cursed by a reload and still alive
  ``--worker-reload-mercy``/``--mule-reload-mercy`` seconds later is killed ("NO
  MERCY"); ``--touch-spoolers-reload`` kills the spoolers at the next check.
* ``--max-requests`` (``--min-worker-lifetime``, default 10 s in 2.0): the worker exits
  after the request that reaches the limit, if it has lived long enough.
* ``uwsgi.reload()``: spoolers killed, workers finish their request and exit, mules
  exit, then the master re-executes itself: same master pid, app re-imported with
  ``is_a_reload`` True and a new ``started_on``, all shared memory empty, everything
  respawned. ``uwsgi.stop()``: the instance shuts down (a brutal reload with
  ``--die-on-term``).

Not modelled: the exact sub-second phase of the master's checks (harakiri fires
exactly at its check), the emperor. Cheaper algorithms: ``cheaper``; the stats server:
``stats``.
"""

from __future__ import annotations

import io
import math
import signal
import os
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from . import apps as _apps
from . import banner as _banner
from .._errors import AppLoadError, SimulationError
from .._core._spool import Spool
from ._uwsgi_options import MASTER_OPTIONS, SSL_MASTER_OPTIONS
from .._core.clock import VirtualClock
from .config import LOG_MASTER_OPTIONS, REQ_LOG_MASTER_OPTIONS, Options, socket_fds
from .interface import (AFTER_REAP, BEFORE_REAP, CONTROL, HOOK_ERROR, HOOK_EXTRA,
                        HOOK_FILTER, HOOK_RESPONSE, ProcessExit)
from .containment import (SimulationInterrupted, StallInterrupt, c_exit, deliver,
                          fork_hook_mode, has_exit_hooks, is_simulator_frame, run_atexit,
                          run_fork_hooks, stall_error)
from .._core.kernel import Kernel, Killed
from .logsink import LogSink
from .processes import Master, Mule, Spooler, UProcess, Worker, WorkerThread
from .._core.trace import Trace


__all__ = ["CONTROL", "Instance", "ProcessExit", "proc_lines"]

#: the options flagged UWSGI_OPT_LOG_MASTER or UWSGI_OPT_REQ_LOG_MASTER
_LOG_MASTER_OPTIONS = frozenset(LOG_MASTER_OPTIONS + REQ_LOG_MASTER_OPTIONS)

#: uWSGI's identity, as the pyuwsgi 2.0.30 wheel reports it.
VERSION = b"2.0.30"
VERSION_INFO = (2, 0, 30, 0, b"")






class Instance:
    """One uWSGI instance (a node): master, workers, mules, spoolers and shared state."""

    #: slots for the fields the C master and signal paths read at every firing (see
    #: subsystems/_cfields.h)
    __slots__ = ("__dict__", "__weakref__", "harakiri", "log_lines", "log_sink", "master",
                 "stopped", "subsystems")

    #: What loads the app (fork mode: ``fork.RemoteAppLoader``, imports in a child).
    app_loader_class = _apps.AppLoader

    def __init__(self, opts: Options, kernel: Kernel, clock: VirtualClock, *,
                 node: str = "node0", hostname: str = "simuwsgi",
                 vfork: bool = True, pid_base: int = 1000,
                 trace_kinds: Iterable[str] | None = None) -> None:
        self.opts = opts
        self.kernel = kernel
        self.clock = clock
        self.node = node
        self.hostname = hostname
        #: whose facts the startup banner prints: "virtual" (fixed) or "host" (banner.py)
        self.machine = "virtual"
        self.vfork = vfork
        self.trace = Trace(node, trace_kinds)
        #: ``(time, process, line)`` rows; old ones spill to disk (bounded memory).
        self.log_lines = Spool(list)
        sink = LogSink(opts, Path(opts.str("chdir") or opts.base_dir))
        #: the log's prefix and files (``--log-date``, ``--logto``...), None without them
        self.log_sink: LogSink | None = sink if sink.active else None
        self._pid = pid_base
        self._read_options()
        self.master: Master | None = None
        self.workers: dict[int, Worker] = {}
        self.mules: dict[int, Mule] = {}
        self.spoolers: dict[int, Spooler] = {}
        #: Workers parked in their accept loop, in id order (``workers.take_idle_worker``).
        self.idle_workers: list[Worker] = []
        #: Set for good once a worker calls ``uwsgi.accepting(False)``: the dispatcher
        #: then checks every idle worker's flag.
        self.some_refuse = False
        self.listen_queue: deque[Any] = deque()
        self.total_requests = 0
        self.started_on = 0
        self.is_a_reload = False
        #: ``uwsgi_instance_is_reloading``: from a reload's start to the re-exec
        self.reloading = False
        self.ready = False
        self.stopped = False
        self.reloads = 0
        #: a ``chdir:`` hook's directory before the master is a process (``hooks.py``)
        self.hook_cwd: str | None = None
        #: ``uwsgi.status.gracefully_destroying`` (``graceful_shutdown``)
        self.gracefully_destroying = False
        #: the master's signals whose handler a ``unix_signal:`` hook set: the action
        #: (``containment.SIGNAL_TABLE``'s words)
        self.master_signals: dict[int, str] = {}
        #: when the master began killing everything (a reload or a stop), whole seconds
        self._cursed_at = 0
        self.respawn_times: deque[float] = deque()
        #: Dead processes the master has not reaped yet (its next iteration will), and why
        #: they died.
        self._unreaped: dict[UProcess, str] = {}
        self.on_stop: list[Callable[[], None]] = []
        self.facade: Any = None
        self.app = _apps.AppLoader(self)
        if _apps._c is not None:  # call_python in C (see server/_cvfork.c)
            self.call_python = _apps._c.caller(  # type: ignore[method-assign]
                (self, CONTROL, self._call_failed, self.call_python))
        self.app_loaded = False
        self.subsystems: dict[str, Any] = {}
        #: fork mode: the ``fork.ForkRuntime`` that runs user code in OS children.
        self.forks: Any = None
        #: The threads app code starts (``appthreads.AppThreads``), once a simulation is open.
        self.app_threads: Any = None
        #: The ``faults.Injector`` of an applied fault plan (disk, cache, signal windows).
        self.faults: Any = None
        #: Set when the whole instance exited (the master died while importing the app).
        self.exit_status: int | None = None
        self.exit_reason = ""
        #: Real seconds app code may run without yielding (``containment.Watchdog``).
        self.stall_timeout: float | None = None

    # -- options -----------------------------------------------------------------------
    def _read_options(self) -> None:
        o = self.opts
        # Options flagged UWSGI_OPT_MASTER in uWSGI's tables turn the master on, and so
        # do those that make it the log's writer (core/config.c).
        self.has_master = o.flag("master") or any(
            name in MASTER_OPTIONS or name in SSL_MASTER_OPTIONS
            or name in _LOG_MASTER_OPTIONS for name, _value in o.items)
        #: ``--pyrun``: uWSGI's command mode, one worker that runs the script and ends
        #: the instance (``uwsgi.status.brutally_destroying``)
        self.command_mode = o.last("pyrun", "python", "py") is not None
        # 0 is uWSGI's no-workers mode (negative values are refused by config)
        self.numproc = o.int("processes", 1)
        if o.strings("fastrouter") and not o.strings("http", *_banner._SOCKET_OPTIONS):
            self.numproc = 0  # gateways only: uWSGI runs no worker without a socket
        if self.command_mode:
            self.numproc = 1
        self.lazy_apps = o.flag("lazy-apps") or o.flag("lazy")
        #: the internal routing (``--route`` & co., made at start), None without a route;
        #: the error, response and final tables (``--error-route`` & co.)
        self.routes: Any = None
        self.error_routes: Any = None
        self.response_routes: Any = None
        self.final_routes: Any = None
        #: ``--wsgi-env-behaviour holy``: a new environ per request (else "cheat": one
        #: per core and app, reused; checked at start)
        self.wsgi_env_holy = o.str("wsgi-env-behaviour") == "holy"
        #: how the Python plugin answers a failed write (``uwsgi_py_check_write_errors``):
        #: (``--write-errors-tolerance``, ``--disable-write-exception``,
        #: ``--write-errors-exception-only``); None for uWSGI's default (0, off, off)
        policy = (o.int("write-errors-tolerance", 0), o.flag("disable-write-exception"),
                  o.flag("write-errors-exception-only"))
        self.write_policy = None if policy == (0, False, False) else policy
        #: ``--rem-header``/``--del-header``: header names no response gets (lower case)
        self.removed_headers = frozenset(name.lower() for name in o.strings("rem-header"))
        #: whether a response's headers are looked up in those (and, once the routes are
        #: made at start, in a route's delheader)
        self.header_filter = bool(self.removed_headers)
        #: ``--add-header``: lines added to every response's headers (as latin-1 text
        #: holding the option's bytes)
        self.additional_headers = tuple(
            line.encode("utf-8", "surrogateescape").decode("latin-1")
            for line in o.strings("add-header"))
        #: what the response writer asks (``interface.HOOK_*``; the routes add theirs)
        self.writer_hooks = self._writer_hooks([])
        self.harakiri = o.int("harakiri", 0)
        self.max_requests = o.int("max-requests", 0)
        self.max_requests_delta = o.int("max-requests-delta", 0)
        mb = 1024 * 1024  # uwsgi_opt_set_megabytes
        self.reload_on_rss = o.int("reload-on-rss", 0) * mb
        self.reload_on_as = o.int("reload-on-as", 0) * mb
        self.evil_reload_on_rss = o.int("evil-reload-on-rss", 0) * mb
        self.evil_reload_on_as = o.int("evil-reload-on-as", 0) * mb
        self.mem_collector_freq = o.int("mem-collector-freq", 0) or 3
        #: --memory-report: the request line's memory prefix
        self.memory_report = o.flag("memory-report")
        self.max_worker_lifetime = o.int("max-worker-lifetime", 0)
        self.max_worker_lifetime_delta = o.int("max-worker-lifetime-delta", 0)
        self.min_worker_lifetime = o.int("min-worker-lifetime", 10)
        self.buffer_size = o.int("buffer-size", 4096)
        self.max_vars = o.int("max-vars", 128)
        self.forkbomb_delay = o.int("forkbomb-delay", 2)
        self.die_on_term = o.flag("die-on-term")
        self.exit_on_reload = o.flag("exit-on-reload")
        #: --cheap / --idle: no worker runs until a connection arrives
        self.is_cheap = o.flag("cheap") and self.has_master
        self.idle = o.int("idle", 0) if self.has_master else 0
        self.die_on_idle = o.flag("die-on-idle")
        self.worker_reload_mercy = o.int("worker-reload-mercy", 60)
        self.mule_reload_mercy = o.int("mule-reload-mercy", 60)
        self.harakiri_graceful_timeout = o.int("harakiri-graceful-timeout", 0)
        self.harakiri_graceful_signal = o.int("harakiri-graceful-signal", 15)  # SIGTERM
        #: --harakiri-verbose: the worker's /proc syscall and wchan after the first line
        self.harakiri_verbose = o.flag("harakiri-verbose")
        #: --check-interval: the seconds the master waits for events between its checks
        #: (0 means 1, as uWSGI reads it; negative values are refused by config)
        self.check_interval = o.int("check-interval", 0) or 1
        #: --touch-chain-reload: the worker id the chain is at (0: no chain running)
        self.chain_reloading = 0
        self._chain_waited = -1
        self._chain_timer: Any = None
        self.listen = o.int("listen", 100)
        self.cores = max(1, o.int("threads", 0) or o.int("async", 0) or 1)
        #: --threads: the cores of a worker that each run a request (``workers.py``)
        self.threads = max(1, o.int("threads", 0))
        #: --thunder-lock: the workers take turns in accept (``workers.take_idle_worker``)
        self.thunder_lock = o.flag("thunder-lock")

    # -- small services --------------------------------------------------------------
    def next_pid(self) -> int:
        self._pid += 1
        return self._pid

    def pid_peek(self) -> int:
        """The pid the next process will get."""
        return self._pid + 1

    def update_pidfiles(self) -> None:
        """The ``--pidfile``/``--pidfile2`` files hold uWSGI's own pid: the master's (the
        only worker's without a master)."""
        if self.is_a_reload:
            return
        worker = self.workers.get(1)
        pid = self.master.pid if self.has_master or worker is None else worker.pid
        for option in ("pidfile", "pidfile2"):
            name = self.opts.str(option)
            if name is not None:
                try:
                    self.opts.path(name).write_text(f"{pid}\n")
                except OSError:
                    pass  # (written at start: removed meanwhile by someone else)

    def _exit_master(self) -> None:
        """What the master's ``exit()`` runs last: its ``atexit`` hooks and commands
        (``uwsgi_exec_atexit``), then ``--vacuum``."""
        self._exec_atexit()
        self._vacuum()

    def _exec_atexit(self) -> None:
        """``uwsgi_exec_atexit``: the ``--hook-as-user-atexit`` hooks (not fatal), then
        the ``--exec-as-user-atexit`` commands (a failed one is only logged)."""
        from .commands import run_host_command
        from .hooks import run_hooks

        run_hooks(self, "hook-as-user-atexit", self.master, fatal=False)
        uid, gid = _banner.identity(self)
        for command in self.opts.strings("exec-as-user-atexit"):
            self.log(f'running "{command}" (as uid: {uid} gid: {gid}) ...', self.master)
            self.record("exec", self.master, phase="atexit", command=command)
            if getattr(self, "cron_commands", False):
                status = run_host_command(self, command, self.master)
                if status:
                    self.log(f'command "{command}" exited with non-zero code: {status}',
                             self.master)

    def _vacuum(self) -> None:
        """``--vacuum`` as the master exits: the pid files it wrote are removed."""
        if not self.opts.flag("vacuum"):
            return
        for option, what in (("pidfile", "pidfile"), ("pidfile2", "pidfile2")):
            name = self.opts.str(option)
            if name is None:
                continue
            try:
                self.opts.path(name).unlink()
            except OSError as exc:
                self.log(f"unlink(): {exc.strerror} [core/uwsgi.c line "
                         f"{1610 if option == 'pidfile' else 1618}]", self.master)
            else:
                self.log(f"VACUUM: {what} removed.", self.master)

    @property
    def now(self) -> float:
        return self.kernel.now

    def wall(self) -> float:
        return self.clock.time()

    def current(self) -> UProcess | None:
        return self.kernel.current  # type: ignore[return-value]

    def record(self, kind: str, proc: UProcess | None = None, **fields: Any) -> None:
        if proc is None:
            proc = self.kernel.current  # type: ignore[assignment]
        self.trace.add(self.kernel.now, proc.name if proc is not None else "master", kind, fields)

    def log(self, line: str, proc: UProcess | None = None) -> None:
        """A line uWSGI writes with ``uwsgi_log`` (``--log-date`` prefixes it)."""
        sink = self.log_sink
        if sink is not None and sink.dated:
            line = sink.stamp(self.wall()) + line
        self.log_raw(line, proc)

    def log_raw(self, line: str, proc: UProcess | None = None, request: bool = False) -> None:
        """A line written to the log as it is: a request line (``request``), Python's
        output on fd 2."""
        if proc is None:
            proc = self.kernel.current  # type: ignore[assignment]
        sink = self.log_sink
        if sink is not None and not sink.write(line, request, self.clock.time()):
            return
        self.log_lines.append((self.kernel.now, proc.name if proc else "master", line))

    def log_message(self, data: bytes, lines: list[str], proc: UProcess | None = None) -> None:
        """One ``write()`` of the app's on fd 1-2 when the master writes the log: ``data``
        is the message its pipe carries; ``lines``, the lines it completes, are the
        log's."""
        if proc is None:
            proc = self.kernel.current  # type: ignore[assignment]
        sink = self.log_sink
        assert sink is not None and sink.master is not None
        sink.master.message(data, self.clock.time(), False)
        name = proc.name if proc else "master"
        for line in lines:
            self.log_lines.append((self.kernel.now, name, line))

    def log_verbose(self, line: str, proc: UProcess | None = None) -> None:
        """``uwsgi_log_verbose``: the line after the current date."""
        sink = self.log_sink
        stamp = (sink.stamp(self.wall()) if sink is not None else
                 time.asctime(time.localtime(int(self.wall()))) + " - ")
        self.log_raw(stamp + line, proc)

    def _writer_hooks(self, tables: list[Any]) -> int:
        """``writer_hooks`` for the options and the routing ``tables`` (made at start);
        sets ``header_filter``."""
        self.header_filter = bool(self.removed_headers) or any(
            t.removes_headers for t in tables)
        return ((HOOK_FILTER if self.header_filter else 0)
                | (HOOK_EXTRA if self.additional_headers or any(t.adds_headers for t in tables)
                   else 0)
                | (HOOK_ERROR if self.error_routes is not None else 0)
                | (HOOK_RESPONSE if self.response_routes is not None else 0))

    def log_dated(self, line: str, proc: UProcess | None = None) -> None:
        """A ``uwsgi_log_verbose`` line already dated the default way (``ctime`` and
        `` - ``, a fast path's own): as it is, not dated again by ``--log-date``; in the
        ``--log-date FORMAT`` date instead when one is set."""
        sink = self.log_sink
        if sink is not None and sink.strftime is not None:
            self.log_verbose(line[27:], proc)
        else:
            self.log_raw(line, proc)

    def _log_lines(self, lines: list[str], proc: UProcess | None = None) -> None:
        """The banner's ``lines``, as the master logs them, acting on its markers (the
        phases run in ``proc``: None before the master is a process)."""
        for line in lines:
            if line == _banner.OPEN_LOGTO2:
                if self.log_sink is not None:
                    self.log_sink.open_logto2()
                continue
            if line.startswith(_banner.PHASE):
                name = line[len(_banner.PHASE):]
                phase = name.removesuffix(" early")
                self.run_phase(phase, proc, early=True if phase != name else None)
                continue
            if line.startswith(_banner.TERMINAL):  # not through the log's sink
                line = line[len(_banner.TERMINAL):]
                sink = self.log_sink
                if sink is not None and sink.dated:
                    line = sink.stamp(self.wall()) + line
                if sink is not None:
                    # before the exec of a reload uWSGI gives fds 1-2 back their file:
                    # the --logto file then, the terminal at the first start
                    sink.write_original((line + "\n").encode("utf-8", "surrogateescape"),
                                        self.is_a_reload)
                self.log_lines.append((self.kernel.now, "master", line))
                continue
            self.log(line, self.master)

    def run_phase(self, phase: str, proc: UProcess | None, *,
                  early: bool | None = None) -> None:
        """A start phase's ``--hook-*`` hooks, then its ``--exec-*`` commands (even
        after a fatal hook: uWSGI goes on once it has begun destroying the instance)."""
        from .commands import run_phase
        from .hooks import PHASE_OPTIONS, run_hooks

        hooks, commands = PHASE_OPTIONS[phase]
        run_hooks(self, hooks, proc, early=early)
        if commands is None:
            return
        shown = None
        if phase == "as user":  # uWSGI's line names the identity
            uid, gid = _banner.identity(self)
            shown = f"(as uid: {uid} gid: {gid}) ..."
        run_phase(self, commands, phase, proc, shown=shown)

    def log_exception(self) -> None:
        """``PyErr_Print()``: the traceback of the exception being handled, logged. The
        simulator's own frames are left out (uWSGI's are C, not in a traceback) and the
        ``--wsgi-file`` shows as given, so the traceback starts at the app's frame."""
        exc = sys.exc_info()[1]
        if exc is not None:
            for line in self.exception_lines(exc):
                self.log_raw(line)

    def shown_filename(self, filename: str) -> str:
        """A file's name in uWSGI's tracebacks: the ``--wsgi-file`` as given."""
        wsgi_file = self.opts.str("wsgi-file")
        if wsgi_file and filename == str(self.app.base_dir / wsgi_file):
            return wsgi_file
        return filename

    def exception_lines(self, exc: BaseException) -> list[str]:
        """The lines ``PyErr_Print`` writes for ``exc`` (see :meth:`log_exception`)."""
        top = traceback.TracebackException.from_exception(exc)
        te: Any = top
        seen: set[int] = set()
        while te is not None and id(te) not in seen:  # the chain of causes too
            seen.add(id(te))
            frames = [f for f in te.stack if not is_simulator_frame(f.filename)]
            while frames and frames[0].filename.startswith("<frozen importlib"):
                frames.pop(0)  # the simulator's loader importing the app (uWSGI's is C)
            for f in frames:
                f.filename = self.shown_filename(f.filename)
            te.stack = traceback.StackSummary.from_list(frames)
            te = te.__cause__ or te.__context__
        return "".join(top.format()).rstrip("\n").splitlines()

    def errors_stream(self) -> Any:
        """The instance's ``wsgi.errors`` (one per instance, like uWSGI's fd 2)."""
        stream = getattr(self, "_errors_stream", None)
        if stream is None:
            from .workers import errors_stream

            stream = self._errors_stream = errors_stream(self)
        return stream

    def stdin_stream(self) -> Any:
        """The processes' ``sys.stdin``: uWSGI remaps fd 0 to /dev/null
        (``core/socket.c``), an empty stream here; None with ``--honour-stdin`` (the
        test's own stays)."""
        stream = getattr(self, "_stdin_stream", None)
        if stream is None and not self.opts.flag("honour-stdin"):
            stream = self._stdin_stream = io.TextIOWrapper(io.BytesIO(), encoding="UTF-8")
        return stream

    @property
    def master_loop(self) -> Any:
        """The master's event loop (``timers.MasterLoop``), or None without timers."""
        timers = self.subsystems.get("timers")
        return timers.loop if timers is not None else None

    # -- startup -----------------------------------------------------------------------
    def start(self) -> None:
        """Boot the instance at the current virtual instant, as ``uwsgi_start`` does."""
        from . import subsystems as _subsystems
        from .startup import check_after_banner, check_start

        self.started_on = int(self.wall())
        self.record("instance.start", None, reload=self.is_a_reload,
                    options=[list(item) for item in self.opts.items])
        check_start(self)
        from .facade import build_module

        if self.log_sink is not None:
            for spec in self.log_sink.ignored:
                self.log(f'[simuwsgi] logger "{spec}" is not simulated (only file: loggers '
                         "are): its lines stay in the simulated log")
        from .commands import run_phase
        from .routing import Router

        self.routes = Router.from_options(self.opts)
        self.error_routes = Router.from_options(self.opts, "error")
        self.response_routes = Router.from_options(self.opts, "response")
        self.final_routes = Router.from_options(self.opts, "final")
        self.writer_hooks = self._writer_hooks(
            [t for t in (self.routes, self.error_routes, self.response_routes,
                         self.final_routes) if t is not None])
        self._set_umask()
        self._asap()
        self._log_lines(_banner.before_subsystems(self))
        check_after_banner(self)
        self.subsystems = _subsystems.create_all(self)
        self.facade = build_module(self)
        sys.modules["uwsgi"] = self.facade
        self.master = self._new_master()
        if self.has_master:  # without --master there is no master process in uWSGI
            self.record("spawn", self.master, pid=self.master.pid)
        self.booted = False
        self.kernel.start(self.master)

    def _asap(self) -> None:
        """The ``asap`` hooks, then the ``--exec-asap`` commands (a binary reload runs
        them again, from the directory uWSGI started in)."""
        self.hook_cwd = None
        self.master_signals = {}
        self.run_phase("asap", None)

    def _set_umask(self) -> None:
        """``--umask`` (``uwsgi_opt_set_umask``, as the option is read; ``uwsgi_mode_t``'s
        arithmetic, an invalid value logged and taken as 0), and ``--daemonize``'s
        ``umask(0)`` without it. The test process's umask, put back at close."""
        value = self.opts.str("umask")
        if value is not None:
            mask = 0
            if len(value) < 3:
                self.log(f"invalid umask: {value}")
            else:
                digits = value if len(value) == 3 else value[1:4]
                for ch in digits:
                    mask = ((mask << 3) + (ord(ch) - 48)) & 0xFFFFFFFF
            os.umask(mask & 0o777)
        elif self.opts.str("daemonize") is not None:
            os.umask(0)

    def boot(self) -> None:
        """``start()`` and run until the master has forked everything (the app's
        import may take virtual time, e.g. if it sleeps)."""
        self.start()
        kernel = self.kernel
        booting = kernel.run_while(lambda: not self.booted and self.exit_status is None)
        if self.exit_status is not None:
            raise AppLoadError(
                f"the app called {self.exit_reason} while it was imported: uWSGI exits with "
                f"status {self.exit_status}",
                log=[line for _t, _p, line in self.log_lines], exit_status=self.exit_status)
        if not booting:
            raise SimulationError(
                f"the master blocked forever while importing the app, at virtual time "
                f"{kernel.now:.6f} ({self.master.wait_reason or 'waiting'})")
        kernel.run_until(kernel.now)

    def _master_main(self) -> None:
        """The master process: boot; an exit while importing ends the whole instance."""
        master = self.master
        try:
            self._master_boot()
        except ProcessExit as exc:
            if exc.reason == "SystemExit":
                run_atexit(self, master)
            self.exit_status = exc.code
            self.exit_reason = exc.reason if exc.reason != "SystemExit" else \
                f"sys.exit({exc.code})"
        except StallInterrupt as exc:
            raise stall_error(self, master, exc, self.stall_timeout) from None

    def _master_boot(self) -> None:
        """Runs in the master process: import, then fork everything."""
        self._log_lines(_banner.before_app(self), self.master)
        for sub in list(self.subsystems.values()):
            hook = getattr(sub, "master_boot", None)  # what blocks the master at start
            if hook is not None:
                hook()
        self.app.prepare()
        self.app.import_list(self.app.shared_imports)
        if not self.lazy_apps:
            self.app_loaded = self.app.load()
            self._check_need_app()
        if not self.has_master and self.numproc == 0:
            # uwsgi_start: no master and no workers: exit(0) once the app is loaded
            self.booted = True
            self.shutdown(signalled=False)
            return
        self._log_lines(_banner.after_app(self), self.master)
        self.master.context = self.app.master_context()
        self.kernel.adopt_context(self.master.context)
        for sub in self.subsystems.values():
            hook = getattr(sub, "after_import", None)
            if hook is not None:
                hook()
        for ident in self._spooler_ids():
            self.spawn_spooler(ident)
        self.ready = True
        cheaper = self.subsystems.get("cheaper")
        for wid in range(1, self.numproc + 1):
            if not self.is_cheap and (cheaper is None or not cheaper.cheaped_at_start(wid)):
                self.spawn_worker(wid)
        # uwsgi_master_loop: its threads (the cache sweeper...) start, then the mules fork
        for sub in self.subsystems.values():
            hook = getattr(sub, "master_loop_started", None)
            if hook is not None:
                hook()
        if self.opts.str("stats"):
            from .stats import enabled_line

            self.log(enabled_line(self), self.master)
        for ident in self._mule_ids():
            self.spawn_mule(ident)
        if self.is_cheap:
            self.log("cheap mode enabled: waiting for socket connection...", self.master)
        from .hooks import run_hooks

        run_hooks(self, "hook-master-start", self.master)  # as the master loop starts
        if self.idle > 0:
            self._idle_state = [0, 0]  # last_request_timecheck, last_request_count
            self.kernel.at(self.next_tick(self.kernel.now), self._idle_check,
                           priority=AFTER_REAP)
        self.update_pidfiles()
        self.record("instance.ready", self.master, workers=self.numproc,
                    mules=len(self._mule_ids()), spoolers=len(self._spooler_ids()))
        self.booted = True
        # The master lives on as the event handlers of the hub (its loop).
        self.kernel.call_soon(self._master_alive)

    def _master_alive(self) -> None:
        if self.master is not None:
            self.master.alive = True

    def _check_need_app(self) -> None:
        if not self.app_loaded and self.opts.flag("need-app") and self.numproc > 0:
            raise AppLoadError(
                "the app did not load and --need-app is set: uWSGI exits with status 22",
                log=[line for _t, _p, line in self.log_lines], exit_status=22)

    def _spooler_ids(self) -> list[int]:
        sub = self.subsystems.get("spooler")
        return sub.process_ids() if sub is not None else []

    def _mule_ids(self) -> list[int]:
        sub = self.subsystems.get("mules")
        return sub.process_ids() if sub is not None else []

    # -- spawning ------------------------------------------------------------------------
    def _fork(self, proc: UProcess) -> None:
        self._log_spawn(proc)  # the master logs it as it forks
        parent = self.master
        mode = fork_hook_mode(self.opts, proc.kind) if parent is not None else None
        if mode == "uwsgi":  # PyOS_BeforeFork, in the master
            run_fork_hooks(self, parent.fork_hooks, "before")
        proc.context = self.app.fork(
            None if parent is None else {id(parent.thread_token): proc.thread_token})
        if self.master is not None and proc is not self.master:
            proc.cwd = self.master.cwd  # --chdir, inherited
            # the master's memory: its hooks and atexit handlers too (as the process's
            # copies of them)
            image = proc.context

            def own(obj: Any) -> Any:
                return obj if image is None else image.resolve(obj)

            proc.hooks = {name: own(hook) for name, hook in self.master.hooks.items()}
            proc.atexit = [(own(func), args, kw) for func, args, kw in self.master.atexit]
            if hasattr(self.master, "wakeup_fd"):  # signal.set_wakeup_fd's descriptor
                proc.wakeup_fd = self.master.wakeup_fd  # type: ignore[attr-defined]
            if getattr(self.master, "fault_handler", None) is not None:  # faulthandler's
                proc.fault_handler = self.master.fault_handler.inherited()  # type: ignore[attr-defined]
            proc.fork_hooks = [tuple(own(hook) for hook in hooks)  # type: ignore[misc]
                               for hooks in self.master.fork_hooks]
            proc.after_fork = mode
        if mode == "uwsgi":  # PyOS_AfterFork_Parent
            run_fork_hooks(self, parent.fork_hooks, "after_in_parent")
        if self.forks is not None:
            self.forks.fork(proc)
        proc.last_spawn = int(self.wall())
        # Forks are events: the master's code goes on, the child runs from the hub.
        self.kernel.call_soon(self._start_child, proc)

    def _start_child(self, proc: UProcess) -> None:
        if self.stopped or not proc.alive:
            return
        self.record("spawn", proc, pid=proc.pid, respawn=proc.respawn_count)
        if isinstance(proc, Worker):
            self._start_mem_collector(proc)
            self._watch_lifetime(proc)
        self.kernel.start(proc)

    def _log_spawn(self, proc: UProcess) -> None:
        if isinstance(proc, Worker) and proc.respawn_count:
            self.log(f"Respawned uWSGI worker {proc.id} (new pid: {proc.pid})", self.master)
        elif isinstance(proc, Spooler):
            self.log(f"spawned the uWSGI spooler on dir {proc.directory} with pid {proc.pid}",
                     self.master)
        else:
            self.log(f"{proc.spawn_verb} uWSGI {proc.kind} {proc.id} (pid: {proc.pid}"
                     f"{f', cores: {self.cores}' if proc.kind == 'worker' else ''})", self.master)

    def _after_fork(self, proc: UProcess) -> None:
        """The fork hooks a new process runs first (``containment.fork_hook_mode``)."""
        if self.forks is not None:  # they live in its OS child
            self.forks.after_fork(proc, proc.after_fork)
        elif proc.after_fork == "uwsgi":
            proc.forking = True  # PyOS_AfterFork_Child: before uWSGI sets its worker id
            try:
                run_fork_hooks(self, proc.fork_hooks, "after_in_child")
            finally:
                proc.forking = False
        else:  # --py-call-osafterfork: in the post-fork, before uwsgi.post_fork_hook
            run_fork_hooks(self, proc.fork_hooks, "after_in_child")

    def run_post_fork(self, proc: UProcess) -> None:
        """``uwsgi.post_fork_hook()`` in a newly forked process; errors are printed."""
        hook = getattr(self.facade, "post_fork_hook", None)
        if hook is None:
            return
        self.record("postfork", proc)
        self.call_python(hook)

    def call_python(self, func: Callable[..., Any], *args: Any) -> tuple[bool, Any]:
        """``python_call`` with no request: exceptions are printed; SystemExit ends
        the process. Returns (ok, result). ``func`` may be a master object (a handler
        registered at import): the running process calls its own copy."""
        try:
            return True, self.app.resolve(func)(*args)
        except CONTROL:
            raise
        except BaseException as exc:  # noqa: BLE001 - PyErr_Print
            return self._call_failed(exc)

    def _call_failed(self, exc: BaseException) -> tuple[bool, Any]:
        """How ``call_python`` ends when the call raised ``exc`` (the exception being
        handled): SystemExit ends the process, anything else is printed."""
        if isinstance(exc, SystemExit):
            raise ProcessExit.from_system_exit(exc) from None
        self.log_exception()
        return False, None

    def spawn_worker(self, wid: int, previous: Worker | None = None) -> Worker:
        holder: list[Worker] = []
        worker = Worker(self, wid, lambda: self._process_main(holder[0]), previous)
        holder.append(worker)
        self.workers[wid] = worker
        self._fork(worker)
        return worker

    def spawn_mule(self, ident: int, previous: Mule | None = None) -> Mule:
        sub = self.subsystems["mules"]
        holder: list[Mule] = []
        mule = Mule(self, ident, lambda: self._process_main(holder[0]),
                    script=sub.script_for(ident), previous=previous)
        holder.append(mule)
        sub.configure(mule)
        self.mules[ident] = mule
        self._fork(mule)
        return mule

    def spawn_spooler(self, ident: int, previous: Spooler | None = None) -> Spooler:
        sub = self.subsystems["spooler"]
        holder: list[Spooler] = []
        spooler = Spooler(self, ident, lambda: self._process_main(holder[0]),
                          directory=sub.directory_for(ident), previous=previous)
        holder.append(spooler)
        self.spoolers[ident] = spooler
        self._fork(spooler)
        return spooler

    def _process_main(self, proc: UProcess) -> None:
        """The body of every forked process."""
        self.run_process(proc, self._process_body)

    def _process_body(self, proc: UProcess) -> None:
        if proc.after_fork == "uwsgi":  # at the fork itself (PyOS_AfterFork_Child)
            self._after_fork(proc)
        offload = self.opts.int("offload-threads", 0)
        if isinstance(proc, Worker) and offload > 0:  # uwsgi_worker_run (core/uwsgi.c)
            self.log(f"spawned {offload} offload threads for uWSGI worker {proc.id}", proc)
        if proc.after_fork is not None and proc.after_fork != "uwsgi":  # in the post-fork
            self._after_fork(proc)
        if isinstance(proc, Mule) and self.opts.flag("py-call-uwsgi-fork-hooks"):
            # 2.0.30's post-fork releases a GIL the mule never took (observed: every
            # mule dies so as it starts, and again after each respawn)
            from .wire import segfault

            segfault(self)
        self.run_post_fork(proc)
        if isinstance(proc, Worker):
            from .hooks import run_hooks

            run_hooks(self, "hook-post-fork", proc)  # after the plugins' post_fork
            from .pyreloader import start as start_reloader
            from .startup import chdir2
            from .workers import worker_loop

            start_reloader(self, proc)

            chdir2(self, proc)
            worker_loop(self, proc)
        elif isinstance(proc, Mule):
            self.subsystems["mules"].main(proc)
        elif isinstance(proc, Spooler):
            self.subsystems["spooler"].main(proc)

    def run_thread(self, thread: WorkerThread) -> None:
        """The body of a worker's thread (core 1..N-1): its core's loop."""
        from .workers import core_loop

        def body(_thread: Any) -> None:
            if self.forks is None:  # uwsgi_python_init_thread names the core's Python
                threading.current_thread()  # thread (uWSGIWorker<wid>Core<N>): it exists
            core_loop(self, thread)

        self.run_process(thread, body)

    def run_process(self, proc: UProcess, body: Callable[[UProcess], None]) -> None:
        """Run ``body(proc)`` and turn the process's exits into deaths.

        ``atexit`` handlers run on an exit, unless a worker is in a request and the exit
        is a C ``exit()`` (``uwsgi_python_atexit`` skips them when busy; ``sys.exit``
        runs them through ``Py_Exit`` anyway). A thread (a core, one the app started) that
        returns leaves the process to its other threads."""
        try:
            body(proc)
        except ProcessExit as exc:
            if exc.reason == "SystemExit" or not proc.busy:
                run_atexit(self, proc)
            proc.exit_code = exc.code
            self.kernel.call_soon(self.process_died, proc, exc.reason)
        except StallInterrupt as exc:
            if proc.harakiri_timer is None:
                raise stall_error(self, proc, exc, self.stall_timeout) from None
            # A harakiri is armed: the process stays stuck until the master kills it at
            # its deadline, as the real one would.
            self.record("stall", proc, timeout=self.stall_timeout)
            self.kernel.park("stuck: ran without yielding")
        except (Killed, SimulationInterrupted):
            raise
        except Exception as exc:  # a bug in simuwsgi, or in user code uWSGI would not survive
            raise SimulationError(
                f"{proc.name} (pid {proc.pid}) crashed at virtual time "
                f"{self.kernel.now:.6f}: {type(exc).__name__}: {exc}") from exc
        else:
            if proc.main is proc:  # a thread that returns leaves its process running
                run_atexit(self, proc)
                self.kernel.call_soon(self.process_died, proc, "exited")

    # -- death, respawn, harakiri ---------------------------------------------------------
    def kill(self, proc: UProcess, reason: str, signum: int | None = 9) -> None:
        """End ``proc`` now: its code never runs again. ``signum`` is the signal that
        killed it (SIGKILL by default), None for an ``exit()`` (``proc.exit_code``)."""
        proc = proc.main  # a worker's thread: the whole worker
        if not proc.alive:
            return
        proc.killed_by = reason
        proc.exit_signal = signum
        self.kernel.discard(proc)
        self.process_died(proc, reason)

    def process_died(self, proc: UProcess, reason: str) -> None:
        proc = proc.main  # a worker's thread ends the whole worker
        proc.alive = False
        if self.app_threads is not None:  # the threads the app started die with it
            self.app_threads.reap(proc)
        if self.forks is not None:
            self.forks.process_died(proc)
        if isinstance(proc, Worker):
            if proc.idle:
                # No longer in its accept loop: signals routed to it queue for its respawn.
                self.idle_workers.remove(proc)
                proc.idle = False
            from .workers import unwind_idle_cores

            self.kernel.call_soon(unwind_idle_cores, self, proc)
        if proc.harakiri_timer is not None:
            proc.harakiri_timer.cancel()
            proc.harakiri_timer = None
        for request in proc.in_flight():
            if not request.done:
                request.fail(f"connection closed: {proc.name} died ({reason})",
                             self.kernel.now)
        for sub in self.subsystems.values():
            hook = getattr(sub, "process_died", None)
            if hook is not None:
                hook(proc)
        if self.stopped or getattr(proc, "reloading", False):
            self.record("death", proc, pid=proc.pid, reason=reason)  # the master waits on it
            return
        # The master notices the death at its next loop iteration (one waitpid() per
        # iteration): then it logs it and respawns. A mule that exits by itself is seen
        # a whole check interval later.
        when = self.next_tick(self.kernel.now)
        if isinstance(proc, Mule) and reason == "exited":
            when = self.kernel.now + self.check_interval
        self._unreaped[proc] = reason
        self.kernel.at(when, self._reap, proc)

    def _reap_all(self) -> None:
        """A reload or a stop waits for every child: the dead ones are reaped now."""
        for proc, reason in list(self._unreaped.items()):
            del self._unreaped[proc]
            self.record("death", proc, pid=proc.pid, reason=reason)

    def _reap(self, proc: UProcess) -> None:
        """The master's iteration that reaps ``proc``: the death is logged, then the
        process respawned (later if uWSGI's fork-bomb guard makes the master sleep)."""
        reason = self._unreaped.pop(proc, None)
        if reason is None:
            return  # reaped by a reload or a stop in between
        self.record("death", proc, pid=proc.pid, reason=reason)
        if self.stopped or getattr(proc, "reloading", False):
            return
        if isinstance(proc, Worker) and self.command_mode:  # the command ended
            if not self.has_master:  # the worker was uWSGI: its status is uWSGI's
                self.exit_status = proc.exit_code
                self.shutdown(signalled=False)
                return
            self.log(f"worker {proc.id} buried after 0 seconds", self.master)
            self.shutdown(signalled=False, vacuum=False)
            self.log("goodbye to uWSGI.", self.master)
            self._exit_master()
            return
        if isinstance(proc, Worker):
            if reason in ("max-requests", "reload"):  # recycled, or cursed with SIGHUP
                self.log(f"worker {proc.id} killed successfully (pid: {proc.pid})", self.master)
            elif reason != "lifetime" and not self._log_worker_death(proc):
                return  # lifetime: woken with SIGWINCH, respawned silently
            if proc.cheaped:  # stopped by --cheaper: not respawned
                self.log(f"uWSGI worker {proc.id} cheaped.", self.master)
                return
            self._respawn(lambda: self.spawn_worker(proc.id, proc))
            self._chain_respawned(proc.id)
        elif isinstance(proc, Mule):
            if not proc.cursed_at:  # a cursed mule (SIGHUP) is respawned silently
                self.log(f"OOOPS mule {proc.id} (pid: {proc.pid}) crippled...trying respawn...",
                         self.master)
            self.spawn_mule(proc.id, proc)
        elif isinstance(proc, Spooler):
            self.log("OOOPS the spooler is no more...trying respawn...", self.master)
            self._respawn(lambda: self.spawn_spooler(proc.id, proc))

    def _log_worker_death(self, proc: Worker) -> bool:
        """The master's lines for a worker's death, by its exit status (master.c); False
        when the worker is not to be respawned (cheap mode, or a brutal reload)."""
        wid, pid, code, sig = proc.id, proc.pid, proc.exit_code, proc.exit_signal
        log = self.log
        if sig is None and code == 22:
            log(f"OOPS ! failed loading app in worker {wid} (pid {pid}) :( trying again...",
                self.master)
        if sig is None and code == 173:
            log(f"...restoring worker {wid} (pid: {pid})...", self.master)
        elif sig is None and code == 5:
            log(f"... monitored exception detected, respawning worker {wid} (pid: {pid})...",
                self.master)
        elif sig is None and code == 29:
            pass
        elif sig is None and code == 31:
            log(f"!!! inconsistent state reported by worker {wid} (pid: {pid}) !!!", self.master)
            self.kernel.call_soon(self._brutal_reload)
            return False
        elif sig is None and code == 15:
            log(f"worker {wid} asked for cheap mode (pid: {pid})...", self.master)
            log(f"uWSGI worker {wid} cheaped.", self.master)
            proc.cheaped = True
            return False
        elif proc.manage_next_request:
            log(f"DAMN ! worker {wid} (pid: {pid}) died"
                f"{f', killed by signal {sig}' if sig else ''} :( trying respawn ...",
                self.master)
        elif sig:
            log(f"DAMN ! worker {wid} (pid: {pid}) MISTERIOUSLY killed by signal {sig} :( "
                "trying respawn ...", self.master)
        return True

    def terminate(self, proc: UProcess, reason: str) -> None:
        """``end_me`` in ``proc`` (SIGINT/SIGTERM/SIGHUP from the master): it exits,
        running its ``atexit`` handlers unless it is a worker in a request."""
        if not proc.alive:
            return
        if not proc.busy:
            run_atexit(self, proc)
        self.kill(proc, reason, None)

    def _respawn_if_running(self, spawn: Callable[[], Any]) -> None:
        if not self.stopped:
            spawn()

    def _respawn(self, spawn: Callable[[], Any]) -> None:
        """Respawn now, or after ``--forkbomb-delay`` when more processes than
        ``--processes`` were respawned within a second (uWSGI's fork-bomb guard)."""
        now = self.kernel.now
        times = self.respawn_times
        while times and times[0] < now - 1.0:
            times.popleft()
        times.append(now)
        if len(times) > self.numproc and self.forkbomb_delay > 0:
            self.log(f"worker respawning too fast !!! i have to sleep a bit "
                     f"({self.forkbomb_delay} seconds)...", self.master)
            times.clear()
            self.kernel.at(now + float(self.forkbomb_delay), self._respawn_if_running, spawn)
            return
        spawn()

    def _watch_lifetime(self, w: Worker) -> None:
        """``--max-worker-lifetime`` (+ ``(id - 1) * --max-worker-lifetime-delta``): the
        first master iteration at which the worker has lived longer (whole seconds)."""
        if not self.has_master or self.max_worker_lifetime <= 0:
            return
        limit = self.max_worker_lifetime + (w.id - 1) * self.max_worker_lifetime_delta
        due = self.kernel.now + (w.last_spawn + limit + 1 - self.wall())
        self.kernel.at(self.next_tick(due - 1e-6), self._lifetime_reached, w,
                       priority=AFTER_REAP)

    def _lifetime_reached(self, w: Worker) -> None:
        if not w.alive or self.stopped or not w.manage_next_request:
            return
        self.log(f"worker {w.id} lifetime reached, it was running for "
                 f"{int(self.wall()) - w.last_spawn} second(s)", self.master)
        w.manage_next_request = False
        w.stop_reason = "lifetime"
        if not w.busy:  # SIGWINCH wakes it from accept()
            self.kill(w, "lifetime")
        else:
            w.stop_accepting()

    # -- memory (--reload-on-rss/as, --evil-reload-on-rss/as) ------------------------------
    def publish_request_memory(self, w: Worker) -> None:
        """End of a request (``uwsgi_close_request``), before its log line: with
        ``--memory-report`` or a ``--reload-on-*``/``--evil-reload-on-*`` limit the
        worker measures its memory (``sim.set_rss``) and publishes it (the log line, the
        stats server and ``uwsgi.workers()`` show it)."""
        if self.memory_report or (self.reload_on_rss or self.reload_on_as
                                       or self.evil_reload_on_rss or self.evil_reload_on_as):
            self._publish_memory(w)

    def measure_memory(self, w: Worker) -> bool:
        """After the request's log line: True when ``--reload-on-as``/``--reload-on-rss``
        make the worker exit (as ``--max-requests`` does, after
        ``--min-worker-lifetime``)."""
        if not (self.reload_on_rss or self.reload_on_as):
            return False
        if int(self.wall()) - w.last_spawn < self.min_worker_lifetime:
            return False
        return bool((self.reload_on_as and w.vsz >= self.reload_on_as)
                    or (self.reload_on_rss and w.rss >= self.reload_on_rss))

    def _publish_memory(self, w: Worker) -> None:
        w.rss_size, w.vsz_size = w.rss, w.vsz
        if ((self.evil_reload_on_as and w.vsz_size >= self.evil_reload_on_as)
                or (self.evil_reload_on_rss and w.rss_size >= self.evil_reload_on_rss)):
            self.kernel.at(self.next_tick(self.kernel.now), self._evil_check, w,
                           priority=AFTER_REAP)

    def _start_mem_collector(self, w: Worker) -> None:
        """The worker thread of ``--evil-reload-on-*``: every ``--mem-collector-freq``
        seconds (3) it publishes the worker's memory usage."""
        if not (self.evil_reload_on_rss or self.evil_reload_on_as):
            return
        self.log(f"mem-collector thread started for worker {w.id}", w)
        self.kernel.at(self.kernel.now + self.mem_collector_freq, self._mem_collect, w)

    def _mem_collect(self, w: Worker) -> None:
        if w.alive and not self.stopped:
            self._publish_memory(w)
            self.kernel.at(self.kernel.now + self.mem_collector_freq, self._mem_collect, w)

    def _evil_check(self, w: Worker) -> None:
        """``uwsgi_master_check_workers_deadline``: SIGKILL a worker whose published
        memory usage is over an evil limit."""
        if not w.alive or self.stopped:
            return
        if self.evil_reload_on_as and w.vsz_size >= self.evil_reload_on_as:
            self.log(f"*** EVIL RELOAD ON WORKER {w.id} ADDRESS SPACE: {w.vsz_size} "
                     f"(pid: {w.pid}) ***", self.master)
            w.vsz_size = 0
            self.kill(w, "killed")
        if self.evil_reload_on_rss and w.rss_size >= self.evil_reload_on_rss:
            self.log(f"*** EVIL RELOAD ON WORKER {w.id} RSS: {w.rss_size} (pid: {w.pid}) ***",
                     self.master)
            w.rss_size = 0
            self.kill(w, "killed")

    def arm_harakiri(self, proc: UProcess, seconds: int, user: bool = False) -> None:
        """Set (or clear, with 0) a harakiri deadline for ``proc`` (a worker's: any of
        its cores sets and clears the one deadline of the worker, as in uWSGI 2.0)."""
        proc = proc.main
        deadline = float(int(self.wall()) + seconds) if seconds > 0 else 0.0
        if user:
            proc.user_harakiri_deadline = deadline
        else:
            proc.harakiri_deadline = deadline
        self._reschedule_harakiri(proc)

    def next_tick(self, after: float) -> float:
        """The master loop's next iteration strictly after ``after``: it wakes every
        ``--check-interval`` seconds (1), in phase with the simulation's start."""
        step = self.check_interval
        return float(step * (math.floor(after / step + 1e-9) + 1))

    def _reschedule_harakiri(self, proc: UProcess, not_before: float = 0.0) -> None:
        proc = proc.main
        if proc.harakiri_timer is not None:
            proc.harakiri_timer.cancel()
            proc.harakiri_timer = None
        deadlines = [d for d in (proc.harakiri_deadline, proc.user_harakiri_deadline) if d]
        if deadlines and self.has_master:
            # uWSGI stores ``uwsgi_now() + seconds`` (whole seconds) and the master's
            # check kills when its clock reaches it -- for workers; for mules and
            # spoolers the test is strict (``harakiri < current_time``,
            # master_checks.c), so one second later.
            wall_deadline = min(deadlines) + (0.0 if isinstance(proc, Worker) else 1.0)
            virtual = max(self.kernel.now, wall_deadline - self.clock.wall_offset)
            when = max(self.next_tick(virtual - 1e-6), not_before)
            proc.harakiri_timer = self.kernel.at(when, self._harakiri, proc)

    def _harakiri(self, proc: UProcess) -> None:
        proc.harakiri_timer = None
        if not proc.alive:
            return
        if isinstance(proc, Worker):
            self._worker_harakiri(proc)
            return
        if isinstance(proc, Spooler):
            self.log(f"*** HARAKIRI ON THE SPOOLER (pid: {proc.pid}) ***", self.master)
        elif isinstance(proc, Mule) and proc.harakiri_deadline and proc.signum:
            self.log(f"*** HARAKIRI ON MULE {proc.id} HANDLING SIGNAL {proc.signum} "
                     f"(pid: {proc.pid}) ***", self.master)
        else:
            self.log(f"*** HARAKIRI ON {proc.kind.upper()} {proc.id} (pid: {proc.pid}) ***",
                     self.master)
        self.record("harakiri", proc, pid=proc.pid)
        self.kill(proc, "harakiri")

    def _worker_harakiri(self, w: Worker) -> None:
        """``uwsgi_master_check_harakiri`` + ``trigger_harakiri``: the request deadline
        is checked first, then the user one. With ``--harakiri-graceful-timeout`` the
        first attempt sends ``--harakiri-graceful-signal`` (SIGTERM) and moves the
        (request) deadline on by the timeout; any later attempt is a SIGKILL."""
        h, u = w.harakiri_deadline, w.user_harakiri_deadline
        user = not (h and h <= self.wall() + 1e-9)
        say = self.log_verbose
        attempt = w.pending_harakiri
        say(f"*** HARAKIRI ON WORKER {w.id} (pid: {w.pid}, try: {attempt + 1}, "
            f"graceful: {'no' if attempt else 'yes'}) ***", self.master)
        if self.harakiri_verbose:
            for line in proc_lines(self, w.wait_reason):
                self.log(line, self.master)
        say(f"HARAKIRI !!! worker {w.id} status !!!", self.master)  # uwsgi_dump_worker
        for core in w.cores:
            request = core.request
            if request is not None:
                say(f"HARAKIRI [core {core.core}] {request.remote_addr} - "
                    f"{request.method} {request.path} since "
                    f"{int(self.clock.wall_offset + request.started)}", self.master)
        say(f"HARAKIRI !!! end of worker {w.id} status !!!", self.master)
        graceful = attempt == 0 and self.harakiri_graceful_timeout > 0
        if attempt == 0:
            w.harakiri_count += 1
        w.pending_harakiri += 1
        if self.harakiri_graceful_timeout > 0:
            # 2.0.30 moves workers[w].harakiri, whichever deadline fired: a user
            # harakiri is therefore checked again (and SIGKILLed) at the next check
            w.harakiri_deadline = (u if user else h) + self.harakiri_graceful_timeout
            say(f"HARAKIRI: graceful termination attempt on worker {w.id} with signal "
                f"{self.harakiri_graceful_signal}. Next harakiri: {int(w.harakiri_deadline)}",
                self.master)
        say(f"HARAKIRI {'(user) ' if user else ''}triggered by worker {w.id} core 0 !!!",
            self.master)
        self.record("harakiri", w, pid=w.pid, graceful=graceful)
        if not graceful:
            self.kill(w, "harakiri")
            return
        self._reschedule_harakiri(w, not_before=self.next_tick(self.kernel.now))
        deliver(self, w, self.harakiri_graceful_signal)

    # -- reload and stop -------------------------------------------------------------------
    def request_reload(self) -> None:
        """``uwsgi.reload()`` (SIGHUP to the master): a graceful reload."""
        if not self.ready:
            return  # SIGHUP is ignored until the master loop installs its handlers
        self.kernel.call_soon(self._graceful_reload)

    def request_stop(self) -> None:
        """``uwsgi.stop()`` (SIGQUIT to the master)."""
        if self.die_on_term:
            self.kernel.call_soon(self._brutal_reload)
        else:
            self.kernel.call_soon(self.shutdown)

    def request_brutal_reload(self) -> None:
        """SIGTERM to the master (SIGQUIT with ``--die-on-term``): a brutal reload."""
        self.kernel.call_soon(self._brutal_reload)

    def reload_workers(self) -> None:
        """``uwsgi_reload_workers``: SIGHUP to every worker; each finishes its request,
        exits, and is respawned (``--touch-workers-reload``)."""
        for worker in list(self.workers.values()):
            if worker.alive:
                self._curse(worker)

    def _curse(self, w: Worker) -> None:
        """``uwsgi_curse(id, SIGHUP)``: the worker logs it, finishes its request (within
        ``--worker-reload-mercy``) and exits."""
        w.cursed = True
        self.log(f"Gracefully killing worker {w.id} (pid: {w.pid})...", w)
        w.manage_next_request = False
        if not w.busy:
            self.kill(w, "reload")
        else:
            w.stop_accepting()
            self.no_mercy_after(w, self.worker_reload_mercy)

    # -- cheap mode (--cheap, --idle, --die-on-idle) -------------------------------------------
    def leave_cheap_mode(self) -> None:
        """A connection while in cheap mode: the master spawns the workers (``--cheaper``'s
        count of them with --cheaper) and the connection waits in the listen queue."""
        self.is_cheap = False
        cheaper = self.subsystems.get("cheaper")
        for wid in range(1, (cheaper.count if cheaper is not None else self.numproc) + 1):
            self.spawn_worker(wid, self.workers.get(wid))

    def _idle_check(self) -> None:
        """``uwsgi_master_check_idle``, once a second: no request for more than ``--idle``
        seconds stops every worker (cheap mode), or the instance (``--die-on-idle``)."""
        if self.stopped or self.master is None or not self.master.alive:
            return
        self.kernel.at(self.next_tick(self.kernel.now), self._idle_check, priority=AFTER_REAP)
        state = self._idle_state
        if self.is_cheap or any(w.alive and w.busy for w in self.workers.values()):
            return
        now = int(self.wall())
        if not state[0]:
            state[0] = now
        if state[1] != self.total_requests:
            state[0], state[1] = now, self.total_requests
        elif state[0] < now and now - state[0] > self.idle:
            self.log(f"workers have been inactive for more than {self.idle} seconds "
                     f"({now}-{state[0]})", self.master)
            self.is_cheap = True
            if self.die_on_idle:
                self.shutdown()
                return
            for w in list(self.workers.values()):
                if w.alive:  # SIGINT, and the master waits for it (no reap line)
                    self.kill(w, "idle")
                    self._unreaped.pop(w, None)
                    self.record("death", w, pid=w.pid, reason="idle")
            self.log("cheap mode enabled: waiting for socket connection...", self.master)
            state[0] = 0

    def go_cheap(self) -> None:
        """``uwsgi_go_cheap`` (the master fifo's ``C``): every worker SIGKILLed (and
        waited for), then the master waits for a connection to spawn them again."""
        if self.is_cheap:
            return
        self.log_verbose("going cheap...", self.master)
        self.is_cheap = True
        for wid in sorted(self.workers):
            w = self.workers[wid]
            w.rss_size = w.vsz_size = 0
            if w.alive:
                self.log(f"killing worker {wid} (pid: {w.pid})", self.master)
                self.kill(w, "cheap")
                self._unreaped.pop(w, None)  # waitpid()ed at once: no reap line
                self.record("death", w, pid=w.pid, reason="cheap")
        self.log("cheap mode enabled: waiting for socket connection...", self.master)

    # -- chain reload (--touch-chain-reload) ------------------------------------------------
    def chain_reload(self, touched: str | None) -> None:
        """The workers are cursed one at a time, each once the one before is respawned
        and accepting (``uwsgi_master_check_chain``); ``touched``: the
        ``--touch-chain-reload`` file, None for the master fifo's ``c``
        (``uwsgi_chain_reload``)."""
        if self.chain_reloading:
            self.log_verbose("chain reload already running..." if touched is None else
                             f"*** {touched} has been touched... but chain reload is already "
                             f"running ***", self.master)
            return
        self.log_verbose("chain reload starting..." if touched is None else
                         f"*** {touched} has been touched... chain reload !!! ***", self.master)
        self.chain_reloading = 1
        self._chain_check()

    def _chain_check(self) -> None:
        if not self.chain_reloading or self.stopped:
            return
        # next iteration, unless a respawn brings one sooner
        self._chain_timer = self.kernel.at(self.next_tick(self.kernel.now), self._chain_check,
                                           priority=AFTER_REAP)
        previous = self.workers.get(self.chain_reloading - 1)
        if previous is not None and previous.alive and not previous.greenlet:
            if self._chain_waited != int(self.wall()):  # once a second
                self.log(f"chain is still waiting for worker {previous.id}...", self.master)
                self._chain_waited = int(self.wall())
            return
        while self.chain_reloading <= self.numproc:
            w = self.workers.get(self.chain_reloading)
            if w is not None and w.alive and w.accepting:
                if not w.cursed:
                    self.log(f"chain next victim is worker {w.id}", self.master)
                    self._curse(w)
                return
            self.chain_reloading += 1
        self.chain_reloading = 0
        self._chain_timer.cancel()
        self.log("chain reloading complete", self.master)

    def _chain_respawned(self, wid: int) -> None:
        """The master respawned the chain's victim: the chain moves on at once."""
        if self.chain_reloading == wid:
            self.chain_reloading += 1
            self._chain_timer.cancel()
            self._chain_check()

    def no_mercy_after(self, proc: UProcess, mercy: int) -> None:
        """``uwsgi_master_check_mercy``: a cursed process still alive at the first check
        more than ``mercy`` whole seconds after its curse is SIGKILLed
        (``--worker-reload-mercy``, ``--mule-reload-mercy``: 60)."""
        due = self.kernel.now + (int(self.wall()) + mercy + 1 - self.wall())
        self.kernel.at(self.next_tick(due - 1e-6), self._no_mercy, proc, proc.pid,
                       priority=BEFORE_REAP)

    def _no_mercy(self, proc: UProcess, pid: int) -> None:
        if proc.pid != pid or self.stopped:
            return
        if isinstance(proc, Spooler):
            if not (proc.alive or proc in self._unreaped):
                return
            # uWSGI only kills a spooler: it stays cursed until the master reaps it, and
            # every check until then says so again. Its number is the mule loop's
            # leftover index (mules + 1).
            who = f"spooler {len(self.mules) + 1}"
            self.kernel.at(self.next_tick(self.kernel.now), self._no_mercy, proc, pid,
                           priority=BEFORE_REAP)
        elif not proc.alive:
            return
        else:
            who = f"{proc.kind} {proc.id}"
        self.log_verbose(f"{who} (pid: {pid}) is taking too much time to die...NO MERCY !!!",
                         self.master)
        self.kill(proc, "reload")

    def _curse_mule(self, mule: Mule, signum: int) -> None:
        """``uwsgi_curse_mule``: the signal (the mule's own handler acts on it) and the
        ``--mule-reload-mercy`` deadline."""
        mule.cursed_at = int(self.wall())
        deliver(self, mule, signum)
        self.no_mercy_after(mule, self.mule_reload_mercy)

    def reload_mules(self) -> None:
        """``uwsgi_reload_mules``: every mule is cursed with SIGHUP (which ends it unless
        the app handles SIGHUP there) and respawned once dead (``--touch-mules-reload``)."""
        for mule in list(self.mules.values()):
            if mule.alive:
                self._curse_mule(mule, signal.SIGHUP)

    def reload_spoolers(self) -> None:
        """``uwsgi_reload_spoolers`` (``--touch-spoolers-reload``): SIGHUP to each spooler,
        which ignores it, with a mercy of 0 seconds (``spooler_reload_mercy`` is never set
        in 2.0.30): the next check kills it, and it is respawned."""
        for spooler in list(self.spoolers.values()):
            if spooler.alive:
                deliver(self, spooler, signal.SIGHUP)
                self.no_mercy_after(spooler, 0)

    def _graceful_reload(self) -> None:
        if self.stopped or self.reloading:  # grace_them_all: not while reloading
            return
        self.reloading = True
        self._cursed_at = int(self.wall())
        for spooler in self.spoolers.values():
            if spooler.alive:
                self.log(f"killing the spooler with pid {spooler.pid}", self.master)
        self.log("...gracefully killing workers...", self.master)
        if self.opts.flag("unsubscribe-on-graceful-reload"):
            self._unsubscribe()
        for worker in sorted(self.workers.values(), key=lambda w: w.id):
            if worker.alive:  # gracefully_kill(), the worker's SIGHUP handler
                self.log(f"Gracefully killing worker {worker.id} (pid: {worker.pid})...",
                         worker)
        self.record("reload.begin", self.master, graceful=True)
        self._reload_begins()
        for spooler in list(self.spoolers.values()):
            spooler.reloading = True  # type: ignore[attr-defined]
            self.kill(spooler, "reload")
        for mule in list(self.mules.values()):
            mule.reloading = True  # type: ignore[attr-defined]
            if mule.alive:
                self._curse_mule(mule, signal.SIGHUP)
        for worker in list(self.workers.values()):
            worker.reloading = True  # type: ignore[attr-defined]
            worker.manage_next_request = False
            if not worker.busy:
                self.terminate(worker, "reload")
            else:
                worker.stop_accepting()
                self.no_mercy_after(worker, self.worker_reload_mercy)
        # after the signals just sent have acted
        self.kernel.call_soon(self._wait_workers_then, self._binary_reload)

    def _unsubscribe(self) -> None:
        """``uwsgi_unsubscribe_all()``: the subscriptions' cmd 1 datagrams (routers)."""
        routers = self.subsystems.get("routers")
        if routers is not None:
            routers.unsubscribe_all()

    def _brutal_reload(self) -> None:
        if self.stopped:
            return
        self.reloading = True
        self._cursed_at = int(self.wall())
        self.log("...brutally killing workers...", self.master)
        self._unsubscribe()
        self.record("reload.begin", self.master, graceful=False)
        self._reload_begins()
        for group in (self.spoolers, self.mules, self.workers):
            for proc in list(group.values()):
                proc.reloading = True  # type: ignore[attr-defined]
                # SIGTERM (end_me) to workers and mules, SIGKILL to spoolers
                if group is self.spoolers:
                    self.kill(proc, "reload")
                else:
                    self.terminate(proc, "reload")
        self.kernel.call_soon(self._binary_reload)

    def _reload_begins(self) -> None:
        """The subsystems that act as the master starts a reload (Legion's ``dead``)."""
        for sub in self.subsystems.values():
            hook = getattr(sub, "reload_begins", None)
            if hook is not None:
                hook()

    def _wait_workers_then(self, then: Callable[[], None]) -> None:
        """``uwsgi_master_check_reload``: once every worker and mule is dead."""
        if any(p.alive for group in (self.workers, self.mules) for p in group.values()):
            self.kernel.schedule(0.1, self._wait_workers_then, then)
            return
        # the master sees the last death when it reaps, at its next loop iteration
        self.kernel.at(self.next_tick(self.kernel.now), then)

    def _binary_reload(self) -> None:
        """The master re-executes itself: same pid, everything else new (with
        ``--exit-on-reload`` it exits instead)."""
        if self.exit_on_reload:
            self.log("uWSGI: GAME OVER (insert coin)", self.master)
            self.shutdown(signalled=False)
            return
        self._log_burials()
        self._exec_atexit()  # uwsgi_reload, before it execs the binary again
        self.log("binary reloading uWSGI...", self.master)
        # uwsgi_reload (core/master_utils.c) before it execs the binary again
        self._log_lines([f"chdir() to {self.app.base_dir}",
                         f"closing all non-uwsgi socket fds > 2 (max_fd = "
                         f"{_banner.machine(self)['max_fd']})..."]
                        + [f"found fd {fd} mapped to socket {n} ({address})"
                           for n, (address, fd) in enumerate(zip(_banner.sockets(self),
                                                                 socket_fds(self.opts)))]
                        + [f"running {_banner.binary_path(self)}"])
        self._reap_all()
        old_master = self.master
        self._teardown_processes()
        self.app.restore()
        self.kernel.adopt_context(None)
        self.reloads += 1
        self.is_a_reload = True
        self.ready = False
        self.total_requests = 0
        self.workers.clear()
        self.mules.clear()
        self.spoolers.clear()
        self.idle_workers.clear()
        self.app = self.app_loader_class(self)
        if self.kernel.context_hook is not None:
            self.kernel.context_hook = self.app.switch
        pid = old_master.pid if old_master else self.next_pid()
        saved_pid = self._pid
        self._pid = pid - 1
        self.start_after_reload(saved_pid)

    def start_after_reload(self, saved_pid: int) -> None:
        """Boot again after a binary reload, keeping the master's pid."""
        from . import subsystems as _subsystems
        from .facade import build_module

        self.reloading = False
        self.started_on = int(self.wall())
        self.record("instance.start", None, reload=True,
                    options=[list(item) for item in self.opts.items])
        self._asap()
        self._log_lines(_banner.before_subsystems(self))
        for sub in self.subsystems.values():
            hook = getattr(sub, "close", None)
            if hook is not None:
                hook()
        self.subsystems = _subsystems.create_all(self)
        self.facade = build_module(self)
        sys.modules["uwsgi"] = self.facade
        self.master = self._new_master()
        self._pid = max(saved_pid, self._pid)
        self.record("spawn", self.master, pid=self.master.pid)
        # Requests waiting in the listen queue survive: the socket is kept, and the
        # new workers take them from the queue.
        self.kernel.start(self.master)

    def _log_burials(self, reaped_at: int | None = None) -> None:
        """What the master logs as it reaps the processes of a reload or a stop."""
        for line in self._burials(reaped_at):
            self.log(line, self.master)

    def _burials(self, reaped_at: int | None = None) -> list[str]:
        """The lines of :meth:`_log_burials`: the spoolers first (killed at once), then
        the workers, then the mules."""
        now = int(self.wall()) if reaped_at is None else reaped_at
        lines = []
        for spooler in self.spoolers.values():
            if spooler.alive or spooler in self._unreaped or getattr(spooler, "reloading", False):
                lines.append(f"spooler (pid: {spooler.pid}) annihilated")
        for worker in sorted(self.workers.values(), key=lambda w: w.id):
            if worker.alive or worker in self._unreaped or getattr(worker, "reloading", False):
                lines.append(f"worker {worker.id} buried after {now - self._cursed_at} seconds")
        for mule in sorted(self.mules.values(), key=lambda m: m.id):
            if mule.alive or mule in self._unreaped or getattr(mule, "reloading", False):
                lines.append(f"mule {mule.id} (pid: {mule.pid}) annihilated")
        return lines

    def _reap_master_threads(self) -> None:
        """The master exits or re-executes itself (a reload): its threads end with it
        (the master's greenlet ends after boot; it lives on as the hub's events)."""
        if self.app_threads is not None and self.master is not None:
            self.app_threads.reap(self.master)

    def _new_master(self) -> Master:
        self._reap_master_threads()
        master = Master(self, self._master_main)
        chdir = self.opts.str("chdir")
        if chdir is not None:  # checked by check_start; every child inherits it
            master.cwd = str(self.opts.path(chdir))
        elif self.hook_cwd is not None:  # a chdir: hook before the master loop
            master.cwd = self.hook_cwd
        return master

    def _end_in_themselves(self) -> None:
        """SIGINT's ``end_me`` in each idle worker and mule that has exit hooks, run by
        the process itself, as each OS process runs its own: the hooks may wait, in
        virtual time, for the process's threads (a tracer flushing its spans joins its
        exporter's thread). The master goes on once they are all gone, or after
        ``--worker-reload-mercy`` seconds (the rest die with the instance)."""
        ending = [proc for group in (self.mules, self.workers) for proc in group.values()
                  if proc.alive and not proc.busy and has_exit_hooks(self, proc)]
        if not ending:
            return
        for group in (self.spoolers, self.mules, self.workers):  # the others go at once
            for proc in list(group.values()):
                if proc.alive:
                    proc.reloading = True  # (buried below all the same)
                if proc not in ending:
                    self._stop_process(proc, group is self.spoolers)
        for proc in ending:  # their deaths are the stop's: neither logged nor respawned
            self.kernel.interrupt(proc, lambda: c_exit(self, "SIGINT", 30))  # UWSGI_END_CODE
            self.kernel.wake(proc)
        self.kernel.run_until(self.kernel.now + self.worker_reload_mercy,
                              lambda: not any(proc.alive for proc in ending))

    def _stop_process(self, proc: UProcess, killed: bool) -> None:
        """``proc`` ends with the instance: its exit hooks run (SIGINT's ``end_me``)
        unless it is ``killed`` (a spooler, SIGKILL) or a worker in a request; what it
        was serving fails."""
        if proc.alive:
            if not proc.busy and not killed:
                run_atexit(self, proc)
            self.kernel.discard(proc)
            for request in proc.in_flight():
                if not request.done:
                    request.fail("connection closed: instance stopped", self.kernel.now)
        if proc.harakiri_timer is not None:
            proc.harakiri_timer.cancel()

    def _teardown_processes(self) -> None:
        if self.forks is not None:
            self.forks.kill_all(keep_master=True)
        for group in (self.spoolers, self.mules, self.workers):
            for proc in group.values():
                if proc.alive:
                    self.kernel.discard(proc)
                if proc.harakiri_timer is not None:
                    proc.harakiri_timer.cancel()

    def graceful_shutdown(self) -> None:
        """``gracefully_kill_them_all`` (a ``unix_signal:`` hook's handler): every worker
        gets SIGHUP (it finishes its request and exits), every mule too; once the
        workers are gone, the master exits, with no burial lines."""
        if self.stopped or self.reloading or self.gracefully_destroying:
            return
        self.gracefully_destroying = True
        self._unsubscribe()
        self.log_verbose("graceful shutdown triggered...", self.master)
        self.record("instance.graceful_stop", self.master)
        for worker in sorted(self.workers.values(), key=lambda w: w.id):
            worker.reloading = True  # type: ignore[attr-defined]  # (not respawned)
            if worker.alive:
                deliver(self, worker, signal.SIGHUP)
        for mule in list(self.mules.values()):
            mule.reloading = True  # type: ignore[attr-defined]
            if mule.alive:
                self._curse_mule(mule, signal.SIGHUP)
        self.kernel.call_soon(self._wait_workers_then, self._gracefully_destroyed)

    def _gracefully_destroyed(self) -> None:
        self.shutdown(signalled=False, vacuum=False)
        self.log("goodbye to uWSGI.", self.master)
        self._exit_master()

    def shutdown(self, *, signalled: bool = True, killed: bool = False,
                 vacuum: bool = True, in_processes: bool = False) -> None:
        """Stop the instance: workers and mules get SIGINT, spoolers SIGKILL
        (``signalled=False``: uWSGI exits by itself, without its shutdown lines;
        ``killed``: every process SIGKILLed at once, no handler runs; ``vacuum=False``:
        the caller runs ``--vacuum`` after its own last line; ``in_processes``: called
        by the test, outside the kernel's run, so the processes' exit hooks can run in
        the processes themselves, see :meth:`_end_in_themselves`)."""
        if self.stopped:
            return
        if signalled:
            self._unsubscribe()  # kill_them_all: before its first line
            self.log("SIGINT/SIGTERM received...killing workers...", self.master)
            self._cursed_at = int(self.wall())
            for spooler in self.spoolers.values():
                if spooler.alive:
                    self.log(f"killing the spooler with pid {spooler.pid}", self.master)
        self.stopped = True
        self.record("instance.stop", self.master)
        if signalled:
            if in_processes and self.forks is None and not killed:
                self._end_in_themselves()
            # the master reaps them at its next iteration (about a second later), once
            # each has run its exit hooks (below)
            burials = self._burials(int(self.wall() + self.next_tick(self.now) - self.now))
        for group in (self.spoolers, self.mules, self.workers):
            for proc in list(group.values()):
                self._stop_process(proc, killed or group is self.spoolers)
        if signalled:
            for line in burials:
                self.log(line, self.master)
        for req in list(self.listen_queue):
            req.fail("connection refused: instance stopped", self.kernel.now)
        self.listen_queue.clear()
        self._reap_all()
        self._reap_master_threads()
        if signalled:
            self.log("goodbye to uWSGI.", self.master)
        if vacuum and not killed:
            self._exit_master()
        if self.forks is not None:
            self.forks.kill_all()
        if killed and self.master is not None:
            self.master.alive = False  # no atexit (Legion's death announce) runs either
        for sub in self.subsystems.values():
            hook = getattr(sub, "close", None)
            if hook is not None:
                hook()
        for callback in self.on_stop:
            callback()


def proc_lines(inst: Instance, wait_reason: str) -> list[str]:
    """``trigger_harakiri`` with ``--harakiri-verbose``: what the worker's
    ``/proc/PID/syscall`` and ``/proc/PID/wchan`` say, from what its virtual process
    waits in, as a Linux 6 host gave them (observed on 2.0.30). A virtual process has
    no addresses: the pointers, stack and instruction pointer read 0x0. A wait with no
    such equivalent gives no line, as when uWSGI cannot read /proc."""
    if wait_reason.startswith("sleep("):  # time.sleep: clock_nanosleep(MONOTONIC, ABSTIME)
        syscall, wchan = "230 0x1 0x1 0x0 0x0 0x0 0x0 0x0 0x0", "hrtimer_nanosleep"
    elif wait_reason == "reading the request body":  # uwsgi_wait_read_req: poll()
        from .reading import reading

        timeout = int(reading(inst).socket_timeout * 1000)
        syscall = f"7 0x0 0x1 {timeout:#x} 0x0 0x0 0x0 0x0 0x0"
        wchan = "poll_schedule_timeout.constprop.0"
    elif wait_reason.startswith("stuck"):  # running Python code (the stall watchdog)
        syscall, wchan = "running", "0"
    else:
        return []
    return [f"HARAKIRI: -- syscall> {syscall}", f"HARAKIRI: -- wchan> {wchan}"]
