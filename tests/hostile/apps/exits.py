"""Hostile app: ends its own process in every way Python allows, and registers an
atexit handler (inherited from the master by every worker) that says who ran it."""
import atexit
import json
import os
import sys

import uwsgi

HERE = os.path.dirname(os.path.abspath(__file__))


def _goodbye():
    with open(os.path.join(HERE, "atexit.log"), "a") as f:
        f.write("%s\n" % ("master" if os.getpid() == uwsgi.masterpid() else "worker"))


atexit.register(_goodbye)


def application(env, start_response):
    path = env["PATH_INFO"]
    if path == "/os_exit":
        os._exit(3)
    if path == "/sys_exit":
        sys.exit(4)
    if path == "/keyboard_interrupt":
        raise KeyboardInterrupt
    if path == "/generator_exit":
        raise GeneratorExit
    if path == "/base_exception":
        raise BaseException("hostile")
    if path == "/c_exit_caught":
        try:
            uwsgi.queue_last(-1)  # exit(1) in uwsgi_malloc: nothing can catch it
        except BaseException:
            pass
        start_response("200 OK", [])
        return [b"caught"]
    if path == "/os_exit_caught":
        try:
            os._exit(5)
        except BaseException:
            pass
        start_response("200 OK", [])
        return [b"caught"]
    if path == "/whoami":
        body = {"argv": sys.argv, "ppid_is_master": os.getppid() == uwsgi.masterpid(),
                "pid_is_master": os.getpid() == uwsgi.masterpid()}
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(body).encode()]
    start_response("200 OK", [])
    return [b"ok"]
