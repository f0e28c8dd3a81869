"""Containment: process-level calls made by app code act on its virtual process.

A real uWSGI worker is an OS process: ``os._exit(3)`` ends it, ``os.kill(masterpid,
SIGHUP)`` reloads the instance, ``atexit`` handlers run when it exits, ``os.getppid()``
is the master. In a simulation the app runs in the test process, so each of these would
act on the host (end the pytest run, signal whatever real process has pid 1001). While
a simulation is open this module patches them so that, *called from a virtual process*,
they act on that process as uWSGI 2.0.30 does (``core/uwsgi.c`` ``end_me``,
``gracefully_kill``, ``stats``, ``what_i_am_doing``; ``core/master.c`` signal setup;
``core/mule.c``, ``core/spooler.c``; ``plugins/python/python_plugin.c``
``uwsgi_python_atexit``):

* ``os._exit(n)``: the process dies at once with status ``n`` (no ``atexit``, no
  ``finally`` — nothing of its code runs again); the master logs and respawns it.
* ``os.kill``/``os.killpg`` with a virtual pid: the signal means what uWSGI makes it
  mean in that kind of process (``SIGNAL_TABLE``); a pid that is not one of the
  simulation's is refused with ``ProcessLookupError`` — never sent to a host process.
* ``os.getppid()`` is the master's virtual pid in workers, mules and spoolers;
  ``os.getpgrp()``/``getpgid()`` too (the instance is the master's process group).
* ``atexit.register`` in a virtual process registers for that process (inherited by the
  processes forked from it); they run when it exits the way uWSGI runs them: on
  ``sys.exit``, on ``end_me`` (SIGINT/SIGTERM: stop, brutal reload), on graceful exits
  (SIGHUP, reload, ``--max-requests``), not on SIGKILL or ``os._exit``, and not when
  a worker calls C ``exit()`` in the middle of a request (uWSGI skips them when busy).
* ``signal.raise_signal(n)`` and ``signal.pthread_kill(thread, n)`` in a virtual process
  are ``os.kill`` of its own pid; ``signal.pthread_sigmask`` and ``sigwait*`` (the test
  process's mask, real signals) raise ``NotSimulatedError``.
* ``signal.signal``/``getsignal`` in a virtual process set and read that process's
  Python handlers; an ``os.kill`` to it then calls the handler, in that process (its
  pid, its globals): at once when it signals itself, else when it next runs
  (``Kernel.interrupt``), as CPython runs a handler at the process's next bytecode. A
  process in a request gets it there (what the handler raises comes out of the call the
  request waited in); one idle in uWSGI's loop runs it when it wakes (for its next
  request), printing its errors (CPython would run it inside that request). In fork
  mode the process's OS child runs it the same way. Nothing reaches the host's signal table. Unlike
  CPython, a handler does not cut short a virtual ``time.sleep``: it runs when the
  sleep ends.
* ``signal.set_wakeup_fd`` in a virtual process sets that process's descriptor: each
  signal that reaches one of its Python handlers writes its number there first (a
  failed write is reported in the log, as CPython reports it); ``signal.siginterrupt``
  is checked and changes nothing (a virtual signal interrupts no host system call).
  The test process's own (trio's, asyncio's) stays.
* ``faulthandler`` in a virtual process acts on that process: ``enable``/``disable``/
  ``is_enabled``/``register``/``unregister`` are its own (the test process's, pytest's,
  stays); a dump (``dump_traceback``, a fatal signal while enabled, a registered one)
  shows its app's frames, in the log when the file is ``sys.stderr``;
  ``dump_traceback_later`` counts virtual time and its ``exit=True`` ends the process
  (``_exit(1)``), never the test run. In fork mode's children it is refused (their
  timer would count real time).
* ``os.register_at_fork`` in a virtual process registers hooks of that process
  (inherited by what it forks); they run when uWSGI 2.0.30 runs CPython's fork hooks
  (``--py-call-uwsgi-fork-hooks``, ``--py-call-osafterfork``; ``fork_hook_mode``),
  never at the test process's own forks (nor at fork mode's).
* Commands (``subprocess``, ``os.system``, ``os.popen``, ``os.posix_spawn*``): the
  app's own programs, which it may need (``convert``, ``git``): by default they run on
  the host, in no virtual time, traced as ``subprocess``; ``Simulation(subprocess=
  "refuse")`` or a policy callable refuses them. They start new processes and signal
  none, so nothing of the host's is touched. ``os.exec*`` would replace the test
  process: the virtual process becomes the program instead (it runs, and the process
  dies with its exit status, as the master then sees a worker that exec'd).
* sockets: in a ``Cluster``'s node, ``socket.create_connection`` (so ``http.client``,
  ``urllib.request``) to a node's address goes over the virtual network, and any
  other internet address (a raw ``socket.connect`` too) is refused unless the cluster
  allows it (``simuwsgi.network._appsockets``); a lone ``Simulation``'s app reaches the
  host as before.
* the interpreter-wide settings ``hoststate`` lists (``os.environ``, the collector,
  ``sys``'s limits and hooks, the umask, resource limits, the socket timeout, warnings,
  logging, the locale, ``random``): what app code changes there is undone when the last
  open simulation closes.
* ``os.setuid``/``setgid``/``setgroups``/``chroot``/``setsid``/``setpgid`` & co. in a
  virtual process raise ``NotSimulatedError``: they would change the test process for
  good.
* ``sys.argv`` is ``['uwsgi']`` plus ``--pyargv`` (``init_pyargv``) while the
  simulation runs (the test's own code keeps its ``sys.argv``).
* the cores of a ``--threads`` worker are threads: ``threading.get_ident()`` in core
  N >= 1 is a virtual thread id of its own (core 0 is the process's main thread, whose
  id a fork keeps: the host's), so ``threading.current_thread()`` there is a
  ``_DummyThread``, as for a thread uWSGI started; ``threading.local`` is the pure-Python
  ``_threading_local.local``, keyed by the virtual process and core, so each core of each
  process has its own namespace (a ``threading.local`` made before the simulation
  opened is the host's C one, shared).
* threads the app starts itself (``threading.Thread.start`` in a virtual process) are
  virtual threads of that process (``appthreads``): greenlets in virtual time, with
  their own ident; every call above acts on their process. ``threading.Lock``/``RLock``
  made in a virtual process are ``appthreads.VLock`` (they wait in virtual time), and
  ``threading.enumerate()`` there lists the process's own threads (the host's lists
  the host's). In fork mode's OS children they are host threads of the child, made
  daemons (they end with it); any of the calls above made from one raises
  ``NotSimulatedError``.

Calls from the test itself (no virtual process running) and from other threads go to
the real functions. Everything is put back when the last open simulation closes.

The stall watchdog (``Watchdog``) is the one place besides ``clock`` that reads real
time: while the test drives a simulation, a thread looks every tenth of a second
whether the running virtual process has yielded to the kernel; if it has not for
``stall_timeout`` real seconds, it interrupts it. The interrupt is a POSIX signal sent
to the main thread (``signal.pthread_kill``) whose Python handler raises
``StallInterrupt`` in whatever greenlet runs there — the stuck process. A signal, and
not ``PyThreadState_SetAsyncExc`` alone, because a signal also breaks blocking system
calls (a real socket ``recv``, ``thread.join``, a real ``sleep``: they fail with EINTR
and the handler's exception propagates), where an asynchronous exception waits for the
next bytecode. Off the main thread, where Python cannot install handlers, the watchdog
falls back to ``PyThreadState_SetAsyncExc`` (CPU loops only). Ctrl-C raises
``SimulationInterrupted`` (a ``KeyboardInterrupt``), which the simulator never treats
as the app's. App code that catches what is raised (``except BaseException`` in a
loop) gets it again every 0.3 s, from the second time on on every line it runs (a
trace function), so that it also leaves the ``except`` blocks.

Code stuck in one C call holds the GIL, so the watchdog thread cannot run at all. For
it a CPU-time timer (``ITIMER_VIRTUAL``, SIGVTALRM: it needs no GIL to fire; restored
at close) ticks while the simulation is driven; CPython runs its handler in the main
thread where a C call checks for signals: a regex backtracking (``re`` checks every
few thousand steps) is stopped like a Python loop. A C call that never checks
(``sum(range(10**12))``, many C extensions) cannot be stopped by anything short of
killing the test process: the handler runs when it returns, and the ``StallError``
then says how long it held the CPU. Ctrl-C does not stop it either, as in plain Python.
"""

from __future__ import annotations

import atexit as _atexit
import contextlib
import ctypes
import faulthandler
import inspect
import math
import operator
import os
import queue
import _queue
import signal as _signal
import socket as _socket
import subprocess
import sys
import threading
import time
import _threading_local
from _thread import get_ident as _host_ident
import traceback
import types
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import greenlet

from .._errors import NotSimulatedError, SimulationError, StallError
from .._core.clock import _R
from .._core.kernel import Killed
from .appthreads import AppThreads, VLock
from . import hoststate
from .startup import show_config

if TYPE_CHECKING:
    from .master import Instance
    from .processes import UProcess

__all__ = ["CONTROL", "Containment", "ProcessExit", "SimulationInterrupted", "StallInterrupt",
           "Watchdog", "c_exit", "check_duration", "deliver", "die_now", "has_exit_hooks",
           "host_section", "run_atexit"]

#: Default real seconds a virtual process may run without yielding.
DEFAULT_STALL_TIMEOUT = 5.0

# The host's functions, bound before any patch.
#: The calls that change the process's identity or session for good (uWSGI makes them
#: with ``--uid``, ``--gid``, ``--chroot``, ...): refused in a virtual process.
_IDENTITY = [name for name in ("setuid", "setgid", "seteuid", "setegid", "setreuid",
                               "setregid", "setresuid", "setresgid", "setgroups",
                               "initgroups", "chroot", "setsid", "setpgid", "setpgrp")
             if hasattr(os, name)]
#: The functions of ``faulthandler``, which act on a virtual process (see the doc).
_FAULTHANDLER = ("enable", "disable", "is_enabled", "dump_traceback", "dump_traceback_later",
                 "cancel_dump_traceback_later", "register", "unregister")
