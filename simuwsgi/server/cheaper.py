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

Not modelled: ``busyness`` (pyuwsgi has it: it is logged as not simulated and ``spare``
runs instead), ``--cheaper-rss-limit-*``, the master fifo's cheaper commands. An unknown
algorithm name falls back to ``spare`` with uWSGI's line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._errors import StartRefusedError
from .interface import AFTER_REAP

if TYPE_CHECKING:
    from .master import Instance
    from .processes import Worker

__all__ = ["Cheaper"]

_ALGOS = ("spare", "backlog", "manual")


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
        if algo == "busyness":
            inst.log("*** simuwsgi WARNING: the busyness cheaper algorithm is not simulated: "
                     "spare runs instead ***")
            inst.record("options.not_simulated", None, options=["cheaper-algo=busyness"])
            algo = "spare"
        elif algo not in _ALGOS:
            inst.log("unable to find requested cheaper algorithm, falling back to spare")
            algo = "spare"
        self.algo = algo
        self._overload_count = 0
        self._idle_count = 0

    def facade_functions(self) -> dict[str, object]:
        return {}  # the uwsgi module has no cheaper function

    def cheaped_at_start(self, wid: int) -> bool:
        return wid > self.initial

    def master_loop_started(self) -> None:
        self._schedule()

    def _schedule(self) -> None:
        inst = self.inst
        inst.kernel.at(inst.next_tick(inst.kernel.now), self._check, priority=AFTER_REAP)

    # -- uwsgi_calc_cheaper --------------------------------------------------------------
    def _check(self) -> None:
        inst = self.inst
        if inst.stopped or inst.subsystems.get("cheaper") is not self:
            return  # stopped, or reloaded (a new Cheaper runs)
        self._schedule()
        needed = getattr(self, "_" + self.algo)()
        if needed > 0:
            for wid in range(1, inst.numproc + 1):
                if needed == 0:
                    break
                if self._is_cheaped(wid):
                    previous = inst.workers.get(wid)
                    inst.spawn_worker(wid, previous)
                    needed -= 1
        elif needed < 0:
            idle = [w for w in self._active() if not w.busy]
            if idle:
                oldest = min(idle, key=lambda w: (w.last_spawn, w.id))
                oldest.cheaped = True
                oldest.rss_size = oldest.vsz_size = 0
                oldest.manage_next_request = False
                inst.kill(oldest, "reload")  # SIGWINCH: it leaves its accept loop

    def _is_cheaped(self, wid: int) -> bool:
        w = self.inst.workers.get(wid)
        return w is None or (w.cheaped and not w.alive)

    def _active(self) -> list[Worker]:
        return [w for w in self.inst.workers.values() if w.alive and not w.cheaped]

    def _cheaped_slots(self) -> int:
        return min(self.step, sum(self._is_cheaped(wid)
                                  for wid in range(1, self.inst.numproc + 1)))

    # -- the algorithms ----------------------------------------------------------------------
    def _spare(self) -> int:
        active = self._active()
        if all(w.busy for w in active):
            self._overload_count += 1
            self._idle_count = 0
        elif self._overload_count > 0:
            self._overload_count -= 1
        if self._overload_count > self.overload:
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

    def _backlog(self) -> int:
        backlog = len(self.inst.listen_queue)
        if backlog > self.overload:
            return self._cheaped_slots()
        if backlog < self.overload and len(self._active()) > self.count:
            return -1
        return 0

    def _manual(self) -> int:
        return 0
