"""uWSGI's process kinds as virtual processes: master, worker, mule, spooler.

Ids are uWSGI's slot numbers (workers 1..N, mules 1..M, spoolers 1..K); they are stable
across respawns, pids are not. Each process carries the counters ``uwsgi.workers()``
reports (kept across respawns, as uWSGI keeps them in shared memory) and, as its
``context``, its own copy of the app's modules (the virtual fork, see ``_vfork``).

A worker with ``--threads N`` is one process with N cores (``core/loop.c``
``uwsgi_loop_cores_run``): the ``Worker`` is its main thread, core 0; cores 1..N-1 are
``WorkerThread`` virtual processes of their own (a greenlet each, so each can be in a
request at the same time in virtual time) that share everything else with the worker:
pid, counters, hooks, modules, working directory.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import greenlet

from .._core.kernel import Process

if TYPE_CHECKING:
    from .master import Instance

__all__ = ["UProcess", "Master", "Worker", "WorkerThread", "ThreadOf", "Mule", "Spooler",
           "ThreadToken"]


class ThreadToken:
    """Who a thread is to ``threading.local`` (``containment``): one per process, one
    per core of a ``--threads`` worker."""


class UProcess(Process):
    """A uWSGI process: kind, slot id, and what the facade asks about it."""

    #: slots for the fields the C signal path reads and writes at every delivery (see
    #: subsystems/_cfields.h)
    __slots__ = ("id", "in_handler", "name", "signals")

    kind = "process"
    #: how the master's spawn line starts (1.4's gateways: "respawned" after a death)
    spawn_verb = "spawned"
    #: ``threading.get_ident()`` of a thread the app started (``appthreads``); None for
    #: the process and its cores (found here, not through a core's ``__getattr__``).
    vident: int | None = None

    def __init__(self, inst: Instance, ident: int, target: Callable[[], Any]) -> None:
        self.inst = inst
        self.id = ident
        super().__init__(inst.kernel, f"{self.kind}{ident}" if ident else self.kind,
                         inst.next_pid(), target)
        self.domain = inst  # the node it runs on (several share a kernel in a cluster)
        #: Signals queued on this process's private signal socket (owned by the
        #: master: they survive a respawn).
        self.last_spawn = 0
        self.respawn_count = 0
        self.harakiri_deadline = 0.0
        self.user_harakiri_deadline = 0.0
        self.harakiri_timer: Any = None
        #: The current request (workers) while one runs.
        self.request: Any = None
        #: Set by the master when it kills the process (SIGKILL) mid-flight.
        self.killed_by = ""
        #: What ``get_memusage`` would measure now, in bytes (``Simulation.set_rss``).
        self.rss = 0
        self.vsz = 0
        #: The values last published to the shared worker table (end of a request, or
        #: the mem-collector thread of --evil-reload-on-*).
        self.rss_size = 0
        self.vsz_size = 0
        self.in_handler = -1
        self.signals = 0
        #: This process's ``uwsgi`` hook attributes (``facade.HOOKS``); a forked process
        #: starts with a copy of the master's.
        self.hooks: dict[str, Any] = {}
        #: How it ended: the signal that killed it, or its exit status (``master.c``
        #: words its death by them).
        self.exit_signal: int | None = None
        self.exit_code: int | None = None
        #: Its ``atexit`` handlers and Python signal handlers (``containment``).
        self.atexit: list[tuple[Any, tuple[Any, ...], dict[str, Any]]] = []
        self.atexit_ran = False  # uwsgi_python_atexit runs once
        self.py_signals: dict[int, Any] = {}
        #: Its ``os.register_at_fork`` hooks: (before, after_in_child, after_in_parent).
        self.fork_hooks: list[tuple[Any, Any, Any]] = []
        #: Which fork hooks run as it starts (``containment.fork_hook_mode``), and
        #: whether they run now (``uwsgi.worker_id()`` is 0 then).
        self.after_fork: str | None = None
        self.forking = False
        self.thread_token = ThreadToken()

    @property
    def worker_id(self) -> int:
        return 0

    @property
    def main(self) -> UProcess:
        """The process this one is a thread of (itself, but for a worker's cores)."""
        return self

    @property
    def busy(self) -> bool:
        """In a request (a worker: any of its cores, ``uwsgi_worker_is_busy``)."""
        return self.request is not None

    def in_flight(self) -> list[Any]:
        """The requests it is running (a worker: one per busy core)."""
        return [] if self.request is None else [self.request]

    @property
    def mule_id(self) -> int:
        return 0


class Master(UProcess):
    kind = "master"

    def __init__(self, inst: Instance, target: Callable[[], Any]) -> None:
        super().__init__(inst, 0, target)


class Worker(UProcess):
    kind = "worker"
    __slots__ = ("acceptor", "idle")  # (see UProcess.__slots__)
    #: the core's environ dict per app (``--wsgi-env-behaviour cheat``), made when used
    environs: dict[int, dict[str, Any]] | None = None

    def __init__(self, inst: Instance, ident: int, target: Callable[[], Any],
                 previous: Worker | None = None) -> None:
        super().__init__(inst, ident, target)
        if previous is None:
            self.signal_queue: deque[int] = deque()
            self.requests = 0
            self.delta_requests = 0
            self.signals = 0
            self.exceptions = 0
            self.running_time = 0
            self.tx = 0
            self.avg_rt = 0
            #: each core's request count (``uwsgi.request_id()``), in shared memory
            self.core_counts = [0] * inst.threads
            #: each core's requests the internal routing ended (``routed_requests``)
            self.core_routed = [0] * inst.threads
            self.respawn_count = 0
            self.app_requests: dict[int, int] = {}
            self.app_exceptions: dict[int, int] = {}
        else:
            # Shared memory outlives the process: counters and queued signals stay.
            self.signal_queue = previous.signal_queue
            self.requests = previous.requests
            self.delta_requests = 0
            self.signals = previous.signals
            self.exceptions = previous.exceptions
            self.running_time = previous.running_time
            self.tx = previous.tx
            self.avg_rt = previous.avg_rt
            self.core_counts = previous.core_counts
            self.core_routed = previous.core_routed
            self.respawn_count = previous.respawn_count + 1
            self.app_requests = previous.app_requests
            self.app_exceptions = previous.app_exceptions
        self.status = "idle"
        #: requests of each app (``uwsgi_apps[id].requests``): in the worker's slot of
        #: shared memory, where the master copied its apps as it loaded them, so a
        #: respawned worker goes on counting (observed: "req: 2/1" after a harakiri);
        #: with --lazy-apps the worker loads its own, which zeroes them (uwsgi_add_app)
        self.app_local_requests: dict[int, int] = (
            previous.app_local_requests if previous is not None and not inst.lazy_apps
            else {})
        #: True while parked in the accept loop, listed in ``inst.idle_workers``.
        self.idle = False
        #: The app table of this worker (``--lazy-apps``: each worker loads its own),
        #: and the ``uwsgi.after_req_hook`` its load found.
        self.apps: dict[int, Any] = {}
        self.after_req_hook: Any = None
        self.accepting = True
        self.cheaped = False
        self.paused = False
        self.manage_next_request = True
        #: Why the worker leaves its loop once manage_next_request is off.
        self.stop_reason = "reload"
        #: Sent SIGHUP by the master (uwsgi_curse): it ends after its request.
        self.cursed = False
        #: Harakiri attempts on this process (``pending_harakiri``, 0 at each spawn) and
        #: on its slot (``harakiri_count``, kept across respawns).
        self.pending_harakiri = 0
        self.harakiri_count = previous.harakiri_count if previous is not None else 0
        #: This thread's core number; ``cores`` lists every core, this one first.
        self.core = 0
        self.cores: list[Worker] = [self]
        #: The core parked in accept (``kernel.wake`` it with a request or a signal), and
        #: the free cores waiting for the accept mutex after it, first come first served.
        self.acceptor: Worker | None = None
        self.mutex_waiters: deque[Worker] = deque()

    @property
    def worker_id(self) -> int:
        return self.id

    @property
    def busy(self) -> bool:
        return any(core.request is not None for core in self.cores)

    def in_flight(self) -> list[Any]:
        return [core.request for core in self.cores if core.request is not None]

    def stop_accepting(self) -> None:
        """``manage_next_request`` is off: the core in accept leaves it (the loop stop
        pipe wakes it) and no new request or signal is handed to the worker."""
        if self.idle:
            self.inst.idle_workers.remove(self)
            self.idle = False


class ThreadOf:
    """A thread of a process: its own greenlet, wait, request and ``threading.local``
    identity (``OWN``); everything else (pid, counters, hooks, modules, harakiri
    deadline) it reads and writes on its process. Mixed in before the process's class,
    so that it is one to every ``isinstance`` check and ``uwsgi.*`` answers for it."""

    OWN = frozenset({"greenlet", "_target", "_alive", "wait_reason", "request", "core",
                     "_process", "kernel", "alive", "thread_token", "environs"})

    def _begin(self, main: UProcess, core: int, target: Callable[[], Any]) -> None:
        # Not the process's __init__: the state is the process's; only the thread's is set.
        own = object.__setattr__
        own(self, "_process", main)
        own(self, "kernel", main.kernel)
        own(self, "core", core)
        own(self, "request", None)
        own(self, "wait_reason", "")
        own(self, "_alive", True)
        own(self, "thread_token", ThreadToken())
        own(self, "environs", None)  # (each core its environ dicts)
        own(self, "_target", target)
        own(self, "greenlet", greenlet.greenlet(self._main, parent=main.kernel.hub))
        # what Process.__init__ does for the kernel (its setattrs would reach the process)
        main.kernel._unfinished[self] = None  # type: ignore[index]

    @property
    def main(self) -> Any:
        return self._process

    @property
    def alive(self) -> bool:
        """Running, and so is its process (a dead process has no threads)."""
        return self._alive and self._process.alive

    @alive.setter
    def alive(self, value: bool) -> None:
        object.__setattr__(self, "_alive", value)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._process, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in type(self).OWN:
            object.__setattr__(self, name, value)
        else:
            setattr(self._process, name, value)


class WorkerThread(ThreadOf, Worker):
    """Core ``core`` (1..N-1) of a worker: a thread of its process."""

    def __init__(self, main: Worker, core: int, target: Callable[[], Any]) -> None:
        self._begin(main, core, target)

    def __repr__(self) -> str:
        return f"<WorkerThread {self.main.name} core {self.core} pid={self.main.pid}>"


class Mule(UProcess):
    kind = "mule"

    def __init__(self, inst: Instance, ident: int, target: Callable[[], Any],
                 script: str | None = None, previous: Mule | None = None) -> None:
        super().__init__(inst, ident, target)
        self.script = script
        self.respawn_count = previous.respawn_count + 1 if previous else 0
        self.signal_queue: deque[int] = previous.signal_queue if previous else deque()
        self.msg_queue: deque[bytes] = previous.msg_queue if previous else deque()
        self.farms: list[str] = previous.farms if previous else []
        self.signals = previous.signals if previous else 0
        #: the signal whose handler runs now (``uwsgi.mules[i].signum``)
        self.signum = 0
        #: when the master cursed it (``uwsgi_curse_mule``; 0: never)
        self.cursed_at = 0

    @property
    def mule_id(self) -> int:
        return self.id


class Spooler(UProcess):
    kind = "spooler"

    def __init__(self, inst: Instance, ident: int, target: Callable[[], Any],
                 directory: Any = None, previous: Spooler | None = None) -> None:
        super().__init__(inst, ident, target)
        self.directory = directory
        self.respawn_count = previous.respawn_count + 1 if previous else 0
        self.signal_queue: deque[int] = previous.signal_queue if previous else deque()
        self.tasks = previous.tasks if previous else 0
