"""uWSGI 2.0.30's hooks (``core/hooks.c``): the ``--hook-*`` options, ``action:args``.

Each phase's hooks run, in the order given, where uWSGI runs them, before the phase's
``--exec-*`` commands (``commands.py``):

* ``asap`` (before the banner), ``pre-jail`` (first start only) and ``in-jail`` (after
  the ``detected binary path`` line and the routing table), ``as root``/``as user``
  (``uwsgi_as_root``: only when uWSGI runs as root, i.e. on the simulated machine's
  ``root``; four times in a start, around the root warnings), ``pre app``/``post app``
  (around the app's loading: in the master, or in each worker under ``--lazy-apps``),
  ``master-start`` (as the master loop starts, after the fork), ``post-fork`` (each
  worker as it starts), ``accepting``, ``accepting-once`` (its first spawn only),
  ``accepting1``, ``accepting1-once`` (worker 1), ``touch`` (``--hook-touch "FILE
  action:args"``, the master's file check) and ``atexit`` (``--hook-as-user-atexit``: the
  master's exit, and before a binary reload). ``post-jail`` hooks run only in a jail
  (``--chroot``, namespaces...), which the simulator has not: they never run, as on a
  server with no jail.

uWSGI logs ``running "action:args" (PHASE)...`` (``running --- PRIVATE HOOK ---
(PHASE)...`` for ``!action:args``), then the action's own lines. A hook without ``:``
logs ``invalid hook syntax, must be hook:args`` and an unknown action ``hook action not
found: NAME``: both exit 1 at once. A failed action in any phase but ``touch`` and
``atexit`` is fatal (``FATAL hook failed, destroying instance``): before the workers
exist uWSGI exits 1; after, the rest of the phase's hooks are skipped and the instance
is stopped as by SIGINT (a worker sends it to the master; see ``docs/deviations.md``).

The actions act on the simulated process or instance: ``chdir``/``cd`` its working
directory, ``putenv`` the environment as ``--env`` does, ``print``/``log`` the log,
``exit:N`` ends the process (uWSGI reads N only when it has two characters or more),
``unix_signal:N FUNCTION`` sets the master's handler of signal N to one of uWSGI's
functions (:data:`FUNCTIONS`); ``mkdir``, ``create``/``creat``, ``write``, ``writen``,
``append``, ``appendn``, ``writefifo``, ``unlink``, ``chmod``, ``sticky``, ``chown``,
``chown2`` act on this machine's files as uWSGI would (relative paths from the
process's working directory), as pidfiles and ``--logto`` do; ``exec``/``safeexec``
follow ``--exec-*``'s policy (run on this machine only with ``cron_commands=True``).
``call``, ``callret``, ``callint``, ``callintret`` of a name that is not one of
:data:`FUNCTIONS` fail as uWSGI's ``dlsym`` does (``unable to call function ...``); of
one of them, they are not simulated (a warning line, taken as successful), nor are
the actions of :data:`NOT_SIMULATED`.
"""

from __future__ import annotations

import errno
import os
import grp
import pwd
import signal as _signal
import stat
from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn, cast

from .._errors import NotSimulatedError, StartRefusedError
from .interface import ProcessExit

if TYPE_CHECKING:
    from . import interface
    from .master import Instance
    from .processes import UProcess

__all__ = ["FUNCTIONS", "NOT_SIMULATED", "PHASES", "PHASE_OPTIONS", "run_hooks",
           "touch_hooks"]

