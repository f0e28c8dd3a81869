"""A counter two ways, for the stateful-testing tests: ``/add`` counts in a module
global (each worker's own memory: a killed worker forgets it, the bug), ``/add-cached``
in the uWSGI cache (the master's memory: it survives the worker). ``/total`` and
``/total-cached`` read them."""
import uwsgi

count = 0


def application(env, start_response):
    global count
    path = env["PATH_INFO"]
    if path == "/add":
        count += 1
    elif path == "/add-cached":
        uwsgi.cache_update("count", str(int(uwsgi.cache_get("count") or b"0") + 1))
    body = str(count) if path in ("/add", "/total") else (uwsgi.cache_get("count") or b"0")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body.encode() if isinstance(body, str) else body]
