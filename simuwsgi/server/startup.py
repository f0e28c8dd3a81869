"""The checks with which uWSGI 2.0.30 refuses a configuration as it starts.

What it models, in the order ``uwsgi_setup``/``uwsgi_start`` make them:

* ``--print``/``--iprint`` values are written out (to the log here: real uWSGI writes
  them on stdout, before its log lines);

* ``--plugins``/``--plugin``: pyuwsgi has no plugin to load (its ``--plugins-list`` is
  empty, even ``python`` is built in under no name), so every entry logs the two lines
  of a failed ``dlopen`` and uWSGI goes on; ``--need-plugin``/``--need-plugins`` add
  ``unable to load plugin "NAME"`` and exit 1 (``core/plugins.c``,
  ``uwsgi_opt_load_plugin``). ``--plugins-dir`` is not simulated.
* ``--gid``/``--uid`` given as names (``uwsgi_as_root``, only when running as root):
  an unknown group, then an unknown user, exits 1 with ``group NAME not found.`` /
  ``user NAME not found.``;
* ``--cheaper-rss-limit-soft`` without ``--memory-report`` (or a ``--reload-on-*``
  limit), ``--cheaper-rss-limit-hard`` without the soft one or not above it: uWSGI's
  line and exit 1;
* ``--max-worker-lifetime`` not above ``--min-worker-lifetime`` (10 by default):
  ``invalid min-worker-lifetime value (10), must be lower than max-worker-lifetime (N)``,
  exit 1;
* ``--chdir`` to a missing directory: ``chdir() to DIR`` then ``chdir(): <strerror>
  [core/uwsgi.c line 2618]``, exit 1 (``--chdir2`` is done by each worker as it starts:
  the same lines with ``line 3503``, and the worker exits 1 and is respawned);
* ``--exception-handler``, after the banner's lock lines (``check_after_banner``):
  pyuwsgi has no exception handler (the only one, ``log``, is a plugin it is built
  without), so ``unable to find exception handler: NAME`` and exit 1
  (``core/exceptions.c`` ``uwsgi_exception_setup_handlers``; observed).

(A negative value of an integer option is refused while the options are read:
``config``.) Each refusal is logged and raised as ``StartRefusedError`` (``status`` is
uWSGI's exit status).
"""

from __future__ import annotations

import errno
import glob
import grp
import os
import pwd
import stat
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .._errors import StartRefusedError

if TYPE_CHECKING:
    from .master import Instance
    from .processes import UProcess, Worker

__all__ = ["ProcessEnvironment", "check_after_banner", "check_start", "chdir2", "show_config"]


def check_start(inst: Instance) -> None:
    """Log and refuse as ``uwsgi_start`` would; returns when uWSGI would go on."""
    opts = inst.opts
    behaviour = opts.str("wsgi-env-behaviour")
    if behaviour is not None and behaviour not in ("holy", "cheat"):
        raise StartRefusedError(f"invalid wsgi-env-behaviour value: {behaviour}")
    for line in opts.parse_log:
        inst.log(line)
    for name, value in opts.items:
        if name in ("print", "iprint"):  # uwsgi_opt_print writes the value on stdout
            inst.log("" if value is True else str(value))
    for name, value in opts.items:
        if name in ("plugins", "plugin", "need-plugins", "need-plugin") and isinstance(value, str):
            _load_plugins(inst, name, value)
    if opts.flag("show-config"):  # "uWSGI IS CONFIGURED", before the banner
        show_config(inst)
    if os.getuid() == 0:
        _check_identity(inst, "gid", "group", grp.getgrnam)
        _check_identity(inst, "uid", "user", pwd.getpwnam)
    if 0 < inst.max_worker_lifetime <= inst.min_worker_lifetime:  # core/init.c
        _refuse(inst, f"invalid min-worker-lifetime value ({inst.min_worker_lifetime}), must "
                      f"be lower than max-worker-lifetime ({inst.max_worker_lifetime})")
    soft, hard = opts.int("cheaper-rss-limit-soft", 0), opts.int("cheaper-rss-limit-hard", 0)
    if soft and not (inst.memory_report or inst.reload_on_rss or inst.reload_on_as
                     or inst.evil_reload_on_rss or inst.evil_reload_on_as):
        _refuse(inst, "enabling cheaper-rss-limit-soft requires enabling also memory-report")
    if hard and not soft:
        _refuse(inst, "enabling cheaper-rss-limit-hard requires setting also "
                      "cheaper-rss-limit-soft")
    if hard and hard <= soft:
        _refuse(inst, "cheaper-rss-limit-hard value must be higher than "
                      "cheaper-rss-limit-soft value")
    chdir = opts.str("chdir")
    if chdir is not None:
        inst.log(f"chdir() to {chdir}")
        error = _chdir_error(opts.path(chdir))
        if error is not None:
            _refuse(inst, f"chdir(): {error} [core/uwsgi.c line 2618]")


def show_config(inst: Instance, proc: UProcess | None = None) -> None:
    """``show_config()`` (``--show-config``, and the master's SIGUSR1 dump): every
    exported option (the ones files and ``--set`` made too, expanded) as an ``.ini``
    block. Its first and last ``uwsgi_log`` calls hold a blank line and two lines, so
    ``--log-date`` dates the blank line and the last option's line, not the lines after
    them (observed on 2.0.30)."""
    inst.log("", proc)
    inst.log_raw(";uWSGI instance configuration", proc)
    inst.log_raw("[uwsgi]", proc)
    for name, value in inst.opts.exports:
        inst.log(f"{name} = {'true' if value is True else value}", proc)
    inst.log(";end of configuration", proc)
    inst.log_raw("", proc)


