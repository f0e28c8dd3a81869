"""uwsgi.add_rb_timer(31, 1, 2): two firings one second apart, then none."""

OPTIONS = ["--master", "--processes", "2", "--cache2", "name=default,items=20",
           "--env", "KIND=rbtimer", "--wsgi-file", "apps/timers.py"]


def timeline(sim):
    sim.advance(3.6)


def state(sim):
    return sim.get("/").body.decode()
