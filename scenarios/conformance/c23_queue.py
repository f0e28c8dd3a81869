"""The uWSGI queue: push, pull, pop, slots, set and get, across workers."""
from urllib.parse import quote

OPTIONS = ["--master", "--processes", "2", "--queue", "4", "--queue-blocksize", "4096", "--wsgi-file", "apps/api.py"]


def call(sim, expr):
    return sim.get("/?" + quote(expr, safe=""))


def timeline(sim):
    for expr in ["uwsgi.queue_push(b\"one\")", "uwsgi.queue_push(b\"two\")",
                 "uwsgi.queue_slot(), uwsgi.queue_pull_slot()", "uwsgi.queue_last()",
                 "uwsgi.queue_pull()", "uwsgi.queue_pop()", "uwsgi.queue_pull()",
                 "[uwsgi.queue_push(b\"x%d\" % i) for i in range(5)]",
                 "uwsgi.queue_get(0), uwsgi.queue_get(3)", "uwsgi.queue_set(1, b\"s\"), uwsgi.queue_get(1)",
                 "uwsgi.queue_push(b\"y\" * 5000)"]:
        call(sim, expr)
