"""--touch-reload reload.txt: touching the file makes the master reload gracefully (it
checks the file's mtime on its 1 s tick)."""

OPTIONS = ["--master", "--processes", "1", "--touch-reload", "flag.txt",
           "--wsgi-file", "apps/info.py"]


def timeline(sim):
    sim.advance(1.2)
    sim.touch("flag.txt")
    sim.advance(3.0)
    sim.get("/")
