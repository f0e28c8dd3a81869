"""uwsgidecorators.postfork hooks, counted per process kind in the cache."""
import json

import uwsgi
from uwsgidecorators import postfork


def bump(key):
    locked = not uwsgi.i_am_the_spooler()  # the spooler cannot use uwsgi.lock()
    if locked:
        uwsgi.lock()
    try:
        uwsgi.cache_update(key, str(int(uwsgi.cache_get(key) or b"0") + 1).encode())
    finally:
        if locked:
            uwsgi.unlock()


@postfork
def count():
    if uwsgi.worker_id():
        bump("worker")
    elif uwsgi.mule_id():
        bump("mule")
    elif uwsgi.i_am_the_spooler():
        bump("spooler")
    else:
        bump("other")


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({k: int(uwsgi.cache_get(k) or b"0")
                        for k in ("worker", "mule", "spooler", "other")}).encode()]
