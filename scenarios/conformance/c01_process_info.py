"""Process information seen from a request: worker table, version, flags."""

OPTIONS = ["--master", "--processes", "3", "--wsgi-file", "apps/info.py"]


def timeline(sim):
    sim.get("/")
    sim.advance(0.5)
    sim.get("/again")
