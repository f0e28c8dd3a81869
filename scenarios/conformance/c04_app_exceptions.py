"""App exceptions: before start_response (no reply at all) and while iterating (the
headers and the first chunk, then the connection closes)."""

OPTIONS = ["--master", "--processes", "1", "--wsgi-file", "apps/web.py"]


def timeline(sim):
    sim.get("/raise-before")
    sim.get("/raise-iter")
    sim.get("/fine")
