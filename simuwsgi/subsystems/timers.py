"""uWSGI timers (``add_timer``, ``add_rb_timer``) and the master loop they run in.

What it models (``core/signal.c`` ``uwsgi_add_timer``/``uwsgi_signal_add_rb_timer``,
``core/master.c`` ``master_loop``/``expire_rb_timeouts``, ``core/event.c``
``event_queue_add_timer``; ``shared/spec/semantics.md`` §1, §4.1, §4.2; ``api.md`` §7):

* **The master loop** (``MasterLoop``). The master waits ``--check-interval`` seconds
  (default 1) for events; every wake-up is an *iteration*: after a timeout it expires
  due rb_timers, then it evaluates the cron tables, then handles the event (a timerfd,
  the inotify fd), then, at the top of the next iteration, arms the timers, rb_timers
  and file monitors added since (by any process) and expires rb_timers already due.
  An event wake-up restarts the one-second wait, so events move the phase of the idle
  wake-ups. The loop is not simulated second by second: each client (timers, cron,
  file monitors) tells the loop the next idle wake-up at which it has work, the loop
  schedules one kernel event for the earliest of them, and idle wake-ups with nothing
  to do are skipped (they do not move the phase). Clock steps (``clock.on_step``) make
  the clients re-plan.
* ``add_timer(num, secs)`` (``Bi``): a relative ``CLOCK_REALTIME`` timerfd armed by the
  master at its next iteration (at loop start for timers added at import): first
  firing ``secs`` after arming, then every ``secs`` without drift; wall-clock steps do
  not move it (relative timers ignore ``settime``). ``secs`` 0 never fires; negative
  logs ``timerfd_settime(): Invalid argument [core/event.c line 1275]`` and never fires.
  Each expiry is an event iteration that routes the signal once.
* ``add_rb_timer(num, secs[, iterations])`` (``Bi|i``): deadline = ``uwsgi_now()`` (wall
  seconds) + ``secs`` at arming; it fires at the first iteration whose ``uwsgi_now()``
  reaches it and is re-armed from *that* moment (lateness accumulates); ``iterations``
  0 = forever, N > 0 = N firings, negative = one firing (``!iterations ||
  done < iterations``, as the C code reads). Wall-clock steps move its deadlines.
  ``secs`` <= 0 with no iteration limit makes the real master spin forever routing the
  signal: the simulation raises ``SimulationError`` instead.
* both need a master (``ValueError('unable to add timer'/'unable to add rb_timer')``)
  and hold at most 64 entries (``you can register max 64 timers !!!``); entries are
  never removed; ``--timer``/``--signal-timer`` and ``--rbtimer``/``--signal-rbtimer``
  ``"<signal> <seconds>"`` options add entries at startup.

Left out: collapsing of missed timerfd expirations (the simulated master is never
late), the master waking for events simuwsgi does not model as iterations (signals
raised by workers, mules and spoolers, stats, sockets), so only timers, file monitors
and the modelled idle wake-ups move the loop's phase; ``add_ms_timer`` (not in 2.0).

The loop's iterations (``event``, ``_iterate``, ``replan``, ``_idle_wake``) and a timer's
firing have a C twin (``_cmaster.c``, optional), installed on the instances; these
methods stay the reference and run under ``SIMUWSGI_PURE_PYTHON=1``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Protocol

from .._errors import ConfigError, SimulationError
from ..server._pyarg import no_kwargs, parser
from ..server.config import atoi
from .._core.accel import load

if TYPE_CHECKING:
    from ..server.interface import Instance

__all__ = ["MAX_TIMERS", "MasterLoop", "Timers"]

#: the optional C accelerator: the loop's iterations and the timers' firings (see
#: _cmaster.c)
_c = load(f"{__package__}._cmaster")

#: ``ushared->timers[64]``, ``rb_timers[64]``.
MAX_TIMERS = 64


class LoopClient(Protocol):
    """What the master loop asks of a subsystem that lives in it."""

    #: False while the client has nothing to do at iteration boundaries (its hooks
    #: would do nothing and ``next_wake`` would be None): the loop skips its hooks then.
    #: An attribute, not a property: the loop reads it several times per iteration.
    needs_iteration: bool

    def before_events(self, loop: MasterLoop, wall_s: int, timeout: bool) -> None: ...

    def at_top(self, loop: MasterLoop, wall_s: int) -> None: ...

    def next_wake(self, loop: MasterLoop) -> float | None: ...

    def clock_stepped(self, loop: MasterLoop) -> None: ...


class MasterLoop:
    """The phase and iterations of the master's event loop, planned analytically."""

    #: slots for the fields the C twin reads at every iteration (see _cmaster.c)
    __slots__ = ("__dict__", "_wake_at", "_wake_gen", "closed", "grid_epoch", "interval",
                 "last_wake", "started")

    def __init__(self, inst: Instance) -> None:
        self.inst = inst
        self.kernel = inst.kernel
        self.clock = inst.clock
        #: ``--check-interval`` (0 means 1 in uWSGI; negative values are read as 1).
        self.interval = inst.check_interval
        self.started = False
        self.closed = False
        #: Virtual time of the last iteration; idle wake-ups follow at ``interval`` steps.
        self.last_wake = 0.0
        #: Incremented whenever an iteration falls off the idle grid (clients' plans
        #: that assumed the old grid are then stale).
        self.grid_epoch = 0
        self.clients: list[LoopClient] = []
        #: The planned idle wake-up: its time, and a generation number that makes the
        #: events of superseded plans no-ops (cheaper than cancelling handles).
        self._wake_at: float | None = None
        self._wake_gen = 0
        if _c is not None:  # the iterations in C (see _cmaster.c)
            state = (self, inst, self.kernel, self.clock, self.clients)
            self.event = _c.event(state)  # type: ignore[method-assign]
            self._iterate = _c.iterate(state)  # type: ignore[method-assign]
            self.replan = _c.replan(state)  # type: ignore[method-assign]
            self._idle_wake = _c.idle_wake(state)  # type: ignore[method-assign]

    # -- lifecycle ---------------------------------------------------------------------
    def add_client(self, client: LoopClient) -> None:
        if client in self.clients:
            if self.started:
                self.replan()
            return
        self.clients.append(client)
        if self.started and not self.closed:
            client.at_top(self, self.wall_s())  # the master arms it on this pass
            self.replan()

    def start(self) -> None:
        """The master enters its loop (now): arm what was added at import."""
        if self.started or self.closed:
            return
        self.started = True
        self.last_wake = self.kernel.now
        self.clock.on_step(self._clock_stepped)
        self._top()
        self.replan()

    def close(self) -> None:
        self.closed = True
        self._wake_gen += 1
        self._wake_at = None

    # -- time arithmetic ------------------------------------------------------------------
    def wall_s(self) -> int:
        """``uwsgi_now()``: integer wall-clock seconds."""
        return math.floor(self.clock.time())

    def first_wake_index(self) -> int:
        """Index k >= 1 of the first idle wake-up ``last_wake + k*interval`` after now."""
        elapsed = self.kernel.now - self.last_wake
        return max(1, math.floor(elapsed / self.interval + 1e-12) + 1)

    def next_idle_wake(self) -> float:
        return self.last_wake + self.first_wake_index() * self.interval

    # -- iterations -----------------------------------------------------------------------
    def event(self, handler: Any, *args: Any) -> None:
        """An event wakes the master now: one iteration that handles it."""
        if self.closed or not self.started:
            return
        for client in self.clients:
            if client.needs_iteration:
                break
        else:
            # No client has work at iteration boundaries (no rb_timer, cron, monitor
            # or timer to arm): the iteration only moves the loop's phase.
            self._move_phase(self.kernel.now)
            handler(*args)
            return
        self._iterate(False, handler, args)

    def _move_phase(self, now: float) -> None:
        if now == self.last_wake:
            return
        off_grid = ((now - self.last_wake) / self.interval) % 1.0
        if 1e-9 < off_grid < 1.0 - 1e-9:
            self.grid_epoch += 1
        self.last_wake = now

    def poke(self) -> None:
        """A client has new work (an entry added, a plan changed)."""
        if self.started and not self.closed:
            self.replan()

    def _iterate(self, timeout: bool, handler: Any = None, args: tuple[Any, ...] = ()) -> None:
        now = self.kernel.now
        self._move_phase(now)
        # (an iteration always has clients: `event` iterates for one with work, an idle
        # wake-up is one's plan; a handler may add one, which then plans too)
        wall_s = math.floor(self.clock.wall_offset + now)  # uwsgi_now()
        clients = self.clients
        for client in clients:
            if client.needs_iteration:
                client.before_events(self, wall_s, timeout)
        if handler is not None:
            handler(*args)
        # Handlers run without virtual time passing: the same second.
        for client in clients:
            if client.needs_iteration:
                client.at_top(self, wall_s)
        self.replan()

    def _top(self) -> None:
        wall_s = self.wall_s()
        for client in self.clients:
            client.at_top(self, wall_s)

    def replan(self) -> None:
        best: float | None = None
        for client in self.clients:
            if client.needs_iteration:
                when = client.next_wake(self)
                if when is not None and (best is None or when < best):
                    best = when
        if best == self._wake_at:
            return
        self._wake_gen += 1
        self._wake_at = best
        if best is not None:
            self.kernel.post_at(max(best, self.kernel.now), self._idle_wake, self._wake_gen)

    def _idle_wake(self, generation: int) -> None:
        if generation != self._wake_gen:
            return  # a plan that was replaced
        self._wake_at = None
        if not self.closed and not self.inst.stopped:
            self._iterate(True)

    def _clock_stepped(self, _delta: float) -> None:
        if self.closed or not self.started:
            return
        for client in self.clients:
            client.clock_stepped(self)
        self.replan()


