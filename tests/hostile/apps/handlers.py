"""Hostile app: signal handlers, a mule and the spooler end their process or raise
BaseExceptions that are not errors."""
import os
import sys

import uwsgi


def exit_handler(num):
    sys.exit(6)


def interrupt_handler(num):
    raise KeyboardInterrupt


def os_exit_handler(num):
    os._exit(9)


uwsgi.register_signal(10, "worker", exit_handler)
uwsgi.register_signal(11, "worker", interrupt_handler)
uwsgi.register_signal(12, "worker", os_exit_handler)
uwsgi.register_signal(13, "mule", exit_handler)
uwsgi.register_signal(14, "mule", interrupt_handler)


def application(env, start_response):
    path = env["PATH_INFO"]
    if path.startswith("/signal/"):
        uwsgi.signal(int(path.rsplit("/", 1)[1]))
    start_response("200 OK", [])
    return [b"ok"]
