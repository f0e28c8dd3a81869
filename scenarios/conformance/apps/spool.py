"""A spooler function that counts tasks in the cache and returns what the task asks."""
import json

import uwsgi


def bump(key):
    # the spooler cannot use uwsgi.lock() ("The spooler cannot lock/unlock resources"),
    # and it is the only writer
    uwsgi.cache_update(key, str(int(uwsgi.cache_get(key) or b"0") + 1).encode())


def spooler(env):
    bump("tasks")
    bump("task-" + env[b"name"].decode())
    if env[b"name"] == b"retry" and int(uwsgi.cache_get("task-retry")) < 2:
        return uwsgi.SPOOL_RETRY
    if env[b"name"] == b"ignore":
        return uwsgi.SPOOL_IGNORE
    return uwsgi.SPOOL_OK


uwsgi.spooler = spooler


def application(environ, start_response):
    path = environ["PATH_INFO"]
    start_response("200 OK", [("Content-Type", "application/json")])
    if path.startswith("/spool/"):
        name = path.split("/")[2].encode()
        return [repr(type(uwsgi.spool({b"name": name}))).encode()]
    names = ["tasks", "task-a", "task-b", "task-retry", "task-ignore"]
    return [json.dumps({k: int(uwsgi.cache_get(k) or b"0") for k in names}).encode()]
