"""uWSGI user locks: ``--locks N`` and ``lock``/``unlock``/``is_locked``.

What it models (``core/lock.c`` pthread robust mutexes, ``plugins/python/
uwsgi_pymodule.c``; ``shared/spec/api.md`` §10, ``semantics.md`` §10):

* ``--locks N`` gives locks 0..N (lock 0 always exists); a bad number raises
  ``ValueError('Invalid lock number')``; in a spooler every call raises
  ``ValueError('The spooler cannot lock/unlock resources')`` before parsing.
* process-shared and non-recursive: a blocked ``lock()`` parks the virtual process;
  waiters are served FIFO (ownership is handed to the first waiter at ``unlock``). A
  second ``lock()`` by the holder parks it forever with a ``wait_reason`` that names
  the self-deadlock, so ``Simulation.request`` reports it instead of hanging.
* ``unlock`` does not check ownership at the Python level, but a robust mutex does: an
  ``unlock`` by a non-holder leaves the mutex held and only clears the recorded holder
  pid (``uli->pid = 0``), so ``is_locked()`` then answers False for others.
* ``is_locked`` is ``trylock``: True while anyone holds it (the caller included).
* robust mutex recovery: when the holder dies, the next ``lock()`` takes it and logs
  ``[deadlock-detector] a process holding a robust mutex died. recovering...``. An
  ``is_locked()`` issued first acquires the dead owner's mutex through ``trylock``
  (EOWNERDEAD) and keeps it: a following ``lock()`` by the same process deadlocks, and
  its ``unlock()`` makes the mutex unrecoverable (every later ``lock()`` returns at once
  without excluding anyone), as glibc does.

The cores of a ``--threads`` worker are threads: each is a holder of its own (a core
waits for the lock another core of its worker holds; an ``unlock`` by another core is
a non-holder's); the worker's death is each of its cores' death.

Left out: threads started by app code, the ``--lock-engine`` alternatives (ipcsem, ...).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from ..server._pyarg import no_kwargs, parser
from ..server.processes import Spooler, UProcess

if TYPE_CHECKING:
    from ..server.interface import Instance

__all__ = ["Locks"]

_DEADLOCK_LOG = "[deadlock-detector] a process holding a robust mutex died. recovering..."


class _Lock:
    __slots__ = ("holder", "inconsistent", "num", "pid", "unrecoverable", "waiters")

    def __init__(self, num: int) -> None:
        self.num = num
        self.holder: UProcess | None = None
        #: ``uli->pid``: what ``is_locked`` reports (0 = "free").
        self.pid = 0
        self.waiters: deque[UProcess] = deque()
        #: acquired through EOWNERDEAD by trylock and never made consistent
        self.inconsistent = False
        self.unrecoverable = False


class Locks:
    """The user locks of one instance (shared memory)."""

    @classmethod
    def create(cls, inst: Instance) -> Locks:
        return cls(inst)

    def __init__(self, inst: Instance) -> None:
        self.inst = inst
        self.count = max(0, inst.opts.int("locks", 0))
        self.locks = [_Lock(i) for i in range(self.count + 1)]

    def _owner_dead(self, lock: _Lock) -> bool:
        return lock.holder is not None and not lock.holder.alive

    # -- operations ---------------------------------------------------------------------
    def lock(self, num: int) -> None:
        inst = self.inst
        kernel = inst.kernel
        proc = kernel.current
        lock = self.locks[num]
        if lock.unrecoverable:
            lock.pid = proc.pid if proc is not None else 0
            return
        if lock.holder is None:
            self._acquire(lock, proc)
            return
        if self._owner_dead(lock):
            inst.log(_DEADLOCK_LOG)
            inst.record("lock.recovered", proc, num=num, dead_pid=lock.holder.pid)
            lock.inconsistent = False
            self._acquire(lock, proc)
            return
        if proc is None:
            from .._errors import SimulationError

            raise SimulationError(f"lock({num}) would block outside a virtual process")
        if lock.holder is proc:
            reason = f"lock {num} (held by itself: deadlock)"
        else:
            reason = f"lock {num} (held by {lock.holder.name})"
        inst.record("lock.wait", proc, num=num, holder=lock.holder.name)
        lock.waiters.append(proc)
        kernel.park(reason)
        # Woken by unlock()/process_died(): ownership was handed over.

    def _acquire(self, lock: _Lock, proc: UProcess | None) -> None:
        lock.holder = proc
        lock.pid = proc.pid if proc is not None else 0
        self.inst.record("lock.acquire", proc, num=lock.num)

    def unlock(self, num: int) -> None:
        proc = self.inst.kernel.current
        lock = self.locks[num]
        if lock.holder is proc and proc is not None and not lock.unrecoverable:
            if lock.inconsistent:
                lock.unrecoverable = True
                lock.inconsistent = False
                lock.holder = None
                lock.pid = 0
                self._wake_all(lock)
                return
            self.inst.record("lock.release", proc, num=num)
            self._hand_over(lock)
        else:
            lock.pid = 0  # EPERM from pthread_mutex_unlock, but uli->pid is cleared

    def _hand_over(self, lock: _Lock) -> None:
        lock.holder = None
        lock.pid = 0
        while lock.waiters:
            nxt = lock.waiters.popleft()
            if nxt.alive:
                self._acquire(lock, nxt)
                self.inst.kernel.wake(nxt)
                return

    def _wake_all(self, lock: _Lock) -> None:
        while lock.waiters:
            nxt = lock.waiters.popleft()
            if nxt.alive:
                lock.pid = nxt.pid
                self.inst.kernel.wake(nxt)

    def is_locked(self, num: int) -> bool:
        proc = self.inst.kernel.current
        lock = self.locks[num]
        if lock.unrecoverable:
            return lock.pid != 0
        if lock.holder is None:
            return False
        if self._owner_dead(lock):
            # trylock returns EOWNERDEAD and the caller now owns an inconsistent mutex
            lock.holder = proc
            lock.inconsistent = True
            return lock.pid != 0
        return lock.pid != 0

    def process_died(self, proc: UProcess) -> None:
        for lock in self.locks:
            for waiter in [p for p in lock.waiters if p.main is proc]:
                lock.waiters.remove(waiter)
            if lock.holder is not None and lock.holder.main is proc and lock.waiters:
                # a waiter blocked in pthread_mutex_lock gets EOWNERDEAD at once
                nxt = lock.waiters.popleft()
                self.inst.log(_DEADLOCK_LOG, nxt)
                self.inst.record("lock.recovered", nxt, num=lock.num, dead_pid=proc.pid)
                lock.inconsistent = False
                self._acquire(lock, nxt)
                self.inst.kernel.wake(nxt)

    # -- the uwsgi module ------------------------------------------------------------------
    def facade_functions(self) -> dict[str, Any]:
        kernel = self.inst.kernel

        def make(name: str, op: Any) -> Any:
            p = parser(f"|i:{name}")

            def fn(*args: Any, **kw: Any) -> Any:
                no_kwargs(name, kw)
                if isinstance(kernel.current, Spooler):
                    raise ValueError("The spooler cannot lock/unlock resources")
                v = p(args)
                num = v[0] if v else 0
                if num < 0 or num > self.count:
                    raise ValueError("Invalid lock number")
                return op(num)

            fn.__name__ = name
            return fn

        def do_lock(num: int) -> None:
            self.lock(num)

        def do_unlock(num: int) -> None:
            self.unlock(num)

        return {"lock": make("lock", do_lock), "unlock": make("unlock", do_unlock),
                "is_locked": make("is_locked", self.is_locked)}