#: the phase word uWSGI logs -> its hooks' option and its commands' (``--exec-*``)
PHASE_OPTIONS: dict[str, tuple[str, str | None]] = {
    "asap": ("hook-asap", "exec-asap"),
    "pre-jail": ("hook-pre-jail", "exec-pre-jail"),
    "post-jail": ("hook-post-jail", "exec-post-jail"),  # (in a jail only: never here)
    "in-jail": ("hook-in-jail", "exec-in-jail"),
    "as root": ("hook-as-root", "exec-as-root"),
    "as user": ("hook-as-user", "exec-as-user"),
    "atexit": ("hook-as-user-atexit", "exec-as-user-atexit"),
    "pre app": ("hook-pre-app", "exec-pre-app"),
    "post app": ("hook-post-app", "exec-post-app"),
    "post-fork": ("hook-post-fork", None),
    "accepting": ("hook-accepting", None),
    "accepting-once": ("hook-accepting-once", None),
    "accepting1": ("hook-accepting1", None),
    "accepting1-once": ("hook-accepting1-once", None),
    "master-start": ("hook-master-start", None),
    "touch": ("hook-touch", None),
}
#: a hooks' option -> its phase word
PHASES = {hook: phase for phase, (hook, _exec) in PHASE_OPTIONS.items()}

#: uWSGI's functions a ``unix_signal`` hook can install in the master, and what the
#: master then does with the signal (``containment.SIGNAL_TABLE``'s actions)
FUNCTIONS = {
    "kill_them_all": "stop",
    "gracefully_kill_them_all": "graceful-stop",
    "grace_them_all": "reload",
    "reap_them_all": "brutal",
    "stats": "stats",
}

#: Actions of 2.0.30 the simulator does not perform (each logs a warning as it runs
#: and is taken as successful).
NOT_SIMULATED = frozenset({"mount", "umount", "hostname", "alarm", "rpc", "retryrpc",
                           "wait_for_fs", "wait_for_file", "wait_for_dir",
                           "wait_for_socket", "spinningfifo"})

#: The signals whose handlers the master sets as its loop starts (``master.c``): a
#: ``unix_signal`` hook for one of them before ``master-start`` is overridden.
_MASTER_SIGNALS = frozenset({_signal.SIGTSTP, _signal.SIGHUP, _signal.SIGTERM,
                             _signal.SIGQUIT, _signal.SIGINT, _signal.SIGUSR1})

#: The phases that run before ``uwsgi_setup_workers``: a fatal failure there exits 1.
_EARLY = frozenset({"asap", "pre-jail", "in-jail", "post-jail"})


class _Context:
    """What one hook runs with: the instance, the process (None: the master before it
    exists as a process), the phase."""

    def __init__(self, inst: Instance, proc: UProcess | None, phase: str) -> None:
        self.inst = inst
        self.proc = proc
        self.phase = phase

    def log(self, line: str) -> None:
        self.inst.log(line, self.proc)

    def path(self, name: str) -> str:
        """``name`` as the process's ``open()`` sees it (from its working directory)."""
        if os.path.isabs(name):
            return name
        return os.path.join(_cwd(self.inst, self.proc), name)

    def error(self, what: str, exc: OSError, line: int) -> int:
        """``uwsgi_error(what)``: the line with ``strerror(errno)``; -1."""
        self.log(f"{what}: {os.strerror(exc.errno or 0)} [core/hooks.c line {line}]")
        return -1

    def error_open(self, name: str, exc: OSError, line: int) -> int:
        self.log(f'open("{name}"): {os.strerror(exc.errno or 0)} [core/hooks.c line {line}]')
        return -1


def _cwd(inst: Instance, proc: UProcess | None) -> str:
    cwd = proc.cwd if proc is not None else inst.hook_cwd
    return cwd or str(inst.opts.base_dir)


def run_hooks(inst: Instance, option: str, proc: UProcess | None, *,
              phase: str | None = None, values: list[str] | None = None,
              fatal: bool = True, early: bool | None = None) -> bool:
    """``uwsgi_hooks_run``: ``option``'s hooks (or ``values``) in ``proc`` (None: the
    master before it is a process). ``early``: before the workers exist (a fatal
    failure exits 1), by default for the phases before the master is a process.
    Returns False when a fatal failure stopped them after the workers exist (the
    instance is being destroyed)."""
    phase = phase or PHASES[option]
    if early is None:
        early = phase in _EARLY or proc is None
    entries = inst.opts.strings(option) if values is None else values
    for entry in entries:
        action, colon, arg = entry.partition(":")
        if not colon:
            _exit_now(inst, proc, "invalid hook syntax, must be hook:args")
        private = action.startswith("!")
        if private:
            action = action[1:]
        func = _ACTIONS.get(action)
        if func is None and action not in NOT_SIMULATED:
            _exit_now(inst, proc, f"hook action not found: {action}")
        inst.log(f"running --- PRIVATE HOOK --- ({phase})..." if private
                 else f'running "{entry}" ({phase})...', proc)
        inst.record("hook", proc, phase=phase, action=action, arg="" if private else arg)
        ctx = _Context(inst, proc, phase)
        if func is None:
            ctx.log(f'[simuwsgi] hook action "{action}" is not simulated: taken as '
                    "successful")
            continue
        if func(ctx, arg) != 0 and fatal:
            return _fatal(inst, proc, phase, early)
    return True


