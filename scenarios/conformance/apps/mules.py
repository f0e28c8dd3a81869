"""Mules: a message hook that counts in the cache, signals for mules, farm messages."""
import json

import uwsgi

HOOK = uwsgi.opt.get("env", b"HOOK=1") == b"HOOK=1"


def bump(key):
    uwsgi.lock()
    try:
        uwsgi.cache_update(key, str(int(uwsgi.cache_get(key) or b"0") + 1).encode())
    finally:
        uwsgi.unlock()


def on_msg(msg):
    bump(f"msg-{msg.decode()}")
    bump(f"mule{uwsgi.mule_id()}")


if HOOK:
    uwsgi.mule_msg_hook = on_msg


def on_signal(num):
    bump(f"sig{num}")


uwsgi.register_signal(20, "mules", on_signal)
uwsgi.register_signal(21, "mule", on_signal)
uwsgi.register_signal(22, "mule1", on_signal)


def application(environ, start_response):
    path = environ["PATH_INFO"]
    start_response("200 OK", [("Content-Type", "application/json")])
    if path.startswith("/msg/"):
        _, _, text, target = path.split("/")
        dest = int(target) if target.isdigit() else target.encode()
        return [repr(uwsgi.mule_msg(text.encode(), dest)).encode()]
    keys = ["msg-a", "msg-b", "msg-c", "sig20", "sig21", "sig22"]
    total = sum(int(uwsgi.cache_get(f"mule{i}") or b"0") for i in (1, 2))
    out = {k: int(uwsgi.cache_get(k) or b"0") for k in keys}
    out["handled_by_mules"] = total
    return [json.dumps(out, sort_keys=True).encode()]
