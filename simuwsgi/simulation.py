"""``Simulation``: the public handle on a virtual uWSGI instance.

A simulation owns one kernel (virtual clock, seeded RNG), one instance built from the
user's uWSGI options, and the patches that make app code see it: the ``uwsgi`` module
in ``sys.modules``, the virtual clock in ``time``/``datetime`` (``clock``), virtual pids
in ``os.getpid``, and its own imports (``isolation``). They go in at ``start()``, before
the app is imported, and come out at ``close()`` — in any order, from any thread —
leaving the test process as it was.
"""

from __future__ import annotations

import contextlib
import logging
import random
import sys
import types
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ._errors import AppLoadError, DeadlockError, SimulationError
from ._core._spool import LinesView
from .server.banner import MACHINES
from ._core.clock import TimePatch, VirtualClock, parse_start
from .server.config import Options, parse_options
from .server.containment import (DEFAULT_STALL_TIMEOUT, Containment, Watchdog,
                                 check_duration, check_subprocess_policy)
from ._core.isolation import ImportLedger
from ._core.kernel import Kernel
from .server.master import Instance
from .server.options_status import report_not_simulated
from .server.processes import UProcess
from ._core.trace import Trace
from .server.workers import Request, Response, dispatch_request, submit_request
from .subsystems.legacy import apply_legacy_options, split_legacy_options
from .uwsgidecorators import CHOICES as DECORATORS, install_finder, remove_finder
from .websocket import WebSocket

__all__ = ["Simulation"]

#: How long ``request()`` waits, in virtual seconds, for a response when no timeout is
#: given and events keep coming (perpetual timers): then it reports who waits on what.
DEFAULT_PATIENCE = 7 * 24 * 3600.0
#: ... and for at most this many times ``stall_timeout`` real seconds: a response polled
#: for in virtual time for ever is a hang of the test, which the watchdog turns into an
#: error. The real clock is looked at every ``_WAIT_SLICE`` virtual seconds.
_WAIT_PATIENCE = 12
_WAIT_SLICE = 600.0


