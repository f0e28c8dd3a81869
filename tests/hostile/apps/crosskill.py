"""Hostile app: a Python signal handler of the worker, signalled by another process
(the mule, on uWSGI signal 17, kills the worker with SIGUSR1)."""
import os
import signal
import time

import uwsgi

SEEN = []


def kill_the_worker(_num):
    os.kill(uwsgi.workers()[0]["pid"], signal.SIGUSR1)


uwsgi.register_signal(17, "mule", kill_the_worker)


def record(num, frame):
    SEEN.append(f"{num}:{uwsgi.worker_id()}:{os.getpid() == uwsgi.workers()[0]['pid']}:"
                f"{frame is not None}")


def explode(num, _frame):
    raise RuntimeError(f"handler of signal {num}")


def application(env, start_response):
    path = env["PATH_INFO"]
    if path == "/record":
        signal.signal(signal.SIGUSR1, record)
    elif path == "/explode":
        signal.signal(signal.SIGUSR1, explode)
    elif path == "/signal":
        uwsgi.signal(17)
        time.sleep(1)  # the handler runs in the worker, in here
    start_response("200 OK", [])
    return [" ".join(SEEN).encode()]
