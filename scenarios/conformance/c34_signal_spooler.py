"""A signal for the spooler (target 'spooler'): the spooler process runs the handler."""

OPTIONS = ["--master", "--processes", "1", "--spooler", "spool", "--cache2",
           "name=default,items=50", "--wsgi-file", "apps/signals.py"]


def timeline(sim):
    sim.advance(0.2)
    sim.signal(23)
    sim.advance(0.8)


def state(sim):
    return sim.get("/").body.decode()
