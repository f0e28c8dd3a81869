"""uwsgi.add_cron(32, -1, -1, -1, -1, -1): every minute; the first firing comes on the
master's first check after start (the job never ran), the next one a minute later."""

OPTIONS = ["--master", "--processes", "2", "--cache2", "name=default,items=20",
           "--env", "KIND=cron", "--wsgi-file", "apps/timers.py"]


def timeline(sim):
    sim.advance(2.5)


def state(sim):
    return sim.get("/").body.decode()
