"""Four slow requests at once on two workers: two run, two wait in the listen queue."""

OPTIONS = ["--master", "--processes", "2", "--wsgi-file", "apps/web.py"]


def timeline(sim):
    handles = [sim.submit("GET", "/slow?0.4") for _ in range(4)]
    sim.wait(handles)
    sim.advance(0.2)
    sim.get("/done")
