"""App-loading options: --env/--unenv, --pythonpath (``startup.ProcessEnvironment``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from _uwsgi_process import run_until_exit

from simuwsgi import Simulation

ENV_APP = ("import os, sys\n"
           "print('ENV', os.environ.get('SIMU_FOO'), os.environ.get('SIMU_GONE'), "
           "sys.path[:4], flush=True)\n"
           "def application(e, s):\n    s('200 OK', [])\n    return [b'']\n")
OPTIONS = ["--processes", "0", "--env", "SIMU_FOO=bar", "--unenv", "SIMU_GONE",
           "--pythonpath", "libs/a", "--pythonpath", "libs/*", "--pp", "nonexist",
           "--wsgi-file", "envapp.py"]
PATH_LINES = ["added libs/a/ to pythonpath.", "added libs/a/ to pythonpath.",
              "added libs/b/ to pythonpath.", "added nonexist to pythonpath."]


@pytest.fixture
def app_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "envapp.py").write_text(ENV_APP)
    (tmp_path / "libs" / "a").mkdir(parents=True)
    (tmp_path / "libs" / "b").mkdir()
    monkeypatch.setenv("SIMU_GONE", "1")
    monkeypatch.delenv("SIMU_FOO", raising=False)
    return tmp_path


def test_env_and_pythonpath(app_dir: Path) -> None:
    before = list(sys.path)
    with Simulation(OPTIONS, app_dir=app_dir) as sim:
        assert [line for line in sim.log if line.endswith(" to pythonpath.")] == PATH_LINES
        assert os.environ.get("SIMU_FOO") == "bar" and "SIMU_GONE" not in os.environ
        log = list(sim.log)
    paths = [str(app_dir / "nonexist"), f"{app_dir}/libs/b/", f"{app_dir}/libs/a/",
             f"{app_dir}/libs/a/"]
    assert f"ENV bar None {paths!r}" in log  # the app's print() is a log line, as real
    # undone at close
    assert sys.path == before
    assert "SIMU_FOO" not in os.environ and os.environ["SIMU_GONE"] == "1"


@pytest.mark.real
def test_real_env_and_pythonpath(app_dir: Path) -> None:
    """pyuwsgi: the same pythonpath lines and order; os.environ unchanged by --env and
    --unenv (Python started before uWSGI read them; the compiled binary differs)."""
    _code, lines = run_until_exit(["--http-socket", "127.0.0.1:0", *OPTIONS], app_dir)
    assert [line for line in lines if line.endswith("to pythonpath.")] == PATH_LINES
    paths = ["nonexist", "libs/b/", "libs/a/", "libs/a/"]
    assert f"ENV None 1 {paths!r}" in lines
