"""A page-view counter kept in the uWSGI cache.

The bug: the cache is the master's memory, created at start-up: a reload re-executes
the master and the counter starts again from zero (uWSGI's ``store=`` persistence aside).
The fix (``--set fixed=1``): count in a file, under ``uwsgi.lock()``.
"""

import os

import uwsgi

FIXED = uwsgi.opt.get("fixed") in (b"1", "1")
FILE = os.path.join(os.environ.get("SIMUWSGI_RUN_DIR", "."), "views")


def count():
    if not FIXED:
        uwsgi.cache_inc("views", 1)
        return
    uwsgi.lock()
    try:
        with open(FILE, "a+") as f:
            f.seek(0)
            views = int(f.read() or 0)
            f.seek(0)
            f.truncate()
            f.write(str(views + 1))
    finally:
        uwsgi.unlock()


def views():
    if FIXED:
        if not os.path.exists(FILE):
            return 0
        with open(FILE) as f:
            return int(f.read())
    return uwsgi.cache_num("views") or 0


def application(environ, start_response):
    if environ["PATH_INFO"] == "/view":
        count()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(views()).encode()]
