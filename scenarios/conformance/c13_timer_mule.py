"""A timer whose signal goes to a mule (target 'mule')."""

OPTIONS = ["--master", "--processes", "1", "--mules", "1", "--cache2", "name=default,items=20",
           "--env", "KIND=timer-mule", "--wsgi-file", "apps/timers.py"]


def timeline(sim):
    sim.advance(2.5)


def state(sim):
    return sim.get("/").body.decode()
