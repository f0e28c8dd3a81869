"""Benchmark: how fast ``simuwsgi explore`` searches, and how fast it shrinks.

* seeds/s for the quickstart app (4 workers, harakiri, max-requests) over a virtual
  hour of its traffic (an order every 3 minutes, a slow report killed by harakiri, a
  signal to every worker), each seed with a random fault plan (kills, clock steps,
  exception storms, a full signal queue), with ``--jobs 1`` and ``--jobs J``; target
  (issue 15): >= 50 seeds/s per core, judged on seeds per CPU second (the wall-clock
  rate and the ``--jobs`` speed-up depend on what else the machine runs);
* the time to shrink a bundled failing run of ``scenarios/chaos/spool_twice.py`` (three
  faults, one of which matters, and 12 requests) to its one kill and fewer requests.

Usage: ``python benchmarks/bench_explore.py [--seeds 400] [--jobs 2]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from _util import show

from simuwsgi._core.clock import RealClock
from simuwsgi.explore import explore, run_one, shrink
from simuwsgi.faults import ClockStep, FaultPlan, Kill

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = f'''
"""The quickstart shop for one virtual hour (benchmarks/bench_explore.py)."""
OPTIONS = ["--master", "--processes", "4", "--harakiri", "20", "--max-requests", "40",
           "--wsgi-file", "{ROOT / "scenarios" / "apps" / "shop.py"}"]
START = "2026-03-28T06:00:00"
TZ = "Europe/Paris"
DURATION = "1h"


def timeline(sim):
    for minute in range(0, 60, 3):
        sim.submit("GET", "/order", at=minute * 60)
    sim.submit("GET", "/report?45", at=600)
    sim.submit("GET", "/refresh", at=1200)
    sim.run_until(3600)
'''
SHRINK_CASE = FaultPlan(ClockStep(60, at=10), Kill("worker1", at=20),
                        Kill("spooler1", at=59.264))


def seeds_per_second(path: str, seeds: int, jobs: int) -> tuple[float, float]:
    """Seeds per wall second, and per CPU second (this process and its children: on a
    machine shared with other work, what one core does)."""
    began, cpu0 = RealClock.monotonic(), _cpu()
    report = explore(path, seeds=seeds, faults="kill,clock,storm,signals", jobs=jobs,
                     shrink_failures=False)
    assert report["seeds"] == seeds
    return seeds / (RealClock.monotonic() - began), seeds / (_cpu() - cpu0)


def _cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=400)
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "quickstart_hour.py")
        Path(path).write_text(SCENARIO)
        run_one(path, 0, kinds=("kill",))  # warm imports
        one, one_cpu = seeds_per_second(path, args.seeds, 1)
        show("explore, quickstart hour, --jobs 1",
             f"{one:.0f}/s ({one_cpu:.0f}/CPU-s)", ">= 50 seeds/s/core", one_cpu >= 50)
        if args.jobs > 1:
            many, many_cpu = seeds_per_second(path, args.seeds, args.jobs)
            show(f"explore, quickstart hour, --jobs {args.jobs}",
                 f"{many:.0f}/s ({many / one:.2f}x)", f"~{args.jobs}x on idle cores",
                 many_cpu >= 50)
    spool_twice = str(ROOT / "scenarios" / "chaos" / "spool_twice.py")
    began = RealClock.monotonic()
    failing = run_one(spool_twice, 0, SHRINK_CASE)
    small, runs = shrink(spool_twice, failing)
    took = RealClock.monotonic() - began
    show("shrink spool_twice: 3 faults to 1", f"{took:.2f} s ({runs} runs)", "(report)",
         sum(isinstance(f, Kill) for f in FaultPlan.parse(small.plan)) == 1)


if __name__ == "__main__":
    main()