def touch_hooks(inst: interface.Instance, actions: list[str]) -> None:
    """``--hook-touch``: the touched file's actions, in the master, not fatal (called by
    the file monitor, which sees the instance through its interface)."""
    full = cast("Instance", inst)
    run_hooks(full, "hook-touch", full.master, phase="touch", values=actions, fatal=False)


def _exit_now(inst: Instance, proc: UProcess | None, line: str, code: int = 1) -> NoReturn:
    inst.log(line, proc)
    _exit(inst, proc, code, line)


def _exit(inst: Instance, proc: UProcess | None, code: int, why: str) -> NoReturn:
    """``exit(code)`` in the process that runs the hook."""
    if proc is None or (proc is inst.master and not inst.ready):
        inst.record("instance.refused", None, reason=why)
        raise StartRefusedError(why, status=code)
    if proc is inst.master:
        raise NotSimulatedError(
            f"{why}: the master's exit while its workers run is not simulated (uWSGI's "
            "workers would live on as orphans)")
    raise ProcessExit("exited", code)


def _fatal(inst: Instance, proc: UProcess | None, phase: str, early: bool) -> bool:
    """A fatal hook failed: exit 1 before the workers exist; after, ``kill_them_all``
    in the master, SIGINT to the master from a worker (the caller goes on)."""
    line = "FATAL hook failed, destroying instance"
    inst.log_verbose(line, proc)
    if early or proc is None or not inst.has_master:
        _exit(inst, proc, 1, line)
    inst.record("hook.fatal", proc, phase=phase)
    if proc is inst.master:  # kill_them_all(0), then the start goes on
        inst.kernel.call_soon(inst.shutdown)
    else:  # kill(masterpid, SIGINT)
        from . import containment

        if containment.forward_kill is not None:  # a fork-mode child
            containment.forward_kill(inst.master.pid, _signal.SIGINT)
        else:
            containment.deliver(inst, inst.master, _signal.SIGINT)
    return False


# -- the actions: each returns uWSGI's status (0: success) --------------------------------
def _print(ctx: _Context, arg: str) -> int:
    ctx.log(arg)
    return 0


def _chdir(ctx: _Context, arg: str) -> int:
    path = ctx.path(arg)
    try:
        if not os.path.isdir(path):  # chdir(2)'s errors, without leaving the test's cwd
            os.stat(path)
            raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        if not os.access(path, os.X_OK):
            raise OSError(errno.EACCES, os.strerror(errno.EACCES))
    except OSError as exc:
        return ctx.error("uwsgi_hook_chdir()", exc, 65)
    path = os.path.normpath(path)
    inst, proc = ctx.inst, ctx.proc
    if proc is None:
        inst.hook_cwd = path  # the master inherits it (``Instance._new_master``)
    else:
        proc.cwd = path
        inst.kernel.apply_cwd(path)  # (the hook runs in the process)
    return 0


def _mkdir(ctx: _Context, arg: str) -> int:
    try:
        os.mkdir(ctx.path(arg), 0o777)
    except OSError as exc:
        return ctx.error("uwsgi_hook_mkdir()", exc, 73)
    return 0


def _putenv(ctx: _Context, arg: str) -> int:
    name, eq, value = arg.partition("=")
    inst, proc = ctx.inst, ctx.proc
    inst.app.environment.set(name, value if eq else None)  # glibc: "NAME" unsets
    child = inst.forks.children.get(proc) if inst.forks is not None else None
    if child is not None:  # a fork-mode process already forked: its own environ too
        child.call("putenv", (name, value if eq else None))
    return 0


