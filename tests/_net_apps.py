"""Apps shared by the network tests (simulated and real uWSGI run the same file)."""

from __future__ import annotations

import textwrap

NODE_APP = textwrap.dedent('''
    import json, os, uwsgi

    HERE = os.path.dirname(os.path.abspath(__file__))
    OUT = os.path.join(HERE, "events.jsonl")

    def note(**kw):
        with open(OUT, "a") as f:
            f.write(json.dumps(kw, sort_keys=True) + "\\n")

    def hello(*args):
        return b"hello " + b"|".join(args)

    def big():
        return b"x" * 70000

    def empty():
        return b""

    def retstr():
        return "a string"

    uwsgi.register_rpc("hello", hello)
    uwsgi.register_rpc("big", big)
    uwsgi.register_rpc("empty", empty)
    uwsgi.register_rpc("retstr", retstr)

    def on_signal(num):
        note(signal=num)

    uwsgi.register_signal(17, "worker", on_signal)

    if "spooler" in uwsgi.opt:
        def spooler(args):
            note(spooled=sorted((k.decode() if isinstance(k, bytes) else k,
                                 v.decode("latin-1")) for k, v in args.items()
                                if k != "spooler_task_name"))
            return uwsgi.SPOOL_OK
        uwsgi.spooler = spooler

    def remote(target):
        """What uWSGI's clients get from ``target``, as JSON-able values."""
        def b(x):
            return x.decode("latin-1") if isinstance(x, bytes) else x
        out = {}
        out["rpc"] = b(uwsgi.rpc(target, b"hello", b"a", b"b"))
        out["rpc_big"] = len(uwsgi.rpc(target, b"big") or b"")
        out["rpc_unknown"] = b(uwsgi.rpc(target, b"nope"))
        out["rpc_empty"] = b(uwsgi.rpc(target, b"empty"))
        at = "default@" + target
        out["set"] = uwsgi.cache_set("rk", "v1", 0, at)
        out["set_again"] = uwsgi.cache_set("rk", "v2", 0, at)
        out["update"] = uwsgi.cache_update("rk", "v3", 0, at)
        out["get"] = b(uwsgi.cache_get("rk", at))
        out["exists"] = uwsgi.cache_exists("rk", at)
        out["del"] = uwsgi.cache_del("rk", at)
        out["get_missing"] = b(uwsgi.cache_get("rk", at))
        out["exists_missing"] = uwsgi.cache_exists("rk", at)
        out["other_set"] = uwsgi.cache_set("ok", "o", 0, "other@" + target)
        out["other_get"] = b(uwsgi.cache_get("ok", "other@" + target))
        out["unknown_cache"] = uwsgi.cache_set("uk", "u", 0, "nosuch@" + target)
        out["clear"] = uwsgi.cache_clear("other@" + target)
        out["other_get_cleared"] = b(uwsgi.cache_get("ok", "other@" + target))
        try:
            out["signal"] = uwsgi.signal(17, target)
        except Exception as exc:
            out["signal"] = type(exc).__name__ + ": " + str(exc)
        try:
            uwsgi.signal(17, "127.0.0.1:1")
        except Exception as exc:
            out["signal_unreachable"] = type(exc).__name__ + ": " + str(exc)
        out["rpc_unreachable"] = uwsgi.rpc("127.0.0.1:1", b"hello")
        return out

    def application(env, start_response):
        path = env["PATH_INFO"]
        if path == "/env":
            start_response("200 OK", [("Content-Type", "application/json")])
            skip = ("SERVER_NAME", "SERVER_PORT", "REMOTE_PORT", "uwsgi.node")
            keys = [k for k in env if k not in skip]
            seen = {k: env[k] for k in keys if isinstance(env[k], str)}
            return [json.dumps({"keys": keys, "env": seen}).encode()]
        if path == "/remote":
            start_response("200 OK", [("Content-Type", "application/json")])
            return [json.dumps(remote(env["QUERY_STRING"]), sort_keys=True).encode()]
        if path == "/raise":
            raise ValueError("boom")
        if path == "/send":
            uwsgi.send(b"early;")
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"late"]
        if path == "/body":
            data = env["wsgi.input"].read()
            start_response("201 Created", [("X-Len", str(len(data)))])
            return [data[::-1]]
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Dup", "1"),
                                  ("X-Dup", "2")])
        return [b"abc", b"def"]
''')
