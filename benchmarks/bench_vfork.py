"""Virtual-fork benchmark (issue 17, target 3): a switch between virtual processes costs
the same whatever the size of the app.

Two apps run the same workload: a 1 s timer raises a signal handled by ``workers`` (two
workers, so every firing switches into each worker's handler in turn):

* small: the app module has 10 globals;
* large: the app imports 100 modules of 100 globals each (10,000 globals);
* and, for reference, the small app with ``vfork=False`` (no per-process copies at all).

The rate is handler calls per second of wall time over ``FIRINGS`` firings (start-up not
counted). Rounds are interleaved (small, large, small, large, ...) so that a slow minute
of the machine does not land on one side of the ratio; best and median are printed.

Target: large >= 0.8x small.

Run: python benchmarks/bench_vfork.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _util import show

from simuwsgi import Simulation
from simuwsgi._core.clock import RealClock

FIRINGS = 50_000
ROUNDS = 5
TARGET = 0.8
MODULES = 100
GLOBALS_PER_MODULE = 100

HANDLER = """
import uwsgi

def tick(num):
    pass

uwsgi.register_signal(17, "workers", tick)
uwsgi.add_timer(17, 1)

def application(environ, start_response):
    start_response("200 OK", [])
    return [b"ok"]
"""


def _write_small(d: Path) -> Path:
    d.mkdir()
    names = "".join(f"g{i} = {{'n': {i}}}\n" for i in range(10))
    (d / "app.py").write_text(names + HANDLER)
    return d


def _write_large(d: Path) -> Path:
    d.mkdir()
    for m in range(MODULES):
        body = "".join(f"g{i} = {{'n': {i}}}\n" for i in range(GLOBALS_PER_MODULE))
        (d / f"mod{m}.py").write_text(body)
    imports = "".join(f"import mod{m}\n" for m in range(MODULES))
    (d / "app.py").write_text(imports + HANDLER)
    return d


def handler_rate(app_dir: Path, vfork: bool = True) -> float:
    with Simulation(["--master", "--processes", "2", "--wsgi-file", "app.py"],
                    app_dir=app_dir, vfork=vfork) as sim:
        began = RealClock.monotonic()
        sim.advance(FIRINGS + 0.5)
        elapsed = RealClock.monotonic() - began
        return sim.trace.count("signal.handler") / elapsed


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench_vfork_") as tmp:
        apps = {"small": _write_small(Path(tmp) / "small"),
                "large": _write_large(Path(tmp) / "large")}
        runs = {"small": (apps["small"], True), "large": (apps["large"], True),
                "shared": (apps["small"], False)}
        rates: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(ROUNDS):
            for name, (app_dir, vfork) in runs.items():
                rates[name].append(handler_rate(app_dir, vfork))
    for name, label in (("small", "10 globals"),
                        ("large", f"{MODULES * GLOBALS_PER_MODULE:,} globals in {MODULES} modules"),
                        ("shared", "10 globals, vfork=False (no copies)")):
        print(f"{label:<40} best {max(rates[name]):>10,.0f}  median "
              f"{statistics.median(rates[name]):>10,.0f} handler calls/s")
    best = max(rates["large"]) / max(rates["small"])
    median = statistics.median(rates["large"]) / statistics.median(rates["small"])
    show("vfork: large app / small app handler rate", f"{best:.2f}x (median {median:.2f}x)",
         f">= {TARGET}x", best >= TARGET)


if __name__ == "__main__":
    main()
