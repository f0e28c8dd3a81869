"""uwsgi.add_timer(30, 1) for one worker: it fires every second (first at ~1 s)."""

OPTIONS = ["--master", "--processes", "2", "--cache2", "name=default,items=20",
           "--env", "KIND=timer", "--wsgi-file", "apps/timers.py"]


def timeline(sim):
    sim.advance(3.5)


def state(sim):
    return sim.get("/").body.decode()
