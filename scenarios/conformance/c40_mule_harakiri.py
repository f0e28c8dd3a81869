"""--mule-harakiri 1: a mule signal handler that sleeps 3 s is killed and the mule is
respawned."""

OPTIONS = ["--master", "--processes", "1", "--mules", "1", "--mule-harakiri", "1",
           "--wsgi-file", "apps/sleepy_mule.py"]


def timeline(sim):
    sim.signal(50)
    sim.advance(3.5)
