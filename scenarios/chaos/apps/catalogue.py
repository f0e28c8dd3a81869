"""A catalogue every worker caches, refreshed by uWSGI signal 30 sent to all workers.

The bug: the handler is registered lazily, by the first request a worker serves. uWSGI
keeps one signal table per worker: the registration lands in that worker's table only,
the master routes signal 30 by its own table (no target there), and the worker that
gets it has no handler: ``error managing signal 30 on worker 1``, a stale catalogue
everywhere. The fix (``--set fixed=1``): register at import, in the master, before the fork.
"""

import uwsgi

FIXED = uwsgi.opt.get("fixed") in (b"1", "1")
REFRESH = 30
registered = False


def refresh(signum):
    uwsgi.cache_inc(f"refreshed:{uwsgi.worker_id()}", 1)


if FIXED:
    uwsgi.register_signal(REFRESH, "workers", refresh)


def application(environ, start_response):
    global registered
    if not FIXED and not registered:
        uwsgi.register_signal(REFRESH, "workers", refresh)
        registered = True
    if environ["PATH_INFO"] == "/refresh":
        uwsgi.signal(REFRESH)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
