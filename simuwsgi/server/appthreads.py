"""Threads app code starts, and the locks between the threads of a simulation.

In uWSGI 2.0.30 an app's ``threading.Thread`` is an OS thread of its process (pyuwsgi
always initialises Python threads, ``--enable-threads`` or not): ``uwsgidecorators``'
``@postfork`` + ``@thread`` background loop, a ``threading.Timer``, a queue consumer.
Here such a thread is a virtual thread of its virtual process (``AppThread``): a
greenlet the kernel schedules like a ``--threads`` core (``processes.ThreadOf``): in
the seeded order, reading the virtual clock (``time.sleep`` in it is virtual), with its
own ``threading.get_ident()``, ``current_thread()`` and ``threading.local`` namespace.
``join`` and ``is_alive`` are ``Thread``'s own (an app's subclass may override them),
asking a ``VLock`` the simulator holds while the thread runs (``_ended_on``). ``uwsgi.*`` and the calls ``containment``
patches act on its process. What it raises goes to ``threading.excepthook`` (printed to
the process's log). It dies with its process (exit, respawn, reload, harakiri): the new
process starts with none, as after ``fork()``; one started in the master before the
fork runs in the master only (hence ``@postfork``).

The cores of a worker and these threads are greenlets on one OS thread, so a
``threading.Lock`` one holds across a virtual sleep would block the OS thread when
another wants it. While a simulation is open, ``threading.Lock``/``RLock`` (and with
them ``Condition``, ``Event``, ``Semaphore``, ``Barrier``, ``queue.Queue``, which build
on them) made *by code running in a virtual process* are ``VLock``: a blocking acquire
of a held one parks the thread in virtual time (``timeout=`` in virtual seconds) until a
release hands it over (first come, first served). Locks made outside (the test runner's,
the simulator's, the host's modules') stay real. When every thread of a process waits
for a lock with no timeout and no harakiri can end it, nothing can release one: a
``DeadlockError`` comes out of the call that drives the simulation, naming them.

Fork mode runs app code in OS processes: there threads and locks are real.
"""

from __future__ import annotations

import _thread
import inspect
import itertools
import sys
import threading
import traceback
from collections import deque
from typing import TYPE_CHECKING, Any

from .._errors import DeadlockError, SimulationError
from .processes import ThreadOf

if TYPE_CHECKING:
    from .containment import Containment
    from .processes import UProcess

__all__ = ["AppThread", "AppThreads", "VLock"]

#: What a thread waiting for a lock is parked on: with no timeout, or with one.
WAITING = "waiting for a lock"
WAITING_TIMED = "waiting for a lock (timeout)"

_REAL_LOCK = _thread.allocate_lock
_REAL_ENUMERATE = threading.enumerate


def _check(blocking: bool, timeout: float) -> None:
    """The arguments ``_thread.lock.acquire`` refuses, refused with its errors."""
    probe = _REAL_LOCK()
    probe.acquire(blocking, timeout)  # free: returns at once, or raises


class VLock:
    """``_thread.lock`` for the threads of one simulation (see the module docstring)."""

    __slots__ = ("_contain", "_locked", "_waiters", "__weakref__")

    def __init__(self, contain: Containment) -> None:
        self._contain = contain
        self._locked = False
        #: The threads waiting for it, in order: [thread, timeout timer, handed over].
        self._waiters: deque[list[Any]] = deque()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if blocking is not True or timeout != -1:
            _check(blocking, timeout)
        if not self._locked:
            self._locked = True
            return True
        if not blocking:
            return False
        proc = self._contain.running()
        if proc is None:
            raise SimulationError(
                "a lock held by a thread of a virtual process cannot be waited for "
                "outside the simulation (it would wait for ever)")
        return self._wait(proc, timeout)

    def _wait(self, proc: UProcess, timeout: float) -> bool:
        kernel = self._contain.inst.kernel
        entry: list[Any] = [proc, None, False]
        self._waiters.append(entry)
        if timeout >= 0:
            entry[1] = kernel.schedule(timeout, self._expire, entry)
        else:
            proc.inst.app_threads.check_deadlock(proc)
        try:
            kernel.park(WAITING_TIMED if timeout >= 0 else WAITING)
        except BaseException:
            if entry[2]:  # handed the lock, then stopped before taking it: pass it on
                self.release()
            elif entry in self._waiters:
                self._waiters.remove(entry)
                if entry[1] is not None:
                    entry[1].cancel()
            raise
        return bool(entry[2])

    def _expire(self, entry: list[Any]) -> None:
        """A waiter's ``timeout`` ran out before the lock came to it."""
        self._waiters.remove(entry)
        proc = entry[0]
        proc.wait_reason = "lock timeout"
        self._contain.inst.kernel.wake(proc)

    def release(self) -> None:
        if not self._locked:
            raise RuntimeError("release unlocked lock")
        waiters = self._waiters
        while waiters:
            entry = waiters.popleft()
            if entry[1] is not None:
                entry[1].cancel()
            proc = entry[0]
            if not proc.alive:  # died waiting (with its process)
                continue
            entry[2] = True  # it holds the lock now: it stays locked
            proc.wait_reason = "lock handed over"
            self._contain.inst.kernel.wake(proc)
            return
        self._locked = False

    def locked(self) -> bool:
        return self._locked

    def _at_fork_reinit(self) -> None:
        self._locked = False
        self._waiters.clear()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()

    acquire_lock = acquire
    release_lock = release
    locked_lock = locked

    def __deepcopy__(self, memo: Any) -> VLock:
        """The virtual fork: a fresh lock for an unheld one, as ``fork()`` leaves it; a
        held one is shared (``_vfork`` does the same for a real lock)."""
        if self._locked:
            raise TypeError("held by a thread at fork time")
        return VLock(self._contain)

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise TypeError("cannot pickle '_thread.lock' object")

    def __repr__(self) -> str:
        state = "locked" if self._locked else "unlocked"
        return f"<{state} _thread.lock object at {id(self):#x}>"


