"""--cheaper with the spare and backlog algorithms (``simuwsgi.server.cheaper``), with the lines
observed on pyuwsgi 2.0.30."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from _uwsgi_process import run_until_exit, run_with

from simuwsgi import Simulation
from simuwsgi._errors import StartRefusedError

APP = ("import time\n"
       "def application(e, s):\n"
       "    time.sleep(float(e['QUERY_STRING'] or 0))\n"
       "    s('200 OK', [])\n    return [b'ok']\n")
IDLE = ["--master", "--processes", "4", "--cheaper", "1", "--cheaper-initial", "3",
        "--wsgi-file", "app.py"]
IDLE_LINES = ["spawned uWSGI worker 1 (pid: P, cores: 1)",
              "spawned uWSGI worker 2 (pid: P, cores: 1)",
              "spawned uWSGI worker 3 (pid: P, cores: 1)",
              "worker 1 killed successfully (pid: P)", "uWSGI worker 1 cheaped.",
              "worker 2 killed successfully (pid: P)", "uWSGI worker 2 cheaped."]


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(APP)
    return tmp_path


def _worker_lines(lines: list[str]) -> list[str]:
    return [re.sub(r"pid: \d+", "pid: P", line) for line in lines
            if re.match(r"(spawned uWSGI worker|Respawned|worker \d killed|uWSGI worker)", line)]


def test_idle_workers_are_cheaped_down_to_cheaper(app_dir: Path) -> None:
    with Simulation(IDLE, app_dir=app_dir) as sim:
        sim.advance(2.5)  # the third idle check (3 s) stops the oldest idle worker
        assert sorted(w.id for w in sim.inst.workers.values() if w.alive) == [1, 2, 3]
        sim.advance(9.5)
        assert _worker_lines(sim.log) == IDLE_LINES
        assert [w["status"] for w in sim.inst.facade.workers()] == [b"cheap", b"cheap",
                                                                    b"idle", b"cheap"]
        assert sim.request("GET", "/").body == b"ok"


def test_overload_spawns_cheaped_workers(app_dir: Path) -> None:
    with Simulation(["--master", "--processes", "3", "--cheaper", "1", "--cheaper-step", "2",
                     "--wsgi-file", "app.py"], app_dir=app_dir) as sim:
        handle = sim.submit("GET", "/?30")  # the only worker busy for 30 s
        sim.advance(4.5)  # overloaded at checks 1..4: more than 3 → spawn 2 at 4 s
        assert sorted(w.id for w in sim.inst.workers.values() if w.alive) == [1, 2, 3]
        assert _worker_lines(sim.log)[1:] == ["spawned uWSGI worker 2 (pid: P, cores: 1)",
                                              "spawned uWSGI worker 3 (pid: P, cores: 1)"]
        sim.advance(30)
        assert handle.done
        assert sum(w.alive and not w.cheaped for w in sim.inst.workers.values()) == 1


def test_backlog_algorithm(app_dir: Path) -> None:
    with Simulation(["--master", "--processes", "3", "--cheaper", "1", "--cheaper-algo",
                     "backlog", "--cheaper-overload", "1", "--wsgi-file", "app.py"],
                    app_dir=app_dir) as sim:
        for _ in range(3):
            sim.submit("GET", "/?20")  # one busy worker, two in the listen queue
        sim.advance(1.5)
        assert sum(w.alive for w in sim.inst.workers.values()) == 2


def test_cheaper_not_below_processes_refused(app_dir: Path) -> None:
    sim = Simulation(["--master", "--processes", "2", "--cheaper", "2", "--wsgi-file",
                      "app.py"], app_dir=app_dir)
    with pytest.raises(StartRefusedError, match="^invalid cheaper value: must be lower "
                                                "than processes$"):
        sim.start()


def test_unknown_algorithm_falls_back_to_spare(app_dir: Path) -> None:
    with Simulation(IDLE + ["--cheaper-algo", "nope"], app_dir=app_dir) as sim:
        assert "unable to find requested cheaper algorithm, falling back to spare" in sim.log
        sim.advance(12)
        assert _worker_lines(sim.log) == IDLE_LINES


@pytest.mark.real
def test_real_idle_cheaping(app_dir: Path) -> None:
    lines = run_with(IDLE, app_dir, until=["uWSGI worker 1 cheaped", "uWSGI worker 2 cheaped"])
    assert _worker_lines(lines) == IDLE_LINES


@pytest.mark.real
def test_real_cheaper_not_below_processes(app_dir: Path) -> None:
    code, lines = run_until_exit(["--http-socket", "127.0.0.1:0", "--master", "--processes",
                                  "2", "--cheaper", "2", "--wsgi-file", "app.py"], app_dir)
    assert code == 1
    assert lines[-1] == (
        "invalid cheaper value: must be lower than processes")
