"""A timer that stops after a master reload.

The job's timer is registered by a request the deploy script sends once; the reload of
the next deploy empties the master's timer table and nothing registers it again. The
check: the job ran in the last minute. Fixed: ``add_timer`` at import time.
"""

OPTIONS = ["--master", "--processes", "2", "--wsgi-file", "apps/jobs.py"]
DURATION = 600


def timeline(sim):
    sim.submit("GET", "/start-jobs", at=1)
    sim.run_until(300)
    sim.reload()
    sim.run_until(DURATION)


def check(sim):
    recent = [r for r in sim.trace.select("signal.handler", num=40) if r.time > DURATION - 60]
    assert recent, "the job has not run in the last minute"
