"""Timers, red-black timers and cron registered at import; handlers count in the cache."""
import json

import uwsgi


def handler(num):
    key = f"sig{num}"
    uwsgi.lock()
    try:
        uwsgi.cache_update(key, str(int(uwsgi.cache_get(key) or b"0") + 1).encode())
    finally:
        uwsgi.unlock()


KIND = uwsgi.opt.get("env", b"KIND=timer").decode().split("=", 1)[1]
if KIND == "timer":
    uwsgi.register_signal(30, "worker", handler)
    uwsgi.add_timer(30, 1)
elif KIND == "rbtimer":
    uwsgi.register_signal(31, "workers", handler)
    uwsgi.add_rb_timer(31, 1, 2)
elif KIND == "cron":
    uwsgi.register_signal(32, "worker", handler)
    uwsgi.add_cron(32, -1, -1, -1, -1, -1)
elif KIND == "timer-mule":
    uwsgi.register_signal(33, "mule", handler)
    uwsgi.add_timer(33, 1)


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json")])
    counts = {k: int(uwsgi.cache_get(f"sig{k}") or b"0") for k in (30, 31, 32, 33)}
    return [json.dumps(counts, sort_keys=True).encode()]