def check_after_banner(inst: Instance) -> None:
    """The refusals ``uwsgi_start`` makes once the banner is out: an exception handler
    (the name before any ``:``) pyuwsgi does not have, which is any."""
    for value in inst.opts.strings("exception-handler"):
        _refuse(inst, f"unable to find exception handler: {value.split(':', 1)[0]}")


def chdir2(inst: Instance, worker: Worker) -> None:
    """``--chdir2``: each worker changes directory as it starts (after the app is
    loaded in the master); a missing directory makes the worker exit 1, and the master
    respawns it (``core/uwsgi.c`` ``uwsgi_start``, observed on 2.0.30)."""
    value = inst.opts.str("chdir2")
    if value is None:
        return
    inst.log(f"chdir() to {value}", worker)
    path = inst.opts.path(value)
    error = _chdir_error(path)
    if error is not None:
        inst.log(f"chdir(): {error} [core/uwsgi.c line 3503]", worker)
        from .interface import ProcessExit

        raise ProcessExit("exited", 1)
    worker.cwd = str(path)
    inst.kernel.apply_cwd(worker.cwd)


def _load_plugins(inst: Instance, option: str, value: str) -> None:
    for token in value.split(","):
        name = token.strip()
        if not name:
            continue
        name = name.partition(":")[2] if ":" in name else name  # "modifier:name"
        name = name.partition("|")[0]  # "name|init_function"
        if not name.endswith("_plugin.so"):
            name += "_plugin.so"
        path = name if "/" in name else f"./{name}"
        inst.log(f'open("{path}"): No such file or directory [core/utils.c line 3709]')
        inst.log(f"!!! UNABLE to load uWSGI plugin: {path}: cannot open shared object "
                 f"file: No such file or directory !!!")
        if option.startswith("need-"):
            _refuse(inst, f'unable to load plugin "{token}"')


def _check_identity(inst: Instance, option: str, what: str, lookup: object) -> None:
    value = inst.opts.str(option)
    # uwsgi_opt_set_uid: a number other than 0 is taken as is; anything else is a name
    if value is None or (value.isdigit() and int(value) != 0):
        return
    try:
        lookup(value)  # type: ignore[operator]
    except KeyError:
        _refuse(inst, f"{what} {value} not found.")


def _chdir_error(path: Path) -> str | None:
    """What ``chdir(path)`` would fail with (``strerror``), or None."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        return os.strerror(exc.errno or errno.ENOENT)
    if not stat.S_ISDIR(mode):
        return os.strerror(errno.ENOTDIR)
    if not os.access(path, os.X_OK):
        return os.strerror(errno.EACCES)
    return None


def _refuse(inst: Instance, line: str) -> None:
    inst.log(line)
    inst.record("instance.refused", None, reason=line)
    raise StartRefusedError(line)


class ProcessEnvironment:
    """``--env``/``--unenv`` and ``--pythonpath`` (``--python-path``, ``--pp``), applied
    to the test process while the simulation runs and undone when it closes.

    ``--env NAME=VALUE`` is ``putenv``: the compiled ``uwsgi`` binary's apps see it in
    ``os.environ``, and so do the simulated ones. (pyuwsgi differs: Python starts before
    uWSGI reads its options, so ``os.environ`` keeps the values it had; only child
    processes see the change.) ``--unenv NAME`` removes it. Each ``--pythonpath`` entry
    (a glob: every match, directories with a trailing ``/``; no match: the value as
    written) goes first in ``sys.path``, logged ``added X to pythonpath.``
    (``plugins/python/python_plugin.c``); relative ones are resolved against the app
    directory.
    """

    def __init__(self, inst: Instance) -> None:
        self.inst = inst
        self._saved_env: dict[str, str | None] = {}
        self._paths: list[str] = []
        self.applied = False

    def apply(self) -> None:
        if self.applied:  # a reload re-executes uWSGI with the same environment
            return
        self.applied = True
        opts = self.inst.opts
        for name, value in opts.items:
            if name == "env" and isinstance(value, str):
                key, eq, val = value.partition("=")
                self.set(key, val if eq else None)  # putenv("NAME") unsets it
            elif name == "unenv" and isinstance(value, str):
                self.set(value, None)
        for value in opts.strings("pythonpath", "python-path", "pp"):
            matches = sorted(glob.glob(value, root_dir=opts.base_dir))
            for entry in [m + "/" if opts.path(m).is_dir() else m for m in matches] or [value]:
                path = str(opts.path(entry)) + ("/" if entry.endswith("/") else "")
                sys.path.insert(0, path)
                self._paths.append(path)
                self.inst.log(f"added {entry} to pythonpath.")

    def set(self, key: str, value: str | None) -> None:
        """``putenv``/``unsetenv`` (None) in the test process, undone by :meth:`restore`
        (``--env``, and the ``putenv:`` hooks)."""
        self._saved_env.setdefault(key, os.environ.get(key))
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value

    def restore(self) -> None:
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env.clear()
        for path in self._paths:
            if path in sys.path:
                sys.path.remove(path)
        self._paths.clear()
        self.applied = False
