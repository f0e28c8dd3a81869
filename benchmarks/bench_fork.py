"""``fork`` mode benchmark (issue 7): virtual-process switches per second, fork vs sim,
measured in the same run on the same workloads.

A *virtual-process switch* is the kernel handing the CPU from one virtual process's
code to another's. In ``sim`` mode that is a greenlet switch; in ``fork`` mode it is a
message to a forked OS process and back, plus one more for every ``uwsgi.*`` call the
code makes on its turn. Two workloads:

* handler dispatch: a 1 s timer raises a signal handled by one of two workers (each
  firing switches into a worker's handler and back); 20,000 firings;
* mule ping-pong: two programmed mules pass a counter back and forth with
  ``mule_msg``/``mule_get_msg`` (each hop switches from one mule to the other and costs
  two ``uwsgi`` calls: two OS round trips in fork mode); 20,000 hops.

Target: >= 30,000 switches/s in fork mode. The process is pinned to one CPU (parent and
children then hand the CPU to each other without cross-CPU wake-ups); the rates are the
best of three runs, since other load on the machine only slows a run down.

Run: python benchmarks/bench_fork.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _util import show

from simuwsgi import Simulation
from simuwsgi._core.clock import RealClock

FIRINGS = 20_000
HOPS = 20_000
TARGET = 30_000

APP = """
import uwsgi

def tick(num):
    pass

uwsgi.register_signal(17, "worker", tick)
uwsgi.add_timer(17, 1)

def application(environ, start_response):
    if environ["PATH_INFO"] == "/go":
        uwsgi.mule_msg(b"%d" % HOPS, 1)
    start_response("200 OK", [])
    return [b"ok"]
"""

PING = """
import uwsgi
other = 2 if uwsgi.mule_id() == 1 else 1
while True:
    n = int(uwsgi.mule_get_msg())
    if n > 0:
        uwsgi.mule_msg(b"%d" % (n - 1), other)
"""


def _app_dir(d: Path) -> Path:
    (d / "app.py").write_text(textwrap.dedent(APP).replace("HOPS", str(HOPS)))
    (d / "ping.py").write_text(textwrap.dedent(PING))
    return d


def handler_dispatch(mode: str, app_dir: Path) -> tuple[int, float]:
    with Simulation(["--master", "--processes", "2", "--wsgi-file", "app.py"],
                    app_dir=app_dir, mode=mode) as sim:
        began = RealClock.monotonic()
        sim.advance(FIRINGS + 0.5)
        elapsed = RealClock.monotonic() - began
        return sim.trace.count("signal.handler"), elapsed


def ping_pong(mode: str, app_dir: Path) -> tuple[int, float]:
    with Simulation(["--master", "--mule=ping.py", "--mule=ping.py", "--wsgi-file",
                     "app.py"], app_dir=app_dir, mode=mode) as sim:
        sim.get("/go")
        began = RealClock.monotonic()
        sim.advance(0.5)  # every hop happens at this instant
        return HOPS, RealClock.monotonic() - began


def best_rate(run: Callable[[], tuple[int, float]], repeat: int = 3) -> float:
    """Switches per second of the best of ``repeat`` runs (start-up not counted)."""
    rates = []
    for _ in range(repeat):
        count, seconds = run()
        rates.append(count / seconds)
    return max(rates)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench_fork_") as tmp:
        _main(_app_dir(Path(tmp)))


def _main(app_dir: Path) -> None:
    saved = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(saved)})
    try:
        for name, workload in (("handler dispatch", handler_dispatch),
                               ("mule ping-pong", ping_pong)):
            rates = {mode: best_rate(lambda m=mode, w=workload: w(m, app_dir))
                     for mode in ("sim", "fork")}
            show(f"fork mode, {name}: switches/s", f"{rates['fork']:,.0f}",
                 f">= {TARGET:,}", rates["fork"] >= TARGET)
            show("  sim mode, same workload, same run", f"{rates['sim']:,.0f}",
                 f"(fork = {rates['fork'] / rates['sim']:.0%} of sim)", True)
    finally:
        os.sched_setaffinity(0, saved)


if __name__ == "__main__":
    main()
