"""Hostile app: a spooler function that raises KeyboardInterrupt or exits."""
import os
import sys

import uwsgi


def spooler(env):
    what = env[b"what"]
    if what == b"exit":
        sys.exit(8)
    if what == b"interrupt":
        raise KeyboardInterrupt
    if what == b"os_exit":
        os._exit(9)
    return uwsgi.SPOOL_OK


uwsgi.spooler = spooler


def application(env, start_response):
    uwsgi.spool({b"what": env["PATH_INFO"][1:].encode()})
    start_response("200 OK", [])
    return [b"ok"]
