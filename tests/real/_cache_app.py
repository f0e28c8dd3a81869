"""The app of the cache replication tests: ``/OP/KEY=VALUE`` runs ``cache_OP`` on the
cache ``c`` and answers the ``repr`` of the result."""

APP = '''
import uwsgi


def application(environ, start_response):
    op, _, arg = environ["PATH_INFO"].strip("/").partition("/")
    key, _, value = arg.partition("=")
    if op == "set":
        result = uwsgi.cache_set(key, value, 0, "c")
    elif op == "update":
        result = uwsgi.cache_update(key, value, 100, "c")
    elif op == "inc":
        result = uwsgi.cache_inc(key, int(value), 0, "c")
    elif op == "del":
        result = uwsgi.cache_del(key, "c")
    elif op == "num":
        result = uwsgi.cache_num(key, "c")
    else:
        result = uwsgi.cache_get(key, "c")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [repr(result).encode()]
'''
