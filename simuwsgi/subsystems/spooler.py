"""The uWSGI spooler: real spool files on disk, consumed by spooler processes in virtual time.

What it models (``core/spooler.c``, ``core/master_checks.c``
``uwsgi_master_check_spoolers_deadline``, ``plugins/python/python_plugin.c``
``uwsgi_python_spooler``/``uwsgi_python_spooler_init``, ``plugins/python/uwsgi_pymodule.c``
``py_uwsgi_send_spool`` and the other spooler functions; ``shared/spec/spoolfile.md``,
``semantics.md`` §5, ``api.md`` §8):

* ``--spooler DIR`` (repeatable; the directory is created mode 0750 and stored as its
  realpath), ``--spooler-external DIR`` (writable, no process), ``--spooler-processes K``
  (K processes per directory, each its own ``uwsgi_spooler`` entry: ``uwsgi.spoolers`` and
  ``spooler_pids()`` list every entry), ``--spooler-frequency``/``--spooler-freq``
  (default 30), ``--spooler-ordered``, ``--spooler-max-tasks``, ``--spooler-harakiri``,
  ``--spooler-quiet``, ``--spooler-import`` (and its aliases), ``--spooler-chdir``
  (recorded in the trace only, see below).
* Writing (``uwsgi.spool``/``send_to_spooler``): bytes-only dict (kwargs always fail on
  Python 3), ``b'body'`` removed from the caller's dict and appended raw, uint16
  truncation of keys/values, 64 KiB limit on the vars block, ``spooler`` (exact realpath),
  ``priority`` (sub-directory, created 0777), ``at`` (file mtime). Files are real, in
  uWSGI's byte format and naming (``simuwsgi.protocol``'s spool-file codec) with the virtual hostname, the writer's
  virtual pid, a per-process counter (inherited from the master at fork), ``kernel.rng``
  as ``rand()`` and the virtual wall clock; ``O_CREAT|O_EXCL`` mode 0600, an fcntl write
  lock while writing. After a write every spooler process of that directory that is not
  running a task gets the SIGUSR1 wake-up.
* The spooler process loop: scan, then wait ``frequency`` seconds (the
  ``set_spooler_frequency`` override first), or less when woken (SIGUSR1) or when a
  uWSGI signal for the spooler arrives; signals are handled only in that wait, one per
  wait. A scan lists the directory once (files spooled while a task runs are seen by
  the next scan), skips names not starting with ``uwsgi_spoolfile_on_`` (and, with
  ``--spooler-ordered``, descends all-digit priority directories in ``versionsort``
  order; without it priority tasks never run), skips entries whose mtime is in the
  future (``at``), files it cannot lock (another spooler runs them), files shorter than
  4 bytes; deletes files whose vars block is shorter than announced; the Python plugin
  deletes files whose vars cannot be parsed without calling ``uwsgi.spooler``.
* Return codes: only ``SPOOL_OK`` (-2) deletes the file; 0 (also: ``uwsgi.spooler``
  missing) logs ``unable to find the spooler function ...``; every other result
  (-1, other ints, non-ints, exceptions) keeps the file and it runs again at every
  scan. An int is cast like C's ``(int) PyLong_AsLong``.
* Crash safety: a spooler killed mid-task (``sim.kill``, ``--spooler-harakiri``,
  ``--spooler-max-tasks`` recycling, reload, ``SystemExit`` in the task) keeps the file;
  the master respawns the process and the task runs again. ``--spooler-harakiri S``
  kills at the first whole second after ``int(now) + S``, with uWSGI's log line.

Readdir order (non-ordered scans) is what the file system returns in uWSGI: here it is
a keyed hash order of the names (like ext4's hashed directories), the key drawn once
per instance from ``kernel.rng`` and recorded in the trace (``spool.readdir_seed``), so
it is stable between scans and reproducible from the seed.

Trace events: ``spool.enqueue`` (path, priority, at), ``spool.scan`` (dir, entries,
order or its digest), ``spool.start`` (path), ``spool.end`` (path, rc), ``spool.retry``
(path, rc), ``spool.remove`` (path, reason), ``spool.abort`` (path, reason: the process
died mid-task). Queries: ``tasks_run()``, ``pending()``.

A task's common case has an optional C twin (``_cspooler.c``): ``uwsgi.spool`` of a
plain bytes dict, ``_manage_all`` over the entries of a scan of the spooler's own
directory, and the scan's readdir order; the Python code here stays the twin and handles
every other case (``SIMUWSGI_PURE_PYTHON=1`` runs it alone).

Working directories: a spooler process works in its directory, and with
``--spooler-chdir`` tasks run in that one; the kernel applies a process's directory
whenever it runs (``os.chdir``) and puts the test's back when control returns to it.
Left out: ``--spooler-external`` directories in other instances;
``--touch-spoolers-reload``; the remote spool request (modifier1 17) is the protocol
layer's (it can call ``Spoolers.spool_request``); the reseeding of Python's ``random``
in the spooler. ``uwsgi.spooler`` is the spooler process's own (``facade.HOOKS``): set
in the master before the fork (at import without ``--lazy-apps``) or by a
``--spooler-import``; one set only in a worker gives ``unable to find the spooler
function``, as under uWSGI.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import importlib
import os
import stat
import sys
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._core.accel import load
from .._core.clock import VirtualClock
from .._errors import ConfigError
from ..server._pyarg import kwargs_dict_passed, no_kwargs, parser
from ..server.config import canonical
from ..server.interface import ProcessExit
from ..server.processes import Spooler
from ..protocol import (
    SPOOL_FILE_PREFIX,
    Pairs,
    SpoolFileError,
    decode_dict_prefix,
    decode_spool_file,
    encode_spool_file,
    encode_spool_vars,
    spool_options,
    versionsort,
)
from ..protocol._spoolfile import decode_spool_task

if TYPE_CHECKING:
    from .._core.kernel import Timer
    from ..server.interface import Instance

__all__ = ["Spoolers", "TaskRun"]

#: the optional C accelerator: the task path, written and run (see _cspooler.c)
_c = load(f"{__package__}._cspooler")

SPOOL_OK = -2
_DEFAULT_FREQUENCY = 30
#: A frequency of 0 makes real uWSGI rescan in a busy loop; virtual time would not move,
#: so simuwsgi rescans every millisecond instead.
_SPIN_DELAY = 0.001
_ORDER_LIMIT = 256
_MISSING = object()
_RW = os.R_OK | os.W_OK
_PY3_BYTES_ERROR = "spooler callable dictionary must contains only bytes"


@dataclass(frozen=True, slots=True)
class TaskRun:
    """One execution of a spool file, as the trace tells it."""

    path: str
    task: str
    process: str
    started: float
    ended: float | None
    rc: int | None
    outcome: str  # "done" (file removed), "kept" (retried later), "aborted" (process died)


class _Slot:
    """One ``struct uwsgi_spooler``: a directory and (unless external) one process."""

    __slots__ = (
        "current",
        "dir",
        "external",
        "harakiri_timer",
        "index",
        "proc",
        "proc_id",
        "running",
        "tasks",
        "timer",
        "waiting",
        "wakeup",
        "woken",
    )

    def __init__(self, index: int, directory: str, external: bool, proc_id: int | None) -> None:
        self.index = index
        self.dir = directory
        self.external = external
        self.proc_id = proc_id
        self.proc: Spooler | None = None
        self.running = False
        self.tasks = 0
        self.wakeup = 0
        self.waiting = False
        #: resumed from the idle wait but not yet running (a pending, coalesced signal)
        self.woken = False
        self.timer: Timer | None = None
        self.harakiri_timer: Timer | None = None
        #: (fd, path) of the task being executed
        self.current: tuple[int, str] | None = None


class Spoolers:
    """Every spooler of one instance: directories, processes, the Python functions."""

    @classmethod
    def create(cls, inst: Instance) -> Spoolers | None:
        wanted = ("spooler", "spooler-external")
        given = [(canonical(n), v) for n, v in inst.opts.items
                 if canonical(n) in wanted and isinstance(v, str)]
        if not given:
            return None
        return cls(inst, given)

    def __init__(self, inst: Instance, given: list[tuple[str, str]]) -> None:
        self.inst = inst
        self.kernel = inst.kernel
        self._clock = inst.clock
        opts = inst.opts
        self.ordered = opts.flag("spooler-ordered")
        self.quiet = opts.flag("spooler-quiet")
        self.frequency = opts.int("spooler-frequency", _DEFAULT_FREQUENCY)
        self.max_tasks = opts.int("spooler-max-tasks", 0)
        self.harakiri = opts.int("spooler-harakiri", 0)
        self.chdir = opts.str("spooler-chdir")
        self.imports = opts.strings("spooler-import")
        #: ``uwsgi.shared->spooler_frequency`` (0 = use the option)
        self.shared_frequency = 0
        per_dir = max(1, opts.int("spooler-processes", 0))
        self.slots: list[_Slot] = []
        self._by_id: dict[int, _Slot] = {}
        for name, value in given:
            directory = self._prepare_dir(value)
            external = name == "spooler-external"
            for _ in range(per_dir):
                proc_id = None if external else len(self._by_id) + 1
                slot = _Slot(len(self.slots), directory, external, proc_id)
                self.slots.append(slot)
                if proc_id is not None:
                    self._by_id[proc_id] = slot
        #: paths being executed right now, by any spooler process (the fcntl lock)
        self._busy: dict[str, _Slot] = {}
        self._counters: dict[Any, int] = {}
        self._imported: set[str] = set()
        self._readdir_seed = self.kernel.rng.getrandbits(32)
        inst.record("spool.readdir_seed", None, seed=self._readdir_seed)
        if _c is not None:  # a task's common case in C (see _cspooler.c)
            self._manage_all = _c.manager(  # type: ignore[method-assign]
                self._c_state(Spoolers._manage_all.__get__(self)))

    def _c_state(self, fallback: Any) -> tuple[Any, ...]:
        """What the C functions work on (see _cspooler.c): objects that live as long as
        the instance, and the Python function a call falls back to."""
        inst = self.inst
        options = (self.quiet, self.ordered, self.harakiri, self.chdir, self.max_tasks,
                   MAX_RW_COUNT)
        return (self, fallback, inst, self.kernel, inst.trace.add, self._clock, self.kernel.rng,
                self._counters, self.slots, self._busy, ProcessExit, options,
                Spoolers._manage.__get__(self), VirtualClock)

    def _prepare_dir(self, value: str) -> str:
        """``uwsgi_opt_add_spooler``: create the directory if needed, keep its realpath."""
        path = str(self.inst.opts.path(value))
        if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
            try:
                os.mkdir(path, 0o750)
            except OSError as exc:
                raise ConfigError(f"[spooler directory] access(): {exc.strerror} "
                                  f"[core/spooler.c line 26] ({path})") from None
        return os.path.realpath(path)

    # -- what the master asks ------------------------------------------------------------
    def process_ids(self) -> list[int]:
        return sorted(self._by_id)

    def directory_for(self, ident: int) -> str:
        return self._by_id[ident].dir

    @property
    def directories(self) -> list[str]:
        """The distinct spooler directories, in option order."""
        return list(dict.fromkeys(s.dir for s in self.slots))

    def _pid_of(self, slot: _Slot) -> int:
        proc = self.inst.spoolers.get(slot.proc_id) if slot.proc_id else None
        return proc.pid if proc is not None else 0

    # -- writing -------------------------------------------------------------------------
    def spool_request(self, block: bytes, body: bytes = b"") -> str | None:
        """``uwsgi_spool_request``: write one spool file; its path, or None on failure."""
        inst = self.inst
        if len(block) > 0xFFFF:
            inst.log("[uwsgi-spooler] args buffer is limited to 64k, use the 'body' for "
                     "bigger values")
            return None
        target, priority, at = _reserved_vars(block)
        slot = self.slots[0]
        if target:
            found = [s for s in self.slots if os.fsencode(s.dir) == target]
            if not found:
                inst.log(f'[uwsgi-spooler] unable to find spooler '
                         f'"{target.decode("utf-8", "replace")}"')
                return None
            slot = found[0]
        writer = self.kernel.current or inst.master
        counter = self._counters.get(writer, self._counters.get(inst.master, 0)) + 1
        self._counters[writer] = counter
        wall = self._clock.time()
        sec = int(wall)
        usec = min(999_999, int((wall - sec) * 1_000_000))
        rand = self.kernel.rng.getrandbits(31)  # rand(): 0..RAND_MAX
        directory = slot.dir
        prio_text = None
        if priority:
            prio_text = os.fsdecode(priority)
            if "/" in prio_text or prio_text in (".", "..") or "\0" in prio_text:
                inst.log(f"[simuwsgi] refusing spooler priority {prio_text!r}: uWSGI would "
                         "use it verbatim as a path component")
                return None
            directory = f"{slot.dir}/{prio_text}"
            try:
                os.mkdir(directory, 0o777)
            except OSError:
                pass
        # spool_file_name()'s format, inlined: this runs once per spooled task.
        name = (f"{SPOOL_FILE_PREFIX}{inst.hostname}_{writer.pid if writer else 0}_{counter}_"
                f"{rand}_{sec}_{usec}")
        path = f"{directory}/{name}"
        if not self._write_file(path, encode_spool_file(block, body), at, wall):
            return None
        if prio_text is not None:
            _touch(directory, wall)
        if not self.quiet:
            inst.log(f"[spooler] written {len(block) + len(body) + 4} bytes to file {path}")
        inst.trace.add(self.kernel.now, writer.name if writer else "master", "spool.enqueue",
                       {"path": path, "priority": prio_text, "at": at if at > 0 else None})
        self._wake_spoolers(slot.dir)
        return path

    def _write_file(self, path: str, content: bytes, at: int, wall: float) -> bool:
        faults = self.inst.faults
        try:
            if faults is not None:
                faults.disk_error("open", path)
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except OSError as exc:
            self.inst.log(f'open("{path}"): {exc.strerror} [core/spooler.c line 271]')
            return False
        if len(content) - 4 - int.from_bytes(content[1:3], "little") > MAX_RW_COUNT:
            # the body goes out in one write(), which Linux stops at 0x7ffff000 bytes
            self.inst.log(f"[spooler] unable to write body for {path}")
            self.inst.log("uwsgi_spool_request()/write(): Success [core/spooler.c line 381]")
            os.close(fd)
            _unlink_quiet(path)
            return False
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX)
            if faults is not None:
                if faults.torn_write():
                    os.write(fd, content[:len(content) // 2])
                    os.utime(fd, (wall, wall))
                    os.close(fd)  # the half-written file stays on disk
                    fd = -1
                    raise OSError(errno.EIO, os.strerror(errno.EIO), path)
                faults.disk_error("write", path)
            written = os.write(fd, content)
            if written < len(content):
                view = memoryview(content)[written:]
                while view:
                    view = view[os.write(fd, view):]
            when: float = wall
            if at > 0:
                when = at
            try:
                os.utime(fd, (when, when))
            except (OSError, OverflowError, ValueError) as exc:
                reason = getattr(exc, "strerror", None) or "Invalid argument"
                self.inst.log(f"uwsgi_spooler_request()/futimes(): {reason} "
                              "[core/spooler.c line 348]")
                os.utime(fd, (wall, wall))
        except OSError as exc:
            self.inst.log(f"uwsgi_spool_request()/write(): {exc.strerror} "
                          "[core/spooler.c line 381]")
            if fd < 0:
                return False  # torn: the writer died mid-write, nobody cleans up
            os.close(fd)
            _unlink_quiet(path)
            return False
        os.close(fd)
        return True

    def _wake_spoolers(self, directory: str) -> None:
        """SIGUSR1 to every spooler process of ``directory`` that is not running a task."""
        for slot in self.slots:
            proc = slot.proc
            if slot.dir != directory or proc is None or not proc.alive or slot.running:
                continue
            if slot.waiting:
                self._interrupt(slot, "wakeup")
            elif not slot.woken:
                slot.wakeup += 1  # delivered while it runs (e.g. in a signal handler)

    # -- the spooler process ---------------------------------------------------------------
    def main(self, proc: Spooler) -> None:
        """``spooler()``: the loop of one spooler process (after its post-fork hook)."""
        slot = self._by_id[proc.id]
        slot.proc = proc
        slot.tasks = 0
        slot.running = False
        slot.wakeup = 0
        proc.tasks = 0
        self._spooler_init()
        while True:
            if proc.cwd != slot.dir:  # chdir(dir) before each scan
                proc.cwd = slot.dir
                self.kernel.apply_cwd(slot.dir)
            self._scan(slot, slot.dir)
            self._idle(slot)

    def _spooler_init(self) -> None:
        """``uwsgi_python_spooler_init``: the ``--spooler-import`` modules, in this process."""
        inst = self.inst
        for spec in self.imports:
            inst.call_python(self._import_one, spec)
            inst.app._track_new_modules()

    def _import_one(self, spec: str) -> None:
        from ..server.apps import pythonize

        if "/" in spec or spec.endswith(".py"):
            self.inst.app._import_file(spec, pythonize(spec))
            return
        if spec in self._imported:
            sys.modules.pop(spec, None)  # imported by an earlier spooler, not the master
        elif spec in sys.modules:
            return  # inherited from the master
        importlib.import_module(spec)
        self._imported.add(spec)

    def _idle(self, slot: _Slot) -> None:
        """Wait for the next scan: frequency, a wake-up, or one signal for the spooler."""
        kernel = self.kernel
        timeout: float = self.shared_frequency or self.frequency
        if slot.wakeup > 0:
            timeout = 0
        queue = self._signal_queue()
        if queue:
            self._handle_signal(slot, queue.popleft())
        elif timeout != 0 or slot.wakeup == 0:
            if timeout == 0:
                timeout = _SPIN_DELAY
            slot.waiting = True
            if timeout > 0:
                slot.timer = kernel.schedule(timeout, self._timeout, slot)
            why = kernel.park("spooler idle")
            slot.woken = False
            if why == "signal" and queue:
                self._handle_signal(slot, queue.popleft())
        if slot.wakeup > 0:
            slot.wakeup -= 1

    def _timeout(self, slot: _Slot) -> None:
        slot.timer = None
        if slot.waiting and slot.proc is not None and slot.proc.alive:
            slot.waiting = False
            self.kernel.resume(slot.proc, "timeout")

    def _interrupt(self, slot: _Slot, why: str) -> None:
        """Resume a spooler parked in its idle wait (exactly once)."""
        if not slot.waiting or slot.proc is None:
            return
        slot.waiting = False
        slot.woken = True
        if slot.timer is not None:
            slot.timer.cancel()
            slot.timer = None
        self.kernel.wake(slot.proc, why)

    def _signal_queue(self) -> Any:
        signals = self.inst.subsystems.get("signals")
        return signals.shared_spoolers if signals is not None else None

    def wake_for_signal(self) -> None:
        """A signal was written to the spooler pipe: every idle spooler polls it."""
        idle = [s for s in self.slots if s.waiting and s.proc is not None and s.proc.alive]
        if not idle:
            return
        from ..server.workers import choose

        first = choose(self.inst, [s.proc for s in idle], "spooler signal")
        ordered = [s for s in idle if s.proc is first] + [s for s in idle if s.proc is not first]
        for slot in ordered:
            self._interrupt(slot, "signal")

    def _handle_signal(self, slot: _Slot, num: int) -> None:
        signals = self.inst.subsystems["signals"]
        self._arm_harakiri(slot)
        signals.run_handler(slot.proc, num)
        self._disarm_harakiri(slot)

    # -- scanning ------------------------------------------------------------------------
    def _scan(self, slot: _Slot, directory: str) -> None:
        try:
            names = os.listdir(directory)
        except OSError as exc:
            if directory == slot.dir:
                self.inst.log(f"chdir(): {exc.strerror} [core/spooler.c line 438]")
                raise ProcessExit("exit(1)", 1) from None
            self.inst.log(f"scandir(): {exc.strerror} [core/spooler.c line 486]")
            return
        if self.ordered:
            names = versionsort([n for n in names if n.startswith(SPOOL_FILE_PREFIX)
                                    or (n.isascii() and n.isdigit())])
        else:
            names = self._readdir_order([n for n in names if n.startswith(SPOOL_FILE_PREFIX)])
        self._record_scan(slot, directory, names)
        self._manage_all(slot, directory, names)

    def _manage_all(self, slot: _Slot, directory: str, names: list[str]) -> None:
        """The entries of one scan, in order."""
        for name in names:
            self._manage(slot, directory, name)

    def _readdir_order(self, names: list[str]) -> list[str]:
        return readdir_order(names, self._readdir_seed)

    def _record_scan(self, slot: _Slot, directory: str, names: list[str]) -> None:
        if len(names) <= _ORDER_LIMIT:
            order: Any = list(names)
        else:
            order = hashlib.sha256("\n".join(names).encode("utf-8", "surrogateescape")).hexdigest()
        self.inst.record("spool.scan", slot.proc, dir=directory, entries=len(names),
                         order=order)

    def _manage(self, slot: _Slot, directory: str, name: str) -> None:
        """``spooler_manage_task`` for one directory entry."""
        path = f"{directory}/{name}"
        try:
            st = os.lstat(path)
        except OSError:
            return
        if int(st.st_mtime) > int(self._clock.time()):
            return  # a task for the future (``at``)
        if self.ordered and stat.S_ISDIR(st.st_mode):
            self._scan(slot, os.path.realpath(path))
            return
        if not stat.S_ISREG(st.st_mode):
            return
        try:
            # access(R_OK|W_OK) then open(O_RDWR): one call gives both answers here
            fd = os.open(path, os.O_RDWR)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.EACCES, errno.EPERM, errno.EROFS):
                self.inst.log(f'open("{name}"): {exc.strerror} [core/spooler.c line 623]')
            return
        if path in self._busy or not _try_lock(fd):
            os.close(fd)
            return
        if _body_too_big(fd, st.st_size):
            # uwsgi_spooler_read_content reads the body with one read(), which Linux
            # stops at 0x7ffff000 bytes: a body over 2 GB is a read error, and the
            # task file is destroyed
            os.close(fd)
            self.inst.log("spooler_manage_task()/read(): Success [core/spooler.c line 564]")
            self._destroy(slot, directory, path, "body over 2 GB")
            return
        try:
            pairs, body, valid = decode_spool_task(_read_all(fd, st.st_size))
        except SpoolFileError as exc:
            os.close(fd)
            if exc.disposition == "delete":  # vars block shorter than announced
                self.inst.log("spooler_manage_task()/read(): Success [core/spooler.c line 554]")
                self._destroy(slot, directory, path, "truncated")
            return  # "skip": fewer than 4 bytes, the writer may still be busy
        self._run_task(slot, directory, name, path, fd, pairs, body, valid)

    def _run_task(self, slot: _Slot, directory: str, name: str, path: str, fd: int,
                  pairs: Pairs, body: bytes, valid: bool) -> None:
        inst = self.inst
        proc = slot.proc
        slot.running = True
        slot.current = (fd, path)
        self._busy[path] = slot
        if not self.quiet:
            inst.log(f"[spooler {slot.dir} pid: {proc.pid}] managing request {name} ...")
        trace = inst.trace
        trace.add(self.kernel.now, proc.name, "spool.start", {"path": path})
        started = 0 if self.quiet else int(self._clock.time())  # for the log line only
        if self.harakiri > 0:
            self._arm_harakiri(slot)
        ret = self._python_spooler(name, pairs, body, valid)
        if slot.harakiri_timer is not None:
            self._disarm_harakiri(slot)
        trace.add(self.kernel.now, proc.name, "spool.end", {"path": path, "rc": ret})
        if ret != 0:
            slot.tasks += 1
            proc.tasks = slot.tasks
        if ret == SPOOL_OK:
            if not self.quiet:
                inst.log(f"[spooler {slot.dir} pid: {proc.pid}] done with task {name} after "
                         f"{int(inst.wall()) - started} seconds")
            try:
                self._destroy(slot, directory, path, "done")
            except ProcessExit:
                self._finish(slot, fd, path)
                raise
        else:
            inst.record("spool.retry", proc, path=path, rc=ret)
        self._finish(slot, fd, path)
        if self.max_tasks > 0 and slot.tasks >= self.max_tasks:
            inst.log(f"[spooler {slot.dir} pid: {proc.pid}] maximum number of tasks reached "
                     f"({self.max_tasks}) recycling ...")
            raise ProcessExit("max-tasks")
        if ret == 0:
            inst.log("unable to find the spooler function, have you loaded it into the "
                     "spooler process ?")

    def _finish(self, slot: _Slot, fd: int, path: str) -> None:
        """Close the task file (dropping the lock): the task is no longer running."""
        os.close(fd)
        slot.current = None
        self._busy.pop(path, None)
        slot.running = False

    def _destroy(self, slot: _Slot, directory: str, path: str, reason: str) -> None:
        """``destroy_spool``: unlink, or kill the spooler if that fails."""
        try:
            if self.inst.faults is not None:
                self.inst.faults.disk_error("unlink", path)
            os.unlink(path)
        except OSError as exc:
            self.inst.log(f"unlink(): {exc.strerror} [core/spooler.c line 164]")
            self.inst.log("[spooler] something horrible happened to the spooler. Better to "
                          "kill it.")
            raise ProcessExit("exit(1)", 1) from None
        if directory != slot.dir:
            _touch(directory, self.inst.wall())
        self.inst.record("spool.remove", slot.proc, path=path, reason=reason)

    def _python_spooler(self, name: str, pairs: Pairs, body: bytes, valid: bool) -> int:
        """``uwsgi_python_spooler``: 0 = not mine, -2 = done, anything else = keep."""
        func = getattr(self.inst.facade, "spooler", _MISSING)  # this process's (facade.HOOKS)
        if func is _MISSING:
            return 0
        if not valid:
            return SPOOL_OK
        arg: dict[Any, bytes] = {"spooler_task_name": name.encode("utf-8", "surrogateescape")}
        arg.update(pairs)
        if body:
            arg["body"] = body
        proc = self.kernel.current
        if self.chdir and proc is not None:
            proc.cwd = self.chdir  # --spooler-chdir, for the task
            self.kernel.apply_cwd(self.chdir)
        ok, result = self.inst.call_python(func, arg)
        if not ok or not isinstance(result, int):
            return -1
        if not -(1 << 63) <= result < (1 << 63):
            return -1  # PyLong_AsLong overflow
        return ((result & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000

    # -- harakiri ------------------------------------------------------------------------
    def _arm_harakiri(self, slot: _Slot) -> None:
        if self.harakiri <= 0 or slot.proc is None:
            return
        wall = self.inst.wall()
        deadline = int(wall) + self.harakiri
        slot.harakiri_timer = self.kernel.schedule(deadline + 1 - wall, self._harakiri,
                                                   slot, slot.proc)

    def _disarm_harakiri(self, slot: _Slot) -> None:
        if slot.harakiri_timer is not None:
            slot.harakiri_timer.cancel()
            slot.harakiri_timer = None

    def _harakiri(self, slot: _Slot, proc: Spooler) -> None:
        slot.harakiri_timer = None
        if not proc.alive:
            return
        inst = self.inst
        inst.log(f"*** HARAKIRI ON THE SPOOLER (pid: {proc.pid}) ***", inst.master)
        inst.record("harakiri", proc, pid=proc.pid)
        inst.kill(proc, "harakiri")

    # -- deaths and shutdown -------------------------------------------------------------
    def process_died(self, proc: Any) -> None:
        if not isinstance(proc, Spooler):
            return
        slot = self._by_id.get(proc.id)
        if slot is None or slot.proc is not proc:
            return
        self._release(slot, proc.killed_by or "exit")
        slot.proc = None

    def _release(self, slot: _Slot, reason: str) -> None:
        if slot.current is not None:
            fd, path = slot.current
            self.inst.record("spool.abort", slot.proc, path=path, reason=reason)
            _close_quiet(fd)
            self._busy.pop(path, None)
            slot.current = None
        slot.running = False
        slot.waiting = False
        slot.woken = False
        slot.wakeup = 0
        if slot.timer is not None:
            slot.timer.cancel()
            slot.timer = None
        self._disarm_harakiri(slot)

    def close(self) -> None:
        for slot in self.slots:
            self._release(slot, "stopped")

    # -- queries for tests ---------------------------------------------------------------
    def pending(self) -> list[str]:
        """Spool files still on disk (priority sub-directories included), sorted."""
        out: list[str] = []
        for directory in self.directories:
            for root, dirs, files in os.walk(directory):
                dirs[:] = sorted(d for d in dirs if d.isascii() and d.isdigit())
                out.extend(f"{root}/{f}" for f in files if f.startswith(SPOOL_FILE_PREFIX))
        return sorted(out)

    def tasks_run(self) -> list[TaskRun]:
        """Every task execution so far (across respawns and reloads), in start order."""
        runs: list[TaskRun] = []
        open_runs: dict[str, int] = {}
        for rec in self.inst.trace.select("spool.*"):
            kind = rec.kind
            if kind == "spool.start":
                open_runs[rec.process] = len(runs)
                path = rec["path"]
                runs.append(TaskRun(path, path.rsplit("/", 1)[-1], rec.process, rec.time,
                                    None, None, "running"))
            elif kind in ("spool.end", "spool.abort"):
                index = open_runs.pop(rec.process, None)
                if index is None:
                    continue
                run = runs[index]
                if kind == "spool.end":
                    outcome = "done" if rec["rc"] == SPOOL_OK else "kept"
                    runs[index] = TaskRun(run.path, run.task, run.process, run.started,
                                          rec.time, rec["rc"], outcome)
                else:
                    runs[index] = TaskRun(run.path, run.task, run.process, run.started,
                                          rec.time, None, "aborted")
        return runs

    # -- the uwsgi module ----------------------------------------------------------------
    def facade_functions(self) -> dict[str, Any]:
        p_freq = parser("i")
        p_get_task = parser("s:spooler_get_task")

        def spool(*args: Any, **kw: Any) -> bytes:
            if args:  # the dict argument wins: whether a ** dict came does not matter
                return self._py_spool(args, None)
            passed = kw or kwargs_dict_passed(sys._getframe(1))
            return self._py_spool(args, kw if passed else None)

        def set_spooler_frequency(*args: Any, **kw: Any) -> bool:
            no_kwargs("set_spooler_frequency", kw)
            (self.shared_frequency,) = p_freq(args)
            return True

        def spooler_jobs(*_args: Any, **kw: Any) -> list[bytes]:
            no_kwargs("spooler_jobs", kw)
            return self._jobs()

        def spooler_pid(*_args: Any, **kw: Any) -> int:
            no_kwargs("spooler_pid", kw)
            return self._pid_of(self.slots[0])

        def spooler_pids(*_args: Any, **kw: Any) -> list[int]:
            no_kwargs("spooler_pids", kw)
            return [self._pid_of(s) for s in self.slots]

        def spooler_get_task(*args: Any, **kw: Any) -> dict[Any, bytes] | None:
            no_kwargs("spooler_get_task", kw)
            (path,) = p_get_task(args)
            return self._get_task(path)

        if _c is not None:  # the common call in C (see _cspooler.c)
            spool = _c.spooler(self._c_state(spool))
        return {
            "spool": spool, "send_to_spooler": spool,
            "set_spooler_frequency": set_spooler_frequency, "spooler_jobs": spooler_jobs,
            "spooler_pid": spooler_pid, "spooler_pids": spooler_pids,
            "spooler_get_task": spooler_get_task,
            "spoolers": tuple(os.fsencode(s.dir) for s in self.slots),
        }

    def _py_spool(self, args: tuple[Any, ...], kw: dict[str, Any] | None) -> bytes:
        """``py_uwsgi_send_spool``: the dict argument, else the keyword dict, even empty
        (``kw`` None: no ``**`` dict was passed, ``uwsgi.spool()``)."""
        if args:
            task = args[0]
            if not isinstance(task, dict):
                raise ValueError("The argument of spooler callable must be a dictionary")
        elif kw is not None:
            task = kw
        else:
            raise ValueError("The argument of spooler callable must be a dictionary")
        body = b""
        pybody = dict.get(task, b"body", _MISSING)
        if isinstance(pybody, bytes):
            body = _raw(pybody)
            dict.__delitem__(task, b"body")
        items: list[tuple[bytes, bytes]] = []
        for key, value in list(dict.items(task)):
            if type(key) is not bytes:
                if not isinstance(key, bytes):
                    raise ValueError(_PY3_BYTES_ERROR)
                key = _raw(key)
            if type(value) is not bytes:
                value = _raw(value) if isinstance(value, bytes) else _object_bytes(value)
                if value is None:
                    raise ValueError(_PY3_BYTES_ERROR)
            items.append((key, value))
        path = self.spool_request(encode_spool_vars(items, truncate=True), body)
        if path is None:
            raise ValueError("unable to spool job")
        return path.encode("utf-8", "surrogateescape")  # os.fsencode

    def _jobs(self) -> list[bytes]:
        """``spooler_jobs()``: the first spooler's top-level task files, readdir order."""
        directory = self.slots[0].dir
        try:
            names = os.listdir(directory)
        except OSError:
            return []
        out = []
        for name in self._readdir_order([n for n in names if n.startswith(SPOOL_FILE_PREFIX)]):
            path = f"{directory}/{name}"
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) and os.access(path, _RW):
                out.append(os.fsencode(path))
        return out

    def _get_task(self, given: str) -> dict[Any, bytes] | None:
        """``spooler_get_task(path)``: parse a file as the spooler would, or None."""
        path = given
        if not os.path.isabs(path):
            proc = self.kernel.current
            base = (self._by_id[proc.id].dir if isinstance(proc, Spooler)
                    else str(self.inst.app.base_dir))
            path = os.path.join(base, path)
        try:
            os.lstat(path)
            if not os.access(path, _RW):
                return None
            fd = os.open(path, os.O_RDWR)
        except OSError:
            return None
        try:
            if path in self._busy or not _try_lock(fd):
                return None
            decoded = decode_spool_file(_read_all(fd, os.fstat(fd).st_size))
        except SpoolFileError:
            return None
        finally:
            os.close(fd)
        if not decoded.valid:
            return None
        out: dict[Any, bytes] = {"spooler_task_name": given.encode()}
        out.update(decoded.vars)
        if decoded.body:
            out["body"] = decoded.body
        return out


