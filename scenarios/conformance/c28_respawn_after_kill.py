"""SIGKILL worker1: the master logs its death and respawns it; requests keep working."""

OPTIONS = ["--master", "--processes", "2", "--wsgi-file", "apps/info.py"]
CONFORM_IDENTITY = "exact"
CONFORM_IGNORE = {"request.start": "which worker takes a request is chance",
                  "request.end": "which worker takes a request is chance"}


def timeline(sim):
    sim.get("/")
    sim.kill("worker1")
    sim.advance(1.5)
    sim.get("/")
