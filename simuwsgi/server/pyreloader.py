"""``--py-autoreload N``: the Python plugin's module reloader (2.0.30,
``plugins/python/python_plugin.c`` ``uwsgi_python_autoreloader_thread`` and
``uwsgi_check_python_mtime``).

Each worker starts a reloader thread in its post-fork, after ``uwsgi.post_fork_hook``
(worker 1's says ``Python auto-reloader enabled``). Every N seconds it looks at every
loaded module's file (its ``__file__``, a ``.pyc`` read as its ``.py``; modules named by
``--py-auto-reload-ignore`` left out): the first look remembers the file's modification
time in whole seconds, a later one that finds another time logs
``[uwsgi-python-reloader] module/file NAME has been modified``, sends SIGHUP to the
master (a graceful reload) and ends the thread. Each worker keeps its own times, so
every worker that sees the change says so (observed). Under ``--lazy-apps`` the thread
looks at nothing until the worker loaded its app.

The times are the files' on this machine, read at virtual instants: a test changes a
file (or its ``os.utime``) and advances the clock. Not looked at: the standard
library's modules and those of the simulator and the test runner, which do not change
while a test runs (a real worker has no simulator, and looking at the stdlib would cost
each look a few milliseconds); the thread is not listed by ``threading.enumerate()``.
"""

from __future__ import annotations

import os
import signal
import sys
import sysconfig
import weakref
from typing import TYPE_CHECKING

from .._core.isolation import kept_module

if TYPE_CHECKING:
    from .master import Instance
    from .processes import Worker

__all__ = ["start", "watched_files"]

#: Where the standard library lives (its modules are not looked at).
_STDLIB = tuple({os.path.join(sysconfig.get_paths()[key], "") for key in ("stdlib", "platstdlib")})


def start(inst: Instance, w: Worker) -> None:
    """The reloader thread of worker ``w``, started in its post-fork."""
    every = inst.opts.int("py-auto-reload", 0)
    if every <= 0:
        return
    if w.id == 1:
        inst.log("Python auto-reloader enabled", w)
    ignored = frozenset(inst.opts.strings("py-auto-reload-ignore"))
    times: dict[str, int] = {}

    def look() -> None:
        if not w.alive or inst.stopped:
            return
        if inst.lazy_apps and not w.apps:  # no app loaded yet: nothing to look at
            inst.kernel.at(inst.kernel.now + every, look)
            return
        files = (_files_now(inst, ignored) if inst.forks is None  # fork mode: the child's
                 else inst.forks.module_files(w, sorted(ignored)))
        for filename in files:
            mtime = _mtime(inst, filename)
            if mtime is None:
                continue
            known = times.setdefault(filename, mtime)
            if known != mtime:
                inst.log("[uwsgi-python-reloader] module/file "
                         f"{inst.shown_filename(filename)} has been modified", w)
                from .containment import deliver

                deliver(inst, inst.master, signal.SIGHUP)
                return  # the thread ends
        inst.kernel.at(inst.kernel.now + every, look)

    inst.kernel.at(inst.kernel.now + every, look)


class _Instant:
    """What the looks of one virtual instant share: the workers started together look at
    the same instants, and in one interpreter they see the same modules."""

    __slots__ = ("files", "now", "times")

    def __init__(self, now: float) -> None:
        self.now = now
        self.files: dict[frozenset[str], list[str]] = {}
        self.times: dict[str, int | None] = {}


_INSTANTS: weakref.WeakKeyDictionary[Instance, _Instant] = weakref.WeakKeyDictionary()


def _instant(inst: Instance) -> _Instant:
    now = inst.kernel.now
    instant = _INSTANTS.get(inst)
    if instant is None or instant.now != now:
        instant = _INSTANTS[inst] = _Instant(now)
    return instant


def _files_now(inst: Instance, ignored: frozenset[str]) -> list[str]:
    files = _instant(inst).files
    if ignored not in files:
        files[ignored] = watched_files(ignored)
    return files[ignored]


def _mtime(inst: Instance, filename: str) -> int | None:
    """The file's modification time in whole seconds (``stat``), None if it has none."""
    times = _instant(inst).times
    if filename not in times:
        try:
            times[filename] = int(os.stat(filename).st_mtime)
        except OSError:
            times[filename] = None
    return times[filename]


def watched_files(ignored: frozenset[str] | list[str]) -> list[str]:
    """The files the reloader looks at, for this process's modules."""
    ignored = frozenset(ignored)
    files = (_watched_file(name, module, ignored) for name, module in list(sys.modules.items()))
    return [filename for filename in files if filename is not None]


def _watched_file(name: str, module: object, ignored: frozenset[str]) -> str | None:
    """The file the reloader looks at for this module, None if none."""
    if name in ignored or module is None:
        return None
    filename = getattr(module, "__file__", None)
    if not isinstance(filename, str) or filename.startswith(_STDLIB) or kept_module(name):
        return None
    if filename.endswith((".pyc", ".pyd", ".pyo")):
        return filename[:-1]
    return filename
