"""uwsgidecorators @timer(1), @filemon and @signal(40, target='workers'); the signal
numbers the decorators pick must match (they are allocated by the shared counter)."""

OPTIONS = ["--master", "--processes", "2", "--cache2", "name=default,items=20",
           "--wsgi-file", "apps/decorated.py"]


def timeline(sim):
    sim.advance(2.5)
    sim.signal(40)
    sim.advance(0.3)


def state(sim):
    return sim.get("/").body.decode()
