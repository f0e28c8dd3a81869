"""``--offload-threads`` and ``--home`` (``--virtualenv``) as pyuwsgi 2.0.30 has them.

* Each worker logs ``spawned N offload threads for uWSGI worker K`` as it starts
  (``uwsgi_worker_run``), again after a respawn; the threads only move transfers out of
  the worker, which take no virtual time either way.
* ``--home`` changes nothing: pyuwsgi's interpreter is already running (``--- Python VM
  already initialized ---``), so ``sys.prefix`` and ``sys.path`` stay its own, even for
  a directory that does not exist (observed: no line about it either).
"""

from __future__ import annotations

import json
import textwrap
import time

import pytest

from simuwsgi import Simulation
from simuwsgi.modes.real import RealUwsgi
from simuwsgi.modes.real.pytest_helpers import requires_real_uwsgi

APP = """
import json, sys

def application(env, start_response):
    start_response("200 OK", [])
    return [json.dumps([sys.prefix, sys.path[-3:]]).encode()]
"""
ARGV = ["--master", "--processes", "2", "--wsgi-file", "app.py", "--offload-threads", "3",
        "--max-requests", "1", "--min-worker-lifetime", "1"]
HOME = ["--home", "/nonexistent/venv"]


def _offload_lines(log: list[str]) -> list[str]:
    """The spawn, respawn and offload lines, in order."""
    return [line for line in log
            if "offload threads" in line or "spawned uWSGI worker" in line]


def _respawned(log: list[str]) -> int:
    """The worker respawned after its one request."""
    respawned = [line for line in log if line.startswith("Respawned uWSGI worker")]
    assert len(respawned) == 1, respawned
    return int(respawned[0].split()[3])


def _expected_after_one_request(served_by: int) -> list[str]:
    return ["spawned 3 offload threads for uWSGI worker 1",
            "spawned 3 offload threads for uWSGI worker 2",
            "spawned uWSGI worker 1", "spawned uWSGI worker 2",
            f"Respawned uWSGI worker {served_by}",
            f"spawned 3 offload threads for uWSGI worker {served_by}"]


def _shape(lines: list[str]) -> list[str]:
    """The lines without pids, the first four sorted: the real workers start while the
    master forks the next one, so their lines come in any order (a worker's offload
    line even before the master's line about its spawn: seen under load)."""
    short = [line.split(" (")[0] for line in lines]
    return [*sorted(short[:4]), *short[4:]]


@pytest.mark.parametrize("mode", ["sim", "fork"])
def test_each_worker_logs_its_offload_threads_at_each_start(tmp_path, mode):
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    with Simulation([*ARGV, *HOME], app_dir=tmp_path, mode=mode) as sim:
        sim.advance(1)
        reply = sim.get("/")
        sim.advance(5)
        log = list(sim.log)
    served_by = _respawned(log)
    assert not [line for line in log if "not simulated" in line]
    assert _shape(_offload_lines(log)) == _expected_after_one_request(served_by)
    short = [line.split(" (")[0] for line in _offload_lines(log)]
    for wid in (1, 2):  # here in the order uWSGI logs them when the master goes first
        assert short.index(f"spawned uWSGI worker {wid}") < \
            short.index(f"spawned 3 offload threads for uWSGI worker {wid}")
    assert reply.status == 200


def test_home_changes_neither_prefix_nor_path(tmp_path):
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    answers = []
    for extra in ([], HOME):
        with Simulation([*ARGV, *extra], app_dir=tmp_path) as sim:
            answers.append(json.loads(sim.get("/").body))
    assert answers[0] == answers[1]


@pytest.mark.real
@requires_real_uwsgi
def test_the_same_on_the_real_server(tmp_path):
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    answers = []
    for extra in ([], HOME):
        with RealUwsgi([*ARGV, *extra], app_dir=tmp_path) as real:
            time.sleep(1.2)
            answers.append(json.loads(real.get("/", timeout=5).body))
            time.sleep(3)
            log = real.app_log()
        served_by = _respawned(log)
        assert _shape(_offload_lines(log)) == _expected_after_one_request(served_by)
        assert not [line for line in log if "nonexistent" in line]
    assert answers[0] == answers[1]
