"""A farm of two mules: each message goes to one of them."""

OPTIONS = ["--master", "--processes", "1", "--mules", "2", "--cache2", "name=default,items=50", "--farm", "pool:1,2", "--wsgi-file", "apps/mules.py"]


def timeline(sim):
    for text in ("a", "b", "c", "a"):
        sim.get(f"/msg/{text}/pool")
    sim.advance(0.6)


def state(sim):
    return sim.get("/").body.decode()
