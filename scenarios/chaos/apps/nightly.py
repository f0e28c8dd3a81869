"""A nightly job on uWSGI's cron: at 02:30 local time (the bug: a DST fall-back repeats
that minute, so the job runs twice) or, fixed (``--set fixed=1``), at 04:30, a minute
every day has exactly once."""

import uwsgi

FIXED = uwsgi.opt.get("fixed") in (b"1", "1")
NIGHTLY = 20


def nightly(signum):
    uwsgi.cache_inc("nightly", 1)


uwsgi.register_signal(NIGHTLY, "worker", nightly)
uwsgi.add_cron(NIGHTLY, 30, 4 if FIXED else 2, -1, -1, -1)


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
