"""--cheaper-rss-limit-soft and --cheaper-rss-limit-hard (``Cheaper._rss_limits``) and
their start checks, with pyuwsgi 2.0.30's lines."""

from __future__ import annotations

from pathlib import Path

import pytest
from _uwsgi_process import run_until_exit

from simuwsgi import Simulation
from simuwsgi._errors import StartRefusedError

APP = ("import time\n"
       "def application(e, s):\n"
       "    time.sleep(float(e['QUERY_STRING'] or 0))\n"
       "    s('200 OK', [])\n    return [b'ok']\n")
MB = 1024 * 1024
BASE = ["--master", "--processes", "3", "--cheaper", "1", "--wsgi-file", "app.py"]
REFUSED = [
    (["--cheaper-rss-limit-soft", str(100 * MB)],
     "enabling cheaper-rss-limit-soft requires enabling also memory-report"),
    (["--memory-report", "--cheaper-rss-limit-hard", str(100 * MB)],
     "enabling cheaper-rss-limit-hard requires setting also cheaper-rss-limit-soft"),
    (["--memory-report", "--cheaper-rss-limit-soft", str(100 * MB),
      "--cheaper-rss-limit-hard", str(100 * MB)],
     "cheaper-rss-limit-hard value must be higher than cheaper-rss-limit-soft value"),
]


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(APP)
    return tmp_path


@pytest.mark.parametrize(("extra", "line"), REFUSED)
def test_refused_at_start(app_dir: Path, extra: list[str], line: str) -> None:
    with pytest.raises(StartRefusedError, match=line) as info:
        Simulation(BASE + extra, app_dir=app_dir).start()
    assert info.value.status == 1


@pytest.mark.real
@pytest.mark.parametrize(("extra", "line"), REFUSED)
def test_real_refused_at_start(app_dir: Path, extra: list[str], line: str) -> None:
    status, lines = run_until_exit(BASE + extra + ["--http-socket", "127.0.0.1:0"], app_dir)
    assert status == 1 and line in lines


def test_over_the_soft_limit_no_worker_is_spawned(app_dir: Path) -> None:
    options = BASE + ["--memory-report", "--cheaper-rss-limit-soft", str(100 * MB)]
    with Simulation(options, app_dir=app_dir) as sim:
        sim.set_rss("worker1", 150 * MB)
        sim.request("GET", "/")  # publishes it
        sim.submit("GET", "/?30")
        sim.advance(6)  # overloaded for more than 3 checks, but over the soft limit
        assert [w.id for w in sim.inst.workers.values() if w.alive] == [1]
        sim.set_rss("worker1", 10 * MB)
    with Simulation(options, app_dir=app_dir) as sim:
        sim.request("GET", "/")
        sim.submit("GET", "/?30")
        sim.advance(6)
        assert sorted(w.id for w in sim.inst.workers.values() if w.alive) == [1, 2]


def test_over_the_hard_limit_a_worker_is_stopped(app_dir: Path) -> None:
    options = BASE + ["--cheaper-initial", "3", "--memory-report", "--cheaper-rss-limit-soft",
                      str(100 * MB), "--cheaper-rss-limit-hard", str(200 * MB),
                      "--cheaper-algo", "manual"]
    with Simulation(options, app_dir=app_dir) as sim:
        for wid in (1, 2, 3):
            sim.set_rss(f"worker{wid}", 120 * MB)
        while sum(w.rss_size for w in sim.inst.workers.values()) < 200 * MB:
            sim.request("GET", "/")  # a worker publishes its memory as a request ends
        assert not any("hard rss" in line for line in sim.log)
        sim.advance(1)  # the next check: over the hard limit, whatever the algorithm
        assert [line for line in sim.log if "hard rss" in line] == [
            "cheaper hard rss memory limit exceeded, cheap one of 3 workers"]
        sim.advance(1)
        assert len([w for w in sim.inst.workers.values() if w.alive]) == 2
        assert any(line.endswith("cheaped.") for line in sim.log)
