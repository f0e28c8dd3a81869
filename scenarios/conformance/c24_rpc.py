"""Local RPC: registered functions called with uwsgi.rpc(None, ...) and call()."""
from urllib.parse import quote

OPTIONS = ["--master", "--processes", "2", "--wsgi-file", "apps/api.py"]


def call(sim, expr):
    return sim.get("/?" + quote(expr, safe=""))


def timeline(sim):
    for expr in ["uwsgi.rpc(None, b\"hello\", b\"a\", b\"b\")", "uwsgi.call(b\"hello\")",
                 "uwsgi.rpc(b\"\", b\"hello\", b\"x\")", "uwsgi.call(\"hello\", b\"x\")",
                 "uwsgi.rpc(None, b\"none\")", "uwsgi.call(b\"missing\")",
                 "sorted(uwsgi.rpc_list())", "uwsgi.call(b\"hello\", \"str-arg\")"]:
        call(sim, expr)
