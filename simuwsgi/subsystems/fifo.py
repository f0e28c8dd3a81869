"""The master fifo (``--master-fifo``): commands written to a named pipe, one byte each.

What it models (uWSGI 2.0.30 ``core/fifo.c``, ``core/master.c``, ``core/master_utils.c``;
observed on 2.0.30):

* as its loop starts, the master makes the fifo of the active slot (the first
  ``--master-fifo`` path): any file there is removed, ``mkfifo`` mode 0600, opened
  non-blocking for reading. A real fifo on the filesystem, so a scenario (or the app)
  writes to it as an operator does (``echo r > /tmp/fifo``); nothing is logged;
* the master reads one byte per wake-up of its loop, and runs the byte's command; an
  unknown byte does nothing. Once every writer has closed it (the read finds its end)
  the master makes it again, at the path of the slot active then: ``0``-``9`` choose
  the slot (``active master fifo is now PATH``, the first path for a slot beyond the
  list);
* the commands: ``r`` a graceful reload, ``R`` a brutal one, ``q`` a graceful shutdown
  (``gracefully_kill_them_all``), ``Q`` a shutdown (``kill_them_all``), ``w`` the
  workers reloaded gracefully, ``W`` brutally (``killing worker N (pid: P)``, then each
  dies of SIGINT and is respawned), ``c`` a chain reload (``chain reload starting...``),
  ``s`` the stats dump (as SIGUSR1), ``C`` cheap mode (``going cheap...``, every worker
  SIGKILLed), ``+``/``-`` one worker more or fewer at the cheaper's next check (with
  ``--cheaper``), ``l``/``L`` the ``--logto`` file reopened/rotated, ``P`` the pidfiles
  written again, ``S`` subscriptions blocked or re-enabled, ``B`` the broodlord's
  complaint (no Emperor), ``E`` nothing (no Emperor to rescan).

Bytes written while the scenario has control are read as soon as the simulation runs
again (``Simulation`` looks at the fifo as it looks at the watched files), those the app
writes while it runs at the master's next iteration (at most a second later: the
master's loop looks at the fifo once a second, where uWSGI's wakes at once). Said, not simulated: ``p`` (the
workers paused by SIGTSTP) and ``f`` (a new master forked and re-executed).
"""

from __future__ import annotations

import os
import select
import signal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..server.interface import Instance

__all__ = ["MasterFifo"]


