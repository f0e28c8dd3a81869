"""Three tasks spooled by requests run in the spooler, which wakes up at once."""

OPTIONS = ["--master", "--processes", "1", "--spooler", "spool", "--cache2",
           "name=default,items=20", "--wsgi-file", "apps/spool.py"]


def timeline(sim):
    sim.get("/spool/a")
    sim.advance(0.3)
    sim.get("/spool/b")
    sim.get("/spool/a")
    sim.advance(0.7)


def state(sim):
    return sim.get("/").body.decode()
