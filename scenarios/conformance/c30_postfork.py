"""@postfork runs in every worker, mule and spooler after the fork."""

OPTIONS = ["--master", "--processes", "2", "--mules", "1", "--spooler", "spool",
           "--cache2", "name=default,items=20", "--wsgi-file", "apps/postfork.py"]


def timeline(sim):
    sim.advance(0.3)


def state(sim):
    return sim.get("/").body.decode()
