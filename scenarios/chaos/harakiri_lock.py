"""A lock held by a worker killed by harakiri, leaving a half-done update.

A transfer debits one account, waits for a slow fraud check, then credits the other,
all under ``uwsgi.lock()``. One fraud check takes longer than ``--harakiri 20``: the
worker dies between debit and credit, the lock is released with it, and money is gone.
``simuwsgi explore ... --faults kill`` finds the same with kills. Fixed: the slow call
outside the critical section, one write for both balances.
"""

import json

OPTIONS = ["--master", "--processes", "2", "--harakiri", "20", "--cache2",
           "name=default,items=10", "--wsgi-file", "apps/bank.py"]
DURATION = 300


def timeline(sim):
    for i in range(20):
        sim.submit("GET", f"/transfer?{30 if i == 7 else 1}", at=5 + i * 12)
    sim.run_until(DURATION)


def check(sim):
    raw = sim.uwsgi.cache_get("accounts")
    acc = json.loads(raw) if raw else {"a": 100, "b": 100}
    assert acc["a"] + acc["b"] == 200, f"money created or lost: {acc}"
    answered = sim.trace.count("request.end", status=200)
    assert acc["b"] - 100 >= answered, f"{answered} transfers answered, balances {acc}"