# What app code (and the virtual fork's report) sees of its lock's type.
VLock.__module__, VLock.__qualname__ = "_thread", "lock"


class AppThread(ThreadOf):
    """A ``threading.Thread`` app code started in a virtual process: a thread of it."""

    OWN = ThreadOf.OWN | {"pending", "thread", "vident", "ended"}

    def __init__(self, main: UProcess, thread: threading.Thread, vident: int,
                 ended: VLock) -> None:
        inst = main.inst
        self._begin(main, 0, lambda: inst.run_process(self, _body))
        own = object.__setattr__
        own(self, "thread", thread)
        own(self, "vident", vident)
        #: Held while it runs: ``join`` waits for it, ``is_alive`` asks it.
        own(self, "ended", ended)
        # CPython runs Python signal handlers in the main thread only: not here.
        own(self, "pending", [])

    @property
    def alive(self) -> bool:
        """Running: it ends, or ``AppThreads.reap`` ends it with its process."""
        return self._alive

    @alive.setter
    def alive(self, value: bool) -> None:
        object.__setattr__(self, "_alive", value)

    def __repr__(self) -> str:
        return f"<AppThread {self.thread.name} of {self.main.name} pid={self.main.pid}>"


#: One class per process class, so that a worker's thread is a ``Worker`` to
#: ``isinstance`` as its cores are.
_CLASSES: dict[type, type] = {}


def _thread_class(main: UProcess) -> type:
    cls = _CLASSES.get(type(main))
    if cls is None:
        cls = _CLASSES[type(main)] = type("AppThread", (AppThread, type(main)), {})
    return cls


def _bootstrap_frame() -> list[str]:
    """The traceback's lines of ``Thread._bootstrap_inner`` calling ``run()``, as this
    Python prints them (3.13 marks the call with carets)."""
    bootstrap = threading.Thread._bootstrap_inner  # type: ignore[attr-defined]
    lines, first = inspect.getsourcelines(bootstrap)
    at = next(i for i, line in enumerate(lines) if line.strip() == "self.run()")
    lineno, col = first + at, len(lines[at]) - len(lines[at].lstrip())
    where = {} if sys.version_info < (3, 11) else {  # (3.10 has no columns)
        "end_lineno": lineno, "colno": col, "end_colno": col + len("self.run()")}
    frame = traceback.FrameSummary(threading.__file__, lineno, "_bootstrap_inner", **where)
    return "".join(traceback.StackSummary.from_list([frame]).format()).splitlines()


_BOOTSTRAP_FRAME = _bootstrap_frame()


def _body(vt: AppThread) -> None:
    """``Thread._bootstrap_inner`` for a virtual thread: ``run()``, its exception to
    ``threading.excepthook`` (the default one writes to the process's log; SystemExit
    ends the thread quietly), then its end."""
    from .containment import CONTROL

    thread = vt.thread
    try:
        thread.run()
    except SystemExit:
        pass
    except CONTROL:
        raise
    except BaseException as exc:  # noqa: BLE001 - what CPython hands to the excepthook
        if threading.excepthook not in (threading.__excepthook__,
                                        vt.inst.app_threads.host_excepthook):  # the app's
            thread._invoke_excepthook(thread)  # type: ignore[attr-defined]
        else:  # the default one prints to stderr: uWSGI's log
            inst = vt.inst
            lines = inst.exception_lines(exc)
            if lines[:1] == ["Traceback (most recent call last):"]:
                lines[1:1] = _BOOTSTRAP_FRAME  # where CPython's thread calls run()
            for line in [f"Exception in thread {thread.name}:", *lines]:
                inst.log_raw(line)
    vt.inst.app_threads.finish(vt)


