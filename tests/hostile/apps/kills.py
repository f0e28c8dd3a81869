"""Hostile app: signals processes by pid with os.kill / os.killpg (its own, its
master's, another worker's, a pid that is not uWSGI's), itself with signal.raise_signal
and signal.pthread_kill, and installs Python signal handlers and a wakeup descriptor."""
import os
import signal
import threading

import uwsgi

CAUGHT = []


def application(env, start_response):
    parts = env["PATH_INFO"].strip("/").split("/")
    target, signum = parts[0], int(parts[1]) if len(parts) > 1 else 0
    body = b"ok"
    if target == "self":
        os.kill(os.getpid(), signum)
    elif target == "raise":
        signal.raise_signal(signum)
    elif target == "thread":
        signal.pthread_kill(threading.get_ident(), signum)
    elif target == "sigmask":
        try:
            signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGINT])
        except Exception as exc:  # noqa: BLE001
            body = type(exc).__name__.encode()
    elif target == "master":
        os.kill(uwsgi.masterpid(), signum)
    elif target == "other":
        mine = uwsgi.worker_id()
        os.kill([w["pid"] for w in uwsgi.workers() if w["id"] != mine][0], signum)
    elif target == "stranger":
        try:
            os.kill(1, 0)  # init: never one of ours
        except ProcessLookupError as exc:
            body = b"refused"
        except PermissionError:
            body = b"EPERM"
    elif target == "handler":
        signal.signal(signal.SIGUSR1, lambda num, frame: CAUGHT.append(num))
        os.kill(os.getpid(), signal.SIGUSR1)
        body = repr(CAUGHT).encode()
    elif target == "wakeup":  # its own wakeup descriptor gets the signal's number
        r, w = os.pipe()
        os.set_blocking(w, False)
        try:
            signal.set_wakeup_fd(r)
            refused = ""
        except ValueError as exc:
            refused = str(exc).replace(str(r), "N")
        previous = signal.set_wakeup_fd(w)
        signal.signal(signal.SIGUSR1, lambda num, frame: CAUGHT.append(num))
        os.kill(os.getpid(), signal.SIGUSR1)
        written = list(os.read(r, 16))
        mine = signal.set_wakeup_fd(previous) == w
        os.close(r)
        os.close(w)
        body = repr([previous, written, mine, refused]).encode()
    elif target == "wakeup_closed":  # a write that fails is reported (in the log)
        r, w = os.pipe()
        os.set_blocking(w, False)
        previous = signal.set_wakeup_fd(w)
        os.close(r)
        os.close(w)
        signal.signal(signal.SIGUSR1, lambda num, frame: None)
        os.kill(os.getpid(), signal.SIGUSR1)
        signal.set_wakeup_fd(previous)
    elif target == "siginterrupt":  # checked, the host's signal table untouched
        signal.siginterrupt(signal.SIGUSR1, True)
        try:
            signal.siginterrupt(999, True)
        except ValueError as exc:
            body = str(exc).encode()
    elif target == "getsignal":
        body = repr(signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL).encode()
    start_response("200 OK", [])
    return [body]
