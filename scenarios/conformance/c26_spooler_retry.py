"""SPOOL_RETRY keeps the file for the next scan (--spooler-frequency 1); SPOOL_IGNORE
leaves it alone."""

OPTIONS = ["--master", "--processes", "1", "--spooler", "spool", "--spooler-frequency", "1",
           "--cache2", "name=default,items=20", "--wsgi-file", "apps/spool.py"]
CONFORM_IGNORE = {}


def timeline(sim):
    sim.get("/spool/retry")
    sim.advance(2.5)


def state(sim):
    return sim.get("/").body.decode()
