"""@filemon('flag.txt'): touching the file raises the monitor's signal (in a worker)."""

OPTIONS = ["--master", "--processes", "2", "--cache2", "name=default,items=20",
           "--wsgi-file", "apps/decorated.py"]
CONFORM_IGNORE = {}


def timeline(sim):
    sim.advance(0.5)
    sim.touch("flag.txt")
    sim.advance(0.6)


def state(sim):
    return sim.get("/").body.decode()
