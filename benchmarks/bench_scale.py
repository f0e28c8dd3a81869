"""Scale benchmarks (issue 17, targets 1, 2 and 4): memory across tests and long runs,
and the cost of a request as requests and workers grow.

1. **No leak across simulations**: a pytest suite of ``TESTS`` tests (200; ``--quick``:
   40), each advancing a virtual hour of a 4-worker app with a 1 s timer through the
   ``uwsgi_sim`` fixture (the app of 2.); the RSS after the last test is within 20 MB of
   the RSS after the first.
2. **Bounded long runs**: a 1 s timer to 4 workers + a per-minute cron + 1 request/s,
   default settings, for 30 virtual days (``--quick``: 2): peak RSS < 300 MB and wall
   time < 60 s (goal 30 s). ``--year`` also runs one virtual year (it must complete).
3. **Linear in requests**: 10^6 requests submitted in batches of 10^4 (``--quick``:
   2*10^5) at >= 0.9x the per-request rate of 10^4.
4. **Linear in workers**: the same 2*10^5 requests (batches of 10^4) dispatched to 256
   workers at >= 0.8x the rate with 4 workers.

Each measurement runs in a fresh interpreter; rounds interleave the measurements
(``ROUNDS``, ``--quick``: 1 round for the long run and the suite); each line prints the
best and the median and a verdict. The ratios of 3. and 4. compare CPU-time rates (the
process's own time; wall-time rates are printed beside them): on a shared machine a
long round is more likely than a short one to lose wall time to other work.

Run: ``python benchmarks/bench_scale.py [--quick] [--year]``
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

_perf = time.perf_counter  # bound before any simulation patches the clock
_cpu = time.process_time

ROUNDS = 3

APP = """
import uwsgi
calls = 0
def tick(num):
    global calls
    calls += 1
def cron(num):
    pass
uwsgi.register_signal(1, "workers", tick)
uwsgi.add_timer(1, 1)
uwsgi.register_signal(2, "", cron)
uwsgi.add_cron(2, -1, -1, -1, -1, -1)
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"%d" % calls]
"""

PLAIN_APP = """
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
"""

SUITE = """
import pytest

@pytest.mark.parametrize("n", range({tests}))
@pytest.mark.uwsgi("--master", "--processes", "4", "--wsgi-file", "app.py")
def test_an_hour(uwsgi_sim, n):
    uwsgi_sim.advance(3600)
    assert uwsgi_sim.get("/").status == 200
"""

SUITE_CONFTEST = """
import json

RSS = []

def pytest_runtest_logfinish(nodeid, location):
    with open("/proc/self/statm") as f:
        RSS.append(int(f.read().split()[1]) * 4096)

def pytest_sessionfinish(session):
    with open("rss.json", "w") as f:
        json.dump(RSS, f)