# -- helpers --------------------------------------------------------------------------------
def _reserved_vars(block: bytes) -> tuple[bytes, bytes, int]:
    """``spooler_req_parser_hook``: the ``spooler``, ``priority`` and ``at`` vars (from
    the pairs the dict parser delivers before any error; the last occurrence wins)."""
    if b"\x02\x00at" not in block and b"spooler" not in block and b"priority" not in block:
        return b"", b"", 0  # none of them can be there: skip the parse
    target, priority, at = spool_options(decode_dict_prefix(block)[0])
    return target or b"", priority or b"", at


def _readdir_order(names: list[str], seed: int) -> list[str]:
    """The order a scan sees ``names`` in: a keyed hash order (see the module docstring)."""
    crc = zlib.crc32
    return sorted(names, key=lambda n: (crc(n.encode("utf-8", "surrogateescape"), seed), n))


readdir_order = _c.readdir_order if _c is not None else _readdir_order


def _raw(value: bytes) -> bytes:
    """The bytes content of a ``bytes`` (subclass) object, as ``PyBytes_AsString``."""
    return value if type(value) is bytes else bytes(memoryview(value))


def _object_bytes(value: Any) -> bytes | None:
    """``PyObject_Bytes`` (Python 3), or None where it raises."""
    try:
        method = getattr(type(value), "__bytes__", None)
        if method is not None:
            result = method(value)
            return _raw(result) if isinstance(result, bytes) else None
        if isinstance(value, str):
            return None
        try:
            return memoryview(value).tobytes()
        except TypeError:
            pass
        if hasattr(type(value), "__index__") and not hasattr(type(value), "__iter__"):
            return None
        return bytes(iter(value))
    except Exception:  # noqa: BLE001 - any failure is uWSGI's ValueError
        return None


