"""Benchmark: N tasks spooled by workers and completed by the spooler, in virtual time.

Every task is a real spool file (written, locked, scanned, read, unlinked) in a tmpfs
directory when ``/dev/shm`` exists. Reports wall-clock tasks/s for the whole run
(spooling + processing) and the peak memory (the process's max RSS; with ``--tracemalloc``
also the peak of Python allocations, at the cost of a slower run).

Usage: ``python benchmarks/bench_spooler.py [--tasks 100000] [--per-request 1000]
[--verbose-log]`` (``--spooler-quiet`` is used unless ``--verbose-log``).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
import tracemalloc
from pathlib import Path

from simuwsgi import Simulation

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


def run(tasks: int, per_request: int, quiet: bool, base: Path,
        trace_memory: bool = False) -> dict[str, float]:
    (base / "app.py").write_text(APP)
    opts = ["--master", "--processes", "2", "--spooler", str(base / "spool"),
            "--wsgi-file", "app.py"]
    if quiet:
        opts.append("--spooler-quiet")
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
    ap.add_argument("--verbose-log", action="store_true")
    ap.add_argument("--tracemalloc", action="store_true",
                    help="also measure the peak of Python allocations (slows the run ~2x)")
    args = ap.parse_args()
    root = "/dev/shm" if os.path.isdir("/dev/shm") else None
    base = Path(tempfile.mkdtemp(prefix="bench-spooler-", dir=root))
    try:
        res = run(args.tasks, args.per_request, not args.verbose_log, base, args.tracemalloc)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"directory: {base.parent} ({'tmpfs' if root else 'default temp dir'})")
    print(f"tasks: {args.tasks} ({args.per_request} per request), "
          f"log: {'full' if args.verbose_log else '--spooler-quiet'}")
    print(f"wall: {res['elapsed']:.2f} s -> {res['tasks_per_s']:,.0f} tasks/s")
    print(f"cpu (user+sys of this process): {res['cpu']:.2f} s -> "
          f"{res['tasks_per_cpu_s']:,.0f} tasks/s (the wall figure on an idle machine)")
    if args.tracemalloc:
        print(f"peak traced memory (tracemalloc): {res['peak_mb']:.1f} MiB")
    print(f"max RSS of the process: {rss:.1f} MiB")


if __name__ == "__main__":
    main()
