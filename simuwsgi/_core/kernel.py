"""The discrete-event kernel: a heap of timed callbacks and virtual processes.

Theory of operation
-------------------
Everything that happens in a simulation is a callback on one heap, ordered by
``(time, priority, sequence)``. The sequence number is a global counter, so two
events at the same instant with the same priority run in the order they were
scheduled — never in ``id()`` or hash order. Time is a float of virtual seconds
(monotonic, starting at 0); it only moves when the loop pops an event, so when every
process is blocked the clock jumps straight to the next event.

A virtual process is a greenlet. It runs until it *parks* (``Kernel.park``), which
switches back to the hub — the greenlet that runs the loop. It is resumed only by an
event (``Kernel.wake`` schedules one), so all resumptions happen in heap order. One
shortcut: when a process that the loop resumed parks and the loop's next event is
another process's wake-up, the parking process switches to it directly (``_hand_over``)
— the same event at the same point, one greenlet switch instead of two.
``Kernel.current`` names the process that is running; code that asks "who am I"
(``uwsgi.worker_id()``, ``os.getpid()``) reads it.

The kernel knows nothing of uWSGI. Randomness comes from ``Kernel.rng``, one seeded
``random.Random`` per simulation.

The Python code here is the kernel's one description. ``_ckernel.c`` (an optional
build) holds the same per-event state in C fields and runs the hot methods in C, so
that a process's ``sleep``, the hand-over to the next process and the loop's pop run
without a Python frame (``Kernel`` says which).
"""

from __future__ import annotations

import heapq
import itertools
import os
import random
from collections.abc import Callable
from typing import Any

import greenlet

from .._errors import SimulationError
from .accel import load

__all__ = ["Kernel", "Process", "Timer", "Killed"]

#: Default event priority. Lower runs first among events at the same instant.
NORMAL = 1
URGENT = 0


class Killed(BaseException):
    """Thrown into a parked virtual process when the simulation discards it.

    A ``BaseException`` so that ``except Exception`` in user code does not swallow it.
    """


class Timer:
    """Handle of a scheduled callback; ``cancel()`` makes it a no-op."""

    __slots__ = ("_entry",)

    def __init__(self, entry: list[Any]) -> None:
        self._entry = entry

    @property
    def when(self) -> float:
        return float(self._entry[0])

    @property
    def active(self) -> bool:
        return self._entry[3] is not None

    def cancel(self) -> None:
        self._entry[3] = None
        self._entry[4] = ()


#: the optional C accelerator (see _ckernel.c), or None: the Python kernel runs
_ckernel = load(f"{__package__}._ckernel", "KernelCore", "ProcessCore")


class Process(object if _ckernel is None else _ckernel.ProcessCore):  # type: ignore[misc]
    """A virtual process: a greenlet with a name and a pid.

    Subclasses (in the uWSGI layer) add what a uWSGI process is. The kernel only uses
    ``greenlet``, ``alive``, ``wait_reason``, ``context``, ``cwd``, ``domain`` and
    ``pending`` (kept in C fields when the accelerator is built, so that the C kernel
    reads them without a dictionary look-up).
    """

    def __init__(self, kernel: Kernel, name: str, pid: int, target: Callable[[], Any]) -> None:
        self.kernel = kernel
        self.name = name
        self.pid = pid
        self.alive = True
        #: What the process is parked on, for deadlock reports ("" when running).
        self.wait_reason = ""
        #: Opaque per-process state the context-switch hook installs (module globals).
        self.context: Any = None
        #: The process's working directory, applied whenever it runs (None: the
        #: directory the simulation started in).
        self.cwd: str | None = None
        #: What the process belongs to (a node of a cluster): the kernel calls
        #: ``domain_hook`` when the next process to run belongs elsewhere.
        self.domain: Any = None
        #: Calls to make in the process when it next runs (``Kernel.interrupt``).
        self.pending: list[Callable[[], Any]] = []
        self.greenlet = greenlet.greenlet(self._main, parent=kernel.hub)
        self._target = target
        kernel._unfinished[self] = None

    def _main(self, *_ignored: Any) -> Any:
        try:
            return self._target()
        finally:
            self.alive = False
            self.kernel._unfinished.pop(self, None)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} pid={self.pid}>"