_REAL = {
    "_exit": os._exit, "kill": os.kill, "killpg": os.killpg, "getppid": os.getppid,
    "getpgrp": os.getpgrp, "getpgid": os.getpgid,
    "register": _atexit.register, "unregister": _atexit.unregister,
    "signal": _signal.signal, "getsignal": _signal.getsignal,
    **{name: getattr(os, name) for name in _IDENTITY},
    "abort": os.abort, "fork": os.fork, "forkpty": os.forkpty, "alarm": _signal.alarm,
    "setitimer": _signal.setitimer, "pause": _signal.pause, "system": os.system,
    "raise_signal": _signal.raise_signal, "pthread_kill": _signal.pthread_kill,
    "set_wakeup_fd": _signal.set_wakeup_fd, "siginterrupt": _signal.siginterrupt,
    "register_at_fork": os.register_at_fork,
    **{f"faulthandler_{name}": getattr(faulthandler, name) for name in _FAULTHANDLER},
    "clock_settime": time.clock_settime, "clock_settime_ns": time.clock_settime_ns,
    "pthread_sigmask": _signal.pthread_sigmask, "sigwait": _signal.sigwait,
    "sigwaitinfo": _signal.sigwaitinfo, "sigtimedwait": _signal.sigtimedwait,
    "posix_spawn": os.posix_spawn, "posix_spawnp": os.posix_spawnp, "execv": os.execv,
    "execve": os.execve, "start": threading.Thread.start, "rlock": threading.RLock,
    "counter": threading._counter,  # type: ignore[attr-defined]
    "enumerate": threading.enumerate, "thread_name": threading.Thread.name,
    "create_connection": _socket.create_connection, "connect": _socket.socket.connect,
    "connect_ex": _socket.socket.connect_ex,
    "dup2": os.dup2, "close": os.close, "closerange": os.closerange,
}
_REAL_LOCK = threading.Lock
_SAVED_EXECUTE_CHILD = subprocess.Popen._execute_child  # type: ignore[attr-defined]
_EXECUTE_CHILD_SIGNATURE = inspect.signature(_SAVED_EXECUTE_CHILD)
#: The files between app code and the start of a command (this one included).
_SPAWNERS = {os.__file__, subprocess.__file__, __file__}
#: The host's functions, for the simulator's own use (``fork`` mode's OS processes).
REAL = types.SimpleNamespace(**_REAL)
#: In a ``fork``-mode child: sends an ``os.kill`` to the parent, which owns the
#: virtual processes (set by ``simuwsgi.modes.fork``).
forward_kill: Callable[[int, int], None] | None = None
#: In a ``fork``-mode child: tells the parent the app's Python handler of a signal.
forward_signal: Callable[[int, Any], None] | None = None
_S = _signal.Signals
#: The signal the watchdog sends the main thread (a real-time one: test tools such as
#: pytest-timeout use SIGALRM, apps use SIGUSR1/2).
_STALL_SIGNAL = getattr(_signal, "SIGRTMIN", int(_S.SIGUSR2)) + 7
#: The signal of the CPU-time timer that catches C calls the watchdog thread cannot
#: (``ITIMER_VIRTUAL``: profilers use SIGPROF, timeouts SIGALRM).
_CPU_SIGNAL = _S.SIGVTALRM


class StallInterrupt(BaseException):
    """Raised in app code that has not yielded for ``stall_timeout`` real seconds."""


class SimulationInterrupted(KeyboardInterrupt):
    """Ctrl-C while a simulation runs: always the test's, never the app's."""


