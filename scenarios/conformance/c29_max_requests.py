"""--max-requests 2 with --min-worker-lifetime 0: the single worker is recycled after its
second request; the third waits for the respawn."""

OPTIONS = ["--master", "--processes", "1", "--max-requests", "2", "--min-worker-lifetime", "0",
           "--wsgi-file", "apps/web.py"]


def timeline(sim):
    sim.get("/one")
    sim.get("/two")
    sim.get("/three")
    sim.advance(0.5)