def _exec(ctx: _Context, arg: str, *, safe: bool = False) -> int:
    from .commands import run_host_command

    inst = ctx.inst
    inst.record("exec", ctx.proc, phase=ctx.phase, command=arg)
    if not getattr(inst, "cron_commands", False):
        return 0
    status = run_host_command(inst, arg, ctx.proc)
    if status:
        ctx.log(f'command "{arg}" exited with non-zero code: {status}')
    return 0 if safe else (status if status is not None else -1)


def _exit_action(ctx: _Context, arg: str) -> int:
    code = _atoi(arg) if len(arg) > 1 else 0  # (uWSGI's test: one digit is exit(0))
    _exit(ctx.inst, ctx.proc, code & 0xFF,
          f'the hook "exit:{arg}" ({ctx.phase}): uWSGI exits with status {code & 0xFF}')


def _unlink(ctx: _Context, arg: str) -> int:
    try:
        os.unlink(ctx.path(arg))
    except OSError as exc:
        return ctx.error("uwsgi_hook_unlink()/unlink()", exc, 120)
    return 0


def _file_and_text(ctx: _Context, arg: str, name: str) -> tuple[str, str] | None:
    target, space, text = arg.partition(" ")
    if not space:
        ctx.log(f"invalid hook {name} syntax, must be: <file> <string>")
        return None
    return target, text


def _writer(name: str, flags: int, newline: bool, open_line: int, write_line: int,
            ) -> Callable[[_Context, str], int]:
    def action(ctx: _Context, arg: str) -> int:
        if name == "appendn" and " " not in arg:
            target, text = arg, ""  # appendn:FILE appends a newline
        else:
            parsed = _file_and_text(ctx, arg, name)
            if parsed is None:
                return -1
            target, text = parsed
        data = (text + ("\n" if newline else "")).encode()
        try:
            fd = os.open(ctx.path(target), flags, 0o666)
        except OSError as exc:
            if name == "writefifo" and exc.errno in (errno.ENODEV, errno.ENXIO):
                ctx.error_open(target, exc, open_line)
                return 0  # no reader: not an error
            return ctx.error_open(target, exc, open_line)
        try:
            os.write(fd, data)
        except OSError as exc:
            return ctx.error(f"uwsgi_hook_{name}()/write()", exc, write_line)
        finally:
            os.close(fd)
        return 0
    return action


def _create(ctx: _Context, arg: str) -> int:
    try:
        os.close(os.open(ctx.path(arg), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666))
    except OSError as exc:
        return ctx.error_open(arg, exc, 180)
    return 0


def _chmod(ctx: _Context, arg: str) -> int:
    target, space, mode_text = arg.partition(" ")
    if not space:
        ctx.log("invalid hook chmod syntax, must be: <file> <mode>")
        return -1
    if len(mode_text) < 3:  # uwsgi_mode_t
        ctx.log(f"invalid hook chmod mask: {mode_text}")
        return -1
    digits = mode_text if len(mode_text) == 3 else mode_text[1:4]
    mode = 0
    for ch in digits:
        mode = ((mode << 3) + (ord(ch) - 48)) & 0xFFFFFFFF
    try:
        os.chmod(ctx.path(target), mode & 0o7777)
    except OSError as exc:
        return ctx.error("uwsgi_hook_chmod()/chmod()", exc, 300)
    return 0


def _sticky(ctx: _Context, arg: str) -> int:
    path = ctx.path(arg)
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        return ctx.error("uwsgi_hook_sticky()/stat()", exc, 308)
    try:
        os.chmod(path, stat.S_IMODE(mode) | stat.S_ISVTX)
    except OSError as exc:
        return ctx.error("uwsgi_hook_sticky()/chmod()", exc, 312)
    return 0


