"""Benchmark: each cache operation from app code, simuwsgi vs a real uWSGI worker.

The same app runs in a simulation and in a real uWSGI 2.0.30 worker (pyuwsgi, started
plainly: ``uwsgi --http-socket ... --wsgi-file app.py``, no real-mode wrapper). A request
``/?op=OP&n=N`` runs N calls of one operation in a loop inside the handler and times it
with ``time.thread_time`` (CPU time of the calling thread; the simulator patches the
wall and monotonic clocks, not the CPU clocks). Not ``process_time``: in a process with
a second thread (the simulation's stall watchdog) it advances in scheduler ticks of
~4 ms on Linux, as long as a whole measurement of the fastest operations. Each round
measures every operation on both sides, alternating, so a slow minute of the machine
lands on both; both sides run pinned to the same CPU (``taskset``/``sched_setaffinity``).
Prints, per operation, best and median ops/s of each side and the ratio, and a verdict
against issue 17's target (>= 1x real).
``SIMUWSGI_PURE_PYTHON=1`` measures the pure-Python fast paths instead of the C ones.

    python benchmarks/bench_cache.py [N] [--rounds R]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from _util import PlainUwsgi

APP = '''
import json, time, uwsgi

KEYS = [b"key%d" % i for i in range(100_000)]


def run(op, n):
    keys = KEYS[:n]
    get, set_, update, delete = uwsgi.cache_get, uwsgi.cache_set, uwsgi.cache_update, uwsgi.cache_del
    exists, inc = uwsgi.cache_exists, uwsgi.cache_inc
    t0 = time.thread_time()
    if op == "set":            # n new keys
        for k in keys:
            set_(k, b"value")
    elif op == "get":          # n hits
        for k in keys:
            get(k)
    elif op == "exists":
        for k in keys:
            exists(k)
    elif op == "update":       # n overwrites of existing keys
        for k in keys:
            update(k, b"other")
    elif op == "inc":          # n increments of one counter
        for _ in keys:
            inc(b"counter")
    elif op == "del":          # n deletions of existing keys
        for k in keys:
            delete(k)
    return time.thread_time() - t0


def application(environ, start_response):
    q = dict(p.split("=") for p in environ["QUERY_STRING"].split("&"))
    seconds = run(q["op"], int(q["n"]))
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({"seconds": seconds}).encode()]
'''

#: set, get, exists, update, del leave the cache as they found it; inc grows one key.
OPS = ("set", "get", "exists", "update", "inc", "del")
OPTIONS = ["--master", "--processes", "1", "--cache2", "name=default,items=200000,blocksize=64",
           "--wsgi-file", "app.py"]
CPU = 0


def main(argv: list[str]) -> int:
    from simuwsgi import Simulation

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv[1:])
    n = args.n
    os.sched_setaffinity(0, {CPU})
    rates: dict[str, dict[str, list[float]]] = {op: {"sim": [], "real": []} for op in OPS}
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as tmp:
        (Path(tmp) / "app.py").write_text(APP)
        real = PlainUwsgi(OPTIONS, Path(tmp), cpu=CPU, probe="/?op=get&n=1")
        try:
            with Simulation(OPTIONS, app_dir=tmp) as sim:
                sides = {"sim": lambda path: sim.get(path).body, "real": real.get}
                for get in sides.values():              # warm up both
                    for op in OPS:
                        get(f"/?op={op}&n={n // 10}")
                for _ in range(args.rounds):
                    for op in OPS:
                        for side, get in sides.items():
                            seconds = json.loads(get(f"/?op={op}&n={n}"))["seconds"]
                            rates[op][side].append(n / seconds)
        finally:
            real.stop()
    from simuwsgi.subsystems import cache

    print(f"cache operations from app code, {n:,} calls per measurement, {args.rounds} "
          f"interleaved rounds, both sides pinned to CPU {CPU}; ops/s best (median)")
    print("simuwsgi's fast paths: " + ("C accelerator (_ccache)" if cache._c is not None else
                                       "pure Python (SIMUWSGI_PURE_PYTHON or not built)"))
    print(f"{'op':<8} {'simuwsgi':>24} {'real uWSGI worker':>24} {'ratio':>14}   verdict (>= 1x)")
    missed = []
    for op in OPS:
        sim_r, real_r = rates[op]["sim"], rates[op]["real"]
        best = max(sim_r) / max(real_r)
        if best < 1.0:
            missed.append(op)
        median = statistics.median(sim_r) / statistics.median(real_r)
        print(f"{op:<8} {max(sim_r):>11,.0f} ({statistics.median(sim_r):>10,.0f}) "
              f"{max(real_r):>11,.0f} ({statistics.median(real_r):>10,.0f}) "
              f"{best:>6.2f}x ({median:.2f}x)   {'met' if best >= 1.0 else 'NOT MET'}")
    print("target 9 (every operation >= 1x a real worker): "
          + ("met" if not missed else f"NOT MET ({', '.join(missed)} below 1x)"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
