"""Benchmark: mule round trips, simuwsgi vs real uWSGI (issue 17 target 7: >= 2x).

One round trip: the worker's request handler sends ``mule_msg(b"ping", 1)`` and waits
in ``signal_wait(7)``; the mule's ``mule_get_msg()`` returns and it raises signal 7,
which the master routes to ``worker1`` (handler ``pong``). The same app and options
run in a simulation and in a real uWSGI 2.0.30 (pyuwsgi, started plainly: ``uwsgi
--http-socket ... --mule=...``, no real-mode wrapper). A request ``/?n=N`` runs N round
trips; the benchmark times it from outside with the real clock (the round trip of the
real side involves three processes, so the CPU time of one would undercount it).
Every process of both sides is pinned to the same CPU (``taskset`` for real uWSGI and
its children, ``sched_setaffinity`` for this process and its simulation), and each
round measures both sides, alternating, so a slow minute of the machine lands on both.
Prints best and median round trips/s of each side, the ratio and a verdict; then the
same per CPU second (the simulation's process time; the CPU time of every process of
real uWSGI), the fair cost on a loaded machine, where a CPU shared with other programs
gives each runnable process a share and so favours the side with more processes; and, as
the floor under the simulated round trip, the same process switching on simuwsgi's
kernel alone (no uWSGI semantics, trace or virtual fork).

    python benchmarks/bench_mules.py [N] [--rounds R]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _util import PlainUwsgi

from simuwsgi._core.clock import RealClock

APP = '''
import uwsgi


def pong(num):
    pass


uwsgi.register_signal(7, "worker1", pong)


def application(environ, start_response):
    n = int(environ["QUERY_STRING"].partition("=")[2])
    for _ in range(n):
        uwsgi.mule_msg(b"ping", 1)
        uwsgi.signal_wait(7)
    start_response("200 OK", [])
    return [b"%d" % n]
'''

MULE = '''
import uwsgi

while True:
    uwsgi.mule_get_msg()
    uwsgi.signal(7)
'''

OPTIONS = ["--master", "--processes", "1", "--mule=mule.py", "--wsgi-file", "app.py"]
CPU = 0
TARGET = 2.0

#: The real CPU clock (a running simulation patches the wall and monotonic clocks only).
_process_time = time.process_time


def kernel_floor(n: int) -> float:
    """Round trips/s of the switching alone: the worker queues a message and wakes the
    mule, the mule takes it and posts a master event, the master event wakes the worker."""
    from collections import deque

    from simuwsgi._core.kernel import Kernel, Process

    kernel = Kernel(0)
    queue: deque[bytes] = deque()
    procs: dict[str, Process] = {}

    def master_route(_num: int) -> None:
        kernel.wake(procs["worker"], None)

    def worker() -> None:
        for _ in range(n):
            queue.append(b"ping")
            kernel.wake(procs["mule"], None)
            kernel.park("signal_wait")

    def mule() -> None:
        while True:
            kernel.park("mule_get_msg")
            queue.popleft()
            kernel.call_soon(master_route, 7)

    procs["worker"] = Process(kernel, "worker", 1, worker)
    procs["mule"] = Process(kernel, "mule", 2, mule)
    kernel.start(procs["mule"])
    kernel.wake(procs["worker"], None)
    began = RealClock.monotonic()
    kernel.run_until(1.0)
    seconds = RealClock.monotonic() - began
    kernel.close()
    return n / seconds


def main(argv: list[str]) -> int:
    from simuwsgi import Simulation

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv[1:])
    n = args.n
    os.sched_setaffinity(0, {CPU})
    rates: dict[str, list[float]] = {"sim": [], "real": [], "floor": [], "sim_cpu": [],
                                     "real_cpu": []}
    with tempfile.TemporaryDirectory(prefix="bench-mules-") as tmp:
        (Path(tmp) / "app.py").write_text(APP)
        (Path(tmp) / "mule.py").write_text(MULE)
        real = PlainUwsgi(OPTIONS, Path(tmp), cpu=CPU, probe="/?n=1")
        try:
            with Simulation(OPTIONS, app_dir=tmp) as sim:
                sides = {"sim": lambda path: sim.get(path).body, "real": real.get}
                cpu = {"sim": _process_time, "real": real.cpu_seconds}
                for get in sides.values():              # warm up both
                    get(f"/?n={n // 10}")
                for _ in range(args.rounds):
                    for side, get in sides.items():
                        began, cpu_began = RealClock.monotonic(), cpu[side]()
                        body = get(f"/?n={n}")
                        seconds = RealClock.monotonic() - began
                        cpu_seconds = cpu[side]() - cpu_began
                        assert int(body) == n, body
                        rates[side].append(n / seconds)
                        rates[f"{side}_cpu"].append(n / cpu_seconds)
                    rates["floor"].append(kernel_floor(n))
        finally:
            real.stop()
    sim_r, real_r = rates["sim"], rates["real"]
    best = max(sim_r) / max(real_r)
    median = statistics.median(sim_r) / statistics.median(real_r)
    print(f"mule round trips (worker -> mule_msg -> mule -> signal 7 -> master -> worker1), "
          f"{n:,} per measurement, {args.rounds} interleaved rounds, every process of both "
          f"sides pinned to CPU {CPU}; load average {os.getloadavg()[0]:.1f}")
    for label, side in (("simuwsgi", sim_r), ("real uWSGI 2.0.30", real_r)):
        print(f"{label:<18} {max(side):>10,.0f}/s best  {statistics.median(side):>10,.0f}/s median")
    sim_c, real_c = rates["sim_cpu"], rates["real_cpu"]
    print(f"per CPU second: simuwsgi {max(sim_c):,.0f} best {statistics.median(sim_c):,.0f} "
          f"median, real uWSGI {max(real_c):,.0f} best {statistics.median(real_c):,.0f} "
          f"median: ratio {max(sim_c) / max(real_c):.2f}x best "
          f"{statistics.median(sim_c) / statistics.median(real_c):.2f}x median")
    print(f"  the kernel's switching alone {max(rates['floor']):>10,.0f}/s best  "
          f"{statistics.median(rates['floor']):>10,.0f}/s median (the floor under simuwsgi)")
    print(f"target 7 (>= {TARGET:g}x real): ratio {best:.2f}x best, {median:.2f}x median   "
          f"{'met' if best >= TARGET else 'NOT MET'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
