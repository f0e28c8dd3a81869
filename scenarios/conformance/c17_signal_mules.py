"""Signals for mules: 'mules' (all of them), 'mule' (any one), 'mule1'."""

OPTIONS = ["--master", "--processes", "1", "--mules", "2", "--cache2", "name=default,items=50", "--wsgi-file", "apps/mules.py"]


def timeline(sim):
    sim.signal(20)
    sim.advance(0.4)
    sim.signal(21)
    sim.advance(0.4)
    sim.signal(22)
    sim.advance(0.4)


def state(sim):
    return sim.get("/").body.decode()
