"""A cache with 3 items: the 4th cache_set fails; deleting one makes room."""
from urllib.parse import quote

OPTIONS = ["--master", "--processes", "1", "--cache2", "name=small,items=3", "--wsgi-file", "apps/api.py"]


def call(sim, expr):
    return sim.get("/?" + quote(expr, safe=""))


def timeline(sim):
    for i in range(4):
        call(sim, f"uwsgi.cache_set(\"k{i}\", b\"{i}\", 0, \"small\")")
    call(sim, "uwsgi.cache_del(\"k0\", \"small\"), uwsgi.cache_set(\"k3\", b\"3\", 0, \"small\")")
    call(sim, "[uwsgi.cache_get(\"k%d\" % i, \"small\") for i in range(4)]")