class Kernel:
    """Event heap, virtual clock, seeded RNG and the current-process pointer.

    ``Kernel(...)`` makes a ``_CKernel`` when the C accelerator is built (and not
    disabled by ``SIMUWSGI_PURE_PYTHON``): the same class with its per-event state and
    its hot methods (``_run_events``, ``sleep``, ``park``, ``resume``, ``_hand_over``,
    ``_enter``, ``post``, ``post_at``, ``call_soon``, ``wake``) in C, each the twin of
    the Python method here, step for step (same event order, sequence numbers, clock and
    counts; ``tests/test_kernel.py`` runs every test on both).
    """

    def __new__(cls, *_args: Any, **_kwargs: Any) -> Kernel:
        if cls is Kernel and _c_kernel is not None:
            return _c_kernel.__new__(_c_kernel)
        return super().__new__(cls)

    def __init__(self, seed: int = 0) -> None:
        self.now = 0.0
        self.rng = random.Random(seed)
        self.current: Process | None = None
        self.hub = greenlet.getcurrent()
        #: Called as ``hook(installed, incoming)`` before a process is resumed whose
        #: ``context`` differs from the one installed last (the virtual fork: which
        #: process's app modules ``sys.modules`` shows).
        self.context_hook: Callable[[Any, Any], None] | None = None
        self._installed_context: Any = None
        #: Called as ``hook(current, incoming)`` before a process of another ``domain``
        #: than the last one runs (a cluster: which node's modules and ``uwsgi`` show).
        self.domain_hook: Callable[[Any, Any], None] | None = None
        self._domain: Any = None
        self._heap: list[list[Any]] = []
        self._seq = itertools.count()
        self.events_run = 0
        #: Times a process yielded: the stall watchdog sees progress by it.
        self.parks = 0
        #: Set by an event to make ``run_until`` return after it (a response arrived).
        self.stopping = False
        #: The working directory applied now (None: ``home_cwd``, where we started).
        self._cwd: str | None = None
        self.home_cwd = os.getcwd()
        #: Processes whose greenlet has not returned, in creation order: ``close()``
        #: unwinds them (a suspended greenlet is invisible to the cycle collector, so one
        #: left parked would keep the whole simulation alive).
        self._unfinished: dict[Process, None] = {}
        #: ``resume``, bound once: the loop recognises wake-ups by identity.
        self._resume = self.resume
        #: The bounds of the running ``run_until`` and whether the process running now
        #: was resumed by it directly (so that it may hand over; see ``_hand_over``).
        self._until = 0.0
        self._stop: Callable[[], bool] | None = None
        self._may_hand_over = False

    # -- scheduling -----------------------------------------------------------
    def schedule(self, delay: float, fn: Callable[..., Any], *args: Any,
                 priority: int = NORMAL) -> Timer:
        """Run ``fn(*args)`` ``delay`` virtual seconds from now."""
        if delay < 0:
            delay = 0.0
        entry = [self.now + delay, priority, next(self._seq), fn, args]
        heapq.heappush(self._heap, entry)
        return Timer(entry)

    def post(self, delay: float, fn: Callable[..., Any], *args: Any) -> None:
        """``schedule`` without a handle: the cheapest way to run ``fn(*args)`` later."""
        heapq.heappush(self._heap, [self.now + delay, NORMAL, next(self._seq), fn, args])

    def post_at(self, when: float, fn: Callable[..., Any], *args: Any) -> None:
        """``at`` without a handle (``when`` must not be in the past)."""
        heapq.heappush(self._heap, [when, NORMAL, next(self._seq), fn, args])

    def at(self, when: float, fn: Callable[..., Any], *args: Any,
           priority: int = NORMAL) -> Timer:
        """Run ``fn(*args)`` at virtual time ``when`` (now, if it is in the past)."""
        entry = [max(when, self.now), priority, next(self._seq), fn, args]
        heapq.heappush(self._heap, entry)
        return Timer(entry)

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` at the current instant, after what is already due."""
        heapq.heappush(self._heap, [self.now, NORMAL, next(self._seq), fn, args])

    def peek(self) -> float | None:
        """Time of the next live event, or None if nothing is scheduled."""
        heap = self._heap
        while heap and heap[0][3] is None:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def step(self) -> bool:
        """Run the next event. Returns False if there was none."""
        heap = self._heap
        while heap:
            when, _prio, _seq, fn, args = heapq.heappop(heap)
            if fn is None:
                continue
            self.now = when
            self.events_run += 1
            fn(*args)
            return True
        return False

    def run_until(self, when: float, stop: Callable[[], bool] | None = None) -> bool:
        """Run every event due at or before ``when``; leave the clock at ``when``.

        Returns True, leaving the clock where it is, as soon as an event sets
        ``kernel.stopping`` (the flag is cleared) or, with ``stop``, as soon as
        ``stop()`` is true after an event. Returns False otherwise.
        """
        self.stopping = False
        outer = self._until, self._stop
        self._until = when
        self._stop = stop
        try:
            if self._run_events(when, stop):
                return True
        finally:
            self._until, self._stop = outer
        if when > self.now:
            self.now = when
        return False

    def _run_events(self, when: float, stop: Callable[[], bool] | None) -> bool:
        """The loop of ``run_until``: run the events due at or before ``when``; True
        when one set ``stopping`` or ``stop()`` was true after one. The events run are
        counted into ``events_run`` (also when one raises)."""
        heap = self._heap
        resume = self._resume
        pop = heapq.heappop
        count = 0
        try:
            while heap and heap[0][0] <= when:
                t, _prio, _seq, fn, args = pop(heap)
                if fn is None:
                    continue
                self.now = t
                count += 1
                if fn is resume:
                    # A process resumed by the loop itself may hand over to the next
                    # process directly when it parks (``_hand_over``).
                    self._may_hand_over = True
                    try:
                        resume(*args)
                    finally:
                        self._may_hand_over = False
                else:
                    fn(*args)
                if self.stopping or (stop is not None and stop()):
                    self.stopping = False
                    return True
            return False
        finally:
            self.events_run += count

    def run_while(self, pending: Callable[[], bool]) -> bool:
        """Run events while ``pending()`` is true. False if the heap ran dry first."""
        heap = self._heap
        pop = heapq.heappop
        while pending():
            if not heap:
                return False
            t, _prio, _seq, fn, args = pop(heap)
            if fn is None:
                continue
            self.now = t
            self.events_run += 1
            fn(*args)
        return True

    # -- processes ------------------------------------------------------------
    def park(self, reason: str = "") -> Any:
        """Suspend the calling process until an event resumes it; return the value sent."""
        proc = self.current
        if proc is None:
            raise SimulationError(
                "park() called outside a virtual process: blocking calls need one")
        proc.wait_reason = reason
        self.parks += 1
        if self._may_hand_over:
            handed = self._hand_over()
            if handed is not None:
                nxt, value = handed
                value = nxt.greenlet.switch(value)
                if proc.pending:
                    self._run_pending(proc)
                return value
        self.current = None
        value = self.hub.switch()
        if proc.pending:
            self._run_pending(proc)
        return value

    def interrupt(self, proc: Process, call: Callable[[], Any]) -> None:
        """Run ``call`` in ``proc`` when it next runs, as CPython runs a signal's Python
        handler at the process's next bytecode: when ``proc`` returns from the ``park``
        or ``sleep`` it waits in (an exception ``call`` raises comes out of it there)."""
        proc.pending.append(call)

    @staticmethod
    def _run_pending(proc: Process) -> None:
        calls, proc.pending = proc.pending, []
        for call in calls:
            call()

    def _hand_over(self) -> tuple[Process, Any] | None:
        """The process the loop would resume next and its value, entered now, or None.

        When a parking process was resumed by ``run_until`` and the loop's very next
        step would be to resume another process, the parking process switches to it
        directly instead of through the hub: the same event, in the same order, with
        one greenlet switch instead of two. Not when the loop would stop first.
        """
        heap = self._heap
        if not heap or self.stopping:
            return None
        entry = heap[0]
        if entry[3] is not self._resume or entry[0] > self._until:
            return None
        proc, value = entry[4]
        if not proc.alive or not proc.greenlet or (self._stop is not None and self._stop()):
            # Not a process that never ran either: a greenlet starts on the stack (and at
            # the recursion depth) of the one that switches to it, so chained starts
            # would nest; the hub starts it instead.
            return None
        heapq.heappop(heap)
        self.now = entry[0]
        self.events_run += 1
        self._enter(proc)
        return proc, value

    def sleep(self, delay: float, reason: str = "sleep") -> None:
        """Park the calling process for ``delay`` virtual seconds (SimPy's ``yield
        env.timeout(delay)``): ``wake`` and ``park`` in one step.

        Its own wake-up goes on the heap and the next event comes off in one operation;
        when that is its own wake-up (nothing is due before it), the clock moves and the
        process goes on with no switch at all; when it is another process's wake-up, it
        hands over as ``park`` does.
        """
        proc = self.current
        if proc is None:
            raise SimulationError(
                "sleep() called outside a virtual process: blocking calls need one")
        when = self.now + delay if delay > 0 else self.now
        heap = self._heap
        own = [when, NORMAL, next(self._seq), self._resume, (proc, None)]
        if not self._may_hand_over or self.stopping:
            heapq.heappush(heap, own)
            self.park(reason)
            return
        self.parks += 1  # a yield, even when no switch follows (the stall watchdog)
        entry = heapq.heappushpop(heap, own)
        if entry[0] <= self._until and (self._stop is None or not self._stop()):
            if entry is own:
                self.now = when
                self.events_run += 1
                return
            if entry[3] is self._resume:
                nxt, value = entry[4]
                g = nxt.greenlet
                if nxt.alive and g:
                    self.now = entry[0]
                    self.events_run += 1
                    proc.wait_reason = reason
                    if (nxt.context is self._installed_context and nxt.cwd is self._cwd
                            and nxt.domain is self._domain):
                        self.current = nxt  # _enter's work when nothing else changes
                        nxt.wait_reason = ""
                    else:
                        self._enter(nxt)  # its directory, node and globals too
                    g.switch(value)
                    if proc.pending:
                        self._run_pending(proc)
                    return
        heapq.heappush(heap, entry)  # not for this process to run: back, same place
        proc.wait_reason = reason
        self.current = None
        self.hub.switch()
        if proc.pending:
            self._run_pending(proc)

    def wake(self, proc: Process, value: Any = None, delay: float = 0.0) -> None:
        """Schedule ``proc`` to resume (from ``park``) with ``value``."""
        heapq.heappush(self._heap, [self.now + delay, NORMAL, next(self._seq), self._resume,
                                    (proc, value)])

    def resume(self, proc: Process, value: Any = None) -> None:
        """Switch into ``proc`` now (hub only) and return when it parks or ends."""
        if not proc.alive:
            return
        prev = self.current
        self._enter(proc)
        try:
            proc.greenlet.switch(value)
        except Killed:
            proc.alive = False
        finally:
            self.current = prev

    def _enter(self, proc: Process) -> None:
        """Make ``proc`` the running process: its directory, its globals, ``current``."""
        if proc.cwd is not self._cwd:
            self.apply_cwd(proc.cwd)
        if proc.domain is not self._domain:
            self.switch_domain(proc.domain)
        context = proc.context
        if context is not self._installed_context:  # switch_context, inline: every resume
            hook = self.context_hook
            if hook is not None:
                hook(self._installed_context, context)
            self._installed_context = context
        self.current = proc
        proc.wait_reason = ""

    def start(self, proc: Process) -> None:
        """Start a new process at the current instant (runs until it first parks)."""
        self.resume(proc)

    def discard(self, proc: Process) -> None:
        """Forget a process without running any more of its code (SIGKILL); ``close()``
        unwinds its greenlet (one that never started has nothing to unwind: forgotten
        now)."""
        proc.alive = False
        if not proc.greenlet and not proc.greenlet.dead:
            self._unfinished.pop(proc, None)

    def apply_cwd(self, cwd: str | None) -> None:
        """``chdir`` to a process's working directory (None: back to ``home_cwd``)."""
        if cwd is self._cwd:
            return
        try:
            os.chdir(self.home_cwd if cwd is None else cwd)
        except OSError:
            os.chdir(self.home_cwd)
            cwd = None
        self._cwd = cwd

    def switch_context(self, context: Any) -> None:
        """Install ``context`` (through ``context_hook``) if it is not the one in."""
        if context is not self._installed_context and self.context_hook is not None:
            self.context_hook(self._installed_context, context)
        self._installed_context = context

    def switch_domain(self, domain: Any) -> None:
        """Make ``domain`` the one in (through ``domain_hook``), from outside a process."""
        if domain is not self._domain:
            if self.domain_hook is not None:
                self.domain_hook(self._domain, domain)
            self._domain = domain

    def adopt_context(self, context: Any) -> None:
        """Record ``context`` as installed without swapping: the live state is it."""
        self._installed_context = context

    def close(self) -> None:
        """Unwind every process that has not finished, so that nothing of the
        simulation outlives it, and drop the pending events.

        Their ``finally`` blocks run here (a real SIGKILL runs none; a greenlet cannot
        be freed without unwinding it). A process that catches ``Killed`` and parks again
        is thrown it again, a bounded number of times.
        """
        self._heap.clear()
        for _attempt in range(3):
            if not self._unfinished:
                break
            for proc in list(self._unfinished):
                proc.alive = False
                g = proc.greenlet
                if g.dead or not g:  # never started: nothing on its stack
                    self._unfinished.pop(proc, None)
                    continue
                self.current = proc
                try:
                    g.throw(Killed)
                except BaseException:  # noqa: BLE001 - anything the dying code raises
                    pass
                if g.dead:
                    self._unfinished.pop(proc, None)
        self._unfinished.clear()
        self.current = None
        self._heap.clear()


if _ckernel is not None:
    class _CKernel(_ckernel.KernelCore, Kernel):
        """``Kernel`` with its per-event state and hot methods in C (``_ckernel.c``)."""

    _c_kernel: type[Kernel] | None = _CKernel
else:
    _c_kernel = None
