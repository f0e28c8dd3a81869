"""Benchmark: N tasks spooled by workers and completed by the spooler, simuwsgi vs real.

Every task is a real spool file (written, locked, scanned, read, unlinked) in a tmpfs
directory when ``/dev/shm`` exists, on both sides. The simulation runs the app in
virtual time; real uWSGI 2.0.30 (pyuwsgi, started plainly) runs the same app and options.
Both are pinned to the same CPU and measured in interleaved rounds: wall time from the
first request to the last task done (real: the spool directory is empty again). Prints
best and median tasks/s of each side, the ratio and the verdict against issue 17's target
(>= 1x real); the same per CPU second (the simulation's process time; the CPU time of
every process of real uWSGI), the fair cost on a loaded machine, where a CPU shared with
other programs gives each runnable process a share and so favours the side with more
processes; and the simulation's peak memory (max RSS; with ``--tracemalloc`` the peak
of Python allocations, at the cost of a slower run).

Usage: ``python benchmarks/bench_spooler.py [--tasks 100000] [--per-request 1000]
[--rounds 3] [--verbose-log]`` (``--spooler-quiet`` is used unless ``--verbose-log``).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

from _util import PlainUwsgi

from simuwsgi import Simulation
from simuwsgi._core.clock import RealClock

CPU = 0

#: The real clocks (a running simulation patches ``time`` with its virtual clock).
_perf_counter = time.perf_counter
_process_time = time.process_time

APP = '''
import uwsgi

def spooler(task):
    return uwsgi.SPOOL_OK

uwsgi.spooler = spooler

def application(env, start_response):
    n = int(env["QUERY_STRING"])
    for i in range(n):
        uwsgi.spool({b"task": b"job", b"n": b"%d" % i})
    start_response("200 OK", [])
    return [b"ok"]
'''


def options(base: Path, quiet: bool) -> list[str]:
    opts = ["--master", "--processes", "2", "--spooler", str(base / "spool"),
            "--wsgi-file", "app.py"]
    return [*opts, "--spooler-quiet"] if quiet else opts


def run_real(tasks: int, per_request: int, quiet: bool, base: Path) -> tuple[float, float]:
    """Tasks/s of real uWSGI from the first request until the spool directory is empty,
    and tasks per CPU second of all its processes over that time."""
    (base / "app.py").write_text(APP)
    (base / "spool").mkdir(exist_ok=True)
    real = PlainUwsgi(options(base, quiet), base, cpu=CPU, probe="/?0")
    try:
        started, cpu_started = RealClock.monotonic(), real.cpu_seconds()
        sent = 0
        while sent < tasks:
            n = min(per_request, tasks - sent)
            assert real.get(f"/?{n}") == b"ok"
            sent += n
        spool = base / "spool"
        while any(spool.iterdir()):
            RealClock.sleep(0.001)
        elapsed = RealClock.monotonic() - started
        return tasks / elapsed, tasks / (real.cpu_seconds() - cpu_started)
    finally:
        real.stop()


def run(tasks: int, per_request: int, quiet: bool, base: Path,
        trace_memory: bool = False) -> dict[str, float]:
    (base / "app.py").write_text(APP)
    opts = options(base, quiet)
    if trace_memory:
        tracemalloc.start()
    started = _perf_counter()
    cpu_started = _process_time()
    with Simulation(opts, app_dir=base) as sim:
        sent = 0
        while sent < tasks:
            n = min(per_request, tasks - sent)
            assert sim.get(f"/?{n}").status == 200
            sent += n
            sim.advance(0)
        sim.advance(1)
        elapsed = _perf_counter() - started
        cpu = _process_time() - cpu_started
        spooler = sim.inst.subsystems["spooler"]
        done = sim.trace.count("spool.remove", reason="done")
        left = len(spooler.pending())
    peak = 0
    if trace_memory:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert done == tasks and left == 0, (done, left)
    return {"elapsed": elapsed, "tasks_per_s": tasks / elapsed, "cpu": cpu,
            "tasks_per_cpu_s": tasks / cpu, "peak_mb": peak / 2**20}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=100_000)
    ap.add_argument("--per-request", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--verbose-log", action="store_true")
    ap.add_argument("--tracemalloc", action="store_true",
                    help="also measure the peak of Python allocations (slows the run ~2x)")
    args = ap.parse_args()
    quiet = not args.verbose_log
    root = "/dev/shm" if os.path.isdir("/dev/shm") else None
    os.sched_setaffinity(0, {CPU})
    sim_rates: list[float] = []
    real_rates: list[float] = []
    sim_cpu: list[float] = []
    real_cpu: list[float] = []
    peak_mb = 0.0
    for _ in range(args.rounds):
        for side in ("sim", "real"):
            base = Path(tempfile.mkdtemp(prefix="bench-spooler-", dir=root))
            try:
                if side == "sim":
                    res = run(args.tasks, args.per_request, quiet, base, args.tracemalloc)
                    sim_rates.append(res["tasks_per_s"])
                    sim_cpu.append(res["tasks_per_cpu_s"])
                    peak_mb = max(peak_mb, res["peak_mb"])
                else:
                    rate, cpu_rate = run_real(args.tasks, args.per_request, quiet, base)
                    real_rates.append(rate)
                    real_cpu.append(cpu_rate)
            finally:
                shutil.rmtree(base, ignore_errors=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    best, median = max(sim_rates) / max(real_rates), (statistics.median(sim_rates)
                                                      / statistics.median(real_rates))
    print(f"directory: {root or 'default temp dir'}; {args.tasks:,} tasks "
          f"({args.per_request} per request); log: {'--spooler-quiet' if quiet else 'full'}; "
          f"{args.rounds} interleaved rounds, both sides pinned to CPU {CPU}; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"simuwsgi   : {max(sim_rates):>9,.0f} tasks/s best ({statistics.median(sim_rates):,.0f} median)")
    print(f"real uWSGI : {max(real_rates):>9,.0f} tasks/s best ({statistics.median(real_rates):,.0f} median)")
    print(f"ratio      : {best:.2f}x best ({median:.2f}x median)   target >= 1x: "
          f"{'met' if best >= 1.0 else 'NOT MET'}")
    print(f"per CPU s  : simuwsgi {max(sim_cpu):,.0f} best ({statistics.median(sim_cpu):,.0f} "
          f"median), real uWSGI {max(real_cpu):,.0f} best ({statistics.median(real_cpu):,.0f} "
          f"median): {max(sim_cpu) / max(real_cpu):.2f}x best "
          f"({statistics.median(sim_cpu) / statistics.median(real_cpu):.2f}x median)")
    if args.tracemalloc:
        print(f"peak traced memory (tracemalloc): {peak_mb:.1f} MiB")
    print(f"max RSS of the benchmark process: {rss:.1f} MiB")


if __name__ == "__main__":
    main()