"""


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- the measurements (each in a fresh interpreter) ---------------------------------------
def suite(tests: int) -> dict[str, float]:
    """Target 1: RSS after the first and the last test of a pytest suite."""
    with tempfile.TemporaryDirectory() as d:
        Path(d, "app.py").write_text(textwrap.dedent(APP))
        Path(d, "test_hours.py").write_text(textwrap.dedent(SUITE.format(tests=tests)))
        Path(d, "conftest.py").write_text(textwrap.dedent(SUITE_CONFTEST))
        began = _perf()
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "test_hours.py"], cwd=d, check=True, capture_output=True)
        rss = json.loads(Path(d, "rss.json").read_text())
    return {"first_mb": rss[0] / 1e6, "last_mb": rss[-1] / 1e6, "wall": _perf() - began}


def long_run(days: float) -> dict[str, float]:
    """Target 2: the timer + cron + 1 request/s load for ``days`` virtual days."""
    from simuwsgi import Simulation

    step = 600
    with tempfile.TemporaryDirectory() as d:
        Path(d, "app.py").write_text(textwrap.dedent(APP))
        began, cpu = _perf(), _cpu()
        with Simulation(["--master", "--processes", "4", "--wsgi-file", "app.py"],
                        app_dir=d) as sim:
            total = int(days * 86400)
            while sim.now < total:
                base = sim.now
                requests = [sim.submit("GET", "/", at=base + i) for i in range(step)]
                sim.advance(step)
                assert requests[-2].response.status == 200
            wall, cpu = _perf() - began, _cpu() - cpu
            records = len(sim.trace)
            lines = len(sim.log)
    return {"wall": wall, "cpu": cpu, "peak_mb": _peak_mb(), "records": records,
            "log_lines": lines}


def requests(total: int, workers: int, batch: int = 10_000) -> dict[str, float]:
    """Targets 3 and 4: ``total`` requests to ``workers`` workers, submitted in batches of
    ``batch`` one virtual millisecond apart (so each finds every worker idle and the
    dispatcher chooses among all of them)."""
    from simuwsgi import Simulation

    with tempfile.TemporaryDirectory() as d:
        Path(d, "app.py").write_text(textwrap.dedent(PLAIN_APP))
        with Simulation(["--master", "--processes", str(workers), "--listen", str(batch),
                         "--wsgi-file", "app.py"], app_dir=d) as sim:
            sim.get("/")
            began, cpu = _perf(), _cpu()
            done = 0
            while done < total:
                base = sim.now
                handles = [sim.submit("GET", "/", at=base + i / 1000) for i in range(batch)]
                sim.wait(handles)
                done += batch
            elapsed, cpu = _perf() - began, _cpu() - cpu
            assert handles[-1].response.status == 200
    return {"rate": total / elapsed, "cpu_rate": total / cpu, "peak_mb": _peak_mb()}


def _isolated(name: str, *args: int | float) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, "--one", name, *map(str, args)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _rounds(jobs: dict[str, tuple], rounds: int) -> dict[str, list[dict[str, float]]]:
    """Every job once per round, rounds interleaved."""
    results: dict[str, list[dict[str, float]]] = {name: [] for name in jobs}
    for _ in range(rounds):
        for name, (fn, *args) in jobs.items():
            results[name].append(_isolated(fn, *args))
    return results


def _spread(values: list[float], fmt: str = "{:,.0f}") -> str:
    return f"best {fmt.format(max(values))} median {fmt.format(statistics.median(values))}"


def _ratio_verdict(name: str, base: list[dict[str, float]], other: list[dict[str, float]],
                   target: float, base_name: str, other_name: str) -> None:
    """Per-round ratios of the CPU-time rates (the process's own time: a busy machine
    slows a long round more than a short one in wall time); wall rates shown too."""
    ratios = [b["cpu_rate"] / a["cpu_rate"] for a, b in zip(base, other)]
    verdict(name, max(ratios) >= target,
            f"ratio best {max(ratios):.2f} median {statistics.median(ratios):.2f} (target "
            f">= {target}, CPU time); {base_name}: {_spread([r['cpu_rate'] for r in base])}/s "
            f"CPU, {_spread([r['rate'] for r in base])}/s wall; {other_name}: "
            f"{_spread([r['cpu_rate'] for r in other])}/s CPU, "
            f"{_spread([r['rate'] for r in other])}/s wall; peak RSS "
            f"{max(r['peak_mb'] for r in other):.0f} MB")


def verdict(name: str, ok: bool, detail: str) -> None:
    print(f"{'MET    ' if ok else 'NOT MET'} {name}: {detail}")


def main() -> int:
    if sys.argv[1:2] == ["--one"]:
        fn = {"suite": suite, "long_run": long_run, "requests": requests}[sys.argv[2]]
        args = [float(a) if "." in a else int(a) for a in sys.argv[3:]]
        print(json.dumps(fn(*args)))
        return 0
    quick = "--quick" in sys.argv
    tests = 40 if quick else 200
    days = 2 if quick else 30
    many = 200_000 if quick else 1_000_000

    results = _rounds({
        "r1e4": ("requests", 10_000, 4),
        "rmany": ("requests", many, 4),
        "w4": ("requests", 200_000, 4),
        "w256": ("requests", 200_000, 256),
    }, ROUNDS)
    _ratio_verdict(f"{many:,} requests vs 10^4 (per-request rate)", results["r1e4"],
                   results["rmany"], 0.9, "10^4", f"{many:,}")
    _ratio_verdict("256 workers vs 4 (dispatch rate, same requests)", results["w4"],
                   results["w256"], 0.8, "4", "256")

    heavy = _rounds({"suite": ("suite", tests), "long": ("long_run", days)},
                    1 if quick else ROUNDS)
    grow = [r["last_mb"] - r["first_mb"] for r in heavy["suite"]]
    verdict(f"{tests} pytest tests of a virtual hour each (RSS last - first)",
            min(grow) < 20,
            f"best {min(grow):+.1f} MB median {statistics.median(grow):+.1f} MB (target "
            f"< 20 MB); first test {heavy['suite'][0]['first_mb']:.0f} MB")
    walls = [r["wall"] for r in heavy["long"]]
    cpus = [r["cpu"] for r in heavy["long"]]
    peaks = [r["peak_mb"] for r in heavy["long"]]
    verdict(f"{days} virtual days of timer + cron + 1 req/s", min(walls) < 60 * days / 30
            and min(peaks) < 300,
            f"wall best {min(walls):.1f} s median {statistics.median(walls):.1f} s (target "
            f"< {60 * days / 30:.0f} s, goal {30 * days / 30:.0f} s; CPU best "
            f"{min(cpus):.1f} s median {statistics.median(cpus):.1f} s); peak RSS best "
            f"{min(peaks):.0f} MB median {statistics.median(peaks):.0f} MB (target < 300 MB); "
            f"{heavy['long'][0]['records']:,} trace records, "
            f"{heavy['long'][0]['log_lines']:,} log lines")
    if "--year" in sys.argv:
        year = _isolated("long_run", 365)
        verdict("1 virtual year of the same load completes", True,
                f"wall {year['wall']:.0f} s, peak RSS {year['peak_mb']:.0f} MB, "
                f"{year['records']:,} trace records")
    return 0


if __name__ == "__main__":
    sys.exit(main())
