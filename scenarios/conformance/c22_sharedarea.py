"""A shared area written by one request and read by others (any worker)."""
from urllib.parse import quote

OPTIONS = ["--master", "--processes", "2", "--sharedarea", "1", "--wsgi-file", "apps/api.py"]


def call(sim, expr):
    return sim.get("/?" + quote(expr, safe=""))


def timeline(sim):
    for expr in ["uwsgi.sharedarea_write(0, 0, b\"hello\")", "uwsgi.sharedarea_read(0, 0, 5)",
                 "uwsgi.sharedarea_writelong(0, 8, 41), uwsgi.sharedarea_inclong(0, 8), uwsgi.sharedarea_readlong(0, 8)",
                 "uwsgi.sharedarea_write64(0, 16, 2**40), uwsgi.sharedarea_read64(0, 16)",
                 "uwsgi.sharedarea_read(0, 0, 5)", "uwsgi.sharedarea_read(1, 0, 5)",
                 "uwsgi.sharedarea_read(0, 4090, 20)", "len(uwsgi.sharedarea_read(0, 0))"]:
        call(sim, expr)
