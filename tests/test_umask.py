"""``--umask``: the mode of the files the app creates (uWSGI sets it as it reads the
option; a value shorter than 3 characters is logged as invalid and taken as 0; of a
longer one the 2nd to 4th characters count). ``--daemonize`` sets it to 0 unless
``--umask`` is given. In a simulation it is the test process's while the simulation
runs, and put back at close. The ``real`` test asks uWSGI 2.0.30.
"""

from __future__ import annotations

import os
import textwrap

import pytest

from simuwsgi import Simulation
from simuwsgi.modes.real import RealUwsgi
from simuwsgi.modes.real.pytest_helpers import requires_real_uwsgi

APP = """
import os

def application(env, start_response):
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "made" + env["PATH_INFO"][1:])
    with open(path, "w"):
        pass
    start_response("200 OK", [])
    return [oct(os.stat(path).st_mode & 0o777).encode()]
"""
#: option value -> the mode of a file the app creates with open() (0o666 & ~umask)
CASES = {"077": b"0o600", "0002": b"0o664", "7": b"0o666", "027": b"0o640"}


def _argv(value: str) -> list[str]:
    return ["--master", "--wsgi-file", "app.py", "--umask", value]


@pytest.mark.parametrize("mode", ["sim", "fork"])
@pytest.mark.parametrize("value", list(CASES))
def test_the_umask_of_the_app(tmp_path, value, mode):
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    before = os.umask(0o022)
    os.umask(before)
    with Simulation(_argv(value), app_dir=tmp_path, mode=mode) as sim:
        assert sim.get("/1").body == CASES[value]
        log = list(sim.log)
    assert ("invalid umask: 7" in log) == (value == "7")
    assert not [line for line in log if "not simulated" in line]
    now = os.umask(before)
    assert now == before  # put back at close


def test_daemonize_clears_the_umask(tmp_path):
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    with Simulation(["--master", "--wsgi-file", "app.py", "--daemonize", "d.log"],
                    app_dir=tmp_path) as sim:
        assert sim.get("/1").body == b"0o666"
    with Simulation(["--master", "--wsgi-file", "app.py", "--daemonize", "d.log",
                     "--umask", "077"], app_dir=tmp_path) as sim:
        assert sim.get("/2").body == b"0o600"


@pytest.mark.real
@requires_real_uwsgi
@pytest.mark.parametrize("value", list(CASES))
def test_the_same_modes_on_the_real_server(tmp_path, value):
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    with RealUwsgi(_argv(value), app_dir=tmp_path) as real:
        assert real.get("/1", timeout=5).body == CASES[value]
        log = real.app_log()
    assert ("invalid umask: 7" in log) == (value == "7")
