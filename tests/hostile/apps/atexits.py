"""Hostile app: an atexit handler and a uwsgi.atexit hook (both set in the master as it
imports the app, so every worker has them); /other ends the other, idle worker with
SIGTERM (uWSGI's end_me): who ran what is written next to the app, in order."""
import atexit
import os
import signal

import uwsgi

HERE = os.path.dirname(os.path.abspath(__file__))


def note(what):
    with open(os.path.join(HERE, "exits.log"), "a") as out:
        out.write(what + "\n")


atexit.register(lambda: note("atexit"))
uwsgi.atexit = lambda: note("uwsgi.atexit")


def application(env, start_response):
    if env["PATH_INFO"] == "/other":
        mine = uwsgi.worker_id()
        os.kill([w["pid"] for w in uwsgi.workers() if w["id"] != mine][0], signal.SIGTERM)
    start_response("200 OK", [])
    return [b"ok"]
