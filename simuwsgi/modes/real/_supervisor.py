"""Tiny process supervisor used by :class:`simuwsgi.modes.real.RealUwsgi`.

Run as a *script* (``python -I -S _supervisor.py STATUS_FD LIFETIME PARENT_PID -- CMD...``),
never imported by the harness, so that it starts in ~10 ms.

Why it exists
-------------
* It makes itself a *child subreaper* (``PR_SET_CHILD_SUBREAPER``): every process of the
  uWSGI instance that gets orphaned (e.g. workers after a SIGKILL of the master) is
  reparented to it and reaped.  On machines whose PID 1 does not reap orphans, this is the
  only way for ``os.killpg(pgid, 0)`` to raise ``ProcessLookupError`` after a stop.
* It enforces a hard deadline (``LIFETIME`` seconds) on the whole uWSGI process group, and
  kills the group when the harness process dies (``PR_SET_PDEATHSIG``), so no uWSGI instance
  can outlive the test session.

Protocol on ``STATUS_FD`` (a pipe to the harness), one line per event::

    pid <master pid>       # the forked child (uWSGI master, also its pgid/sid)
    exit <code>            # the uWSGI master exited (code < 0: killed by signal -code)

SIGTERM (or the deadline) makes it SIGKILL the uWSGI process group and every remaining
child, reap them all and exit.  It exits by itself once it has no child left, with the
master's exit code (``128 + signum`` if the master was killed by a signal).
"""

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36


def _children(mypid):
    """Pids whose parent is ``mypid`` (scan of /proc; cheap, only used when killing)."""
    out = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return out
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        # the comm field may contain spaces/parens: split after the last ')'
        rest = data[data.rfind(b")") + 2 :].split()
        if len(rest) > 1 and int(rest[1]) == mypid:
            out.append(int(name))
    return out


def main():
    status_fd = int(sys.argv[1])
    lifetime = float(sys.argv[2])
    parent_pid = int(sys.argv[3])
    if sys.argv[4] != "--":
        raise SystemExit("usage: _supervisor.py STATUS_FD LIFETIME PARENT_PID -- CMD...")
    cmd = sys.argv[5:]

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    if os.getppid() != parent_pid:  # the harness died before prctl()
        os._exit(111)

    state = {"killing": False}
    mypid = os.getpid()

    def write_status(line):
        try:
            os.write(status_fd, (line + "\n").encode())
        except OSError:
            pass

    def kill_everything(signum=None, frame=None):
        if os.getpid() != mypid:  # forked child, before exec: just die
            os._exit(127)
        state["killing"] = True
        if child > 0:
            try:
                os.killpg(child, signal.SIGKILL)
            except OSError:
                pass
        for pid in _children(mypid):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

    # handlers before the fork: a SIGTERM arriving at any time is honoured
    child = 0
    signal.signal(signal.SIGTERM, kill_everything)
    signal.signal(signal.SIGALRM, kill_everything)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)

    child = os.fork()
    if child == 0:
        try:
            os.setsid()
            os.close(status_fd)
            for sig in (signal.SIGTERM, signal.SIGALRM, signal.SIGINT, signal.SIGHUP):
                signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, [])
            os.execv(cmd[0], cmd)
        except BaseException as exc:  # noqa: BLE001 - report and die, whatever happened
            try:
                os.write(2, f"simuwsgi supervisor: cannot exec {cmd[0]!r}: {exc}\n".encode())
            finally:
                os._exit(127)

    write_status(f"pid {child}")
    if state["killing"]:  # SIGTERM arrived before the fork
        kill_everything()
    if lifetime > 0:
        signal.setitimer(signal.ITIMER_REAL, lifetime)

    master_code = None
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        except InterruptedError:  # pragma: no cover - PEP 475 retries for us
            continue
        if pid == child:
            master_code = os.waitstatus_to_exitcode(status)
            write_status(f"exit {master_code}")
            if state["killing"]:
                kill_everything()
    if master_code is None:
        os._exit(112)
    os._exit(master_code if master_code >= 0 else 128 - master_code)


if __name__ == "__main__":
    main()
