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
* ``--chdir`` to a missing directory: ``chdir() to DIR`` then ``chdir(): <strerror>
  [core/uwsgi.c line 2618]``, exit 1.

(A negative value of an integer option is refused while the options are read:
``config``.) Each refusal is logged and raised as ``StartRefusedError`` (``status`` is
uWSGI's exit status).
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from ._errors import StartRefusedError

if TYPE_CHECKING:
    from .master import Instance

__all__ = ["check_start"]


def check_start(inst: Instance) -> None:
    """Log and refuse as ``uwsgi_start`` would; returns when uWSGI would go on."""
    opts = inst.opts
    for name, value in opts.items:
        if name in ("print", "iprint"):  # uwsgi_opt_print writes the value on stdout
            inst.log("" if value is True else str(value))
    for name, value in opts.items:
        if name in ("plugins", "plugin", "need-plugins", "need-plugin") and isinstance(value, str):
            _load_plugins(inst, name, value)
    if os.getuid() == 0:
        _check_identity(inst, "gid", "group", grp.getgrnam)
        _check_identity(inst, "uid", "user", pwd.getpwnam)
    chdir = opts.str("chdir")
    if chdir is not None:
        inst.log(f"chdir() to {chdir}")
        error = _chdir_error(opts.path(chdir))
        if error is not None:
            _refuse(inst, f"chdir(): {error} [core/uwsgi.c line 2618]")


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