class AppThreads:
    """One simulation's virtual threads: started, ended, reaped with their process."""

    #: Their ``threading.get_ident()`` values, past the cores' (``containment``).
    IDENT_BASE = 1 << 32

    def __init__(self, contain: Containment) -> None:
        self.contain = contain
        self._idents = itertools.count(self.IDENT_BASE)
        #: ``threading._counter`` of each process: its last "Thread-N".
        self._named: dict[Any, int] = {}
        #: The test runner's ``threading.excepthook`` (pytest's): not the app's.
        self.host_excepthook = threading.excepthook
        #: The running threads of each process.
        self.of: dict[Any, list[AppThread]] = {}

    def start(self, proc: UProcess, thread: threading.Thread) -> None:
        """``Thread.start()`` in ``proc``: the thread runs from the caller's next yield."""
        if not thread._initialized:  # type: ignore[attr-defined]
            raise RuntimeError("thread.__init__() not called")
        if thread._started.is_set():  # type: ignore[attr-defined]
            raise RuntimeError("threads can only be started once")
        main = proc.main
        ended = VLock(self.contain)
        ended.acquire()
        vt = _thread_class(main)(main, thread, next(self._idents), ended)
        thread._ident = thread._native_id = vt.vident  # type: ignore[attr-defined]
        _ended_on(thread, ended)
        thread._started.set()  # type: ignore[attr-defined]
        threading._active[vt.vident] = thread  # type: ignore[attr-defined]
        self.of.setdefault(main, []).append(vt)
        main.kernel.wake(vt)

    def name_number(self, proc: UProcess) -> int:
        """The N of a new "Thread-N" in ``proc``: a process counts on from the master's
        count, as a forked one does."""
        main = proc.main
        master = main.inst.master
        n = self._named.get(main, self._named.get(master, 0)) + 1
        self._named[main] = n
        return n

    def enumerate(self, proc: UProcess, cores: range) -> list[threading.Thread]:
        """``threading.enumerate()`` in ``proc``: its main thread, its cores' (idents in
        ``cores``) and the threads it started; not other processes' threads, nor the
        host's (the test runner's, the simulator's watchdog)."""
        mine = {vt.vident for vt in self.of.get(proc.main, ())}
        main = threading.main_thread()
        return [t for t in _REAL_ENUMERATE()
                if t is main or t.ident in mine or (t.ident or 0) in cores]

    def finish(self, vt: AppThread) -> None:
        """The thread ended: it leaves ``threading.enumerate()`` and its joiners go on."""
        threads = self.of.get(vt.main)
        if threads is not None and vt in threads:
            threads.remove(vt)
        self._gone(vt)

    @staticmethod
    def _gone(vt: AppThread) -> None:
        threading._active.pop(vt.vident, None)  # type: ignore[attr-defined]
        if vt.ended.locked():
            vt.ended.release()

    def reap(self, main: Any) -> None:
        """Its process died: so did its threads (none of their code runs again)."""
        for vt in self.of.pop(main, ()):
            vt.kernel.discard(vt)
            self._gone(vt)

    def close(self) -> None:
        for main in list(self.of):
            self.reap(main)

    def check_deadlock(self, proc: UProcess) -> None:
        """``proc`` is about to wait for a lock with no timeout: if every other thread
        of its process does too, none can ever release one (a harakiri would end it)."""
        main = proc.main
        if main.harakiri_timer is not None or main.kind == "master":
            return  # (the master's main thread is the hub's loop: never waiting)
        threads = [*getattr(main, "cores", [main]), *self.of.get(main, ())]
        if any(t is not proc and t.alive and t.wait_reason != WAITING for t in threads):
            return
        names = ", ".join(_thread_name(t) for t in threads if t.alive)
        error = DeadlockError(
            f"deadlock in {main.name} (pid {main.pid}): every thread of it waits for a "
            f"lock, with no timeout, that only another of them could release: {names}")

        def report() -> None:
            raise error

        proc.kernel.call_soon(report)


class _EndedHandle:
    """Python 3.13's ``_thread._ThreadHandle`` of a virtual thread: what
    ``Thread.join`` and ``is_alive`` ask, answered by its ``ended`` lock."""

    __slots__ = ("_ended",)

    def __init__(self, ended: VLock) -> None:
        self._ended = ended

    def join(self, timeout: float | None = None) -> None:
        if self._ended.acquire(True, -1 if timeout is None else timeout):
            self._ended.release()

    def is_done(self) -> bool:
        return not self._ended.locked()


def _ended_on(thread: threading.Thread, ended: VLock) -> None:
    """``thread``'s ``join()`` and ``is_alive()`` (and ``repr``) from now on wait for and
    ask ``ended``, held until the virtual thread ends. The one place knowing CPython's
    thread internals: replacing ``join``/``is_alive`` on the thread instead would bypass
    an app's subclass overriding them (its ``super().join()`` reaches ``Thread``'s)."""
    if sys.version_info >= (3, 13):  # they ask the thread's handle of its OS thread
        thread._handle = _EndedHandle(ended)  # type: ignore[attr-defined]
    else:  # 3.10-3.12: they wait for its "tstate lock", released as its OS thread ends
        thread._tstate_lock = ended  # type: ignore[attr-defined]


def _thread_name(t: Any) -> str:
    if isinstance(t, AppThread):
        return f"thread {t.thread.name!r}"
    request = t.request
    where = f" handling {request.method} {request.path}" if request is not None else ""
    return f"core {t.core}{where}" if t.core else f"the main thread{where}"
