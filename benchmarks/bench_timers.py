"""Benchmark: timers and cron in virtual time (plain script; mules: bench_mules.py).

Run: ``python benchmarks/bench_timers.py``. Prints each measurement, its target and the
ratio against the target, all measured in this run (best of ``ROUNDS`` interleaved
rounds):

1. a virtual day of ``add_timer(1, 1)`` delivered to ``workers`` with 4 workers
   (345,600 handler calls) — target >= 230,000 handler calls/s;
2. a virtual year of a per-minute ``add_cron`` with a trivial handler — target < 5 s;
3. the timer-day model of (1) written directly in SimPy — simuwsgi at least as fast.

Each measurement runs in a fresh interpreter (``--one NAME``), so that none pays for
the memory another left behind.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from simuwsgi import Simulation

_perf = time.perf_counter  # bound before any simulation patches the clock

TIMER_APP = """
import uwsgi
calls = 0
def tick(num):
    global calls
    calls += 1
uwsgi.register_signal(1, "workers", tick)
uwsgi.add_timer(1, 1)
def application(environ, start_response):
    start_response("200 OK", [])
    return [b"%d" % calls]
"""

CRON_APP = """
import uwsgi
def tick(num):
    pass
uwsgi.register_signal(1, "", tick)
uwsgi.add_cron(1, -1, -1, -1, -1, -1)
def application(environ, start_response):
    start_response("200 OK", [])
    return [b""]
"""

def _write(directory: Path, name: str, source: str) -> None:
    (directory / name).write_text(textwrap.dedent(source))


def bench_timer_day(tmp: Path) -> tuple[int, float]:
    _write(tmp, "timer_app.py", TIMER_APP)
    with Simulation(["--master", "--processes", "4", "--wsgi-file", "timer_app.py"],
                    app_dir=tmp) as sim:
        start = _perf()
        sim.advance(86400)
        elapsed = _perf() - start
        calls = sum(w.signals for w in sim.inst.workers.values())
    return calls, elapsed


def bench_cron_year(tmp: Path) -> tuple[int, float]:
    _write(tmp, "cron_app.py", CRON_APP)
    with Simulation(["--master", "--processes", "1", "--wsgi-file", "cron_app.py"],
                    app_dir=tmp) as sim:
        start = _perf()
        sim.advance(365 * 86400)
        elapsed = _perf() - start
        fired = sim.trace.count("cron.signal")
    return fired, elapsed


def bench_simpy_timer_day() -> tuple[int, float]:
    """The same model in SimPy: a 1 s timer process broadcasting to 4 worker processes."""
    import simpy

    env = simpy.Environment()
    counts = [0, 0, 0, 0]
    inboxes = [simpy.Store(env) for _ in counts]

    def timer(env: simpy.Environment):
        while True:
            yield env.timeout(1)
            for box in inboxes:
                box.put(1)

    def worker(env: simpy.Environment, index: int):
        box = inboxes[index]
        while True:
            yield box.get()
            counts[index] += 1

    env.process(timer(env))
    for i in range(len(counts)):
        env.process(worker(env, i))
    start = _perf()
    env.run(until=86400.5)
    return sum(counts), _perf() - start


def _measure(name: str) -> tuple[int, float]:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        gc.collect()
        if name == "timer_day":
            return bench_timer_day(tmp)
        if name == "cron_year":
            return bench_cron_year(tmp)
        if name == "simpy_timer_day":
            return bench_simpy_timer_day()
    raise ValueError(name)


def _isolated(name: str) -> tuple[int, float]:
    """``_measure(name)`` in a fresh interpreter."""
    out = subprocess.run([sys.executable, __file__, "--one", name], check=True,
                         capture_output=True, text=True).stdout
    count, seconds = json.loads(out.strip().splitlines()[-1])
    return count, seconds


#: Rounds of every measurement; each figure is the best round (the least disturbed by
#: the machine), and rounds interleave the measurements so that a slow minute of the
#: machine does not fall on one side of a ratio only.
ROUNDS = 3


def main() -> int:
    if sys.argv[1:2] == ["--one"]:
        print(json.dumps(_measure(sys.argv[2])))
        return 0
    names = ["timer_day", "simpy_timer_day", "cron_year"]
    best: dict[str, tuple[int, float]] = {}
    for _ in range(ROUNDS):
        for name in names:
            count, seconds = _isolated(name)
            if name not in best or seconds < best[name][1]:
                best[name] = (count, seconds)

    calls, t_timer = best["timer_day"]
    rate = calls / t_timer
    print(f"timer day: {calls} handler calls in {t_timer:.2f} s = {rate:,.0f}/s "
          f"(target 230,000/s, ratio {rate / 230000:.2f})")
    scalls, t_simpy = best["simpy_timer_day"]
    srate = scalls / t_simpy
    print(f"SimPy timer day: {scalls} handler calls in {t_simpy:.2f} s = {srate:,.0f}/s "
          f"(simuwsgi/SimPy speed ratio {rate / srate:.2f}, target >= 1)")
    fired, t_cron = best["cron_year"]
    print(f"cron year: {fired} firings in {t_cron:.2f} s (target < 5 s, "
          f"ratio {5 / t_cron:.2f})")
    print(f"(best of {ROUNDS} interleaved rounds, each measurement in a fresh interpreter)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
