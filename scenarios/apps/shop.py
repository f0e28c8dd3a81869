"""A small WSGI app used by the bundled scenarios: a shop with a slow report page."""

import json
import os
import time

import uwsgi

orders = []          # per-process state: each worker has its own copy after fork
REFRESH_SIGNAL = 30


def refresh(signum):
    uwsgi.log(f"worker {uwsgi.worker_id()} refreshing its catalogue (signal {signum})")


uwsgi.register_signal(REFRESH_SIGNAL, "workers", refresh)


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/order":
        orders.append(time.time())
    elif path == "/report":
        time.sleep(int(environ.get("QUERY_STRING") or 1))   # a slow page
    elif path == "/refresh":
        uwsgi.signal(REFRESH_SIGNAL)
    elif path == "/crash":
        raise RuntimeError("payment backend unavailable")
    elif path == "/deploy":
        uwsgi.reload()
    body = {"worker": uwsgi.worker_id(), "pid": os.getpid(), "orders_here": len(orders),
            "total_requests": uwsgi.total_requests(), "at": time.strftime("%H:%M:%S")}
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(body).encode()]
