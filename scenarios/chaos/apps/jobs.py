"""A job that the master's timer runs every 10 s, started by the deploy script.

The bug: the timer is registered by an admin request (``/start-jobs``) the deploy
script sends once. A reload (``touch-reload``, a deploy, ``uwsgi.reload()``) re-executes
the master: the timer table starts empty, the app is imported again, nobody calls
``/start-jobs``, and the job silently stops. The fix (``--set fixed=1``): register the
timer at import time, which every reload runs again.
"""

import uwsgi

FIXED = uwsgi.opt.get("fixed") in (b"1", "1")
TICK = 40


def tick(signum):
    uwsgi.log("job ran")


uwsgi.register_signal(TICK, "worker", tick)
if FIXED:
    uwsgi.add_timer(TICK, 10)


def application(environ, start_response):
    if environ["PATH_INFO"] == "/start-jobs" and not FIXED:
        uwsgi.add_timer(TICK, 10)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
