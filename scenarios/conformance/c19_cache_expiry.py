"""A cache item with expires=1 is gone two seconds later; one without stays."""
from urllib.parse import quote

OPTIONS = ["--master", "--processes", "2", "--cache2", "name=default,items=10", "--wsgi-file", "apps/api.py"]


def call(sim, expr):
    return sim.get("/?" + quote(expr, safe=""))


def timeline(sim):
    call(sim, "uwsgi.cache_set(\"short\", b\"s\", 1), uwsgi.cache_set(\"long\", b\"l\")")
    call(sim, "uwsgi.cache_get(\"short\"), uwsgi.cache_get(\"long\")")
    sim.advance(2.6)
    call(sim, "uwsgi.cache_get(\"short\"), uwsgi.cache_get(\"long\")")
    call(sim, "uwsgi.cache_exists(\"short\"), uwsgi.cache_exists(\"long\")")
