"""A signal handler registered only in some workers.

The app registers its refresh handler in the first request each worker serves: the
handler lands in that worker's signal table only, the master (which routes by its own
table) does not know signal 30 goes to all workers, and the worker that receives it has
no handler: ``error managing signal 30 on worker 1``. Fixed: register at import time.
"""

OPTIONS = ["--master", "--processes", "3", "--cache2", "name=default,items=10",
           "--wsgi-file", "apps/catalogue.py"]
DURATION = 60


def timeline(sim):
    sim.submit("GET", "/", at=1)
    sim.submit("GET", "/refresh", at=30)
    sim.run_until(DURATION)


def check(sim):
    refreshed = {w: sim.uwsgi.cache_num(f"refreshed:{w}") for w in (1, 2, 3)}
    assert all(refreshed.values()), f"workers without a refresh: {refreshed}"
