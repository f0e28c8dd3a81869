"""Signal handlers for every target; a request endpoint raises signals from a worker.

The handlers count their runs in the cache (so the state is shared and comparable).
"""
import json

import uwsgi


def handler(num):
    key = f"sig{num}"
    locked = not uwsgi.i_am_the_spooler()  # the spooler cannot use uwsgi.lock()
    if locked:
        uwsgi.lock()
    try:
        old = uwsgi.cache_get(key)
        uwsgi.cache_update(key, str(int(old or b"0") + 1).encode())
    finally:
        if locked:
            uwsgi.unlock()


TARGETS = {17: "workers", 18: "worker", 19: "worker2", 20: "mules", 21: "mule",
           22: "mule1", 23: "spooler", 24: ""}
for _num, _target in TARGETS.items():
    if _target.startswith("mule") and not uwsgi.opt.get("mules"):
        continue
    if _target == "spooler" and not uwsgi.opt.get("spooler"):
        continue
    uwsgi.register_signal(_num, _target, handler)


def application(environ, start_response):
    path = environ["PATH_INFO"]
    start_response("200 OK", [("Content-Type", "application/json")])
    if path.startswith("/raise/"):
        uwsgi.signal(int(path.split("/")[2]))
        return [b"raised"]
    counts = {k: int(uwsgi.cache_get(f"sig{k}") or b"0") for k in TARGETS}
    return [json.dumps(counts, sort_keys=True).encode()]
