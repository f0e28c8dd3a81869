"""A signal for one worker (target 'worker'): exactly one handler run per raise."""

OPTIONS = ["--master", "--processes", "2", "--cache2", "name=default,items=50", "--wsgi-file", "apps/signals.py"]


def timeline(sim):
    for _ in range(3):
        sim.signal(18)
        sim.advance(0.3)


def state(sim):
    return sim.get("/").body.decode()
