"""Foundation benchmarks (issue: foundation), ratios measured in the same run.

* kernel: bare events per second, and against SimPy's event rate for the same model
  (a chain of timeouts); targets >= 1,000,000/s and >= 1.5x SimPy;
* ``time.time()`` called from app code inside a simulation vs the unpatched call;
  target < 3x;
* fixture setup + teardown of a 4-worker instance: median < 5 ms.

Run: python benchmarks/bench_kernel.py
"""

from __future__ import annotations

import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _util import best_rate, median_seconds, show  # noqa: E402

from simuwsgi import Simulation  # noqa: E402
from simuwsgi.kernel import Kernel  # noqa: E402

N = 300_000


def kernel_events() -> int:
    k = Kernel()
    post = k.post

    def tick() -> None:
        post(1.0, tick)

    for _ in range(10):
        post(0.0, tick)
    k.run_until(N / 10 - 1)
    return k.events_run


def simpy_events() -> int:
    import simpy

    env = simpy.Environment()

    def ticker(env: simpy.Environment):
        while True:
            yield env.timeout(1.0)

    for _ in range(10):
        env.process(ticker(env))
    env.run(until=N / 10)
    return N


def time_call_cost() -> tuple[float, float]:
    from simuwsgi.clock import _R

    calls = 1_000_000

    def loop(fn) -> float:
        def run() -> int:
            for _ in range(calls // 10):
                fn(); fn(); fn(); fn(); fn(); fn(); fn(); fn(); fn(); fn()
            return calls
        return 1e9 / best_rate(run)

    real_ns = loop(_R.time)
    app = textwrap.dedent("""
        def application(env, sr):
            sr("200 OK", [])
            return [b""]
    """)
    with tempfile.TemporaryDirectory() as d:
        Path(d, "app.py").write_text(app)
        with Simulation(["--master", "--wsgi-file", "app.py"], app_dir=d):
            patched_ns = loop(time.time)
    return real_ns, patched_ns


def fixture_cost() -> float:
    with tempfile.TemporaryDirectory() as d:
        Path(d, "app.py").write_text("import uwsgi\ncounter = 0\n"
                                     "def application(e, sr):\n    sr('200 OK', [])\n    return [b'']\n")

        def once() -> None:
            sim = Simulation(["--master", "--processes", "4", "--wsgi-file", "app.py"], app_dir=d)
            sim.start()
            sim.close()

        once()
        return median_seconds(once, repeat=40)


def main() -> None:
    ours = best_rate(kernel_events)
    theirs = best_rate(simpy_events)
    show("kernel bare events/s", f"{ours:,.0f}", ">= 1,000,000", ours >= 1_000_000)
    show("kernel vs SimPy (same model, same run)", f"{ours / theirs:.2f}x ({theirs:,.0f}/s)",
         ">= 1.5x", ours / theirs >= 1.5)
    real_ns, patched_ns = time_call_cost()
    show("time.time() in a simulation vs unpatched", f"{patched_ns:.0f} ns vs {real_ns:.0f} ns "
         f"({patched_ns / real_ns:.2f}x)", "< 3x", patched_ns / real_ns < 3)
    cost = fixture_cost()
    show("setup+teardown of a 4-worker instance (median)", f"{cost * 1000:.2f} ms", "< 5 ms",
         cost < 0.005)


if __name__ == "__main__":
    main()
