"""Cache set/get/update/exists/del/clear, the return values and a missing cache."""
from urllib.parse import quote

OPTIONS = ["--master", "--processes", "2", "--cache2", "name=default,items=10,blocksize=64", "--wsgi-file", "apps/api.py"]


def call(sim, expr):
    return sim.get("/?" + quote(expr, safe=""))


def timeline(sim):
    for expr in ["uwsgi.cache_set(\"k\", b\"v1\")", "uwsgi.cache_set(\"k\", b\"v2\")",
                 "uwsgi.cache_get(\"k\")", "uwsgi.cache_update(\"k\", b\"v3\")",
                 "uwsgi.cache_get(\"k\")", "uwsgi.cache_exists(\"k\")",
                 "uwsgi.cache_exists(\"nope\")", "uwsgi.cache_get(\"nope\")",
                 "uwsgi.cache_del(\"k\")", "uwsgi.cache_del(\"k\")", "uwsgi.cache_get(\"k\")",
                 "uwsgi.cache_set(\"a\", b\"1\"); uwsgi.cache_clear()",
                 "uwsgi.cache_set(\"a\", b\"1\"), uwsgi.cache_clear(), uwsgi.cache_get(\"a\")",
                 "uwsgi.cache_get(\"k\", \"nocache\")", "uwsgi.cache_set(\"k\", b\"x\" * 100)",
                 "uwsgi.cache_inc(\"n\"), uwsgi.cache_inc(\"n\", 5), uwsgi.cache_num(\"n\")",
                 "uwsgi.cache_keys()"]:
        call(sim, expr)
