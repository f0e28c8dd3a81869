"""uwsgi.lock/unlock/is_locked on the default lock and --locks 3, bad lock numbers."""
from urllib.parse import quote

OPTIONS = ["--master", "--processes", "2", "--locks", "3", "--wsgi-file", "apps/api.py"]


def call(sim, expr):
    return sim.get("/?" + quote(expr, safe=""))


def timeline(sim):
    for expr in ["uwsgi.is_locked()", "uwsgi.lock(), uwsgi.is_locked(), uwsgi.unlock(), uwsgi.is_locked()",
                 "uwsgi.lock(2), uwsgi.is_locked(2), uwsgi.is_locked(1), uwsgi.unlock(2)",
                 "uwsgi.lock(3)", "uwsgi.is_locked(-1)", "uwsgi.unlock(99)",
                 "uwsgi.lock(\"x\")"]:
        call(sim, expr)
