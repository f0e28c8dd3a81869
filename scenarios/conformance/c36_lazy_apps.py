"""--lazy-apps: the app is imported in each worker after the fork, not in the master."""

OPTIONS = ["--master", "--processes", "2", "--lazy-apps", "--wsgi-file", "apps/lazy.py"]


def timeline(sim):
    for _ in range(3):
        sim.get("/")
