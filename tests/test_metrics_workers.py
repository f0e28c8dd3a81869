"""The per-worker metrics as uWSGI 2.0.30 registers them (``core/metrics.c``):
``worker.0.requests`` points at ``uwsgi.workers[0].requests``, every worker's requests
(it read 0), and ``worker.N.respawns`` at the worker's ``respawn_count``, 1 from its
first spawn (it read one less). The ``real`` test asks the real server."""

from __future__ import annotations

import textwrap
import time

import pytest

from simuwsgi import Simulation
from simuwsgi.modes.real import RealUwsgi
from simuwsgi.modes.real.pytest_helpers import requires_real_uwsgi

APP = """
import uwsgi

def application(environ, start_response):
    start_response("200 OK", [])
    names = ("worker.0.requests", "worker.1.requests", "worker.2.requests",
             "worker.1.respawns", "worker.0.respawns")
    return [" ".join(str(uwsgi.metric_get(name)) for name in names).encode()]
"""
ARGV = ["--master", "--processes", "2", "--enable-metrics", "--wsgi-file", "app.py"]


def _last(get, wait) -> list[int]:
    """Five requests, then a sixth reads the metrics once the master has collected them
    (it does once a second)."""
    for _ in range(5):
        get()
    wait(2)
    return [int(n) for n in get().split()]


@pytest.mark.parametrize("mode", ["sim", "fork"])
def test_worker_zero_counts_every_request_and_respawns_count_the_first_spawn(tmp_path, mode):
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    with Simulation(ARGV, app_dir=tmp_path, mode=mode, seed=2) as sim:
        total, one, two, respawns, zero = _last(lambda: sim.get("/").text, sim.advance)
    assert (total, one + two, respawns, zero) == (5, 5, 1, 0)


@pytest.mark.real
@requires_real_uwsgi
def test_the_same_on_the_real_server(tmp_path):
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    with RealUwsgi(ARGV, app_dir=tmp_path) as real:
        total, one, two, respawns, zero = _last(lambda: real.get("/", timeout=5).text,
                                                time.sleep)
    assert (total, one + two, respawns, zero) == (5, 5, 1, 0)
