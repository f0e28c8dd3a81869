"""A cache counter that loses increments across a reload.

Views are counted with ``cache_inc``; a deploy reloads uWSGI, the master is executed
again with empty caches, and the count restarts from zero. Fixed: a file (any store that
outlives the master) under ``uwsgi.lock()``.
"""

OPTIONS = ["--master", "--processes", "2", "--cache2", "name=default,items=10",
           "--wsgi-file", "apps/counter.py"]
VIEWS = 30


def timeline(sim):
    for i in range(VIEWS):
        sim.submit("GET", "/view", at=1 + i * 10)
    sim.run_until(150)
    sim.reload()
    sim.run_until(400)


def check(sim):
    seen = int(sim.get("/").body)
    assert seen == VIEWS, f"{seen} views counted of {VIEWS}"
