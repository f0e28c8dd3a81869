"""A thundering herd after a reload.

Four workers serve an expensive report cached for an hour. A deploy reloads uWSGI: the
caches start empty and the burst after it makes every worker compute the report at
once. The check: one computation per empty cache. Fixed: a mark set with ``cache_set`` (it
does not overwrite) so one worker computes while the others wait.
"""

OPTIONS = ["--master", "--processes", "4", "--cache2", "name=default,items=10",
           "--wsgi-file", "apps/reports.py"]
DURATION = 120


def timeline(sim):
    sim.submit("GET", "/report", at=1)
    sim.run_until(30)
    sim.reload()
    for i in range(8):
        sim.submit("GET", "/report", at=sim.now + 1 + i * 0.1)
    sim.run_until(DURATION)


def check(sim):
    computed = sum("COMPUTING the report" in line for line in sim.log)
    assert computed == 2, f"the report was computed {computed} times for 2 empty caches"
