"""Host commands the options start, as uWSGI 2.0.30 starts them with ``/bin/sh -c``.

* ``--cron`` and ``--touch-exec``: the master forks the command and reaps it later
  (``subsystems/cron.py``, ``subsystems/filemon.py`` log around it);
* ``--exec-asap`` (as soon as the instance starts, before its banner), ``--exec-pre-app``
  and ``--exec-post-app`` (around the app's loading, ``uwsgi_init_all_apps``: in the
  master, or in each worker under ``--lazy-apps``): uWSGI logs
  ``running "COMMAND" (asap)...`` (``pre app``, ``post app``), runs it and waits
  (``uwsgi_run_command_and_wait``); a non-zero status logs
  ``command "COMMAND" exited with non-zero code: N`` and the process exits 1. A
  post-app command does not run when ``--need-app`` ends the start.

A command runs on this machine only when the scenario asks (``cron_commands=True``),
synchronously and taking no virtual time, in the app's directory; its output (stdout,
then stderr) goes to the log. Otherwise it is only recorded in the trace (``exec``,
``cron``, ``touch.exec``) and taken as successful.
"""

from __future__ import annotations

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
    virtual time: its output goes to the log (as ``proc``'s, the master's by default);
    returns its exit status (None, with a line saying so, after :data:`TIMEOUT` real
    seconds)."""
    proc = inst.master if proc is None else proc
    try:
        done = subprocess.run(["/bin/sh", "-c", command], cwd=inst.app.base_dir,
                              capture_output=True, timeout=TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        inst.log(f'[simuwsgi] command "{command}" killed after {TIMEOUT} real seconds', proc)
        return None
    for line in (done.stdout + done.stderr).decode("utf-8", "replace").splitlines():
        inst.log(line, proc)
    return done.returncode


def run_phase(inst: Instance, option: str, phase: str, proc: UProcess | None) -> None:
    """The ``option``'s commands (``--exec-asap``, ``--exec-pre-app``, ``--exec-post-app``)
    one after the other; a failed one ends the start (``StartRefusedError``, status 1),
    or the worker that loads its app (``--lazy-apps``)."""
    for command in inst.opts.strings(option):
        inst.log(f'running "{command}" ({phase})...', proc)
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