class _Timer:
    __slots__ = ("fired", "next", "num", "registered", "secs")

    def __init__(self, num: int, secs: int) -> None:
        self.num = num
        self.secs = secs
        self.registered = False
        self.next = 0.0
        self.fired = 0


class _RbTimer:
    __slots__ = ("deadline", "done", "iterations", "num", "registered", "secs")

    def __init__(self, num: int, secs: int, iterations: int) -> None:
        self.num = num
        self.secs = secs
        self.iterations = iterations
        self.done = 0
        self.registered = False
        #: Wall-clock second (``uwsgi_now()``) at which it is due; None when finished.
        self.deadline: int | None = None


class Timers:
    """The timer and rb_timer tables, and the instance's master loop."""

    #: a slot for the flag the C loop reads three times an iteration (see _cmaster.c)
    __slots__ = ("__dict__", "needs_iteration")

    @classmethod
    def create(cls, inst: Instance) -> Timers:
        return cls(inst)

    def __init__(self, inst: Instance) -> None:
        self.inst = inst
        self.loop = MasterLoop(inst)
        self.timers: list[_Timer] = []
        self.rb_timers: list[_RbTimer] = []
        #: How many kernel timers wait for the master's next pass to be armed.
        self._unarmed = 0
        #: Kernel timers fire by themselves; only rb_timers and unarmed timers need
        #: the master's iterations.
        self.needs_iteration = False
        self._signals: Any = None
        self.loop.add_client(self)
        if _c is not None:  # the firing in C (see _cmaster.c)
            self._timer_fired = _c.timer_fired(  # type: ignore[method-assign]
                (self, inst, inst.kernel, self.loop))
        self._options()

    def _options(self) -> None:
        opts = self.inst.opts
        for name, add in (("timer", self.add_timer), ("rbtimer", self.add_rb_timer)):
            for value in opts.strings(name, "signal-" + name):
                num, sep, secs = value.partition(" ")
                if not sep:
                    kind = "signal timer" if name == "timer" else "redblack signal timer"
                    raise ConfigError(f"invalid {kind} syntax, must be: <signal> <seconds>")
                add(atoi(num) & 0xFF, atoi(secs))

    # -- hooks ---------------------------------------------------------------------------
    def master_loop_started(self) -> None:
        if self.inst.has_master:
            self.loop.start()

    def close(self) -> None:
        self.loop.close()

    # -- the tables -------------------------------------------------------------------------
    def add_timer(self, num: int, secs: int) -> bool:
        if not self.inst.has_master:
            return False
        if len(self.timers) >= MAX_TIMERS:
            self.inst.log("you can register max 64 timers !!!")
            return False
        self.timers.append(_Timer(num, secs))
        self._unarmed += 1
        self.needs_iteration = True
        self.inst.record("timer.add", num=num, secs=secs)
        self.loop.poke()
        return True

    def add_rb_timer(self, num: int, secs: int, iterations: int = 0) -> bool:
        if not self.inst.has_master:
            return False
        if len(self.rb_timers) >= MAX_TIMERS:
            self.inst.log("you can register max 64 rb_timers !!!")
            return False
        self.rb_timers.append(_RbTimer(num, secs, iterations))
        self.needs_iteration = True
        self.inst.record("rb_timer.add", num=num, secs=secs, iterations=iterations)
        self.loop.poke()
        return True

    # -- loop client ------------------------------------------------------------------------
    def before_events(self, loop: MasterLoop, wall_s: int, timeout: bool) -> None:
        if timeout and self.rb_timers:
            self._expire_rb(wall_s)

    def at_top(self, loop: MasterLoop, wall_s: int) -> None:
        if self._unarmed:
            for t in self.timers:
                if not t.registered:
                    self._arm_timer(t)
            self._unarmed = 0
            self.needs_iteration = bool(self.rb_timers)
        if self.rb_timers:
            for rb in self.rb_timers:
                if not rb.registered:
                    rb.registered = True
                    rb.deadline = wall_s + rb.secs
            self._expire_rb(wall_s)

    def next_wake(self, loop: MasterLoop) -> float | None:
        pending = self._unarmed or any(not rb.registered for rb in self.rb_timers)
        best = loop.next_idle_wake() if pending else None
        deadlines = [rb.deadline for rb in self.rb_timers if rb.deadline is not None]
        if deadlines:
            when = self._rb_wake(loop, min(deadlines))
            if best is None or when < best:
                best = when
        return best

    def clock_stepped(self, loop: MasterLoop) -> None:
        pass  # rb deadlines are wall seconds: next_wake recomputes from the new clock

    # -- kernel timers ---------------------------------------------------------------------
    def _arm_timer(self, t: _Timer) -> None:
        t.registered = True
        inst = self.inst
        if t.secs < 0:
            inst.log("timerfd_settime(): Invalid argument [core/event.c line 1275]",
                     inst.master)
            return
        if t.secs == 0:
            return  # a zero it_value disarms the timerfd: it never fires
        t.next = inst.kernel.now + t.secs
        inst.kernel.post_at(t.next, self._timer_fired, t)

    def _timer_fired(self, t: _Timer) -> None:
        inst = self.inst
        if inst.stopped or self.loop.closed:
            return  # disarmed: the chain of firings ends here
        t.fired += 1
        t.next += t.secs
        inst.kernel.post_at(t.next, self._timer_fired, t)
        signals = self._signals or self._signals_subsystem()  # (a call less per firing)
        if signals is not None:  # an event of the master's loop, as a signal byte read is
            signals.master_read(t.num, "timer.fire")
        else:
            self.loop.event(self._route, t.num, "timer.fire")

    def _signals_subsystem(self) -> Any:
        """The instance's signals subsystem, or None (looked up at the first firing)."""
        signals = self._signals
        if signals is None:
            signals = self._signals = self.inst.subsystems.get("signals")
        return signals

    def _route(self, num: int, kind: str) -> None:
        """The master routes a timer's signal (``kind``: the trace record's)."""
        signals = self._signals_subsystem()
        if signals is not None:
            signals.route(num, kind)
        else:
            inst = self.inst
            inst.trace.add(inst.kernel.now, inst.master.name, kind, {"num": num})

    # -- rb timers ---------------------------------------------------------------------------
    def _expire_rb(self, wall_s: int) -> None:
        """``expire_rb_timeouts``: fire every due entry, re-arming from now."""
        while True:
            due = [rb for rb in self.rb_timers if rb.deadline is not None and rb.deadline <= wall_s]
            if not due:
                return
            rb = min(due, key=lambda r: r.deadline)  # type: ignore[arg-type, return-value]
            rb.done += 1
            self._route(rb.num, "rb_timer.fire")
            if not rb.iterations or rb.done < rb.iterations:
                if rb.secs <= 0 and not rb.iterations:
                    raise SimulationError(
                        f"add_rb_timer({rb.num}, {rb.secs}) with no iteration limit makes "
                        "the uWSGI master loop forever routing the signal (its deadline "
                        "is never in the future); use secs >= 1")
                rb.deadline = self.loop.wall_s() + rb.secs
            else:
                rb.deadline = None

    def _rb_wake(self, loop: MasterLoop, deadline: int) -> float:
        """When the loop's uwsgi_now() first reaches ``deadline`` (shortened waits too)."""
        interval = loop.interval
        now = self.inst.kernel.now
        f0 = math.floor(self.inst.clock.time() - (now - loop.last_wake))
        jmin = loop.first_wake_index()
        j = max(jmin - 1, (deadline - f0) // interval)
        rest = deadline - f0 - j * interval
        # rest in (0, interval): the master shortened its wait to the deadline
        when = loop.last_wake + j * interval + max(rest, 0)
        if when <= now:
            when = loop.last_wake + jmin * interval
        return when

    # -- the uwsgi module ------------------------------------------------------------------------
    def facade_functions(self) -> dict[str, Any]:
        p_timer = parser("Bi:add_timer")
        p_rb = parser("Bi|i:add_rb_timer")

        def add_timer(*args: Any, **kw: Any) -> None:
            no_kwargs("add_timer", kw)
            num, secs = p_timer(args)
            if not self.add_timer(num, secs):
                raise ValueError("unable to add timer")

        def add_rb_timer(*args: Any, **kw: Any) -> None:
            no_kwargs("add_rb_timer", kw)
            values = p_rb(args)
            iterations = values[2] if len(values) > 2 else 0
            if not self.add_rb_timer(values[0], values[1], iterations):
                raise ValueError("unable to add rb_timer")

        return {"add_timer": add_timer, "add_rb_timer": add_rb_timer}