def _try_lock(fd: int) -> bool:
    """``uwsgi_fcntl_is_locked``: a non-blocking whole-file write lock (True = taken)."""
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


#: the most one read() or write() moves on Linux (``MAX_RW_COUNT``)
MAX_RW_COUNT = 0x7FFFF000


def _body_too_big(fd: int, size: int) -> bool:
    """Whether the task file's body (after the header and its vars) is more than one
    read() returns; only the 4-byte header is read to tell."""
    if size - 4 <= MAX_RW_COUNT:
        return False
    head = os.pread(fd, 4, 0)
    return len(head) == 4 and size - 4 - int.from_bytes(head[1:3], "little") > MAX_RW_COUNT


def _read_all(fd: int, size: int) -> bytes:
    """The file's content (``size`` from a stat: normally one ``read``)."""
    first = os.read(fd, max(size, 4096))
    if len(first) >= size or not first:
        return first
    chunks = [first]
    size -= len(first)
    while True:
        chunk = os.read(fd, max(size, 4096))
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
        if size <= 0:
            break
    return b"".join(chunks)


def _touch(path: str, when: float) -> None:
    """A directory's mtime follows the virtual clock when an entry is added or removed."""
    try:
        os.utime(path, (when, when))
    except OSError:
        pass


def _unlink_quiet(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _close_quiet(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass
