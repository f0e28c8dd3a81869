"""uwsgi.mule_msg() to mule 1 and mule 2 by id; mule_msg_hook receives them."""

OPTIONS = ["--master", "--processes", "1", "--mules", "2", "--cache2", "name=default,items=50", "--wsgi-file", "apps/mules.py"]


def timeline(sim):
    sim.get("/msg/a/1")
    sim.get("/msg/b/2")
    sim.advance(0.5)
    sim.get("/msg/a/1")
    sim.advance(0.5)


def state(sim):
    return sim.get("/").body.decode()
