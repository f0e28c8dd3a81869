"""--check-interval: the master's checks every N seconds (``Instance.next_tick``,
``timers.MasterLoop``), as pyuwsgi 2.0.30 paces them."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from _uwsgi_process import get, run_with

from simuwsgi import Simulation
from simuwsgi._errors import StartRefusedError

APP = ("import os, time\n"
       "def application(e, s):\n"
       "    if e['PATH_INFO'] == '/die':\n        os._exit(3)\n"
       "    if e['PATH_INFO'] == '/slow':\n        time.sleep(30)\n"
       "    s('200 OK', [])\n    return [b'ok']\n")


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "t").write_text("")
    return tmp_path


def _when(sim: Simulation, text: str) -> list[float]:
    return [t for t, _p, line in sim.inst.log_lines if text in line]


def test_a_death_is_seen_at_the_next_check(app_dir: Path) -> None:
    with Simulation(["--master", "--wsgi-file", "app.py", "--check-interval", "5"],
                    app_dir=app_dir) as sim:
        sim.advance(1)
        assert sim.request("GET", "/die").status is None
        sim.advance(6)
        assert _when(sim, "DAMN ! worker 1") == [5.0]
        assert _when(sim, "Respawned uWSGI worker 1") == [5.0]


def test_harakiri_and_touches_follow_the_interval(app_dir: Path) -> None:
    options = ["--master", "--wsgi-file", "app.py", "--check-interval", "3",
               "--harakiri", "4", "--touch-workers-reload", "t"]
    with Simulation(options, app_dir=app_dir) as sim:
        sim.advance(0.5)
        sim.submit("GET", "/slow")  # deadline 4, checked at 6
        sim.advance(0.5)
        sim.touch("t")  # seen at 3
        sim.advance(7)
        assert _when(sim, "has been touched") == [3.0]
        assert _when(sim, "HARAKIRI ON WORKER") == [6.0]


def test_zero_is_one_second(app_dir: Path) -> None:
    with Simulation(["--master", "--wsgi-file", "app.py", "--check-interval", "0"],
                    app_dir=app_dir) as sim:
        sim.advance(1.5)
        sim.request("GET", "/die")
        sim.advance(1)
        assert _when(sim, "DAMN ! worker 1") == [2.0]


def test_a_negative_interval_is_refused(app_dir: Path) -> None:
    with pytest.raises(StartRefusedError, match='"check-interval": must be > 0'):
        Simulation(["--master", "--wsgi-file", "app.py", "--check-interval", "-2"],
                   app_dir=app_dir).start()


@pytest.mark.real
def test_real_a_death_waits_for_the_next_check(app_dir: Path) -> None:
    gaps = []

    def scenario(url: str) -> None:
        time.sleep(1)
        with pytest.raises(OSError):  # closed without a response
            get(url + "/die")
        died = time.monotonic()
        assert get(url, wait=15) == b"ok"
        gaps.append(time.monotonic() - died)

    lines = run_with(["--master", "--wsgi-file", "app.py", "--check-interval", "5"],
                     app_dir, scenario)
    assert any(line.startswith("DAMN ! worker 1") for line in lines)
    # killed about a second into the master's 5 s wait: seen about 4 s later (with
    # the default interval, within a second)
    assert gaps[0] > 2


def test_a_mule_that_exits_is_seen_an_interval_later(app_dir: Path) -> None:
    (app_dir / "m.py").write_text("import time\ntime.sleep(0.5)\n")
    with Simulation(["--master", "--wsgi-file", "app.py", "--mule=m.py",
                     "--check-interval", "3"], app_dir=app_dir) as sim:
        sim.advance(4)
        assert _when(sim, "OOOPS mule 1") == [3.5]
