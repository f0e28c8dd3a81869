"""Real-mode benchmark (issue: three modes): scenario start-to-ready for 4 workers.

Start-to-ready is measured from ``RealRun.start()`` (run dir, instrumentation, harness
options, uWSGI exec) to true readiness (master loop running, every worker in its accept
loop, see ``simuwsgi.modes.real._server``); target < 0.5 s. Also shown: the same with 2 mules
and a spooler, and how long a run's teardown (SIGKILL of the process group) takes.

Run: python benchmarks/bench_real.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _util import show

from simuwsgi._core.clock import RealClock
from simuwsgi.modes.real import RealRun

APP = "def application(environ, start_response):\n" \
      "    start_response('200 OK', [])\n    return [b'ok']\n"
REPEAT = 7


def measure(options: list[str], app_dir: Path) -> tuple[float, float]:
    """Median (start-to-ready, teardown) seconds."""
    ready, teardown = [], []
    for _ in range(REPEAT):
        run = RealRun(options, app_dir=app_dir, deadline=30)
        began = RealClock.monotonic()
        run.start()
        ready.append(RealClock.monotonic() - began)
        assert run.get("/").status == 200
        began = RealClock.monotonic()
        run.close()
        teardown.append(RealClock.monotonic() - began)
    return statistics.median(ready), statistics.median(teardown)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        app_dir = Path(tmp)
        (app_dir / "app.py").write_text(APP)
        base = ["--master", "--processes", "4", "--wsgi-file", "app.py"]
        ready, teardown = measure(base, app_dir)
        show("real mode: start-to-ready, 4 workers (median)", f"{ready * 1000:.0f} ms",
             "< 500 ms", ready < 0.5)
        ready2, _ = measure([*base, "--mules", "2", "--spooler", "spool"], app_dir)
        show("real mode: start-to-ready, 4 workers + 2 mules + spooler", f"{ready2 * 1000:.0f} ms",
             "(info)", True)
        show("real mode: teardown (kill the process group)", f"{teardown * 1000:.0f} ms",
             "(info)", True)


if __name__ == "__main__":
    main()
