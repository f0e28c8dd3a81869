"""uWSGI signals: the 256-slot tables, routing through the master, delivery.

What it models (``core/signal.c``, ``core/master_events.c``, ``core/utils.c``
``wsgi_req_accept``; ``shared/spec/semantics.md`` §3, ``api.md`` §6):

* one 256-entry table per worker plus slot 0 for the master (mules and spoolers use
  slot 0). ``register_signal`` in the master writes slot 0 and copies it into every
  worker slot, and may not overwrite an entry; in worker N it writes slot N only and
  may overwrite; mules and spoolers cannot register. Numbers are masked to 0..255.
* ``uwsgi.signal(n)`` is routed by the master with the **slot 0** entry of ``n``,
  whoever raised it; an unregistered signal goes to any worker (and fails there).
  Raised at master import time it is lost (no signal socket yet).
* targets: ``''``/``worker``/``worker0`` (one idle worker, RNG-chosen), ``workers``
  (one copy per worker), ``active-workers``, ``workerN``, ``mule``/``mule0``, ``muleN``,
  ``mules``, ``spooler``, ``farmN``, ``farm_NAME``, ``subscribed`` (no-op); anything
  else (``cluster`` too) is dropped with uWSGI's log line. On a Cluster's node built
  with ``legacy=True``, ``cluster`` and ``subscribed`` reach the masters of the other
  nodes / the subscribed nodes (``Network.signal_masters``, an extension). Matching
  order is uWSGI's (prefix ``worker`` makes ``workersX`` a write to the never-created
  worker 0 pipe: lost).
* workers run handlers only between requests, in their accept loop; queued copies
  wait while the worker is busy. The receiver looks up its **own** slot: empty, or
  registered by another worker, logs ``error managing signal N on worker M``.
* a handler's exception is printed and logged; ``SystemExit`` kills the process.
* the socket buffer is modelled as unbounded (uWSGI drops signals only when the
  kernel socket buffer, about 200 kB of one-byte signals, is full).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..server._pyarg import no_kwargs, parser
from ..server.config import atoi
from ..server.processes import Master, Mule, Spooler, UProcess, Worker
from ..server.workers import choose, take_idle_worker
from .._core.accel import load

if TYPE_CHECKING:
    from ..server.interface import Instance

#: the optional C accelerator: the common signal path (see _csignals.c)
_c = load(f"{__package__}._csignals")

__all__ = ["Signals"]


class _Entry:
    __slots__ = ("handler", "target", "wid")

    def __init__(self, handler: Any, target: str, wid: int) -> None:
        self.handler = handler
        self.target = target
        self.wid = wid


class Signals:
    """The signal tables of one instance and the master's router."""

    #: The process classes the C accelerator tells apart (see _csignals.c).
    _process_types = (Master, Worker)

    @classmethod
    def create(cls, inst: Instance) -> Signals:
        return cls(inst)

    def __init__(self, inst: Instance) -> None:
        self.inst = inst
        #: slot (0 = master/mules/spoolers, N = worker N) -> {num: entry}
        self.tables: dict[int, dict[int, _Entry]] = {0: {}}
        #: the shared worker signal socket (one idle worker reads each byte)
        self.shared_workers: deque[int] = deque()
        self.shared_mules: deque[int] = deque()
        self.shared_spoolers: deque[int] = deque()
        #: processes parked in signal_wait, by process
        self.waiting: dict[UProcess, Any] = {}
        #: target string -> its delivery function (targets are parsed once)
        self._routes: dict[str, Any] = {}
        #: the parsed targets that name workers: ``workers`` -> 0, ``workerN`` -> N for
        #: 1 <= N <= processes, ``''``/``worker``/``worker0`` (one idle worker) -> -1
        #: (the C route delivers these itself)
        self._worker_targets: dict[str, int] = {}
        #: the master loop once the C master_read has looked it up (see _csignals.c)
        self._loop_cell: list[Any] = [None]
        if _c is not None:  # the common signal path in C (see _csignals.c)
            self.route = _c.route(self._c_state())  # type: ignore[method-assign]
            self.master_read = _c.master_read(self._c_state())  # type: ignore[method-assign]
            self.run_handler = _c.run_handler(  # type: ignore[method-assign]
                self._c_state(Signals.run_handler.__get__(self)))

    def _c_state(self, fallback: Any = None) -> tuple[Any, ...]:
        """What the C functions work on (see _csignals.c): objects that live as long
        as the instance, and the Python function a call falls back to."""
        inst = self.inst
        return (self, fallback, inst, inst.kernel, inst.trace, self.tables, self.waiting,
                inst.workers, inst.idle_workers, self._worker_targets, self.shared_workers,
                _WAIT_REASONS, self._loop_cell, take_idle_worker)

    # -- tables ----------------------------------------------------------------------------
    def slot_of(self, proc: UProcess | None) -> int:
        return proc.id if isinstance(proc, Worker) else 0

    def table(self, slot: int) -> dict[int, _Entry]:
        table = self.tables.get(slot)
        if table is None:
            table = self.tables[slot] = dict(self.tables[0])
        return table

    def register(self, num: int, target: str, handler: Any) -> None:
        inst = self.inst
        proc = inst.kernel.current
        # uwsgi_register_signal's checks, with its log lines, in its order
        if not inst.has_master:
            inst.log("you cannot register signals without a master")
            raise ValueError("unable to register signal")
        if isinstance(proc, (Mule, Spooler)):
            inst.log("only the master and the workers can register signal handlers")
            raise ValueError("unable to register signal")
        if len(target.encode()) > 63:
            raise ValueError("unable to register signal")
        wid = proc.id if isinstance(proc, Worker) else 0
        if isinstance(proc, Worker):
            self.table(proc.id)[num] = _Entry(handler, target, proc.id)
        else:
            if num in self.tables[0]:
                inst.log("[uwsgi-signal] you cannot re-register a signal as the master !!!")
                raise ValueError("unable to register signal")
            entry = _Entry(handler, target, 0)
            for table in self.tables.values():
                table[num] = entry
        shown = target or "default, any worker"
        inst.log(f"[uwsgi-signal] signum {num} registered (wid: {wid} modifier1: 0 "
                 f"target: {shown})")
        inst.record("signal.register", proc, num=num, target=target)

    def registered(self, num: int) -> bool:
        return num in self.table(self.slot_of(self.inst.kernel.current))

    # -- raising and routing -------------------------------------------------------------
    def raise_signal(self, num: int) -> None:
        """``uwsgi.signal(n)`` from the current process."""
        inst = self.inst
        proc = inst.kernel.current
        inst.trace.add(inst.kernel.now, proc.name if proc is not None else "master",
                       "signal.raise", {"num": num})
        if isinstance(proc, Master) or proc is None:
            if not inst.ready or isinstance(proc, Master):
                inst.log("uwsgi_signal_send(): Bad file descriptor [core/signal.c line 277]")
                inst.record("signal.lost", proc, num=num, why="raised by the master at import")
                return
        faults = inst.faults
        if faults is not None and faults.active("signal_queue_full"):
            # the non-blocking signal socket is full: write() fails with EAGAIN
            inst.log("uwsgi_signal_send(): Resource temporarily unavailable "
                     "[core/signal.c line 277]")
            inst.record("signal.lost", proc, num=num, why="signal queue full")
            return
        # The byte wakes the master, which reads and routes it as an event of its loop
        # (so the loop's 1 s phase restarts and due rb_timers expire, as in uWSGI).
        inst.kernel.call_soon(self.master_read, num)

    def master_read(self, num: int, fired: str | None = None) -> None:
        """The master reads a signal byte from a process's socket and routes it (or,
        ``fired`` the kind of its trace record, a timer's signal: ``route``)."""
        loop = self.inst.master_loop
        if loop is not None and loop.started and not loop.closed:
            loop.event(self.route, num, fired)
        else:
            self.route(num, fired)

    def route(self, num: int, fired: str | None = None) -> None:
        """``uwsgi_route_signal``: the master delivers ``num`` by its slot-0 entry;
        ``fired``: first a record of that kind, the timer that fired it."""
        inst = self.inst
        if fired is not None:
            inst.trace.add(inst.kernel.now, "master", fired, {"num": num})
        entry = self.tables[0].get(num)
        target = entry.target if entry is not None else ""
        inst.trace.add(inst.kernel.now, "master", "signal.route", {"num": num, "target": target})
        self._deliver(target, num)

    def _deliver(self, target: str, num: int) -> None:
        deliver = self._routes.get(target)
        if deliver is None:
            deliver = self._routes[target] = self._router(target)
        deliver(num)

    def _router(self, target: str) -> Any:
        """The delivery function of one target string, matched in uWSGI's order."""
        inst = self.inst
        workers = inst.workers
        if target in ("", "worker", "worker0"):
            self._worker_targets[target] = -1
            return self._to_shared_workers
        if target == "workers":
            self._worker_targets[target] = 0
            return lambda num: self.to_workers(list(workers.values()), num)
        if target == "active-workers":
            def to_active_workers(num: int) -> None:
                # each worker's state is looked at when its turn comes (after the
                # handlers of the workers before it have run)
                self.to_workers((w for w in map(workers.__getitem__, sorted(workers))
                                 if w.alive and not w.cheaped and not w.paused), num)
            return to_active_workers
        if target.startswith("worker"):
            wid = atoi(target[6:])
            if 1 <= wid <= inst.numproc:
                self._worker_targets[target] = wid

            def to_worker_n(num: int) -> None:
                if wid > inst.numproc:
                    inst.log(f"invalid signal target: {target}")
                w = workers.get(wid)
                if w is None:
                    inst.record("signal.lost", inst.master, num=num, why=f"no worker {wid}")
                    return
                self.to_worker(w, num)
            return to_worker_n
        network = getattr(inst, "cluster_network", None)
        if target in ("cluster", "subscribed") and getattr(inst, "legacy", False) \
                and network is not None:
            # a simulation extension (legacy=True): the seed's meaning, on the cluster
            return lambda num: network.signal_masters(inst, target, num)
        if target == "subscribed":
            return lambda num: None
        if target == "spooler":
            return self._to_spoolers
        if target == "mules":
            def to_mules(num: int) -> None:
                for mid in sorted(inst.mules):
                    self.to_mule(inst.mules[mid], num)
            return to_mules
        if target.startswith("mule"):
            return lambda num: self._route_mule(num, target)
        if target.startswith("farm"):
            def to_farm(num: int) -> None:
                mules = inst.subsystems.get("mules")
                if mules is None or not mules.route_farm_signal(num, target):
                    inst.record("signal.lost", inst.master, num=num, why=f"bad farm {target}")
            return to_farm

        def unsupported(num: int) -> None:
            inst.log(f"^^^ UNSUPPORTED SIGNAL TARGET: {target} ^^^")
            inst.record("signal.lost", inst.master, num=num, why=f"target {target!r}")
        return unsupported

    def _route_mule(self, num: int, target: str) -> None:
        inst = self.inst
        rest = target[4:]
        mid = atoi(rest)
        if mid == 0:
            self.shared_mules.append(num)
            mules = inst.subsystems.get("mules")
            if mules is not None:
                mules.wake_for_signal(None)
            return
        mule = inst.mules.get(mid)
        if mule is None:
            inst.log(f"invalid signal target: {target}")
            inst.record("signal.lost", inst.master, num=num, why=f"no mule {mid}")
            return
        self.to_mule(mule, num)

    def _to_shared_workers(self, num: int) -> None:
        inst = self.inst
        if self.waiting:
            waiter = self._signal_waiter(Worker)
            if waiter is not None:
                self._wake_waiter(waiter, num)
                return
        worker = take_idle_worker(inst, "signal")
        if worker is None:
            self.shared_workers.append(num)
        elif inst.kernel.current is None:
            inst.kernel.resume(worker.acceptor, ("sig", num))
        else:
            inst.kernel.wake(worker.acceptor, ("sig", num))

    def to_worker(self, w: Worker, num: int) -> None:
        self.to_workers((w,), num)

    def to_workers(self, targets: Iterable[Worker], num: int) -> None:
        """Write ``num`` to each worker's private signal socket, one worker after the
        other (one routing for all of them)."""
        inst = self.inst
        kernel = inst.kernel
        idle = inst.idle_workers
        message = ("sig", num)
        for w in targets:
            if self.waiting:
                # a core of the worker in signal_wait() reads it (the first that began
                # waiting)
                waiter = next((p for p in self.waiting if p.main is w), None)
                if waiter is not None:
                    self._wake_waiter(waiter, num)
                    continue
            if w.idle:
                # An idle worker in its accept loop reads the signal at once (from the
                # master's routing, in the hub, it runs now; else at the next event).
                idle.remove(w)
                w.idle = False
                if kernel.current is None:
                    kernel.resume(w.acceptor, message)
                else:
                    kernel.wake(w.acceptor, message)
            else:
                w.signal_queue.append(num)

    def to_mule(self, mule: Mule, num: int) -> None:
        mule.signal_queue.append(num)
        mules = self.inst.subsystems.get("mules")
        if mules is not None:
            mules.wake_for_signal(mule)

    def _to_spoolers(self, num: int) -> None:
        self.shared_spoolers.append(num)
        spooler = self.inst.subsystems.get("spooler")
        if spooler is not None:
            spooler.wake_for_signal()

    def next_for_worker(self, w: Worker) -> int | None:
        """A signal waiting for ``w`` in its accept loop (private socket first)."""
        if w.signal_queue:
            return w.signal_queue.popleft()
        if self.shared_workers:
            return self.shared_workers.popleft()
        return None

    # -- running handlers ----------------------------------------------------------------
    def run_handler(self, proc: UProcess, num: int, report: bool = True) -> None:
        """``uwsgi_signal_handler`` in the receiving process; a failure is logged only
        when ``report`` (``signal_wait`` ignores the handler's result)."""
        inst = self.inst
        is_worker = isinstance(proc, Worker)
        slot = proc.id if is_worker else 0
        table = self.tables.get(slot)
        entry = (table if table is not None else self.table(slot)).get(num)
        if entry is None or (entry.wid != 0 and entry.wid != slot):
            if report:
                inst.log(f"error managing signal {num} on {_who(proc)}")
            inst.record("signal.unhandled", proc, num=num)
            return
        proc.signals += 1
        proc.in_handler = num
        harakiri = is_worker and inst.harakiri
        if harakiri:
            inst.arm_harakiri(proc, inst.harakiri)
        inst.trace.add(inst.kernel.now, proc.name, "signal.handler", {"num": num})
        try:
            ok, _ = inst.call_python(entry.handler, num)
        finally:
            proc.in_handler = -1
            if harakiri:
                inst.arm_harakiri(proc, 0)
        if not ok and report:
            self._handler_failed(proc, num)

    def _handler_failed(self, proc: UProcess, num: int) -> None:
        self.inst.log(f"error managing signal {num} on {_who(proc)}")

    # -- signal_wait ---------------------------------------------------------------------
    def _signal_waiter(self, kind: type) -> UProcess | None:
        if not self.waiting:
            return None
        candidates = [p for p in self.waiting if isinstance(p, kind)]
        if not candidates:
            return None
        return choose(self.inst, candidates, "signal_wait")

    def _wake_waiter(self, proc: UProcess, num: int) -> None:
        del self.waiting[proc]
        self.inst.kernel.wake(proc, num)

    def wait(self, wanted: int | None) -> bytes:
        """``signal_wait([num])`` in the current process (dispatching what it reads)."""
        inst = self.inst
        proc = inst.kernel.current
        holder = _request_struct(proc)
        holder.signal_received = -1
        while True:
            num = None
            if isinstance(proc, Worker):
                num = self.next_for_worker(proc)
            if num is None:
                self.waiting[proc] = wanted
                num = inst.kernel.park(self._wait_reason(wanted))
            holder.signal_received = num
            self.run_handler(proc, num, report=False)
            if wanted is None or num == wanted:
                return b""

    @staticmethod
    def _wait_reason(wanted: int | None) -> str:
        """The park() reason of ``signal_wait(wanted)`` (built once per number)."""
        reason = _WAIT_REASONS.get(wanted)
        if reason is None:
            reason = _WAIT_REASONS[wanted] = f"signal_wait({'' if wanted is None else wanted})"
        return reason

    def received(self) -> int:
        return getattr(_request_struct(self.inst.kernel.current), "signal_received", 0)

    def process_died(self, proc: UProcess) -> None:
        for waiter in [p for p in self.waiting if p.main is proc]:
            del self.waiting[waiter]

    # -- the uwsgi module ------------------------------------------------------------------
    def facade_functions(self) -> dict[str, Any]:
        p_register = parser("BsO:register_signal")
        p_signal = parser("B|s:signal")
        p_registered = parser("B:signal_registered")
        p_wait = parser("|B:signal_wait")

        def register_signal(*args: Any, **kw: Any) -> None:
            no_kwargs("register_signal", kw)
            num, target, handler = p_register(args)
            self.register(num, target, handler)
            return None

        def signal(*args: Any, **kw: Any) -> None:
            if not kw and len(args) == 1 and type(args[0]) is int:
                self.raise_signal(args[0] & 0xFF)  # the common call, parsed as "B" parses
                return None
            no_kwargs("signal", kw)
            values = p_signal(args)
            if len(values) > 1:
                net = self.inst.subsystems.get("net")
                if net is None:
                    from .._errors import NotSimulatedError

                    raise NotSimulatedError(
                        "uwsgi.signal(num, node) needs the cluster network of a "
                        "multi-node simulation")
                return net.remote_signal(values[1], values[0])
            self.raise_signal(values[0])
            return None

        def signal_registered(*args: Any, **kw: Any) -> bool | None:
            no_kwargs("signal_registered", kw)
            (num,) = p_registered(args)
            return True if self.registered(num) else None

        def signal_wait(*args: Any, **kw: Any) -> bytes:
            if not kw and len(args) == 1 and type(args[0]) is int:
                return self.wait(args[0] & 0xFF)  # the common call, parsed as "B" parses
            no_kwargs("signal_wait", kw)
            values = p_wait(args)
            return self.wait(values[0] if values else None)

        def signal_received(*_args: Any) -> int:
            return self.received()

        funcs = {"register_signal": register_signal, "signal": signal,
                 "signal_registered": signal_registered, "signal_wait": signal_wait,
                 "signal_received": signal_received}
        if _c is not None:  # the common calls in C (see _csignals.c)
            funcs["signal"] = _c.signal(self._c_state(signal))
            funcs["signal_wait"] = _c.signal_wait(self._c_state(signal_wait))
        return funcs


class _NoRequest:
    signal_received = 0


def _request_struct(proc: Any) -> Any:
    """What holds ``wsgi_req->signal_received``: the request in flight, else the
    process's own request structure (a mule's, a spooler's; the master's at import)."""
    return getattr(proc, "request", None) or (proc if proc is not None else _NoRequest())


#: park() reasons of signal_wait, by awaited number (built once each).
_WAIT_REASONS: dict[int | None, str] = {}


def _who(proc: UProcess) -> str:
    if isinstance(proc, Worker):
        return f"worker {proc.id}"
    return f"mule {proc.id}" if isinstance(proc, Mule) else "spooler"

