"""Plain requests: GET with a query, POST with a body, a 404, several chunks, headers."""

OPTIONS = ["--master", "--processes", "2", "--wsgi-file", "apps/web.py"]


def timeline(sim):
    sim.get("/hello")
    sim.request("POST", "/echo?x=1&y=2", body=b"payload", headers={"Content-Type": "text/plain"})
    sim.get("/echo?q")
    sim.get("/missing")
    sim.get("/chunks")
