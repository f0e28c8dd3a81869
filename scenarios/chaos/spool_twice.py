"""A non-idempotent spool task run twice after a spooler kill.

The spooler charges a card, then spends two seconds on a receipt before returning
SPOOL_OK. A kill -9 in those two seconds keeps the spool file, and the respawned spooler
charges again (uWSGI's spooler is at-least-once). Found and shrunk to one kill by:

    simuwsgi explore scenarios/chaos/spool_twice.py --seeds 200

``spool_twice_fixed.py`` is the same shop with an idempotency key: its check passes.
"""

from simuwsgi.explore import run_dir
from simuwsgi.properties import spool_tasks_once

OPTIONS = ["--master", "--processes", "2", "--spooler", run_dir("spool"),
           "--spooler-frequency", "1", "--cache2", "name=default,items=200",
           "--wsgi-file", "apps/payments.py"]
DURATION = 120
ORDERS = 12
FAULT_KINDS = "kill"


def timeline(sim):
    for order in range(ORDERS):
        sim.submit("GET", f"/pay?{order}", at=5 + order * 9)
    sim.run_until(DURATION)


def check(sim):
    # uWSGI's spooler is at-least-once: a task may rerun after a kill, never get lost
    spool_tasks_once(sim.trace, rerun_after_kill=True)
    charged = {order: int(sim.uwsgi.cache_num(f"charges:{order}") or 0)
               for order in range(ORDERS)}
    twice = sorted(order for order, n in charged.items() if n > 1)
    assert not twice, f"orders charged more than once: {twice} ({charged})"
    # every accepted order is charged, or its task still waits on disk (master killed)
    accepted = sim.trace.count("request.end", status=202)
    waiting = len(sim.inst.subsystems["spooler"].pending())
    assert sum(n == 1 for n in charged.values()) + waiting >= accepted, \
        f"orders lost: {accepted} accepted, {waiting} waiting, charged {charged}"
