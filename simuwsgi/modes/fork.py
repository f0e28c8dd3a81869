"""``fork`` mode: every virtual process is a real forked OS process, run in lockstep.

What it models: uWSGI's process model as the OS gives it (``core/uwsgi.c``
``uwsgi_fork``/``uwsgi_respawn_worker``, ``core/mule.c``, ``core/spooler.c``): the
app is imported in the master, and every worker, mule and spooler is a ``fork()`` of the
master *after* that import, so module globals, class attributes, third-party library
state and ``random`` are per process; a respawned process is a fresh fork of the master,
not of the dead process; ``os.getpid()`` is the process's own pid; Python's ``random``
is reseeded after each fork (as ``uwsgi_python_post_fork`` does; here deterministically,
from the simulation's seed and the virtual pid).

Theory of operation
-------------------
The parent (the test process) keeps everything ``sim`` mode has: the kernel, the
subsystems and one greenlet per virtual process, which runs the same simulator code
(accept loop, mule loop, spooler loop). Only *user code* moves out. Each point where
the simulator calls user code becomes a request to that virtual process's OS child:

* ``Instance.call_python(func, *args)`` (signal handlers, the post-fork hook, the mule
  message hook, the spooler callable, RPC functions, programmed mules, spooler
  imports) — ``ForkRuntime.call_python`` replaces it on the instance;
* the app import (``RemoteAppLoader``: ``prepare``, ``import_list``, ``load``, also in
  lazy-apps workers);
* the WSGI call (``ForkRuntime.call_app``, hooked into ``workers.handle_request``).

The parent sends the request and waits, blocked reading that child's pipe, without
running the hub: virtual time cannot move while user code runs. The child runs the
user code; every ``uwsgi.*`` call, ``time.sleep`` and log line is a request back to the
parent, which runs it in the process's greenlet (so it may park, and other virtual
processes run meanwhile) and replies. Requests nest both ways (a handler run from
inside ``uwsgi.signal_wait()`` is a request from the parent while the child waits for
its reply). Every message from the parent carries the virtual clock (``kernel.now``
and the wall-clock offset), and the child's copy of the clock patch reads it, so
``time.time()`` in a child costs no message.

Callables made by user code (handlers, hooks, RPC functions, WSGI apps) stay in the
child that made them; the parent holds a ``Remote`` token, ``(pid, n)``. Children of
the master inherit the master's tokens with its memory.

Processes: the *master child* is forked from the parent when the master first needs
user code (its import) — so it starts from a clean interpreter, as uWSGI's exec does,
also after a binary reload; the master child forks every worker, mule and spooler
child on request (their pipes come over the master's socket with ``SCM_RIGHTS``), and
reaps them. A child that dies (segfault, ``os._exit``) or stays silent longer than
``timeout`` real seconds (a watchdog thread looks, so the message path pays no
``poll``) is reported as a ``SimulationError`` naming the virtual process and virtual
time, with its exit status and its Python stack (``faulthandler``). The test process
forks the master child with no thread of simuwsgi's alive (this watchdog and the
simulation's stop for it): the child would start with a copy of any lock one of them
held, held for ever (Python 3.12 warns of a fork with threads). A SIGKILL of a
virtual process (harakiri, ``sim.kill``, reload, stop) kills its OS child. Closing the
simulation kills and reaps every child; the master child dies with the parent
(``PR_SET_PDEATHSIG``), the others with the master child.

For an app that keeps no per-process state outside its own modules, the trace is the
same as in ``sim`` mode for the same seed.

Left out: a ``--threads`` worker's child has one thread: its cores' requests run in it
one after the other (the parent keeps the cores, their accept turns and log lines; a core
waits while another core's request is in the child), so requests overlap across workers
only, and in the child ``threading.get_ident()`` is the same for every core; threads
started by user code must not call ``uwsgi.*`` (one channel per process);
``uwsgi.sharedarea_memoryview``/``sharedarea_object`` (memory shared with the parent)
raise ``NotSimulatedError``; attributes set on the ``uwsgi`` module are local to
the process, except ``spooler``, ``post_fork_hook`` and ``mule_msg_hook``, which also
go to that process's hooks in the parent, as in ``sim`` mode (``facade.HOOKS``: a hook
set by a worker does not exist in the spooler or the mules, as under uWSGI); tracebacks in the log name this module's frames instead of
``master.py``'s; ``print`` output of children goes to the inherited file descriptors;
the test process's own calls of the module (``sim.uwsgi.rpc``) run user code in the
master's process; the real-socket server (``simuwsgi.net``) does not drive fork mode.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import io
import os
import pickle
import random
import signal
import socket
import struct
import sys
import tempfile
import threading
import traceback
import types
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ..server import containment as _containment
from ..server import pyreloader as _pyreloader
from ..server import reading as _reading
from .._errors import NotSimulatedError, SimulationError, StallError
from ..server.apps import AppLoader
from .._core.clock import RealClock, set_process_pid
from ..server.interface import CONTROL, ProcessExit
from ..server.processes import Master, UProcess, Worker
from ..server.workers import (
    Request,
    _call_app,
    _call_app_py,
    _manage_exception,
    finish_sent,
)

if TYPE_CHECKING:
    from ..server.master import Instance

__all__ = ["DEFAULT_TIMEOUT", "ForkRuntime", "Remote", "RemoteAppLoader"]

#: Real seconds a child may stay silent while it runs user code before it is declared hung.
DEFAULT_TIMEOUT = 60.0

# Message kinds. Parent -> child: (kind, now, wall_offset, a, b); child -> parent:
# (kind, a, b). REQ carries (op, payload); OK carries a result; ERR an exception.
REQ, OK, ERR = 0, 1, 2
# Outcomes of user code run by a child.
DONE, FAIL, EXIT, MISSING = 0, 1, 2, 3
#: The parent's requests that run user code in the child.
_USER_OPS = ("call", "method", "wsgi", "after_request")
#: The host's functions: the runtime's own exits, kills and signal handlers are real
#: (the app's act on its virtual process: ``simuwsgi.server.containment``).
_real = _containment.REAL
_exit = _real._exit

#: ``uwsgi`` module attributes whose assignment in a child goes to the instance's module
#: (the simulator reads them there: ``run_post_fork``, the spooler, the mule loop).
SHARED_ATTRS = frozenset({"spooler", "post_fork_hook", "mule_msg_hook"})
#: Facade functions that act on the request's connection: they run in the child, which
#: holds the connection while it runs the app (``wire.Connection``).
_CONNECTION_FUNCTIONS = ("start_response", "send", "sendfile", "disconnect")
#: Request attributes that stay in the parent (the rest is sent with the WSGI call).
_REQUEST_PARENT_ONLY = frozenset({"conn", "on_done", "response"})
#: Facade functions that remove ``b'body'`` from the caller's dict.
_WRITE_BACK = frozenset({"spool", "send_to_spooler"})
#: The signal a hung child gets first: it dumps its Python stack (``faulthandler``).
_DUMP_SIGNAL = signal.SIGRTMIN + 7 if hasattr(signal, "SIGRTMIN") else signal.SIGUSR2

_HDR = struct.Struct("!I")
_PLAIN = frozenset({type(None), bool, int, float, str, bytes, bytearray})
_PROTO = pickle.HIGHEST_PROTOCOL
_dumps = pickle.dumps
_loads = pickle.loads

#: The state of this process when it is a forked child (None in the parent).
_CHILD: _Child | None = None
#: Parent-side sockets and files of every live runtime (closed in new children).
_OPEN_FDS: set[int] = set()


# -- values that cross the boundary ------------------------------------------------------
class Remote:
    """A callable that lives in a forked child (a handler, a hook, an app): a token."""

    __slots__ = ("label", "token")

    def __init__(self, token: tuple[int, int], label: str) -> None:
        self.token = token
        self.label = label

    def __reduce__(self) -> Any:
        return (_remote, (self.token, self.label))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Remote) and other.token == self.token

    def __hash__(self) -> int:
        return hash(self.token)

    def __call__(self, *args: Any) -> Any:
        raise SimulationError(
            f"{self.label} lives in a forked process: the simulator calls it with "
            f"Instance.call_python")

    def __repr__(self) -> str:
        return f"<{self.label} in forked process {self.token[0]}>"


def _remote(token: tuple[int, int], label: str) -> Any:
    """Unpickling a ``Remote``: the callable itself in the child that owns it."""
    child = _CHILD
    if child is not None:
        obj = child.registry.get(token)
        if obj is not None:
            return obj
    return Remote(token, label)


class Opaque:
    """Stand-in for a value of a user-defined type sent to the parent (its repr)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __reduce__(self) -> Any:
        return (Opaque, (self.text,))

    def __repr__(self) -> str:
        return self.text


