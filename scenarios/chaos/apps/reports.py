"""An expensive report (5 s to compute) cached in the uWSGI cache for an hour.

The bug: compute on a miss. A reload empties the caches (the master is executed again),
and the burst of requests that follows finds the cache empty in every worker at once:
each computes the report — a thundering herd on the database. The fix
(``--set fixed=1``): a "computing" mark set with ``cache_set`` (which does not
overwrite, so one worker wins); the others wait for the value instead of computing it.
"""

import time

import uwsgi

FIXED = uwsgi.opt.get("fixed") in (b"1", "1")


def compute():
    uwsgi.log("COMPUTING the report")
    time.sleep(5)  # the database
    return b"report"


def report():
    value = uwsgi.cache_get("report")
    if value is not None:
        return value
    # cache_set does not overwrite (uWSGI 2.0): one worker sets the mark
    if FIXED and not uwsgi.cache_set("report-computing", b"1", 30):
        while uwsgi.cache_get("report") is None:  # another worker computes it
            time.sleep(0.5)
        return uwsgi.cache_get("report")
    value = compute()
    uwsgi.cache_set("report", value, 3600)
    return value


def application(environ, start_response):
    body = report()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
