"""Hostile app: it redirects or closes its standard descriptors, as daemonizing code and
some logging setups do (``os.dup2(logfile, 2)``, ``os.close(1)``, ``os.closerange``).
In a test process those are pytest's: each is refused in a virtual process, and the
app's own descriptors stay its to dup2 and close."""
import os


def application(env, start_response):
    path = env["PATH_INFO"]
    try:
        if path == "/dup2":
            fd = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(fd, 2)
            finally:
                os.close(fd)
        elif path == "/close":
            os.close(1)
        elif path == "/closerange":
            os.closerange(3, 65536)
        elif path == "/own":  # the app's own descriptors: as on the host
            a = os.open(os.devnull, os.O_WRONLY)
            b = os.open(os.devnull, os.O_RDONLY)
            os.dup2(a, b)
            os.close(a)
            os.close(b)
        out = "done"
    except Exception as exc:  # noqa: BLE001
        out = f"{type(exc).__name__}: {exc}"
    start_response("200 OK", [])
    return [out.encode()]
