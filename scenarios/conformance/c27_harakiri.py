"""--harakiri 1: a request sleeping 3 s is killed by the master (its client gets no
reply) and the worker is respawned; the other worker keeps serving."""

OPTIONS = ["--master", "--processes", "2", "--harakiri", "1", "--wsgi-file", "apps/web.py"]


def timeline(sim):
    slow = sim.submit("GET", "/slow?3")
    sim.advance(0.2)
    sim.get("/fast")
    sim.wait(slow)
    sim.advance(0.5)
    sim.get("/after")
    sim.advance(1.5)  # the master reaps and respawns on its 1 s tick