class ProcessExit(BaseException):
    """Raised inside a virtual process to end it (``exit()`` in C, or a SystemExit).

    App code must not be able to catch a C ``exit()``: raise it only from simulator
    code that app code does not wrap, else use ``containment.die_now``.
    """

    def __init__(self, reason: str, code: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code

    @classmethod
    def from_system_exit(cls, exc: SystemExit) -> ProcessExit:
        """``PyErr_Print`` of a ``SystemExit``: ``Py_Exit`` with its status."""
        return cls("SystemExit", exit_code_of(exc))


#: The simulator's own exceptions travelling through app frames: never the app's error.
CONTROL: tuple[type[BaseException], ...] = (
    Killed, ProcessExit, StallInterrupt, SimulationInterrupted, greenlet.GreenletExit)


def check_duration(name: str, value: Any, *, negative: bool = False) -> float:
    """``value`` as a float of seconds, or a ``ValueError`` saying what is wrong."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number of seconds, not {value!r}") from None
    if math.isnan(seconds) or math.isinf(seconds):
        raise ValueError(f"{name} must be a finite number of seconds, got {value!r}")
    if seconds < 0 and not negative:
        raise ValueError(f"{name} must not be negative, got {value!r}: virtual time "
                         "only moves forward (step_clock() steps the wall clock back)")
    return seconds


# -- dying -------------------------------------------------------------------------------
def die_now(inst: Instance, proc: UProcess, reason: str, *, code: int | None = None,
            signum: int | None = None) -> None:
    """The running process ``proc`` ends here, as a C ``exit()``/``_exit()`` or a fatal
    signal ends an OS process: no more of its code runs (an ``except BaseException`` in
    the app cannot catch it; its ``finally`` blocks run only when the simulation closes,
    since a greenlet cannot be freed without unwinding it). The master reaps it."""
    proc.exit_code = code  # type: ignore[attr-defined]
    kernel = inst.kernel
    if proc is inst.master and not inst.ready:
        inst.exit_status = 128 + signum if signum else (code or 0)
        inst.exit_reason = reason
    kernel.call_soon(inst.kill, proc, reason, signum)
    kernel.park(reason)


def c_exit(inst: Instance, reason: str, code: int) -> None:
    """C ``exit(code)`` in the running process (a fatal error inside a ``uwsgi`` call):
    its ``atexit`` handlers run (``uwsgi_python_atexit``, skipped in a worker busy
    with a request), then it dies where it stands."""
    proc = inst.kernel.current
    if proc is None:  # the test itself called the module
        raise SimulationError(f"{reason}: uWSGI would exit with status {code}")
    if not (proc.kind == "worker" and proc.busy):
        run_atexit(inst, proc)
    die_now(inst, proc, reason, code=code)


def exit_code_of(exc: SystemExit) -> int:
    """The status ``Py_Exit`` gives for a ``SystemExit`` (``handle_system_exit``)."""
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    return 1


def has_exit_hooks(inst: Instance, proc: UProcess) -> bool:
    """Whether :func:`run_atexit` would run anything in ``proc`` (sim mode)."""
    if getattr(proc, "atexit_ran", False):
        return False
    return bool(getattr(proc, "atexit", None)) or \
        inst.facade.__dict__.get("atexit") is not None


def run_atexit(inst: Instance, proc: UProcess) -> None:
    """``uwsgi_python_atexit`` for ``proc``, in its context: ``uwsgi.atexit`` if the
    process has one (errors printed), then, unless ``--skip-atexit-teardown`` skips
    ``Py_Finalize``, the ``atexit`` handlers, last registered first (a failing one is
    reported as Python does and the rest run). Once per process."""
    if inst.forks is not None and forward_kill is None:  # fork mode, in the parent
        outer = inst.kernel.current
        inst.kernel.current = proc
        try:
            inst.forks.run_atexit(proc)
        finally:
            inst.kernel.current = outer
        return
    handlers = getattr(proc, "atexit", None)
    own = getattr(proc, "hooks", None)  # (a fork mode child: its module's attribute)
    hook = own.get("atexit") if own is not None else inst.facade.__dict__.get("atexit")
    if getattr(proc, "atexit_ran", False) or not (handlers or hook is not None):
        return
    proc.atexit_ran = True  # type: ignore[attr-defined]
    proc.atexit = []  # type: ignore[attr-defined]
    kernel = inst.kernel
    outer = kernel.current
    if outer is not proc:
        kernel.current = proc
        kernel.switch_context(proc.context)
    try:
        if hook is not None:
            inst.call_python(hook)
        if inst.opts.flag("skip-atexit-teardown"):
            return  # no Py_Finalize: the atexit module's handlers never run
        for func, args, kwargs in reversed(handlers or ()):
            try:
                func(*args, **kwargs)
            except CONTROL:
                raise
            except BaseException:  # noqa: BLE001 - _PyErr_WriteUnraisableMsg
                inst.log(f"Exception ignored in atexit callback: {func!r}", proc)
                for line in traceback.format_exc().rstrip("\n").splitlines():
                    inst.log(line, proc)
    finally:
        kernel.current = outer


# -- signals -----------------------------------------------------------------------------
#: What each signal does to each kind of uWSGI process (after its setup), when the app
#: installed no Python handler for it. Actions: "reload", "brutal", "stop" (master),
#: "graceful-stop" (``gracefully_kill_them_all``: a ``unix_signal:`` hook's),
#: "graceful" (``gracefully_kill``), "end" (``end_me``: exit(30)), "stats",
#: "backtrace" (``what_i_am_doing``), "pipe" (``warn_pipe``), "wakeup" (spooler),
#: "ignore"; a signal not listed kills the process (its default action), except those
#: whose default is to be ignored.
SIGNAL_TABLE: dict[str, dict[int, str]] = {
    "master": {_S.SIGHUP: "reload", _S.SIGTERM: "brutal", _S.SIGQUIT: "stop",
               _S.SIGINT: "stop", _S.SIGUSR1: "stats", _S.SIGPIPE: "ignore"},
    "worker": {_S.SIGHUP: "graceful", _S.SIGINT: "end", _S.SIGTERM: "end",
               _S.SIGUSR1: "stats", _S.SIGUSR2: "backtrace", _S.SIGPIPE: "pipe"},
    "mule": {_S.SIGHUP: "end", _S.SIGINT: "end", _S.SIGTERM: "end", _S.SIGALRM: "ignore",
             _S.SIGUSR1: "ignore", _S.SIGUSR2: "ignore", _S.SIGPIPE: "ignore",
             _S.SIGTSTP: "ignore"},
    "spooler": {_S.SIGHUP: "ignore", _S.SIGINT: "end", _S.SIGTERM: "end",
                _S.SIGUSR1: "wakeup", _S.SIGUSR2: "ignore", _S.SIGALRM: "ignore",
                _S.SIGPIPE: "ignore", _S.SIGTSTP: "ignore"},
}
#: Signals whose default action is to do nothing.
_DEFAULT_IGNORED = {_S.SIGCHLD, _S.SIGWINCH, _S.SIGURG, _S.SIGCONT}
#: Signals whose default action stops or continues the process: not simulated.
_STOPPING = {_S.SIGSTOP, _S.SIGTSTP, _S.SIGTTIN, _S.SIGTTOU}


def _signame(signum: int) -> str:
    try:
        return _S(signum).name
    except ValueError:
        return str(signum)


def deliver(inst: Instance, proc: UProcess, signum: int) -> None:
    """Signal ``signum`` arrives at virtual process ``proc`` (``os.kill``).

    To the process that sends it, it arrives at once (the call may not return); to any
    other process, at the current instant after what is already due. A Python handler
    of another process runs in that process when it next runs (``_run_handler``).
    """
    if signum == 0:
        return
    kernel = inst.kernel
    running = kernel.current is not None and kernel.current.main is proc
    if not fault_dump(inst, proc, signum, running):
        return  # faulthandler.register(signum) without chain: the dump was all
    handler = getattr(proc, "py_signals", {}).get(signum)
    if handler is not None and handler not in (_signal.SIG_DFL, _signal.SIG_IGN):
        inst.record("os.signal", proc, signum=signum, action="handler")
        wake(proc, signum, lambda line: inst.log(line, proc))
        if kernel.current is proc and inst.forks is None:
            handler(signum, sys._getframe(1))
        else:
            kernel.interrupt(proc, lambda: _run_handler(inst, handler, signum))
        return
    if handler == _signal.SIG_IGN:
        return
    action = _action(inst, proc, signum)
    if _running_in(inst, proc) is not None:
        _act(inst, proc, signum, action)
    else:
        kernel.call_soon(_act, inst, proc, signum, action)


def _action(inst: Instance, proc: UProcess, signum: int) -> str:
    kind = proc.kind
    if kind == "master" and signum in inst.master_signals:  # a unix_signal: hook's
        return inst.master_signals[signum]
    if kind == "master" and not inst.ready:
        # uwsgi.c ignores SIGHUP and SIGTERM until the master loop sets its handlers
        if signum in (_S.SIGHUP, _S.SIGTERM, _S.SIGPIPE):
            return "ignore"
        action = ""
    else:
        action = SIGNAL_TABLE[kind].get(signum, "")
        if action == "pipe" and (inst.opts.flag("ignore-sigpipe")
                                 or inst.opts.flag("write-errors-exception-only")):
            action = "ignore"  # the worker sets no warn_pipe handler (core/uwsgi.c)
    if kind == "master" and inst.die_on_term and action in ("brutal", "stop") \
            and signum != _S.SIGINT:
        action = "stop" if action == "brutal" else "brutal"
    if action:
        return action
    if signum in _DEFAULT_IGNORED:
        return "ignore"
    if signum in _STOPPING:
        raise NotSimulatedError(
            f"os.kill({proc.pid}, {_signame(signum)}): stopping a {kind} is not simulated")
    if kind == "master":
        raise NotSimulatedError(
            f"os.kill({proc.pid}, {_signame(signum)}): the death of the master is not "
            "simulated (uWSGI's workers would live on as orphans)")
    return "die"


def _act(inst: Instance, proc: UProcess, signum: int, action: str) -> None:
    from .processes import Worker

    if not proc.alive and not (proc is inst.master and inst.ready):
        return
    inst.record("os.signal", proc, signum=signum, action=action)
    if action == "ignore":
        return
    if action == "reload":
        inst.request_reload()
    elif action == "brutal":
        inst.kernel.call_soon(inst._brutal_reload)
    elif action == "stop":
        inst.kernel.call_soon(inst.shutdown)
    elif action == "graceful-stop":
        inst.kernel.call_soon(inst.graceful_shutdown)
    elif action == "stats":
        stats(inst, proc)
    elif action == "backtrace":
        req = proc.request
        if req is not None:
            since = _R.ctime(inst.clock.wall_offset + req.started)
            inst.log(f"SIGUSR2: --- uWSGI worker {proc.id} (pid: {proc.pid}) is managing "
                     f"request {req.path} since {since} ---", proc)
    elif action == "pipe":
        req = proc.request
        where = f" on request {req.path} (ip {req.remote_addr})" if req is not None else ""
        inst.log_verbose(f"SIGPIPE: writing to a closed pipe/socket/fd (probably the "
                         f"client disconnected){where} !!!", proc)  # dated (warn_pipe)
    elif action == "wakeup":
        spooler = inst.subsystems.get("spooler")
        if spooler is not None:
            spooler._wake_spoolers(proc.directory)  # type: ignore[attr-defined]
    elif action == "graceful":
        inst.log(f"Gracefully killing worker {proc.id} (pid: {proc.pid})...", proc)
        assert isinstance(proc, Worker)
        proc.manage_next_request = False
        if not proc.busy:
            _end(inst, proc, "graceful", 17)
        else:
            proc.stop_accepting()
    elif action == "end":
        _end(inst, proc, "end_me", 30)
    else:  # "die": the default action of the signal kills the process
        running = _running_in(inst, proc)
        if running is not None:
            die_now(inst, running, f"killed by {_signame(signum)}", signum=signum)
        else:
            inst.kill(proc, f"killed by {_signame(signum)}", signum)


def _end(inst: Instance, proc: UProcess, reason: str, code: int) -> None:
    """``exit(code)`` from a signal handler: ``atexit`` unless a worker is busy."""
    if proc is inst.master:
        return
    # (--skip-atexit: end_me's _exit() instead of exit(), in any process but the master)
    if not proc.busy and not inst.opts.flag("skip-atexit"):
        run_atexit(inst, proc)
    proc.exit_code = code  # type: ignore[attr-defined]
    running = _running_in(inst, proc)
    if running is not None:
        die_now(inst, running, reason, code=code)
    else:
        inst.kill(proc, reason, None)


def _running_in(inst: Instance, proc: UProcess) -> UProcess | None:
    """The running virtual process if it is ``proc`` or one of its threads (a core of a
    ``--threads`` worker): the one whose code must stop at once when ``proc`` dies."""
    current = inst.kernel.current
    return current if current is not None and current.main is proc else None


def _run_handler(inst: Instance, handler: Any, signum: int) -> None:
    """A Python signal handler, run in its process at the next point it runs (as
    CPython runs it at the next bytecode of the process's main thread): with its pid
    and globals, and the app's frame it interrupts. When the process was running app
    code (a request), what the handler raises comes out there, as in CPython; when it
    was idle in uWSGI's own loop, the handler is a ``python_call`` (printed, SystemExit
    ends the process). In fork mode the handler lives in the process's OS child."""
    if inst.forks is not None:
        inst.forks.signal(inst.kernel.current, signum)
        return
    frame = app_frame(sys._getframe(1))
    if frame is not None:
        handler(signum, frame)
    else:
        inst.call_python(handler, signum, None)


def is_simulator_frame(filename: str) -> bool:
    """A frame of simuwsgi itself, which uWSGI's C code stands for in a traceback (its
    ``uwsgidecorators`` stands for a Python file of uWSGI's, whose frames do show)."""
    return (filename.startswith(_PACKAGE_DIR)
            and not filename.endswith(os.sep + "uwsgidecorators.py"))


def app_frame(frame: Any) -> Any:
    """The innermost frame of app code under ``frame``, None if only the simulator's."""
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
    return frame


def stats(inst: Instance, proc: UProcess) -> None:
    """``stats()`` (SIGUSR1, the master fifo's ``s``): what ``proc`` dumps in the log."""
    if proc.kind == "master":
        show_config(inst, proc)
    for line in _stats_lines(inst, proc):
        inst.log(line, proc)


def _stats_lines(inst: Instance, proc: UProcess) -> list[str]:
    """``stats()`` (SIGUSR1): the master dumps its configuration (:func:`show_config`)
    and every worker's app counters; a worker, its own."""
    total = inst.total_requests  # requests done; an app's count includes the one running

    def app_line(w: Any) -> str:
        requests = w.app_requests.get(0, 0) + len(w.in_flight())
        return f"app 0 [] requests: {requests} exceptions: {w.app_exceptions.get(0, 0)}"

    if proc.kind == "master":  # after show_config()'s block
        lines = [f"\tworkers total requests: {total}", "-----------------"]
        for wid in sorted(inst.workers):
            lines += [f"\tworker {wid} {app_line(inst.workers[wid])}", "-----------------"]
        return [*lines, ""]
    if proc.kind == "worker":
        return [f"worker {proc.id} total requests: {total}", f"\t{app_line(proc)}",
                "-----------------", ""]
    return []


# -- the patches -------------------------------------------------------------------------
class Containment:
    """One simulation's share of the process-level patches (see the module docstring)."""

    def __init__(self, inst: Instance) -> None:
        self.inst = inst
        self.thread = _host_ident()
        #: The threads app code starts in virtual processes.
        self.threads = inst.app_threads = AppThreads(self)
        #: The ids of those it starts in a fork mode's OS process (host threads there).
        self.app_idents: set[int] = set()
        pyargv = inst.opts.str("pyargv") or ""
        self.argv = ["uwsgi", *pyargv.split()]
        #: Whether commands app code starts run (``Simulation(subprocess=...)``).
        self.subprocess: Any = "run"
        #: A cluster node's sockets (``simuwsgi.network._appsockets``): ``connect(address,
        #: timeout)`` gives a virtual socket or None (the host's), ``check(address)``
        #: refuses a raw socket's connect; None: the app's sockets are the host's.
        self.sockets: Any = None

    def running(self) -> UProcess | None:
        """The virtual process running app code now, if this thread runs one of ours."""
        if _host_ident() != self.thread:
            return None
        return self.inst.kernel.current  # type: ignore[return-value]

    def process_by_pid(self, pid: int) -> UProcess | None:
        inst = self.inst
        if inst.master is not None and inst.master.pid == pid:
            return inst.master
        for group in (inst.workers, inst.mules, inst.spoolers):
            for proc in group.values():
                if proc.pid == pid and proc.alive:
                    return proc
        return None

    def group(self) -> list[UProcess]:
        inst = self.inst
        procs: list[UProcess] = [p for g in (inst.workers, inst.mules, inst.spoolers)
                                 for p in g.values() if p.alive]
        return procs + ([inst.master] if inst.master is not None else [])

    def install(self) -> None:
        _ACTIVE.append(self)
        if len(_ACTIVE) == 1:
            _install()

    def uninstall(self) -> None:
        if self in _ACTIVE:
            _ACTIVE.remove(self)
            if not _ACTIVE:
                _uninstall()
        self.threads.close()


_ACTIVE: list[Containment] = []
_SAVED: dict[str, Any] = {}


def _current() -> tuple[Containment, UProcess] | None:
    """The simulation and virtual process making a call (None: the host's own); a
    thread the app started may make none of these calls."""
    for contain in reversed(_ACTIVE):
        proc = contain.running()
        if proc is not None:
            return contain, proc
        if contain.app_idents and _host_ident() in contain.app_idents:
            raise NotSimulatedError(
                "in fork mode a thread started by app code runs as a host thread, "
                "outside the simulation: it cannot signal, exit or register handlers; "
                "do it in a request, a signal handler or a mule")
    return None


def _exit(status: int) -> None:
    found = _current()
    if found is None:
        _REAL["_exit"](status)
        return
    contain, proc = found
    die_now(contain.inst, proc, f"os._exit({status})", code=int(status) & 0xFF)


def _no_such_process(pid: int, what: str) -> ProcessLookupError:
    return ProcessLookupError(
        3, f"No such process: {what} {pid} is not a process of this simulation "
           "(simuwsgi: app code cannot signal real processes)")


def _kill(pid: int, signum: int) -> None:
    found = _current()
    if found is None:
        _REAL["kill"](pid, signum)
        return
    contain, proc = found
    signum = int(_signal.Signals(signum)) if signum else 0  # ValueError, as kill() gives
    if forward_kill is not None:  # a fork-mode child
        if pid == proc.pid and not fault_dump(contain.inst, proc, signum, True):
            return
        handler = proc.py_signals.get(signum) if pid == proc.pid else None
        if callable(handler):
            wake(proc, signum, stderr_line)
            handler(signum, sys._getframe(1))
        else:
            forward_kill(pid, signum)
        return
    if pid in (0, -contain.inst.master.pid if contain.inst.master else 0) or pid == -1:
        targets = contain.group()
    else:
        target = contain.process_by_pid(pid)
        if target is None:
            raise _no_such_process(pid, "pid")
        targets = [target]
    for target in targets:
        deliver(contain.inst, target, signum)


def _raise_signal(signum: int) -> None:
    """``signal.raise_signal``: the calling process signals itself (``raise(3)``), as
    ``os.kill(os.getpid(), signum)`` does."""
    found = _current()
    if found is None:
        _REAL["raise_signal"](signum)
        return
    _kill(found[1].pid, signum)


def _pthread_kill(thread_id: int, signum: int) -> None:
    """``signal.pthread_kill``: a signal to a thread of the calling process. Python runs
    its handler in the process's main thread whichever thread gets it, so in a virtual
    process it is the process's signal (0 only checks, as for a live thread)."""
    found = _current()
    if found is None:
        _REAL["pthread_kill"](thread_id, signum)
        return
    if signum:
        _kill(found[1].pid, signum)


def _killpg(pgid: int, signum: int) -> None:
    found = _current()
    if found is None:
        _REAL["killpg"](pgid, signum)
        return
    contain, _proc = found
    master = contain.inst.master
    if pgid != 0 and (master is None or pgid != master.pid):
        raise _no_such_process(pgid, "process group")
    _kill(0, signum)


def _getppid() -> int:
    found = _current()
    if found is None or found[1] is found[0].inst.master or found[0].inst.master is None:
        return int(_REAL["getppid"]())
    return int(found[0].inst.master.pid)  # type: ignore[union-attr]


#: Virtual thread ids of cores >= 1 are in [BASE, LIMIT) (the host's are addresses).
_CORE_IDENT_BASE = 1 << 20
_CORE_IDENT_LIMIT = 1 << 40


def _get_ident() -> int:
    for contain in reversed(_ACTIVE):
        proc = contain.running()
        if proc is not None:
            vident = getattr(proc, "vident", None)  # a thread the app started
            if vident is not None:
                return vident  # type: ignore[no-any-return]
            core = getattr(proc, "core", 0)
            return _CORE_IDENT_BASE + proc.pid * 256 + core if core else _host_ident()
    return _host_ident()


def _local_owner() -> Any:
    """``_threading_local``'s ``current_thread``: whose namespace a ``threading.local``
    shows, the running virtual process's core, or the host thread."""
    for contain in reversed(_ACTIVE):
        proc = contain.running()
        if proc is not None:  # (a fork-mode child's stand-in has none: the host's)
            return getattr(proc, "thread_token", None) or threading.current_thread()
    return threading.current_thread()


def _virtual() -> tuple[Containment, UProcess] | None:
    """The simulation and virtual process running app code on this OS thread now, if
    its threads are virtual (not in fork mode, where app code has OS processes)."""
    for contain in reversed(_ACTIVE):
        proc = contain.running()
        if proc is not None:
            if forward_kill is not None or contain.inst.forks is not None:
                return None
            return contain, proc
    return None


def _core_name(thread: threading.Thread) -> str | None:
    """The name uWSGI gives ``thread`` in the running virtual process: a worker's main
    thread is ``uWSGIWorker<wid>Core0`` (``uwsgi_python_set_thread_name`` after the
    fork), its core N's ``uWSGIWorker<wid>Core<N>``; None: the thread's own name (the
    master's, a mule's, a thread the app started)."""
    found = _virtual()
    if found is None:
        return None
    proc = found[1]
    main = proc.main
    names = main.__dict__.get("_thread_names")
    ident = thread.ident or 0
    if names is not None and ident in names:
        return names[ident]  # type: ignore[no-any-return]
    if main.kind != "worker" or main.id <= 0:
        return None
    if thread is threading.main_thread():
        return f"uWSGIWorker{main.id}Core0"
    core = ident - _CORE_IDENT_BASE - proc.pid * 256
    return f"uWSGIWorker{main.id}Core{core}" if 0 < core < 256 else None


def _get_thread_name(thread: threading.Thread) -> str:
    name = _core_name(thread) if thread.ident is not None else None
    return thread._name if name is None else name  # type: ignore[attr-defined]


def _set_thread_name(thread: threading.Thread, name: str) -> None:
    """A name set in a virtual process on its main thread or a core stays that
    process's (the main thread is the test process's too)."""
    if _core_name(thread) is not None:
        found = _virtual()
        assert found is not None
        found[1].main.__dict__.setdefault("_thread_names", {})[thread.ident] = str(name)
        return
    _REAL["thread_name"].fset(thread, name)


def _thread_start(thread: threading.Thread) -> None:
    """``Thread.start`` from app code: a virtual thread of its virtual process
    (``appthreads``); in fork mode's OS processes, a contained host thread. The
    simulator's own threads (``network="real"``'s client...) are left alone;
    ``uwsgidecorators.thread`` starts the app's."""
    owner = next((c for c in reversed(_ACTIVE) if c.running() is not None), None)
    caller = sys._getframe(1).f_globals.get("__name__", "")
    if owner is None or (caller.startswith("simuwsgi.")
                         and caller != "simuwsgi.uwsgidecorators"):
        _REAL["start"](thread)
        return
    found = _virtual()
    if found is not None:  # (the process's own node's, in a cluster sharing the kernel)
        found[1].inst.app_threads.start(found[1], thread)
        return
    thread.daemon = True
    run = thread.run

    def contained_run() -> None:
        owner.app_idents.add(_host_ident())  # before any of its code runs
        run()

    thread.run = contained_run  # type: ignore[method-assign]
    _REAL["start"](thread)


def _lock() -> Any:
    """``threading.Lock()``: one the threads of a simulation wait for in virtual time
    when made in a virtual process (outside ``host_section``), else the host's."""
    found = _virtual()
    return VLock(found[0]) if found is not None and not _HOST[0] else _REAL_LOCK()


def _rlock(*args: Any, **kwargs: Any) -> Any:
    """``threading.RLock()``: in a virtual process, the pure-Python one over a ``VLock``."""
    if _virtual() is not None and not _HOST[0]:
        return threading._PyRLock(*args, **kwargs)  # type: ignore[attr-defined]
    return _REAL["rlock"](*args, **kwargs)


class _SimpleQueue(queue._PySimpleQueue):  # type: ignore[name-defined,misc]
    """``queue.SimpleQueue()``: in a virtual process, the pure-Python one, whose ``get``
    waits on a ``threading.Semaphore`` (virtual time); the C one's waits on a lock of its
    own that no virtual wait can see (a ``ThreadPoolExecutor`` worker thread stalled the
    simulation). Elsewhere the host's."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if _virtual() is None or _HOST[0]:
            return _queue.SimpleQueue()
        return super().__new__(cls)


#: How many ``host_section`` blocks run now (they run on the main thread only).
_HOST = [0]


@contextlib.contextmanager
def host_section() -> Iterator[None]:
    """While the block runs, the locks made are host locks even in a virtual process:
    for the simulator's own work with host threads there (``network="real"``'s helper
    thread, whose ``Thread.start`` and ``join`` wait for it on locks a host thread
    releases), which virtual waits would turn into a deadlock."""
    _HOST[0] += 1
    try:
        yield
    finally:
        _HOST[0] -= 1


def _enumerate() -> list[threading.Thread]:
    """``threading.enumerate()``: a virtual process sees its own threads and the host
    its own (not the cores' and app threads of the virtual processes)."""
    found = _virtual()
    if found is not None:
        proc = found[1]
        base = _CORE_IDENT_BASE + proc.pid * 256
        return proc.inst.app_threads.enumerate(proc, range(base + 1, base + 256))
    return [t for t in _REAL["enumerate"]()
            if not _CORE_IDENT_BASE <= (t.ident or 0) < _CORE_IDENT_LIMIT]


def _active_count() -> int:
    return len(_enumerate())


def _counter() -> int:
    """The N of a new thread's "Thread-N" name: counted per virtual process."""
    found = _virtual()
    if found is None:
        return _REAL["counter"]()  # type: ignore[no-any-return]
    return found[1].inst.app_threads.name_number(found[1])  # type: ignore[no-any-return]


def _forget_core_threads() -> None:
    """The ``_DummyThread`` of every core goes (and their ``threading.local`` data)."""
    active = threading._active  # type: ignore[attr-defined]
    for ident in [i for i in active if _CORE_IDENT_BASE <= i < _CORE_IDENT_LIMIT]:
        active.pop(ident, None)


def _getpgrp() -> int:
    found = _current()
    if found is None or found[0].inst.master is None:
        return int(_REAL["getpgrp"]())
    return int(found[0].inst.master.pid)  # uWSGI's processes are the master's group


def _getpgid(pid: int) -> int:
    found = _current()
    if found is None:
        return int(_REAL["getpgid"](pid))
    if pid != 0 and found[0].process_by_pid(pid) is None:
        raise _no_such_process(pid, "pid")
    return _getpgrp()


def _register(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Callable[..., Any]:
    found = _current()
    if found is None:
        return _REAL["register"](func, *args, **kwargs)  # type: ignore[no-any-return]
    proc = found[1]
    if not hasattr(proc, "atexit"):
        proc.atexit = []  # type: ignore[attr-defined]
    proc.atexit.append((func, args, kwargs))  # type: ignore[attr-defined]
    return func


def _unregister(func: Callable[..., Any]) -> None:
    found = _current()
    if found is None:
        _REAL["unregister"](func)
        return
    proc = found[1]
    proc.atexit = [h for h in getattr(proc, "atexit", []) if h[0] != func]  # type: ignore[attr-defined]


def _valid_signal(signum: int) -> int:
    if signum not in _signal.valid_signals():
        raise ValueError("signal number out of range")
    return int(signum)


def _signal_signal(signum: int, handler: Any) -> Any:
    found = _current()
    if found is None:
        return _REAL["signal"](signum, handler)
    signum = _valid_signal(signum)
    if signum in (_S.SIGKILL, _S.SIGSTOP):
        raise OSError(22, "Invalid argument")
    if not callable(handler) and handler not in (_signal.SIG_DFL, _signal.SIG_IGN):
        raise TypeError("signal handler must be signal.SIG_IGN, signal.SIG_DFL, or a "
                        "callable object")
    proc = found[1]
    table = getattr(proc, "py_signals", None)
    if table is None:
        table = proc.py_signals = {}  # type: ignore[attr-defined]
    previous = table.get(signum, _signal.SIG_DFL)
    table[signum] = handler
    if forward_signal is not None:
        forward_signal(signum, handler)
    return previous


#: A process's wakeup descriptor before ``signal.set_wakeup_fd``: none.
NO_WAKEUP = (-1, True)


def _set_wakeup_fd(fd: Any, /, *, warn_on_full_buffer: bool = True) -> int:
    """``signal.set_wakeup_fd`` in a virtual process: that process's descriptor (the
    number of each signal it gets is written there, :func:`wake`), checked as CPython
    checks it; the previous one is returned (-1: none)."""
    found = _current()
    if found is None:
        return _REAL["set_wakeup_fd"](  # type: ignore[no-any-return]
            fd, warn_on_full_buffer=warn_on_full_buffer)
    fd = operator.index(fd)
    if fd != -1:
        os.fstat(fd)  # OSError (EBADF...), as CPython's
        if os.get_blocking(fd):
            raise ValueError(f"the fd {fd} must be in non-blocking mode")
    proc = found[1]
    previous = getattr(proc, "wakeup_fd", NO_WAKEUP)[0]
    proc.wakeup_fd = (fd, bool(warn_on_full_buffer))  # type: ignore[union-attr]
    return int(previous)


def wake(proc: Any, signum: int, log: Callable[[str], None]) -> None:
    """A signal with a Python handler arrives at ``proc``: CPython's C handler writes its
    number, one byte, to the process's wakeup descriptor (if any) before the handler
    runs; a failed write is reported as CPython reports it (``log``: a line each), a
    full buffer only with ``warn_on_full_buffer``."""
    fd, warn = getattr(proc, "wakeup_fd", NO_WAKEUP)
    if fd < 0:
        return
    try:
        os.write(fd, bytes([signum & 0xFF]))
    except OSError as exc:
        if warn or not isinstance(exc, BlockingIOError):
            log("Exception ignored when trying to write to the signal wakeup fd:")
            log(f"{type(exc).__name__}: {exc}")


def stderr_line(line: str) -> None:
    """A line on the process's stderr (a fork mode child's: the instance's log)."""
    print(line, file=sys.stderr)


def _siginterrupt(signum: int, flag: bool) -> None:
    """``signal.siginterrupt`` in a virtual process: whether the signal interrupts a
    system call in progress. A virtual process's signals are not the OS's and never
    interrupt the host's system calls, so only the arguments are checked; the host's
    signal table is not touched."""
    if _current() is None:
        _REAL["siginterrupt"](signum, flag)
        return
    _valid_signal(operator.index(signum))
    operator.index(flag)


# -- os.register_at_fork -------------------------------------------------------------------
def _register_at_fork(*, before: Any = None, after_in_child: Any = None,
                      after_in_parent: Any = None) -> None:
    """``os.register_at_fork`` in a virtual process: hooks of that process (inherited by
    the processes forked from it), run when uWSGI runs CPython's fork hooks
    (:func:`fork_hook_mode`), never by the test process's own forks."""
    found = _current()
    if found is None:
        _REAL["register_at_fork"](before=before, after_in_child=after_in_child,
                                  after_in_parent=after_in_parent)
        return
    hooks = (before, after_in_child, after_in_parent)
    if hooks == (None, None, None):
        raise TypeError("At least one argument is required.")
    for name, hook in zip(("before", "after_in_child", "after_in_parent"), hooks,
                          strict=True):
        if hook is not None and not callable(hook):
            raise TypeError(f"'{name}' must be callable, not {type(hook).__name__}")
    proc = getattr(found[1], "main", found[1])
    proc.fork_hooks = [*getattr(proc, "fork_hooks", ()), hooks]


def fork_hook_mode(opts: Any, kind: str) -> str | None:
    """Which of CPython's fork hooks uWSGI 2.0.30 runs for a process of ``kind`` it
    forks (``plugins/python/python_plugin.c``; ``uwsgi.has_threads`` is always 1 in
    pyuwsgi): ``"uwsgi"`` with ``--py-call-uwsgi-fork-hooks``, around a worker's fork
    (``before`` in the master, ``after_in_parent`` there after it, ``after_in_child`` in
    the worker before anything else, ``uwsgi.worker_id()`` still 0); ``"os"`` with
    ``--py-call-osafterfork`` alone, ``after_in_child`` in every forked process's
    post-fork; None: none (uWSGI forks in C)."""
    if opts.flag("py-call-uwsgi-fork-hooks"):
        return "uwsgi" if kind == "worker" else None
    return "os" if opts.flag("py-call-osafterfork") else None


def run_fork_hooks(inst: Instance, hooks: Any, which: str) -> None:
    """CPython's ``run_at_forkers``: the ``before`` hooks last registered first, the
    others in order; one that raises is printed as ``PyErr_WriteUnraisable`` prints it
    ("Exception ignored in: ...") and the next runs."""
    index = ("before", "after_in_child", "after_in_parent").index(which)
    funcs = [hook[index] for hook in hooks if hook[index] is not None]
    for func in reversed(funcs) if which == "before" else funcs:
        try:
            func()
        except CONTROL:
            raise
        except BaseException as exc:  # noqa: BLE001 - PyErr_WriteUnraisable
            inst.log_raw(f"Exception ignored in: {func!r}")
            for line in inst.exception_lines(exc):
                inst.log_raw(line)


# -- faulthandler ---------------------------------------------------------------------------
#: The signals ``faulthandler.enable`` handles, and CPython's words for them.
_FATAL = {_S.SIGBUS: "Bus error", _S.SIGILL: "Illegal instruction",
          _S.SIGFPE: "Floating point exception", _S.SIGABRT: "Aborted",
          _S.SIGSEGV: "Segmentation fault"}


class FaultHandler:
    """A virtual process's ``faulthandler`` state: enabled (where to), the signals
    registered, the pending ``dump_traceback_later``."""

    __slots__ = ("enabled", "later", "registered")

    def __init__(self) -> None:
        #: (file, all_threads) while enabled
        self.enabled: tuple[Any, bool] | None = None
        #: signum -> (file, all_threads, chain)
        self.registered: dict[int, tuple[Any, bool, bool]] = {}
        self.later: Any = None

    def inherited(self) -> FaultHandler:
        """A forked child's: the same handlers (no ``dump_traceback_later``: its thread
        does not survive a fork)."""
        child = FaultHandler()
        child.enabled = self.enabled
        child.registered = dict(self.registered)
        return child


def _fault_state(proc: Any) -> FaultHandler:
    state = getattr(proc, "fault_handler", None)
    if state is None:
        state = proc.fault_handler = FaultHandler()
    return state  # type: ignore[no-any-return]


def _fault_file(file: Any) -> Any:
    """Where faulthandler writes: the log stream (``sys.stderr`` in a simulation), else
    a descriptor, found as CPython's ``faulthandler_get_fileno`` finds it."""
    from .workers import writes_to_a_log

    if file is None:
        file = sys.stderr
        if file is None:
            raise RuntimeError("sys.stderr is None")
    if writes_to_a_log(file):
        return file
    if isinstance(file, int):
        fd = file
    else:
        fd = file.fileno()
        if not isinstance(fd, int):
            raise RuntimeError("file.fileno() is not a valid file descriptor")
        file.flush()
    if fd < 0:
        raise ValueError("file is not a valid file descriptor")
    return fd


def _fault_write(file: Any, lines: list[str]) -> None:
    text = "".join(f"{line}\n" for line in lines)
    if isinstance(file, int):
        try:
            os.write(file, text.encode("utf-8", "backslashreplace"))
        except OSError:
            pass  # faulthandler ignores a failed write
    else:
        file.write(text)
        file.flush()


def _fault_stack(inst: Instance, proc: Any, frame: Any, header: str) -> list[str]:
    """faulthandler's traceback of a virtual process: its app's frames (the simulator's
    stand for uWSGI's C code, which has none; its ``uwsgidecorators`` is uWSGI's Python
    file), innermost first, at most 100, the ``--wsgi-file`` as given (as in
    ``Instance.exception_lines``)."""
    if frame is None:
        glet = getattr(proc, "greenlet", None)
        frame = getattr(glet, "gr_frame", None)
    names = []
    while frame is not None:
        code = frame.f_code
        if not is_simulator_frame(code.co_filename):
            names.append(f'  File "{inst.shown_filename(code.co_filename)}", line '
                         f"{frame.f_lineno} in {code.co_name}")
        frame = frame.f_back
    if not names:
        names.append("  <no Python frame>")
    return [header, *names[:100], *(["  ..."] if len(names) > 100 else [])]


def _thread_header(current: bool, all_threads: bool) -> str:
    if not all_threads:
        return "Stack (most recent call first):"
    what = "Current thread" if current else "Thread"
    return f"{what} 0x{_host_ident():016x} (most recent call first):"


def fault_dump(inst: Instance, proc: Any, signum: int, running: bool) -> bool:
    """A signal arrives at ``proc`` (``running``: it is the process that runs now, its
    app's frames are the caller's): what faulthandler does with it there. A fatal one while enabled:
    "Fatal Python error" and the traceback (the signal then kills it); a registered
    one: the traceback. False when that was all (registered without ``chain``). (The
    list of extension modules CPython adds after a fatal error's traceback is left
    out: it would be the test process's.)"""
    state = getattr(proc, "fault_handler", None)
    if state is None:
        return True
    frame = app_frame(sys._getframe(1)) if running else None
    if signum in _FATAL and state.enabled is not None:
        file, all_threads = state.enabled
        _fault_write(file, [f"Fatal Python error: {_FATAL[signum]}", "",
                            *_fault_stack(inst, proc, frame,
                                          _thread_header(True, all_threads))])
        return True
    found = state.registered.get(signum)
    if found is None:
        return True
    file, all_threads, chain = found
    _fault_write(file, _fault_stack(inst, proc, frame, _thread_header(True, all_threads)))
    return chain


def _fault_timeout(seconds: float) -> str:
    micros = round(seconds * 1e6)
    sec, us = divmod(micros, 1_000_000)
    minutes, sec = divmod(sec, 60)
    hours, minutes = divmod(minutes, 60)
    fraction = f".{us:06d}" if us else ""
    return f"Timeout ({hours}:{minutes:02d}:{sec:02d}{fraction})!"


def _faulthandler_call(name: str) -> Callable[..., Any]:
    """``faulthandler.<name>``: in a virtual process, acting on that process (see the
    module doc); elsewhere (and in a fork mode child, an OS process of its own) the
    real one."""
    real = _REAL[f"faulthandler_{name}"]
    virtual = _FAULT_CALLS[name]

    def call(*args: Any, **kwargs: Any) -> Any:
        found = _current()
        if found is None:
            return real(*args, **kwargs)
        return virtual(found[0].inst, getattr(found[1], "main", found[1]), *args, **kwargs)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = real.__doc__
    return call


def _fh_enable(inst: Instance, proc: Any, file: Any = None, all_threads: bool = True) -> None:
    _fault_state(proc).enabled = (_fault_file(file), bool(all_threads))


def _fh_disable(inst: Instance, proc: Any) -> bool:
    state = _fault_state(proc)
    was, state.enabled = state.enabled is not None, None
    return was


def _fh_is_enabled(inst: Instance, proc: Any) -> bool:
    return _fault_state(proc).enabled is not None


def _fh_dump_traceback(inst: Instance, proc: Any, file: Any = None,
                       all_threads: bool = True) -> None:
    _fault_write(_fault_file(file), _fault_stack(inst, proc, app_frame(sys._getframe(2)),
                                                 _thread_header(True, bool(all_threads))))


def _fh_dump_traceback_later(inst: Instance, proc: Any, timeout: Any, repeat: bool = False,
                             file: Any = None, exit: bool = False) -> None:
    seconds = float(operator.index(timeout) if isinstance(timeout, int) else timeout)
    if not seconds > 0:
        raise ValueError("timeout must be greater than 0")
    if seconds > 2**63 / 1e9:
        raise OverflowError("timeout value is too large")
    if forward_kill is not None:
        raise NotSimulatedError(
            "faulthandler.dump_traceback_later() in a fork mode child: its timer would "
            "count the child's real time, not the virtual time its requests take")
    out = _fault_file(file)
    state = _fault_state(proc)
    _fh_cancel_dump_traceback_later(inst, proc)

    def fire() -> None:
        if not proc.alive or state.later is None:
            return
        _fault_write(out, [_fault_timeout(seconds),
                           *_fault_stack(inst, proc, None, _thread_header(False, True))])
        if exit:  # faulthandler's _exit(1): no atexit, nothing more of its code runs
            state.later = None
            proc.exit_code = 1
            running = _running_in(inst, proc)
            if running is not None:
                die_now(inst, running, "faulthandler: _exit(1)", code=1)
            else:
                inst.kill(proc, "faulthandler: _exit(1)", None)
        elif repeat:
            state.later = inst.kernel.schedule(seconds, fire)
        else:
            state.later = None

    state.later = inst.kernel.schedule(seconds, fire)


def _fh_cancel_dump_traceback_later(inst: Instance, proc: Any) -> None:
    state = _fault_state(proc)
    if state.later is not None:
        state.later.cancel()
        state.later = None


def _fh_signal(signum: Any) -> int:
    signum = _valid_signal(operator.index(signum))
    if signum in (_S.SIGKILL, _S.SIGSTOP):
        raise OSError(22, "Invalid argument")
    if signum in _FATAL:
        raise RuntimeError(f"signal {signum} cannot be registered, use enable() instead")
    return signum


def _fh_register(inst: Instance, proc: Any, signum: Any, file: Any = None,
                 all_threads: bool = True, chain: bool = False) -> None:
    signum = _fh_signal(signum)
    _fault_state(proc).registered[signum] = (_fault_file(file), bool(all_threads),
                                             bool(chain))


def _fh_unregister(inst: Instance, proc: Any, signum: Any) -> bool:
    signum = _fh_signal(signum)
    return _fault_state(proc).registered.pop(signum, None) is not None


_FAULT_CALLS: dict[str, Callable[..., Any]] = {
    "enable": _fh_enable, "disable": _fh_disable, "is_enabled": _fh_is_enabled,
    "dump_traceback": _fh_dump_traceback, "dump_traceback_later": _fh_dump_traceback_later,
    "cancel_dump_traceback_later": _fh_cancel_dump_traceback_later,
    "register": _fh_register, "unregister": _fh_unregister,
}


def _getsignal(signum: int) -> Any:
    found = _current()
    if found is None:
        return _REAL["getsignal"](signum)
    signum = _valid_signal(signum)
    return getattr(found[1], "py_signals", {}).get(signum, _signal.SIG_DFL)


def _abort() -> None:
    """``os.abort()`` in a virtual process: SIGABRT to itself (it dies, "killed by
    signal 6"), never to the test run."""
    found = _current()
    if found is None:
        _REAL["abort"]()
    _kill(found[1].pid, _S.SIGABRT)  # type: ignore[index]


_STD_FDS_WHY = ("the test process's standard streams would be redirected or closed for "
                "good (its stdout, its stderr: pytest's output); the virtual process's "
                "output is its log")


def _dup2(fd: int, fd2: int, inheritable: bool = True) -> int:
    """``os.dup2`` in a virtual process: onto 0, 1 or 2 it is refused (they are the test
    process's; the simulator's own calls, a fork-mode child's /dev/null stdin, are the
    host's); onto another descriptor, the host's call."""
    if fd2 in (0, 1, 2) and _current() is not None and not _from_simulator():
        raise NotSimulatedError(f"os.dup2({fd}, {fd2}) in a virtual process: {_STD_FDS_WHY}")
    return _REAL["dup2"](fd, fd2, inheritable)  # type: ignore[no-any-return]


def _close(fd: int) -> None:
    """``os.close`` in a virtual process: 0, 1 and 2 are refused (see ``_dup2``)."""
    if fd in (0, 1, 2) and _current() is not None and not _from_simulator():
        raise NotSimulatedError(f"os.close({fd}) in a virtual process: {_STD_FDS_WHY}")
    _REAL["close"](fd)


def _refused(name: str, why: str) -> Callable[..., Any]:
    """A host-level call a virtual process may not make: NotSimulatedError naming it
    (outside a virtual process, the host's function)."""
    real = _REAL[name.rpartition(".")[2]]

    def refuse(*args: Any, **kwargs: Any) -> Any:
        if _current() is None:
            return real(*args, **kwargs)
        raise NotSimulatedError(f"{name}() in a virtual process: {why}")

    refuse.__name__ = name.rpartition(".")[2]
    return refuse


# -- commands ----------------------------------------------------------------------------
#: What ``Simulation(subprocess=...)`` accepts besides a callable.
SUBPROCESS_POLICIES = ("run", "refuse")


def check_subprocess_policy(policy: Any) -> Any:
    """``policy`` if ``Simulation(subprocess=policy)`` accepts it, else a ``ValueError``."""
    if policy in SUBPROCESS_POLICIES or callable(policy):
        return policy
    raise ValueError(f"subprocess must be 'run', 'refuse' or a callable, not {policy!r}")


def _from_simulator() -> bool:
    """Whether the code starting a command is the simulator's own (a ``--cron``
    command, a hook), not the app's: the first caller outside ``os``/``subprocess``."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename in _SPAWNERS:
        frame = frame.f_back
    return frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR)


def _command_allowed(how: str, argv: list[Any]) -> tuple[Containment, UProcess] | None:
    """The policy's word on a command the running virtual process starts (traced as
    ``subprocess``): its containment and process when it runs for real, None when the
    caller is not a virtual process; ``NotSimulatedError`` when refused."""
    found = _current()
    if found is None or _from_simulator():
        return None
    contain, proc = found
    args = [os.fsdecode(a) if isinstance(a, (bytes, os.PathLike)) else str(a) for a in argv]
    policy = contain.subprocess
    action = policy(args) if callable(policy) else policy
    if action not in SUBPROCESS_POLICIES:
        raise TypeError(f"the subprocess policy {policy!r} returned {action!r} for {args}: "
                        "it must return 'run' or 'refuse'")
    contain.inst.record("subprocess", proc, how=how, argv=args, action=action)
    if action == "refuse":
        raise NotSimulatedError(
            f"{how}({args!r}) in {proc.name} (pid {proc.pid}): starting host commands is "
            "refused by Simulation(subprocess='refuse')")
    return found


def _execute_child(popen: Any, args: Any, executable: Any, *rest: Any, **kw: Any) -> Any:
    """``subprocess.Popen`` (and ``os.popen``, ``subprocess.run``...) from app code: the
    command is the policy's to run or refuse."""
    argv = [args] if isinstance(args, (str, bytes, os.PathLike)) else list(args)
    shell = _EXECUTE_CHILD_SIGNATURE.bind(popen, args, executable, *rest, **kw) \
        .arguments["shell"]  # its place in the signature varies with the Python version
    _command_allowed("subprocess.Popen", ["/bin/sh", "-c", *argv] if shell else argv)
    return _SAVED_EXECUTE_CHILD(popen, args, executable, *rest, **kw)


def _node_sockets() -> Any:
    """The sockets of the cluster node whose virtual process runs (None: the host's)."""
    for contain in reversed(_ACTIVE):
        if contain.sockets is not None and contain.running() is not None:
            return contain.sockets
    return None


def _create_connection(address: Any, timeout: Any = _socket._GLOBAL_DEFAULT_TIMEOUT,
                       *args: Any, **kwargs: Any) -> Any:
    sockets = _node_sockets()
    if sockets is not None:
        seconds = _socket.getdefaulttimeout() if timeout is _socket._GLOBAL_DEFAULT_TIMEOUT \
            else timeout
        sock = sockets.connect(address, seconds)
        if sock is not None:
            return sock
    return _REAL["create_connection"](address, timeout, *args, **kwargs)


def _checked_connect(name: str) -> Callable[..., Any]:
    def connect(sock: _socket.socket, address: Any) -> Any:
        if sock.family in (_socket.AF_INET, _socket.AF_INET6):
            sockets = _node_sockets()
            if sockets is not None:
                sockets.check(address)
        return _REAL[name](sock, address)

    return connect


def _system(command: str) -> int:
    _command_allowed("os.system", ["/bin/sh", "-c", command])
    return int(_REAL["system"](command))


def _spawner(name: str) -> Callable[..., Any]:
    """``os.posix_spawn``/``posix_spawnp``: the policy's to run or refuse."""
    real = _REAL[name]

    def spawn(path: Any, argv: Any, *args: Any, **kwargs: Any) -> Any:
        # subprocess.Popen (which spawns through here on Python 3.13) asked already
        if sys._getframe(1).f_globals.get("__name__") != "subprocess":
            _command_allowed(f"os.{name}", list(argv))
        return real(path, argv, *args, **kwargs)

    spawn.__name__ = name
    return spawn


def _exec(path: Any, argv: Any, env: Any = None) -> None:
    """``os.exec*`` from a virtual process: it becomes the program. The program runs
    (a real child of the test process, with the process's environment), and when it
    ends the virtual process ends with its status, as the master then sees it; the test
    process is never replaced. (``execl``/``execlp``/``execvp``/... all come here.)"""
    if _current() is not None and not (os.path.isfile(path) and os.access(path, os.X_OK)):
        # what execve(2) says, so that execvp goes on searching the PATH
        error = 2 if not os.path.exists(path) else 13
        raise OSError(error, os.strerror(error), path)
    found = _command_allowed("os.exec", list(argv))
    if found is None:
        _REAL["execv"](path, argv) if env is None else _REAL["execve"](path, argv, env)
        return
    contain, proc = found
    pid = _REAL["posix_spawn"](path, list(argv), os.environ if env is None else env)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        die_now(contain.inst, proc, f"exec'd {os.fsdecode(path)} killed by "
                f"{_signame(signum)}", signum=signum)
    code = os.waitstatus_to_exitcode(status)
    die_now(contain.inst, proc, f"exec'd {os.fsdecode(path)} exited with status {code}",
            code=code)


def _execv(path: Any, argv: Any) -> None:
    _exec(path, argv)


_FORK_WHY = ("it would fork the test run; mode='fork' runs each virtual process in its "
             "own OS process")
_TIMER_WHY = ("OS timers and signals of the test process are not the virtual process's; "
              "use uwsgi.add_timer/add_rb_timer or time.sleep (virtual time)")

_IDENTITY_WHY = ("it would change the test process's user, groups, root directory or "
                 "session for good (a simulation cannot change them, as its --uid/--gid/"
                 "--chroot options say)")

_PATCHES = [
    (os, "_exit", _exit), (os, "kill", _kill), (os, "killpg", _killpg),
    (os, "getppid", _getppid), (os, "getpgrp", _getpgrp), (os, "getpgid", _getpgid),
    (_atexit, "register", _register),
    (_atexit, "unregister", _unregister), (_signal, "signal", _signal_signal),
    (_signal, "getsignal", _getsignal), (os, "abort", _abort),
    (os, "fork", _refused("os.fork", _FORK_WHY)),
    (os, "forkpty", _refused("os.forkpty", _FORK_WHY)),
    (_signal, "alarm", _refused("signal.alarm", _TIMER_WHY)),
    (_signal, "setitimer", _refused("signal.setitimer", _TIMER_WHY)),
    *[(os, name, _refused(f"os.{name}", _IDENTITY_WHY)) for name in _IDENTITY],
    (os, "system", _system), (os, "posix_spawn", _spawner("posix_spawn")),
    (os, "posix_spawnp", _spawner("posix_spawnp")),
    (os, "execv", _execv), (os, "execve", _exec),
    (subprocess.Popen, "_execute_child", _execute_child),
    (_signal, "pause", _refused("signal.pause", "it would wait for a real signal forever; "
                                "use uwsgi.signal_wait()")),
    *[(_signal, name, _refused(f"signal.{name}", "it would wait for a real signal of the "
                               "test process; use uwsgi.signal_wait()"))
      for name in ("sigwait", "sigwaitinfo", "sigtimedwait")],
    (_signal, "pthread_sigmask", _refused(
        "signal.pthread_sigmask", "the mask would be the test process's (Ctrl-C and the "
        "watchdog's interrupts blocked); a virtual process takes its signals through "
        "signal.signal and uwsgi.register_signal")),
    (_signal, "raise_signal", _raise_signal), (_signal, "pthread_kill", _pthread_kill),
    (_signal, "set_wakeup_fd", _set_wakeup_fd), (_signal, "siginterrupt", _siginterrupt),
    (os, "register_at_fork", _register_at_fork),
    (os, "dup2", _dup2), (os, "close", _close),
    (os, "closerange", _refused("os.closerange", "it would close descriptors of the test "
                                "process (its standard streams, the simulator's own); close "
                                "the app's own with os.close")),
    *[(faulthandler, name, _faulthandler_call(name)) for name in _FAULTHANDLER],
    *[(time, name, _refused(f"time.{name}", "it would set the machine's clock; "
                            "sim.step_clock()/set_clock() step the virtual one"))
      for name in ("clock_settime", "clock_settime_ns")],
    (threading, "get_ident", _get_ident), (threading, "local", _threading_local.local),
    (_threading_local, "current_thread", _local_owner),
    # (staticmethods, as the builtins they replace: not bound when a class keeps one)
    (threading.Thread, "start", _thread_start), (threading, "Lock", staticmethod(_lock)),
    (threading, "_allocate_lock", staticmethod(_lock)), (threading, "RLock", _rlock),
    (threading, "_counter", staticmethod(_counter)), (threading, "enumerate", _enumerate),
    (threading, "active_count", _active_count), (queue, "SimpleQueue", _SimpleQueue),
    (threading.Thread, "name", property(_get_thread_name, _set_thread_name)),
    (_socket, "create_connection", _create_connection),
    (_socket.socket, "connect", _checked_connect("connect")),
    (_socket.socket, "connect_ex", _checked_connect("connect_ex")),
]


def _dummy_thread_slots() -> list[tuple[Any, str, Any]]:
    """Python 3.13 keeps a ``_DummyThread`` in ``threading._active`` while a slot of its
    thread's in ``threading._thread_local_info`` holds its tracker: a slot per core (a
    ``threading.local`` of ours), else each core's dummy would evict the previous core's,
    which would get a new name. A fresh one per simulation: they go with it."""
    if not hasattr(threading, "_thread_local_info"):  # (3.10-3.12)
        return []
    return [(threading, "_thread_local_info", _threading_local.local())]


def _install() -> None:
    for module, name, value in [*_PATCHES, *_dummy_thread_slots()]:
        _SAVED[f"{module.__name__}.{name}"] = (module, name, getattr(module, name))
        setattr(module, name, value)
    hoststate.save()


def _uninstall() -> None:
    for module, name, value in _SAVED.values():
        setattr(module, name, value)
    _SAVED.clear()
    _forget_core_threads()
    hoststate.restore()


# -- the stall watchdog --------------------------------------------------------------------
#: simuwsgi's own directory (this file is in its ``server`` package).
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _trace_from(frame: Any, tracer: Callable[..., Any]) -> None:
    """Trace every line from now on, in ``frame`` and the frames that called it."""
    sys.settrace(tracer)
    while frame is not None:
        frame.f_trace = tracer
        frame.f_trace_lines = True
        frame = frame.f_back


def end_thread(thread: threading.Thread) -> None:
    """Join ``thread`` and wait until its OS thread is gone too: ``join`` returns while
    it is still ending, and a fork then copies a process with two threads (Python 3.12
    counts them in /proc and warns that the child may deadlock)."""
    thread.join()
    task = f"/proc/self/task/{thread.native_id}"
    deadline = _R.monotonic() + 1.0
    while os.path.exists(task) and _R.monotonic() < deadline:
        _R.sleep(0.0005)


class Watchdog:
    """Interrupts a virtual process that runs ``timeout`` real seconds without yielding,
    and makes Ctrl-C stop a run (see the module docstring)."""

    def __init__(self, inst: Instance, timeout: float | None) -> None:
        self.inst = inst
        self.timeout = timeout
        #: True while the test is inside a driving call (start, advance, request...).
        self.driving = False
        self.interrupted = False
        #: Why the stuck process was interrupted, read by its handler.
        self.stalled: UProcess | None = None
        self._main = threading.get_ident()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._handlers: dict[int, Any] = {}
        #: Interrupts sent since the driving call began.
        self._resends = 0
        #: When the watchdog thread last looked (real time): it cannot while one C call
        #: of app code holds the GIL (``_on_cpu_tick``).
        self._polled = _R.monotonic()
        self._itimer: tuple[float, float] | None = None

    def start(self) -> None:
        if threading.get_ident() == threading.main_thread().ident:
            self._install_handlers()
        if self.timeout or self._handlers:  # stalls, or Ctrl-C swallowed by the app
            self._start_thread()

    def _start_thread(self) -> None:
        self._thread = threading.Thread(target=self._watch, name="simuwsgi-watchdog",
                                        daemon=True)
        self._thread.start()

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No watchdog thread while the block runs (fork mode forks in it: a child would
        start with a copy of any lock the thread held, held for ever)."""
        thread = self._thread
        if thread is None or self._stop.is_set():
            yield
            return
        self._stop.set()
        end_thread(thread)
        try:
            yield
        finally:
            self._stop.clear()
            self._start_thread()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            end_thread(self._thread)
        itimer = self._itimer
        for signum, handler in self._handlers.items():
            if _signal.getsignal(signum) in (self._on_stall_signal, self._on_sigint,
                                             self._on_cpu_tick):
                owner = getattr(handler, "__self__", None)
                if isinstance(owner, Watchdog) and owner._stop.is_set():
                    # another simulation's, closed before this one: the host's default
                    handler = (_signal.default_int_handler if signum == _signal.SIGINT
                               else _signal.SIG_DFL)
                    itimer = (0.0, 0.0)  # and its timer off
                if signum == _CPU_SIGNAL:
                    _REAL["setitimer"](_signal.ITIMER_VIRTUAL, *itimer)
                _REAL["signal"](signum, handler)
        self._handlers.clear()

    def deadline(self, seconds: float) -> Callable[[], bool]:
        """A test that says whether ``seconds`` real seconds have passed since now:
        ``Simulation.wait``'s guard against a response the app polls for in virtual
        time for ever (a ``time.sleep()`` loop yields, so the stall check never
        sees it)."""
        end = _R.monotonic() + seconds
        return lambda: _R.monotonic() > end

    def _install_handlers(self) -> None:
        real_signal = _REAL["signal"]
        self._handlers[_STALL_SIGNAL] = real_signal(_STALL_SIGNAL, self._on_stall_signal)
        previous = _REAL["getsignal"](_signal.SIGINT)
        if previous is _signal.default_int_handler:
            self._handlers[_signal.SIGINT] = real_signal(_signal.SIGINT, self._on_sigint)
        if self.timeout:
            self._main_cpu = self._cpu_clock()
            self._tick: tuple[Any, float] = (None, self._main_cpu())
            self._handlers[_CPU_SIGNAL] = real_signal(_CPU_SIGNAL, self._on_cpu_tick)
            tick = min(0.25, self.timeout / 4)
            self._itimer = _REAL["setitimer"](_signal.ITIMER_VIRTUAL, tick, tick)
            if not _TIMER_DISARMED_AT_EXIT:
                _TIMER_DISARMED_AT_EXIT.append(True)
                _REAL["register"](_disarm_cpu_timer)

    def _on_cpu_tick(self, signum: int, frame: Any) -> None:
        """A tick of the process's CPU time, for what the watchdog thread cannot see: one
        C call of app code that holds the GIL (``sum(range(10**12))``, a regex
        backtracking). CPython runs this handler where such a call checks for signals
        (``re`` does): the thread has not run for ``timeout`` and no yield happened since
        the last tick; or, for a call that never checks, when it returns: the main
        thread used ``timeout`` of CPU since the last tick. The process is stopped there."""
        kernel = self.inst.kernel
        proc = kernel.current
        mark, cpu = (kernel.parks, proc), self._main_cpu()
        (last_mark, last_cpu), self._tick = self._tick, (mark, cpu)
        timeout = float(self.timeout or 0)
        if not self.driving or proc is None:
            return
        if mark == last_mark and _R.monotonic() - self._polled >= timeout:
            self.stalled = proc
            self._on_stall_signal(signum, frame)
        elif cpu - last_cpu >= timeout and self._resends == 0:
            self.stalled = proc
            self._resends += 1
            raise StallInterrupt(f"it was in one call of C code for {cpu - last_cpu:.1f} "
                                 "CPU seconds, which nothing can interrupt: stopped when it "
                                 "returned")

    def _on_sigint(self, _signum: int, _frame: Any) -> None:
        if self.driving:
            self.interrupted = True
        raise SimulationInterrupted

    def _pending(self) -> type[BaseException] | None:
        """What the code running now must be interrupted with, if anything."""
        if self.interrupted and self.driving:
            return SimulationInterrupted
        if self.stalled is not None and self.inst.kernel.current is self.stalled:
            return StallInterrupt
        return None

    def _on_stall_signal(self, _signum: int, frame: Any) -> None:
        pending = self._pending()
        if pending is None:
            return
        if self._resends:
            # Sent before and still here: the app catches what we raise (``except
            # BaseException`` in a loop). Raise it again on every line of app code,
            # so that it also leaves the ``except`` blocks that caught it.
            _trace_from(frame, self._tracer)
        self._resends += 1
        raise pending

    def _tracer(self, frame: Any, event: str, _arg: Any) -> Any:
        pending = self._pending()
        if pending is None:  # it got out: stop tracing
            sys.settrace(None)
            return None
        # a line of app code (not ours); not the "exception" event of the raise that
        # brought us here: an error there would only turn tracing off
        if event == "line" and not frame.f_code.co_filename.startswith(_PACKAGE_DIR):
            raise pending
        return self._tracer

    def end_drive(self) -> None:
        """The driving call is over: no interrupt outlives it."""
        self.driving = False
        self.interrupted = False
        self.stalled = None
        if self._resends:
            self._resends = 0
            if sys.gettrace() == self._tracer:
                sys.settrace(None)

    def _cpu_clock(self) -> Callable[[], float]:
        """The CPU time of the thread that runs the simulation (its wall time where the
        platform cannot tell)."""
        try:
            clock = time.pthread_getcpuclockid(self._main)
            time.clock_gettime(clock)
        except (AttributeError, OSError):
            return _R.monotonic  # type: ignore[no-any-return]
        return lambda: time.clock_gettime(clock)

    def _watch(self) -> None:
        """A process is stuck when it has not yielded for ``timeout`` real seconds *and*
        used half of that in CPU (a CPU loop; on a loaded machine a busy but healthy
        process gets less CPU than wall time, and must not be mistaken for one), or for
        three times ``timeout`` whatever its CPU (blocked in a real socket, a lock)."""
        kernel = self.inst.kernel
        timeout = float(self.timeout or 0)
        poll = min(0.1, timeout / 4) if timeout else 0.1
        cpu = self._cpu_clock()
        last = (-1, None)
        since, cpu_since = _R.monotonic(), cpu()
        resent = 0.0
        while not self._stop.wait(poll):
            now = self._polled = _R.monotonic()
            if self.interrupted and self.driving:
                if now - resent >= 0.3:
                    resent = now
                    self._interrupt()
                continue
            proc = kernel.current
            mark = (kernel.parks, proc)
            if not timeout or not self.driving or proc is None or mark != last:
                last, since, cpu_since = mark, now, cpu()
                self.stalled = None
                continue
            stuck = now - since >= 3 * timeout or (
                now - since >= timeout and cpu() - cpu_since >= timeout / 2)
            if stuck and (self.stalled is None or now - resent >= 0.3):
                self.stalled = proc
                resent = now
                self._interrupt()

    def _interrupt(self) -> None:
        if self._handlers:
            _signal.pthread_kill(self._main, _STALL_SIGNAL)
        else:  # not the main thread: no signal handlers, an asynchronous exception
            exc = SimulationInterrupted if self.interrupted else StallInterrupt
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self._main),
                                                       ctypes.py_object(exc))


#: Whether ``_disarm_cpu_timer`` is registered with the host's ``atexit``.
_TIMER_DISARMED_AT_EXIT: list[bool] = []


def _disarm_cpu_timer() -> None:
    """At the exit of the test process: a simulation never closed leaves the CPU timer
    ticking, and once Python has put the default action back, a tick would end the
    process ("Virtual timer expired")."""
    if _signal.getsignal(_CPU_SIGNAL) not in (_signal.SIG_DFL, None) or \
            _signal.getitimer(_signal.ITIMER_VIRTUAL)[1]:
        _REAL["setitimer"](_signal.ITIMER_VIRTUAL, 0.0, 0.0)


def stall_error(inst: Instance, proc: UProcess, exc: BaseException,
                timeout: float | None) -> StallError:
    """The error the simulation raises for a stuck process: which process, which
    request, and where the app's code was."""
    req = getattr(proc, "request", None)
    doing = f" handling {req.method} {req.path} (request {req.id})" if req is not None else ""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not f.filename.startswith(_PACKAGE_DIR)]
    stack = "".join(traceback.format_list(frames)).rstrip("\n")
    why = f"; {exc}" if str(exc) else " (a CPU loop, a blocking real socket or lock?)"
    return StallError(
        f"{proc.name} (pid {proc.pid}){doing} ran {timeout} real seconds without "
        f"yielding to the simulation, at virtual time {inst.kernel.now:.6f}{why}. Set "
        "--harakiri to have it killed and respawned as uWSGI would, or raise "
        "stall_timeout. Its stack:\n" + stack)
