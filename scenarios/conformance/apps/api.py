"""Evaluates the uwsgi API call in the query string (URL-encoded Python expression) and
returns repr(result), or the exception's type and message: what the app observed."""
import time
from urllib.parse import unquote

import uwsgi


def rpc_hello(*args):
    return b"hello " + b",".join(args)


def rpc_none():
    return None


if hasattr(uwsgi, "register_rpc"):
    uwsgi.register_rpc("hello", rpc_hello)
    uwsgi.register_rpc("none", rpc_none)


def application(environ, start_response):
    expr = unquote(environ["QUERY_STRING"])
    try:
        result = repr(eval(expr, {"uwsgi": uwsgi, "time": time}))
    except Exception as exc:  # noqa: BLE001
        result = f"{type(exc).__name__}: {exc}"
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [result.encode()]