class Simulation:
    """A virtual uWSGI instance run from the user's own uWSGI options.

    ``options`` is what you would pass to ``uwsgi``: an argv list
    (``["--master", "--processes", "4", "--wsgi-file", "app.py"]``), a dict
    (``{"master": True, "processes": 4}``), or the path of a configuration file (``.ini``,
    or ``.yaml``/``.yml``, ``.json``/``.js``, ``.xml``, read as pyuwsgi 2.0.30 reads them).
    ``start`` is the first virtual instant (ISO string, datetime, epoch seconds; naive
    values are read in ``tz``); by default 2026-01-01 00:00 — or, inside an active
    ``freezegun.freeze_time``, the frozen instant. ``seed`` drives every choice real
    uWSGI leaves to chance. ``app_dir`` is where relative paths in the options (an
    ``.ini`` file's path and the paths inside it included) are resolved: uWSGI's current
    directory (default: this process's; ``--chdir`` moves it, ``%d`` in an ``.ini`` is
    the file's directory).
    ``vfork=False`` shares the app's modules between processes (no copy at fork time,
    less faithful). ``mode="fork"`` runs every virtual process's user code in its own forked
    OS process, in lockstep (``simuwsgi.modes.fork``); ``fork_timeout`` is how many real
    seconds such a process may run user code without a word before it is declared hung.
    ``cron_commands=True`` runs the host commands of the options (``--cron``,
    ``--touch-exec``, the ``--exec-*`` commands, the ``exec:``/``safeexec:`` hooks) when
    they are due (by default they are only recorded in the trace). ``legacy=True`` installs the names uWSGI removed before
    2.0 (``get_option``, ``grunt``, the cluster functions, ...; ``simuwsgi.subsystems.legacy``).
    ``network='real'`` gives the ``uwsgi`` API its remote forms (``uwsgi.rpc('host:port',
    ...)``, ``cache_get(key, 'name@host:port')``, ``uwsgi.signal(n, 'host:port')``) over
    real loopback sockets, blocking the calling virtual process (see ``simuwsgi.net``);
    with the default ``'none'`` they raise ``NotSimulatedError``. ``trace_kinds`` keeps
    only the trace records of those kinds (``["cron.*", "request.end"]``; a trailing
    ``*`` matches a prefix); the trace and the log keep only their newest rows in memory
    either way (``simuwsgi._core.trace``). ``start()`` raises ``AppLoadError`` when the app did
    not load (uWSGI would run on, answering 500s) unless ``allow_no_app=True``. An option
    the simulation does not simulate (``simuwsgi options --status not-simulated``) is
    named in one warning line of the log; ``strict=True`` refuses it instead
    (``OptionNotSimulatedError``). ``stall_timeout`` is how many real seconds app code
    may run without yielding to the simulation (a CPU loop, a blocking real socket):
    then the process is stopped, as uWSGI's harakiri would when ``--harakiri`` is set,
    else ``StallError`` names it (None: never; see ``simuwsgi.server.containment``). In fork
    mode ``fork_timeout`` plays that part (a hung child is a ``StallError`` too).
    ``subprocess`` is what a command app code starts (``subprocess``, ``os.system``,
    ``os.popen``, ``os.posix_spawn``, ``os.exec*``) does: ``"run"`` (the default: it is
    the app's own command, and its output may be what the app needs) runs it on the
    host, taking no virtual time; ``"refuse"`` raises ``NotSimulatedError`` instead; a
    callable is given the command's argv and returns one of the two. Each command is a
    ``subprocess`` trace record. ``os.exec*`` never replaces the test process: the
    virtual process becomes the program, and ends with its exit status.
    ``decorators`` is which ``uwsgidecorators`` app code imports: ``"auto"`` (the
    default) uWSGI's own file where it is installed (the pyuwsgi wheel ships it; it runs
    on the simulated ``uwsgi`` unchanged), else simuwsgi's compatible module
    (``simuwsgi.uwsgidecorators``); ``"simuwsgi"`` always simuwsgi's.
    ``machine`` is whose facts the startup lines of the log print: ``"virtual"`` (a
    fixed machine, so the log is the same everywhere) or ``"host"`` (this machine's, as
    the real server would print them here). ``ssl=True`` simulates a build with SSL, as
    uWSGI built from source where OpenSSL is installed: the Legion options (``--legion``
    ...), ``uwsgi.i_am_the_lord``/``lord_scroll``/``scrolls`` (``simuwsgi.subsystems.legion``)
    and the WebSocket handshake exist; by default they do not, as in the pyuwsgi wheel.
    """

    def __init__(self, options: Any, *, seed: int = 0, start: Any = None,
                 tz: str | None = None, mode: str = "sim", app_dir: str | Path | None = None,
                 hostname: str = "simuwsgi", vfork: bool = True,
                 decorators: str = "auto", fork_timeout: float | None = None,
                 network: str = "none", cron_commands: bool = False,
                 legacy: bool = False, trace_kinds: Iterable[str] | None = None,
                 allow_no_app: bool = False, strict: bool = False,
                 stall_timeout: float | None = DEFAULT_STALL_TIMEOUT,
                 machine: str = "virtual", ssl: bool = False,
                 subprocess: Any = "run") -> None:
        if network not in ("none", "real"):
            raise ValueError(f"network must be 'none' or 'real', not {network!r}")
        if network == "real":
            from . import net  # noqa: F401 - imports trio before the clock patch exists
        if mode not in ("sim", "fork"):
            raise ValueError(f"mode {mode!r} is not available in this build: use 'sim' "
                             f"or 'fork'")
        self.mode = mode
        self.seed = seed
        # legacy=True: 1.4's --cluster, --erlang are options too (simuwsgi.subsystems.legacy)
        options, legacy_values = split_legacy_options(options) if legacy else (options, {})
        self.opts: Options = parse_options(options, base_dir=Path(app_dir) if app_dir else None,
                                           ssl=ssl)
        if app_dir is not None:
            self.opts.base_dir = Path(app_dir)
        self.kernel = Kernel(seed)
        self.clock = VirtualClock(self.kernel, parse_start(start, tz), tz)
        self.inst = Instance(self.opts, self.kernel, self.clock, hostname=hostname,
                             vfork=vfork and mode == "sim", trace_kinds=trace_kinds)
        self.inst.network = network  # read by the net subsystem
        self.inst.ssl = ssl  # read by simuwsgi.subsystems.legion
        if machine not in MACHINES:
            raise ValueError(f"machine must be one of {', '.join(MACHINES)}, not {machine!r}")
        self.inst.machine = machine
        self.inst.strict = strict  # type: ignore[attr-defined]
        report_not_simulated(self.inst, strict=strict)
        if mode == "fork":
            from .modes.fork import DEFAULT_TIMEOUT, ForkRuntime

            ForkRuntime.attach(self.inst, self._sleep, seed=seed,
                               timeout=DEFAULT_TIMEOUT if fork_timeout is None else fork_timeout)
        self.inst.cron_commands = cron_commands
        self.inst.legacy = legacy  # read by facade.build_module (simuwsgi.subsystems.legacy)
        apply_legacy_options(self.inst, legacy_values)
        self._patch = TimePatch(self.clock, self._sleep)
        if stall_timeout is not None:
            stall_timeout = check_duration("stall_timeout", stall_timeout) or None
        self.inst.stall_timeout = stall_timeout
        self._contain = Containment(self.inst)
        self._contain.subprocess = check_subprocess_policy(subprocess)
        # fork mode: user code runs in OS children, watched by ``fork_timeout``
        self._watchdog = Watchdog(self.inst, stall_timeout if mode == "sim" else None)
        #: the root logger's handlers and level while the simulation runs (_app_streams)
        self._root_logger: tuple[list[logging.Handler], int] = ([], logging.WARNING)
        if self.inst.forks is not None:
            self.inst.forks.others_paused = self._watchdog.paused
        if decorators not in DECORATORS:
            raise ValueError(f"decorators must be one of "
                             f"{', '.join(map(repr, DECORATORS))}, not {decorators!r}")
        self._decorators = decorators
        self._imports = ImportLedger()
        self.allow_no_app = allow_no_app
        self.started = False
        self.closed = False
        self._request_ids = 0

    @classmethod
    def from_ini(cls, path: str | Path, **kwargs: Any) -> Simulation:
        """``Simulation(path, **kwargs)``: the options of a uWSGI ``.ini`` file (paths in
        it relative to the current directory, as for ``uwsgi --ini path``)."""
        return cls(str(path), **kwargs)

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> Simulation:
        """Boot the instance: import the app in the master and fork everything."""
        if self.started:
            return self
        self.started = True
        stale = self._imports.begin()
        for name in ("uwsgi", "uwsgidecorators"):
            sys.modules.pop(name, None)
        kernel = self.kernel
        inst = self.inst
        kernel.context_hook = inst.app.switch
        try:
            self._patch.install()
            self._contain.install()
            if self.mode == "sim":
                # app code's random module, one stream for all the virtual processes
                # (uWSGI reseeds it in each forked process; fork mode does, from the seed)
                random.seed(f"simuwsgi:{self.seed}")
            self._watchdog.start()
            if stale:
                inst.log(f"[simuwsgi] imported before the simulation with uwsgi = None, "
                         f"imported afresh inside it: {', '.join(stale)}")
            self._install_facade()
            inst.on_stop.append(self._settle)
            try:
                with self._patch.running():
                    self._drive(inst.boot, "start")
            except SimulationError as exc:
                if isinstance(exc.__cause__, AppLoadError):  # --lazy-apps: in a worker
                    raise exc.__cause__ from None
                raise
            self._settle()
            self._imports.check_stale()
            self._check_app_loaded()
        except BaseException:
            self.close()
            raise
        return self

    def _check_app_loaded(self) -> None:
        # no worker (--processes 0, a node with routers only): uWSGI does not miss an app;
        # nor does its command mode (--pyrun)
        if (not self.inst.app_loaded and not self.allow_no_app and self.inst.numproc > 0
                and not self.inst.command_mode):
            raise AppLoadError(
                self._no_app_message(), log=self.log,
                advice="uWSGI runs on, answering every request with a 500: pass "
                       "allow_no_app=True if that is what you want")

    def _no_app_message(self) -> str:
        app = self.inst.app
        if not (app.wsgi_file or app.module_spec):
            return "no app loaded: the options name none (--wsgi-file, --module, ...)"
        return f"the app {app.wsgi_file or app.module_spec} did not load"

    def _install_facade(self) -> None:
        # a real import, run afresh by each process that imports it (lazy-apps)
        self._finder = install_finder(self._decorators)

    def _settle(self) -> None:
        """Back in the test: ``sys.modules`` shows the master's app modules, and the test's
        working directory."""
        self.kernel.apply_cwd(None)
        master = self.inst.master
        if master is not None and master.context is not None:
            self.kernel.switch_context(master.context)
        sys.modules["uwsgi"] = self.inst.facade

    def close(self) -> None:
        """Stop the instance and take every patch out. Idempotent."""
        if self.closed:
            return
        self._check_not_reentrant("close")
        self.closed = True
        try:
            if self.started:
                self._imports.enter()  # its modules, not another open simulation's
            if self.started and not self.inst.stopped:
                self.inst.stopped = True
                for sub in self.inst.subsystems.values():
                    hook = getattr(sub, "close", None)
                    if hook is not None:
                        hook()
            if self.started:  # a never-started simulation installed no uwsgi module
                self._settle()
            with self._patch.running(), self._app_streams():  # killed processes'
                self.kernel.close()  # finally blocks run here
        finally:
            if self.inst.forks is not None:
                self.inst.forks.close()
            self.kernel.context_hook = None
            self.inst.app.restore()
            self._watchdog.close()
            self._contain.uninstall()
            self._patch.uninstall()
            remove_finder(getattr(self, "_finder", None))
            self._imports.close()
            facade = self.inst.facade
            if facade is not None and sys.modules.get("uwsgi") is facade:
                del sys.modules["uwsgi"]  # left in the sys.modules shared with another thread
            # What stays readable after close() goes to disk: a closed simulation waits
            # for the cycle collector, and its trace and log should not wait in memory.
            self.inst.trace.spill()
            self.inst.log_lines.spill()

    def stop(self) -> None:
        """Shut the instance down as ``SIGINT`` to the master does (driven as ``run``:
        what the processes' exit hooks print is the log's)."""
        self._ensure_started()
        self._run(lambda: self.inst.shutdown(in_processes=True))

    def __enter__(self) -> Simulation:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _check_not_reentrant(self, what: str) -> None:
        """The driving API is for the test: app code calling it would run the kernel
        from inside one of its own processes."""
        proc = self.kernel.current
        if self._watchdog.driving or proc is not None:
            who = f"{proc.name} (pid {proc.pid})" if proc is not None else "the simulation"
            raise SimulationError(
                f"sim.{what}() called from app code running in {who}: the driving API "
                "(start, advance, run_until, request, get, close...) is for the test, "
                "outside the simulation; in the app, use time.sleep() or the uwsgi API")

    def _ensure_started(self, what: str = "run") -> None:
        self._check_not_reentrant(what)
        if not self.started:
            self.start()
        if self.closed:
            raise SimulationError("this simulation is closed")

    # -- time --------------------------------------------------------------------------
    @property
    def now(self) -> float:
        """Virtual seconds since the simulation started."""
        return self.kernel.now

    @property
    def wall(self) -> float:
        """Virtual wall-clock time (epoch seconds)."""
        return self.clock.time()

    @property
    def datetime(self) -> datetime:
        """Virtual wall-clock time as an aware datetime in the simulation's zone."""
        from zoneinfo import ZoneInfo

        return datetime.fromtimestamp(self.clock.time(), timezone.utc).astimezone(
            ZoneInfo(self.clock.tz))

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` of virtual time pass, running everything that falls due."""
        seconds = check_duration("advance()", seconds)
        self._ensure_started("advance")
        self._run(lambda: self.kernel.run_until(self.kernel.now + seconds))

    def run_until(self, when: Any) -> None:
        """Run until virtual time ``when``: seconds since start, or a wall-clock
        instant (datetime, ISO string)."""
        self._ensure_started("run_until")
        if isinstance(when, (int, float)) and not isinstance(when, bool):
            target = check_duration("run_until()", when, negative=True)
        else:
            target = self.kernel.now + parse_start(when, self.clock.tz) - self.clock.time()
        if target < self.kernel.now:
            raise ValueError(f"cannot run back in time: {when!r} is before now")
        self._run(lambda: self.kernel.run_until(target))

    def run_to(self, target: float) -> None:
        """:meth:`run_until` for a driver that paces the simulation itself (``serve``'s
        node, once per request): ``target`` is seconds since start, not before
        :attr:`now`, and the simulation is started and open; nothing is checked."""
        self._run(lambda: self.kernel.run_until(target))

    def step(self) -> bool:
        """Run the next event only. False if nothing is scheduled."""
        self._ensure_started()
        ran: list[bool] = []
        self._run(lambda: ran.append(self.kernel.step()))
        return ran[0]

    def step_clock(self, seconds: float) -> None:
        """Step the virtual wall clock (NTP jump): forward or backward; monotonic time
        and pending timers are unaffected."""
        seconds = check_duration("step_clock()", seconds, negative=True)
        self._ensure_started("step_clock")
        self.inst.record("clock.step", self.inst.master, delta=seconds)
        self.clock.step(seconds)

    def set_clock(self, when: Any) -> None:
        """Set the virtual wall clock to an instant (a step of whatever size)."""
        self.step_clock(parse_start(when, self.clock.tz) - self.clock.time())

    def _run(self, body: Any) -> None:
        if self.started:
            subsystems = self.inst.subsystems
            filemon, fifo = subsystems.get("filemon"), subsystems.get("fifo")
            if filemon is not None:
                filemon.look_at_the_filesystem()  # the scenario's changes to watched paths
            if fifo is not None:
                fifo.look()  # what the scenario wrote to the master fifo
        try:
            self._imports.enter()
            sys.modules["uwsgi"] = self.inst.facade
            with self._patch.running():
                self._drive(body, "run")
        finally:
            self._settle()

    def _drive(self, body: Any, what: str) -> None:
        """Run the kernel for the test: the watchdog is armed, re-entry refused."""
        self._check_not_reentrant(what)
        watchdog = self._watchdog
        watchdog.driving = True
        test_argv, sys.argv = sys.argv, self._contain.argv
        try:
            test = self._enter_app_streams()  # (not a generator: serve drives per request)
            try:
                body()
            finally:
                self._leave_app_streams(test)
        finally:
            sys.argv = test_argv
            watchdog.end_drive()

    @contextlib.contextmanager
    def _app_streams(self) -> Iterator[None]:
        """uWSGI's fd 1 and 2 are its log: what the app prints is a log line (a fork
        mode child sends it to the log itself); its stdin is /dev/null. And the root
        logger is the app's, as a fresh interpreter has it (no handler, WARNING): the
        test runner's handlers (pytest's) would make the app's ``logging.basicConfig()``
        do nothing and take its records; what the app sets on it stays the
        simulation's."""
        test = self._enter_app_streams()
        try:
            yield
        finally:
            self._leave_app_streams(test)

    def _enter_app_streams(self) -> tuple[Any, ...]:
        """:meth:`_app_streams`'s entry: the test's streams and root logger, to put back."""
        root = logging.getLogger()
        test = sys.stdin, sys.stdout, sys.stderr, root, root.handlers, root.level
        root.handlers, root.level = self._root_logger
        if self.mode == "sim":
            sys.stdout = sys.stderr = self.inst.errors_stream()
            sys.stdin = self.inst.stdin_stream() or sys.stdin
        return test

    def _leave_app_streams(self, test: tuple[Any, ...]) -> None:
        sys.stdin, sys.stdout, sys.stderr, root = test[:4]
        self._root_logger = root.handlers, root.level
        root.handlers, root.level = test[4:]

    def _sleep(self, seconds: float) -> None:
        """``time.sleep`` inside a virtual process: park it for ``seconds``."""
        self.kernel.sleep(float(seconds), f"sleep({seconds})")

    # -- requests ------------------------------------------------------------------------
    def submit(self, method: str, path: str, *, headers: Any = None, body: bytes = b"",
               at: float | None = None, body_chunks: Iterable[bytes] | None = None,
               pace: float = 0.0) -> Request:
        """Send a request and return at once; the scenario goes on while it is in flight.

        The handle's ``done`` and ``response`` tell how it ended. A slow client:
        ``body_chunks`` (instead of ``body``) are sent ``pace`` virtual seconds apart, the
        first with the head; the Content-Length is their total. uWSGI waits for each at
        most ``--socket-timeout``.
        """
        if body_chunks is None and pace >= 0 and submit_request is not None:
            # the steps below in C (a long run submits 86,400 requests a virtual day)
            req: Request = submit_request(self, method, path, headers, body, at)
            return req
        kernel = self.kernel
        # _ensure_started's checks, its calls made only when one fails
        if not self.started or self.closed or kernel.current is not None \
                or self._watchdog.driving:
            self._ensure_started()
        self._request_ids += 1
        now = kernel.now
        chunks = None
        if body_chunks is not None:
            chunks = [bytes(c) for c in body_chunks]
            if chunks and body:
                raise ValueError("give the request body as body= or as body_chunks=, "
                                 "not both")
            body = body or b"".join(chunks)
        if pace < 0:
            raise ValueError(f"pace must be >= 0 virtual seconds, got {pace!r}")
        req = Request(method, path, headers, body, now, ident=self._request_ids)
        if chunks:
            req.chunk_times = _arrivals(chunks, now if at is None else at, pace)
        if at is None:
            kernel.call_soon(dispatch_request, self.inst, req)
        else:  # kernel.at without the handle nobody keeps
            kernel.post_at(max(at, now), dispatch_request, self.inst, req)
        return req

    def request(self, method: str, path: str, *, headers: Any = None, body: bytes = b"",
                timeout: float | None = None, body_chunks: Iterable[bytes] | None = None,
                pace: float = 0.0) -> Response:
        """Send a request and run the simulation until its response is complete.

        A request uWSGI drops (harakiri, worker death, instance stopped) gives a
        response whose ``status`` is None and whose ``reason`` says why; one still in
        flight after ``timeout`` virtual seconds gives ``status`` None, reason
        ``timeout``.
        """
        req = self.submit(method, path, headers=headers, body=body,
                          body_chunks=body_chunks, pace=pace)
        self.wait(req, timeout=timeout)
        if req.response is None:
            return Response(status=None, reason=f"timeout after {timeout} virtual seconds",
                            started=req.started, finished=self.kernel.now)
        return req.response

    def get(self, path: str, **kwargs: Any) -> Response:
        return self.request("GET", path, **kwargs)

    def websocket(self, path: str, *, headers: Any = None, origin: str | None = None,
                  protocol: str | None = None, auto_pong: bool = True,
                  timeout: float | None = None) -> WebSocket:
        """Open a WebSocket to ``path`` as a browser does and run until the app has
        answered the upgrade (``status`` 101 once it called
        ``uwsgi.websocket_handshake()``); see ``simuwsgi.websocket``."""
        self._ensure_started()
        return WebSocket(self, path, headers=headers, origin=origin, protocol=protocol,
                         auto_pong=auto_pong, timeout=timeout)

    def wait(self, requests: Request | Iterable[Request], *, timeout: float | None = None) -> None:
        """Run until the given in-flight requests are complete (or ``timeout``)."""
        pending = [requests] if isinstance(requests, Request) else list(requests)
        kernel = self.kernel
        limit = kernel.now + (timeout if timeout is not None else DEFAULT_PATIENCE)
        left = [r for r in pending if not r.done]
        if not left:
            return
        if kernel.peek() is None:
            raise DeadlockError(self._stall_report(pending, "nothing is scheduled"))
        count = [len(left)]

        def one_done() -> None:
            count[0] -= 1
            if count[0] == 0:
                kernel.stopping = True  # run_until returns after this event

        for r in left:
            r.on_done = one_done

        began = kernel.now
        try:
            impatient = self._run_patiently(limit, None, timeout is None)
        finally:
            for r in left:
                r.on_done = None
        if count[0] and timeout is None:
            if impatient:
                why = self._impatience(began, "response")
            elif kernel.peek() is None:
                why = "nothing is scheduled"
            else:
                why = f"no response after {DEFAULT_PATIENCE:.0f} virtual seconds"
            raise DeadlockError(self._stall_report(pending, why))

    def _run_patiently(self, limit: float, stop: Callable[[], bool] | None,
                       patient: bool) -> bool:
        """Run until ``limit``, an event that sets ``kernel.stopping``, or ``stop()``.
        Unless ``patient``, give up after ``_WAIT_PATIENCE`` times ``stall_timeout``
        real seconds: True then (the run goes in slices of virtual time, with a look
        at the real clock between them: the watchdog's deadline)."""
        kernel = self.kernel
        stall = self.inst.stall_timeout
        gave_up = [False]

        def body() -> None:
            if not patient or not stall:
                kernel.run_until(limit, stop)
                return
            passed = self._watchdog.deadline(_WAIT_PATIENCE * stall)
            while not kernel.run_until(min(limit, kernel.now + _WAIT_SLICE), stop):
                if kernel.now >= limit or kernel.peek() is None:
                    return
                if passed():
                    gave_up[0] = True
                    return

        self._run(body)
        return gave_up[0]

    def _impatience(self, began: float, what: str) -> str:
        stall = self.inst.stall_timeout or 0
        return (f"no {what} after {_WAIT_PATIENCE * stall:.0f} real seconds, while virtual "
                f"time ran from {began:.6f}: does the app poll (a time.sleep() loop) for "
                "something that never comes? Give it a timeout= or raise stall_timeout")

    def _stall_report(self, pending: list[Request], why: str) -> str:
        lines = [f"the simulation cannot make progress at virtual time "
                 f"{self.kernel.now:.6f} ({why}); waiting for "
                 + ", ".join(repr(r) for r in pending if not r.done) + ". Processes:"]
        for proc in self.processes():
            state = "dead" if not proc.alive else (proc.wait_reason or "runnable")
            lines.append(f"  {proc.name} (pid {proc.pid}): {state}")
        return "\n".join(lines)

    # -- faults and signals -------------------------------------------------------------
    def signal(self, num: int) -> None:
        """Raise uWSGI signal ``num`` as if a worker called ``uwsgi.signal(num)``."""
        self._ensure_started()
        signals = self.inst.subsystems["signals"]
        self.kernel.call_soon(signals.master_read, num & 0xFF)
        self.advance(0)

    def kill(self, process: str) -> None:
        """SIGKILL a process by name (``worker1``, ``mule2``, ``spooler1``); the master
        respawns it."""
        self._ensure_started()
        proc = self.process(process)
        self.inst.record("fault.kill", proc, pid=proc.pid)
        self.inst.kill(proc, "killed")
        self.advance(0)

    def apply(self, plan: Any) -> None:
        """Apply a fault plan (``simuwsgi.faults``: a ``FaultPlan``, a fault, a list of
        faults or ``--faults`` text): timed faults at their virtual time (seconds since
        the start), the others when their trigger fires."""
        from .faults import FaultPlan, Injector

        plan = FaultPlan.coerce(plan)
        injector = self.inst.faults or Injector(self)
        injector.schedule(plan)

    def set_rss(self, process: str, rss: int, *, vsz: int | None = None) -> None:
        """Set what measuring a process's memory gives from now on, in bytes (RSS, and
        the address space with ``vsz``): ``--reload-on-rss``/``--reload-on-as`` read it
        at the end of each request, ``--evil-reload-on-*`` when the worker publishes it
        (end of a request, or every ``--mem-collector-freq`` seconds)."""
        self._ensure_started()
        proc = self.process(process)
        proc.rss = int(rss)
        if vsz is not None:
            proc.vsz = int(vsz)
        self.inst.record("memory.set", proc, rss=proc.rss, vsz=proc.vsz)

    def reload(self) -> None:
        """Graceful reload (SIGHUP to the master), run to completion."""
        self._ensure_started()
        self.inst.request_reload()
        self.advance(0)

    def touch(self, path: str) -> None:
        """A change of ``path`` (relative to the app dir), as ``touch`` on the real server
        would make: the file monitors watching it fire (see ``simuwsgi.subsystems.filemon``)."""
        self._ensure_started()
        filemon = self.inst.subsystems.get("filemon")
        if filemon is not None:
            filemon.touch(path)
        self.advance(0)

    # -- inspection ------------------------------------------------------------------------
    def processes(self) -> list[UProcess]:
        inst = self.inst
        procs: list[UProcess] = [inst.master] if inst.master else []
        for group in (inst.workers, inst.mules, inst.spoolers):
            procs.extend(group[k] for k in sorted(group))
        return procs

    def process(self, name: str) -> UProcess:
        for proc in self.processes():
            if proc.name == name:
                return proc
        names = ", ".join(p.name for p in self.processes())
        raise KeyError(f"no process named {name!r} (there are: {names})")

    def stats(self) -> dict[str, Any]:
        """The stats server's document now (what a connection to ``--stats`` reads, as
        ordered data; ``simuwsgi.protocol.encode_stats`` gives its bytes): see
        ``simuwsgi.server.stats``. Needs the master, as the stats server does."""
        self._ensure_started()
        from .server.stats import document

        return document(self.inst)

    def globals(self, process: str = "master") -> dict[str, dict[str, Any]]:
        """A copy of one process's app-module globals, by module name."""
        proc = self.process(process)
        if self.inst.forks is not None:
            return self.inst.forks.module_globals(proc)
        return self.inst.app.module_globals(proc.context)

    @property
    def uwsgi(self) -> types.ModuleType:
        """The ``uwsgi`` module the app sees."""
        return self.inst.facade

    @property
    def trace(self) -> Trace:
        return self.inst.trace

    @property
    def log(self) -> LinesView:
        """The lines uWSGI would have logged: a read-only sequence (index, slice, ``in``,
        ``count``, ``==`` a list) whose old lines are kept on disk, not in memory."""
        return LinesView(self.inst.log_lines)

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("running" if self.started else "new")
        return f"<Simulation seed={self.seed} t={self.kernel.now:.3f} {state}>"


def _arrivals(chunks: list[bytes], start: float, pace: float) -> list[tuple[float, int]]:
    """When a slow client's body chunks arrive: (virtual time, bytes sent so far)."""
    sent = 0
    arrivals = []
    for i, chunk in enumerate(chunks):
        sent += len(chunk)
        arrivals.append((start + i * pace, sent))
    return arrivals