def _label(obj: Any) -> str:
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    return f"callable {name}" if name else f"callable {type(obj).__name__} object"


class _ChildPickler(pickle.Pickler):
    """Pickles what a child sends: callables become tokens; user types their base."""

    def reducer_override(self, obj: Any) -> Any:
        tp = type(obj)
        if tp in _PLAIN or tp is Remote or tp is Opaque:
            return NotImplemented
        module = getattr(obj, "__module__", None) if isinstance(obj, type) or callable(obj) \
            else None
        if module is not None and (module == "builtins" or module.startswith("simuwsgi")):
            return NotImplemented  # the simulator's own classes and functions, by name
        if isinstance(obj, BaseException) and tp.__module__ in ("builtins", "simuwsgi._errors"):
            return NotImplemented
        if isinstance(obj, type):
            return (Opaque, (repr(obj),))
        if callable(obj):
            child = _CHILD
            assert child is not None
            return (_remote, (child.token_for(obj), _label(obj)))
        module = tp.__module__
        if module in ("builtins", "collections", "datetime", "decimal", "fractions"):
            return NotImplemented
        for base in (bytes, str, int, float, tuple, list, dict):
            if isinstance(obj, base):
                return (base, (base(obj),))
        return (Opaque, (repr(obj),))


def _child_dumps(msg: Any) -> bytes:
    buf = io.BytesIO()
    _ChildPickler(buf, _PROTO).dump(msg)
    return buf.getvalue()


def _plain_result(value: Any) -> Any:
    """What user code returned, as the simulator can use it (it tests int/bytes)."""
    tp = type(value)
    if tp in _PLAIN:
        return value
    for base in (int, bytes, str, float):
        if isinstance(value, base):
            return base(value)
    return Opaque(repr(value))


# -- framing -------------------------------------------------------------------------------
class _Wire:
    """Length-prefixed pickles over a pair of pipes (or the master's socket, which
    also carries file descriptors). A parent-side wire has a receive deadline."""

    __slots__ = ("fds", "rfd", "sock", "wfd", "with_fds")

    def __init__(self, rfd: int, wfd: int, sock: socket.socket | None = None,
                 with_fds: bool = False) -> None:
        self.rfd = rfd
        self.wfd = wfd
        self.sock = sock
        self.fds: list[int] = []
        self.with_fds = with_fds

    def send(self, data: bytes, fds: list[int] | None = None) -> None:
        frame = _HDR.pack(len(data)) + data
        if fds:
            assert self.sock is not None
            socket.send_fds(self.sock, [frame], fds)
            return
        sent = os.write(self.wfd, frame)
        if sent < len(frame):  # a big message: the pipe takes it in parts
            view = memoryview(frame)[sent:]
            while view:
                view = view[os.write(self.wfd, view):]

    def recv(self) -> bytes:
        """One message (blocking); EOFError when the peer is gone."""
        rfd = self.rfd
        if self.with_fds:  # the master child: file descriptors may come with it
            chunk, fds, _flags, _addr = socket.recv_fds(self.sock, 1 << 16, 4)
            self.fds.extend(fds)
        else:
            chunk = os.read(rfd, 1 << 16)
        if not chunk:
            raise EOFError
        while len(chunk) < 4:
            more = os.read(rfd, 4 - len(chunk))
            if not more:
                raise EOFError
            chunk += more
        need = _HDR.unpack_from(chunk)[0] + 4
        if len(chunk) == need:
            return chunk[4:]
        parts = [chunk]
        got = len(chunk)
        while got < need:
            more = os.read(rfd, min(need - got, 1 << 20))
            if not more:
                raise EOFError
            parts.append(more)
            got += len(more)
        return b"".join(parts)[4:]


