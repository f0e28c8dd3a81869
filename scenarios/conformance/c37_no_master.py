"""No master: two workers forked by worker 1; requests are served."""

OPTIONS = ["--processes", "2", "--wsgi-file", "apps/web.py"]


def timeline(sim):
    sim.get("/a")
    sim.request("POST", "/echo", body=b"x" * 10)
