"""A long export run inside a request, on a worker recycled by ``--max-requests``.

The bug: ``/export`` writes a report in ten parts of 20 s each, in the request, while
the worker's other core keeps serving short requests. When those reach
``--max-requests`` the worker stops taking requests and waits for its busy core, but
only ``--worker-reload-mercy`` (60 s): then the master kills it, and the export dies
half written. The fix (``--set fixed=1``): hand the export to the spooler, which
``--max-requests`` does not recycle.
"""

import time

import uwsgi

FIXED = uwsgi.opt.get("fixed") in (b"1", "1")


def export(name):
    uwsgi.log(f"export {name} started")
    for part in range(10):
        time.sleep(20)
        uwsgi.log(f"export {name} part {part + 1}/10")
    uwsgi.log(f"export {name} done")


def spooled(env):
    export(env[b"name"].decode())
    return uwsgi.SPOOL_OK


uwsgi.spooler = spooled


def application(environ, start_response):
    if environ["PATH_INFO"] == "/export":
        if FIXED:
            uwsgi.spool({b"name": b"monthly"})
        else:
            export("monthly")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