# -- the parent side ---------------------------------------------------------------------
class ForkChild:
    """The parent's handle on one virtual process's OS child."""

    def __init__(self, runtime: ForkRuntime, proc: UProcess, rfd: int, wfd: int,
                 ospid: int, crash: Any, sock: socket.socket | None = None) -> None:
        self.runtime = runtime
        self.proc = proc
        self.sock = sock
        self.wire = _Wire(rfd, wfd, sock)
        #: Set by the watchdog when it killed the child for its silence.
        self.hung = False
        self.ospid = ospid
        self.crash = crash
        self.alive = True
        #: the working directory the child was last told (``proc.cwd``: ``--chdir2``,
        #: a ``chdir:`` hook, the spooler's directory), None: the one it was forked in
        self.cwd: str | None = None
        self._fds = sorted({rfd, wfd}) if sock is None else []
        _OPEN_FDS.update(self._fds)
        _OPEN_FDS.add(crash.fileno())
        if sock is not None:
            _OPEN_FDS.add(sock.fileno())

    def call(self, op: str, payload: Any = None, fds: list[int] | None = None) -> Any:
        """Send a request and serve the child's requests until its answer comes."""
        if not self.alive:
            raise SimulationError(f"{self.proc.name} (pid {self.proc.pid}) has no live "
                                  f"forked process")
        rt = self.runtime
        kernel = rt.kernel
        clock = rt.clock
        wire = self.wire
        cwd = self.proc.cwd
        if cwd is not None and cwd != self.cwd and op != "chdir":
            self.cwd = cwd  # the process changed directory since: so does its child
            self.call("chdir", cwd)
        rt.grants += 1
        try:
            wire.send(_dumps((REQ, kernel.now, clock.wall_offset, op, payload), _PROTO), fds)
        except OSError:  # EPIPE: it is gone
            raise self._crashed() from None
        while True:
            rt.waiting_on = self  # the watchdog's view: who we wait for, since when
            rt.wait_seq += 1
            try:
                data = wire.recv()
            except (EOFError, OSError):
                rt.waiting_on = None
                raise (self._hung() if self.hung else self._crashed()) from None
            rt.waiting_on = None
            msg = _loads(data)
            kind = msg[0]
            if kind == OK:
                return msg[1]
            if kind == ERR and isinstance(msg[1], tuple):  # the process exited
                raise ProcessExit(msg[1][1], msg[1][2])
            if kind == ERR:
                raise SimulationError(
                    f"{self.proc.name} (pid {self.proc.pid}): the forked process failed at "
                    f"virtual time {kernel.now:.6f}:\n{msg[1]}")
            try:
                reply = (OK, rt.serve(self, msg[1], msg[2]))
            except Exception as exc:  # noqa: BLE001 - raised in the child, as in sim mode
                reply = (ERR, exc)
            rt.grants += 1
            try:
                out = _dumps((reply[0], kernel.now, clock.wall_offset, reply[1], None), _PROTO)
            except Exception as exc:  # noqa: BLE001 - a result that cannot cross
                what = msg[2][0] if msg[1] == "f" else msg[1]
                out = _dumps((ERR, kernel.now, clock.wall_offset, NotSimulatedError(
                    f"uwsgi.{what}() gives a value that cannot be sent to a forked process "
                    f"in fork mode ({type(exc).__name__}: {exc})"), None), _PROTO)
            try:
                wire.send(out)
            except OSError:
                raise self._crashed() from None

    # -- failures ------------------------------------------------------------------------
    def _where(self) -> str:
        proc = self.proc
        return (f"{proc.name} (pid {proc.pid}, OS pid {self.ospid}) at virtual time "
                f"{self.runtime.kernel.now:.6f}")

    def _crashed(self) -> SimulationError:
        where = self._where()
        stack = self._stderr()
        status = self.runtime.reap(self)
        return SimulationError(f"{where}: its forked process died ({status}){stack}")

    def _hung(self) -> SimulationError:
        stack = self._stderr()  # the watchdog had it dump its stack before killing it
        self.runtime.reap(self)
        return StallError(f"{self._where()}: its forked process sent nothing for "
                               f"{self.runtime.timeout:g} s (hung in user code?)"
                               f"{stack}")

    def _stderr(self) -> str:
        try:
            self.crash.seek(0)
            text = self.crash.read().decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            text = ""
        return f"\n--- its stderr (faulthandler) ---\n{text}" if text else ""

    def close(self) -> None:
        self.alive = False
        for fd in self._fds:
            _OPEN_FDS.discard(fd)
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds = []
        for f in (self.sock, self.crash):
            if f is None:
                continue
            try:
                _OPEN_FDS.discard(f.fileno())
                f.close()
            except (OSError, ValueError):
                pass


