"""--cheap, --idle and --die-on-idle: workers only while there is work (``Instance``'s
cheap mode), with the lines observed on pyuwsgi 2.0.30."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from _uwsgi_process import before_stop, get, let_new_processes_start, running

from simuwsgi import Simulation

APP = "def application(e, s):\n    s('200 OK', [])\n    return [b'ok']\n"
OPTIONS = ["--master", "--processes", "2", "--cheap", "--idle", "2", "--wsgi-file", "app.py"]
LINES = ["cheap mode enabled: waiting for socket connection...",
         "spawned uWSGI worker N (pid: N, cores: N)",
         "spawned uWSGI worker N (pid: N, cores: N)",
         "workers have been inactive for more than N seconds (N-N)",
         "cheap mode enabled: waiting for socket connection...",
         "Respawned uWSGI worker N (new pid: N)",
         "Respawned uWSGI worker N (new pid: N)"]


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(APP)
    return tmp_path


def _lines(lines: list[str]) -> list[str]:
    keep = ("cheap mode", "spawned uWSGI worker", "Respawned", "workers have been")
    return [re.sub(r"\d+", "N", line) for line in lines if line.startswith(keep)]


def test_cheap_then_idle(app_dir: Path) -> None:
    with Simulation(OPTIONS, app_dir=app_dir) as sim:
        sim.advance(1.5)
        assert not sim.inst.workers
        assert sim.request("GET", "/").body == b"ok"
        sim.advance(2)
        assert sum(w.alive for w in sim.inst.workers.values()) == 2
        sim.advance(3)  # no request since second 2: stopped at 5 (5 - 2 > 2)
        assert not any(w.alive for w in sim.inst.workers.values())
        assert "workers have been inactive for more than 2 seconds" in sim.log[-2]
        assert sim.request("GET", "/").body == b"ok"
        assert _lines(sim.log) == LINES


def test_die_on_idle(app_dir: Path) -> None:
    with Simulation(["--master", "--idle", "2", "--die-on-idle", "--wsgi-file", "app.py"],
                    app_dir=app_dir) as sim:
        sim.advance(5)
        assert sim.inst.stopped and sim.log[-1] == "goodbye to uWSGI."
        assert sim.request("GET", "/").status is None


@pytest.mark.real
def test_real_cheap_then_idle(app_dir: Path) -> None:
    with running(OPTIONS, app_dir) as uwsgi:  # the first request woke it
        uwsgi.wait_for("workers have been inactive", "cheap mode enabled")
        assert get(uwsgi.url + "/") == b"ok"
        uwsgi.wait_for("workers have been inactive", "Respawned", "Respawned")
        let_new_processes_start()
    assert _lines(before_stop(uwsgi.lines)) == LINES