def _chown(ctx: _Context, arg: str, *, numeric: bool = False) -> int:
    name = "chown2" if numeric else "chown"
    parts = arg.split(" ", 2)
    if len(parts) < 3:
        ctx.log(f"invalid hook {name} syntax, must be: <file> <uid> <gid>")
        return -1
    target, user, group = parts
    if numeric:
        for what, text in (("uid", user), ("gid", group)):
            if not text.isdigit():
                ctx.log(f"invalid hook chown2 syntax, {what} must be a number")
                return -1
        uid, gid = int(user), int(group)
    else:
        try:
            uid = pwd.getpwnam(user).pw_uid
        except KeyError:
            ctx.log(f"unable to find uid {user}")
            return -1
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            ctx.log(f"unable to find gid {group}")
            return -1
    try:
        os.chown(ctx.path(target), uid, gid)
    except OSError as exc:
        return ctx.error(f"uwsgi_hook_{name}()/chown)", exc, 393 if numeric else 354)
    return 0


def _call(kind: str) -> Callable[[_Context, str], int]:
    """``call``/``callret`` (a string argument) and ``callint``/``callintret``."""
    def action(ctx: _Context, arg: str) -> int:
        func, space, rest = arg.partition(" ")
        shown = func
        if space:
            shown = f"{func}({_atoi(rest)})" if kind.startswith("callint") else \
                f"{func}({rest})"
        if func not in FUNCTIONS:
            ctx.log(f'unable to call function "{shown}"')
            return -1
        ctx.log(f'[simuwsgi] hook "{kind}:{arg}": calling uWSGI\'s C function {func} is '
                "not simulated: taken as successful")
        return 0
    return action


def _unix_signal(ctx: _Context, arg: str) -> int:
    num_text, space, func = arg.partition(" ")
    if not space:
        ctx.log("invalid unix_signal syntax, must be <signum> <func>")
        return -1
    action = FUNCTIONS.get(func)
    if action is None:
        ctx.log(f'unable to find function "{func}"')
        return -1
    signum = _atoi(num_text)
    inst, proc = ctx.inst, ctx.proc
    if proc is not None and proc is not inst.master:
        ctx.log(f'[simuwsgi] hook "unix_signal:{arg}" in a {proc.kind} is not simulated: '
                "its handlers stay uWSGI's")
        return 0
    if ctx.phase not in ("master-start", "touch", "atexit") and signum in _MASTER_SIGNALS:
        return 0  # the master loop sets its own handler of it as it starts
    inst.master_signals[signum] = action
    return 0


def _atoi(text: str) -> int:
    """C's ``atoi``: the leading digits (and sign), 0 without."""
    text = text.lstrip()
    sign, digits = 1, ""
    if text[:1] in "+-" and text:
        sign, text = (-1 if text[0] == "-" else 1), text[1:]
    for ch in text:
        if not ch.isdigit():
            break
        digits += ch
    return sign * int(digits) if digits else 0


_W = os.O_WRONLY
_ACTIONS: dict[str, Callable[[_Context, str], int]] = {
    "cd": _chdir, "chdir": _chdir, "mkdir": _mkdir, "putenv": _putenv,
    "chmod": _chmod, "chown": _chown,
    "chown2": lambda ctx, arg: _chown(ctx, arg, numeric=True), "sticky": _sticky,
    "exec": _exec, "safeexec": lambda ctx, arg: _exec(ctx, arg, safe=True),
    "create": _create, "creat": _create,
    "write": _writer("write", _W | os.O_CREAT | os.O_TRUNC, False, 162, 169),
    "writen": _writer("writen", _W | os.O_CREAT | os.O_TRUNC, True, 222, 232),
    "append": _writer("append", _W | os.O_CREAT | os.O_APPEND, False, 197, 204),
    "appendn": _writer("appendn", _W | os.O_CREAT | os.O_APPEND, True, 248, 270),
    "writefifo": _writer("writefifo", _W | os.O_NONBLOCK, False, 134, 145),
    "unlink": _unlink,
    "call": _call("call"), "callret": _call("callret"),
    "callint": _call("callint"), "callintret": _call("callintret"),
    "unix_signal": _unix_signal,
    "exit": _exit_action, "print": _print, "log": _print,
}
