"""The busyness cheaper algorithm (``cheaper.Busyness``) and --cheaper-algo-list, with
the lines observed on pyuwsgi 2.0.30."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from _uwsgi_process import run_with

from simuwsgi import Simulation
from simuwsgi.modes.real.pytest_helpers import require_real_uwsgi

APP = ("import time\n"
       "def application(e, s):\n"
       "    if e['PATH_INFO'] == '/slow':\n        time.sleep(2)\n"
       "    s('200 OK', [])\n    return [b'ok']\n")
OPTIONS = ["--master", "--processes", "4", "--cheaper", "1", "--cheaper-initial", "3",
           "--cheaper-algo", "busyness", "--cheaper-overload", "1",
           "--cheaper-busyness-multiplier", "2", "--cheaper-busyness-verbose",
           "--wsgi-file", "app.py"]


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(APP)
    return tmp_path


def _busyness(lines: list[str]) -> list[str]:
    """The algorithm's lines and the workers' lives, from its first check on."""
    kept = [line for line in lines if line.startswith("[busyness]")
            or "cheaped" in line or "killed successfully" in line or "pawned uWSGI w" in line]
    first = next(i for i, line in enumerate(kept) if "average busyness" in line)
    return kept[first:]


def _nr(n: int, count: int) -> list[str]:
    return [f"[busyness] worker nr {i} 1s average busyness is at 0%" for i in range(n, 4)] + \
        [f"[busyness] 1s average busyness of {count} worker(s) is at 0%"]


WAIT = "[busyness] need to wait 0 more second(s) to cheap worker"
# idle: one worker cheaped every multiplier * overload seconds, down to --cheaper; the
# master reaps it at the next check, after that check's algorithm ran
IDLE = [
    *_nr(1, 3), WAIT,
    *_nr(1, 3), "[busyness] 1s average busyness is at 0%, cheap one of 3 running workers",
    *_nr(2, 2), WAIT,
    "worker 1 killed successfully (pid: P)", "uWSGI worker 1 cheaped.",
    *_nr(2, 2), "[busyness] 1s average busyness is at 0%, cheap one of 2 running workers",
    "[busyness] 1s average busyness of 1 worker(s) is at 0%",
    "worker 2 killed successfully (pid: P)", "uWSGI worker 2 cheaped.",
    "[busyness] 1s average busyness of 1 worker(s) is at 0%",
]
SETTINGS = ["[busyness] settings: min=25%, max=50%, overload=1, multiplier=2, respawn penalty=2",
            "[busyness] backlog alert is set to 33 request(s), step is 1",
            "[busyness] backlog non-zero alert is set to 60 second(s)"]


def _masked(lines: list[str]) -> list[str]:
    import re

    return [re.sub(r"pid: \d+", "pid: P", line) for line in lines]


def test_settings_lines_follow_the_lock_lines(app_dir: Path) -> None:
    with Simulation(OPTIONS, app_dir=app_dir) as sim:
        at = sim.log.index("thunder lock: disabled (you can enable it with --thunder-lock)")
        assert sim.log[at + 1:at + 4] == SETTINGS


def test_idle_workers_are_cheaped(app_dir: Path) -> None:
    with Simulation(OPTIONS, app_dir=app_dir) as sim:
        sim.advance(6.5)
        assert _masked(_busyness(sim.log))[:len(IDLE)] == IDLE
        assert sorted(w.id for w in sim.inst.workers.values() if w.alive) == [3]


def test_load_spawns_workers_and_a_quick_return_raises_the_multiplier(app_dir: Path) -> None:
    with Simulation(OPTIONS, app_dir=app_dir) as sim:
        sim.advance(7)  # down to one worker, the last one cheaped at 5
        handles = [sim.submit("GET", "/slow") for _ in range(3)]
        sim.advance(6)
        assert all(h.response.status == 200 for h in handles)
        lines = _busyness(sim.log)
        assert "[busyness] 1s average busyness is at 100%, will spawn 1 new worker(s)" in lines
        assert "Respawned uWSGI worker 1 (new pid: 1005)" in lines
        # the last cheap was 3 s before: more than multiplier (2) * overload: no penalty
        assert not any("respawned to fast" in line for line in lines)
    with Simulation(OPTIONS, app_dir=app_dir) as sim:
        sim.advance(5.5)  # a worker cheaped at 5
        sim.submit("GET", "/slow")
        sim.submit("GET", "/slow")
        sim.advance(3)
        assert ("[busyness] worker(s) respawned to fast, increasing cheaper multiplier "
                "to 4 (+2)") in sim.log


def test_a_full_listen_queue_spawns_emergency_workers(app_dir: Path) -> None:
    options = ["--master", "--processes", "4", "--cheaper", "1", "--cheaper-algo",
               "busyness", "--cheaper-busyness-backlog-alert", "2", "--wsgi-file", "app.py"]
    with Simulation(options, app_dir=app_dir) as sim:
        sim.advance(1.5)
        for _ in range(4):
            sim.submit("GET", "/slow")
        sim.advance(1)
        assert "[busyness] 3 requests in listen queue, spawning 1 emergency worker(s) (1)!" \
            in sim.log
        assert sim.inst.workers[2].alive


def test_a_listen_queue_never_empty_spawns_after_backlog_nonzero(app_dir: Path) -> None:
    options = ["--master", "--processes", "2", "--cheaper", "1", "--cheaper-algo",
               "busyness", "--cheaper-busyness-backlog-nonzero", "2",
               "--cheaper-overload", "10", "--cheaper-busyness-verbose",
               "--wsgi-file", "app.py"]
    with Simulation(options, app_dir=app_dir) as sim:
        sim.advance(1.5)
        for _ in range(3):
            sim.submit("GET", "/slow")
        sim.advance(3)
        assert "[busyness] backlog is starting to fill (2)" in sim.log
        assert sim.log[-3:] == [
            "[busyness] backlog was non-zero for 2 second(s), spawning new worker(s)",
            "[busyness] 1 requests in listen queue, spawning 1 emergency worker(s) (1)!",
            "spawned uWSGI worker 2 (pid: 1003, cores: 1)"]


def test_cheaper_algo_list(app_dir: Path) -> None:
    with Simulation(["--master", "--wsgi-file", "app.py", "--cheaper-algo-list"],
                    app_dir=app_dir) as sim:
        assert sim.log[:8] == ALGO_LIST


ALGO_LIST = ["", "*** uWSGI loaded cheaper algorithms ***", "busyness", "spare", "backlog",
             "manual", "--- end of cheaper algorithms list ---", ""]


@pytest.mark.real
def test_real_cheaper_algo_list(tmp_path: Path) -> None:
    out = subprocess.run([require_real_uwsgi(), "--cheaper-algo-list"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=30, check=False)
    assert (out.stdout + out.stderr).splitlines()[:8] == ALGO_LIST


@pytest.mark.real
def test_real_idle_workers_are_cheaped(app_dir: Path) -> None:
    lines = run_with(OPTIONS, app_dir, until=["uWSGI worker 2 cheaped",
                                              "[busyness] 1s average busyness of 1 worker"])
    assert [line for line in lines if line.startswith("[busyness] settings")] == SETTINGS[:1]
    got = _masked(_busyness(lines))
    assert got[:len(IDLE)] == IDLE


METRICS = ["--master", "--processes", "2", "--cheaper", "1", "--cheaper-algo", "busyness",
           "--enable-metrics", "--wsgi-file", "app.py"]
BUSYNESS_METRICS = [("worker.1.plugin.cheaper_busyness.busyness", 1, "3.1.100.1"),
                    ("worker.2.plugin.cheaper_busyness.busyness", 1, "3.2.100.1"),
                    ("plugin.cheaper_busyness.total_avg_busyness", 1, "4.100.1")]


def _first_metrics(doc: dict) -> list[tuple[str, int, str]]:
    return [(name, m["type"], m["oid"]) for name, m in list(doc["metrics"].items())[:3]]


def test_busyness_metrics_lead_the_table(app_dir: Path) -> None:
    with Simulation(METRICS + ["--cheaper-overload", "1"], app_dir=app_dir) as sim:
        after = sim.log.index(SETTINGS[2]) + 1  # the third settings line
        assert sim.log[after] == "[busyness] metrics registered"
        assert _first_metrics(sim.stats()) == BUSYNESS_METRICS
        sim.submit("GET", "/slow")
        sim.advance(1.5)  # the worker busy for the whole second
        assert sim.uwsgi.metric_get("worker.1.plugin.cheaper_busyness.busyness") == 100
        assert sim.uwsgi.metric_get("plugin.cheaper_busyness.total_avg_busyness") == 100


@pytest.mark.real
def test_real_busyness_metrics_lead_the_table(app_dir: Path) -> None:
    import json
    import socket

    from simuwsgi.modes.real import free_port

    port = free_port()
    got: dict = {}

    def scenario(_url: str) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
        got["doc"] = json.loads(data)

    lines = run_with(METRICS + ["--stats", f"127.0.0.1:{port}"], app_dir, scenario)
    assert "[busyness] metrics registered" in lines
    assert _first_metrics(got["doc"]) == BUSYNESS_METRICS
