"""--spooler-processes 2: two spooler processes share one directory; every task runs
once.

The tasks are spooled 0.2 s apart: a file written while every spooler process of the
directory is busy waits for the next scan (--spooler-frequency, 30 s), so back-to-back
writes make the real outcome depend on sub-millisecond timing. The spooler processes
count in the cache without a lock (uwsgi.lock() is refused in a spooler), which is safe
only while their tasks do not overlap."""

OPTIONS = ["--master", "--processes", "1", "--spooler", "spool", "--spooler-processes", "2",
           "--cache2", "name=default,items=20", "--wsgi-file", "apps/spool.py"]


def timeline(sim):
    for name in ("a", "b", "a", "b"):
        sim.get(f"/spool/{name}")
        sim.advance(0.2)
    sim.advance(0.4)


def state(sim):
    return sim.get("/").body.decode()
