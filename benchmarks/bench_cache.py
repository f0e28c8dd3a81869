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


def run_sim(app_dir: Path, n: int) -> float:
    from simuwsgi import Simulation

    with Simulation(OPTIONS, app_dir=app_dir) as sim:
        sim.get(f"/?{n // 10}")                      # warm up
        out = json.loads(sim.get(f"/?{n}").body)
    return out["ops"] / out["seconds"]


def run_real(app_dir: Path, n: int) -> float:
    from simuwsgi.real import RealUwsgi

    with RealUwsgi(OPTIONS, app_dir=app_dir, max_lifetime=120) as u:
        u.get(f"/?{n // 10}", timeout=60)
        out = json.loads(u.get(f"/?{n}", timeout=60).body)
    return out["ops"] / out["seconds"]


def main(argv: list[str]) -> int:
    n = int(argv[1]) if len(argv) > 1 else 400_000
    app_dir = Path(tempfile.mkdtemp(prefix="bench-cache-"))
    (app_dir / "app.py").write_text(APP)
    sim = run_sim(app_dir, n)
    real = run_real(app_dir, n)
    print(f"simuwsgi : {sim:12,.0f} cache ops/s  (target >= 500,000)")
    print(f"uWSGI    : {real:12,.0f} cache ops/s")
    print(f"ratio    : {sim / real:.2f}x  (target >= 0.5x)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
