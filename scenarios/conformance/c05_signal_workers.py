"""A signal for every worker (target 'workers') raised from outside, twice."""

OPTIONS = ["--master", "--processes", "2", "--cache2", "name=default,items=50", "--wsgi-file", "apps/signals.py"]


def timeline(sim):
    sim.signal(17)
    sim.advance(0.5)
    sim.signal(17)
    sim.advance(0.5)


def state(sim):
    return sim.get("/").body.decode()
