"""A graceful reload (SIGHUP): workers are replaced; is_a_reload is True afterwards."""

OPTIONS = ["--master", "--processes", "2", "--wsgi-file", "apps/info.py"]


def timeline(sim):
    sim.get("/before")
    sim.reload()
    sim.advance(2.5)
    sim.get("/after")
