"""uWSGI's cheaper mode (``--cheaper``): the master spawns and stops workers with the load.

What it models (``core/init.c``, ``core/master_utils.c`` ``uwsgi_calc_cheaper`` and the
``spare``/``backlog``/``manual`` algorithms of 2.0.30):

* ``--cheaper N`` (N > 0, lower than ``--processes``, else ``invalid cheaper value: must
  be lower than processes`` and exit 1): only ``--cheaper-initial`` workers (default N;
  out of range: uWSGI's warning and the nearest valid value) are spawned at start, the
  others are *cheaped* slots;
* once a second the master runs the algorithm (the first check a second after the loop
  starts). ``spare`` (the default): when every active worker is busy for more than
  ``--cheaper-overload`` (3) checks in a row, ``--cheaper-step`` (1) cheaped workers are
  spawned; when more than one worker is idle, every ``--cheaper-overload``-th idle check
  stops the oldest idle worker (above N active ones). ``backlog``: the listen queue over
  ``--cheaper-overload`` spawns, under it stops one. ``manual``: nothing changes;
* a stopped worker leaves at once (SIGWINCH to an idle worker); the master reaps it
  with ``worker N killed successfully (pid: P)`` and ``uWSGI worker N cheaped.`` and
  does not respawn it; a cheaped worker spawned again logs ``Respawned uWSGI worker N``
  (``spawned uWSGI worker N`` if it never ran).

``busyness`` (``plugins/cheaper_busyness/cheaper_busyness.c``, ``Busyness``): every
``--cheaper-overload`` seconds the share of that time each active worker spent in
requests (``running_time``; 100% for a worker busy at every check of the period without
finishing a request) is averaged; above ``--cheaper-busyness-max`` (50) it spawns
``--cheaper-step`` workers, below ``--cheaper-busyness-min`` (25) it stops one once
``overload * multiplier`` seconds passed since the last change (``--cheaper-busyness-
multiplier`` 10, raised by ``--cheaper-busyness-penalty`` 2 when workers come back too
fast), and a listen queue over ``--cheaper-busyness-backlog-alert`` (33), or non-empty for
``--cheaper-busyness-backlog-nonzero`` (60) seconds, spawns
``--cheaper-busyness-backlog-step`` (1) emergency workers, cheaped again after
``overload * --cheaper-busyness-backlog-multiplier`` (3) seconds; with its log lines
(``--cheaper-busyness-verbose`` for the per-check ones).

``--cheaper-algo-list`` prints the algorithms pyuwsgi has, then the instance starts.

``--cheaper-rss-limit-soft`` (needs ``--memory-report`` or a ``--reload-on-*`` limit, as
real): while the workers' published RSS (``sim.set_rss``) adds up to it, no algorithm
may spawn; ``--cheaper-rss-limit-hard``: over it, one worker is stopped at each check
(``cheaper hard rss memory limit exceeded, cheap one of N workers``).

With ``--enable-metrics`` busyness registers ``worker.N.plugin.cheaper_busyness.busyness``
and ``plugin.cheaper_busyness.total_avg_busyness`` ahead of the core metrics.

Not modelled: the master fifo's cheaper commands. An unknown algorithm name falls back to
``spare`` with uWSGI's line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .._errors import StartRefusedError
from .interface import BEFORE_REAP

if TYPE_CHECKING:
    from .master import Instance
    from .processes import Worker

__all__ = ["ALGOS", "Busyness", "Cheaper", "algo_list_lines"]

#: pyuwsgi 2.0.30's algorithms, in the order --cheaper-algo-list prints them
ALGOS = ("busyness", "spare", "backlog", "manual")


def algo_list_lines() -> list[str]:
    """What ``--cheaper-algo-list`` prints before the startup banner."""
    return ["", "*** uWSGI loaded cheaper algorithms ***", *ALGOS,
            "--- end of cheaper algorithms list ---", ""]


class Cheaper:
    """The cheaper state of one instance (recreated by a reload, as the C statics)."""

    @classmethod
    def create(cls, inst: Instance) -> Cheaper | None:
        count = inst.opts.int("cheaper", 0)
        if count <= 0 or not inst.has_master:
            return None
        return cls(inst, count)

    def __init__(self, inst: Instance, count: int) -> None:
        self.inst = inst
        o = inst.opts
        if count >= inst.numproc:
            inst.log("invalid cheaper value: must be lower than processes")
            raise StartRefusedError("invalid cheaper value: must be lower than processes")
        self.count = count
        initial = o.int("cheaper-initial", 0) or count
        if initial < count:
            inst.log(f"warning: invalid cheaper-initial value ({initial}), must be equal or "
                     f"higher than cheaper ({count}), using {count} as initial number of "
                     f"workers")
            initial = count
        elif initial > inst.numproc:
            inst.log(f"warning: invalid cheaper-initial value ({initial}), must be lower or "
                     f"equal than worker count ({inst.numproc}), using {inst.numproc} as "
                     f"initial number of workers")
            initial = inst.numproc
        self.initial = initial
        self.step = max(1, o.int("cheaper-step", 0))
        self.overload = o.int("cheaper-overload", 3)
        algo = o.str("cheaper-algo") or "spare"
        if algo not in ALGOS:
            inst.log("unable to find requested cheaper algorithm, falling back to spare")
            algo = "spare"
        self.algo = algo
        self._overload_count = 0
        self._idle_count = 0
        #: the master fifo's ``+``/``-`` since the last check (``cheaper_fifo_delta``)
        self.fifo_delta = 0
        self.rss_soft = o.int("cheaper-rss-limit-soft", 0)
        self.rss_hard = o.int("cheaper-rss-limit-hard", 0)
        self._algorithm: Callable[[bool], int] = (
            Busyness(self) if algo == "busyness" else getattr(self, "_" + algo))

    def facade_functions(self) -> dict[str, object]:
        return {}  # the uwsgi module has no cheaper function

    def cheaped_at_start(self, wid: int) -> bool:
        return wid > self.initial

    def master_loop_started(self) -> None:
        self._schedule()

    def _schedule(self) -> None:
        inst = self.inst
        # uwsgi_calc_cheaper runs at the top of the master loop, before its waitpid()
        inst.kernel.at(inst.next_tick(inst.kernel.now), self._check, priority=BEFORE_REAP)

    # -- uwsgi_calc_cheaper --------------------------------------------------------------
    def _check(self) -> None:
        inst = self.inst
        if inst.stopped or inst.subsystems.get("cheaper") is not self:
            return  # stopped, or reloaded (a new Cheaper runs)
        self._schedule()
        needed, can_spawn = self._rss_limits()
        if self.fifo_delta:  # the master fifo's +/-: in place of the algorithm
            if can_spawn:
                needed = self.fifo_delta
            self.fifo_delta = 0
        else:
            if not needed:
                needed = self._algorithm(can_spawn)
            if not can_spawn and needed > 0:  # uwsgi_calc_cheaper's safety check
                inst.log(f"BUG! cheaper algo returned {needed} but it cannot spawn any worker "
                         "at this time!", inst.master)
                needed = 0
        if needed > 0:
            for wid in range(1, inst.numproc + 1):
                if needed == 0:
                    break
                if self._is_cheaped(wid):
                    previous = inst.workers.get(wid)
                    inst.spawn_worker(wid, previous)
                    needed -= 1
        while needed < 0:
            idle = [w for w in self._active() if not w.busy]
            if idle:
                oldest = min(idle, key=lambda w: (w.last_spawn, w.id))
                oldest.cheaped = True
                oldest.rss_size = oldest.vsz_size = 0
                oldest.manage_next_request = False
                inst.kill(oldest, "reload")  # SIGWINCH: it leaves its accept loop
            else:  # none idle: "return it to the pool", for the next check
                self.fifo_delta -= 1
            needed += 1

    def _rss_limits(self) -> tuple[int, bool]:
        """``--cheaper-rss-limit-soft``/``-hard`` on the workers' published memory: over
        the soft limit no worker may be spawned; over the hard one (with more than one
        worker) one is stopped, whatever the algorithm says. (needed, can_spawn)"""
        if not self.rss_soft:
            return 0, True
        counted = [w for w in self.inst.workers.values() if not w.cheaped]
        total = sum(w.rss_size for w in counted)
        if self.rss_hard and len(counted) > 1 and total >= self.rss_hard:
            self.inst.log(f"cheaper hard rss memory limit exceeded, cheap one of "
                          f"{len(counted)} workers", self.inst.master)
            return -1, False
        return 0, total < self.rss_soft

    def _is_cheaped(self, wid: int) -> bool:
        w = self.inst.workers.get(wid)
        return w is None or (w.cheaped and not w.alive)

    def _active(self) -> list[Worker]:
        return [w for w in self.inst.workers.values() if w.alive and not w.cheaped]

    def _cheaped_slots(self) -> int:
        return min(self.step, sum(self._is_cheaped(wid)
                                  for wid in range(1, self.inst.numproc + 1)))

    # -- the algorithms ----------------------------------------------------------------------
    def _spare(self, can_spawn: bool) -> int:
        active = self._active()
        if all(w.busy for w in active):
            self._overload_count += 1
            self._idle_count = 0
        elif self._overload_count > 0:
            self._overload_count -= 1
        if can_spawn and self._overload_count > self.overload:
            self._overload_count = 0
            return self._cheaped_slots()
        if self._overload_count == 0:
            busy = sum(w.busy for w in active)
            if len(active) - busy == 1:
                return 0  # one spare worker: stable
            self._idle_count += 1
            if len(active) > self.count and self._idle_count % self.overload == 0:
                return -1
        return 0

    def _backlog(self, can_spawn: bool) -> int:
        backlog = len(self.inst.listen_queue)
        if can_spawn and backlog > self.overload:
            return self._cheaped_slots()
        if backlog < self.overload and len(self._active()) > self.count:
            return -1
        return 0

    def _manual(self, can_spawn: bool) -> int:
        return 0


class Busyness:
    """``cheaper_busyness_algo`` and its globals (``uwsgi_cheaper_busyness_global``)."""

    def __init__(self, cheaper: Cheaper) -> None:
        self.cheaper = cheaper
        inst = cheaper.inst
        o = inst.opts
        self.max = o.int("cheaper-busyness-max", 0) or 50
        self.min = o.int("cheaper-busyness-min", 0) or 25
        self.multi = o.int("cheaper-busyness-multiplier", 0) or 10
        self.penalty = o.int("cheaper-busyness-penalty", 0) or 2
        self.verbose = o.flag("cheaper-busyness-verbose")
        self.backlog_alert = o.int("cheaper-busyness-backlog-alert", 0) or 33
        self.backlog_multi = o.int("cheaper-busyness-backlog-multiplier", 0) or 3
        self.backlog_step = o.int("cheaper-busyness-backlog-step", 0) or 1
        self.backlog_nonzero_alert = o.int("cheaper-busyness-backlog-nonzero", 0) or 60
        self.min_multi = self.multi
        self.last_values = [0] * inst.numproc
        self.was_busy = [0] * inst.numproc
        self.last_cheaped = 0
        self.next_cheap = 0
        self.last_action = 0
        self.tolerance_counter = 0
        self.emergency_workers = 0
        self.backlog_is_nonzero = False
        self.backlog_nonzero_since = 0
        inst.log(f"[busyness] settings: min={self.min}%, max={self.max}%, "
                 f"overload={cheaper.overload}, multiplier={self.multi}, "
                 f"respawn penalty={self.penalty}")
        inst.log(f"[busyness] backlog alert is set to {self.backlog_alert} request(s), "
                 f"step is {self.backlog_step}")
        inst.log(f"[busyness] backlog non-zero alert is set to {self.backlog_nonzero_alert} "
                 "second(s)")
        #: --enable-metrics: each worker's last busyness and their average
        self.current = [0] * inst.numproc
        self.total_avg = 0
        metrics = inst.subsystems.get("metrics")
        if metrics is not None and metrics.enabled:
            for i in range(inst.numproc):
                metrics.register_plugin_gauge(
                    f"worker.{i + 1}.plugin.cheaper_busyness.busyness", f"3.{i + 1}.100.1",
                    lambda i=i: self.current[i])
            metrics.register_plugin_gauge("plugin.cheaper_busyness.total_avg_busyness",
                                          "4.100.1", lambda: self.total_avg)
            inst.log("[busyness] metrics registered")
        self.tcheck = self._micros()
        self._set_next_cheap_time()

    def _micros(self) -> int:
        return int(self.cheaper.inst.wall() * 1_000_000)

    def _log(self, line: str) -> None:
        self.cheaper.inst.log(line, self.cheaper.inst.master)

    def _set_next_cheap_time(self) -> None:
        overload = self.cheaper.overload
        if self.emergency_workers > 0:
            # emergency workers are cheaped after the shorter backlog delay
            if self.verbose:
                self._log(f"[busyness] {self.emergency_workers} emergency worker(s) running, "
                          f"using {overload * self.backlog_multi} seconds cheaper timer")
            self.next_cheap = self._micros() + overload * self.backlog_multi * 1_000_000
        else:
            self.next_cheap = self._micros() + overload * self.multi * 1_000_000

    def _decrease_multi(self) -> None:
        if self.multi > self.min_multi:
            self.multi -= 1
            self._log(f"[busyness] decreasing cheaper multiplier to {self.multi}")

    def _cheaped_slots(self, limit: int) -> int:
        """How many cheaped slots (at most ``limit``) the spawn will fill."""
        return min(limit, sum(self.cheaper._is_cheaped(wid)
                              for wid in range(1, self.cheaper.inst.numproc + 1)))

    def _spawn_emergency_worker(self, backlog: int) -> int:
        self.multi = self.min_multi
        self.last_action = 1
        decheaped = self._cheaped_slots(self.backlog_step)
        self._set_next_cheap_time()
        if decheaped > 0:
            self.emergency_workers += decheaped
            self._log(f"[busyness] {backlog} requests in listen queue, spawning {decheaped} "
                      f"emergency worker(s) ({self.emergency_workers})!")
        else:
            self._log(f"[busyness] {backlog} requests in listen queue but we are already "
                      f"started maximum number of workers ({self.cheaper.inst.numproc})")
        return decheaped

    def __call__(self, can_spawn: bool) -> int:
        cheaper = self.cheaper
        inst = cheaper.inst
        overload = cheaper.overload
        t = overload * 1_000_000
        workers = [inst.workers.get(wid) for wid in range(1, inst.numproc + 1)]
        active = [w is not None and w.alive and not w.cheaped for w in workers]
        for i, w in enumerate(workers):
            if active[i]:
                assert w is not None
                self.was_busy[i] += int(w.busy or w.in_handler >= 0)
            else:
                self.was_busy[i] = 0
        active_workers = sum(active)
        backlog = len(inst.listen_queue)
        now = self._micros()
        if now - self.tcheck >= t:
            self.tcheck = now
            total = 0
            for i, w in enumerate(workers):
                running_time = w.running_time if w is not None else 0
                if active[i]:
                    done = running_time - self.last_values[i]
                    percent = min(100, done * 100 // t)
                    if done == 0 and self.was_busy[i] > 0:
                        # busy at the checks, but no request ended in the period
                        if self.verbose:
                            self._log(f"[busyness] worker {i + 1} was busy {self.was_busy[i]} "
                                      "time(s) in last cycle but no request was completed "
                                      "during this time, marking as 100% busy")
                        percent = 100
                    self.was_busy[i] = 0
                    total += percent
                    self.current[i] = percent
                    if self.verbose and active_workers > 1:
                        self._log(f"[busyness] worker nr {i + 1} {overload}s average busyness "
                                  f"is at {percent}%")
                self.last_values[i] = running_time
            avg = total // active_workers if active_workers else 0
            self.total_avg = avg
            if self.verbose:
                self._log(f"[busyness] {overload}s average busyness of {active_workers} "
                          f"worker(s) is at {avg}%")
            if avg > self.max:
                return self._overloaded(now, avg, active_workers, can_spawn)
            if can_spawn and backlog > self.backlog_alert and active_workers < inst.numproc:
                return self._spawn_emergency_worker(backlog)
            if avg < self.min:
                return self._idle(now, avg, active_workers)
            self._steady(avg, active_workers)
            return 0
        if can_spawn and backlog > self.backlog_alert and active_workers < inst.numproc:
            return self._spawn_emergency_worker(backlog)  # checked at every cycle
        if backlog > 0:
            if not self.backlog_is_nonzero:
                if self.verbose:
                    self._log(f"[busyness] backlog is starting to fill ({backlog})")
                self.backlog_is_nonzero = True
                self.backlog_nonzero_since = now
            elif can_spawn and ((now - self.backlog_nonzero_since) // 1_000_000
                                >= self.backlog_nonzero_alert):
                self._log(f"[busyness] backlog was non-zero for "
                          f"{(now - self.backlog_nonzero_since) // 1_000_000} second(s), "
                          "spawning new worker(s)")
                self.backlog_nonzero_since = now
                return self._spawn_emergency_worker(backlog)
        elif self.backlog_is_nonzero:
            if self.verbose:
                self._log("[busyness] backlog is now empty")
            self.backlog_is_nonzero = False
        return 0

    def _overloaded(self, now: int, avg: int, active_workers: int, can_spawn: bool) -> int:
        overload = self.cheaper.overload
        self.tolerance_counter = 0
        decheaped = self._cheaped_slots(self.cheaper.step) if can_spawn else 0
        if decheaped > 0:
            self.last_action = 1
            if (now - self.last_cheaped) // overload // 1_000_000 <= self.multi:
                # cheaped, then needed again within multiplier * overload seconds
                self.multi += self.penalty
                self._log(f"[busyness] worker(s) respawned to fast, increasing cheaper "
                          f"multiplier to {self.multi} (+{self.penalty})")
            else:
                self._decrease_multi()
            self._set_next_cheap_time()
            self._log(f"[busyness] {overload}s average busyness is at {avg}%, will spawn "
                      f"{decheaped} new worker(s)")
        else:
            self._log(f"[busyness] {overload}s average busyness is at {avg}% but we already "
                      f"started maximum number of workers available with current limits "
                      f"({active_workers})")
        return decheaped

    def _idle(self, now: int, avg: int, active_workers: int) -> int:
        if active_workers == 1:
            return 0
        self.tolerance_counter = 0
        if active_workers <= self.cheaper.count:
            return 0
        if now >= self.next_cheap:
            if self.last_action == 2:
                self._decrease_multi()
            self._set_next_cheap_time()
            self._log(f"[busyness] {self.cheaper.overload}s average busyness is at {avg}%, "
                      f"cheap one of {active_workers} running workers")
            self.last_cheaped = self._micros()
            self.last_action = 2
            if self.emergency_workers > 0:
                self.emergency_workers -= 1
            return -1
        if self.verbose:
            # A real master's checks drift a little later than whole seconds, which the
            # simulated ones are: one microsecond stands for that drift.
            self._log(f"[busyness] need to wait {(self.next_cheap - now - 1) // 1_000_000} "
                      "more second(s) to cheap worker")
        return 0

    def _steady(self, avg: int, active_workers: int) -> None:
        """min <= busyness <= max: not an idle cycle."""
        if active_workers == 1:
            return
        if self.emergency_workers > 0:
            self.emergency_workers -= 1
        self.tolerance_counter += 1
        overload = self.cheaper.overload
        if self.tolerance_counter >= 3:
            if self.verbose:
                self._log(f"[busyness] {overload}s average busyness is at {avg}%, "
                          f"{self.tolerance_counter} non-idle cycle(s), resetting cheaper timer")
            self._set_next_cheap_time()
        else:
            if self.verbose:
                self._log(f"[busyness] {overload}s average busyness is at {avg}%, "
                          f"{self.tolerance_counter} non-idle cycle(s), adjusting cheaper timer")
            self.next_cheap += overload * 1_000_000
