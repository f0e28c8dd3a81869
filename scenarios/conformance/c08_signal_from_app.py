"""uwsgi.signal() called inside a request: the master routes it to every worker."""

OPTIONS = ["--master", "--processes", "2", "--cache2", "name=default,items=50", "--wsgi-file", "apps/signals.py"]


def timeline(sim):
    sim.get("/raise/17")
    sim.advance(0.5)
    sim.get("/raise/18")
    sim.advance(0.5)


def state(sim):
    return sim.get("/").body.decode()