class ForkRuntime:
    """Runs one instance's user code in forked processes (see the module docstring)."""

    def __init__(self, inst: Instance, sleep: Callable[[float], None], *, seed: int,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        self.inst = inst
        self.kernel = inst.kernel
        self.clock = inst.clock
        self.sleep = sleep
        self.seed = seed
        self.timeout = float(timeout)
        self.children: dict[UProcess, ForkChild] = {}
        self.master_child: ForkChild | None = None
        #: OS pids killed and not yet reaped by the master child.
        self._unreaped: list[int] = []
        #: Messages sent to children (grants): the switch counter of the benchmark.
        self.grants = 0
        #: The child the parent is blocked on (None when it is not), and a counter of
        #: those waits: the watchdog thread reads them (``_Watchdog``).
        self.waiting_on: ForkChild | None = None
        self.wait_seq = 0
        self._watchdog: _Watchdog | None = None
        #: Pauses the test process's other simuwsgi thread while it forks (the
        #: simulation's stall watchdog: ``Watchdog.paused``).
        self.others_paused: Callable[[], contextlib.AbstractContextManager[None]] = \
            contextlib.nullcontext
        self.closed = False
        #: ``--threads``: the cores of a worker waiting for its child, which runs one
        #: request at a time (it has one thread), by worker
        #: a threaded worker's child runs one core's user code at a time: the core whose
        #: turn it is, and the cores waiting for theirs (see ``_turn``)
        self._turns: dict[UProcess, tuple[list[UProcess], deque[UProcess]]] = {}
        self._local_call_python = inst.call_python
        #: OS pids of live children (killed at interpreter exit if never closed).
        self.live_pids: set[int] = set()
        self._finalizer = weakref.finalize(self, _kill_pids, self.live_pids)

    @classmethod
    def attach(cls, inst: Instance, sleep: Callable[[float], None], *, seed: int,
               timeout: float = DEFAULT_TIMEOUT) -> ForkRuntime:
        """Put ``inst`` in fork mode: its user code runs in forked children."""
        rt = cls(inst, sleep, seed=seed, timeout=timeout)
        inst.forks = rt
        inst.vfork = False
        inst.app_loader_class = RemoteAppLoader
        inst.app = RemoteAppLoader(inst)
        inst.call_python = rt.call_python  # type: ignore[method-assign]
        return rt

    # -- children ------------------------------------------------------------------------
    def child_of(self, proc: UProcess | None) -> ForkChild:
        if proc is None:
            raise SimulationError("user code called outside a virtual process")
        child = self.children.get(proc)
        if child is None:
            if not isinstance(proc, Master):
                raise SimulationError(f"{proc.name} (pid {proc.pid}) has no forked process")
            child = self._spawn_master(proc)
        return child

    def _spawn_master(self, proc: Master) -> ForkChild:
        """Fork the master child from the parent: a clean interpreter, as after exec."""
        self.kill_all()
        parent_end, child_end = socket.socketpair()
        crash = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the child
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError, AttributeError):
                pass
        parent_pid = _real_getpid()
        with self._alone():
            ospid = _containment.REAL.fork()  # the runtime's own fork, never refused
            if ospid == 0:  # the master child
                try:
                    parent_end.close()
                    _become_master_child(self, proc, child_end, crash, parent_pid)
                finally:
                    _exit(70)
        child_end.close()
        fd = parent_end.fileno()
        child = ForkChild(self, proc, fd, fd, ospid, crash, sock=parent_end)
        self.children[proc] = child
        self.master_child = child
        self.live_pids.add(ospid)
        return child

    @contextlib.contextmanager
    def _alone(self) -> Iterator[None]:
        """The test process without simuwsgi's threads while it forks the master child:
        the child would start with a copy of any lock one of them held, held for ever
        (Python 3.12 warns of a fork with threads). Nothing waits for a child here (the
        old ones are gone): this runtime's watchdog is stopped and a new one started
        after; the simulation's is paused."""
        if self._watchdog is not None:
            self._watchdog.stop()
            _containment.end_thread(self._watchdog)
        with self.others_paused():
            yield
        self._watchdog = _Watchdog(self)
        self._watchdog.start()

    def fork(self, proc: UProcess) -> None:
        """``fork()`` of the master for a new worker, mule or spooler (at spawn time)."""
        master = self.inst.master
        mchild = self.child_of(master)
        down_r, down_w = os.pipe()  # parent -> child
        up_r, up_w = os.pipe()      # child -> parent
        crash = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the child
        try:
            ospid = mchild.call("fork", (proc.pid, proc.name, proc.kind, proc.id, self.seed,
                                         self._unreaped),
                                [down_r, up_w, crash.fileno()])
        except BaseException:
            for fd in (down_r, down_w, up_r, up_w):
                os.close(fd)
            crash.close()
            raise
        finally:
            self._unreaped = []
        os.close(down_r)
        os.close(up_w)
        self.children[proc] = ForkChild(self, proc, up_r, down_w, ospid, crash)
        self.live_pids.add(ospid)

    def after_fork(self, proc: UProcess, mode: str) -> None:
        """``Instance._after_fork`` in fork mode: the hooks live in the child."""
        self.child_of(proc).call("after_fork", mode)

    def run_atexit(self, proc: UProcess) -> None:
        """``containment.run_atexit`` in fork mode: the handlers live in the child."""
        child = self.children.get(proc)
        if child is not None and child.alive:
            try:
                child.call("atexit")
            except SimulationError:
                pass  # it died meanwhile: nothing more runs in it

    def process_died(self, proc: UProcess) -> None:
        """The virtual process is gone (exit, SIGKILL): so is its OS process (and the
        cores that waited for it)."""
        self._turns.pop(proc, None)
        child = self.children.get(proc)
        if child is not None and child is not self.master_child:
            self.kill(child)

    def kill_all(self, keep_master: bool = False) -> None:
        """SIGKILL every worker/mule/spooler child, and the master child unless kept."""
        for child in list(self.children.values()):
            if child is not self.master_child:
                self.kill(child)
        if not keep_master and self.master_child is not None:
            self._kill_master()

    def kill(self, child: ForkChild) -> None:
        """SIGKILL one child (the master child reaps the others later)."""
        if child is self.master_child:
            self._kill_master()
            return
        if child.alive:
            try:
                _real.kill(child.ospid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._unreaped.append(child.ospid)
        self._forget(child)

    def _forget(self, child: ForkChild) -> None:
        child.close()
        self.live_pids.discard(child.ospid)
        if self.children.get(child.proc) is child:
            del self.children[child.proc]
        if child is self.master_child:
            self.master_child = None

    def _kill_master(self) -> None:
        mchild = self.master_child
        assert mchild is not None
        unreaped, self._unreaped = self._unreaped, []
        if mchild.alive and unreaped:
            try:
                mchild.call("reap", unreaped)
            except SimulationError:
                pass
        if mchild.alive:
            try:
                _real.kill(mchild.ospid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            mchild.alive = False
            try:
                os.waitpid(mchild.ospid, 0)
            except ChildProcessError:
                pass
        self._forget(mchild)

    def reap(self, child: ForkChild) -> str:
        """How a dead (or just killed) child ended, reaping it."""
        child.alive = False
        status = None
        if child is self.master_child:
            try:
                status = os.waitpid(child.ospid, 0)[1]
            except ChildProcessError:
                pass
        else:
            mchild = self.master_child
            if mchild is not None and mchild.alive:
                try:
                    status = mchild.call("reap", [child.ospid])[0]
                except SimulationError:
                    pass
        self._forget(child)
        return _describe_status(status)

    def close(self) -> None:
        """Kill and reap every child. Idempotent."""
        if self.closed:
            return
        self.closed = True
        if self._watchdog is not None:
            self._watchdog.stop()
            _containment.end_thread(self._watchdog)
            self._watchdog = None
        self.kill_all()
        for child in list(self.children.values()):
            self.kill(child)
        self._finalizer.detach()

    # -- user code entry points ------------------------------------------------------------
    def call_python(self, func: Any, *args: Any) -> tuple[bool, Any]:
        """``Instance.call_python`` in fork mode: run ``func`` in the current process's child."""
        if isinstance(func, Remote):
            op, payload = "call", (func.token, args)
        elif getattr(func, "__module__", "").startswith("simuwsgi."):
            op, payload = "method", (self._method_ref(func), args)
        else:
            return self._local_call_python(func, *args)
        proc = self.kernel.current
        if proc is None:  # called by the test itself (``sim.uwsgi.rpc``): the master's code
            proc = self.inst.master
        with self._turn(proc):  # a core's handler runs in its worker's child too
            outcome = self.child_of(proc.main).call(op, payload)
        return self._outcome(proc, outcome)

    def signal(self, proc: UProcess, signum: int) -> None:
        """Another process's ``os.kill`` reaches ``proc``'s Python handler of ``signum``
        (``containment.deliver``): its child runs it (``_Child.op_signal``)."""
        with self._turn(proc):
            self._outcome(proc, self.child_of(proc.main).call("signal", signum))

    @contextlib.contextmanager
    def _turn(self, proc: UProcess) -> Iterator[None]:
        """Let the running core call into the child of ``proc``'s process when no other
        core's call is under way there: the child has one thread, so the cores of a
        threaded worker take turns (a call nested in the running core's own goes on)."""
        main = proc.main
        me = self.kernel.current
        turn = self._turns.get(main)
        if me is None or (turn is not None and turn[0][0] is me):
            yield
            return
        if turn is None:
            turn = self._turns[main] = ([me], deque())
        else:
            turn[1].append(me)
            self.kernel.park("the worker's child runs another core's request")
        try:
            yield
        finally:
            if turn[1]:
                turn[0][0] = turn[1].popleft()
                self.kernel.wake(turn[0][0])
            elif self._turns.get(main) is turn:
                del self._turns[main]

    def _outcome(self, proc: Any, outcome: tuple[Any, ...]) -> tuple[bool, Any]:

        kind = outcome[0]
        if kind == DONE:
            return True, outcome[1]
        if kind == FAIL:
            return False, None
        if kind == EXIT:
            raise ProcessExit(outcome[1], outcome[2])
        # MISSING: a callable made by another process: it does not exist here, as under
        # uWSGI.
        return False, None

    def _method_ref(self, func: Any) -> tuple[str | None, str, str]:
        """A simulator function that runs user code, as the child can find it again."""
        owner = getattr(func, "__self__", None)
        if owner is not None:
            for name, sub in self.inst.subsystems.items():
                if sub is owner:
                    return (name, func.__name__, "")
        return (None, func.__module__, func.__qualname__)

    def call_app(self, w: Worker, req: Any) -> tuple[Any, list[tuple[str, str]], bytes, bool]:
        """``workers._call_app`` in fork mode: the WSGI call runs in the worker's child."""

        inst = self.inst
        app = (w.apps if inst.lazy_apps else inst.app.apps).get(req.app_id)
        if app is None:
            return _call_app(inst, w, req)  # "no python application found": no user code
        state = _request_state(req)
        state[_CORE] = w.core  # which of the worker's cores serves it, in the child
        with self._turn(w):
            outcome = self.child_of(w.main).call("wsgi", state)
        if outcome[0] == EXIT:
            reason, code = outcome[1], outcome[2]
            sent, exceptions = outcome[3:] or (b"", 0)  # op_wsgi's (not a ForkChild error)
            self._count_exceptions(w, req, exceptions)
            if sent:  # the worker wrote a response, then exited in the request
                finish_sent(req, sent, self.kernel.now)
            raise ProcessExit(reason, code)
        (status, headers, body, failed), raw, altered, stats = outcome[1]
        # what the client received, for ``Request.finish`` (the connection was the child's)
        req.conn = types.SimpleNamespace(raw=raw, altered=altered, log_stats=stats)
        self._count_exceptions(w, req, outcome[2])
        w.main.core_routed[w.core] += outcome[3]
        return status, headers, body, failed

    def after_request(self, w: Worker, req: Any) -> None:
        """``workers._after_req_hook`` in fork mode: the hook runs in the worker's child."""
        with self._turn(w):
            outcome = self.child_of(w.main).call("after_request", _request_state(req))
        self._count_exceptions(w, req, outcome[-1])
        if outcome[0] == EXIT:
            raise ProcessExit(outcome[1], outcome[2])

    @staticmethod
    def _count_exceptions(w: Worker, req: Any, count: int) -> None:
        """The exceptions counted in the child (the app's, write errors)."""
        if count:
            w.exceptions += count
            w.app_exceptions[req.app_id] = w.app_exceptions.get(req.app_id, 0) + count

    def module_files(self, proc: UProcess, ignored: list[str]) -> list[str]:
        """The files ``--py-autoreload`` looks at, for one process's modules."""
        return self.child_of(proc).call("module_files", ignored)

    def module_globals(self, proc: UProcess) -> dict[str, dict[str, Any]]:
        """One process's app-module globals (plain values; others as their repr)."""
        return self.child_of(proc).call("globals")

    # -- what children ask the parent --------------------------------------------------------
    def serve(self, child: ForkChild, op: str, payload: Any) -> Any:
        inst = self.inst
        if op == "f":
            name, args, kw = payload
            fn = inst.facade.__dict__.get(name)
            if fn is None:
                raise AttributeError(f"module 'uwsgi' has no attribute '{name}'")
            result = fn(*args, **kw)
            if name in _WRITE_BACK and args and isinstance(args[0], dict):
                return (result, args[0])
            return result
        if op == "sleep":
            self.sleep(payload)
            return None
        if op == "logs":  # lines as the child wrote them (its uwsgi_log put the prefix)
            for line in payload:
                inst.log_raw(line)
            return None
        if op == "message":  # one write() of the child's on its log pipe
            inst.log_message(payload[0], payload[1])
            return None
        if op == "set":
            setattr(inst.facade, payload[0], payload[1])
            return None
        if op == "del":
            inst.facade.__dict__.pop(payload, None)
            return None
        if op == "record":
            inst.record(payload[0], None, **payload[1])
            return None
        if op == "kill":  # the app's os.kill, acting on the virtual process (containment)
            os.kill(*payload)
            return None
        if op == "sigset":  # the app's signal.signal: other processes' os.kill calls it
            child.proc.py_signals[payload[0]] = payload[1]
            return None
        raise SimulationError(f"unknown request {op!r} from {child.proc.name}")


class _Watchdog(threading.Thread):
    """Kills a child that keeps the parent waiting longer than the runtime's timeout.

    The parent blocks in a plain ``read`` (no ``poll`` per message: this is the hot
    path); this thread looks at what it waits for a few times per timeout, with the real
    clock. A hung child first dumps its Python stack (``faulthandler``), then gets
    SIGKILL; the parent's read then ends and it reports the hang.
    """

    def __init__(self, runtime: ForkRuntime) -> None:
        super().__init__(name="simuwsgi-fork-watchdog", daemon=True)
        self._runtime = weakref.ref(runtime)
        self.timeout = runtime.timeout
        self._stopped = threading.Event()

    def stop(self) -> None:
        self._stopped.set()

    def run(self) -> None:
        seen: tuple[Any, int] | None = None
        since = 0.0
        tick = min(max(self.timeout / 5, 0.01), 1.0)
        while not self._stopped.wait(tick):
            rt = self._runtime()
            if rt is None:
                return
            child, seq = rt.waiting_on, rt.wait_seq
            del rt
            if child is None:
                seen = None
                continue
            if seen != (child, seq):
                seen, since = (child, seq), RealClock.monotonic()
                continue
            if RealClock.monotonic() - since >= self.timeout and not child.hung:
                child.hung = True
                try:
                    _real.kill(child.ospid, _DUMP_SIGNAL)
                    RealClock.sleep(0.2)  # faulthandler writes from its signal handler
                    _real.kill(child.ospid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


#: ``RemoteAppLoader.after_req_hook`` when the child has a hook (it calls its own).
_CHILDS_HOOK = object()


class RemoteAppLoader(AppLoader):
    """The parent's app loader in fork mode: the imports happen in the process's child."""

    def _rt(self) -> ForkRuntime:
        return self.inst.forks  # type: ignore[no-any-return]

    def _child(self) -> ForkChild:
        return self._rt().child_of(self.inst.kernel.current)  # type: ignore[arg-type]

    def prepare(self) -> None:
        self._before = set()
        self._child().call("prepare")

    def import_list(self, specs: list[str]) -> None:
        if specs:
            self._child().call("import", list(specs))

    def load(self) -> bool:
        loaded, apps, mountpoints, default, error, exited, hook = self._child().call("load")
        if exited is not None:
            raise SystemExit(exited[0])
        #: the child's uwsgi.after_req_hook, which it calls (``ForkRuntime.after_request``)
        self.after_req_hook = _CHILDS_HOOK if hook else None
        self.apps.clear()
        self.apps.update(apps)
        self.mountpoints.clear()
        self.mountpoints.update(mountpoints)
        self.default_app = default
        self.load_error = error
        return bool(loaded)

    def forget_app_modules(self) -> None:
        self._child().call("forget")

    def _track_new_modules(self) -> None:
        pass

    def restore(self) -> None:
        pass

    def fork(self, threads: object = None) -> None:
        return None

    def master_context(self) -> None:
        return None

    def switch(self, outgoing: Any, incoming: Any) -> None:
        pass


#: The key of the request state (``_request_state``) that says which core serves it.
_CORE = "simuwsgi.core"


def _request_state(req: Any) -> dict[str, Any]:
    """What the child needs of a request: its attributes that can be pickled."""
    state = {k: v for k, v in vars(req).items() if k not in _REQUEST_PARENT_ONLY}
    try:
        _dumps(state, _PROTO)
    except Exception:  # noqa: BLE001 - callbacks of the network layer stay here
        for key in list(state):
            try:
                _dumps(state[key], _PROTO)
            except Exception:  # noqa: BLE001
                del state[key]
    return state


def _real_getpid() -> int:
    from .._core.clock import _R

    return int(_R.getpid())


def _kill_pids(pids: set[int]) -> None:
    for pid in list(pids):
        try:
            _real.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _describe_status(status: int | None) -> str:
    if status is None:
        return "exit status unknown"
    if os.WIFSIGNALED(status):
        num = os.WTERMSIG(status)
        try:
            name = signal.Signals(num).name
        except ValueError:
            name = f"signal {num}"
        return f"killed by signal {num} ({name})"
    if os.WIFEXITED(status):
        return f"exited with status {os.WEXITSTATUS(status)}"
    return f"wait status {status}"


# -- the child side ------------------------------------------------------------------------
class _Proc:
    """What ``kernel.current`` is in a child: enough for ``os.getpid()`` and the loader."""

    __slots__ = ("atexit", "atexit_ran", "exit_code", "fault_handler", "fork_hooks", "id",
                 "kind", "name", "pid", "py_signals", "request", "wait_reason", "wakeup_fd")

    def __init__(self, pid: int, name: str, ident: int, kind: str) -> None:
        #: The app's atexit and Python signal handlers in this process (containment).
        self.atexit: list[Any] = []
        self.atexit_ran = False
        self.py_signals: dict[int, Any] = {}
        self.wakeup_fd = _containment.NO_WAKEUP
        self.fork_hooks: list[tuple[Any, Any, Any]] = []  # os.register_at_fork's
        self.fault_handler: Any = None  # faulthandler's state (containment.FaultHandler)
        self.exit_code: int | None = None
        self.pid = pid
        self.name = name
        self.id = ident
        self.kind = kind
        #: The request being served (the connection functions find it here).
        self.request: Any = None
        self.wait_reason = ""


class _Child:
    """This forked process: its channel to the parent, its callables, its ops."""

    def __init__(self, inst: Instance, wire: _Wire, proc: Any) -> None:
        self.inst = inst
        self.kernel = inst.kernel
        self.clock = inst.clock
        self.wire = wire
        self.proc = proc
        self.vpid = int(proc.pid)
        self.registry: dict[tuple[int, int], Any] = {}
        self._tokens: dict[int, tuple[int, int]] = {}
        self._counter = 0
        self.loader: AppLoader = inst.app
        self.ops: dict[str, Callable[[Any], Any]] = {
            "call": self.op_call, "method": self.op_method, "wsgi": self.op_wsgi,
            "prepare": self.op_prepare, "import": self.op_import, "load": self.op_load,
            "after_request": self.op_after_request,
            "forget": self.op_forget, "globals": self.op_globals, "fork": self.op_fork,
            "reap": self.op_reap, "signal": self.op_signal,
            "atexit": lambda _payload: _containment.run_atexit(self.inst, self.proc),
            "after_fork": self.op_after_fork,
            "module_files": _pyreloader.watched_files,
            "chdir": os.chdir,
            "putenv": lambda payload: self.loader.environment.set(*payload),
        }
        self._zombies: dict[int, int] = {}
        #: per core, the environ dicts ``--wsgi-env-behaviour cheat`` reuses
        self.environs: dict[int, dict[int, dict[str, Any]]] = {}
        #: The parent's requests being served, innermost last.
        self.op_stack: list[str] = []
        #: Signals whose Python handler runs when user code runs again (``op_signal``).
        self.pending_signals: list[int] = []

    def die(self, reason: str, code: int) -> None:
        """uWSGI kills this process (``wire.segfault``): no more of its code runs. The
        parent learns it as the end of the user code it is waiting for."""
        if self.op_stack and self.op_stack[-1] in _USER_OPS:
            self.send((OK, (EXIT, reason, code), None), False)
            _exit(0)

        raise ProcessExit(reason, code)

    # -- tokens ---------------------------------------------------------------------------
    def token_for(self, obj: Any) -> tuple[int, int]:
        token = self._tokens.get(id(obj))
        if token is None or self.registry.get(token) is not obj:
            self._counter += 1
            token = (self.vpid, self._counter)
            self.registry[token] = obj
            self._tokens[id(obj)] = token
        return token

    # -- messages -------------------------------------------------------------------------
    def send(self, msg: tuple[Any, ...], tokenize: bool) -> None:
        self.wire.send(_child_dumps(msg) if tokenize else _dumps(msg, _PROTO))

    def request(self, op: str, payload: Any, tokenize: bool = True) -> Any:
        """Ask the parent; serve its nested requests until the answer comes."""
        msg = (REQ, op, payload)
        self.wire.send(_child_dumps(msg) if tokenize else _dumps(msg, _PROTO))
        result = self.wait()
        if self.pending_signals:
            self.run_signals()
        return result

    def run_signals(self) -> None:
        """The Python handlers of the signals that arrived while user code waited for
        the parent, in it: what they raise comes out in that code (CPython)."""
        signals, self.pending_signals = self.pending_signals, []
        frame = _containment.app_frame(sys._getframe(1))
        for signum in signals:
            handler = self.proc.py_signals.get(signum)
            if callable(handler):
                handler(signum, frame)

    def wait(self) -> Any:
        wire = self.wire
        kernel = self.kernel
        clock = self.clock
        while True:
            try:
                data = wire.recv()
            except (EOFError, OSError):
                _exit(0)  # the parent is gone
            kind, now, wall, a, b = _loads(data)
            kernel.now = now
            clock.wall_offset = wall
            if kind == OK:
                return a
            if kind == ERR:
                raise a
            self.handle(a, b)

    def serve_forever(self) -> None:
        while True:
            self.wait()

    def handle(self, op: str, payload: Any) -> None:
        self.op_stack.append(op)
        try:
            result = self.ops[op](payload)
            msg: tuple[Any, ...] = (OK, result, None)
        except ProcessExit as exc:  # user code ended this process (os._exit, sys.exit)
            if exc.reason == "SystemExit":
                _containment.run_atexit(self.inst, self.proc)  # Py_Exit
            msg = (ERR, (EXIT, exc.reason, exc.code), None)
        except BaseException:  # noqa: BLE001 - a simulator error in the child: report it
            msg = (ERR, traceback.format_exc(), None)
        finally:
            self.op_stack.pop()
        self.send(msg, op in ("method", "load", "globals"))
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError, AttributeError):
                pass

    # -- running user code ------------------------------------------------------------------
    def python_call(self, func: Any, args: tuple[Any, ...], plain: bool) -> tuple[Any, ...]:
        """uWSGI's ``python_call``: exceptions printed and logged; SystemExit ends us."""
        try:
            value = func(*args)
        except SystemExit as exc:
            _containment.run_atexit(self.inst, self.kernel.current)  # Py_Exit
            return (EXIT, "SystemExit", _containment.exit_code_of(exc))
        except BaseException as exc:  # noqa: BLE001 - PyErr_Print
            self.log_exception(exc)
            return (FAIL, None)
        return (DONE, _plain_result(value) if plain else value)

    def log_exception(self, exc: BaseException) -> None:
        self.request("logs", self.inst.exception_lines(exc), False)

    def op_call(self, payload: Any) -> tuple[Any, ...]:
        token, args = payload
        func = self.registry.get(token)
        if func is None:
            return (MISSING, f"callable {token}")
        return self.python_call(func, args, True)

    def op_method(self, payload: Any) -> tuple[Any, ...]:
        (sub, name, qualname), args = payload
        if sub is not None:
            func = getattr(self.inst.subsystems[sub], name)
        else:
            func = sys.modules[name]
            for part in qualname.split("."):
                func = getattr(func, part)
        return self.python_call(func, args, False)

    def op_wsgi(self, payload: Any) -> tuple[Any, ...]:

        core = payload.pop(_CORE, 0)
        req = Request.__new__(Request)
        req.__dict__.update(payload)
        req.conn = req.on_done = req.response = None
        proc = self.kernel.current
        # the worker as the app's call sees it here: its counts go back to the parent
        # (the exceptions, the requests an error or response route ended)
        # and the environs the core reuses (this child's)
        w = types.SimpleNamespace(apps=dict(self.loader.apps), exceptions=0, routed=0,
                                  id=getattr(proc, "id", 0), pid=getattr(proc, "pid", 0),
                                  app_exceptions={}, environs=self.environs.setdefault(core, {}))
        proc.request = req  # the connection (``req.conn``) lives here during the call
        if self.proc.kind == "worker":  # this OS thread runs each core's requests: named
            threading.current_thread().name = f"uWSGIWorker{self.proc.id}Core{core}"
        call = _call_app if _reading.reading(self.inst).exceptions is None else _call_app_py
        try:
            result = call(self.inst, w, req)  # type: ignore[arg-type]
            conn = req.conn
            wire = ((conn.raw, conn.altered, conn.log_stats) if conn is not None
                    else (b"", False, None))
            return (DONE, (result, *wire), w.exceptions, w.routed)
        except ProcessExit as exc:
            if exc.reason == "SystemExit":
                _containment.run_atexit(self.inst, proc)  # Py_Exit
            # what the client got before the exit (--reload-on-exception), the counts
            sent = req.conn.raw if req.conn is not None else b""
            return (EXIT, exc.reason, exc.code, sent, w.exceptions)
        finally:
            proc.request = None

    def op_signal(self, signum: int) -> tuple[Any, ...]:
        """A signal for a Python handler of this process: CPython runs it at the next
        bytecode, so in the user code that waits for the parent if there is some (when
        its wait ends), else now."""
        handler = self.proc.py_signals.get(signum)
        if callable(handler):  # the C handler's byte, at once
            _containment.wake(self.proc, signum, _containment.stderr_line)
        if any(op in _USER_OPS for op in self.op_stack[:-1]):
            self.pending_signals.append(signum)
            return (DONE, None)
        if not callable(handler):
            return (DONE, None)
        return self.python_call(handler, (signum, None), True)

    def op_prepare(self, _payload: Any) -> None:
        self.loader.prepare()

    def op_import(self, specs: list[str]) -> None:
        self.loader.import_list(specs)

    def op_load(self, _payload: Any) -> tuple[Any, ...]:
        try:
            loaded = self.loader.load()
        except SystemExit as exc:  # sys.exit() at import: the parent raises it in turn
            return (False, {}, {}, -1, None, (exc.code,), False)
        return (loaded, dict(self.loader.apps), dict(self.loader.mountpoints),
                self.loader.default_app, self.loader.load_error, None,
                self.loader.after_req_hook is not None)

    def op_after_request(self, payload: Any) -> tuple[Any, ...]:
        """``uwsgi.after_req_hook`` (``workers._after_req_hook``), here where the app
        set it: an exception managed (counted back), ``sys.exit()`` ends the process."""
        proc = self.kernel.current
        req = Request.__new__(Request)
        req.__dict__.update(payload)
        req.conn = req.on_done = req.response = None
        w = types.SimpleNamespace(exceptions=0, app_exceptions={}, request=req,
                                  id=getattr(proc, "id", 0), pid=getattr(proc, "pid", 0))
        proc.request = req
        try:
            try:
                self.loader.after_req_hook()
            except CONTROL:
                raise
            except SystemExit as exc:
                raise ProcessExit.from_system_exit(exc) from None
            except BaseException:  # noqa: BLE001 - uwsgi_manage_exception(wsgi_req, 0)
                _manage_exception(self.inst, w, None, False)  # type: ignore[arg-type]
            return (DONE, w.exceptions)
        except ProcessExit as exc:
            if exc.reason == "SystemExit":
                _containment.run_atexit(self.inst, proc)  # Py_Exit
            return (EXIT, exc.reason, exc.code, b"", w.exceptions)
        finally:
            proc.request = None

    def op_forget(self, _payload: Any) -> None:
        self.loader.forget_app_modules()

    def op_globals(self, _payload: Any) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for name, module in sorted(sys.modules.items()):
            if module is None or not self.loader._is_app_module(module):
                continue
            out[name] = {k: _plain_value(v) for k, v in vars(module).items()
                         if not (k.startswith("__") and k.endswith("__"))
                         and not isinstance(v, types.ModuleType)}
        return out

    # -- the master child's services ----------------------------------------------------------
    def op_fork(self, payload: Any) -> int:
        vpid, name, kind, ident, seed, unreaped = payload
        self._reap(unreaped, block=True)
        fds = self.wire.fds
        rfd, wfd, crash_fd = fds[-3:]
        del fds[:]
        me = _real_getpid()
        # the app's fork hooks live here, in the master's process (containment)
        hooks = self.proc.fork_hooks
        around = _containment.fork_hook_mode(self.inst.opts, kind) == "uwsgi"
        if around:
            _containment.run_fork_hooks(self.inst, hooks, "before")
        ospid = _containment.REAL.fork()  # the runtime's own fork, never refused
        if around and ospid != 0:
            _containment.run_fork_hooks(self.inst, hooks, "after_in_parent")
        if ospid == 0:
            try:
                _die_with_parent()
                if _real.getppid() != me:  # the master child died before prctl
                    _exit(0)
                _become_child(self, vpid, name, kind, ident, seed, rfd, wfd, crash_fd)
            finally:
                _exit(70)
        for fd in (rfd, wfd, crash_fd):
            os.close(fd)
        return ospid

    def op_after_fork(self, mode: str) -> None:
        """The fork hooks this new process runs first (``Instance._after_fork``):
        ``uwsgi.worker_id()`` is 0 in the ones ``--py-call-uwsgi-fork-hooks`` runs."""
        module = self.inst.facade
        if mode == "uwsgi":
            _local(module, "worker_id", 0)
        try:
            _containment.run_fork_hooks(self.inst, self.proc.fork_hooks, "after_in_child")
        finally:
            _local(module, "worker_id", self.proc.id if self.proc.kind == "worker" else 0)

    def op_reap(self, pids: list[int]) -> list[int | None]:
        return self._reap(pids, block=True)

    def _reap(self, pids: list[int], block: bool) -> list[int | None]:
        out: list[int | None] = []
        for pid in pids:
            status = self._zombies.pop(pid, None)
            if status is None:
                try:
                    got, status = os.waitpid(pid, 0 if block else os.WNOHANG)
                    if got == 0:
                        status = None
                except ChildProcessError:
                    status = None
            out.append(status)
        return out


def _plain_value(value: Any) -> Any:
    tp = type(value)
    if tp in _PLAIN:
        return value
    if tp in (list, tuple, set, frozenset):
        return tp(_plain_value(v) for v in value)
    if tp is dict:
        return {_plain_value(k): _plain_value(v) for k, v in value.items()}
    return Opaque(repr(value))


def _is_app_module(loader: AppLoader, module: Any) -> bool:
    try:
        return loader._is_app_module(module)
    except Exception:  # noqa: BLE001 - odd module objects
        return False


def _setup_process(child: _Child, proc: Any, seed: int, crash: Any) -> None:
    """What every child does first: stack dumps, clean GC, its own ``random``."""
    _real.faulthandler_enable(file=crash, all_threads=True)
    _real.faulthandler_register(_DUMP_SIGNAL, file=crash, all_threads=True)
    gc.freeze()
    random.seed(f"simuwsgi:{seed}:{proc.pid}")
    child.kernel.current = proc  # os.getpid() and the loader read it
    set_process_pid(proc.pid)  # and in the threads the app starts here


def _die_with_parent() -> None:
    """``PR_SET_PDEATHSIG``: SIGKILL when the parent dies (no child outlives the test)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def _become_master_child(rt: ForkRuntime, proc: Master, sock: socket.socket, crash: Any,
                         parent_pid: int) -> None:
    """The master child: a fresh interpreter for the master, then its serve loop."""
    global _CHILD
    _die_with_parent()
    if _real.getppid() != parent_pid:
        _exit(0)
    _real.signal(signal.SIGINT, signal.SIG_IGN)
    for fd in list(_OPEN_FDS):
        try:
            os.close(fd)
        except OSError:
            pass
    _OPEN_FDS.clear()
    for name, module in list(sys.modules.items()):  # a fresh interpreter has none of
        if module is not None and _is_app_module(rt.inst.app, module):  # the app's modules
            del sys.modules[name]
    inst = rt.inst
    inst.forks = None
    inst.vfork = False
    inst.app = AppLoader(inst)
    child = _Child(inst, _Wire(sock.fileno(), sock.fileno(), sock, with_fds=True), proc)
    _CHILD = child
    _adapt_instance(child)
    # uWSGI's fd 1 and 2 are its log: what the app prints reaches the parent's log; its
    # fd 0 is /dev/null (core/socket.c) unless --honour-stdin
    sys.stdout = sys.stderr = inst.errors_stream()
    stdin = inst.stdin_stream()
    if stdin is not None:
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        sys.stdin = stdin
    _setup_process(child, proc, rt.seed, crash)
    child.serve_forever()


def _become_child(master: _Child, vpid: int, name: str, kind: str, ident: int, seed: int,
                  rfd: int, wfd: int, crash_fd: int) -> None:
    """A worker/mule/spooler child, forked from the master child."""
    global _CHILD
    _real.signal(signal.SIGCHLD, signal.SIG_DFL)
    assert master.wire.sock is not None
    master.wire.sock.close()
    crash = os.fdopen(crash_fd, "wb", buffering=0)
    proc = _Proc(vpid, name, ident, kind)
    proc.atexit = list(getattr(master.proc, "atexit", []))  # type: ignore[attr-defined]
    proc.fork_hooks = list(master.proc.fork_hooks)
    child = _Child(master.inst, _Wire(rfd, wfd), proc)
    child.registry = master.registry  # inherited memory: the master's callables
    child._tokens = master._tokens
    child.loader = master.loader
    _CHILD = child
    _adapt_instance(child)
    _setup_process(child, proc, seed, crash)
    child.serve_forever()


def _adapt_instance(child: _Child) -> None:
    """Make this process's copy of the instance talk to the parent."""
    inst = child.inst
    proc = child.proc

    def log_raw(line: str, _proc: Any = None, _request: bool = False) -> None:
        child.request("logs", [line], False)

    def log_message(data: bytes, lines: list[str], _proc: Any = None) -> None:
        child.request("message", (data, lines), False)

    def log(line: str, _proc: Any = None) -> None:
        sink = inst.log_sink
        log_raw(sink.stamp(inst.wall()) + line if sink is not None and sink.dated else line)

    def log_exception() -> None:
        exc = sys.exc_info()[1]
        if exc is not None:
            child.request("logs", inst.exception_lines(exc), False)

    def record(kind: str, _proc: Any = None, **fields: Any) -> None:
        child.request("record", (kind, fields))

    def park(reason: str = "") -> Any:
        # Only the parent blocks processes. What parks here is uWSGI killing this
        # process (``wire.segfault``): it ends, and the parent sees it die.
        code = getattr(proc, "exit_code", None)  # containment.die_now: os._exit(n)...
        if code is None:
            code = -11 if "segmentation" in reason else 1
        child.die(reason or "killed", code)

    def call_python(func: Any, *args: Any) -> tuple[bool, Any]:
        outcome = child.python_call(func, args, False)
        if outcome[0] == EXIT:
            raise ProcessExit(outcome[1], outcome[2])
        return outcome[0] == DONE, outcome[1]

    inst.kernel.park = park  # type: ignore[method-assign]
    # os.kill by the app: the parent owns the processes
    _containment.forward_kill = lambda pid, signum: child.request("kill", (pid, signum))
    _containment.forward_signal = lambda signum, handler: child.request(
        "sigset", (signum, handler))
    inst.call_python = call_python  # type: ignore[method-assign]
    inst.log = log  # type: ignore[method-assign]
    inst.log_raw = log_raw  # type: ignore[method-assign]
    inst.log_message = log_message  # type: ignore[method-assign]
    inst.log_exception = log_exception  # type: ignore[method-assign]
    inst.record = record  # type: ignore[method-assign]
    inst._errors_stream = None  # type: ignore[attr-defined]
    inst.app = child.loader
    parent_facade = inst.facade if not isinstance(inst.facade, _ChildUwsgi) else None
    if parent_facade is not None:
        inst.facade = _proxy_module(parent_facade, child)
    module = inst.facade
    is_worker = proc.kind == "worker"
    if is_worker:  # uwsgi_python_set_thread_name(0) after the fork (its own thread here)
        threading.current_thread().name = f"uWSGIWorker{proc.id}Core0"
    _local(module, "worker_id", proc.id if is_worker else 0)
    _local(module, "mule_id", proc.id if proc.kind == "mule" else 0)
    _local(module, "i_am_the_spooler", True if proc.kind == "spooler" else None)
    misc = inst.subsystems.get("misc")
    if misc is not None:  # they act on the client connection, which the child holds
        mine = misc.facade_functions()
        for name in _CONNECTION_FUNCTIONS:
            if name in mine and name in module.__dict__:
                module.__dict__[name] = mine[name]
    sys.modules["uwsgi"] = module

    def sleep(seconds: float) -> None:
        child.request("sleep", seconds, False)

    inst.clock.park = sleep  # what ``time.sleep`` does in a virtual process (clock.py)


def _local(module: types.ModuleType, name: str, value: Any) -> None:
    if name not in module.__dict__:
        return

    def fn(*_args: Any) -> Any:
        return value

    fn.__name__ = fn.__qualname__ = name
    module.__dict__[name] = fn


class _ChildUwsgi(types.ModuleType):
    """The ``uwsgi`` module in a child: the instance's functions, as requests."""

    def __repr__(self) -> str:
        return "<module 'uwsgi' (simuwsgi)>"

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if name in SHARED_ATTRS and _CHILD is not None:
            _CHILD.request("set", (name, value))

    def __delattr__(self, name: str) -> None:
        super().__delattr__(name)
        if name in SHARED_ATTRS and _CHILD is not None:
            _CHILD.request("del", name)


def _proxy_module(facade: types.ModuleType, child: _Child) -> _ChildUwsgi:
    module = _ChildUwsgi("uwsgi")
    d = module.__dict__
    for name, value in facade.__dict__.items():
        if name.startswith("__") and name.endswith("__"):
            continue
        d[name] = _stub(name) if callable(value) else value
    return module


def _stub(name: str) -> Callable[..., Any]:
    plain = _PLAIN

    def fn(*args: Any, **kw: Any) -> Any:
        child = _CHILD
        assert child is not None
        tokenize = bool(kw)
        if not tokenize:
            for a in args:
                if type(a) not in plain:
                    tokenize = True
                    break
        result = child.request("f", (name, args, kw), tokenize)
        if name in _WRITE_BACK and isinstance(result, tuple) and len(result) == 2 \
                and isinstance(result[1], dict) and args and isinstance(args[0], dict):
            mine = args[0]
            for key in [k for k in mine if k not in result[1]]:
                del mine[key]
            return result[0]
        return result

    fn.__name__ = fn.__qualname__ = name
    return fn
