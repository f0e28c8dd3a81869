"""``--max-requests`` recycling in the middle of a long task.

A monthly export runs inside a request (200 s) on one core of a threaded worker while
the other core serves a request a second; the 50th recycles the worker, which waits
``--worker-reload-mercy`` (60 s) for the export and then is killed with it. The check:
every export that started finished. Fixed: the export runs in the spooler.
"""

from simuwsgi.explore import run_dir

OPTIONS = ["--master", "--processes", "1", "--threads", "2", "--max-requests", "50",
           "--min-worker-lifetime", "0", "--spooler", run_dir("spool"),
           "--wsgi-file", "apps/exports.py"]
DURATION = 300


def timeline(sim):
    sim.submit("GET", "/export", at=1)
    for second in range(2, 120):
        sim.submit("GET", "/ping", at=second)
    sim.run_until(DURATION)


def check(sim):
    started = [x for x in sim.log if x.endswith(" started") and x.startswith("export ")]
    done = [x for x in sim.log if x.endswith(" done") and x.startswith("export ")]
    assert started, "no export started"
    assert len(done) == len(started), f"{len(done)} exports finished of {len(started)}"