class MasterFifo:
    """The master fifo of an instance with ``--master-fifo`` and a master."""

    #: the fifo is looked at at each iteration of the master's loop
    needs_iteration = True

    @classmethod
    def create(cls, inst: Instance) -> MasterFifo | None:
        paths = inst.opts.strings("master-fifo")
        if not paths or not inst.has_master:
            return None
        return cls(inst, paths)

    def __init__(self, inst: Instance, paths: list[str]) -> None:
        self.inst = inst
        self.paths = paths
        self.slot = 0
        self.subscriptions_blocked = False
        #: ``p`` toggles it (``workers[0].suspended``): only its log lines are simulated
        self.paused = False
        self._fd: int | None = None
        self._poll = select.poll()
        self._waking = False

    def facade_functions(self) -> dict[str, object]:
        return {}

    # -- the fifo itself -----------------------------------------------------------------
    def _name(self) -> str:
        """``uwsgi_fifo_by_slot``: the active slot's path as given (the first beyond
        the list)."""
        return self.paths[self.slot] if self.slot < len(self.paths) else self.paths[0]

    def _path(self) -> str:
        return str(self.inst.opts.path(self._name()))

    def _make(self) -> None:
        """``uwsgi_master_fifo``: remove, ``mkfifo`` (0600), open for reading."""
        path = self._path()
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            self.inst.log(f"uwsgi_master_fifo()/unlink(): {exc.strerror} [core/fifo.c line 112]",
                          self.inst.master)
        try:
            os.mkfifo(path, 0o600)
        except OSError as exc:
            self._failed("mkfifo", 117, exc)
            return
        try:
            self._fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError as exc:
            self._failed("open", 123, exc)
            return
        self._poll = select.poll()
        self._poll.register(self._fd, select.POLLIN)
        self.inst.record("fifo.open", self.inst.master, path=path)

    def _failed(self, call: str, line: int, exc: OSError) -> None:
        """``uwsgi_error`` then ``exit(1)`` of the master."""
        self.inst.log(f"uwsgi_master_fifo()/{call}(): {exc.strerror} [core/fifo.c line {line}]",
                      self.inst.master)
        self.inst.kernel.call_soon(self.inst.shutdown)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    # -- the master's loop ---------------------------------------------------------------
    def master_loop_started(self) -> None:
        loop = self.inst.master_loop
        if loop is None:
            return
        self._make()
        loop.add_client(self)

    def look(self) -> None:
        """Something may have been written (the scenario had control): the master wakes
        for it now."""
        if self._fd is not None and not self._waking and self._ready():
            self._waking = True
            self.inst.kernel.call_soon(self._wake)

    def _ready(self) -> bool:
        return bool(self._fd is not None and self._poll.poll(0))

    def _wake(self) -> None:
        self._waking = False
        loop = self.inst.master_loop
        if loop is not None and not self.inst.stopped and self._ready():
            loop.event(self._manage)

    def _manage(self) -> None:
        """``uwsgi_master_fifo_manage``: one byte read, its command run; the fifo made
        again when its writers are gone."""
        if self._fd is None:
            return
        try:
            data = os.read(self._fd, 1)
        except BlockingIOError:
            return
        if not data:  # every writer closed it: made again (at the active slot's path)
            os.close(self._fd)
            self._fd = None
            self._make()
            return
        self.inst.record("fifo.command", self.inst.master, command=data.decode("latin-1"))
        command = _COMMANDS.get(data)
        if command is not None:
            command(self)
        if self._ready():  # the next byte wakes the loop again at once
            self._waking = True
            self.inst.kernel.call_soon(self._wake)

    def before_events(self, loop: Any, wall_s: int, timeout: bool) -> None:
        pass

    def at_top(self, loop: Any, wall_s: int) -> None:
        self.look()  # what the app wrote while it ran

    def next_wake(self, loop: Any) -> float | None:
        return loop.next_idle_wake()  # a look once a second for what the app wrote

    def clock_stepped(self, loop: Any) -> None:
        pass

    # -- the commands --------------------------------------------------------------------
    def _slot(self, slot: int) -> None:
        self.slot = slot
        self.inst.log_verbose(f"active master fifo is now {self._name()}", self.inst.master)

    def _reload(self) -> None:
        self.inst.request_reload()

    def _brutal_reload(self) -> None:
        self.inst.request_brutal_reload()

    def _shutdown(self) -> None:
        self.inst.kernel.call_soon(self.inst.shutdown)

    def _graceful_shutdown(self) -> None:
        self.inst.kernel.call_soon(self.inst.graceful_shutdown)

    def _reload_workers(self) -> None:
        self.inst.reload_workers()

    def _brutally_reload_workers(self) -> None:
        """``uwsgi_brutally_reload_workers``: SIGINT to each worker (it dies at once)."""
        from ..server.containment import deliver

        inst = self.inst
        for wid in sorted(inst.workers):
            worker = inst.workers[wid]
            if worker.alive:
                inst.log_verbose(f"killing worker {wid} (pid: {worker.pid})", inst.master)
                worker.cursed = True
                deliver(inst, worker, signal.SIGINT)

    def _chain_reload(self) -> None:
        self.inst.chain_reload(None)

    def _stats(self) -> None:
        from ..server.containment import stats

        stats(self.inst, self.inst.master)

    def _go_cheap(self) -> None:
        self.inst.go_cheap()

    def _cheaper(self, delta: int) -> None:
        cheaper = self.inst.subsystems.get("cheaper")
        if cheaper is not None:  # (without --cheaper nothing reads the delta)
            cheaper.fifo_delta += delta

    def _log_reopen(self) -> None:
        from ..server.logsink import reopen_log

        reopen_log(self.inst)

    def _log_rotate(self) -> None:
        from ..server.logsink import rotate_log

        rotate_log(self.inst)

    def _pidfiles(self) -> None:
        inst = self.inst
        for option in ("pidfile", "pidfile2"):
            name = inst.opts.str(option)
            if name is not None:
                inst.log(f"writing pidfile to {name}", inst.master)
                try:
                    inst.opts.path(name).write_text(f"{inst.master.pid}\n")
                except OSError as exc:
                    inst.log(f"uwsgi_write_pidfile()/open(): {exc.strerror}", inst.master)

    def _subscriptions(self) -> None:
        self.subscriptions_blocked = not self.subscriptions_blocked
        self.inst.log_verbose("subscriptions blocked" if self.subscriptions_blocked
                              else "subscriptions re-enabled", self.inst.master)

    def _broodlord(self) -> None:
        self.inst.log("[broodlord] instance not governed by an Emperor !!!", self.inst.master)

    def _pause(self) -> None:
        """``suspend_resume_them_all``: its line; the workers' pause is not simulated."""
        paused = self.paused
        self.paused = not paused
        self.inst.log_verbose(
            "*** (SIGTSTP received) resuming workers ***" if paused else
            "*** PAUSE (press start to resume, if you do not have a joypad send SIGTSTP) ***",
            self.inst.master)
        self.inst.log("[simuwsgi] master fifo 'p': the workers' pause (SIGTSTP) is not "
                      "simulated; they go on serving", self.inst.master)

    def _refork(self) -> None:
        self.inst.log("[simuwsgi] master fifo 'f': a new master copy (fork and re-exec) is "
                      "not simulated", self.inst.master)


#: The byte -> command table of ``uwsgi_master_fifo_prepare``.
_COMMANDS: dict[bytes, Any] = {
    **{str(slot).encode(): (lambda self, slot=slot: self._slot(slot)) for slot in range(10)},
    b"r": MasterFifo._reload, b"R": MasterFifo._brutal_reload,
    b"q": MasterFifo._graceful_shutdown, b"Q": MasterFifo._shutdown,
    b"w": MasterFifo._reload_workers, b"W": MasterFifo._brutally_reload_workers,
    b"c": MasterFifo._chain_reload, b"s": MasterFifo._stats, b"C": MasterFifo._go_cheap,
    b"+": lambda self: self._cheaper(1), b"-": lambda self: self._cheaper(-1),
    b"l": MasterFifo._log_reopen, b"L": MasterFifo._log_rotate, b"P": MasterFifo._pidfiles,
    b"S": MasterFifo._subscriptions, b"B": MasterFifo._broodlord,
    b"E": lambda self: None,  # the Emperor's rescan: no Emperor
    b"p": MasterFifo._pause, b"f": MasterFifo._refork,
}
