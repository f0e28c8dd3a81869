"""A signal for a named worker (target 'worker2'): process identities are exact."""

OPTIONS = ["--master", "--processes", "2", "--cache2", "name=default,items=50", "--wsgi-file", "apps/signals.py"]
CONFORM_IDENTITY = "exact"
CONFORM_IGNORE = {"request.start": "which worker takes a request is chance",
                  "request.end": "which worker takes a request is chance"}


def timeline(sim):
    sim.signal(19)
    sim.advance(0.5)
    sim.signal(19)
    sim.advance(0.5)


def state(sim):
    return sim.get("/").body.decode()
