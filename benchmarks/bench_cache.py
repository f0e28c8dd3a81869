"""Benchmark: cache_get/cache_set from app code, simuwsgi vs a real uWSGI worker.

The same loop (N alternating ``cache_set``/``cache_get`` calls on a rotating key set,
with ``cache_del`` to keep the cache from filling) runs inside a request handler, once
in a simulation and once in a real uWSGI worker; the handler times itself with
``time.perf_counter`` (real elapsed time in both cases: the simulator patches the wall
and monotonic clocks, not the CPU clock). Prints ops/s for both and the ratio.

    python benchmarks/bench_cache.py [N]
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

APP = '''
import json, time, uwsgi

def application(environ, start_response):
    n = int(environ["QUERY_STRING"] or "200000")
    keys = [b"key%d" % i for i in range(64)]
    get, set_, delete = uwsgi.cache_get, uwsgi.cache_set, uwsgi.cache_del
    t0 = time.process_time()
    for i in range(n // 2):
        k = keys[i & 63]
        if set_(k, b"value") is None:
            delete(k)
        get(k)
    elapsed = time.process_time() - t0
    start_response("200 OK", [])
    return [json.dumps({"ops": n, "seconds": elapsed}).encode()]
'''

OPTIONS = ["--master", "--processes", "1", "--cache", "100", "--wsgi-file", "app.py"]


def _app_dir(directory: Path) -> Path:
    (directory / "app.py").write_text(APP)
    return directory


def main(argv: list[str]) -> int:
    """Best of ROUNDS interleaved rounds on each side (the machine's speed drifts)."""
    from simuwsgi import Simulation
    from simuwsgi.real import RealUwsgi

    n = int(argv[1]) if len(argv) > 1 else 400_000
    rounds = 5
    sim_rates, real_rates = [], []
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as tmp, \
            RealUwsgi(OPTIONS, app_dir=_app_dir(Path(tmp)), max_lifetime=300) as real, \
            Simulation(OPTIONS, app_dir=tmp) as sim:
        sim.get(f"/?{n // 10}")                      # warm up both
        real.get(f"/?{n // 10}", timeout=60)
        for _ in range(rounds):
            out = json.loads(sim.get(f"/?{n}").body)
            sim_rates.append(out["ops"] / out["seconds"])
            out = json.loads(real.get(f"/?{n}", timeout=60).body)
            real_rates.append(out["ops"] / out["seconds"])
    best_sim, best_real = max(sim_rates), max(real_rates)
    print(f"simuwsgi : {best_sim:12,.0f} cache ops/s  (target >= 500,000; best of {rounds})")
    print(f"uWSGI    : {best_real:12,.0f} cache ops/s  (same loop in a real worker)")
    print(f"ratio    : {best_sim / best_real:.2f}x  (target >= 0.5x)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
