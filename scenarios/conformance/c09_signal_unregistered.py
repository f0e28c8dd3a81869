"""Signal 24 has an empty target (no receivers routed to a worker): raise it and a
registered one; only the registered one runs a handler."""

OPTIONS = ["--master", "--processes", "2", "--cache2", "name=default,items=50", "--wsgi-file", "apps/signals.py"]


def timeline(sim):
    sim.signal(24)
    sim.advance(0.3)
    sim.signal(17)
    sim.advance(0.5)


def state(sim):
    return sim.get("/").body.decode()
