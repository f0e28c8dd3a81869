"""--pyrun (``AppLoader.run_command``): uWSGI's command mode, against the real server."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from simuwsgi import Simulation
from simuwsgi.modes.real.pytest_helpers import require_real_uwsgi, requires_real_uwsgi

SCRIPTS = {
    "ok.py": "import sys, uwsgi\nprint('PYRUN', sys.argv, uwsgi.worker_id(), uwsgi.numproc,"
             " __name__)\n",
    "boom.py": "raise ValueError('boom')\n",
    "exit3.py": "import sys\nsys.exit(3)\n",
}
OPTS = ["--master", "--processes", "2", "--http-socket", "127.0.0.1:0"]


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    for name, text in SCRIPTS.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def _view(lines: list[str]) -> list[str]:
    keep = re.compile(r"Operational MODE|^spawned uWSGI worker|^PYRUN|^worker \d+ buried|"
                      r"^goodbye|Error|^open\(|listen backlog|^  File|no app loaded")
    return [re.sub(r"pid: \d+", "pid: P", line) for line in lines if keep.search(line)]


def _simulated(app_dir: Path, script: str) -> list[str]:
    sim = Simulation(["--pyrun", script, *OPTS], app_dir=app_dir)
    try:
        sim.start()
        sim.advance(2)
        assert sim.inst.stopped
        return _view(list(sim.log))
    finally:
        sim.close()


def test_the_script_runs_in_worker_1_and_ends_the_instance(app_dir: Path) -> None:
    assert _simulated(app_dir, "ok.py") == [
        "*** Operational MODE: command ***", "spawned uWSGI worker 1 (pid: P, cores: 1)",
        "PYRUN ['ok.py'] 1 1 __main__", "worker 1 buried after 0 seconds",
        "goodbye to uWSGI."]
    boom = _simulated(app_dir, "boom.py")
    assert '  File "boom.py", line 1, in <module>' in boom and "ValueError: boom" in boom
    assert 'open("missing.py"): No such file or directory [plugins/python/python_plugin.c ' \
           'line 1940]' in _simulated(app_dir, "missing.py")


@pytest.mark.real
@requires_real_uwsgi
@pytest.mark.parametrize("script", ["ok.py", "boom.py", "exit3.py", "missing.py"])
def test_pyrun_matches_real_uwsgi(app_dir: Path, script: str) -> None:
    binary = require_real_uwsgi()
    real = subprocess.run([binary, "--pyrun", script, *OPTS], cwd=app_dir, timeout=20,
                          capture_output=True, text=True, check=False)
    assert real.returncode == 0
    lines = (real.stdout + real.stderr).splitlines()
    assert _simulated(app_dir, script) == _view(lines)


def test_without_master_the_scripts_status_is_uwsgis(app_dir: Path) -> None:
    sim = Simulation(["--pyrun", "exit3.py"], app_dir=app_dir)
    try:
        sim.start()
        sim.advance(2)
        assert sim.inst.stopped and sim.inst.exit_status == 3
        assert not any(line.startswith(("worker 1 buried", "goodbye")) for line in sim.log)
    finally:
        sim.close()


@pytest.mark.real
@requires_real_uwsgi
def test_without_master_the_status_matches_real_uwsgi(app_dir: Path) -> None:
    real = subprocess.run([require_real_uwsgi(), "--pyrun", "exit3.py"], cwd=app_dir,
                          timeout=20, capture_output=True, check=False)
    assert real.returncode == 3
