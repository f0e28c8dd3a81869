"""A mule without mule_msg_hook logs '*** mule N received a K bytes message ***'."""

OPTIONS = ["--master", "--processes", "1", "--mules", "2", "--cache2", "name=default,items=50", "--env", "HOOK=0", "--wsgi-file", "apps/mules.py"]


def timeline(sim):
    sim.get("/msg/abc/1")
    sim.get("/msg/hello/2")
    sim.advance(0.5)


def state(sim):
    return sim.get("/").body.decode()
