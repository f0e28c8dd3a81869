"""uWSGI file monitors (``add_file_monitor``), driven by the scenario.

What it models (``core/signal.c`` ``uwsgi_add_file_monitor``, ``core/master.c`` (arming
at the top of the master loop), ``core/event.c`` inotify ``event_queue_add_file_monitor``/
``event_queue_ack_file_monitor``, ``core/master_events.c``; ``semantics.md`` §4.4):

* ``add_file_monitor(num, path)`` (``Bs``): no master check; a path longer than 254
  bytes logs ``uwsgi_add_file_monitor: invalid filename length`` and raises
  ``ValueError('unable to add file monitor')``, as does a 65th monitor
  (``you can register max 64 file monitors !!!``). Returns None.
* the master arms new monitors at the top of its next loop iteration: an inotify watch
  on the path (relative paths from the app directory). A path that does not exist then
  gets no watch and never fires, even if it is created later. Without a master nothing
  is ever armed.
* a change is reported by the scenario with ``sim.touch(path)`` (``path`` itself, or a
  file directly inside a watched directory), or made on the real filesystem: whenever
  the scenario drives the simulation (``advance``, ``request``...), the watched paths
  are compared with what they were (a file's inode, size and times; a directory's
  entries), and every change seen is reported at that instant, as ``touch`` would. Changes reported
  at the same instant form one inotify read batch; the master wakes (an event
  iteration of the loop) and routes **one** signal per batch: that of the monitor
  matching the batch's last event, and, for a path registered several times (same
  watch descriptor), the most recently added monitor's signal — as the C loop does.
  For a file whose directory is watched too, the directory's event comes first.

``--touch-reload FILE`` (``core/utils.c`` ``uwsgi_check_touches``, run at every
master check, ``--check-interval``): a ``touch`` of such a file is seen by the master's next
iteration, which logs ``*** FILE has been touched... grace them all !!! ***`` and starts a
graceful reload. ``--touch-workers-reload`` (``... workers reload !!!``: each worker is
cursed with SIGHUP, finishes its request and is respawned), ``--touch-mules-reload``
(``... mules reload !!!``: each mule is cursed with SIGHUP, killed after
``--mule-reload-mercy``, respawned), ``--touch-spoolers-reload`` (``... spoolers reload
!!!``: a spooler ignores SIGHUP, so the next check kills it -- see
``Instance.reload_spoolers``), ``--touch-exec 'FILE COMMAND'`` (``[uwsgi-touch-exec]
running COMMAND``; the command is recorded, and run on the host only with
``cron_commands=True``, then ``subprocess P exited with code N`` at the next check) and
``--touch-signal 'FILE SIGNUM'`` (the signal is routed, then ``[uwsgi-touch-signal]
raising N``) and ``--hook-touch 'FILE action:args'`` (the hook, ``running "action:args"
(touch)...``, not fatal: ``server/hooks.py``) work the same way, checked in that order, one entry of each option per
check; ``--touch-chain-reload`` starts a chain reload (see ``Instance.chain_reload``).

Changes the app itself makes to watched files are seen the next time the scenario drives
the simulation, not at the instant they are made. ``--touch-reload`` counts every change
of the file; uWSGI compares whole-second ``st_mtime`` values (two touches within one
real second are one), which would make a run depend on the real clock.

Left out: watches on inodes (a file replaced by a rename keeps firing here, while uWSGI's
watch stays on the old inode), the stride bug of ``event_queue_ack_file_monitor`` on events that carry
a file name, non-Linux backends.
"""

from __future__ import annotations

import os
import stat
from typing import TYPE_CHECKING, Any

from ..server._pyarg import no_kwargs, parser
from ..server.config import atoi
from ..server.interface import AFTER_REAP
from ..server.commands import run_host_command

if TYPE_CHECKING:
    from ..server.interface import Instance
    from .timers import MasterLoop

__all__ = ["MAX_MONITORS", "FileMonitors"]

#: The --touch-* options the master checks, in the order it checks them.
_TOUCH_OPTIONS = ("touch-reload", "touch-workers-reload", "touch-mules-reload",
                  "touch-spoolers-reload", "touch-chain-reload", "touch-exec", "touch-signal",
                  "hook-touch")
#: The options whose value is "FILE ARGUMENT" (master.c splits it at the first space).
_WITH_ARGUMENT = ("touch-exec", "touch-signal", "hook-touch")

MAX_MONITORS = 64


class _Monitor:
    __slots__ = ("num", "path", "registered", "watch")

    def __init__(self, num: int, path: str) -> None:
        self.num = num
        self.path = path
        self.registered = False
        #: The watched path (its inotify identity), None when inotify refused it.
        self.watch: str | None = None


