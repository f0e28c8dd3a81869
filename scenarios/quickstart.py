"""A virtual day of a 4-worker shop: traffic, a crash, slow pages killed by harakiri,
a worker recycled by max-requests, a signal to every worker, and a deploy (reload).

    simuwsgi run scenarios/quickstart.py --report reports/
"""

OPTIONS = ["--master", "--processes", "4", "--harakiri", "20", "--max-requests", "40",
           "--wsgi-file", "apps/shop.py"]
SEED = 2026
START = "2026-03-28T06:00:00"
TZ = "Europe/Paris"
DURATION = "1d"


def timeline(sim):
    hour = 3600
    for minute in range(0, 24 * 60, 3):           # an order every 3 minutes
        sim.submit("GET", "/order", at=minute * 60)
    for h in (9, 13, 17):
        sim.submit("GET", "/report?45", at=h * hour)   # too slow: harakiri at 20 s
        sim.submit("GET", "/report?5", at=h * hour + 60)
    sim.submit("GET", "/crash", at=10 * hour)
    sim.submit("GET", "/refresh", at=11 * hour)
    sim.submit("GET", "/deploy", at=12 * hour)
    sim.run_until(24 * hour)


def check(sim):
    ends = sim.trace.select("request.end")
    assert len(ends) == 480 + 3 + 3, f"{len(ends)} requests completed"
    assert sim.trace.count("harakiri") == 3
    assert sum(1 for r in ends if r.get("exception")) == 1, "the crash"
    assert sim.trace.count("signal.handler") == 4, "one refresh per worker"
    assert sim.trace.count("reload.begin") == 1
    assert any("The work of process" in line for line in sim.log), "max-requests recycling"
