"""Host commands the options start, as uWSGI 2.0.30 starts them with ``/bin/sh -c``.

* ``--cron`` and ``--touch-exec``: the master forks the command and reaps it later
  (``subsystems/cron.py``, ``subsystems/filemon.py`` log around it);
* ``--exec-asap`` (as soon as the instance starts, before its banner), ``--exec-pre-app``
  and ``--exec-post-app`` (around the app's loading, ``uwsgi_init_all_apps``: in the
  master, or in each worker under ``--lazy-apps``): uWSGI logs
  ``running "COMMAND" (asap)...`` (``pre app``, ``post app``), runs it and waits
  (``uwsgi_run_command_and_wait``); a non-zero status logs
  ``command "COMMAND" exited with non-zero code: N`` and the process exits 1. A
  post-app command does not run when ``--need-app`` ends the start. ``--exec-pre-jail``,
  ``--exec-in-jail``, ``--exec-as-root`` and ``--exec-as-user`` (``running "COMMAND" (as
  uid: U gid: G) ...``) are the same, each after its phase's hooks (``hooks.py``,
  ``Instance.run_phase``); ``--exec-as-user-atexit`` runs as the master exits, a failure
  only logged (``Instance._exec_atexit``); the ``exec:`` hook runs its command so too.

A command runs on this machine only when the scenario asks (``cron_commands=True``),
synchronously and taking no virtual time (no other virtual process runs meanwhile), in
the app's directory, its stdin ``/dev/null``; its output (stdout, then stderr) goes to
the log. Otherwise it is only recorded in the trace (``exec``,
``cron``, ``touch.exec``) and taken as successful.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import TYPE_CHECKING

from .._errors import StartRefusedError
from .interface import ProcessExit

if TYPE_CHECKING:
    from .interface import Instance
    from .processes import UProcess

__all__ = ["run_host_command", "run_phase"]

#: How long a command may run, in real seconds, before it is killed.
TIMEOUT = 60


def run_host_command(inst: Instance, command: str, proc: UProcess | None = None) -> int | None:
    """Run ``command`` with ``/bin/sh -c`` in the app directory, synchronously, taking no
    virtual time: its output goes to the log as it is (as ``proc``'s, the master's by
    default);
    returns its exit status (None, with a line saying so, after :data:`TIMEOUT` real
    seconds)."""
    proc = inst.master if proc is None else proc
    argv = ["/bin/sh", "-c", command]
    limit = shutil.which("timeout")  # coreutils': the wait below must not sleep in Python
    if limit is not None:  # (a virtual process's sleep is virtual: it would let another
        argv = [limit, "--kill-after=5", str(TIMEOUT), *argv]  # process run meanwhile)
    with subprocess.Popen(argv, cwd=inst.app.base_dir, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as child:
        out, err = child.communicate()  # reads to the end, then waits: no timed sleeps
    if limit is not None and child.returncode in (124, 137):
        inst.log(f'[simuwsgi] command "{command}" killed after {TIMEOUT} real seconds', proc)
        return None
    for line in (out + err).decode("utf-8", "replace").splitlines():
        inst.log_raw(line, proc)  # the command writes to the log's descriptor: no date
    return child.returncode


def run_phase(inst: Instance, option: str, phase: str, proc: UProcess | None, *,
              shown: str | None = None) -> None:
    """The ``option``'s commands (``--exec-asap``, ``--exec-pre-app``...) one after the
    other, each logged ``running "COMMAND" (PHASE)...`` (``shown`` instead of the
    parenthesis); a failed one ends the start (``StartRefusedError``, status 1), or the
    worker that loads its app (``--lazy-apps``)."""
    for command in inst.opts.strings(option):
        inst.log(f'running "{command}" {shown or f"({phase})..."}', proc)
        inst.record("exec", proc, phase=phase, command=command)
        if not getattr(inst, "cron_commands", False):
            continue
        status = run_host_command(inst, command, proc)
        if status:  # (None: killed, already said)
            line = f'command "{command}" exited with non-zero code: {status}'
            inst.log(line, proc)
            if proc is None or proc is inst.master:
                raise StartRefusedError(line)
            raise ProcessExit("exited", 1)