class FileMonitors:
    """The file monitor table and its inotify watches."""

    #: In the master loop only while it has entries: every iteration matters then.
    needs_iteration = True

    @classmethod
    def create(cls, inst: Instance) -> FileMonitors:
        return cls(inst)

    def __init__(self, inst: Instance) -> None:
        self.inst = inst
        self.monitors: list[_Monitor] = []
        self._batch: list[str] = []
        #: the --touch-* files: (option, resolved path, path as given, argument), in the
        #: order the master checks them; and those touched since they last fired
        self.touches: list[tuple[str, str, str, str]] = []
        for option in _TOUCH_OPTIONS:
            for value in inst.opts.strings(option):
                path, _, argument = value.partition(" ") if option in _WITH_ARGUMENT \
                    else (value, "", "")
                self.touches.append((option, self._resolve(path), path, argument))
        self.touch_paths = {entry[1] for entry in self.touches}
        self._touched: list[tuple[str, str, str, str]] = []
        #: What each watched path looked like when last looked at (``_look``).
        self._seen: dict[str, Any] = {path: _look(path) for path in self.touch_paths}

    def master_loop_started(self) -> None:
        loop = self.inst.master_loop
        # Only a table with work joins the loop (add_file_monitor joins it later).
        if loop is not None and self.inst.has_master and (self.monitors or self.touch_paths):
            loop.add_client(self)

    def _resolve(self, path: str) -> str:
        base = self.inst.opts.str("chdir") or str(self.inst.opts.base_dir)
        return os.path.normpath(os.path.join(base, path))

    # -- the table ---------------------------------------------------------------------
    def add(self, num: int, path: str) -> bool:
        if len(path.encode()) > 0xFF - 1:
            self.inst.log("uwsgi_add_file_monitor: invalid filename length")
            return False
        if len(self.monitors) >= MAX_MONITORS:
            self.inst.log("you can register max 64 file monitors !!!")
            return False
        self.monitors.append(_Monitor(num, path))
        self.inst.record("filemon.add", num=num, path=path)
        loop = self.inst.master_loop
        if loop is not None and loop.started and self.inst.has_master:
            loop.add_client(self)  # joins the loop now, or re-plans it if already in
        return True

    # -- the scenario's side --------------------------------------------------------------
    def touch(self, path: str) -> int:
        """Report a change of ``path`` (a watched path or a file in a watched directory).

        Returns how many watches saw it. The master reads the batch at the current
        instant, after the scenario hands control back to the simulation.
        """
        target = self._resolve(path)
        if target in self.touch_paths:
            self._touched.extend(entry for entry in self.touches
                                 if entry[1] == target and entry not in self._touched)
            loop = self.inst.master_loop
            if loop is not None:
                self.inst.kernel.call_soon(loop.poke)
        parent = os.path.dirname(target)
        seen = [w for w in (parent, target) if any(m.watch == w for m in self.monitors)]
        self.inst.record("filemon.touch", self.inst.master, path=path, watches=len(seen))
        if not seen:
            return 0
        if not self._batch:
            self.inst.kernel.call_soon(self._wake_master)
        self._batch.extend(seen)
        return len(seen)

    def look_at_the_filesystem(self) -> int:
        """Report (as ``touch``) the real changes of the watched paths since the last
        look, in the order they were made (by their change times); returns how many
        paths changed. Called whenever the scenario drives the simulation."""
        if not self._seen:  # nothing watched (serve calls this for every request)
            return 0
        events: list[tuple[int, str]] = []
        for path in list(self._seen):
            before, now = self._seen[path], _look(path)
            if now == before:
                continue
            self._seen[path] = now
            if before is not None and now is not None and before[0] == now[0] == "dir":
                old, new = before[2], now[2]
                for name in sorted(old.keys() | new.keys()):
                    if old.get(name) != new.get(name):  # created, changed or removed
                        entry = new.get(name)
                        events.append((entry[3] if entry else now[1], os.path.join(path, name)))
                if old == new:  # the directory itself (attributes)
                    events.append((now[1], path))
            else:
                events.append((_changed_at(now, path), path))
        events.sort(key=lambda event: event[0])  # stable: equal times keep path order
        targets = list(dict.fromkeys(target for _when, target in events))
        for target in targets:
            self.touch(target)
        return len(targets)

    def _wake_master(self) -> None:
        loop = self.inst.master_loop
        if loop is None or not loop.started:
            self._batch.clear()
            return
        loop.event(self._read_batch)

    def _read_batch(self) -> None:
        batch, self._batch = self._batch, []
        chosen: _Monitor | None = None
        for watch in batch:
            for monitor in self.monitors:
                if monitor.registered and monitor.watch == watch:
                    chosen = monitor
        if chosen is None:
            return
        inst = self.inst
        inst.record("filemon.fire", inst.master, num=chosen.num, path=chosen.path,
                    events=len(batch))
        signals = inst.subsystems.get("signals")
        if signals is not None:
            signals.route(chosen.num)

    # -- loop client ------------------------------------------------------------------------
    def before_events(self, loop: MasterLoop, wall_s: int, timeout: bool) -> None:
        pass

    def at_top(self, loop: MasterLoop, wall_s: int) -> None:
        if self._touched:
            # uwsgi_check_touches, in master.c's order: each option's check fires its
            # first touched entry (the others at the next iterations), and each check
            # that fires a reload ends the iteration
            for option in _TOUCH_OPTIONS:
                entry = next((e for e in self._touched if e[0] == option), None)
                if entry is not None:
                    self._touched.remove(entry)
                    if self._touch_fired(option, entry[2], entry[3]):
                        break
        for monitor in self.monitors:
            if not monitor.registered:
                monitor.registered = True
                target = self._resolve(monitor.path)
                monitor.watch = target if os.path.exists(target) else None
                if monitor.watch is not None and target not in self._seen:
                    self._seen[target] = _look(target)
                self.inst.record("filemon.arm", self.inst.master, num=monitor.num,
                                 path=monitor.path, watching=monitor.watch is not None)

    def _touch_fired(self, option: str, path: str, argument: str) -> bool:
        inst, master = self.inst, self.inst.master
        if option == "touch-signal":
            signum = atoi(argument) & 0xFF
            signals = inst.subsystems.get("signals")
            if signals is not None:
                signals.route(signum)
            inst.log_verbose(f"[uwsgi-touch-signal] raising {signum}", master)
            return False
        if option == "touch-exec":
            self._exec(argument)
            return False
        if option == "hook-touch":  # its hook (none without "FILE action:args")
            from ..server.hooks import touch_hooks

            touch_hooks(inst, [argument] if argument else [])
            return False
        if option == "touch-chain-reload":
            inst.chain_reload(path)
            return False
        what, reload = {"touch-reload": ("grace them all", inst.request_reload),
                        "touch-workers-reload": ("workers reload", inst.reload_workers),
                        "touch-mules-reload": ("mules reload", inst.reload_mules),
                        "touch-spoolers-reload": ("spoolers reload", inst.reload_spoolers),
                        }[option]
        inst.log_verbose(f"*** {path} has been touched... {what} !!! ***", master)
        reload()
        return True

    def _exec(self, command: str) -> None:
        """``--touch-exec``: the master forks ``/bin/sh -c COMMAND`` and reaps it at a
        later iteration. The command runs on the host only when the scenario asks
        (``cron_commands=True``, as for ``--cron``); else it is only recorded."""
        inst = self.inst
        pid = inst.next_pid()
        inst.log_verbose(f"[uwsgi-touch-exec] running {command}", inst.master)
        inst.record("touch.exec", inst.master, command=command, pid=pid)
        if getattr(inst, "cron_commands", False):
            status = run_host_command(inst, command)
            if status is not None:
                inst.record("touch.exec.exit", inst.master, command=command, status=status)
                # reaped by the waitpid() after the next check's touches
                inst.kernel.at(inst.next_tick(inst.now), inst.log,
                               f"subprocess {pid} exited with code {status}", inst.master,
                               priority=AFTER_REAP)

    def next_wake(self, loop: MasterLoop) -> float | None:
        if self._touched or any(not m.registered for m in self.monitors):
            return loop.next_idle_wake()
        return None

    def clock_stepped(self, loop: MasterLoop) -> None:
        pass

    # -- the uwsgi module ----------------------------------------------------------------------
    def facade_functions(self) -> dict[str, Any]:
        p_add = parser("Bs:add_file_monitor")

        def add_file_monitor(*args: Any, **kw: Any) -> None:
            no_kwargs("add_file_monitor", kw)
            num, path = p_add(args)
            if not self.add(num, path):
                raise ValueError("unable to add file monitor")

        return {"add_file_monitor": add_file_monitor}


def _look(path: str) -> Any:
    """What a change of ``path`` changes, as inotify would see it: a file's identity,
    size and times (``("file", ino, size, mtime, ctime)``); a directory's change time
    and the same for each entry (``("dir", ctime, {name: (ino, size, mtime, ctime)})``);
    None when it is missing."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode):
        return ("file", st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    entries = {}
    try:
        names = os.listdir(path)
    except OSError:
        names = []
    for name in names:
        try:
            e = os.stat(os.path.join(path, name), follow_symlinks=False)
        except OSError:
            continue
        entries[name] = (e.st_ino, e.st_size, e.st_mtime_ns, e.st_ctime_ns)
    return ("dir", st.st_ctime_ns, entries)


def _changed_at(look: Any, path: str) -> int:
    """When a watched path changed: its change time; a removed one, its directory's."""
    if look is not None:
        return int(look[4] if look[0] == "file" else look[1])
    try:
        return os.stat(os.path.dirname(path)).st_ctime_ns
    except OSError:
        return 0
